//! Integration tests of `aio`, kept apart from the crates they test so that
//! they see only the public facade, as a user does.
//!
//! The library itself is empty; the suites are the test targets beside it:
//!
//! | file | what it covers | why a file of its own |
//! |---|---|---|
//! | `loop_core.rs` | scheduling, iterations, run/stop/close, tasks, sleeping, threads, fd watching, exception handling (asyncio's `test_events.py` and `test_base_events.py`) | each test owns its loop and touches no global state, so libtest may run them in parallel |
//! | `main_thread.rs` | `aio::run`, `Runner`, the global policy, the main-thread rules, Ctrl-C, fork, `AIO_DEBUG` (asyncio's `test_runners.py`, `PolicyTests`, `GetEventLoopTestsMixin`) | process-global state and "is this the main thread?" need a `harness = false` binary that runs its cases one by one in `main`, and child processes for signals and environment |
//! | `proptest_policy.rs` | `BaseDefaultEventLoopPolicy` as a state machine against a per-thread model | random operation sequences on threads of their own |
//! | `proptest_timer_heap.rs` | the selector's `TimerHeap` against a sorted-list model, including asyncio's purge rule for cancelled timers | a data structure checked by proptest |
//!
//! Each test names the CPython 3.13 test it ports in a comment
//! (`// test_events.py: EventLoopTestsMixin.test_call_soon`).
