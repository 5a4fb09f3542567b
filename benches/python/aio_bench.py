"""The workloads of `cargo xtask bench` on CPython's asyncio and on uvloop.

    python aio_bench.py <asyncio|uvloop> <workload> [--quick]
    python aio_bench.py --list

runs one workload once, in this process, and prints the line `aio-bench`
prints:

    workload=<name> runtime=<rt> ns=<elapsed total nanoseconds> ops=<count>[ bytes_per_op=<n>]

or `unsupported`. The counts are those of `benches/src/workload.rs` (a test
in `benches/tests/python_counts.rs` checks that they agree), `--quick`
divides the timed ones by ten. Each run makes a fresh loop
(`asyncio.new_event_loop()`, the selector loop on Linux, or
`uvloop.new_event_loop()`), times only `run_forever` or
`run_until_complete`, and closes the loop afterwards.

How each workload maps onto asyncio (uvloop runs the same code on its loop):

- call_soon_chain: callbacks, each `loop.call_soon`-ing the next; the last
  calls `loop.stop()`; timed `run_forever` (as aio).
- yield: one coroutine awaiting `asyncio.sleep(0)`.
- spawn_await: `loop.create_task`, 1,000 at a time, each batch awaited.
- timers: tasks each awaiting `asyncio.sleep(0-10 ms)` (the same
  deterministic LCG as the Rust side), all awaited.
- threadsafe: `loop.call_soon_threadsafe` from a `threading.Thread`; the last
  callback stops `run_forever`.
- task_bytes: `tracemalloc`'s traced bytes per task parked on one shared,
  never-completing future (every Python allocation, object or raw; what
  uvloop allocates with plain `malloc` inside libuv is not seen).
- timer_bytes: traced bytes per `asyncio.sleep(1 h+)` coroutine sent once,
  outside any task: its future and its `call_later` handle, as the Rust
  side boxes a sleep future and polls it once.
- tcp_*: asyncio streams (`open_connection`, `start_server`), a client and a
  server task per connection on the same loop, `writer.write` + `drain` and
  `reader.readexactly`, TCP_NODELAY on both ends; connections are made before
  the clock starts.
- subprocess, subprocess_16: `asyncio.create_subprocess_exec('true')` and
  `wait()`, one warm-up child first, then 1 or 16 tasks sharing the spawns.
- run_overhead: `asyncio.run(main)` of an empty coroutine (an
  `asyncio.Runner` whose loop factory is `asyncio.new_event_loop` or
  `uvloop.new_event_loop`), per run.
- timer_cancel: `loop.call_later(delay, cb)` then `handle.cancel()`, 1 M
  times inside one coroutine; cancelled handles are dropped from the heap by
  the loop as asyncio does (lazily, or when they outnumber the live ones).
- tcp_churn: `open_connection` to a `start_server` on loopback, the server's
  callback closes its end, the client closes its end and waits for it.
- udp_pingpong: two datagram endpoints (`create_datagram_endpoint`) with
  protocols, 1 KiB datagrams echoed; asyncio has no awaitable UDP reads.
- idle_conn_bytes: traced bytes per connected pair of stream transports
  (client and server end, reader and writer) sitting idle.
"""

import asyncio
import socket
import sys
import threading
import time
import tracemalloc

# Full counts, the same as `Workload::count` in benches/src/workload.rs; the
# weighed workloads (bytes) keep theirs when quick.
COUNTS = {
    "call_soon_chain": 1_000_000,
    "yield": 1_000_000,
    "spawn_await": 200_000,
    "timers": 100_000,
    "threadsafe": 200_000,
    "task_bytes": 10_000,
    "timer_bytes": 10_000,
    "tcp_pingpong": 20_000,
    "tcp_echo": 32_000,
    "tcp_echo_64k": 3_200,
    "subprocess": 1_000,
    "subprocess_16": 1_000,
    "run_overhead": 10_000,
    "timer_cancel": 1_000_000,
    "tcp_churn": 10_000,
    "udp_pingpong": 20_000,
    "idle_conn_bytes": 1_000,
}
WEIGHED = {"task_bytes", "timer_bytes", "idle_conn_bytes"}

