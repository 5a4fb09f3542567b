//! `cargo xtask bench [--quick] [--strace] [WORKLOAD...]`: builds
//! `aio-benches` in release, runs every workload on every runner as a
//! process of its own, and reports per-operation medians (with min–max) and
//! the ratio of each peer's median to aio's, on stdout and in
//! `target/bench/report.md`, with a section checking each row against the
//! lines aio aims for (see `bench/lead.rs`). With `--strace`, each workload
//! also runs once per runner under `strace -f -c`, and the report gets the
//! system calls per operation (see `strace.rs`).
//!
//! The columns come from [`RUNNERS`], a plain table of command lines: the
//! Rust runtimes are `aio-bench` (from `benches/`), CPython's asyncio and
//! uvloop are `benches/python/aio_bench.py` run by the interpreter of a
//! virtualenv the task makes in `target/bench/venv` (see `bench/python.rs`).
//! A column whose program cannot be had (no Python, no uvloop) reads
//! `n/a: <why>` and the others still run. The ratios are also drawn, as
//! `target/bench/ratios.svg` (see `bench/chart.rs`).
//! The protocol a runner follows: it is started with its command line plus
//! the workload name, plus `--quick` in quick mode; it prints one line
//! `workload=<name> runtime=<rt> ns=<total> ops=<count>[ bytes_per_op=<n>]`,
//! or `unsupported` when it has no such workload; a non-zero exit is a
//! failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{TaskError, cargo, display_command, strace, workspace_root};

mod chart;
mod lead;
mod python;

/// A column of the report: a program that runs one workload once.
#[derive(Debug)]
struct Runner {
    /// The column's name.
    name: &'static str,
    /// The command line, before the workload name; [`BENCH_BINARY`] stands
    /// for the freshly built `aio-bench` and [`PYTHON`] for the virtualenv's
    /// interpreter. Relative paths are relative to the workspace root, where
    /// runners are started.
    command: &'static [&'static str],
    /// What the command needs besides the built binary.
    needs: Needs,
}

/// What a runner needs that the task may fail to provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Only the freshly built `aio-bench`.
    BenchBinary,
    /// The virtualenv's Python.
    Python,
    /// The virtualenv's Python with uvloop installed.
    Uvloop,
}

/// Placeholder for the path of the `aio-bench` binary built by the task.
const BENCH_BINARY: &str = "{aio-bench}";
/// Placeholder for the virtualenv's Python interpreter.
const PYTHON: &str = "{python}";
/// The Python runners' script, relative to the workspace root.
const PYTHON_SCRIPT: &str = "benches/python/aio_bench.py";

/// The runners, baseline first: every ratio in the report is to the first.
const RUNNERS: &[Runner] = &[
    Runner {
        name: "aio",
        command: &[BENCH_BINARY, "aio"],
        needs: Needs::BenchBinary,
    },
    Runner {
        name: "tokio",
        command: &[BENCH_BINARY, "tokio"],
        needs: Needs::BenchBinary,
    },
    Runner {
        name: "async-executor",
        command: &[BENCH_BINARY, "async-executor"],
        needs: Needs::BenchBinary,
    },
    Runner {
        name: "floor",
        command: &[BENCH_BINARY, "floor"],
        needs: Needs::BenchBinary,
    },
    Runner {
        name: "floor-epoll",
        command: &[BENCH_BINARY, "floor-epoll"],
        needs: Needs::BenchBinary,
    },
    Runner {
        name: "floor-blocking",
        command: &[BENCH_BINARY, "floor-blocking"],
        needs: Needs::BenchBinary,
    },
    Runner {
        name: "asyncio",
        command: &[PYTHON, PYTHON_SCRIPT, "asyncio"],
        needs: Needs::Python,
    },
    Runner {
        name: "uvloop",
        command: &[PYTHON, PYTHON_SCRIPT, "uvloop"],
        needs: Needs::Uvloop,
    },
];

/// What the runners' command lines stand on: the built binary and, for the
/// Python columns, the virtualenv (or why there is none).
#[derive(Debug)]
struct Programs {
    bench_binary: PathBuf,
    python: Result<python::Environment, python::Unavailable>,
}

impl Programs {
    /// Why `runner` cannot run here, if it cannot.
    fn unavailable(&self, runner: &Runner) -> Option<&python::Unavailable> {
        match (runner.needs, &self.python) {
            (Needs::BenchBinary, _) => None,
            (Needs::Python | Needs::Uvloop, Err(why)) => Some(why),
            (Needs::Python, Ok(_)) => None,
            (Needs::Uvloop, Ok(environment)) => environment.uvloop.as_ref().err(),
        }
    }

