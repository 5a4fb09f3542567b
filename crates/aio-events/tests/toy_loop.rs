//! Tasks, wakers and handles on a toy loop with no OS underneath, so that
//! `cargo +nightly miri test -p aio-events` checks the unsafe parts of
//! `task.rs` and `handle.rs`: borrowed wakers, wakes from other threads,
//! cancellation, panics, and a task outliving its loop's handles.
//!
//! A file of its own because it is a loop implementation in miniature: it
//! runs each ready entry in FIFO order and stops when asked; timers fire at
//! once (no clock), which is all these tests need.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use aio_events::{
    AbstractEventLoop, Error, ErrorKind, EventLoop, ExceptionHandler, Handle, Interest, IoKey,
    IoRegistration, RawSource, Scheduler, TaskRef, ThreadsafeLoop, ThreadsafeScheduler, TimerHandle,
};

#[derive(Default)]
struct Queues {
    local: VecDeque<usize>,
    remote: Vec<TaskRef>,
}

struct ToyScheduler {
    owner: thread::ThreadId,
    queues: Mutex<Queues>,
}

impl Scheduler for ToyScheduler {
    fn is_local(&self) -> bool {
        thread::current().id() == self.owner
    }
    fn schedule_local(&self, key: usize) {
        self.queues.lock().unwrap().local.push_back(key);
    }
    fn schedule_remote(&self, task: TaskRef) {
        self.queues.lock().unwrap().remote.push(task);
    }
}

impl ThreadsafeScheduler for ToyScheduler {
    fn call_soon_threadsafe(&self, _callback: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        Err(Error::unsupported("call_soon_threadsafe on the toy loop"))
    }
    fn stop(&self) {}
}

/// The toy loop's readiness table, one readable flag and waker per source:
/// what an OS poller would report, set by hand with `make_ready`. It counts
/// the loop calls `IoRegistration` makes.
#[derive(Default)]
struct ToyIo {
    ready: RefCell<Vec<bool>>,
    wakers: RefCell<Vec<Option<std::task::Waker>>>,
    waits: Cell<usize>,
    clears: Cell<usize>,
}

