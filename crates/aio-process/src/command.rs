//! [`Command`]: std's process builder, spawning on the running loop and
//! registering the child with the policy's child watcher (asyncio's
//! `create_subprocess_exec`, `create_subprocess_shell` and
//! `_make_subprocess_transport`); on Windows, with the running loop's wait
//! for the process handle.
//!
//! A file of its own because spawning is the one moment where a process
//! exists that nothing watches yet: the order of the steps, and the clean-up
//! when one fails, are this file.

use std::ffi::OsStr;
#[cfg(windows)]
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::Path;
use std::process::{Output, Stdio};
#[cfg(unix)]
use std::sync::Arc;

use aio_events::EventLoop;
#[cfg(unix)]
use aio_events::unix::ChildWatcher;

use crate::child::Child;
#[cfg(unix)]
use crate::child_pid::ChildPid;
use crate::exit::ExitHandle;
use crate::pipe::{ChildStderr, ChildStdin, ChildStdout};

/// The program and how to start it: std's `std::process::Command`, plus
/// [`kill_on_drop`](Command::kill_on_drop), spawning on the running loop.
///
/// Standard streams are inherited unless set, as std's `spawn` and asyncio's
/// `create_subprocess_exec` do; [`output`](Command::output) pipes stdout and
/// stderr and gives the child no stdin unless set, as std's `output`.
pub struct Command {
    inner: std::process::Command,
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
    kill_on_drop: bool,
}

/// The streams a spawn gives the child when the caller set none.
struct StdioDefaults {
    stdin: fn() -> Stdio,
    stdout: fn() -> Stdio,
    stderr: fn() -> Stdio,
}

const SPAWN_DEFAULTS: StdioDefaults = StdioDefaults {
    stdin: Stdio::inherit,
    stdout: Stdio::inherit,
    stderr: Stdio::inherit,
};

const OUTPUT_DEFAULTS: StdioDefaults = StdioDefaults {
    stdin: Stdio::null,
    stdout: Stdio::piped,
    stderr: Stdio::piped,
};

impl Command {
    /// A command running `program` with no arguments.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// `/bin/sh -c cmd`: asyncio's `create_subprocess_shell`. The shell
    /// parses `cmd`, so quote what comes from elsewhere.
    ///
    /// On Windows, `%COMSPEC% /c "cmd"` (`cmd.exe` when `COMSPEC` is unset),
    /// the command line given as it is, as Python's `subprocess` builds it
    /// for `shell=True`.
    pub fn shell(cmd: impl AsRef<OsStr>) -> Command {
        #[cfg(unix)]
        {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(cmd);
            command
        }
        #[cfg(windows)]
        {
            use std::os::windows::process::CommandExt;

            let comspec = std::env::var_os("COMSPEC").unwrap_or_else(|| OsString::from("cmd.exe"));
            let mut line = OsString::from("/c \"");
            line.push(cmd);
            line.push("\"");
            let mut command = Command::new(comspec);
            command.inner.raw_arg(line);
            command
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, value);
        self
    }

    /// Sets environment variables of the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (then what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// The child's stdin: `Stdio::piped()` gives [`Child::stdin`].
    pub fn stdin(&mut self, cfg: Stdio) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// The child's stdout: `Stdio::piped()` gives [`Child::stdout`].
    pub fn stdout(&mut self, cfg: Stdio) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// The child's stderr: `Stdio::piped()` gives [`Child::stderr`].
    pub fn stderr(&mut self, cfg: Stdio) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Whether dropping the [`Child`] (or the future of
    /// [`output`](Command::output)) before the child has exited kills it
    /// with SIGKILL (`TerminateProcess` on Windows). Off by default. Either
    /// way the child is reaped.
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.kill_on_drop = kill_on_drop;
        self
    }

