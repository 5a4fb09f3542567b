//! `BaseDefaultEventLoopPolicy` as a state machine: random sequences of
//! `get_event_loop`, `set_event_loop(Some(new))`, `set_event_loop(Some(old))`,
//! `set_event_loop(None)` and `new_event_loop`, checked after every step
//! against a model that is one `Option<loop>` per thread (asyncio's
//! `BaseDefaultEventLoopPolicy._local`).
//!
//! A file of its own because it is proptest, and because it runs every
//! sequence on threads it spawns: not the main thread (so the "make a loop on
//! demand in the main thread" rule is off and an empty slot is always
//! `NoCurrentLoop`), and never the global policy (each case makes its own
//! instance). The two-thread property runs two sequences in lockstep on one
//! shared instance: each thread must see only its own slot.

use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use aio::{BaseDefaultEventLoopPolicy, ErrorKind, EventLoop, EventLoopPolicy};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// How long one case's threads may take.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
enum Op {
    /// `get_event_loop()`.
    Get,
    /// `set_event_loop(Some(new_event_loop()))`.
    SetNew,
    /// `set_event_loop(Some(loop))` with a loop this thread made before,
    /// picked by index modulo their number (nothing when there is none).
    SetExisting(usize),
    /// `set_event_loop(None)`.
    SetNone,
    /// `new_event_loop()`, which must not change the current loop.
    New,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Get),
        2 => Just(Op::SetNew),
        1 => any::<usize>().prop_map(Op::SetExisting),
        1 => Just(Op::SetNone),
        2 => Just(Op::New),
    ]
}

fn new_policy() -> BaseDefaultEventLoopPolicy {
    BaseDefaultEventLoopPolicy::new(aio::SelectorEventLoop::new)
}

/// One thread's run of a sequence: the loops it made and the model of its
/// slot (an index into `loops`).
struct ThreadRun<'a> {
    policy: &'a BaseDefaultEventLoopPolicy,
    loops: Vec<EventLoop>,
    current: Option<usize>,
    no_current_loop: String,
}

impl ThreadRun<'_> {
    fn check_get(&self, step: usize) -> Result<(), String> {
        match (self.policy.get_event_loop(), self.current) {
            (Ok(got), Some(index)) if got == self.loops[index] => Ok(()),
            (Ok(got), Some(index)) => Err(format!(
                "step {step}: get_event_loop gave {got:?}, the model has loop #{index}"
            )),
            (Ok(got), None) => Err(format!(
                "step {step}: get_event_loop gave {got:?}, the model has no current loop"
            )),
            (Err(err), None) if err.kind() == ErrorKind::NoCurrentLoop => {
                if err.to_string() == self.no_current_loop {
                    Ok(())
                } else {
                    Err(format!(
                        "step {step}: message {:?}, expected {:?}",
                        err.to_string(),
                        self.no_current_loop
                    ))
                }
            }
            (Err(err), expected) => Err(format!(
                "step {step}: get_event_loop failed with {err:?}, the model has {expected:?}"
            )),
        }
    }

    fn new_loop(&mut self, step: usize) -> Result<usize, String> {
        let made = self
            .policy
            .new_event_loop()
            .map_err(|err| format!("step {step}: new_event_loop failed: {err:?}"))?;
        if self.loops.contains(&made) {
            return Err(format!("step {step}: new_event_loop returned a loop made before"));
        }
        self.loops.push(made);
        Ok(self.loops.len() - 1)
    }

    fn set(&mut self, step: usize, index: Option<usize>) -> Result<(), String> {
        let event_loop = index.map(|index| self.loops[index].clone());
        self.policy
            .set_event_loop(event_loop)
            .map_err(|err| format!("step {step}: set_event_loop({index:?}) failed: {err:?}"))?;
        self.current = index;
        Ok(())
    }

    fn apply(&mut self, step: usize, op: &Op) -> Result<(), String> {
        match op {
            Op::Get => return self.check_get(step),
            Op::SetNew => {
                let index = self.new_loop(step)?;
                self.set(step, Some(index))?;
            }
            Op::SetExisting(pick) => {
                if !self.loops.is_empty() {
                    self.set(step, Some(pick % self.loops.len()))?;
                }
            }
            Op::SetNone => self.set(step, None)?,
            Op::New => {
                self.new_loop(step)?;
            }
        }
        // Every step that changes something is followed by a read.
        self.check_get(step)
    }
}

