//! Integration tests of `aio`, kept apart from the crates they test so that
//! they see only the public facade, as a user does.
//!
//! The library itself is empty; the suites are the test targets beside it:
//!
//! | file | what it covers | why a file of its own |
//! |---|---|---|
//! | `loop_core.rs` | scheduling, iterations, run/stop/close, tasks, sleeping, threads, fd watching, exception handling (asyncio's `test_events.py` and `test_base_events.py`) | each test owns its loop and touches no global state, so libtest may run them in parallel |
//! | `main_thread.rs` | `aio::run`, `Runner`, the global policy, the main-thread rules, Ctrl-C, fork, `AIO_DEBUG` (asyncio's `test_runners.py`, `PolicyTests`, `GetEventLoopTestsMixin`) | process-global state and "is this the main thread?" need a `harness = false` binary that runs its cases one by one in `main`, and child processes for signals and environment |
//! | `signals.rs` | `add_signal_handler`, `remove_signal_handler`: real signals, dispositions, wake-ups, several loops and threads (asyncio's `SelectorEventLoopSignalTests` and the signal tests of `test_events.py`) | dispositions are process-global: a `harness = false` binary, each case that installs a handler in a child process |
//! | `proptest_policy.rs` | `BaseDefaultEventLoopPolicy` as a state machine against a per-thread model | random operation sequences on threads of their own |
//! | `proptest_timer_heap.rs` | the selector's `TimerHeap` against a sorted-list model, including asyncio's purge rule for cancelled timers | a data structure checked by proptest |
//! | `net_tcp.rs` | `aio::net` TCP and the loop's `sock_*` helpers on loopback: big echoes, a thousand connections, resets, half-closes, cancellation mid-read and mid-connect (asyncio's socket cases of `test_events.py` and `test_sock_lowlevel.py`) | the open-fd count is process-wide, so its tests take turns (`net_common.rs`, shared with the next suite) |
//! | `net_udp_unix.rs` | `aio::net` UDP and Unix domain streams and pairs | as `net_tcp.rs` |
//! | `net_rlimit.rs` | a listener out of descriptors: one report, a one-second pause, then serving again (asyncio's `_accept_connection`) | `RLIMIT_NOFILE` is process-wide: a `harness = false` binary that runs the case in a child process of its own |
//! | `windows_process.rs` | `aio::process` on Windows under the `ProactorEventLoop`: exit codes, `communicate` with 1 MiB each way, kill, a hundred spawns with no handle leaked, the selector loop's `Unsupported`, pipes dropped mid-operation, `wait_for_handle` (asyncio's `SubprocessProactorTests` and `ProactorTests`) | the global policy and the process-wide handle count: a `harness = false` binary that runs its cases one by one; its children are itself (`--act ...`) |
//! | `watchers.rs` | the four child watchers and the policy's watcher slot with real children and signals (asyncio's `ChildWatcherTestsMixin` and `PolicyTests` of `test_unix_events.py`, the pidfd case of `test_subprocess.py`) | SIGCHLD handlers and reaping are process-global: a `harness = false` binary that runs each case in a child process of its own |
//!
//! Each test names the CPython 3.13 test it ports in a comment
//! (`// test_events.py: EventLoopTestsMixin.test_call_soon`).