    /// std's builder, for what this one does not wrap (`CommandExt`'s
    /// `process_group`, `uid`, `pre_exec`, ...). Set the standard streams
    /// through this type, so that it knows which are set.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// std's builder, read-only.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// Starts the child on the running loop.
    ///
    /// Fails without starting anything outside a running loop ("no running
    /// event loop"), when the policy has no child watcher, or when the
    /// watcher is not active (asyncio's RuntimeError). Pipes belong to the
    /// running loop.
    ///
    /// On Windows there is no child watcher: the running loop waits for the
    /// process handle, which only the `ProactorEventLoop` does. On another
    /// loop (the `WindowsSelectorEventLoop`, aio's default there) the spawn
    /// fails with an error of kind `Unsupported` before any process exists,
    /// as asyncio's selector loop raises `NotImplementedError`.
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_with(&SPAWN_DEFAULTS)
    }

    /// Runs the child to its end and collects its output: stdout and stderr
    /// piped and stdin empty unless set otherwise (std's `output`).
    pub async fn output(&mut self) -> io::Result<Output> {
        let mut child = self.spawn_with(&OUTPUT_DEFAULTS)?;
        child.communicate(None).await
    }

    /// Unset streams get this spawn's defaults every time: `output` may
    /// have set others on the same builder before.
    fn apply_defaults(&mut self, defaults: &StdioDefaults) {
        if !self.stdin_set {
            self.inner.stdin((defaults.stdin)());
        }
        if !self.stdout_set {
            self.inner.stdout((defaults.stdout)());
        }
        if !self.stderr_set {
            self.inner.stderr((defaults.stderr)());
        }
    }

    #[cfg(windows)]
    fn spawn_with(&mut self, defaults: &StdioDefaults) -> io::Result<Child> {
        let event_loop = aio_events::get_running_loop().map_err(aio_events::into_io)?;
        // asyncio's selector loop refuses in `_make_subprocess_transport`,
        // before any process exists; so does this.
        crate::windows::process::check_loop(&event_loop)?;
        self.apply_defaults(defaults);
        let mut std_child = self.inner.spawn()?;
        let (stdin, stdout, stderr) = (
            std_child.stdin.take(),
            std_child.stdout.take(),
            std_child.stderr.take(),
        );
        let pid = std_child.id();
        let process = crate::windows::process::ChildHandle::new(pid, std_child);
        let exit = ExitHandle::new(pid);
        if let Err(err) = crate::windows::process::watch_exit(&event_loop, &process, &exit) {
            // Nothing could report its exit: end it now.
            let _ = process.send_signal(crate::windows::process::SIGKILL);
            return Err(io::Error::other(format!(
                "cannot wait for the subprocess (pid {pid}), so it was killed: {err}"
            )));
        }
        // From here on the loop reports the exit whatever happens.
        let mut child = Child::new(process, exit, self.kill_on_drop);
        if let Err(err) = connect_pipes(&event_loop, &mut child, stdin, stdout, stderr) {
            // Nobody will talk to the child: kill it.
            let _ = child.kill();
            return Err(err);
        }
        Ok(child)
    }

    #[cfg(unix)]
    fn spawn_with(&mut self, defaults: &StdioDefaults) -> io::Result<Child> {
        let event_loop = aio_events::get_running_loop().map_err(aio_events::into_io)?;
        let watcher = child_watcher()?;
        if !watcher.is_active() {
            // asyncio checks this before it creates the process, so that a
            // child is never started with nobody to reap it.
            return Err(io::Error::other(
                "cannot spawn a subprocess: the policy's child watcher is not active \
                 (it is not attached to a loop); attach it, or set an active watcher \
                 with set_child_watcher",
            ));
        }

        self.apply_defaults(defaults);

        let mut std_child = self.inner.spawn()?;
        let pid = ChildPid::open(std_child.id());
        let exit = ExitHandle::new(pid.pid());
        if let Err(err) = watcher.add_child_handler(pid.pid(), exit.watcher_callback()) {
            reap_unwatched(&pid, std_child);
            return Err(io::Error::other(format!(
                "cannot watch the subprocess (pid {}), so it was killed: {err}",
                pid.pid()
            )));
        }

        // From here on the watcher reaps the child whatever happens.
        let mut child = Child::new(pid, exit, self.kill_on_drop);
        let (stdin, stdout, stderr) = (
            std_child.stdin.take(),
            std_child.stdout.take(),
            std_child.stderr.take(),
        );
        if let Err(err) = connect_pipes(&event_loop, &mut child, stdin, stdout, stderr) {
            // Nobody will talk to the child: kill it; the watcher reaps it.
            let _ = child.kill();
            return Err(err);
        }
        Ok(child)
    }
}

/// The policy's watcher, or an error saying there is none.
#[cfg(unix)]
fn child_watcher() -> io::Result<Arc<dyn ChildWatcher>> {
    aio_events::get_event_loop_policy()
        .get_child_watcher()
        .map_err(|err| io::Error::other(format!("cannot spawn a subprocess: no child watcher: {err}")))
}

/// Registers the std child's pipes with the loop, into `child`.
fn connect_pipes(
    event_loop: &EventLoop,
    child: &mut Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
) -> io::Result<()> {
    if let Some(stdin) = stdin {
        child.stdin = Some(ChildStdin::new(event_loop, stdin)?);
    }
    if let Some(stdout) = stdout {
        child.stdout = Some(ChildStdout::new(event_loop, stdout)?);
    }
    if let Some(stderr) = stderr {
        child.stderr = Some(ChildStderr::new(event_loop, stderr)?);
    }
    Ok(())
}

/// A child the watcher refused: kill it and reap it here, blocking for the
/// moment SIGKILL takes, so that it does not stay a zombie. Nobody else waits
/// for it (the watcher refused it), so the pid is still ours to signal.
#[cfg(unix)]
fn reap_unwatched(pid: &ChildPid, std_child: std::process::Child) {
    drop(std_child.stdin);
    drop(std_child.stdout);
    drop(std_child.stderr);
    let _ = pid.send_signal(libc::SIGKILL);
    if let Some(raw) = rustix::process::Pid::from_raw(pid.pid() as i32) {
        // ECHILD (someone reaped it after all) leaves nothing to do.
        let _ = rustix::process::waitpid(Some(raw), rustix::process::WaitOptions::empty());
    }
}

impl From<std::process::Command> for Command {
    /// Wraps std's builder; its streams count as unset (std does not say
    /// which were set).
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
            kill_on_drop: false,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("command", &self.inner)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}
