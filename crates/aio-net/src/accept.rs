//! The accept loop every listener shares: asyncio's `_accept_connection`,
//! which keeps a server alive when the process runs out of descriptors.
//!
//! A file of its own because the rule is the same for TCP and Unix
//! listeners and is the one place where a socket talks to the loop's
//! exception handler.

use std::io;

use aio_events::{ExceptionContext, Interest};

use crate::registered::{Registered, Source};
use crate::sys;

/// The message the exception handler receives when a listener runs out of
/// descriptors (asyncio's wording); the context's exception is the OS error.
pub const OUT_OF_RESOURCES: &str = "socket.accept() out of system resource";

/// Accepts one connection with `accept_once`, waiting for readiness.
///
/// - A connection reset while queued (`ECONNABORTED`) is skipped, as asyncio
///   does.
/// - Out of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`,
///   `ENOMEM`): the error goes to the loop's exception handler, accepting
///   stops for [`sys::ACCEPT_RETRY_DELAY`] and then resumes. The pending
///   connection stays in the backlog meanwhile. Polling again at once would
///   spin: the listener stays readable, and the accept keeps failing until
///   someone closes a descriptor.
/// - Any other error is returned.
pub(crate) async fn accept<S: Source, T>(
    listener: &Registered<S>,
    mut accept_once: impl FnMut(&S) -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match listener
            .run_io(Interest::Read, || accept_once(listener.io()))
            .await
        {
            Ok(accepted) => return Ok(accepted),
            Err(err) if sys::accept_aborted(&err) => {}
            Err(err) if sys::out_of_resources(&err) => {
                listener.event_loop().call_exception_handler(
                    ExceptionContext::new(OUT_OF_RESOURCES).with_exception(err.to_string()),
                );
                aio_events::sleep(sys::ACCEPT_RETRY_DELAY).await;
            }
            Err(err) => return Err(err),
        }
    }
}