/// Runs `ops` on the calling thread against `policy`, calling `sync` before
/// each of `steps` steps (steps past the end of `ops` do nothing). A mismatch
/// is returned rather than panicked, so a thread in lockstep with another
/// keeps stepping and never leaves it waiting at the barrier.
fn run_sequence(
    policy: &BaseDefaultEventLoopPolicy,
    ops: &[Op],
    steps: usize,
    sync: &dyn Fn(),
) -> Result<(), String> {
    let name = thread::current().name().unwrap_or("<unnamed>").to_owned();
    let mut run = ThreadRun {
        policy,
        loops: Vec::new(),
        current: None,
        no_current_loop: format!("There is no current event loop in thread '{name}'."),
    };
    let mut outcome = run.check_get(0);
    for step in 0..steps {
        sync();
        if let (Ok(()), Some(op)) = (&outcome, ops.get(step)) {
            outcome = run.apply(step, op);
        }
    }
    // Release this thread's slot on this thread, then close what it made.
    let cleared = policy.set_event_loop(None);
    for event_loop in &run.loops {
        if let Err(err) = event_loop.close() {
            outcome = outcome.and(Err(format!("closing a loop failed: {err:?}")));
        }
    }
    outcome.and(cleared.map_err(|err| format!("set_event_loop(None) at the end failed: {err:?}")))
}

/// Spawns a thread named `name` running `body`, and waits for its result.
fn on_thread(
    name: &str,
    body: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> mpsc::Receiver<Result<(), String>> {
    let (report, outcome) = mpsc::channel();
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // A panic drops `report`, which the receiver sees as a disconnect.
            let _ = report.send(body());
        })
        .expect("spawn a model thread");
    outcome
}

fn wait_for(outcome: &mpsc::Receiver<Result<(), String>>, name: &str) -> Result<(), String> {
    match outcome.recv_timeout(CASE_TIMEOUT) {
        Ok(result) => result.map_err(|err| format!("thread {name}: {err}")),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("thread {name} did not finish in {CASE_TIMEOUT:?}"))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("thread {name} panicked")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // cargo runs test binaries from the package root: failures are kept
        // in tests/proptest-regressions/, to be committed.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/proptest_policy.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn one_thread_matches_the_model(ops in vec(op(), 0..40)) {
        // test_events.py: PolicyTests.test_get_event_loop_thread,
        // test_get_event_loop_after_set_none, test_set_event_loop and
        // test_new_event_loop, as one state machine
        let steps = ops.len();
        let outcome = on_thread("policy-model", move || {
            let policy = new_policy();
            run_sequence(&policy, &ops, steps, &|| {})
        });
        let result = wait_for(&outcome, "policy-model");
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    #[test]
    fn two_threads_keep_separate_slots(a in vec(op(), 0..30), b in vec(op(), 0..30)) {
        // asyncio's BaseDefaultEventLoopPolicy._local is a threading.local:
        // what one thread sets is invisible to another
        let policy = Arc::new(new_policy());
        let barrier = Arc::new(Barrier::new(2));
        let steps = a.len().max(b.len());
        let spawn = |name: &'static str, ops: Vec<Op>| {
            let (policy, barrier) = (policy.clone(), barrier.clone());
            on_thread(name, move || {
                run_sequence(&policy, &ops, steps, &|| {
                    barrier.wait();
                })
            })
        };
        let first = spawn("policy-model-a", a);
        let second = spawn("policy-model-b", b);
        let first = wait_for(&first, "policy-model-a");
        let second = wait_for(&second, "policy-model-b");
        prop_assert!(first.is_ok(), "{}", first.unwrap_err());
        prop_assert!(second.is_ok(), "{}", second.unwrap_err());
    }
}
