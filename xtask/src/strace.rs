//! `cargo xtask bench --strace`: system calls per operation, counted by
//! `strace -f -c`, and the report section that shows them side by side and
//! says where each runtime's calls go.
//!
//! A file of its own because it is a second way of looking at the same
//! runs: `bench.rs` starts the processes (under strace here) and this file
//! reads strace's summary table and renders it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};

/// A syscall's line in strace's summary: calls, and how many failed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Count {
    pub(crate) calls: f64,
    pub(crate) errors: f64,
}

/// Every syscall of one run (all threads), by name.
pub(crate) type Summary = BTreeMap<String, Count>;

/// Whether `strace` can be started at all.
pub(crate) fn available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Reads the table `strace -c` writes:
///
/// ```text
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  24.22    0.087532          10      7999      3999 recvfrom
///  14.41    0.052060          13      4000           sendto
/// ------ ----------- ----------- --------- --------- ----------------
/// 100.00    0.361339          11     32103      8002 total
/// ```
///
/// The `errors` column is blank for syscalls that never failed; the `total`
/// line is left out.
pub(crate) fn parse_summary(text: &str) -> Result<Summary, String> {
    let mut summary = Summary::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some((&name, numbers)) = fields.split_last() else {
            continue;
        };
        if name == "total" || !(4..=5).contains(&numbers.len()) {
            continue;
        }
        // Header and rule lines do not start with a number.
        if numbers[0].parse::<f64>().is_err() {
            continue;
        }
        let number = |index: usize| -> Result<f64, String> {
            numbers
                .get(index)
                .map_or(Ok(0.0), |field| field.parse::<f64>())
                .map_err(|error| format!("bad strace summary line {line:?}: {error}"))
        };
        summary.insert(
            name.to_owned(),
            Count {
                calls: number(3)?,
                errors: number(4)?,
            },
        );
    }
    if summary.is_empty() {
        return Err(format!("no syscall lines in strace's summary {text:?}"));
    }
    Ok(summary)
}

/// The summary of a run of `ops` operations, per operation.
pub(crate) fn per_op(summary: &Summary, ops: u64) -> Summary {
    let ops = ops.max(1) as f64;
    summary
        .iter()
        .map(|(name, count)| {
            let count = Count {
                calls: count.calls / ops,
                errors: count.errors / ops,
            };
            (name.clone(), count)
        })
        .collect()
}

/// What a syscall is for, in the loops measured here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    /// Reading and writing sockets (and making them).
    Sockets,
    /// Waiting for readiness.
    Waits,
    /// What a poller does around its waits: registrations, timers, its
    /// notifier.
    PollerBookkeeping,
    /// Threads parking and waking each other.
    Threads,
    /// Everything else: process start-up, memory, signals.
    Other,
}

impl Group {
    fn of(syscall: &str) -> Group {
        match syscall {
            "recvfrom" | "sendto" | "recvmsg" | "sendmsg" | "readv" | "writev" | "socket" | "connect"
            | "accept" | "accept4" | "bind" | "listen" | "setsockopt" | "getsockopt" | "shutdown" => {
                Group::Sockets
            }
            "epoll_wait" | "epoll_pwait" | "epoll_pwait2" | "poll" | "ppoll" => Group::Waits,
            "epoll_ctl" | "timerfd_settime" | "read" | "write" => Group::PollerBookkeeping,
            "futex" | "sched_yield" | "clone" | "clone3" => Group::Threads,
            _ => Group::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Group::Sockets => "socket I/O",
            Group::Waits => "waits",
            Group::PollerBookkeeping => "poller bookkeeping",
            Group::Threads => "thread wake-ups",
            Group::Other => "other",
        }
    }
}

/// What each syscall seen in these runs does there.
fn role(syscall: &str) -> Option<&'static str> {
    Some(match syscall {
        "recvfrom" => {
            "a socket read (`read` on a std `TcpStream` is `recv`); the failed ones are \
             reads tried first that found nothing (`EAGAIN`), after which the task waits"
        }
        "sendto" => "a socket write (`send`, with `MSG_NOSIGNAL`)",
        "epoll_wait" | "epoll_pwait" | "epoll_pwait2" => "one poll of the loop for readiness",
        "epoll_ctl" => {
            "a registration change. `polling` 3.11 on Linux makes two on every wait: it \
             re-adds its timerfd and re-arms its notifier eventfd, both oneshot. A poller \
             with oneshot sources (async-io) also re-arms a socket for each readiness it waits on"
        }
        "timerfd_settime" => {
            "`polling` 3.11 on Linux sets its timerfd before every wait, even a wait with no \
             timeout (which disarms it)"
        }
        "read" => {
            "outside start-up, an eventfd: `polling`'s `Poller::wait` reads its notifier \
             after every wait, failing (`EAGAIN`) when nobody notified; aio's Linux selector \
             reads its own only when a wake-up came"
        }
        "write" => "an eventfd write: a wake-up of the loop from another thread",
        "futex" => "a thread parking or being woken (a runtime's helper thread)",
        _ => return None,
    })
}