    /// The Python and uvloop versions, or why they are missing, for the
    /// report (one line: the reasons' own lines are joined).
    fn python_line(&self) -> String {
        let one_line =
            |why: &python::Unavailable| why.detail.lines().map(str::trim).collect::<Vec<_>>().join(" / ");
        match &self.python {
            Ok(environment) => {
                let uvloop = match &environment.uvloop {
                    Ok(version) => format!("uvloop {version}"),
                    Err(why) => format!("uvloop unavailable ({})", one_line(why)),
                };
                format!(
                    "{} in a virtualenv ({}), {uvloop}",
                    environment.version,
                    environment.interpreter.display()
                )
            }
            Err(why) => format!("unavailable ({})", one_line(why)),
        }
    }
}

/// Runs per workload and runner discarded before counting: the first process
/// pays for cold page caches and CPU frequency ramps.
const WARM_UP_RUNS: usize = 1;
/// Runs per workload and runner that are counted: seven, so that one run
/// caught by this shared machine's slow spells moves a median less than
/// with five (a full run takes about six minutes on two cores).
const COUNTED_RUNS: usize = 7;
/// Counted runs in quick mode.
const QUICK_COUNTED_RUNS: usize = 3;

/// A single run never legitimately takes this long; past it the runner is
/// considered hung and killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// What `cargo xtask bench` was asked to do.
#[derive(Debug)]
pub(crate) struct Options {
    quick: bool,
    strace: bool,
    workloads: Vec<String>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Options, TaskError> {
        let mut options = Options {
            quick: false,
            strace: false,
            workloads: Vec::new(),
        };
        for arg in args {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--strace" => options.strace = true,
                flag if flag.starts_with('-') => {
                    return Err(TaskError::usage(format!(
                        "`bench` does not know the option `{flag}`"
                    )));
                }
                workload => options.workloads.push(workload.to_owned()),
            }
        }
        Ok(options)
    }

    fn counted_runs(&self) -> usize {
        if self.quick {
            QUICK_COUNTED_RUNS
        } else {
            COUNTED_RUNS
        }
    }
}

pub(crate) fn run(options: &Options) -> Result<(), TaskError> {
    let bench_binary = build_bench_binary()?;
    let workloads = choose_workloads(&bench_binary, &options.workloads)?;
    let report_path = report_path(&bench_binary);
    let report_dir = report_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let python = python::prepare(&report_dir.join("venv"));
    let programs = Programs { bench_binary, python };
    for runner in RUNNERS {
        if let Some(why) = programs.unavailable(runner) {
            eprintln!("{}: n/a: {}", runner.name, why.detail);
        }
    }

    let mut rows = Vec::with_capacity(workloads.len());
    for workload in &workloads {
        rows.push(measure_workload(&programs, workload, options));
    }

    let table = render_table(&rows);
    println!("\n{table}");
    let (lead, lead_summary) = lead::render(&lead_rows(&rows), options.quick);
    println!("\n{lead_summary}");

    let syscalls = if options.strace {
        count_syscalls(&programs, &workloads, &report_path)
    } else {
        String::new()
    };
    let names: Vec<&str> = RUNNERS.iter().map(|runner| runner.name).collect();
    let chart_path = report_dir.join("ratios.svg");
    let chart = chart::render(&names, &chart_rows(&rows));
    let report = render_report(&table, &lead, options, &programs, &syscalls);
    std::fs::create_dir_all(&report_dir)
        .and_then(|()| std::fs::write(&chart_path, chart))
        .and_then(|()| std::fs::write(&report_path, report))
        .map_err(|error| TaskError::failed(format!("could not write {}: {error}", report_path.display())))?;
    println!(
        "report written to {} (chart: {})",
        report_path.display(),
        chart_path.display()
    );

    let failures: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            row.cells
                .iter()
                .zip(RUNNERS)
                .filter_map(|(cell, runner)| match cell {
                    Cell::Failed(why) => Some(format!("{} on {}: {why}", row.workload, runner.name)),
                    _ => None,
                })
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(TaskError::failed(format!(
            "some runs failed:\n  {}",
            failures.join("\n  ")
        )))
    }
}

