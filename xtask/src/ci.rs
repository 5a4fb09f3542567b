//! `cargo xtask ci`: the checks a change must pass, in the order that fails
//! fastest (formatting, then lints, then tests, then the cross-platform
//! type-check), stopping at the first failure.

use crate::{TaskError, cargo, run_echoed};

/// The cargo invocations of CI, in order.
const STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--check"],
    &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    &["test", "--workspace"],
    // The Windows type-check: the facade and the Windows loops must at least
    // compile for Windows, which the Linux build above never looks at.
    &[
        "check",
        "-p",
        "aio",
        "-p",
        "aio-windows",
        "--lib",
        "--target",
        "x86_64-pc-windows-gnu",
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
    println!("xtask ci: all {} steps passed", STEPS.len());
    Ok(())
}
