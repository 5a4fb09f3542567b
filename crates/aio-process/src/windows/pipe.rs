//! The child's standard streams on Windows: overlapped I/O on the named
//! pipes std makes, completed through the loop's wait for an event (asyncio's
//! `_ProactorReadPipeTransport` and `_ProactorBaseWritePipeTransport` on
//! `IocpProactor.recv` and `send`, reduced to streams).
//!
//! A file of its own because the memory rules of overlapped I/O are this
//! file: while an operation is in flight the kernel may write into its
//! `OVERLAPPED` and its buffer at any moment, so both live in one heap block
//! (`OpMemory`, by raw pointer, never a `&mut` while in flight) that is
//! freed only once the operation is seen complete.
//!
//! How one operation goes. std creates the parent's end of a piped stdio
//! as an asynchronous (overlapped) named pipe (`NtCreateNamedPipeFile`
//! without `FILE_SYNCHRONOUS_IO_*`, 64 KiB each way), so `ReadFile` and
//! `WriteFile` take an `OVERLAPPED` whose manual-reset event the kernel sets
//! on completion. An operation that completes at once is done. One that is
//! pending (`ERROR_IO_PENDING`) is waited for by the loop
//! ([`wait_for_handle`](aio_events::windows::wait_for_handle) on the event),
//! whose callback wakes the task; the task then reads the outcome with
//! `GetOverlappedResult` without waiting. The pipe handle is not associated
//! with an IOCP: the loop's IOCP belongs to `polling`, which would take our
//! completion packets for its own.
//!
//! Reads go through the block's buffer: a read asks for at most what the
//! caller's buffer holds (64 KiB at most) and hands the bytes out once done.
//! End of file is `ERROR_BROKEN_PIPE` or `ERROR_HANDLE_EOF`, read as `Ok(0)`;
//! a successful read of 0 bytes (a zero-length write on the other side) is
//! not end of file and is read again.
//!
//! Writes are taken as soon as they are in flight (as mio's named pipes do):
//! `poll_write` copies up to 64 KiB into the block, starts the write and
//! answers with its length; the next write (or `poll_flush`) waits for it to
//! complete, and an error of a write that was in flight is the next call's.
//! That is what a Unix pipe gives too: a `write` that returned has handed
//! the bytes over.
//!
//! Dropping a pipe with an operation in flight: a read is cancelled
//! (`CancelIoEx`); a write is left to finish, so that what was accepted
//! reaches the child (as on Unix, where it sits in the kernel's buffer).
//! Either way the handle, the event and the block outlive the operation:
//! if it has not completed by the time of the drop, they go to a thread
//! (`aio-pipe-orphan`) that waits for the completion with
//! `GetOverlappedResult` and then frees them; a write to a child that
//! never reads keeps that thread until the child exits. If no thread can be
//! made, the block is leaked rather than freed under the kernel.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, OwnedHandle, RawHandle};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use aio_events::EventLoop;
use aio_events::windows::HandleWait;
use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_HANDLE_EOF, ERROR_IO_INCOMPLETE, ERROR_IO_PENDING, HANDLE,
};
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Threading::CreateEventW;

/// The most one operation moves: the pipes std makes buffer 64 KiB.
const CHUNK: usize = 64 * 1024;

/// What the kernel may write (or read) while an operation is in flight.
struct OpMemory {
    overlapped: OVERLAPPED,
    buffer: Vec<u8>,
}

/// An operation, as far as it must be remembered while in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    /// A write of `buffer[from..from + len]`.
    Write {
        from: usize,
        len: usize,
    },
}

/// The outcome of starting an operation.
enum Started {
    /// Done at once (or refused at once).
    Done(io::Result<usize>),
    /// Pending: the event is set when it completes.
    InFlight,
}