/// Builds `aio-bench` in release and returns its path, as cargo reports it
/// (so that `CARGO_TARGET_DIR` and `build.target-dir` are honoured).
fn build_bench_binary() -> Result<PathBuf, TaskError> {
    let mut command = cargo([
        "build",
        "--release",
        "-p",
        "aio-benches",
        "--bin",
        "aio-bench",
        "--message-format=json-render-diagnostics",
    ]);
    let shown = display_command(&command);
    println!("$ {shown}");
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| TaskError::failed(format!("could not start `{shown}`: {error}")))?;
    if !output.status.success() {
        return Err(TaskError::failed(format!("`{shown}` failed ({})", output.status)));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(r#""reason":"compiler-artifact""#))
        .filter_map(|line| json_string_field(line, "executable"))
        .map(PathBuf::from)
        .find(|path| path.file_stem().is_some_and(|stem| stem == "aio-bench"))
        .ok_or_else(|| TaskError::failed(format!("`{shown}` did not report the aio-bench executable")))
}

/// The value of the string field `key` in one line of cargo's JSON output.
/// Enough JSON for cargo's messages, which is all xtask reads: no dependency
/// on a JSON crate for one field.
fn json_string_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = line[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                escaped => value.push(escaped),
            },
            c => value.push(c),
        }
    }
}

/// The workloads to run: those named on the command line, else every one
/// `aio-bench --list` knows, in its order.
fn choose_workloads(bench_binary: &Path, asked: &[String]) -> Result<Vec<String>, TaskError> {
    let output = Command::new(bench_binary)
        .arg("--list")
        .output()
        .map_err(|error| TaskError::failed(format!("could not run {}: {error}", bench_binary.display())))?;
    if !output.status.success() {
        return Err(TaskError::failed(format!(
            "`aio-bench --list` failed ({})",
            output.status
        )));
    }
    let known: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if asked.is_empty() {
        return Ok(known);
    }
    match asked.iter().find(|workload| !known.contains(workload)) {
        Some(unknown) => Err(TaskError::usage(format!(
            "unknown workload `{unknown}`; known: {}",
            known.join(", ")
        ))),
        None => Ok(asked.to_vec()),
    }
}

/// What a runner measures: time per operation, or live heap bytes per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    NanosPerOp,
    BytesPerOp,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::NanosPerOp => "ns/op",
            Unit::BytesPerOp => "B/op",
        }
    }
}

/// One counted run, reduced to a per-operation figure.
#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    unit: Unit,
}

/// The median and the spread of a runner's counted runs.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    unit: Unit,
}

impl Stats {
    fn of(samples: &[Sample]) -> Option<Stats> {
        let unit = samples.first()?.unit;
        let mut values: Vec<f64> = samples.iter().map(|sample| sample.value).collect();
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        let median = if values.len().is_multiple_of(2) {
            (values[middle - 1] + values[middle]) / 2.0
        } else {
            values[middle]
        };
        Some(Stats {
            median,
            min: values[0],
            max: values[values.len() - 1],
            unit,
        })
    }
}

/// One cell of the table.
#[derive(Debug)]
enum Cell {
    Measured(Stats),
    /// The runner has no such workload.
    Unsupported,
    /// The runner's program could not be had (the short reason).
    Unavailable(String),
    Failed(String),
}

/// One line of the table: a workload on every runner, in [`RUNNERS`] order.
#[derive(Debug)]
struct Row {
    workload: String,
    cells: Vec<Cell>,
}

/// Runs `workload` on every runner: warm-up rounds, then counted rounds, each
/// round visiting every runner once, starting one runner further each round
/// so that none always runs first (or always right after another).
fn measure_workload(programs: &Programs, workload: &str, options: &Options) -> Row {
    let rounds = WARM_UP_RUNS + options.counted_runs();
    let mut samples: Vec<Vec<Sample>> = RUNNERS.iter().map(|_| Vec::new()).collect();
    let mut settled: Vec<Option<Cell>> = RUNNERS
        .iter()
        .map(|runner| {
            programs
                .unavailable(runner)
                .map(|why| Cell::Unavailable(why.short.clone()))
        })
        .collect();

    for round in 0..rounds {
        let warm_up = round < WARM_UP_RUNS;
        for offset in 0..RUNNERS.len() {
            let index = (round + offset) % RUNNERS.len();
            if settled[index].is_some() {
                continue;
            }
            let runner = &RUNNERS[index];
            let label = if warm_up {
                "warm-up".to_owned()
            } else {
                format!("run {}/{}", round - WARM_UP_RUNS + 1, options.counted_runs())
            };
            match run_once(runner, programs, workload, options.quick) {
                Ok(Some(sample)) => {
                    eprintln!(
                        "{workload:>16} {:<16} {label:<9} {} {}",
                        runner.name,
                        format_value(sample.value),
                        sample.unit.label()
                    );
                    if !warm_up {
                        samples[index].push(sample);
                    }
                }
                Ok(None) => {
                    eprintln!("{workload:>16} {:<16} unsupported", runner.name);
                    settled[index] = Some(Cell::Unsupported);
                }
                Err(why) => {
                    eprintln!("{workload:>16} {:<16} FAILED: {why}", runner.name);
                    settled[index] = Some(Cell::Failed(why));
                }
            }
        }
    }

    let cells = settled
        .into_iter()
        .zip(&samples)
        .map(|(settled, samples)| {
            settled.unwrap_or_else(|| match Stats::of(samples) {
                Some(stats) if samples.iter().all(|sample| sample.unit == stats.unit) => {
                    Cell::Measured(stats)
                }
                Some(_) => Cell::Failed("runs disagree on the unit".to_owned()),
                None => Cell::Failed("no counted run".to_owned()),
            })
        })
        .collect();
    Row {
        workload: workload.to_owned(),
        cells,
    }
}

