//! The one error type of aio's loops and policies.
//!
//! It is a file of its own because every other module returns it: an opaque
//! struct with a [`kind`](Error::kind), as `regex` and `std::io` do, whose
//! `Display` is asyncio's wording for the same failure.

use std::fmt;

/// What went wrong, in asyncio's vocabulary.
///
/// Each variant names the asyncio exception (or `RuntimeError` message) it
/// stands for. Match on it; read the message for the details.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `run()` was called while a loop was running on this thread.
    RunningLoop,
    /// The `Runner` was used after `close()`.
    RunnerClosed,
    /// The policy has no current loop for this thread.
    NoCurrentLoop,
    /// No loop is running on this thread.
    NoRunningLoop,
    /// The event loop is closed.
    Closed,
    /// The loop is running already, another loop runs on this thread, or a
    /// running loop was asked to close.
    AlreadyRunning,
    /// `stop()` ended the loop before the future completed.
    Stopped,
    /// A task or future was cancelled.
    Cancelled,
    /// Ctrl-C ended `run()` (asyncio's `KeyboardInterrupt`).
    Interrupted,
    /// The awaited task panicked.
    Panicked,
    /// An argument was out of range or of the wrong kind.
    InvalidArgument,
    /// The loop or policy does not offer this operation.
    Unsupported,
    /// An operating-system error; [`std::error::Error::source`] is the `io::Error`.
    Io,
}

/// The error of every loop and policy operation.
///
/// `Display` gives the message (asyncio's wording where asyncio has one);
/// [`kind`](Error::kind) says which failure it is.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<std::io::Error>,
}

impl Error {
    /// An error of `kind` whose `Display` is `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Which failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether this error reports a cancellation (asyncio's `CancelledError`).
    pub fn is_cancelled(&self) -> bool {
        self.kind == ErrorKind::Cancelled
    }

    /// This error as an `io::Error`: the OS error itself for kind `Io`,
    /// otherwise this error wrapped (kind `Other`).
    pub fn into_io(self) -> std::io::Error {
        match self.source {
            Some(source) => source,
            None => std::io::Error::other(self),
        }
    }

    /// `Event loop is closed`.
    pub fn closed() -> Error {
        Error::new(ErrorKind::Closed, "Event loop is closed")
    }

    /// `no running event loop`.
    pub fn no_running_loop() -> Error {
        Error::new(ErrorKind::NoRunningLoop, "no running event loop")
    }

    /// The error a cancelled task gives when awaited.
    pub fn cancelled() -> Error {
        Error::new(ErrorKind::Cancelled, "the task was cancelled")
    }

    /// The operation is not offered by this loop or policy.
    pub fn unsupported(what: impl fmt::Display) -> Error {
        Error::new(
            ErrorKind::Unsupported,
            format!("{what} is not supported by this event loop"),
        )
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error {
            kind: ErrorKind::Io,
            message: err.to_string(),
            source: Some(err),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_source() {
        let err = Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(err.kind(), ErrorKind::Io);
        let source = std::error::Error::source(&err).expect("an io::Error source");
        assert!(source.to_string().contains("pipe"), "{source}");
    }

    #[test]
    fn display_is_the_message() {
        assert_eq!(Error::closed().to_string(), "Event loop is closed");
        assert!(Error::cancelled().is_cancelled());
        assert!(!Error::closed().is_cancelled());
    }

    #[test]
    fn error_is_send_and_sync() {
        fn check<T: Send + Sync + std::error::Error + 'static>() {}
        check::<Error>();
    }
}
