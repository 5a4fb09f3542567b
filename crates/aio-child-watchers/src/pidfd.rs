//! [`PidfdChildWatcher`]: each child's pidfd is a reader of the running loop
//! (asyncio's `PidfdChildWatcher`, 3.12's version that works for loops in any
//! thread), and [`can_use_pidfd`].
//!
//! A file of its own because it is the only watcher built on a Linux-only
//! mechanism; elsewhere it compiles to a watcher that says it is unsupported.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use aio_events::{Error, ErrorKind};
use aio_events::{EventLoop, unix::ChildWatcher};

use crate::wait::ChildCallback;

/// Whether this process may use pidfds: `pidfd_open(getpid())` works.
///
/// Linux 5.3 and later have `pidfd_open`, but a seccomp filter (a container
/// runtime's, a sandbox's) may forbid it, so this asks the kernel once and
/// remembers the answer (asyncio's `can_use_pidfd`). `false` on every other
/// platform.
pub fn can_use_pidfd() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(imp::probe)
}

/// Watches each child through a pidfd that the running loop polls: no
/// threads, no signals (asyncio's `PidfdChildWatcher`, the default of 3.12
/// and 3.13 where pidfds work).
///
/// `add_child_handler` must be called on the loop that should report the
/// exit, while it runs: it opens a pidfd for the child (`pidfd_open`) and
/// adds it as a reader of [`aio_events::get_running_loop`]. When the child
/// exits the pidfd becomes readable; the loop then reaps the child with
/// `waitid(P_PIDFD, …, WNOHANG)`, removes the reader, closes the pidfd and
/// calls the callback, on the loop's thread, with no lock held.
///
/// # Trade-offs
///
/// asyncio calls it the "Goldilocks" watcher, and so it is:
/// - **No threads, no signals.** Nothing process-wide is taken over: no
///   SIGCHLD handler, no reaping of other code's children.
/// - **Loops in any thread.** Each child is watched by the loop that
///   registered it; [`attach_loop`](ChildWatcher::attach_loop) is a no-op.
/// - **O(1) per exit, one descriptor per running child.** A program running
///   thousands of children at once needs as many descriptors.
/// - **Linux only**, 5.3 or later, and a seccomp filter may forbid it: check
///   [`can_use_pidfd`] (the default policy does). Elsewhere
///   `add_child_handler` is `Unsupported` and [`is_active`](ChildWatcher::is_active)
///   is `false`.
/// - **Safe against pid reuse.** The wait names the pidfd, not the number,
///   so it can never reap another process that got the pid later.
///
/// Details:
/// - A child that is already gone (reaped elsewhere, or no child of this
///   process) is reported at once, through the loop, with returncode 255
///   and a warning, as asyncio does; any other `pidfd_open` failure (out of
///   descriptors, say) is an `Io` error that names it.
/// - Adding a handler for a pid already watched replaces the callback;
///   [`remove_child_handler`](ChildWatcher::remove_child_handler) drops it
///   and stops watching: the watcher then leaves the child for whoever
///   waits for it.
/// - [`close`](ChildWatcher::close) is a no-op, as in asyncio: children in
///   flight are still reported.
/// - If the loop closes before the child exits, the reader is dropped; the
///   watcher then reaps the child on a thread of its own and drops the
///   callback with a warning, so no zombie is left behind.
pub struct PidfdChildWatcher {
    registry: Arc<Registry>,
}

/// The callbacks waiting, by pid. Each registration has a token, so a
/// reader left from a replaced or removed registration knows it is stale.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Mutex<HashMap<u32, Registration>>,
}

pub(crate) struct Registration {
    pub(crate) token: u64,
    pub(crate) callback: ChildCallback,
}

impl Registry {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<u32, Registration>> {
        // The map holds plain data and no code of ours panics while holding
        // the lock; a poisoned map is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the callback of `pid` if `token` is still its registration.
    pub(crate) fn take_if_current(&self, pid: u32, token: u64) -> Option<ChildCallback> {
        let mut entries = self.lock();
        match entries.get(&pid) {
            Some(registration) if registration.token == token => {
                entries.remove(&pid).map(|registration| registration.callback)
            }
            _ => None,
        }
    }

    pub(crate) fn is_current(&self, pid: u32, token: u64) -> bool {
        self.lock()
            .get(&pid)
            .is_some_and(|registration| registration.token == token)
    }
}

impl PidfdChildWatcher {
    /// A watcher; it holds nothing until a child is added.
    pub fn new() -> Self {
        PidfdChildWatcher {
            registry: Arc::new(Registry::default()),
        }
    }
}

impl Default for PidfdChildWatcher {
    fn default() -> Self {
        PidfdChildWatcher::new()
    }
}

impl fmt::Debug for PidfdChildWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PidfdChildWatcher")
            .field("children", &self.registry.lock().len())
            .finish()
    }
}