SPAWN_BATCH = 1_000
TIMER_SPREAD_US = 10_000
PARKED_TIMER_DELAY_US = 3_600_000_000
TCP_SHAPES = {
    "tcp_pingpong": (1, 1024),
    "tcp_echo": (16, 1024),
    "tcp_echo_64k": (16, 64 * 1024),
}
UDP_MESSAGE_SIZE = 1024
SUBPROCESS_CONCURRENCY = {"subprocess": 1, "subprocess_16": 16}
# timer_cancel's delay: far enough that none fires.
CANCEL_DELAY = 3_600.0


def count(workload, quick):
    full = COUNTS[workload]
    if quick and workload not in WEIGHED:
        return full // 10
    return full


class Lcg:
    """Knuth's MMIX LCG, as `Lcg` in benches/src/workload.rs."""

    def __init__(self):
        self.state = 0x5EEDA10C0FFEE000

    def next_u32(self):
        self.state = (self.state * 6_364_136_223_846_793_005 + 1_442_695_040_888_963_407) & (
            (1 << 64) - 1
        )
        return self.state >> 32

    def delay_up_to_us(self, max_us):
        return self.next_u32() % (max_us + 1)


def message(size):
    return bytes(i % 251 for i in range(size))


def new_loop(runtime):
    if runtime == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def timed(loop, main):
    """Times `run_until_complete(main)`; returns (result, ns)."""
    start = time.perf_counter_ns()
    result = loop.run_until_complete(main)
    return result, time.perf_counter_ns() - start


# --- scheduling -------------------------------------------------------------


def call_soon_chain(loop, links):
    def link(remaining):
        if remaining <= 1:
            loop.stop()
            return
        loop.call_soon(link, remaining - 1)

    start = time.perf_counter_ns()
    loop.call_soon(link, links)
    loop.run_forever()
    return time.perf_counter_ns() - start, links, None


def yield_now(loop, yields):
    async def main():
        sleep = asyncio.sleep
        for _ in range(yields):
            await sleep(0)

    _, ns = timed(loop, main())
    return ns, yields, None


def spawn_await(loop, tasks):
    async def trivial(i):
        return i

    async def main():
        create_task = loop.create_task
        total = 0
        nxt = 0
        while nxt < tasks:
            end = min(tasks, nxt + SPAWN_BATCH)
            batch = [create_task(trivial(i)) for i in range(nxt, end)]
            for task in batch:
                total += await task
            nxt = end
        return total

    _, ns = timed(loop, main())
    return ns, tasks, None


def timers(loop, count_):
    async def sleeper(delay):
        await asyncio.sleep(delay)

    async def main():
        lcg = Lcg()
        sleepers = [
            loop.create_task(sleeper(lcg.delay_up_to_us(TIMER_SPREAD_US) / 1e6)) for _ in range(count_)
        ]
        for task in sleepers:
            await task

    _, ns = timed(loop, main())
    return ns, count_, None


def threadsafe(loop, callbacks):
    remaining = [callbacks]

    def tick():
        remaining[0] -= 1
        if remaining[0] == 0:
            loop.stop()

    def post():
        call = loop.call_soon_threadsafe
        for _ in range(callbacks):
            call(tick)

    start = time.perf_counter_ns()
    poster = threading.Thread(target=post)
    poster.start()
    loop.run_forever()
    ns = time.perf_counter_ns() - start
    poster.join()
    return ns, callbacks, None


def timer_cancel(loop, timers_):
    def never():
        raise AssertionError("a cancelled timer fired")

    async def main():
        call_later = loop.call_later
        for _ in range(timers_):
            call_later(CANCEL_DELAY, never).cancel()

    _, ns = timed(loop, main())
    return ns, timers_, None


def run_overhead(runtime, runs):
    async def empty():
        pass

    start = time.perf_counter_ns()
    for _ in range(runs):
        # What asyncio.run(main) does (and uvloop.run), loop factory and all.
        with asyncio.Runner(loop_factory=lambda: new_loop(runtime)) as runner:
            runner.run(empty())
    return time.perf_counter_ns() - start, runs, None


# --- memory -----------------------------------------------------------------


def bytes_per(before, items):
    live = tracemalloc.get_traced_memory()[0] - before
    return round(live / items)


