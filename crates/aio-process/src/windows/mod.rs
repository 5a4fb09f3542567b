//! The Windows half of `aio-process`: a child named by its process handle
//! and waited for by the loop ([`process`]), and its standard streams on
//! overlapped named pipes ([`pipe`]).
//!
//! A module of its own so that every Win32 call and every `unsafe` of the
//! Windows build sits here, as `child_pid.rs` and `pipe.rs`'s `Pipe` hold the
//! Unix ones. Both stand on one loop method,
//! [`wait_for_handle`](aio_events::AbstractEventLoop::wait_for_handle), which
//! only the `ProactorEventLoop` offers.

pub(crate) mod pipe;
pub(crate) mod process;
