//! A listener that runs out of file descriptors keeps serving (asyncio's
//! `_accept_connection`; CPython 3.13's `test_base_events.py`:
//! `BaseEventLoopWithSelectorTests.test_accept_connection_exception`, here
//! with a real `EMFILE` instead of a mock).
//!
//! A `harness = false` binary because `RLIMIT_NOFILE` is process-wide: the
//! binary runs itself as a child process with `--child`, and the child
//! lowers its soft limit, fills every free descriptor, and checks that
//! accept reports once to the exception handler, pauses for a second, and
//! serves the queued connection once descriptors are free again. The
//! parent waits for it with a deadline.

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    unix::main()
}

#[cfg(not(unix))]
fn main() {
    println!("\nnet_rlimit: 0 passed, 0 failed (RLIMIT_NOFILE is Unix-only)");
}

#[cfg(unix)]
mod unix {
    use std::cell::RefCell;
    use std::io::{self, Read, Write};
    use std::process::{Command, ExitCode};
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use aio::net::{OUT_OF_RESOURCES, TcpListener};
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    /// How long the child may take before the parent kills it.
    const CHILD_DEADLINE: Duration = Duration::from_secs(60);

    /// The child's own watchdog: it stops the loop.
    const WATCHDOG: Duration = Duration::from_secs(30);

    /// asyncio's `ACCEPT_RETRY_DELAY`, less a timer's early-firing slack.
    const RETRY_DELAY_AT_LEAST: Duration = Duration::from_millis(990);

