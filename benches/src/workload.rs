//! The vocabulary shared by the binary and the runtime modules: which
//! workloads and runtimes exist, how big each workload is, the deterministic
//! random source, and the one-line report `cargo xtask bench` parses.

use std::fmt;
use std::time::Duration;

use crate::BoxError;
use crate::floor::Backend;

/// One benchmark program, the same on every runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Callbacks (aio) or tasks (peers), each scheduling the next.
    CallSoonChain,
    /// One task yielding to its scheduler again and again.
    Yield,
    /// Spawn a batch of trivial tasks, await them all, repeat.
    SpawnAwait,
    /// Many concurrent tasks, each sleeping a pseudo-random 0–10 ms.
    Timers,
    /// Callbacks posted from another thread and counted on the loop.
    Threadsafe,
    /// Live heap bytes per parked task.
    TaskBytes,
    /// Live heap bytes per registered, pending sleep.
    TimerBytes,
    /// One loopback TCP connection, 1 KiB messages echoed one at a time.
    TcpPingpong,
    /// 16 loopback TCP connections at once, 1 KiB messages echoed.
    TcpEcho,
    /// 16 loopback TCP connections at once, 64 KiB messages echoed.
    TcpEcho64k,
    /// Spawn `true` and wait for it, one child at a time.
    Subprocess,
    /// Spawn `true` and wait for it, 16 children running at once.
    Subprocess16,
    /// Make a loop (runtime), run an empty main on it, close it.
    RunOverhead,
    /// Register a far-off timer and cancel it before it fires.
    TimerCancel,
    /// Connect, accept and close loopback TCP connections, one at a time.
    TcpChurn,
    /// One connected pair of loopback UDP sockets, 1 KiB datagrams echoed.
    UdpPingpong,
    /// Live heap bytes per idle, connected loopback TCP pair.
    IdleConnBytes,
}

impl Workload {
    /// Every workload, in the order of the report.
    pub const ALL: [Workload; 17] = [
        Workload::CallSoonChain,
        Workload::Yield,
        Workload::SpawnAwait,
        Workload::Timers,
        Workload::Threadsafe,
        Workload::TaskBytes,
        Workload::TimerBytes,
        Workload::TcpPingpong,
        Workload::TcpEcho,
        Workload::TcpEcho64k,
        Workload::Subprocess,
        Workload::Subprocess16,
        Workload::RunOverhead,
        Workload::TimerCancel,
        Workload::TcpChurn,
        Workload::UdpPingpong,
        Workload::IdleConnBytes,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Workload::CallSoonChain => "call_soon_chain",
            Workload::Yield => "yield",
            Workload::SpawnAwait => "spawn_await",
            Workload::Timers => "timers",
            Workload::Threadsafe => "threadsafe",
            Workload::TaskBytes => "task_bytes",
            Workload::TimerBytes => "timer_bytes",
            Workload::TcpPingpong => "tcp_pingpong",
            Workload::TcpEcho => "tcp_echo",
            Workload::TcpEcho64k => "tcp_echo_64k",
            Workload::Subprocess => "subprocess",
            Workload::Subprocess16 => "subprocess_16",
            Workload::RunOverhead => "run_overhead",
            Workload::TimerCancel => "timer_cancel",
            Workload::TcpChurn => "tcp_churn",
            Workload::UdpPingpong => "udp_pingpong",
            Workload::IdleConnBytes => "idle_conn_bytes",
        }
    }

    /// The workload called `name`.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|workload| workload.name() == name)
    }

    /// How many operations the workload performs; `quick` divides the timed
    /// workloads by ten.
    ///
    /// The weighed workloads keep their 10,000 items even when quick: they
    /// take milliseconds anyway, and fewer items would let the amortised
    /// growth of a runtime's internal tables swing the per-item figure.
    pub fn count(self, quick: bool) -> u64 {
        let full = match self {
            Workload::CallSoonChain | Workload::Yield => 1_000_000,
            Workload::SpawnAwait | Workload::Threadsafe => 200_000,
            Workload::Timers => 100_000,
            // Round trips in all, over every connection.
            Workload::TcpPingpong => 20_000,
            Workload::TcpEcho => 16 * 2_000,
            Workload::TcpEcho64k => 16 * 200,
            // Children spawned and waited for in all.
            Workload::Subprocess | Workload::Subprocess16 => 1_000,
            // Loops made, run and closed.
            Workload::RunOverhead => 10_000,
            Workload::TimerCancel => 1_000_000,
            // Connections made and closed.
            Workload::TcpChurn => 10_000,
            Workload::UdpPingpong => 20_000,
            Workload::TaskBytes | Workload::TimerBytes => return 10_000,
            // Connected pairs; 2,000 sockets, well under the usual limit of
            // open files.
            Workload::IdleConnBytes => return 1_000,
        };
        if quick { full / 10 } else { full }
    }
}

/// The shape of a TCP workload: how many loopback connections run at once
/// and how big each echoed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpShape {
    /// Connections, each a client task and a server task.
    pub connections: u64,
    /// Bytes per message, each way.
    pub message_size: usize,
}