/// The pipe's handle, the event of its `OVERLAPPED`, and the operation
/// memory: everything that must outlive an operation in flight. One owner at
/// a time (the [`Pipe`], then perhaps the orphan thread).
struct Channel {
    memory: NonNull<OpMemory>,
    in_flight: bool,
    event: OwnedHandle,
    handle: OwnedHandle,
}

// SAFETY: the memory block is owned by the channel alone (made by
// `Box::into_raw`, freed by its drop); handles may be used from any thread.
// The channel moves to another thread only whole, to the orphan thread.
unsafe impl Send for Channel {}

impl Channel {
    fn new(handle: OwnedHandle) -> io::Result<Channel> {
        // SAFETY: no security attributes and no name are valid arguments;
        // manual reset, as the kernel's use of an OVERLAPPED's event needs.
        let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if event.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `event` was just created and is owned by no one else.
        let event = unsafe {
            <OwnedHandle as std::os::windows::io::FromRawHandle>::from_raw_handle(event as RawHandle)
        };
        let memory = Box::new(OpMemory {
            // SAFETY: an all-zero OVERLAPPED (offsets, status, no event) is
            // valid; `start` fills it in before each operation.
            overlapped: unsafe { std::mem::zeroed() },
            buffer: Vec::new(),
        });
        Ok(Channel {
            memory: NonNull::from(Box::leak(memory)),
            in_flight: false,
            event,
            handle,
        })
    }

    fn raw_handle(&self) -> HANDLE {
        self.handle.as_raw_handle() as HANDLE
    }

    /// The bytes of the buffer, while nothing is in flight.
    fn buffer(&self) -> &[u8] {
        assert!(
            !self.in_flight,
            "the buffer is the kernel's while an operation is in flight"
        );
        // SAFETY: nothing is in flight, so the kernel does not touch the
        // block, and `&self` keeps this crate from changing it.
        unsafe { &(*self.memory.as_ptr()).buffer }
    }

    /// Copies `data` (at most [`CHUNK`] bytes) to the start of the buffer.
    fn fill(&mut self, data: &[u8]) {
        assert!(
            !self.in_flight,
            "the buffer is the kernel's while an operation is in flight"
        );
        // SAFETY: as in `buffer`, and `&mut self` makes this the only access.
        let buffer = unsafe { &mut (*self.memory.as_ptr()).buffer };
        buffer.clear();
        buffer.extend_from_slice(data);
    }