    pub(crate) fn main() -> ExitCode {
        if std::env::args().any(|arg| arg == "--child") {
            return match child() {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("net_rlimit child: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        let name = "accept_survives_fd_exhaustion";
        let outcome = parent();
        match &outcome {
            Ok(()) => println!("test {name} ... ok"),
            Err(err) => println!("test {name} ... FAILED: {err}"),
        }
        let failed = usize::from(outcome.is_err());
        println!("\nnet_rlimit: {} passed, {failed} failed", 1 - failed);
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Runs the child and waits for it, at most [`CHILD_DEADLINE`].
    fn parent() -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--child")
            .spawn()
            .map_err(|e| format!("spawn the child: {e}"))?;
        let started = Instant::now();
        loop {
            match child.try_wait().map_err(|e| format!("wait for the child: {e}"))? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => return Err(format!("the child failed: {status}")),
                None if started.elapsed() > CHILD_DEADLINE => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("the child ran longer than {CHILD_DEADLINE:?}"));
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The highest descriptor number open in this process.
    fn highest_fd() -> io::Result<u64> {
        let mut highest = 0;
        for entry in std::fs::read_dir("/proc/self/fd")? {
            if let Some(fd) = entry?.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
                highest = highest.max(fd);
            }
        }
        Ok(highest)
    }

    fn set_soft_fd_limit(soft: u64) -> io::Result<()> {
        // SAFETY: a zeroed rlimit is a valid out-parameter.
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: `limit` is a valid rlimit to write to.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit.rlim_cur = soft as libc::rlim_t;
        // SAFETY: `limit` is initialised; lowering the soft limit needs no
        // privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// What the exception handler received, and when.
    type Reports = Rc<RefCell<Vec<(Instant, String, Option<String>)>>>;

    fn child() -> Result<(), String> {
        let event_loop = aio::SelectorEventLoop::new().map_err(|e| format!("new loop: {e}"))?;
        let reports: Reports = Rc::default();
        let seen = reports.clone();
        event_loop.set_exception_handler(move |_, context| {
            seen.borrow_mut().push((
                Instant::now(),
                context.message().to_owned(),
                context.exception().map(str::to_owned),
            ));
        });
        let watchdog = event_loop
            .call_later(WATCHDOG, || {
                aio::get_running_loop()
                    .expect("a callback runs inside its loop")
                    .stop()
            })
            .map_err(|e| e.to_string())?;
        let outcome = event_loop.run_until_complete(exhaust_then_serve(reports));
        watchdog.cancel();
        let _ = event_loop.close();
        match outcome {
            Err(err) => Err(format!("the loop did not finish within {WATCHDOG:?}: {err}")),
            Ok(result) => result,
        }
    }

    async fn exhaust_then_serve(reports: Reports) -> Result<(), String> {
        let io = |what: &'static str| move |e: io::Error| format!("{what}: {e}");
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io("bind"))?;
        let addr = listener.local_addr().map_err(io("local_addr"))?;
        // Connected before the descriptors run out: the kernel finishes the
        // handshake and queues the connection for accept.
        let mut first = std::net::TcpStream::connect(addr).map_err(io("connect"))?;

        // Lower the limit just above what is open, then take every free number.
        set_soft_fd_limit(highest_fd().map_err(io("list fds"))? + 16).map_err(io("setrlimit"))?;
        let mut fillers = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(file) => fillers.push(file),
                Err(err) if err.raw_os_error() == Some(libc::EMFILE) => break,
                Err(err) => return Err(format!("open /dev/null: {err}")),
            }
        }
        if fillers.is_empty() {
            return Err("the lowered limit left no descriptor to fill".into());
        }

        let listener = Rc::new(listener);
        let accepting = listener.clone();
        let accept = aio::create_task(async move { accepting.accept().await });

        // The accept fails with EMFILE and reports it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while reports.borrow().is_empty() {
            if Instant::now() > deadline {
                return Err("accept never reported running out of descriptors".into());
            }
            aio::sleep(Duration::from_millis(5)).await;
        }
        // Paused, not spinning: during the second of the pause nothing more is
        // reported, even while descriptors are still exhausted.
        aio::sleep(Duration::from_millis(300)).await;
        if accept.done() {
            return Err("accept finished while descriptors were exhausted".into());
        }
        drop(fillers);

        let (mut stream, peer) = accept
            .await
            .map_err(|e| format!("the accept task: {e}"))?
            .map_err(io("accept after descriptors were freed"))?;
        let resumed = Instant::now();
        {
            let reports = reports.borrow();
            if reports.len() != 1 {
                return Err(format!("expected one report, got {}: {reports:?}", reports.len()));
            }
            let (reported, message, exception) = &reports[0];
            if message != OUT_OF_RESOURCES {
                return Err(format!("the report's message is {message:?}"));
            }
            let exception = exception.as_deref().unwrap_or("");
            if !exception.contains("Too many open files") {
                return Err(format!("the report's exception is {exception:?}"));
            }
            let paused = resumed - *reported;
            if paused < RETRY_DELAY_AT_LEAST {
                return Err(format!(
                    "accept resumed after {paused:?}, before the one-second pause"
                ));
            }
        }
        if peer != first.local_addr().map_err(io("client addr"))? {
            return Err(format!("accepted {peer}, not the queued client"));
        }

        // The accepted connection works.
        first.write_all(b"hello").map_err(io("client write"))?;
        let mut buf = [0; 5];
        stream.read_exact(&mut buf).await.map_err(io("server read"))?;
        stream.write_all(b"world").await.map_err(io("server write"))?;
        first.read_exact(&mut buf).map_err(io("client read"))?;
        if &buf != b"world" {
            return Err(format!("the client read {buf:?}"));
        }

        // And the listener keeps serving, at once and without reports.
        let second = std::net::TcpStream::connect(addr).map_err(io("second connect"))?;
        let started = Instant::now();
        let (_stream, peer) = listener.accept().await.map_err(io("second accept"))?;
        if peer != second.local_addr().map_err(io("second addr"))? {
            return Err(format!("accepted {peer}, not the second client"));
        }
        if started.elapsed() >= RETRY_DELAY_AT_LEAST {
            return Err(format!("the second accept took {:?}", started.elapsed()));
        }
        if reports.borrow().len() != 1 {
            return Err("the second accept reported again".into());
        }
        Ok(())
    }
}
