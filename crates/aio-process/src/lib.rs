//! aio's subprocesses: [`Command`] spawns a child on the running loop, and
//! [`Child`] waits for it, signals it and talks to it through pipes with
//! `futures-io` traits (asyncio's `create_subprocess_exec`,
//! `create_subprocess_shell` and `Process`).
//!
//! **Place in the stack.** Below: `aio-events`, which gives the running loop,
//! the `IoRegistration` the Unix pipes wait on, the global policy whose
//! `unix::ChildWatcher` reaps every child on Unix (`aio-child-watchers` holds
//! the watchers, but this crate knows only the trait), and on Windows the
//! loop's `wait_for_handle`. Above: the facade, which re-exports this crate
//! as `aio::process`. Depend on the facade.
//!
//! | platform | exit | pipes | signals |
//! |---|---|---|---|
//! | Linux ≥ 5.3 | the policy's child watcher (pidfd by default) | non-blocking, on the loop's selector (epoll) | `pidfd_send_signal` |
//! | other Unix | the policy's child watcher | non-blocking, on the loop's selector | `kill(2)` after a `waitid` check |
//! | Windows | the loop waits for the process handle (`wait_for_handle`: `ProactorEventLoop` only) | overlapped `ReadFile`/`WriteFile` on std's named pipes, completed through the loop's wait for their event | SIGTERM and SIGKILL: `TerminateProcess` |
//!
//! The crate compiles on Unix and Windows (`#![cfg(any(unix, windows))]`):
//! the Unix half is `child_pid.rs` and `pipe.rs`'s `Pipe`, the Windows half
//! the `windows` module; `Command`, `Child`, `ExitHandle`, `communicate` and
//! the public pipe types are shared.
//!
//! What happens in [`Command::spawn`] on Unix, in asyncio's order
//! (`_make_subprocess_transport`):
//! 1. the policy's watcher is asked whether it is active; an inactive watcher
//!    fails the spawn before any process exists;
//! 2. `std::process::Command::spawn` starts the child;
//! 3. on Linux a pidfd is opened for it, so that signals can never reach
//!    another process that later gets the same pid;
//! 4. the child is registered with the watcher, whose callback stores the
//!    return code and wakes every waiter;
//! 5. the pipes are made non-blocking and registered with the running loop.
//!
//! The watcher is the global policy's (`get_event_loop_policy()
//! .get_child_watcher()`). Under `aio::run` that is the facade's Unix policy;
//! a program that drives a loop by hand without ever calling one of the
//! facade's policy functions should call `aio::get_event_loop_policy()` once
//! first, since the facade installs its default policy lazily (otherwise the
//! spawn fails with "cannot spawn a subprocess: no child watcher: this
//! policy has no child watcher").
//!
//! **Return codes** are asyncio's: the exit code, `-signum` for a child
//! killed by a signal, 255 when the child was reaped by someone else
//! ([`Child::returncode`]); [`Child::wait`] gives the same as a std
//! `ExitStatus`.
//!
//! **No zombies.** A [`Child`] dropped without `wait` is still reaped: the
//! watcher holds the callback, not the `Child`. With
//! [`Command::kill_on_drop`] it is killed first.
//!
//! **Signals never reach a stranger** (CPython's gh-127049). Once the return
//! code is known, [`Child::send_signal`] refuses with an error of kind
//! `NotFound` ("process has exited", asyncio's `ProcessLookupError`) without
//! a system call. Before that:
//!
//! | platform | how a signal is sent |
//! |---|---|
//! | Linux ≥ 5.3 | `pidfd_send_signal` on a pidfd opened right after the spawn: it names the process, not the number |
//! | Linux without pidfds (old kernel, seccomp), other Unix | `kill(2)` by number |
//!
//! Either way `waitid(WEXITED | WNOHANG | WNOWAIT)` (on the pidfd from
//! Linux 5.4, else on the pid) asks first: a child that has exited, still a
//! zombie or already reaped by the watcher whose callback has not run yet, is
//! `NotFound`, and `WNOWAIT` leaves the zombie for the watcher to collect.
//!
//! Without a pidfd a narrow window remains between `waitid` and `kill`: the
//! watcher could reap the child in between and the kernel hand the number
//! to a new process, which needs the whole pid space to wrap in that time.
//!
//! **Pipes** ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`]) belong to the
//! loop that was running at the spawn: the loop's selector (epoll, kqueue)
//! reports their readiness. Writing to a stdin whose child closed it gives
//! `BrokenPipe` as long as SIGPIPE is ignored, as Rust binaries do by default
//! (as with std's `ChildStdin`).
//!
//! **On Windows** (asyncio's `windows_events.py`: only the proactor loop runs
//! subprocesses) [`Command::spawn`]:
//! 1. asks the running loop whether it waits for handles
//!    (`supports_wait_for_handle`); the `WindowsSelectorEventLoop`, aio's
//!    default there, does not, and the spawn fails with an error of kind
//!    `Unsupported` that names the `ProactorEventLoop`
//!    (`WindowsProactorEventLoopPolicy`), before any process exists (asyncio's
//!    selector loop raises `NotImplementedError`);
//! 2. `std::process::Command::spawn` starts the child;
//! 3. the loop is asked to wait for its process handle; on the loop's thread
//!    the callback reads the exit code (`GetExitCodeProcess`) and wakes every
//!    waiter. The wait lives with the exit's state: a child whose `Child` and
//!    every [`ExitHandle`] are dropped is no longer waited for (Windows has no
//!    zombies to reap);
//! 4. the pipes (std opens the parent's ends for overlapped I/O) are taken
//!    for the loop: each operation is an overlapped `ReadFile` or `WriteFile`
//!    whose event the loop waits for. A write is taken once it is in flight
//!    and completes in the background (`flush` waits for it); dropping a
//!    pipe cancels a read in flight (`CancelIoEx`) and lets a write finish,
//!    and the operation's buffer and `OVERLAPPED` outlive it either way
//!    (`windows/pipe.rs` says how).
//!
//! Return codes on Windows are the exit code (as `i32`, as std's
//! `ExitStatus::code`); [`Child::terminate`] and [`Child::kill`] call
//! `TerminateProcess` with exit code 1, as asyncio's. [`Child::send_signal`]
//! takes SIGTERM (15) and SIGKILL (9) and refuses anything else with
//! `InvalidInput`, including the console control events asyncio passes to
//! `os.kill` (`CTRL_C_EVENT`, `CTRL_BREAK_EVENT`), which reach a whole
//! console process group. After the exit it is `NotFound` ("process has
//! exited"), as on Unix. [`Command::shell`] runs `%COMSPEC% /c "cmd"`.
//!
//! **Waiting** follows std rather than asyncio in one point: [`Child::wait`]
//! closes the child's stdin first, so that a child reading to the end of its
//! input cannot wait forever for a parent waiting for it; and it returns when
//! the child has exited, whatever its pipes are doing (asyncio's `wait`
//! also waits for the pipes to close, so a grandchild that keeps them open
//! keeps `wait` from returning).
//!
//! # Example
//!
//! On Unix (on Windows, set `aio::windows::WindowsProactorEventLoopPolicy`
//! and `aio::run` the same code):
//!
//! ```
//! # #[cfg(unix)] {
//! use std::process::Stdio;
//! use std::sync::Arc;
//!
//! use aio_process::Command;
//!
//! // `aio::run` does this part: the Unix policy (whose default child
//! // watcher reaps the children) and a running loop.
//! aio_events::set_event_loop_policy(Some(Arc::new(aio_unix::UnixDefaultEventLoopPolicy::new())));
//! let event_loop = aio_unix::UnixSelectorEventLoop::new()?;
//! event_loop.run_until_complete(async {
//!     let mut child = Command::new("cat")
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let output = child.communicate(Some(b"hello")).await?;
//!     assert_eq!(output.stdout, b"hello");
//!     assert_eq!(child.returncode(), Some(0));
//!
//!     let status = Command::shell("exit 3").spawn()?.wait().await?;
//!     assert_eq!(status.code(), Some(3));
//!     Ok::<(), std::io::Error>(())
//! })??;
//! event_loop.close()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg(any(unix, windows))]

mod child;
#[cfg(unix)]
mod child_pid;
mod command;
mod communicate;
mod exit;
mod pipe;
#[cfg(windows)]
mod windows;

pub use child::Child;
pub use command::Command;
pub use exit::ExitHandle;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
