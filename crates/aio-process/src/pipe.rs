//! The child's standard streams on the parent's side: pipes made
//! non-blocking and registered with the loop's selector, with `futures-io`
//! traits (asyncio's `_UnixReadPipeTransport` and `_UnixWritePipeTransport`,
//! reduced to streams).
//!
//! A file of its own because it is the only I/O of this crate; it mirrors
//! `aio-net`'s registered sockets: register once, try the operation, wait
//! for readiness on `WouldBlock`.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use aio_events::{EventLoop, Interest, IoRegistration};
use futures_io::{AsyncRead, AsyncWrite};

/// One end of a pipe, non-blocking and registered with a loop.
///
/// The registration is declared first, so it drops first: the selector
/// forgets the fd while it is still open (a closed fd number may already
/// name another file).
pub(crate) struct Pipe {
    registration: IoRegistration,
    file: File,
}

impl Pipe {
    /// Makes `fd` (the parent's end of a pipe std created) non-blocking and
    /// registers it with `event_loop`. The child's end is a file description
    /// of its own, so it stays blocking for the child.
    pub(crate) fn new(event_loop: &EventLoop, fd: OwnedFd) -> io::Result<Pipe> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        let registration = IoRegistration::new(event_loop, fd.as_raw_fd()).map_err(aio_events::into_io)?;
        Ok(Pipe {
            registration,
            file: File::from(fd),
        })
    }

    pub(crate) fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.registration
            .poll_io(Interest::Read, cx, || (&self.file).read(buf))
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.registration
            .poll_io(Interest::Write, cx, || (&self.file).write(buf))
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("fd", &self.file.as_raw_fd())
            .finish()
    }
}

/// The child's stdin: write to it with [`AsyncWrite`]; `poll_close` (or
/// dropping it) closes the pipe, so the child reads end of file.
#[derive(Debug)]
pub struct ChildStdin {
    /// `None` once closed.
    pipe: Option<Pipe>,
}

impl ChildStdin {
    pub(crate) fn new(event_loop: &EventLoop, stdin: std::process::ChildStdin) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            pipe: Some(Pipe::new(event_loop, stdin.into())?),
        })
    }

    pub(crate) fn into_pipe(self) -> Option<Pipe> {
        self.pipe
    }

    fn open_pipe(&self) -> io::Result<&Pipe> {
        self.pipe
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the child's stdin is closed"))
    }
}

impl AsyncWrite for ChildStdin {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.open_pipe() {
            Ok(pipe) => pipe.poll_write(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    /// A pipe has no buffer of ours to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the pipe (deregistered first, then the fd closed); closing
    /// again does nothing.
    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pipe = None;
        Poll::Ready(Ok(()))
    }
}

/// Reading ends: stdout and stderr are the same but for their names.
macro_rules! read_pipe {
    ($(#[$doc:meta])* $name:ident, $std:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            pipe: Pipe,
        }

        impl $name {
            pub(crate) fn new(event_loop: &EventLoop, pipe: $std) -> io::Result<$name> {
                Ok($name {
                    pipe: Pipe::new(event_loop, pipe.into())?,
                })
            }

            pub(crate) fn into_pipe(self) -> Pipe {
                self.pipe
            }
        }

        impl AsyncRead for $name {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                self.pipe.poll_read(cx, buf)
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.as_fd().as_raw_fd()
            }
        }
    };
}

read_pipe!(
    /// The child's stdout: read it with [`AsyncRead`]; 0 bytes is end of
    /// file (the child, and every process it passed the pipe to, closed it).
    ChildStdout,
    std::process::ChildStdout
);
read_pipe!(
    /// The child's stderr: read it with [`AsyncRead`]; 0 bytes is end of
    /// file.
    ChildStderr,
    std::process::ChildStderr
);
