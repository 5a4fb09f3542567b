//! The report's "The lead" section: each row checked against the lines aio
//! aims for, so that whether it holds them is read off one run rather than
//! worked out by hand from the table.
//!
//! The lines (kept in [`LINES`]): every scheduling row at most half tokio's
//! time; every I/O row no slower than tokio and within 10 % of the floor
//! (the lower of `floor` and `floor-epoll`); every callback row at least 20
//! times uvloop. Each check compares medians, as the table's ratios do, and
//! also says whether the runs' spreads overlap: the line drawn from the
//! peer's fastest and slowest runs against aio's fastest and slowest. A
//! target met or missed inside that overlap is one the next run may turn
//! around; the section says so rather than pretending to a precision this
//! machine's noise does not give.

use std::fmt::Write as _;

/// A runner's figures for one workload: the median and the spread of its
/// counted runs, in the same unit as aio's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Figures {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

/// One workload, with what each runner measured (`None` where it measured
/// nothing: unsupported, unavailable or failed).
#[derive(Debug, Clone)]
pub(crate) struct Row<'a> {
    pub(crate) workload: &'a str,
    pub(crate) runners: Vec<(&'static str, Option<Figures>)>,
}

/// A line aio aims for on some rows: the peer's median over aio's at least
/// `at_least`.
#[derive(Debug)]
struct Line {
    /// What the line means, as the report states it.
    says: &'static str,
    /// The ratio column it reads, as the report writes it.
    ratio: &'static str,
    /// The runners it compares with; with more than one, the fastest (the
    /// floor is the lower of its two versions).
    peers: &'static [&'static str],
    at_least: f64,
    /// The workloads it applies to.
    workloads: &'static [&'static str],
}

/// Rows where aio's side is its scheduler: callbacks, tasks, timers, runs.
const SCHEDULING: &[&str] = &[
    "call_soon_chain",
    "yield",
    "spawn_await",
    "timers",
    "threadsafe",
    "run_overhead",
    "timer_cancel",
];

/// Rows bound by system calls: sockets and processes.
const IO: &[&str] = &[
    "tcp_pingpong",
    "tcp_echo",
    "tcp_echo_64k",
    "tcp_churn",
    "udp_pingpong",
    "subprocess",
    "subprocess_16",
];

/// Rows where aio runs plain callbacks (`call_soon`, `call_soon_threadsafe`,
/// `call_later` and `cancel`), as uvloop does.
const CALLBACKS: &[&str] = &["call_soon_chain", "threadsafe", "timer_cancel"];

/// Rows that weigh memory: reported, with no line to hold.
const MEMORY: &[&str] = &["task_bytes", "timer_bytes", "idle_conn_bytes"];

const LINES: &[Line] = &[
    Line {
        says: "at most half tokio's time",
        ratio: "tokio/aio ≥ 2",
        peers: &["tokio"],
        at_least: 2.0,
        workloads: SCHEDULING,
    },
    Line {
        says: "at least 20 times uvloop",
        ratio: "uvloop/aio ≥ 20",
        peers: &["uvloop"],
        at_least: 20.0,
        workloads: CALLBACKS,
    },
    Line {
        says: "no slower than tokio",
        ratio: "tokio/aio ≥ 1",
        peers: &["tokio"],
        at_least: 1.0,
        workloads: IO,
    },
    Line {
        says: "within 10 % of the floor",
        ratio: "floor/aio ≥ 0.91",
        peers: &["floor", "floor-epoll"],
        at_least: 1.0 / 1.1,
        workloads: IO,
    },
];

/// How a row stands against one line.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// The peer's median over aio's, and whether aio's spread and the line's
    /// overlap.
    Measured { ratio: f64, overlap: bool },
    /// Which runner measured nothing.
    NotMeasured(&'static str),
}

/// One check: a row against a line.
#[derive(Debug)]
struct Check<'a> {
    workload: &'a str,
    line: &'static Line,
    verdict: Verdict,
}

impl Check<'_> {
    fn met(&self) -> bool {
        matches!(self.verdict, Verdict::Measured { ratio, .. } if ratio >= self.line.at_least)
    }

    fn describe(&self) -> String {
        match self.verdict {
            Verdict::NotMeasured(runner) => format!("not measured ({runner} has no figure)"),
            Verdict::Measured { ratio, overlap } => {
                let spread = if overlap { ", inside the runs' spread" } else { "" };
                if ratio >= self.line.at_least {
                    format!("met{spread}")
                } else {
                    // How much slower aio's median is than the line allows.
                    let over = (self.line.at_least / ratio - 1.0) * 100.0;
                    let over = if over < 0.05 {
                        "less than 0.1 %".to_owned()
                    } else {
                        format!("{over:.1} %")
                    };
                    format!("missed: aio {over} over the line{spread}")
                }
            }
        }
    }
}