impl ToyIo {
    fn make_ready(&self, key: usize) {
        self.ready.borrow_mut()[key] = true;
        let waker = self.wakers.borrow_mut()[key].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

struct ToyLoop {
    io: Rc<ToyIo>,
    scheduler: Arc<ToyScheduler>,
    callbacks: RefCell<VecDeque<Handle>>,
    tasks: RefCell<Vec<Option<TaskRef>>>,
    stopping: Cell<bool>,
    running: Cell<bool>,
    closed: Cell<bool>,
    handler: RefCell<Option<ExceptionHandler>>,
}

impl ToyLoop {
    fn new() -> EventLoop {
        ToyLoop::with_io(Rc::default())
    }

    fn with_io(io: Rc<ToyIo>) -> EventLoop {
        EventLoop::new(ToyLoop {
            io,
            scheduler: Arc::new(ToyScheduler {
                owner: thread::current().id(),
                queues: Mutex::default(),
            }),
            callbacks: RefCell::default(),
            tasks: RefCell::default(),
            stopping: Cell::new(false),
            running: Cell::new(false),
            closed: Cell::new(false),
            handler: RefCell::default(),
        })
    }

    fn run_task(&self, this: &EventLoop, task: &TaskRef) {
        let key = task.key();
        // SAFETY: the toy loop runs only its own tasks (its scheduler queued
        // them), on its own thread.
        if unsafe { task.run(this) } {
            let finished = self.tasks.borrow_mut()[key].take();
            if let Some(finished) = finished {
                // SAFETY: the toy loop runs on its own thread.
                unsafe { finished.release_on_loop_thread() };
            }
        }
    }
}

impl AbstractEventLoop for ToyLoop {
    fn call_soon(&self, handle: Handle) -> Result<(), Error> {
        self.callbacks.borrow_mut().push_back(handle);
        Ok(())
    }
    fn call_at(&self, when: Instant, handle: Handle) -> Result<TimerHandle, Error> {
        self.callbacks.borrow_mut().push_back(handle.clone());
        Ok(TimerHandle::new(handle, when, None))
    }
    fn run_forever(&self, this: &EventLoop) -> Result<(), Error> {
        self.running.set(true);
        while !self.stopping.get() {
            let (keys, remote) = {
                let mut queues = self.scheduler.queues.lock().unwrap();
                (
                    std::mem::take(&mut queues.local),
                    std::mem::take(&mut queues.remote),
                )
            };
            let callbacks = std::mem::take(&mut *self.callbacks.borrow_mut());
            if keys.is_empty() && remote.is_empty() && callbacks.is_empty() {
                thread::yield_now();
                continue;
            }
            for key in keys {
                let task = self.tasks.borrow()[key].clone();
                if let Some(task) = task {
                    self.run_task(this, &task);
                }
            }
            for task in remote {
                self.run_task(this, &task);
            }
            for handle in callbacks {
                handle.run();
            }
        }
        self.stopping.set(false);
        self.running.set(false);
        Ok(())
    }
    fn stop(&self) {
        self.stopping.set(true);
    }
    fn close(&self, this: &EventLoop) -> Result<(), Error> {
        self.closed.set(true);
        self.callbacks.borrow_mut().clear();
        let pending: Vec<TaskRef> = self.tasks.borrow_mut().drain(..).flatten().collect();
        for task in pending {
            // SAFETY: its own tasks, on its own thread.
            unsafe { task.abandon(Some(this)) };
        }
        Ok(())
    }
    fn is_running(&self) -> bool {
        self.running.get()
    }
    fn is_closed(&self) -> bool {
        self.closed.get()
    }
    fn scheduler(&self) -> Arc<dyn Scheduler> {
        self.scheduler.clone()
    }
    fn spawn(&self, task: TaskRef) -> Result<(), Error> {
        let mut tasks = self.tasks.borrow_mut();
        task.set_key(tasks.len());
        tasks.push(Some(task));
        self.scheduler.schedule_local(tasks.len() - 1);
        Ok(())
    }
    fn all_tasks(&self) -> Vec<TaskRef> {
        self.tasks
            .borrow()
            .iter()
            .flatten()
            .filter(|t| !t.done())
            .cloned()
            .collect()
    }
    fn threadsafe(&self) -> ThreadsafeLoop {
        ThreadsafeLoop::new(self.scheduler.clone())
    }
    fn set_debug(&self, _enabled: bool) {}
    fn get_debug(&self) -> bool {
        false
    }
    fn set_exception_handler(&self, handler: Option<ExceptionHandler>) {
        *self.handler.borrow_mut() = handler;
    }
    fn exception_handler(&self) -> Option<ExceptionHandler> {
        self.handler.borrow().clone()
    }
    fn run_in_executor(&self, _job: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        Err(Error::unsupported("run_in_executor on the toy loop"))
    }
    fn shutdown_default_executor(&self, _timeout: Duration) -> Result<(), Error> {
        Ok(())
    }
    // Readiness-based I/O with the three methods a loop must have; the
    // fast paths (`io_ready`, `io_clear_and_poll_ready`) keep their defaults.
    fn io_register(&self, _raw: RawSource) -> Result<IoKey, Error> {
        self.io.ready.borrow_mut().push(false);
        self.io.wakers.borrow_mut().push(None);
        Ok(IoKey(self.io.ready.borrow().len() - 1))
    }
    fn io_poll_ready(
        &self,
        key: IoKey,
        interest: Interest,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        assert_eq!(interest, Interest::Read, "the toy loop reads only");
        if self.io.ready.borrow()[key.0] {
            return std::task::Poll::Ready(Ok(()));
        }
        self.io.waits.set(self.io.waits.get() + 1);
        self.io.wakers.borrow_mut()[key.0] = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
    fn io_clear_ready(&self, key: IoKey, _interest: Interest) {
        self.io.clears.set(self.io.clears.get() + 1);
        self.io.ready.borrow_mut()[key.0] = false;
    }
}

/// A future that hands its waker to another thread, which wakes it.
struct WokenElsewhere {
    sent: bool,
}

impl std::future::Future for WokenElsewhere {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.sent {
            return std::task::Poll::Ready(());
        }
        self.sent = true;
        let waker = cx.waker().clone();
        thread::spawn(move || {
            let extra = waker.clone();
            waker.wake();
            drop(extra);
        });
        std::task::Poll::Pending
    }
}

#[test]
fn tasks_complete_yield_and_return_outputs() {
    let event_loop = ToyLoop::new();
    let out = event_loop
        .run_until_complete(async {
            let a = aio_events::create_task(async {
                aio_events::sleep(Duration::ZERO).await;
                String::from("a")
            });
            let b = aio_events::create_task(async { 2 });
            (a.await.unwrap(), b.await.unwrap())
        })
        .unwrap();
    assert_eq!(out, ("a".to_owned(), 2));
    event_loop.close().unwrap();
}

#[test]
fn a_closed_loop_of_your_own_refuses_callbacks_and_tasks() {
    // The toy loop's `call_soon` and `spawn` do not check for closed: the
    // trait's defaults (`call_soon_if_open`, `scheduler_if_open`) do, as
    // `EventLoop` always did before calling in.
    let event_loop = ToyLoop::new();
    event_loop.close().unwrap();
    let refused = event_loop.call_soon(|| unreachable!("a closed loop ran a callback"));
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::Closed);
    let refused = event_loop.create_task(async { unreachable!("a closed loop ran a task") });
    assert_eq!(refused.err().map(|err| err.kind()), Some(ErrorKind::Closed));
}

#[test]
fn a_sleep_on_a_loop_of_your_own_goes_through_call_at() {
    // The toy loop has no timer table of its own: `sleep` reaches it through
    // the trait's defaults (`wake_after`, then `wake_at` on `call_at`), and
    // the toy loop runs every `call_at` callback at once.
    let event_loop = ToyLoop::new();
    event_loop
        .run_until_complete(aio_events::sleep(Duration::from_secs(3600)))
        .unwrap();
    event_loop.close().unwrap();
}

#[test]
fn a_wake_from_another_thread_reaches_the_task() {
    let event_loop = ToyLoop::new();
    let out = event_loop
        .run_until_complete(async {
            WokenElsewhere { sent: false }.await;
            7
        })
        .unwrap();
    assert_eq!(out, 7);
    event_loop.close().unwrap();
}

#[test]
fn cancel_drops_the_future_and_panics_are_caught() {
    let event_loop = ToyLoop::new();
    let dropped = Rc::new(Cell::new(false));
    let flag = dropped.clone();
    let (cancelled, panicked) = event_loop
        .run_until_complete(async move {
            struct Guard(Rc<Cell<bool>>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    self.0.set(true);
                }
            }
            let sleeper = aio_events::create_task(async move {
                let _guard = Guard(flag);
                std::future::pending::<()>().await;
            });
            aio_events::sleep(Duration::ZERO).await;
            assert!(sleeper.cancel());
            let cancelled = sleeper.await.unwrap_err();
            let panicked = aio_events::create_task(async { panic!("boom") })
                .await
                .unwrap_err();
            (cancelled, panicked)
        })
        .unwrap();
    assert!(cancelled.is_cancelled());
    assert_eq!(panicked.kind(), ErrorKind::Panicked);
    assert!(dropped.get());
    event_loop.close().unwrap();
}