impl ChildWatcher for PidfdChildWatcher {
    fn add_child_handler(&self, pid: u32, callback: Box<dyn FnOnce(u32, i32) + Send>) -> Result<(), Error> {
        let raw = crate::wait::checked_pid(pid)?;
        let event_loop = aio_events::try_get_running_loop().ok_or_else(|| {
            Error::new(
                ErrorKind::NoRunningLoop,
                format!(
                    "no running event loop: PidfdChildWatcher watches child {pid} with the loop \
                     running on this thread; call add_child_handler from inside it"
                ),
            )
        })?;
        imp::add(&self.registry, &event_loop, pid, raw, callback)
    }

    fn remove_child_handler(&self, pid: u32) -> bool {
        // The reader stays until the child exits, because the loop may be in
        // another thread; it then sees it is stale, and stops without reaping.
        let removed = self.registry.lock().remove(&pid);
        removed.is_some()
    }

    fn attach_loop(&self, _event_loop: Option<&EventLoop>) {
        // Each child is watched by the loop that registered it.
    }

    fn is_active(&self) -> bool {
        can_use_pidfd()
    }

    fn close(&self) {
        // As asyncio's: nothing to release, and children in flight are still
        // reported.
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::thread;

    use aio_events::{Error, EventLoop};
    use rustix::io::Errno;
    use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus};

    use super::{Registration, Registry};
    use crate::wait::{self, ChildCallback, REAPED_ELSEWHERE, Waited};

    /// Registration tokens; never reused.
    static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

    pub(super) fn probe() -> bool {
        rustix::process::pidfd_open(rustix::process::getpid(), PidfdFlags::empty()).is_ok()
    }

    pub(super) fn add(
        registry: &Arc<Registry>,
        event_loop: &EventLoop,
        pid: u32,
        raw: Pid,
        callback: ChildCallback,
    ) -> Result<(), Error> {
        let pidfd = match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
            Ok(pidfd) => pidfd,
            // No such process: a zombie still has one, so the child was
            // reaped elsewhere already (or never was ours).
            Err(Errno::SRCH) => return report_gone(registry, event_loop, pid, callback),
            Err(errno) => {
                return Err(wait::os_error(
                    errno,
                    format!("cannot watch child process {pid}: pidfd_open failed"),
                ));
            }
        };
        // A pid that is not our child (reaped elsewhere, then reused by
        // another process) would make us wait for a stranger's exit; the
        // kernel says so at once.
        if let Err(Errno::CHILD) = rustix::process::waitid(
            WaitId::PidFd(pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        ) {
            return report_gone(registry, event_loop, pid, callback);
        }

        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let fd = pidfd.as_raw_fd();
        let mut watch = PidfdWatch {
            registry: Arc::clone(registry),
            pid,
            token,
            pidfd: Some(pidfd),
        };
        // On failure the reader is dropped with its pidfd. Its token is not
        // registered yet, so it does not take the child for a loop that
        // closed under it: the caller, told of the error, still owns it.
        event_loop.add_reader(fd, move || watch.on_readable())?;
        // Registered only now, which is soon enough: the reader runs on this
        // thread, once control is back in the loop.
        let replaced = registry.lock().insert(pid, Registration { token, callback });
        // Dropped outside the lock: it runs the user's destructors.
        drop(replaced);
        Ok(())
    }

    /// Reports a child that is no longer there: 255 through the loop.
    fn report_gone(
        registry: &Registry,
        event_loop: &EventLoop,
        pid: u32,
        callback: ChildCallback,
    ) -> Result<(), Error> {
        wait::warn_reaped_elsewhere(pid);
        // This report supersedes an earlier registration of the pid.
        let replaced = registry.lock().remove(&pid);
        drop(replaced);
        event_loop.call_soon(move || callback(pid, REAPED_ELSEWHERE))?;
        Ok(())
    }

    /// The reader of one child's pidfd.
    struct PidfdWatch {
        registry: Arc<Registry>,
        pid: u32,
        token: u64,
        /// `None` once the watch has ended (reported, or stale).
        pidfd: Option<OwnedFd>,
    }

    impl PidfdWatch {
        fn on_readable(&mut self) {
            let Some(pidfd) = self.pidfd.as_ref() else {
                return;
            };
            if !self.registry.is_current(self.pid, self.token) {
                // Removed or replaced: stop watching and leave the child to
                // whoever waits for it now.
                self.stop();
                return;
            }
            let returncode = match reap(self.pid, pidfd) {
                Waited::Running => return,
                Waited::Exited(returncode) => returncode,
            };
            self.stop();
            if let Some(callback) = self.registry.take_if_current(self.pid, self.token) {
                callback(self.pid, returncode);
            }
        }