    /// Starts `op`: a read of up to `len` bytes into the start of the
    /// buffer, or the write it names.
    fn start(&mut self, op: Op, len: usize) -> Started {
        assert!(!self.in_flight, "one operation at a time");
        let memory = self.memory.as_ptr();
        // SAFETY: nothing is in flight, so nothing but `&mut self` touches
        // the block; the references end before the operation starts.
        let (data, len) = unsafe {
            let memory = &mut *memory;
            memory.overlapped = std::mem::zeroed();
            memory.overlapped.hEvent = self.event.as_raw_handle() as HANDLE;
            match op {
                Op::Read => {
                    if memory.buffer.len() < len {
                        memory.buffer.resize(len, 0);
                    }
                    (memory.buffer.as_mut_ptr(), len)
                }
                Op::Write { from, len } => {
                    assert!(from + len <= memory.buffer.len());
                    (memory.buffer.as_mut_ptr().add(from), len)
                }
            }
        };
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        // SAFETY: the handle is open (owned here); `data` points at `len`
        // bytes of the block and the OVERLAPPED is the block's, and the
        // block stays allocated and untouched until the operation is seen
        // complete (`poll_result`, `wait_result`), or is leaked (`Drop`).
        // The byte count pointer is null, as overlapped calls should pass.
        let done = unsafe {
            let overlapped = &raw mut (*memory).overlapped;
            match op {
                Op::Read => ReadFile(self.raw_handle(), data, len, std::ptr::null_mut(), overlapped),
                Op::Write { .. } => WriteFile(self.raw_handle(), data, len, std::ptr::null_mut(), overlapped),
            }
        };
        if done == 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(ERROR_IO_PENDING as i32) {
                // Refused: nothing was queued.
                return Started::Done(Err(err));
            }
        }
        self.in_flight = true;
        if done != 0 {
            // Completed at once: the count is in the OVERLAPPED.
            if let Some(result) = self.poll_result() {
                return Started::Done(result);
            }
        }
        Started::InFlight
    }

    /// The outcome of the operation in flight, if it has completed.
    fn poll_result(&mut self) -> Option<io::Result<usize>> {
        self.result(false)
    }

    /// Blocks until the operation in flight completes.
    fn wait_result(&mut self) -> io::Result<usize> {
        self.result(true).unwrap_or(Ok(0))
    }

    fn result(&mut self, wait: bool) -> Option<io::Result<usize>> {
        debug_assert!(self.in_flight);
        let mut transferred = 0u32;
        // SAFETY: the handle is open; the OVERLAPPED is the one of the
        // operation in flight, alive in the block; GetOverlappedResult reads
        // it (and with `wait`, waits on its event) and writes `transferred`.
        let ok = unsafe {
            GetOverlappedResult(
                self.raw_handle(),
                &raw const (*self.memory.as_ptr()).overlapped,
                &mut transferred,
                i32::from(wait),
            )
        };
        if ok != 0 {
            self.in_flight = false;
            return Some(Ok(transferred as usize));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(ERROR_IO_INCOMPLETE as i32) {
            return None;
        }
        self.in_flight = false;
        Some(Err(err))
    }

    /// Asks the kernel to end the operation in flight early (it still
    /// completes, with `ERROR_OPERATION_ABORTED`, and must be waited for).
    fn cancel(&self) {
        // SAFETY: the handle is open and the OVERLAPPED names our operation;
        // an operation that already completed makes this fail harmlessly.
        unsafe { CancelIoEx(self.raw_handle(), &raw const (*self.memory.as_ptr()).overlapped) };
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if self.in_flight {
            // Never seen complete (the orphan thread could not be made): the
            // kernel may still write into the block, so it is leaked. The
            // handles close after this; the kernel holds its own references
            // to the pipe and the event for the operation.
            return;
        }
        // SAFETY: made by `Box::leak` in `new`, freed only here, and nothing
        // is in flight.
        drop(unsafe { Box::from_raw(self.memory.as_ptr()) });
    }
}

/// Where a pipe stands between calls.
enum State {
    Idle,
    /// An operation is in flight; `wait` is the loop's wait for its event
    /// (`None` if the loop refused one: the pipe then fails its calls).
    InFlight {
        op: Op,
        wait: Option<HandleWait>,
    },
    /// Read bytes not yet handed out: `buffer[start..end]`.
    Buffered {
        start: usize,
        end: usize,
    },
    /// The other side closed: every read is `Ok(0)`.
    Eof,
}

struct Inner {
    /// `None` only once the drop has taken it.
    channel: Option<Channel>,
    state: State,
}

/// One end of a pipe, with overlapped operations completed through the
/// loop that was running when it was made.
pub(crate) struct Pipe {
    event_loop: EventLoop,
    inner: RefCell<Inner>,
    /// The waker of the task waiting for the operation in flight, taken by
    /// the loop's callback when the event is set.
    waker: Arc<Mutex<Option<Waker>>>,
    /// The pipe's handle, owned by the channel, for `as_handle`.
    raw: RawHandle,
}

impl Pipe {
    /// Takes `handle` (the parent's end of a pipe std created, opened for
    /// overlapped I/O) for `event_loop`, which must wait for handles.
    pub(crate) fn new(event_loop: &EventLoop, handle: OwnedHandle) -> io::Result<Pipe> {
        let raw = handle.as_raw_handle();
        Ok(Pipe {
            event_loop: event_loop.clone(),
            inner: RefCell::new(Inner {
                channel: Some(Channel::new(handle)?),
                state: State::Idle,
            }),
            waker: Arc::default(),
            raw,
        })
    }