def task_bytes(loop, tasks):
    async def main():
        never = loop.create_future()
        started = [0]

        async def parked():
            started[0] += 1
            await never

        # One task through the same path first.
        warm_up = loop.create_task(parked())
        await asyncio.sleep(0)
        parked_tasks = []
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        parked_tasks.extend(loop.create_task(parked()) for _ in range(tasks))
        await asyncio.sleep(0)
        assert started[0] == tasks + 1, started[0]
        per_task = bytes_per(before, tasks)
        tracemalloc.stop()
        for task in parked_tasks + [warm_up]:
            task.cancel()
        await asyncio.gather(*parked_tasks, warm_up, return_exceptions=True)
        return per_task

    per_task, ns = timed(loop, main())
    return ns, tasks, per_task


def timer_bytes(loop, timers_):
    def register(delay_us):
        # asyncio.sleep's coroutine, sent once: it makes its future, calls
        # call_later, and yields the future; no task drives it.
        sleep = asyncio.sleep(delay_us / 1e6)
        sleep.send(None)
        return sleep

    async def main():
        register(PARKED_TIMER_DELAY_US).close()
        lcg = Lcg()
        sleeps = []
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        sleeps.extend(
            register(PARKED_TIMER_DELAY_US + lcg.delay_up_to_us(PARKED_TIMER_DELAY_US))
            for _ in range(timers_)
        )
        await asyncio.sleep(0.001)
        per_timer = bytes_per(before, timers_)
        tracemalloc.stop()
        for sleep in sleeps:
            sleep.close()
        return per_timer

    per_timer, ns = timed(loop, main())
    return ns, timers_, per_timer


# --- TCP --------------------------------------------------------------------


def set_nodelay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def open_server():
    """A stream server on loopback whose accepted connections wait in a
    queue: (server, port, queue)."""
    accepted = asyncio.Queue()

    async def on_connection(reader, writer):
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], accepted


async def connect_pairs(port, accepted, n):
    """`n` loopback stream pairs: ((client reader, writer), (server reader,
    writer)), TCP_NODELAY on both ends."""
    pairs = []
    for _ in range(n):
        client = await asyncio.open_connection("127.0.0.1", port)
        served = await accepted.get()
        for _, writer in (client, served):
            set_nodelay(writer)
        pairs.append((client, served))
    return pairs


async def connected_pairs(n):
    """`n` loopback stream pairs and the server to close afterwards."""
    server, port, accepted = await open_server()
    return await connect_pairs(port, accepted, n), server


async def close_pairs(pairs, server):
    writers = [writer for pair in pairs for _, writer in pair]
    for writer in writers:
        writer.close()
    for writer in writers:
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    server.close()
    await server.wait_closed()


def tcp(loop, workload, round_trips):
    connections, size = TCP_SHAPES[workload]
    each = round_trips // connections

    async def client(reader, writer, buffer):
        for _ in range(each):
            writer.write(buffer)
            await writer.drain()
            buffer = await reader.readexactly(size)
        return buffer

    async def server_side(reader, writer):
        for _ in range(each):
            data = await reader.readexactly(size)
            writer.write(data)
            await writer.drain()

    async def main():
        pairs, server = await connected_pairs(connections)
        sent = message(size)
        start = time.perf_counter_ns()
        clients = []
        servers = []
        for (c_reader, c_writer), (s_reader, s_writer) in pairs:
            clients.append(loop.create_task(client(c_reader, c_writer, sent)))
            servers.append(loop.create_task(server_side(s_reader, s_writer)))
        echoes = [await task for task in clients]
        for task in servers:
            await task
        ns = time.perf_counter_ns() - start
        for echo in echoes:
            if echo != sent:
                raise RuntimeError("the echoed message came back changed")
        await close_pairs(pairs, server)
        return ns

    ns, _ = timed(loop, main())
    return ns, round_trips, None


def tcp_churn(loop, connections):
    async def on_connection(reader, writer):
        writer.close()

    async def main():
        server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        start = time.perf_counter_ns()
        for _ in range(connections):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # The server closes first: the read sees EOF.
            if await reader.read(1) != b"":
                raise RuntimeError("the server sent data")
            writer.close()
            await writer.wait_closed()
        ns = time.perf_counter_ns() - start
        server.close()
        await server.wait_closed()
        return ns

    ns, _ = timed(loop, main())
    return ns, connections, None


def idle_conn_bytes(loop, connections):
    async def main():
        server, port, accepted = await open_server()
        # One pair through the same path first.
        warm_up = await connect_pairs(port, accepted, 1)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        pairs = await connect_pairs(port, accepted, connections)
        await asyncio.sleep(0.001)
        per_connection = bytes_per(before, connections)
        tracemalloc.stop()
        await close_pairs(pairs + warm_up, server)
        return per_connection

    per_connection, ns = timed(loop, main())
    return ns, connections, per_connection