/// One workload's summaries, per operation, one per runner (`None` where
/// the runner has no such workload or its run failed).
#[derive(Debug)]
pub(crate) struct WorkloadCounts {
    pub(crate) workload: String,
    pub(crate) ops: Vec<Option<u64>>,
    pub(crate) per_runner: Vec<Result<Option<Summary>, String>>,
}

/// Rows shown per workload: the syscalls made at least this often per
/// operation by some runner; the rest are summed into `(others)`.
const SHOWN_AT_LEAST: f64 = 0.05;

/// The report's section: per workload, a table of syscalls per operation
/// with a column per runner, then where each runner's calls go.
pub(crate) fn render_section(runners: &[&str], workloads: &[WorkloadCounts]) -> String {
    let mut text = String::from(
        "## System calls per operation\n\n\
         Counted by `strace -f -c` (every thread), one run per runtime at the full count \
         whatever the mode, so that process start-up and connection setup, which are \
         included, are spread over as many operations as possible. A cell reads `calls \
         (failed)` per operation; failures are almost all `EAGAIN` from a non-blocking \
         socket or eventfd. strace slows every system call down, which can change how \
         many events one wait collects, so these are counts, not timings. Raw summaries \
         are next to this report, in `strace/`.\n",
    );
    let mut shown = Vec::new();
    for counts in workloads {
        let _ = write!(text, "\n### {}\n\n", counts.workload);
        text.push_str(&render_workload(runners, counts, &mut shown));
    }

    shown.sort_unstable();
    shown.dedup();
    let explained: Vec<String> = shown
        .iter()
        .filter_map(|name| role(name).map(|role| format!("- `{name}`: {role}.")))
        .collect();
    if !explained.is_empty() {
        text.push_str("\n### What the calls are\n\n");
        text.push_str(&explained.join("\n"));
        text.push('\n');
    }
    text
}

