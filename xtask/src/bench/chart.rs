//! `target/bench/ratios.svg`: the report's ratio columns as a bar chart,
//! written as plain SVG text (no plotting crate, no service).
//!
//! One group of horizontal bars per workload, one bar per peer, each bar
//! running from the line at 1 (the baseline, aio) to the peer's median over
//! aio's, on a logarithmic axis: 2× slower and 2× faster are the same length
//! either side of the line. The axis spans whole powers of ten, at least
//! 1/10 to 10 and as far as the figures reach, but never past 1/100 or
//! 1,000; a bar past the axis stops at its end with an arrowhead. Every bar
//! carries its exact ratio as a label, so that clipping hides nothing.

use std::fmt::Write as _;

/// One workload's bars.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) workload: String,
    /// Whether the figures are bytes (drawn the same, labelled so).
    pub(crate) bytes: bool,
    /// Per peer (every runner after the baseline), its ratio to the
    /// baseline where both were measured.
    pub(crate) ratios: Vec<Option<f64>>,
}

/// The axis never reaches past these.
const AXIS_FLOOR: f64 = 0.01;
const AXIS_CEILING: f64 = 1_000.0;

/// Bar colours, one per peer in order (cycled if there are more peers).
const COLOURS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#e15759", "#b07aa1", "#9c755f",
];

const WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 170.0;
const PLOT_LEFT: f64 = LABEL_WIDTH + 10.0;
const PLOT_RIGHT: f64 = WIDTH - 70.0;
const TOP: f64 = 70.0;
const BAR_HEIGHT: f64 = 11.0;
const BAR_GAP: f64 = 2.0;
const GROUP_GAP: f64 = 12.0;