#[test]
fn closing_abandons_pending_tasks_and_their_wakers_may_outlive_the_loop() {
    let event_loop = ToyLoop::new();
    let parked: Arc<Mutex<Option<std::task::Waker>>> = Arc::default();
    let slot = parked.clone();
    let task = event_loop
        .create_task(std::future::poll_fn(move |cx| {
            *slot.lock().unwrap() = Some(cx.waker().clone());
            std::task::Poll::<()>::Pending
        }))
        .unwrap();
    event_loop
        .run_until_complete(aio_events::sleep(Duration::ZERO))
        .unwrap();
    event_loop.close().unwrap();
    assert!(task.done() && task.cancelled());
    drop(task);
    drop(event_loop);
    // The loop is gone; the waker is woken and dropped on another thread.
    let waker = parked.lock().unwrap().take().expect("the task was polled");
    thread::spawn(move || waker.wake()).join().unwrap();
}

#[test]
fn a_cancelled_future_is_dropped_in_place() {
    // The future borrows its own local across an await; its destructor reads
    // through the borrow. Moving the pinned future before dropping it would
    // leave the borrow dangling (Miri flags it; natively it reads garbage).
    struct Reads<'a>(&'a String, Rc<Cell<usize>>);
    impl Drop for Reads<'_> {
        fn drop(&mut self) {
            self.1.set(self.0.len());
        }
    }
    let event_loop = ToyLoop::new();
    let seen = Rc::new(Cell::new(0));
    let probe = seen.clone();
    let task = event_loop
        .create_task(async move {
            let owned = "x".repeat(38);
            let _reads = Reads(&owned, probe);
            std::future::pending::<()>().await;
        })
        .unwrap();
    event_loop
        .run_until_complete(aio_events::sleep(Duration::ZERO))
        .unwrap();
    assert!(task.cancel());
    event_loop
        .run_until_complete(aio_events::sleep(Duration::ZERO))
        .unwrap();
    assert!(task.cancelled());
    assert_eq!(seen.get(), 38);
    event_loop.close().unwrap();
}

