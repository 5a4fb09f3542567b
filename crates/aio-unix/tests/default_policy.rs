//! A loop made by hand installs the platform's default policy as the global
//! default: layers that ask the global policy (subprocesses, for their child
//! watcher) work without the facade's policy functions having run.
//!
//! A file of its own because the global policy is process-global: this test
//! binary is its own process and holds this one test.
#![cfg(unix)]

use aio_events::{ErrorKind, get_event_loop_policy};

#[test]
fn a_loop_made_by_hand_installs_the_default_policy() {
    let event_loop = aio_unix::UnixSelectorEventLoop::new().expect("a loop");
    let policy = get_event_loop_policy();
    let made = policy.new_event_loop().expect("the default policy makes loops");
    match policy.get_child_watcher() {
        Ok(_) => {}
        Err(err) => assert_ne!(err.kind(), ErrorKind::Unsupported, "{err}"),
    }
    made.close().unwrap();
    event_loop.close().unwrap();
}