/// One workload's table and groups; adds the syscalls it shows to `shown`.
fn render_workload(runners: &[&str], counts: &WorkloadCounts, shown: &mut Vec<String>) -> String {
    let summaries: Vec<Option<&Summary>> = counts
        .per_runner
        .iter()
        .map(|result| result.as_ref().ok().and_then(Option::as_ref))
        .collect();

    // The syscalls worth a row, most frequent first (by the first runner
    // that has them, the baseline where it ran).
    let mut names: Vec<&str> = summaries
        .iter()
        .flatten()
        .flat_map(|summary| summary.iter())
        .filter(|(_, count)| count.calls >= SHOWN_AT_LEAST)
        .map(|(name, _)| name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let weight = |name: &str| -> f64 {
        summaries
            .iter()
            .flatten()
            .map(|summary| summary.get(name).map_or(0.0, |count| count.calls))
            .fold(0.0, f64::max)
    };
    names.sort_by(|a, b| weight(b).total_cmp(&weight(a)).then(a.cmp(b)));

    let cell = |count: Count| -> String {
        if count.errors >= 0.005 {
            format!("{} ({})", figure(count.calls), figure(count.errors))
        } else {
            figure(count.calls)
        }
    };
    let missing = |index: usize| -> String {
        match &counts.per_runner[index] {
            Ok(None) => "n/a".to_owned(),
            Err(_) => "failed".to_owned(),
            Ok(Some(_)) => "0".to_owned(),
        }
    };

    let mut header = vec!["syscall".to_owned()];
    header.extend(runners.iter().map(|runner| (*runner).to_owned()));
    let mut rows = vec![header];
    let mut total_row = vec!["**total**".to_owned()];
    let mut others_row = vec!["(others)".to_owned()];
    for (index, summary) in summaries.iter().enumerate() {
        match summary {
            Some(summary) => {
                let total = summary.values().fold(Count::default(), |sum, count| Count {
                    calls: sum.calls + count.calls,
                    errors: sum.errors + count.errors,
                });
                let others = summary
                    .iter()
                    .filter(|(name, _)| !names.contains(&name.as_str()))
                    .fold(Count::default(), |sum, (_, count)| Count {
                        calls: sum.calls + count.calls,
                        errors: sum.errors + count.errors,
                    });
                total_row.push(format!("**{}**", cell(total)));
                others_row.push(cell(others));
            }
            None => {
                total_row.push(missing(index));
                others_row.push(missing(index));
            }
        }
    }
    rows.push(total_row);
    for name in &names {
        let mut row = vec![format!("`{name}`")];
        for (index, summary) in summaries.iter().enumerate() {
            row.push(match summary {
                Some(summary) => summary.get(*name).copied().map_or_else(|| "0".to_owned(), cell),
                None => missing(index),
            });
        }
        rows.push(row);
    }
    rows.push(others_row);

    let mut text = String::new();
    for (line, row) in rows.iter().enumerate() {
        text.push_str("| ");
        text.push_str(&row.join(" | "));
        text.push_str(" |\n");
        if line == 0 {
            text.push_str("|---|");
            text.push_str(&"---:|".repeat(runners.len()));
            text.push('\n');
        }
    }

    // Where each runner's calls go, by group.
    text.push_str("\nBy purpose, calls per operation:\n\n");
    for (index, summary) in summaries.iter().enumerate() {
        let Some(summary) = summary else {
            continue;
        };
        let mut groups: BTreeMap<Group, f64> = BTreeMap::new();
        for (name, count) in summary.iter() {
            *groups.entry(Group::of(name)).or_default() += count.calls;
        }
        let parts: Vec<String> = groups
            .iter()
            .filter(|(_, calls)| **calls >= 0.005)
            .map(|(group, calls)| format!("{} {}", group.label(), figure(*calls)))
            .collect();
        let ops = counts.ops[index].map_or_else(String::new, |ops| format!(" (over {ops} operations)"));
        let _ = writeln!(text, "- {}{ops}: {}", runners[index], parts.join(", "));
    }

    shown.extend(names.iter().map(|name| (*name).to_owned()));
    let failures: Vec<String> = counts
        .per_runner
        .iter()
        .zip(runners)
        .filter_map(|(result, runner)| result.as_ref().err().map(|why| format!("- {runner}: {why}")))
        .collect();
    if !failures.is_empty() {
        text.push_str("\nRuns that could not be counted:\n\n");
        text.push_str(&failures.join("\n"));
        text.push('\n');
    }
    text
}

/// Two decimals: counts per operation are small numbers.
fn figure(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ------------------
 24.22    0.087532          10      7999      3999 recvfrom
 14.41    0.052060          13      4000           sendto
 12.16    0.043950          10      4001           epoll_pwait
------ ----------- ----------- --------- --------- ------------------
100.00    0.361339          11     16000      3999 total
";

    #[test]
    fn reads_strace_summaries() {
        let summary = parse_summary(SAMPLE).unwrap();
        assert_eq!(summary.len(), 3);
        assert_eq!(
            summary["recvfrom"],
            Count {
                calls: 7999.0,
                errors: 3999.0
            }
        );
        assert_eq!(summary["sendto"].errors, 0.0);
        assert!(!summary.contains_key("total"));
        assert!(parse_summary("strace: exec: No such file or directory\n").is_err());
    }

    #[test]
    fn the_section_has_a_column_per_runner_and_groups_the_calls() {
        let summary = per_op(&parse_summary(SAMPLE).unwrap(), 2_000);
        assert_eq!(summary["sendto"].calls, 2.0);
        let counts = WorkloadCounts {
            workload: "tcp_pingpong".to_owned(),
            ops: vec![Some(2_000), None, None],
            per_runner: vec![Ok(Some(summary)), Ok(None), Err("boom".to_owned())],
        };
        let section = render_section(&["aio", "floor", "tokio"], &[counts]);
        assert!(section.contains("### tcp_pingpong"), "{section}");
        assert!(
            section.contains("| `recvfrom` | 4.00 (2.00) | n/a | failed |"),
            "{section}"
        );
        assert!(section.contains("| **total** | **8.00 (2.00)** |"), "{section}");
        assert!(
            section.contains("- aio (over 2000 operations): socket I/O 6.00, waits 2.00"),
            "{section}"
        );
        assert!(section.contains("- tokio: boom"), "{section}");
        assert!(section.contains("- `sendto`: a socket write"), "{section}");
    }
}
