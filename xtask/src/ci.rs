//! `cargo xtask ci`: the checks a change must pass, in the order that fails
//! fastest (formatting, then lints, then tests, then the Windows build's
//! lints, then the docs' links on Linux and Windows, then Miri on the
//! platform-independent unsafe code), stopping at the first failure.

use std::process::Command;

use crate::{TaskError, cargo, run_echoed, workspace_root};

/// The cargo invocations of CI, in order.
const STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--check"],
    &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    &["test", "--workspace"],
    // The Windows type-check and lints: every crate and target of the
    // workspace (tests, benches, xtask) must build for Windows, which the
    // Linux build above never looks at; Unix-only suites and workloads
    // reduce to a line saying so.
    &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--target",
        "x86_64-pc-windows-gnu",
        "--",
        "-D",
        "warnings",
    ],
];

pub(crate) fn run() -> Result<(), TaskError> {
    for (index, step) in STEPS.iter().enumerate() {
        let mut command = cargo(*step);
        run_echoed(&mut command).map_err(|error| {
            TaskError::failed(format!(
                "ci step {} of {} failed: {error}",
                index + 1,
                STEPS.len()
            ))
        })?;
    }
    // The docs, with every intra-doc link resolved, on this platform and on
    // Windows (whose crates link to items the other platform lacks).
    for target in [None, Some("x86_64-pc-windows-gnu")] {
        let mut doc = cargo([
            "doc",
            "--no-deps",
            "--workspace",
            "--exclude",
            "aio-benches",
            "--exclude",
            "aio-tests",
        ]);
        if let Some(target) = target {
            doc.args(["--target", target]);
        }
        doc.env("RUSTDOCFLAGS", "-D warnings");
        run_echoed(&mut doc).map_err(|error| {
            TaskError::failed(format!(
                "ci step doc{} failed: {error}",
                target.map(|t| format!(" --target {t}")).unwrap_or_default()
            ))
        })?;
    }
    // Miri checks the unsafe code of the abstract layer (tasks, wakers,
    // handle pool) on a toy loop with no OS underneath, and the selector's
    // timer heap and wheel (packed handle pointers), the scheduler's reference
    // pool and its cross-thread queue (the spin lock over an `UnsafeCell`,
    // posted to from another thread), whose unit tests make no system call
    // but `clone` for a thread. It needs nightly, which
    // `.ci/run` installs; the rustup proxy picks it with `+nightly`.
    let miri_runs: [&[&str]; 2] = [
        &["+nightly", "miri", "test", "-p", "aio-events"],
        &[
            "+nightly",
            "miri",
            "test",
            "-p",
            "aio-selector",
            "--lib",
            "--",
            "timer_heap",
            "timer_wheel",
            "scheduler::tests::task_references",
            "scheduler::tests::the_cross_thread_queue",
        ],
    ];
    for args in miri_runs {
        let mut miri = Command::new("cargo");
        miri.args(args)
            .current_dir(workspace_root())
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN");
        run_echoed(&mut miri).map_err(|error| {
            TaskError::failed(format!(
                "ci step miri (after {} steps) failed: {error}",
                STEPS.len()
            ))
        })?;
    }
    println!("xtask ci: all {} steps, the docs and Miri passed", STEPS.len());
    Ok(())
}
