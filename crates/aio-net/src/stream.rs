//! The `futures-io` traits of the stream types, [`TcpStream`](crate::TcpStream)
//! and [`UnixStream`](crate::UnixStream): `AsyncRead` and `AsyncWrite` on the
//! stream and on `&` the stream, with `poll_close` a write shutdown.
//!
//! A file of its own because both streams read, write and half-close their
//! [`Registered`](crate::registered::Registered) std stream the same way: the
//! impls are written once, here, as a macro each stream type invokes.

use std::io;

/// The result of a write shutdown as `poll_close` reports it: a connection
/// that is gone already (`NotConnected`, after a reset) is closed.
pub(crate) fn shutdown_write(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Implements `futures_io::AsyncRead` and `AsyncWrite` for each stream type
/// `$ty` and for `&$ty`, where `$ty`'s field `inner` is a
/// [`Registered`](crate::registered::Registered) std stream: reads and sends
/// wait for readiness, sends never raise SIGPIPE, flushing has nothing to do
/// and closing shuts the write half down. The impls on `$ty` forward to those
/// on `&$ty`, so that one task can read while another writes.
///
/// The impls sit in an unnamed `const` block, so that the imports they need
/// stay out of the invoking module.
macro_rules! impl_async_stream {
    ($($ty:ty),* $(,)?) => {$(
        const _: () = {
            use std::io::{self, IoSlice, IoSliceMut, Read};
            use std::net::Shutdown;
            use std::pin::Pin;
            use std::task::{Context, Poll};

            use aio_events::Interest;
            use futures_io::{AsyncRead, AsyncWrite};
            use socket2::SockRef;

            use $crate::stream::shutdown_write;
            use $crate::sys;

            impl AsyncRead for &$ty {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut [u8],
                ) -> Poll<io::Result<usize>> {
                    let io = self.inner.io();
                    self.inner.poll_io(Interest::Read, cx, || (&*io).read(buf))
                }

                fn poll_read_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &mut [IoSliceMut<'_>],
                ) -> Poll<io::Result<usize>> {
                    let io = self.inner.io();
                    self.inner
                        .poll_io(Interest::Read, cx, || (&*io).read_vectored(bufs))
                }
            }

            impl AsyncWrite for &$ty {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    if buf.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    let io = self.inner.io();
                    self.inner
                        .poll_io(Interest::Write, cx, || sys::send(SockRef::from(io), buf))
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    if bufs.iter().all(|b| b.is_empty()) {
                        return Poll::Ready(Ok(0));
                    }
                    let io = self.inner.io();
                    self.inner.poll_io(Interest::Write, cx, || {
                        sys::send_vectored(SockRef::from(io), bufs)
                    })
                }

                /// Nothing is buffered: every write went to the kernel.
                fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    Poll::Ready(Ok(()))
                }

                /// Shuts the write half down: the peer reads end of stream,
                /// and can still write back (asyncio's `write_eof`).
                fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    Poll::Ready(shutdown_write(self.inner.io().shutdown(Shutdown::Write)))
                }
            }

            impl AsyncRead for $ty {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut [u8],
                ) -> Poll<io::Result<usize>> {
                    Pin::new(&mut &*self).poll_read(cx, buf)
                }

                fn poll_read_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &mut [IoSliceMut<'_>],
                ) -> Poll<io::Result<usize>> {
                    Pin::new(&mut &*self).poll_read_vectored(cx, bufs)
                }
            }

            impl AsyncWrite for $ty {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    Pin::new(&mut &*self).poll_write(cx, buf)
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    Pin::new(&mut &*self).poll_write_vectored(cx, bufs)
                }

                fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    Pin::new(&mut &*self).poll_flush(cx)
                }

                fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    Pin::new(&mut &*self).poll_close(cx)
                }
            }
        };
    )*};
}
pub(crate) use impl_async_stream;
