//! aio's subprocesses: [`Command`] spawns a child on the running loop, and
//! [`Child`] waits for it, signals it and talks to it through pipes with
//! `futures-io` traits (asyncio's `create_subprocess_exec`,
//! `create_subprocess_shell` and `Process`).
//!
//! **Place in the stack.** Below: `aio-events`, which gives the running loop,
//! the [`IoRegistration`](aio_events::IoRegistration) the pipes wait on, and
//! the global policy whose
//! [`ChildWatcher`](aio_events::unix::ChildWatcher) reaps every child
//! (`aio-child-watchers` holds the watchers, but this crate knows only the
//! trait). Above: the facade, which re-exports this crate as `aio::process`.
//! Depend on the facade.
//!
//! This crate is Unix-only for now (`#![cfg(unix)]`); Windows comes with the
//! Windows issue.
//!
//! What happens in [`Command::spawn`], in asyncio's order
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
//! **Waiting** follows std rather than asyncio in one point: [`Child::wait`]
//! closes the child's stdin first, so that a child reading to the end of its
//! input cannot wait forever for a parent waiting for it; and it returns when
//! the child has exited, whatever its pipes are doing (asyncio's `wait`
//! also waits for the pipes to close, so a grandchild that keeps them open
//! keeps `wait` from returning).
//!
//! # Example
//!
//! ```
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg(unix)]

mod child;
mod child_pid;
mod command;
mod communicate;
mod exit;
mod pipe;

pub use child::Child;
pub use command::Command;
pub use exit::ExitHandle;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