/// Checks `row` against every line that applies to it.
fn check<'a>(row: &Row<'a>) -> Vec<Check<'a>> {
    let figures = |name: &str| {
        row.runners
            .iter()
            .find(|(runner, _)| *runner == name)
            .and_then(|(_, figures)| *figures)
    };
    LINES
        .iter()
        .filter(|line| line.workloads.contains(&row.workload))
        .map(|line| {
            let peer = line
                .peers
                .iter()
                .filter_map(|name| figures(name))
                .min_by(|a, b| a.median.total_cmp(&b.median));
            let verdict = match (figures("aio").filter(|aio| aio.median > 0.0), peer) {
                (None, _) => Verdict::NotMeasured("aio"),
                (Some(_), None) => Verdict::NotMeasured(line.peers[0]),
                (Some(aio), Some(peer)) => {
                    // The line in aio's terms: the most time aio may take.
                    let (line_min, line_max) = (peer.min / line.at_least, peer.max / line.at_least);
                    Verdict::Measured {
                        ratio: peer.median / aio.median,
                        overlap: aio.min <= line_max && line_min <= aio.max,
                    }
                }
            };
            Check {
                workload: row.workload,
                line,
                verdict,
            }
        })
        .collect()
}

/// The section, in Markdown, and a one-line summary for the terminal.
/// `quick` says the run was `--quick`, whose tenth of the counts weighs each
/// run's fixed costs (a thread started, a first child) ten times as much.
pub(crate) fn render(rows: &[Row<'_>], quick: bool) -> (String, String) {
    let checks: Vec<Check<'_>> = rows.iter().flat_map(check).collect();
    let unknown: Vec<&str> = rows
        .iter()
        .map(|row| row.workload)
        .filter(|workload| {
            !MEMORY.contains(workload) && !LINES.iter().any(|line| line.workloads.contains(workload))
        })
        .collect();

    let mut section = format!(
        "## The lead\n\n\
         The lines aio aims for: every scheduling row at most half tokio's time, \
         every I/O row no slower than tokio and within 10 % of the floor (the lower \
         of `floor` and `floor-epoll`), every callback row (`call_soon_chain`, \
         `threadsafe`, `timer_cancel`) at least 20 times uvloop. Each check reads the \
         medians, as the ratio columns do. \"Inside the runs' spread\" means aio's \
         fastest and slowest runs overlap the line drawn from the peer's fastest and \
         slowest: the next run may fall on the other side. The memory rows have no \
         line.\n\n\
         {quick}\
         | workload | line | ratio | needs | verdict |\n\
         |---|---|--:|---|---|\n",
        quick = if quick {
            "This was a `--quick` run: a tenth of the counts, so each run's fixed costs \
             weigh ten times as much as in a full one. The lines are meant for full \
             runs.\n\n"
        } else {
            ""
        },
    );
    for check in &checks {
        let ratio = match check.verdict {
            Verdict::Measured { ratio, .. } => format!("{ratio:.2}"),
            Verdict::NotMeasured(_) => "–".to_owned(),
        };
        let _ = writeln!(
            section,
            "| {} | {} | {ratio} | {} | {} |",
            check.workload,
            check.line.says,
            check.line.ratio,
            check.describe()
        );
    }

    let met = checks.iter().filter(|check| check.met()).count();
    let mut summary = format!(
        "lead{}: {met} of {} checks met",
        if quick { " (quick run)" } else { "" },
        checks.len()
    );
    let missed: Vec<String> = checks
        .iter()
        .filter(|check| !check.met())
        .map(|check| format!("{} ({}): {}", check.workload, check.line.says, check.describe()))
        .collect();
    if !missed.is_empty() {
        let _ = write!(summary, "; not met: {}", missed.join("; "));
    }
    if !unknown.is_empty() {
        let _ = write!(summary, "; no line known for: {}", unknown.join(", "));
    }
    let _ = writeln!(section, "\n{}.", capitalised(&summary));
    (section, summary)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(median: f64, min: f64, max: f64) -> Option<Figures> {
        Some(Figures { median, min, max })
    }

    fn row<'a>(workload: &'a str, runners: &[(&'static str, Option<Figures>)]) -> Row<'a> {
        Row {
            workload,
            runners: runners.to_vec(),
        }
    }

    #[test]
    fn a_scheduling_row_needs_half_of_tokio_and_a_callback_row_twenty_times_uvloop() {
        let rows = [row(
            "call_soon_chain",
            &[
                ("aio", figures(25.0, 24.0, 27.0)),
                ("tokio", figures(120.0, 118.0, 130.0)),
                ("uvloop", figures(450.0, 440.0, 460.0)),
            ],
        )];
        let checks = check(&rows[0]);
        assert_eq!(checks.len(), 2);
        assert!(checks[0].met(), "{:?}", checks[0]);
        assert_eq!(checks[0].line.says, "at most half tokio's time");
        assert_eq!(
            checks[0].verdict,
            Verdict::Measured {
                ratio: 4.8,
                overlap: false
            }
        );
        // 450 / 25 = 18: 11.1 % over the line (aio may take 22.5).
        assert!(!checks[1].met());
        assert_eq!(checks[1].describe(), "missed: aio 11.1 % over the line");
        let tie = check(&row(
            "subprocess",
            &[
                ("aio", figures(751_143.0, 738_735.0, 773_512.0)),
                ("tokio", figures(751_034.0, 743_383.0, 783_236.0)),
            ],
        ));
        assert_eq!(
            tie[0].describe(),
            "missed: aio less than 0.1 % over the line, inside the runs' spread"
        );
        let (section, summary) = render(&rows, false);
        assert!(
            section.contains("| call_soon_chain | at least 20 times uvloop | 18.00 |"),
            "{section}"
        );
        assert_eq!(
            summary,
            "lead: 1 of 2 checks met; not met: call_soon_chain (at least 20 times uvloop): missed: aio 11.1 % over the line"
        );
    }

    #[test]
    fn an_io_row_reads_the_lower_floor_and_says_when_the_spreads_overlap() {
        let rows = [row(
            "tcp_churn",
            &[
                ("aio", figures(15_000.0, 14_400.0, 16_000.0)),
                ("tokio", figures(17_000.0, 16_700.0, 17_700.0)),
                ("floor", figures(14_800.0, 14_500.0, 15_000.0)),
                ("floor-epoll", figures(14_200.0, 13_600.0, 14_400.0)),
            ],
        )];
        let checks = check(&rows[0]);
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].describe(), "met");
        // The line is floor-epoll's 14200 × 1.1 = 15620, its spread
        // 14960–15840: aio's 14400–16000 overlaps it.
        let Verdict::Measured { ratio, overlap } = checks[1].verdict else {
            panic!("{:?}", checks[1]);
        };
        assert!((ratio - 14_200.0 / 15_000.0).abs() < 1e-9);
        assert!(overlap);
        assert_eq!(checks[1].describe(), "met, inside the runs' spread");
    }

    #[test]
    fn a_missing_peer_or_aio_is_said_and_unknown_rows_are_named() {
        let rows = [
            row(
                "threadsafe",
                &[
                    ("aio", figures(22.0, 13.0, 24.0)),
                    ("tokio", figures(700.0, 690.0, 800.0)),
                    ("uvloop", None),
                ],
            ),
            row("subprocess", &[("aio", None), ("tokio", figures(1.0, 1.0, 1.0))]),
            row("task_bytes", &[("aio", figures(125.0, 125.0, 125.0))]),
            row("new_workload", &[("aio", figures(1.0, 1.0, 1.0))]),
        ];
        let (section, summary) = render(&rows, false);
        assert!(
            section.contains("not measured (uvloop has no figure)"),
            "{section}"
        );
        assert!(
            section.contains("| subprocess | no slower than tokio | – |"),
            "{section}"
        );
        assert!(section.contains("not measured (aio has no figure)"), "{section}");
        assert!(!section.contains("task_bytes"), "{section}");
        assert!(summary.starts_with("lead: 1 of 4 checks met"), "{summary}");
        assert!(summary.ends_with("no line known for: new_workload"), "{summary}");
        let (section, summary) = render(&rows, true);
        assert!(section.contains("This was a `--quick` run"), "{section}");
        assert!(summary.starts_with("lead (quick run): 1 of 4"), "{summary}");
    }
}