#[test]
fn io_on_a_loop_of_your_own_goes_through_the_defaults() {
    // The toy loop has `io_poll_ready` and `io_clear_ready` only: each poll
    // of `IoRegistration::poll_io` asks `io_poll_ready` (the default
    // `io_ready` says "not known ready"), and each `WouldBlock` clears, then
    // waits (the default `io_clear_and_poll_ready`).
    let io = Rc::new(ToyIo::default());
    let event_loop = ToyLoop::with_io(io.clone());
    let attempts = Rc::new(Cell::new(0));
    let result = event_loop.run_until_complete({
        let (io, attempts) = (io.clone(), attempts.clone());
        async move {
            let registration = IoRegistration::with_running_loop(0).unwrap();
            io.make_ready(0);
            registration
                .io(Interest::Read, || {
                    attempts.set(attempts.get() + 1);
                    if attempts.get() < 3 {
                        // Readiness comes back after the task waits.
                        let io = io.clone();
                        aio_events::get_running_loop()
                            .unwrap()
                            .call_soon(move || io.make_ready(0))
                            .unwrap();
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    }
                    Ok(42)
                })
                .await
        }
    });
    assert_eq!(result.unwrap().unwrap(), 42);
    assert_eq!(attempts.get(), 3);
    assert_eq!(io.clears.get(), 2, "one clear per WouldBlock");
    assert_eq!(io.waits.get(), 2, "one wait per WouldBlock");
    assert!(io.ready.borrow()[0], "a success keeps the readiness");
    event_loop.close().unwrap();
}

#[test]
fn tasks_end_with_their_references_wherever_they_are_held() {
    // A task's count is updated with plain stores while every reference is
    // on the loop's thread, atomically otherwise: Miri checks here that no
    // block leaks or is freed early either way.
    let event_loop = ToyLoop::new();
    let (give, kept) = std::sync::mpsc::channel::<std::task::Waker>();
    let keeper = thread::spawn(move || {
        // Holds a task's waker past the task's end, then wakes and drops it.
        let waker = kept.recv().unwrap();
        waker.wake_by_ref();
        drop(waker);
    });
    let outputs = event_loop.run_until_complete(async move {
        // Ends with its handle dropped first: only the loop holds it.
        drop(aio_events::create_task(async { 1 }));
        // Ends while another thread holds its waker.
        let waker_kept = aio_events::create_task(async move {
            std::future::poll_fn(|cx| {
                give.send(cx.waker().clone()).unwrap();
                std::task::Poll::Ready(())
            })
            .await;
            2
        });
        // Ends with only the loop and its handle holding it.
        let plain = aio_events::create_task(async { 3 });
        aio_events::sleep(Duration::ZERO).await;
        (waker_kept.await.unwrap(), plain.await.unwrap())
    });
    assert_eq!(outputs.unwrap(), (2, 3));
    keeper.join().unwrap();
    event_loop.close().unwrap();
}
