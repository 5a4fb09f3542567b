//! The child's standard streams on the parent's side, with `futures-io`
//! traits: the public [`ChildStdin`], [`ChildStdout`] and [`ChildStderr`] on
//! every platform, and the Unix `Pipe` under them: pipes made non-blocking
//! and registered with the loop's selector (asyncio's
//! `_UnixReadPipeTransport` and `_UnixWritePipeTransport`, reduced to
//! streams). On Windows the `Pipe` is `windows/pipe.rs`'s, on overlapped I/O.
//!
//! A file of its own because it is the only I/O of this crate; the Unix pipe
//! mirrors `aio-net`'s registered sockets: register once, try the operation,
//! wait for readiness on `WouldBlock`.

#[cfg(unix)]
use std::fmt;
#[cfg(unix)]
use std::fs::File;
use std::io;
#[cfg(unix)]
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, RawHandle};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aio_events::EventLoop;
#[cfg(unix)]
use aio_events::{Interest, IoRegistration};
use futures_io::{AsyncRead, AsyncWrite};

#[cfg(windows)]
pub(crate) use crate::windows::pipe::Pipe;

/// One end of a pipe, non-blocking and registered with a loop.
///
/// The registration is declared first, so it drops first: the selector
/// forgets the fd while it is still open (a closed fd number may already
/// name another file).
#[cfg(unix)]
pub(crate) struct Pipe {
    registration: IoRegistration,
    file: File,
}

#[cfg(unix)]
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

    /// A write is done when `write` returns: nothing is in flight.
    pub(crate) fn poll_flush(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(unix)]
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

    /// Waits until what was written has left this side: at once on Unix,
    /// where `write` hands the bytes to the kernel; on Windows, until the
    /// overlapped write in flight completes (its error, if any, is this
    /// call's).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.pipe {
            Some(pipe) => pipe.poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Flushes, then closes the pipe (deregistered first, then the fd
    /// closed); closing again does nothing.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = ready!(self.as_mut().poll_flush(cx));
        self.pipe = None;
        Poll::Ready(flushed)
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

        #[cfg(unix)]
        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.as_fd()
            }
        }

        #[cfg(unix)]
        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.as_fd().as_raw_fd()
            }
        }

        #[cfg(windows)]
        impl AsHandle for $name {
            fn as_handle(&self) -> BorrowedHandle<'_> {
                self.pipe.as_handle()
            }
        }

        #[cfg(windows)]
        impl AsRawHandle for $name {
            fn as_raw_handle(&self) -> RawHandle {
                self.pipe.as_handle().as_raw_handle()
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
