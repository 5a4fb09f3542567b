//! `communicate`: feed the child's stdin while draining its stdout and
//! stderr, all three at once on the one task, so that no pipe can fill up
//! while the parent waits on another (asyncio's `Process.communicate`, which
//! gathers `_feed_stdin` and two `_read_stream`s).
//!
//! A file of its own because the three legs are small state machines polled
//! together by hand: this crate has no `join` to lean on.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use crate::pipe::Pipe;

/// How much a drain reads per call.
const CHUNK: usize = 64 * 1024;

/// Reads a drain makes in one poll before it lets the task yield, so that a
/// child writing without pause cannot keep the other legs (or the loop)
/// waiting.
const READS_PER_POLL: usize = 16;

/// Writes `input` to the pipe, then closes it. A child that closed its end
/// first is not an error (asyncio ignores `BrokenPipeError` and
/// `ConnectionResetError` here).
struct Feed<'a> {
    pipe: Option<Pipe>,
    input: &'a [u8],
}

impl Feed<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(pipe) = &self.pipe else {
            return Poll::Ready(Ok(()));
        };
        while !self.input.is_empty() {
            match pipe.poll_write(cx, self.input) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the child's stdin took no bytes",
                    )));
                }
                Poll::Ready(Ok(written)) => self.input = &self.input[written..],
                Poll::Ready(Err(err)) if is_broken_pipe(&err) => break,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // The last write may still be in flight (Windows' overlapped
        // writes): its end, or its broken pipe, comes first.
        if self.input.is_empty() {
            match pipe.poll_flush(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) if !is_broken_pipe(&err) => return Poll::Ready(Err(err)),
                Poll::Ready(_) => {}
            }
        }
        // Closing the pipe is how the child learns the input has ended.
        self.pipe = None;
        Poll::Ready(Ok(()))
    }
}

/// The errors of a child that closed its stdin early, which `communicate`
/// ignores.
fn is_broken_pipe(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// Reads the pipe to its end into `output`, then closes it.
struct Drain {
    pipe: Option<Pipe>,
    output: Vec<u8>,
}

impl Drain {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(pipe) = &self.pipe else {
            return Poll::Ready(Ok(()));
        };
        for _ in 0..READS_PER_POLL {
            let filled = self.output.len();
            self.output.resize(filled + CHUNK, 0);
            let read = pipe.poll_read(cx, &mut self.output[filled..]);
            let got = match &read {
                Poll::Ready(Ok(got)) => *got,
                _ => 0,
            };
            self.output.truncate(filled + got);
            match read {
                Poll::Ready(Ok(0)) => {
                    self.pipe = None;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Still data after a full budget: come back after the others.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Feeds `input` to `stdin` (then closes it) and reads `stdout` and
/// `stderr` to their ends, concurrently; gives what was read. The first
/// error ends it, and every pipe is closed whatever happens.
pub(crate) async fn exchange(
    stdin: Option<Pipe>,
    input: &[u8],
    stdout: Option<Pipe>,
    stderr: Option<Pipe>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut feed = Feed { pipe: stdin, input };
    let mut out = Drain {
        pipe: stdout,
        output: Vec::new(),
    };
    let mut err = Drain {
        pipe: stderr,
        output: Vec::new(),
    };
    poll_fn(|cx| {
        // Every leg is polled each time, so each registers its waker.
        let fed = feed.poll(cx)?;
        let out_done = out.poll(cx)?;
        let err_done = err.poll(cx)?;
        if fed.is_ready() && out_done.is_ready() && err_done.is_ready() {
            Poll::Ready(Ok::<(), io::Error>(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    Ok((out.output, err.output))
}