/// Runs `workload` once on `runner`: `Ok(None)` when the runner has no such
/// workload, `Err` with the reason when the run fails.
fn run_once(
    runner: &Runner,
    programs: &Programs,
    workload: &str,
    quick: bool,
) -> Result<Option<Sample>, String> {
    let mut command = runner_command(runner, programs, workload, quick, &[])?;
    let shown = display_command(&command);
    let (stdout, stderr) =
        run_with_timeout(&mut command, RUN_TIMEOUT).map_err(|why| format!("`{shown}`: {why}"))?;
    parse_report_line(&stdout, workload).map_err(|why| {
        let stderr = stderr.trim();
        if stderr.is_empty() {
            format!("`{shown}`: {why}")
        } else {
            format!("`{shown}`: {why}\n{stderr}")
        }
    })
}

/// The command line that runs `workload` once on `runner`, behind `wrapper`
/// (a program and its arguments, such as `strace -c`) when there is one.
fn runner_command(
    runner: &Runner,
    programs: &Programs,
    workload: &str,
    quick: bool,
    wrapper: &[std::ffi::OsString],
) -> Result<Command, String> {
    if let Some(why) = programs.unavailable(runner) {
        return Err(why.detail.clone());
    }
    let python = programs
        .python
        .as_ref()
        .map(|environment| environment.interpreter.as_os_str());
    let runner_args = runner.command.iter().map(|arg| match *arg {
        BENCH_BINARY => programs.bench_binary.as_os_str().to_owned(),
        PYTHON => python.unwrap_or_default().to_owned(),
        _ => arg.into(),
    });
    let mut args = wrapper.iter().cloned().chain(runner_args);
    let program = args.next().ok_or("the runner has an empty command line")?;
    let mut command = Command::new(program);
    command.args(args).arg(workload).current_dir(workspace_root());
    if quick {
        command.arg("--quick");
    }
    Ok(command)
}

/// Runs every workload once per runner under `strace -f -c`, at the full
/// count, keeps strace's summaries in `strace/` beside the report, and
/// returns the report's section on them; a note instead when strace cannot
/// be run.
fn count_syscalls(programs: &Programs, workloads: &[String], report_path: &Path) -> String {
    if !strace::available() {
        let note = "strace is not installed (`apt-get install -y strace`), so the system calls \
                    were not counted.";
        eprintln!("{note}");
        return format!("## System calls per operation\n\n{note}\n");
    }
    let directory = report_path.parent().unwrap_or(Path::new(".")).join("strace");
    if let Err(error) = std::fs::create_dir_all(&directory) {
        let note = format!("could not create {}: {error}", directory.display());
        eprintln!("{note}");
        return format!("## System calls per operation\n\n{note}\n");
    }

    let mut counted = Vec::with_capacity(workloads.len());
    for workload in workloads {
        let mut ops = Vec::with_capacity(RUNNERS.len());
        let mut per_runner = Vec::with_capacity(RUNNERS.len());
        for runner in RUNNERS {
            let output = directory.join(format!("{workload}.{}.txt", runner.name));
            if programs.unavailable(runner).is_some() {
                ops.push(None);
                per_runner.push(Ok(None));
                continue;
            }
            match strace_once(runner, programs, workload, &output) {
                Ok(Some((run_ops, summary))) => {
                    let total: f64 = summary.values().map(|count| count.calls).sum();
                    eprintln!(
                        "{workload:>16} {:<16} strace    {} syscalls/op",
                        runner.name,
                        format_value(total)
                    );
                    ops.push(Some(run_ops));
                    per_runner.push(Ok(Some(summary)));
                }
                Ok(None) => {
                    ops.push(None);
                    per_runner.push(Ok(None));
                }
                Err(why) => {
                    eprintln!("{workload:>16} {:<16} strace FAILED: {why}", runner.name);
                    ops.push(None);
                    per_runner.push(Err(why));
                }
            }
        }
        counted.push(strace::WorkloadCounts {
            workload: workload.clone(),
            ops,
            per_runner,
        });
    }
    let names: Vec<&str> = RUNNERS.iter().map(|runner| runner.name).collect();
    strace::render_section(&names, &counted)
}