    pub(crate) fn as_handle(&self) -> BorrowedHandle<'_> {
        // SAFETY: the channel owns the handle and keeps it open for as long
        // as this pipe lives (it leaves only in the drop).
        unsafe { BorrowedHandle::borrow_raw(self.raw) }
    }

    pub(crate) fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let Some(channel) = inner.channel.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        loop {
            match &mut inner.state {
                State::Eof => return Poll::Ready(Ok(0)),
                State::Buffered { start, end } => {
                    let n = buf.len().min(*end - *start);
                    buf[..n].copy_from_slice(&channel.buffer()[*start..*start + n]);
                    *start += n;
                    if start == end {
                        inner.state = State::Idle;
                    }
                    return Poll::Ready(Ok(n));
                }
                State::InFlight { op, wait } => {
                    let op = *op;
                    let Some(result) = self.poll_completion(channel, wait, cx) else {
                        return Poll::Pending;
                    };
                    inner.state = State::Idle;
                    match (op, result) {
                        (Op::Read, result) => {
                            if let Some(ready) = read_done(&mut inner.state, result) {
                                return Poll::Ready(ready);
                            }
                        }
                        // A write on a reading end: not made by this crate.
                        (Op::Write { .. }, Err(err)) => return Poll::Ready(Err(err)),
                        (Op::Write { .. }, Ok(_)) => {}
                    }
                }
                State::Idle => {
                    if buf.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    match channel.start(Op::Read, buf.len().min(CHUNK)) {
                        Started::Done(result) => {
                            if let Some(ready) = read_done(&mut inner.state, result) {
                                return Poll::Ready(ready);
                            }
                        }
                        Started::InFlight => {
                            if let Err(err) = self.wait_in_flight(channel, &mut inner.state, Op::Read) {
                                return Poll::Ready(Err(err));
                            }
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let Some(channel) = inner.channel.as_mut() else {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected)));
        };
        // The write before this one first: it holds the buffer.
        match self.settle_write(channel, &mut inner.state, cx) {
            Some(Poll::Pending) => return Poll::Pending,
            Some(Poll::Ready(Err(err))) => return Poll::Ready(Err(err)),
            Some(Poll::Ready(Ok(()))) | None => {}
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len().min(CHUNK);
        channel.fill(&buf[..len]);
        let op = Op::Write { from: 0, len };
        match channel.start(op, len) {
            // Done at once: exactly what was written.
            Started::Done(result) => Poll::Ready(result),
            // Taken: the write completes in the background.
            Started::InFlight => match self.wait_in_flight(channel, &mut inner.state, op) {
                Ok(()) => Poll::Ready(Ok(len)),
                Err(err) => Poll::Ready(Err(err)),
            },
        }
    }

    /// Ready once no write is in flight; the error of one that failed.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let Some(channel) = inner.channel.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        self.settle_write(channel, &mut inner.state, cx)
            .unwrap_or(Poll::Ready(Ok(())))
    }

    /// Brings a write in flight to an end: `None` when there was none,
    /// `Pending` while it goes on, else how it ended (its error is the
    /// caller's to give). A write that completed short is continued with the
    /// rest.
    fn settle_write(
        &self,
        channel: &mut Channel,
        state: &mut State,
        cx: &mut Context<'_>,
    ) -> Option<Poll<io::Result<()>>> {
        loop {
            match state {
                State::InFlight { op, wait } => {
                    let op = *op;
                    let Some(result) = self.poll_completion(channel, wait, cx) else {
                        return Some(Poll::Pending);
                    };
                    *state = State::Idle;
                    let (from, len) = match op {
                        Op::Write { from, len } => (from, len),
                        // A read on a writing end: not made by this crate.
                        Op::Read => return Some(Poll::Ready(result.map(drop))),
                    };
                    match result {
                        Ok(written) if written < len => {
                            let rest = Op::Write {
                                from: from + written,
                                len: len - written,
                            };
                            match channel.start(rest, len - written) {
                                Started::Done(Ok(_)) => return Some(Poll::Ready(Ok(()))),
                                Started::Done(Err(err)) => return Some(Poll::Ready(Err(err))),
                                Started::InFlight => {
                                    if let Err(err) = self.wait_in_flight(channel, state, rest) {
                                        return Some(Poll::Ready(Err(err)));
                                    }
                                }
                            }
                        }
                        Ok(_) => return Some(Poll::Ready(Ok(()))),
                        Err(err) => return Some(Poll::Ready(Err(err))),
                    }
                }
                _ => return None,
            }
        }
    }

    /// `Some` with the outcome once the operation in flight has completed
    /// (its wait is then dropped); otherwise keeps `cx`'s waker for the
    /// loop's callback and gives `None`.
    fn poll_completion(
        &self,
        channel: &mut Channel,
        wait: &mut Option<HandleWait>,
        cx: &mut Context<'_>,
    ) -> Option<io::Result<usize>> {
        // Kept before asking, so a completion after the question still
        // finds the waker.
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        if let Some(result) = channel.poll_result() {
            drop(wait.take());
            return Some(result);
        }
        if wait.is_none() {
            return Some(Err(io::Error::other(
                "the pipe's loop cannot wait for its operation (the loop is closed)",
            )));
        }
        None
    }

    /// Has the loop wait for the event of the operation just started, and
    /// records it in flight. If the loop refuses, the operation is
    /// cancelled (the pipe is of no more use) and stays recorded, so the
    /// drop still waits for it.
    fn wait_in_flight(&self, channel: &Channel, state: &mut State, op: Op) -> io::Result<()> {
        let waker = Arc::clone(&self.waker);
        let registered = aio_events::windows::wait_for_handle(
            &self.event_loop,
            channel.event.as_raw_handle(),
            move || {
                let waker = waker.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(waker) = waker {
                    waker.wake();
                }
            },
        );
        match registered {
            Ok(wait) => {
                *state = State::InFlight { op, wait: Some(wait) };
                Ok(())
            }
            Err(err) => {
                channel.cancel();
                *state = State::InFlight { op, wait: None };
                Err(aio_events::into_io(err))
            }
        }
    }
}