impl TcpShape {
    /// Round trips per connection when the workload does `round_trips` in
    /// all.
    pub fn round_trips_each(self, round_trips: u64) -> u64 {
        round_trips / self.connections
    }

    /// The message a client sends: a fixed pattern, so that the echo can be
    /// checked once the timing is over. The client reads each echo back
    /// into the same buffer, so it still holds the pattern at the end only
    /// if every byte came back in place.
    pub fn message(self) -> Vec<u8> {
        pattern(self.message_size)
    }

    /// Checks a client's buffer after its last round trip.
    pub fn check_echo(self, buffer: &[u8]) -> Result<(), BoxError> {
        if buffer == self.message() {
            Ok(())
        } else {
            Err("the echoed message came back changed".into())
        }
    }
}

/// `size` bytes of the fixed pattern every echo workload sends.
pub fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

impl Workload {
    /// Children running at once in a subprocess workload; `None` for the
    /// others.
    pub fn subprocess_concurrency(self) -> Option<u64> {
        match self {
            Workload::Subprocess => Some(1),
            Workload::Subprocess16 => Some(16),
            _ => None,
        }
    }

    /// The connections and message size of a TCP workload; `None` for the
    /// others.
    pub fn tcp_shape(self) -> Option<TcpShape> {
        let (connections, message_size) = match self {
            Workload::TcpPingpong => (1, 1024),
            Workload::TcpEcho => (16, 1024),
            Workload::TcpEcho64k => (16, 64 * 1024),
            _ => return None,
        };
        Some(TcpShape {
            connections,
            message_size,
        })
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A runtime the workloads are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// aio's selector loop, through the facade.
    Aio,
    /// tokio's current-thread runtime with a `LocalSet`.
    Tokio,
    /// async-executor's `LocalExecutor` on `async_io::block_on`.
    AsyncExecutor,
    /// The least work the OS allows, written by hand without a runtime: for
    /// the I/O workloads a single-threaded event loop on `polling`; for the
    /// subprocess ones `posix_spawnp` and `waitpid`.
    Floor,
    /// The I/O floor on epoll(7) by hand (Linux): what the kernel allows,
    /// without `polling`'s own system calls around each wait.
    FloorEpoll,
    /// `tcp_churn` and `udp_pingpong` with blocking sockets in program
    /// order, no poller at all: a reference no event loop can reach.
    FloorBlocking,
}

impl Runtime {
    /// Every runtime, aio first: the report's ratios are to aio.
    pub const ALL: [Runtime; 6] = [
        Runtime::Aio,
        Runtime::Tokio,
        Runtime::AsyncExecutor,
        Runtime::Floor,
        Runtime::FloorEpoll,
        Runtime::FloorBlocking,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Aio => "aio",
            Runtime::Tokio => "tokio",
            Runtime::AsyncExecutor => "async-executor",
            Runtime::Floor => "floor",
            Runtime::FloorEpoll => "floor-epoll",
            Runtime::FloorBlocking => "floor-blocking",
        }
    }

    /// The runtime called `name`.
    pub fn from_name(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|runtime| runtime.name() == name)
    }

    /// Whether the runtime has the workload: the floors have only those
    /// where "the least work the OS allows" means something (I/O,
    /// subprocesses), `floor-blocking` only `tcp_churn` and `udp_pingpong`.
    pub fn supports(self, workload: Workload) -> bool {
        if workload.subprocess_concurrency().is_some() {
            // async-executor has no subprocesses; the floor's are
            // posix_spawnp and waitpid, the same for either backend; the
            // workloads are Unix-only (`src/subprocess.rs`).
            return cfg!(unix) && matches!(self, Runtime::Aio | Runtime::Tokio | Runtime::Floor);
        }
        match self {
            Runtime::Aio | Runtime::Tokio | Runtime::AsyncExecutor => true,
            Runtime::Floor => crate::floor::supports(Backend::Polling, workload),
            Runtime::FloorEpoll => crate::floor::supports(Backend::Epoll, workload),
            Runtime::FloorBlocking => matches!(workload, Workload::TcpChurn | Workload::UdpPingpong),
        }
    }

    /// Runs `workload` once on a runtime built for the purpose, and drops the
    /// runtime afterwards.
    pub fn measure(self, workload: Workload, quick: bool) -> Result<Measurement, BoxError> {
        let count = workload.count(quick);
        match self {
            Runtime::Aio => crate::aio_loop::measure(workload, count),
            Runtime::Tokio => crate::tokio_current_thread::measure(workload, count),
            Runtime::AsyncExecutor => crate::async_executor_local::measure(workload, count),
            Runtime::Floor if workload.subprocess_concurrency().is_some() => {
                crate::subprocess::floor(workload, count)
            }
            Runtime::Floor => crate::floor::measure(Backend::Polling, workload, count),
            Runtime::FloorEpoll => crate::floor::measure(Backend::Epoll, workload, count),
            Runtime::FloorBlocking => crate::floor::blocking(workload, count),
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one run of one workload measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// Wall-clock time of the call that drove the runtime through the
    /// workload (runtime construction and teardown excluded).
    pub elapsed: Duration,
    /// Operations performed: callbacks, yields, tasks, timers or items.
    pub ops: u64,
    /// For the weighed workloads, live heap bytes per item.
    pub bytes_per_op: Option<i64>,
}

impl Measurement {
    /// A timed run of `ops` operations.
    pub fn timed(elapsed: Duration, ops: u64) -> Measurement {
        Measurement {
            elapsed,
            ops,
            bytes_per_op: None,
        }
    }

    /// A weighed run of `ops` items.
    pub fn weighed(elapsed: Duration, ops: u64, bytes_per_op: i64) -> Measurement {
        Measurement {
            elapsed,
            ops,
            bytes_per_op: Some(bytes_per_op),
        }
    }

    /// The line `cargo xtask bench` parses:
    /// `workload=<name> runtime=<rt> ns=<total> ops=<count>[ bytes_per_op=<n>]`.
    pub fn line(&self, workload: Workload, runtime: Runtime) -> String {
        let mut line = format!(
            "workload={workload} runtime={runtime} ns={} ops={}",
            self.elapsed.as_nanos(),
            self.ops
        );
        if let Some(bytes) = self.bytes_per_op {
            line.push_str(&format!(" bytes_per_op={bytes}"));
        }
        line
    }
}

/// A linear congruential generator (Knuth's MMIX constants): the same
/// pseudo-random delays in every runtime and every run, without a dependency.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    /// The generator every workload starts from.
    pub fn new() -> Lcg {
        Lcg(0x5eed_a10c_0ffe_e000)
    }

    /// The next 32 pseudo-random bits (the high half of the state: the low
    /// bits of an LCG are far from random).
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// A delay between zero and `max` inclusive, in whole microseconds.
    pub fn delay_up_to(&mut self, max: Duration) -> Duration {
        let max_micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX - 1);
        Duration::from_micros(u64::from(self.next_u32()) % (max_micros + 1))
    }
}