/// One run of `workload` on `runner` under `strace -f -c -o output`: the
/// run's operation count and its syscalls per operation; `Ok(None)` when the
/// runner has no such workload.
fn strace_once(
    runner: &Runner,
    programs: &Programs,
    workload: &str,
    output: &Path,
) -> Result<Option<(u64, strace::Summary)>, String> {
    let wrapper: Vec<std::ffi::OsString> = vec![
        "strace".into(),
        "-f".into(),
        "-c".into(),
        "-o".into(),
        output.as_os_str().to_owned(),
    ];
    let mut command = runner_command(runner, programs, workload, false, &wrapper)?;
    let shown = display_command(&command);
    let (stdout, _) =
        run_with_timeout(&mut command, RUN_TIMEOUT).map_err(|why| format!("`{shown}`: {why}"))?;
    if parse_report_line(&stdout, workload)
        .map_err(|why| format!("`{shown}`: {why}"))?
        .is_none()
    {
        return Ok(None);
    }
    let ops = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with("workload="))
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("ops="))
        })
        .and_then(|ops| ops.parse::<u64>().ok())
        .ok_or_else(|| format!("`{shown}`: no `ops=` in its output {stdout:?}"))?;
    let text = std::fs::read_to_string(output)
        .map_err(|error| format!("could not read {}: {error}", output.display()))?;
    let summary = strace::parse_summary(&text)?;
    Ok(Some((ops, strace::per_op(&summary, ops))))
}

/// Runs `command` to completion, collecting its output; kills it after
/// `timeout`.
fn run_with_timeout(command: &mut Command, timeout: Duration) -> Result<(String, String), String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("could not start: {error}"))?;
    // Both pipes are drained by threads of their own, so a chatty child can
    // never fill one and block while this thread waits for it to exit.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                // A read error only truncates what is shown.
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>),
    );

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // Killing an exited child is harmless, so the race with its
                // exit does not matter.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no result after {timeout:?}; killed"));
            }
            Err(error) => return Err(format!("could not wait for it: {error}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if status.success() {
        Ok((stdout, stderr))
    } else {
        let stderr = stderr.trim();
        Err(format!(
            "{status}{}{stderr}",
            if stderr.is_empty() { "" } else { "\n" }
        ))
    }
}

/// Reads a runner's report line (see the module docs).
fn parse_report_line(stdout: &str, workload: &str) -> Result<Option<Sample>, String> {
    if stdout.lines().any(|line| line.trim() == "unsupported") {
        return Ok(None);
    }
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with("workload="))
        .ok_or_else(|| format!("no `workload=` line in its output {stdout:?}"))?;
    let fields: BTreeMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .collect();
    let field = |key: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| format!("no `{key}=` in {line:?}"))
    };
    let number = |key: &str| -> Result<f64, String> {
        field(key)?
            .parse::<f64>()
            .map_err(|error| format!("bad `{key}=` in {line:?}: {error}"))
    };

    if field("workload")? != workload {
        return Err(format!("asked for {workload}, got {line:?}"));
    }
    if let Some(bytes) = fields.get("bytes_per_op") {
        let value = bytes
            .parse::<f64>()
            .map_err(|error| format!("bad `bytes_per_op=` in {line:?}: {error}"))?;
        return Ok(Some(Sample {
            value,
            unit: Unit::BytesPerOp,
        }));
    }
    let ops = number("ops")?;
    if ops <= 0.0 {
        return Err(format!("no operations in {line:?}"));
    }
    Ok(Some(Sample {
        value: number("ns")? / ops,
        unit: Unit::NanosPerOp,
    }))
}