/// What a completed read leaves: `Some` with the answer to give, or `None`
/// to go round again (bytes are now buffered, or 0 bytes were read without
/// the end of the stream).
fn read_done(state: &mut State, result: io::Result<usize>) -> Option<io::Result<usize>> {
    match result {
        Ok(0) => None,
        Ok(n) => {
            *state = State::Buffered { start: 0, end: n };
            None
        }
        Err(err) if is_end_of_file(&err) => {
            *state = State::Eof;
            Some(Ok(0))
        }
        Err(err) => Some(Err(err)),
    }
}

/// How a pipe says its other side is closed to a reader.
fn is_end_of_file(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == ERROR_BROKEN_PIPE as i32 || code == ERROR_HANDLE_EOF as i32)
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        let Some(mut channel) = inner.channel.take() else {
            return;
        };
        let State::InFlight { op, wait } = std::mem::replace(&mut inner.state, State::Idle) else {
            return;
        };
        // The loop stops watching the event (which the channel keeps open).
        drop(wait);
        if op == Op::Read {
            channel.cancel();
        }
        if channel.poll_result().is_some() {
            // Over already (a cancelled read usually is): freed here.
            return;
        }
        let orphan = std::thread::Builder::new()
            .name(String::from("aio-pipe-orphan"))
            .spawn(move || {
                let mut channel = channel;
                // Whatever the outcome, it is over; nobody is left to tell.
                let _ = channel.wait_result();
            });
        // No thread: the closure, and the channel in it, were dropped, and
        // the channel's drop leaked the block still in flight.
        drop(orphan);
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe").field("handle", &self.raw).finish()
    }
}