impl Default for Lcg {
    fn default() -> Lcg {
        Lcg::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for workload in Workload::ALL {
            assert_eq!(Workload::from_name(workload.name()), Some(workload));
        }
        for runtime in Runtime::ALL {
            assert_eq!(Runtime::from_name(runtime.name()), Some(runtime));
        }
        assert_eq!(Workload::from_name("sleep"), None);
        assert_eq!(Runtime::from_name("asyncio"), None);
    }

    #[test]
    fn the_blocking_floor_has_only_churn_and_udp() {
        for workload in Workload::ALL {
            let churn_or_udp = matches!(workload, Workload::TcpChurn | Workload::UdpPingpong);
            assert_eq!(
                Runtime::FloorBlocking.supports(workload),
                churn_or_udp,
                "{workload}"
            );
            if churn_or_udp {
                assert!(Runtime::Floor.supports(workload), "{workload}");
            }
        }
    }

    #[test]
    fn quick_divides_only_the_timed_workloads() {
        assert_eq!(Workload::Yield.count(true), 100_000);
        assert_eq!(Workload::Timers.count(false), 100_000);
        assert_eq!(Workload::TaskBytes.count(true), Workload::TaskBytes.count(false));
        assert_eq!(Workload::IdleConnBytes.count(true), 1_000);
        assert_eq!(Workload::RunOverhead.count(true), 1_000);
    }

    #[test]
    fn tcp_workloads_split_evenly_over_their_connections() {
        for workload in Workload::ALL {
            let Some(shape) = workload.tcp_shape() else {
                continue;
            };
            for quick in [false, true] {
                let count = workload.count(quick);
                assert_eq!(count % shape.connections, 0, "{workload}");
                assert!(shape.round_trips_each(count) > 0, "{workload}");
            }
        }
        assert_eq!(Workload::TcpPingpong.count(true), 2_000);
        assert_eq!(Workload::Yield.tcp_shape(), None);
    }

    #[test]
    fn the_generator_is_deterministic_and_in_range() {
        let first: Vec<Duration> = {
            let mut lcg = Lcg::new();
            (0..1_000)
                .map(|_| lcg.delay_up_to(Duration::from_millis(10)))
                .collect()
        };
        let mut lcg = Lcg::new();
        for &delay in &first {
            assert_eq!(lcg.delay_up_to(Duration::from_millis(10)), delay);
            assert!(delay <= Duration::from_millis(10));
        }
        // Spread, not a constant: at least a hundred distinct delays.
        let mut distinct = first.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 100, "only {} distinct delays", distinct.len());
    }

    #[test]
    fn the_line_has_every_field() {
        let timed = Measurement::timed(Duration::from_nanos(1_500), 3);
        assert_eq!(
            timed.line(Workload::Yield, Runtime::Tokio),
            "workload=yield runtime=tokio ns=1500 ops=3"
        );
        let weighed = Measurement::weighed(Duration::from_nanos(7), 10_000, 96);
        assert_eq!(
            weighed.line(Workload::TaskBytes, Runtime::Aio),
            "workload=task_bytes runtime=aio ns=7 ops=10000 bytes_per_op=96"
        );
    }
}