/// The chart for `names` (the baseline first, then the peers) and `rows`.
pub(crate) fn render(names: &[&str], rows: &[Row]) -> String {
    let baseline = names.first().copied().unwrap_or("baseline");
    let peers = names.get(1..).unwrap_or_default();
    let (low, high) = axis(rows);
    let x = |ratio: f64| {
        let ratio = ratio.clamp(low, high);
        PLOT_LEFT + (ratio.log10() - low.log10()) / (high.log10() - low.log10()) * (PLOT_RIGHT - PLOT_LEFT)
    };

    // Only peers with at least one bar take a row in each group, so a
    // group is as tall as its bars.
    let group_height = |row: &Row| {
        let bars = row.ratios.iter().flatten().count().max(1) as f64;
        bars * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP
    };
    let plot_bottom = TOP + rows.iter().map(group_height).sum::<f64>();
    let height = plot_bottom + 40.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{PLOT_LEFT}" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape(&format!(
            "Each peer's median over {baseline}'s, per workload (log scale; right of 1: {baseline} faster or smaller)"
        ))
    );

    // The legend.
    let mut legend_x = PLOT_LEFT;
    for (index, peer) in peers.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<rect x="{legend_x}" y="30" width="10" height="10" fill="{}"/><text x="{}" y="39">{}</text>"#,
            COLOURS[index % COLOURS.len()],
            legend_x + 14.0,
            escape(peer)
        );
        legend_x += 24.0 + 7.0 * peer.chars().count() as f64;
    }

    // Grid lines at every power of ten, the line at 1 darker.
    let mut power = low;
    while power <= high * 1.000_001 {
        let at = x(power);
        let (stroke, width) = if (power - 1.0).abs() < 1e-9 {
            ("#333", 1.5)
        } else {
            ("#ccc", 1.0)
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{at:.1}" y1="{}" x2="{at:.1}" y2="{plot_bottom}" stroke="{stroke}" stroke-width="{width}"/>"#,
            TOP - 6.0
        );
        let _ = writeln!(
            svg,
            r##"<text x="{at:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            plot_bottom + 14.0,
            axis_label(power)
        );
        power *= 10.0;
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#333">{}</text>"##,
        x(1.0),
        TOP - 10.0,
        escape(&format!("{baseline} = 1"))
    );

    let mut y = TOP;
    for row in rows {
        let top = y;
        let label = if row.bytes {
            format!("{} (bytes)", row.workload)
        } else {
            row.workload.clone()
        };
        let _ = writeln!(
            svg,
            r#"<text x="{LABEL_WIDTH}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
            top + BAR_HEIGHT,
            escape(&label)
        );
        for (index, ratio) in row.ratios.iter().enumerate() {
            let Some(ratio) = *ratio else {
                continue;
            };
            let colour = COLOURS[index % COLOURS.len()];
            let (from, to) = (x(1.0), x(ratio));
            let (left, right) = if to >= from { (from, to) } else { (to, from) };
            let peer = peers.get(index).copied().unwrap_or("");
            let _ = writeln!(
                svg,
                r#"<rect x="{left:.1}" y="{y:.1}" width="{:.1}" height="{BAR_HEIGHT}" fill="{colour}"><title>{}</title></rect>"#,
                (right - left).max(1.0),
                escape(&format!(
                    "{}: {peer} {} × {baseline}",
                    row.workload,
                    ratio_label(ratio)
                ))
            );
            let middle = y + BAR_HEIGHT / 2.0;
            if ratio > high {
                let _ = writeln!(
                    svg,
                    r#"<path d="M{right:.1},{:.1} L{:.1},{middle:.1} L{right:.1},{:.1} Z" fill="{colour}"/>"#,
                    y - 1.0,
                    right + 7.0,
                    y + BAR_HEIGHT + 1.0
                );
            } else if ratio < low {
                let _ = writeln!(
                    svg,
                    r#"<path d="M{left:.1},{:.1} L{:.1},{middle:.1} L{left:.1},{:.1} Z" fill="{colour}"/>"#,
                    y - 1.0,
                    left - 7.0,
                    y + BAR_HEIGHT + 1.0
                );
            }
            // The label beyond the bar's far end, or inside the plot
            // against the line at 1 when the bar is too long for that.
            let text = format!("{peer} {}", ratio_label(ratio));
            let (at, anchor) = if ratio >= 1.0 {
                (right + if ratio > high { 10.0 } else { 3.0 }, "start")
            } else {
                (left - if ratio < low { 10.0 } else { 3.0 }, "end")
            };
            let _ = writeln!(
                svg,
                r##"<text x="{at:.1}" y="{:.1}" text-anchor="{anchor}" font-size="9" fill="#222">{}</text>"##,
                y + BAR_HEIGHT - 2.0,
                escape(&text)
            );
            y += BAR_HEIGHT + BAR_GAP;
        }
        if row.ratios.iter().all(Option::is_none) {
            let _ = writeln!(
                svg,
                r##"<text x="{PLOT_LEFT}" y="{:.1}" fill="#888">no ratio (the baseline was not measured)</text>"##,
                y + BAR_HEIGHT - 2.0
            );
            y += BAR_HEIGHT + BAR_GAP;
        }
        y += GROUP_GAP;
        let _ = writeln!(
            svg,
            r##"<line x1="0" y1="{:.1}" x2="{WIDTH}" y2="{:.1}" stroke="#eee"/>"##,
            y - GROUP_GAP / 2.0,
            y - GROUP_GAP / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The axis' ends: whole powers of ten around every ratio, at least 1/10 to
/// 10, within [`AXIS_FLOOR`] and [`AXIS_CEILING`].
fn axis(rows: &[Row]) -> (f64, f64) {
    let ratios = rows
        .iter()
        .flat_map(|row| row.ratios.iter().flatten().copied())
        .filter(|ratio| ratio.is_finite() && *ratio > 0.0);
    let (min, max) = ratios.fold((0.1_f64, 10.0_f64), |(min, max), ratio| {
        (min.min(ratio), max.max(ratio))
    });
    let low = 10f64.powf(min.log10().floor()).max(AXIS_FLOOR);
    let high = 10f64.powf(max.log10().ceil()).min(AXIS_CEILING);
    (low, high)
}

fn axis_label(power: f64) -> String {
    if power >= 1.0 {
        format!("{power:.0}")
    } else {
        format!("1/{:.0}", 1.0 / power)
    }
}

fn ratio_label(ratio: f64) -> String {
    match ratio {
        r if r >= 100.0 => format!("{r:.0}×"),
        r if r >= 10.0 => format!("{r:.1}×"),
        r => format!("{r:.2}×"),
    }
}

/// The text of an SVG text node or attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(workload: &str, ratios: &[Option<f64>]) -> Row {
        Row {
            workload: workload.to_owned(),
            bytes: false,
            ratios: ratios.to_vec(),
        }
    }

    #[test]
    fn the_axis_spans_powers_of_ten_within_its_limits() {
        assert_eq!(axis(&[]), (0.1, 10.0));
        assert_eq!(axis(&[row("a", &[Some(2.0), Some(0.5)])]), (0.1, 10.0));
        let (low, high) = axis(&[row("a", &[Some(0.05), Some(42.0), None])]);
        assert!(
            (low - 0.01).abs() < 1e-12 && (high - 100.0).abs() < 1e-9,
            "{low} {high}"
        );
        assert_eq!(
            axis(&[row("a", &[Some(1e-6), Some(1e6)])]),
            (AXIS_FLOOR, AXIS_CEILING)
        );
    }

    #[test]
    fn draws_a_bar_per_ratio_and_clips_with_an_arrowhead() {
        let rows = [
            row("yield", &[Some(2.5), None, Some(5_000.0)]),
            row("a<b", &[None, None, None]),
        ];
        let svg = render(&["aio", "tokio", "floor", "uvloop"], &rows);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        // A legend square per peer, a bar per ratio, the background.
        assert_eq!(svg.matches("<rect").count(), 1 + 3 + 2);
        assert_eq!(svg.matches("<path").count(), 1, "{svg}");
        assert!(svg.contains("tokio 2.50×") && svg.contains("uvloop 5000×"));
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        assert!(svg.contains(">aio = 1<"));
    }
}
