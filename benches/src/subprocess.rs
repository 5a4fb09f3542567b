//! The subprocess workloads on every runtime that has subprocesses: spawn
//! `true` and wait for it, one at a time (`subprocess`) or with 16 children
//! running at once (`subprocess_16`).
//!
//! A file of its own, rather than a function in each runtime module, because
//! each version is a few lines and they are easiest to compare side by
//! side: aio's `aio::process` on a `SelectorEventLoop` under the policy's
//! default child watcher; `tokio::process` on a current-thread runtime with a
//! `LocalSet`; and the floor, no runtime at all: `posix_spawnp` and
//! `waitpid` in a plain loop. async-executor has no subprocesses of its own
//! (smol's are the `async-process` crate) and says `unsupported`.
//!
//! In every version the `true` binary is found through `PATH`, the child
//! inherits stdin, stdout and stderr, and one child is spawned and waited
//! for before the clock starts, so that whatever a runtime sets up on its
//! first child (a watcher, a SIGCHLD handler) is not timed. With 16 at a
//! time, 16 tasks each spawn and wait for their share one after another (the
//! floor keeps 16 children running and starts a new one whenever
//! `waitpid(-1)` reaps one).

use std::ffi::{CStr, c_char};
use std::time::{Duration, Instant};

use crate::{BoxError, Measurement, Workload};

fn concurrency_of(workload: Workload) -> Result<u64, BoxError> {
    workload
        .subprocess_concurrency()
        .ok_or_else(|| format!("`{workload}` is not a subprocess workload").into())
}

/// aio: `aio::process::Command::new("true").spawn()?.wait().await` on
/// `event_loop`.
pub(crate) fn aio(
    event_loop: &aio::EventLoop,
    workload: Workload,
    spawns: u64,
) -> Result<Measurement, BoxError> {
    let at_once = concurrency_of(workload)?;
    // `aio::process` takes its child watcher from the global policy: make
    // sure the facade's default policy is the global one, as `aio::run`
    // would.
    let _ = aio::get_event_loop_policy();
    let elapsed = event_loop.run_until_complete(async move {
        spawn_and_wait_aio()
            .await
            .map_err(|err| format!("warm-up: {err}"))?;
        let start = Instant::now();
        let tasks: Vec<_> = (0..at_once)
            .map(|task| {
                let share = share_of(spawns, at_once, task);
                aio::create_task(async move {
                    for _ in 0..share {
                        spawn_and_wait_aio().await?;
                    }
                    Ok::<(), std::io::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await
                .map_err(|err| err.to_string())?
                .map_err(|err| err.to_string())?;
        }
        Ok::<Duration, String>(start.elapsed())
    })??;
    Ok(Measurement::timed(elapsed, spawns))
}

async fn spawn_and_wait_aio() -> std::io::Result<()> {
    let status = aio::process::Command::new("true").spawn()?.wait().await?;
    check_status(status.code())
}

/// tokio: `tokio::process::Command::new("true").spawn()?.wait().await`,
/// from local tasks on a current-thread runtime.
pub(crate) fn tokio(
    runtime: &tokio::runtime::Runtime,
    local: &tokio::task::LocalSet,
    workload: Workload,
    spawns: u64,
) -> Result<Measurement, BoxError> {
    let at_once = concurrency_of(workload)?;
    let main = local.spawn_local(async move {
        spawn_and_wait_tokio()
            .await
            .map_err(|err| format!("warm-up: {err}"))?;
        let start = Instant::now();
        let tasks: Vec<_> = (0..at_once)
            .map(|task| {
                let share = share_of(spawns, at_once, task);
                tokio::task::spawn_local(async move {
                    for _ in 0..share {
                        spawn_and_wait_tokio().await?;
                    }
                    Ok::<(), std::io::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await
                .map_err(|err| err.to_string())?
                .map_err(|err| err.to_string())?;
        }
        Ok::<Duration, String>(start.elapsed())
    });
    let elapsed = local.block_on(runtime, main)??;
    Ok(Measurement::timed(elapsed, spawns))
}

async fn spawn_and_wait_tokio() -> std::io::Result<()> {
    let status = tokio::process::Command::new("true").spawn()?.wait().await?;
    check_status(status.code())
}

/// The floor: `posix_spawnp` and `waitpid`, nothing else.
pub(crate) fn floor(workload: Workload, spawns: u64) -> Result<Measurement, BoxError> {
    let at_once = concurrency_of(workload)?;
    posix_spawn::spawn_true()?.wait()?;
    let start = Instant::now();
    if at_once == 1 {
        for _ in 0..spawns {
            posix_spawn::spawn_true()?.wait()?;
        }
    } else {
        let mut started = 0;
        let mut running = 0;
        while started < spawns || running > 0 {
            if started < spawns && running < at_once {
                // Dropped unwaited: `reap_any` collects it.
                let _ = posix_spawn::spawn_true()?;
                started += 1;
                running += 1;
            } else {
                posix_spawn::reap_any()?;
                running -= 1;
            }
        }
    }
    Ok(Measurement::timed(start.elapsed(), spawns))
}

/// The spawns task `task` of `tasks` makes, so that they add up to `spawns`.
fn share_of(spawns: u64, tasks: u64, task: u64) -> u64 {
    spawns / tasks + u64::from(task < spawns % tasks)
}

fn check_status(code: Option<i32>) -> std::io::Result<()> {
    match code {
        Some(0) => Ok(()),
        other => Err(std::io::Error::other(format!("`true` ended with {other:?}"))),
    }
}

/// The floor's two system calls, by hand.
mod posix_spawn {
    use super::*;

    unsafe extern "C" {
        /// The process's environment (POSIX `environ`), passed on to the
        /// child as std does.
        static environ: *const *const c_char;
    }

    /// A child that nobody has waited for yet.
    pub(super) struct Spawned(libc::pid_t);

    /// Starts `true`, found through `PATH`, with this process's environment
    /// and standard streams.
    pub(super) fn spawn_true() -> std::io::Result<Spawned> {
        const PROGRAM: &CStr = c"true";
        let argv: [*const c_char; 2] = [PROGRAM.as_ptr(), std::ptr::null()];
        let mut pid: libc::pid_t = 0;
        // SAFETY: `pid` is valid for writes; the file actions and attributes
        // may be null; `argv` is a null-terminated array of C strings that
        // outlive the call; `environ` is the C library's own environment,
        // which nothing in this single-threaded function changes meanwhile.
        let result = unsafe {
            libc::posix_spawnp(
                &mut pid,
                PROGRAM.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr().cast(),
                environ.cast(),
            )
        };
        if result == 0 {
            Ok(Spawned(pid))
        } else {
            Err(std::io::Error::from_raw_os_error(result))
        }
    }

    impl Spawned {
        /// `waitpid(pid)`, checking that `true` succeeded.
        pub(super) fn wait(self) -> std::io::Result<()> {
            let mut status = 0;
            // SAFETY: `status` is valid for writes for the call.
            if unsafe { libc::waitpid(self.0, &mut status, 0) } != self.0 {
                return Err(std::io::Error::last_os_error());
            }
            check_wait_status(status)
        }
    }

    /// `waitpid(-1)`: reaps whichever child ends first.
    pub(super) fn reap_any() -> std::io::Result<()> {
        let mut status = 0;
        // SAFETY: `status` is valid for writes for the call.
        if unsafe { libc::waitpid(-1, &mut status, 0) } <= 0 {
            return Err(std::io::Error::last_os_error());
        }
        check_wait_status(status)
    }

    fn check_wait_status(status: i32) -> std::io::Result<()> {
        check_status(libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)))
    }
}