# --- UDP --------------------------------------------------------------------


def udp_pingpong(loop, round_trips):
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self, sent, done):
            self.sent = sent
            self.left = round_trips
            self.done = done
            self.last = None

        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.left -= 1
            if self.left == 0:
                self.last = data
                self.done.set_result(None)
            else:
                self.transport.sendto(data)

    async def main():
        sent = message(UDP_MESSAGE_SIZE)
        done = loop.create_future()
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        address = server.get_extra_info("sockname")
        client, protocol = await loop.create_datagram_endpoint(
            lambda: Client(sent, done), remote_addr=address
        )
        start = time.perf_counter_ns()
        client.sendto(sent)
        await done
        ns = time.perf_counter_ns() - start
        if protocol.last != sent:
            raise RuntimeError("the echoed datagram came back changed")
        client.close()
        server.close()
        return ns

    ns, _ = timed(loop, main())
    return ns, round_trips, None


# --- subprocesses -----------------------------------------------------------


def subprocess_(loop, workload, spawns):
    at_once = SUBPROCESS_CONCURRENCY[workload]

    async def spawn_and_wait():
        child = await asyncio.create_subprocess_exec("true")
        code = await child.wait()
        if code != 0:
            raise RuntimeError(f"`true` ended with {code}")

    async def share(n):
        for _ in range(n):
            await spawn_and_wait()

    async def main():
        await spawn_and_wait()
        start = time.perf_counter_ns()
        tasks = [
            loop.create_task(share(spawns // at_once + (task < spawns % at_once)))
            for task in range(at_once)
        ]
        for task in tasks:
            await task
        return time.perf_counter_ns() - start

    ns, _ = timed(loop, main())
    return ns, spawns, None


# --- driver -----------------------------------------------------------------


def measure(runtime, workload, quick):
    n = count(workload, quick)
    if workload == "run_overhead":
        return run_overhead(runtime, n)
    loop = new_loop(runtime)
    # Subprocesses find their child watcher through the current loop on
    # Pythons before 3.12.
    asyncio.set_event_loop(loop)
    try:
        if workload == "call_soon_chain":
            return call_soon_chain(loop, n)
        if workload == "yield":
            return yield_now(loop, n)
        if workload == "spawn_await":
            return spawn_await(loop, n)
        if workload == "timers":
            return timers(loop, n)
        if workload == "threadsafe":
            return threadsafe(loop, n)
        if workload == "task_bytes":
            return task_bytes(loop, n)
        if workload == "timer_bytes":
            return timer_bytes(loop, n)
        if workload in TCP_SHAPES:
            return tcp(loop, workload, n)
        if workload in SUBPROCESS_CONCURRENCY:
            return subprocess_(loop, workload, n)
        if workload == "timer_cancel":
            return timer_cancel(loop, n)
        if workload == "tcp_churn":
            return tcp_churn(loop, n)
        if workload == "udp_pingpong":
            return udp_pingpong(loop, n)
        if workload == "idle_conn_bytes":
            return idle_conn_bytes(loop, n)
        raise AssertionError(workload)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


USAGE = """usage: aio_bench.py <runtime> <workload> [--quick]
       aio_bench.py --list
runtimes: asyncio, uvloop"""


def main(argv):
    if "--list" in argv:
        print("\n".join(COUNTS))
        return 0
    if "--help" in argv or "-h" in argv:
        print(USAGE)
        return 0
    quick = "--quick" in argv
    positional = [arg for arg in argv if arg != "--quick"]
    if len(positional) != 2:
        print(f"aio_bench.py: expected a runtime and a workload\n{USAGE}", file=sys.stderr)
        return 2
    runtime, workload = positional
    if runtime not in ("asyncio", "uvloop"):
        print(f"aio_bench.py: unknown runtime `{runtime}`\n{USAGE}", file=sys.stderr)
        return 2
    if workload not in COUNTS:
        print(
            f"aio_bench.py: unknown workload `{workload}`; known: {', '.join(COUNTS)}",
            file=sys.stderr,
        )
        return 2
    ns, ops, bytes_per_op = measure(runtime, workload, quick)
    line = f"workload={workload} runtime={runtime} ns={ns} ops={ops}"
    if bytes_per_op is not None:
        line += f" bytes_per_op={bytes_per_op}"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
