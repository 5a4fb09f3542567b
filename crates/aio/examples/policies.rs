//! Swapping layers: a custom policy (counting the loops it makes) installed
//! globally, then a loop factory handed to a `Runner`, bypassing the policy.
//!
//! `cargo run --example policies`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aio::{BaseDefaultEventLoopPolicy, Error, EventLoop, EventLoopPolicy};

/// The base thread-local policy, plus a count of the loops it made.
struct CountingPolicy {
    base: BaseDefaultEventLoopPolicy,
    made: Arc<AtomicUsize>,
}

impl EventLoopPolicy for CountingPolicy {
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        self.base.get_event_loop()
    }

    fn set_event_loop(&self, event_loop: Option<EventLoop>) -> Result<(), Error> {
        self.base.set_event_loop(event_loop)
    }

    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        self.made.fetch_add(1, Ordering::Relaxed);
        self.base.new_event_loop()
    }
}

fn main() -> Result<(), Error> {
    let made = Arc::new(AtomicUsize::new(0));
    aio::set_event_loop_policy(Some(Arc::new(CountingPolicy {
        base: BaseDefaultEventLoopPolicy::new(aio::SelectorEventLoop::new),
        made: made.clone(),
    })));
    aio::run(async { println!("ran under the counting policy") })?;
    println!("the policy made {} loop(s)", made.load(Ordering::Relaxed));

    // A loop factory: the runner uses this loop and never asks the policy.
    let mut runner = aio::Runner::new().debug(true).loop_factory(|| {
        let event_loop = aio::SelectorEventLoop::new()?;
        println!("the factory made {event_loop:?}");
        Ok(event_loop)
    });
    let debug = runner.run(async { aio::get_running_loop().map(|l| l.get_debug()) })??;
    println!("factory loop in debug mode: {debug}");
    runner.close();
    println!("the policy still made {} loop(s)", made.load(Ordering::Relaxed));

    aio::set_event_loop_policy(None);
    Ok(())
}