        /// Removes the reader and closes the pidfd, in that order.
        fn stop(&mut self) {
            if let Some(pidfd) = self.pidfd.take() {
                // This runs as the reader's callback, so the running loop is
                // the loop that watches the pidfd.
                if let Some(event_loop) = aio_events::try_get_running_loop() {
                    event_loop.remove_reader(pidfd.as_raw_fd());
                }
            }
        }
    }

    impl Drop for PidfdWatch {
        fn drop(&mut self) {
            // Still watching: the loop dropped its readers (it was closed or
            // dropped) before the child exited.
            let Some(pidfd) = self.pidfd.take() else {
                return;
            };
            let Some(callback) = self.registry.take_if_current(self.pid, self.token) else {
                return;
            };
            drop(callback);
            log::warn!(
                "Loop that handles pid {} is closed: the child is reaped in the background and not reported",
                self.pid
            );
            let pid = self.pid;
            // A thread, because nothing else is left to reap the child; it
            // names the pidfd, so it cannot reap a later process of that pid.
            let spawned = thread::Builder::new()
                .name(format!("waitpid-{pid}"))
                .spawn(move || reap_blocking(pid, &pidfd));
            if let Err(err) = spawned {
                log::error!("cannot start a thread to reap child process {pid}: {err}");
            }
        }
    }

    /// Reaps the child of a readable pidfd without blocking.
    fn reap(pid: u32, pidfd: &OwnedFd) -> Waited {
        loop {
            match rustix::process::waitid(
                WaitId::PidFd(pidfd.as_fd()),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            ) {
                Ok(Some(status)) => {
                    let code = returncode(&status);
                    log::debug!("process {pid} exited with returncode {code}");
                    return Waited::Exited(code);
                }
                // Not exited after all: the reader is level-triggered and
                // will come back.
                Ok(None) => return Waited::Running,
                Err(Errno::INTR) => continue,
                Err(Errno::CHILD) => {
                    wait::warn_reaped_elsewhere(pid);
                    return Waited::Exited(REAPED_ELSEWHERE);
                }
                // Linux 5.3 has pidfd_open but not P_PIDFD. Waiting by number
                // is safe here: the pidfd is readable, so the pid is a zombie
                // of ours that nobody has reaped, and its number cannot be
                // reused before it is.
                Err(Errno::INVAL) => {
                    let Ok(raw) = wait::checked_pid(pid) else {
                        return Waited::Exited(REAPED_ELSEWHERE);
                    };
                    return wait::wait_nohang(pid, raw).unwrap_or_else(|errno| {
                        log::error!(
                            "waitpid({pid}) failed: {}; will report returncode {REAPED_ELSEWHERE}",
                            std::io::Error::from(errno)
                        );
                        Waited::Exited(REAPED_ELSEWHERE)
                    });
                }
                Err(errno) => {
                    log::error!(
                        "waitid for child process {pid} failed: {}; will report returncode {REAPED_ELSEWHERE}",
                        std::io::Error::from(errno)
                    );
                    return Waited::Exited(REAPED_ELSEWHERE);
                }
            }
        }
    }

    /// Reaps the child of `pidfd`, blocking until it exits.
    fn reap_blocking(pid: u32, pidfd: &OwnedFd) {
        loop {
            match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED) {
                Ok(Some(status)) => {
                    log::debug!("process {pid} exited with returncode {}", returncode(&status));
                    return;
                }
                Ok(None) | Err(Errno::INTR) => continue,
                // Reaped elsewhere: nothing left to do.
                Err(Errno::CHILD) => return,
                Err(Errno::INVAL) => {
                    // Linux 5.3: by number, safe while the pidfd is open and
                    // the child unreaped (see `reap`).
                    if let Ok(raw) = wait::checked_pid(pid) {
                        let _ = wait::wait_blocking(pid, raw);
                    }
                    return;
                }
                Err(errno) => {
                    log::error!(
                        "waitid for child process {pid} failed: {}",
                        std::io::Error::from(errno)
                    );
                    return;
                }
            }
        }
    }

    /// asyncio's return code from a `waitid` status.
    fn returncode(status: &WaitIdStatus) -> i32 {
        if let Some(code) = status.exit_status() {
            code
        } else if let Some(signum) = status.terminating_signal() {
            -signum
        } else {
            // `waitid` with only WEXITED reports exits and deaths by signal.
            REAPED_ELSEWHERE
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::sync::Arc;

    use aio_events::{Error, ErrorKind, EventLoop};
    use rustix::process::Pid;

    use super::Registry;
    use crate::wait::ChildCallback;

    pub(super) fn probe() -> bool {
        false
    }

    pub(super) fn add(
        _registry: &Arc<Registry>,
        _event_loop: &EventLoop,
        pid: u32,
        _raw: Pid,
        _callback: ChildCallback,
    ) -> Result<(), Error> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "cannot watch child process {pid}: pidfds exist on Linux only; \
                 use ThreadedChildWatcher"
            ),
        ))
    }
}