/// Three significant figures or so: enough to compare, few enough to read.
fn format_value(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

/// A peer's median over the baseline's, when both were measured in the same
/// unit.
fn ratio(baseline: &Cell, peer: &Cell) -> Option<f64> {
    match (baseline, peer) {
        (Cell::Measured(base), Cell::Measured(peer)) if base.median > 0.0 && base.unit == peer.unit => {
            Some(peer.median / base.median)
        }
        _ => None,
    }
}

/// The rows as the chart draws them: each peer's ratio to the baseline.
fn chart_rows(rows: &[Row]) -> Vec<chart::Row> {
    rows.iter()
        .map(|row| chart::Row {
            workload: row.workload.clone(),
            bytes: row
                .cells
                .iter()
                .any(|cell| matches!(cell, Cell::Measured(stats) if stats.unit == Unit::BytesPerOp)),
            ratios: row.cells[1..]
                .iter()
                .map(|cell| ratio(&row.cells[0], cell))
                .collect(),
        })
        .collect()
}

/// The rows as the lead's checks read them: each runner's figures where it
/// measured the workload in aio's unit.
fn lead_rows(rows: &[Row]) -> Vec<lead::Row<'_>> {
    rows.iter()
        .map(|row| {
            let unit = match &row.cells[0] {
                Cell::Measured(stats) => Some(stats.unit),
                _ => None,
            };
            lead::Row {
                workload: &row.workload,
                runners: RUNNERS
                    .iter()
                    .zip(&row.cells)
                    .map(|(runner, cell)| {
                        let figures = match cell {
                            Cell::Measured(stats) if Some(stats.unit) == unit => Some(lead::Figures {
                                median: stats.median,
                                min: stats.min,
                                max: stats.max,
                            }),
                            _ => None,
                        };
                        (runner.name, figures)
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The table as Markdown, columns padded so that it also reads as plain text.
fn render_table(rows: &[Row]) -> String {
    let baseline = &RUNNERS[0];
    let mut header = vec!["workload".to_owned(), "unit".to_owned()];
    header.extend(
        RUNNERS
            .iter()
            .map(|runner| format!("{} median (min–max)", runner.name)),
    );
    header.extend(
        RUNNERS[1..]
            .iter()
            .map(|peer| format!("{}/{}", peer.name, baseline.name)),
    );

    let mut lines = vec![header];
    for row in rows {
        let unit = row.cells.iter().find_map(|cell| match cell {
            Cell::Measured(stats) => Some(stats.unit.label()),
            _ => None,
        });
        let mut line = vec![row.workload.clone(), unit.unwrap_or("").to_owned()];
        line.extend(row.cells.iter().map(|cell| match cell {
            Cell::Measured(stats) => format!(
                "{} ({}–{})",
                format_value(stats.median),
                format_value(stats.min),
                format_value(stats.max)
            ),
            Cell::Unsupported => "n/a".to_owned(),
            Cell::Unavailable(why) => format!("n/a: {why}"),
            Cell::Failed(_) => "failed".to_owned(),
        }));
        line.extend(
            row.cells[1..]
                .iter()
                .map(|cell| match ratio(&row.cells[0], cell) {
                    Some(ratio) => format!("{ratio:.2}"),
                    None => "–".to_owned(),
                }),
        );
        lines.push(line);
    }

    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            lines
                .iter()
                .map(|line| line[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let render_line = |line: &[String]| {
        let mut text = String::from("|");
        for (column, cell) in line.iter().enumerate() {
            // Names left-aligned, figures right-aligned.
            let padding = " ".repeat(widths[column] - cell.chars().count());
            if column < 2 {
                let _ = write!(text, " {cell}{padding} |");
            } else {
                let _ = write!(text, " {padding}{cell} |");
            }
        }
        text
    };
    let mut table = render_line(&lines[0]);
    table.push_str("\n|");
    for (column, width) in widths.iter().enumerate() {
        let dashes = "-".repeat(*width);
        table.push_str(&if column < 2 {
            format!(" {dashes} |")
        } else {
            format!(" {}: |", &dashes[1..])
        });
    }
    for line in &lines[1..] {
        table.push('\n');
        table.push_str(&render_line(line));
    }
    table
}

/// `target/bench/report.md`, next to the `release` directory the binary
/// was built in.
fn report_path(bench_binary: &Path) -> PathBuf {
    let target_dir = bench_binary
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"));
    target_dir.join("bench").join("report.md")
}

/// The report: what was measured, where, on which commit, the table, the
/// chart, the `lead` section, and `syscalls` (the section `--strace` adds,
/// or nothing).
fn render_report(table: &str, lead: &str, options: &Options, programs: &Programs, syscalls: &str) -> String {
    let machine = Machine::describe();
    let baseline = RUNNERS[0].name;
    let mode = if options.quick {
        format!(
            "quick: timed workloads at a tenth of their counts, {WARM_UP_RUNS} warm-up + {QUICK_COUNTED_RUNS} counted runs"
        )
    } else {
        format!("full: {WARM_UP_RUNS} warm-up + {COUNTED_RUNS} counted runs")
    };
    format!(
        "# aio benchmark report\n\n\
         - commit: {commit}\n\
         - machine: {cpu}, {cores} cores, kernel {kernel}\n\
         - toolchain: {rustc}\n\
         - Python: {python}\n\
         - mode: {mode}; every run is a process of its own, runners alternating\n\n\
         Each cell is the median over the counted runs, per operation (ns/op) or \
         per item (B/op, live heap bytes), with the minimum and maximum in brackets. \
         The ratio columns divide a peer's median by {baseline}'s: above 1 means \
         {baseline} is faster (or smaller). `timers` has a floor: none of its runs \
         can end before its longest sleep (10 ms), which is 100 ns/op at full counts \
         and 1,000 ns/op with --quick.\n\n\
         {table}\n\n\
         ![Each peer's median over {baseline}'s, per workload](ratios.svg)\n\n\
         The chart (`ratios.svg`, next to this report) draws the ratio columns as bars \
         on a logarithmic axis, in powers of ten from a tenth or less to ten or more, \
         as far as the figures reach but never past 1/100 and 1,000: a bar to the right \
         of the line at 1 is a peer slower (or larger) than {baseline}, to the left a \
         peer faster (or smaller). A bar that would run past the axis stops at its end \
         with an arrowhead, and every bar is labelled with its exact ratio.\n\n\
         Workloads and their mapping onto each runtime: `benches/src/bin/aio-bench.rs`. \
         The `floor` columns are no runtime: the least work the OS allows, by hand \
         (`benches/src/floor.rs`, `benches/src/floor_churn_udp.rs`, \
         `benches/src/subprocess.rs`). For the I/O workloads (TCP, `tcp_churn`, \
         `udp_pingpong`) they are a single-threaded event loop running the workload's \
         program as a perfect readiness-based runtime would: non-blocking sockets \
         registered once, edge-triggered (for reading only where the endpoint never waits to \
         write: the UDP sockets and the listener); each endpoint tries its operation first and \
         gives way on `EAGAIN`; the loop waits only when every endpoint has given way. \
         `floor` waits with `polling`'s `Poller::wait` (five system calls per wait on \
         Linux with polling 3.11) and `floor-epoll` with one `epoll_wait`, as mio and \
         aio's Linux selector do: the lower of the two is the floor. For processes the \
         floor is `posix_spawnp` + `waitpid`. `floor-blocking`, for `tcp_churn` and \
         `udp_pingpong` only, is a reference, not a target: blocking sockets in program \
         order, no poller, never a call that would block or a wait, fewer system calls \
         than any event loop can make. `n/a` where a floor has no such workload. \
         `idle_conn_bytes` is per \
         connected pair, both ends in the process. `asyncio` and `uvloop` run `benches/python/aio_bench.py` (CPython's \
         selector loop, and uvloop's); `n/a: <why>` where their Python or uvloop could \
         not be had. Their `task_bytes`, `timer_bytes` and `idle_conn_bytes` are \
         `tracemalloc`'s traced bytes, every allocation Python makes (objects and raw \
         memory), but not what libuv allocates with plain `malloc` under uvloop.\n\n\
         {lead}\
         {syscalls_section}\n\
         ## What each optimisation bought\n\n\
         {optimisations}",
        commit = machine.commit,
        cpu = machine.cpu,
        cores = machine.cores,
        kernel = machine.kernel,
        rustc = machine.rustc,
        python = programs.python_line(),
        optimisations = optimisation_log(),
        syscalls_section = if syscalls.is_empty() {
            String::new()
        } else {
            format!("\n{syscalls}")
        },
    )
}

/// The optimisation log kept by hand beside the benchmarks
/// (`benches/OPTIMISATIONS.md`), for the report.
fn optimisation_log() -> String {
    let path = crate::workspace_root().join("benches").join("OPTIMISATIONS.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| format!("({} could not be read: {err})\n", path.display()))
}

/// Where the figures were taken.
#[derive(Debug)]
struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    rustc: String,
    commit: String,
}

impl Machine {
    fn describe() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let cores = thread::available_parallelism().map(usize::from).unwrap_or(1);
        let kernel = command_output("uname", &["-r"]).unwrap_or_else(|| "unknown".to_owned());
        let rustc = command_output("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned());
        let commit = match command_output("git", &["rev-parse", "--short", "HEAD"]) {
            Some(commit) => {
                let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|status| !status.is_empty());
                if dirty {
                    format!("{commit} (with uncommitted changes)")
                } else {
                    commit
                }
            }
            None => "unknown".to_owned(),
        };
        Machine {
            cpu,
            cores,
            kernel,
            rustc,
            commit,
        }
    }
}

/// The trimmed stdout of a successful command run in the workspace root.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_json() {
        let line = r#"{"reason":"compiler-artifact","executable":"/t/release/aio-bench","fresh":true}"#;
        assert_eq!(
            json_string_field(line, "executable").as_deref(),
            Some("/t/release/aio-bench")
        );
        let escaped = r#"{"executable":"C:\\t\\a\"b\u0041"}"#;
        assert_eq!(
            json_string_field(escaped, "executable").as_deref(),
            Some(r#"C:\t\a"bA"#)
        );
        assert_eq!(json_string_field(r#"{"executable":null}"#, "executable"), None);
    }

    #[test]
    fn parses_timed_and_weighed_lines() {
        let timed = parse_report_line("workload=yield runtime=aio ns=2000 ops=100\n", "yield")
            .unwrap()
            .unwrap();
        assert_eq!((timed.value, timed.unit), (20.0, Unit::NanosPerOp));
        let weighed = parse_report_line(
            "workload=task_bytes runtime=aio ns=5 ops=10 bytes_per_op=96",
            "task_bytes",
        )
        .unwrap()
        .unwrap();
        assert_eq!((weighed.value, weighed.unit), (96.0, Unit::BytesPerOp));
        assert!(parse_report_line("unsupported\n", "yield").unwrap().is_none());
        assert!(parse_report_line("workload=timers runtime=aio ns=1 ops=1", "yield").is_err());
        assert!(parse_report_line("workload=yield runtime=aio ns=1 ops=0", "yield").is_err());
        assert!(parse_report_line("garbage", "yield").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_or_hung_runner_is_reported_not_waited_for() {
        let (stdout, _) =
            run_with_timeout(Command::new("echo").arg("hello"), Duration::from_secs(60)).unwrap();
        assert_eq!(stdout, "hello\n");
        let failed = run_with_timeout(
            Command::new("sh").args(["-c", "echo oops >&2; exit 3"]),
            Duration::from_secs(60),
        );
        let why = failed.unwrap_err();
        assert!(why.contains("exit status: 3") && why.contains("oops"), "{why}");
        let started = Instant::now();
        let hung = run_with_timeout(Command::new("sleep").arg("60"), Duration::from_millis(100));
        assert!(hung.unwrap_err().contains("killed"));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the timeout did not kill the child"
        );
    }

    #[test]
    fn median_and_spread() {
        let samples = |values: &[f64]| -> Vec<Sample> {
            values
                .iter()
                .map(|&value| Sample {
                    value,
                    unit: Unit::NanosPerOp,
                })
                .collect()
        };
        let odd = Stats::of(&samples(&[5.0, 1.0, 3.0])).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (3.0, 1.0, 5.0));
        let even = Stats::of(&samples(&[4.0, 1.0, 3.0, 2.0])).unwrap();
        assert_eq!(even.median, 2.5);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn the_table_has_a_column_per_runner_and_a_ratio_per_peer() {
        let stats = |median: f64| {
            Cell::Measured(Stats {
                median,
                min: median,
                max: median,
                unit: Unit::NanosPerOp,
            })
        };
        let mut cells: Vec<Cell> = (0..RUNNERS.len()).map(|i| stats(10.0 * (i + 1) as f64)).collect();
        cells[RUNNERS.len() - 1] = Cell::Failed("boom".to_owned());
        let table = render_table(&[Row {
            workload: "yield".to_owned(),
            cells,
        }]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let columns = 2 + RUNNERS.len() + RUNNERS.len() - 1;
        for line in &lines {
            assert_eq!(line.matches('|').count(), columns + 1, "{line}");
        }
        assert!(lines[2].contains(" 2.00 |"), "{}", lines[2]);
        assert!(lines[2].contains("failed"), "{}", lines[2]);
    }
}
