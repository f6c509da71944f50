"""Open-loop, constant-arrival-rate HTTP/1.1 load generator for a scoring service on loopback.

Why open loop: a closed-loop tool (N clients, each sending its next request when the last one
answered) sends less when the server stalls, so the stall shows up as one slow request instead
of the thousands a real arrival stream would have queued behind it (coordinated omission).
Here request ``i`` of a step at rate ``R`` has an *intended* send time ``t0 + i / R`` fixed
before the step starts, and its latency runs from that intended time to the last byte of the
response: a request that waits in the generator because every connection is busy carries that
wait in its latency.

How it sends: asyncio on uvloop, one raw ``asyncio.Protocol`` per keep-alive connection, the
response parsed by httptools (C), one request in flight per connection (no pipelining). When a
request is due and no connection is idle, another one is opened, up to ``max_connections``;
beyond that the request waits in a FIFO queue inside the generator (its wait counts) until a
connection frees up, or fails as a timeout after ``timeout`` seconds. The request bodies are
prebuilt bytes (``build_requests``), cycled: no JSON encoding on the send path.

The scheduler sleeps while the next send is more than ~2 ms away and spins on the event loop
(``sleep(0)``: I/O still runs) when it is closer, since the loop's timers have millisecond
granularity: at high rates the generator keeps its core busy (``--no-spin``: always sleep, up
to ~1 ms late, when the core is shared). Its own lateness (when it handed a request to a
connection or to the queue, minus the intended time) is the *generator lag*; when its p99
passes ``lag_limit`` (5 ms) the step is marked invalid: the generator, not the server, was the
bottleneck, and its figures say nothing about the server.

Its ceiling, measured against ``--trivial-server`` (canned responses) on core 0 with the
generator on core 1, others' tests running on the machine: valid steps up to 75,000 req/s
(median 0.05-0.09 ms), 100,000 invalid. Its floor at 2,500 req/s: p50 0.07 ms, p99 1.5-5 ms
(the p99 is the machine's: scheduling hiccups of a shared 2-vCPU VM show in it).

CPU: on a 2-core machine pin the server to core 0 (``taskset -c 0 python -m segmint serve MODEL``)
and the generator to core 1 (``--cpu 1``, ``os.sched_setaffinity``); both still share the
machine's caches and memory bus, and anything else running shows in the figures.

Modes (also importable: ``run_step``, ``run_steps``, ``find_capacity``, ``soak``):

- ``--rates 1000,2000`` each ``--duration`` s after ``--warmup`` s;
- ``--find-capacity``: step the rate up (x ``--factor``) until a step breaks (error share over
  ``--max-error-share``, p99 over ``--p99-limit-ms``, throughput under 95% of offered, or an
  invalid step), then bisect; reports the highest rate that held;
- ``--soak SECONDS --rate R --server-pid PID``: one long step, the server's resident memory
  (``VmRSS``) sampled every ``--rss-every`` s, growth reported;
- ``--reload-every S --reload-files a.seg,b.seg`` (with any mode): ``POST /admin/reload``
  alternating the files (token from ``$SEGMINT_ADMIN_TOKEN``); reload outcomes and responses
  per ``segmint-model-version`` counted;
- ``--trivial-server PORT``: a canned-response HTTP server (raw protocol, uvloop) to measure the
  generator's own ceiling against.
"""
import argparse
import asyncio
import collections
import datetime as _dt
import json
import math
import os
import socket
import sys
import time

import numpy as np

VERSION_HEADER = b"segmint-model-version"
IDLE_CLOSE = 2.0  # seconds an idle keep-alive connection is kept (servers close theirs at ~5 s)
_clock = time.perf_counter  # uvloop's loop.time() is cached per loop iteration: too coarse here


# -- requests ---------------------------------------------------------------------------------
def _json_default(value):
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_record(record):
    """A record (mapping of field to Python scalar) as JSON bytes, dates as ISO strings."""
    return json.dumps(record, default=_json_default, separators=(",", ":")).encode()


def build_request(host, port, path, body=b"", method="POST", headers=()):
    """One complete HTTP/1.1 request as bytes (keep-alive)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    if method == "POST" or body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def build_requests(host, port, records, path="/score"):
    """Prebuilt ``POST path`` requests, one per record (JSON-encoded once)."""
    return [build_request(host, port, path, encode_record(r)) for r in records]


def customer_records(n=1000, random_state=1):
    """``n`` records of ``segmint.make_customers`` (the fields a service receives)."""
    import segmint
    return segmint.make_customers(n, random_state=random_state).to_pylist()


# -- statistics -------------------------------------------------------------------------------
def percentile(values, q):
    """Nearest-rank percentile: the smallest value with at least ``q`` percent of the values
    at or below it (a latency that was really observed, never an interpolation); None if empty.
    """
    n = len(values)
    if n == 0:
        return None
    v = np.sort(np.asarray(values, dtype=np.float64))
    rank = max(1, math.ceil(q / 100.0 * n - 1e-9))
    return float(v[min(rank, n) - 1])


def _ms(seconds):
    return None if seconds is None else round(seconds * 1e3, 3)


# -- the client -------------------------------------------------------------------------------
class _Stats:
    """What one step collected (latencies in seconds, from the intended send time)."""

    def __init__(self, measure_from):
        self.measure_from = measure_from  # intended times before it are warm-up: not counted
        self.ok = []  # 2xx latencies
        self.rejected = []  # 503 latencies
        self.other_status = collections.Counter()
        self.connection_errors = 0
        self.timeouts = 0
        self.lag = []  # dispatch time - intended time (the scheduler's lateness)
        self.waited = 0  # requests that waited for a connection
        self.versions = collections.Counter()
        self.unfinished = 0
        self.ok_in_window = 0

    def counted(self, intended):
        return intended >= self.measure_from


class _Connection(asyncio.Protocol):
    __slots__ = ("client", "transport", "parser", "intended", "version", "busy", "alive", "idle_since")

    def __init__(self, client):
        import httptools
        self.client = client
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.intended = None
        self.version = None
        self.busy = True  # until connected
        self.alive = True
        self.idle_since = 0.0

    # asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.busy = False
        self.client.connected(self)

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except Exception:  # a malformed response: count it and drop the connection
            self._fail("connection")
            self.transport.close()

    def connection_lost(self, exc):
        self.alive = False
        if self.intended is not None:
            self._fail("connection")
        self.client.lost(self)

    # httptools callbacks
    def on_header(self, name, value):
        if name.lower() == VERSION_HEADER:
            self.version = value

    def on_message_complete(self):
        intended, self.intended = self.intended, None
        if intended is None:
            return
        status = self.parser.get_status_code()
        self.client.finished(self, intended, status, self.version)
        self.version = None
        if not self.parser.should_keep_alive():
            self.alive = False
            self.transport.close()

    def _fail(self, kind):
        intended, self.intended = self.intended, None
        if intended is not None:
            self.client.failed(intended, kind)

    def send(self, request, intended):
        self.intended = intended
        self.busy = True
        self.transport.write(request)


class _Client:
    def __init__(self, loop, host, port, max_connections, stats):
        self.loop, self.host, self.port = loop, host, port
        self.max_connections = max_connections
        self.stats = stats
        self.idle = []
        self.connections = set()
        self.opening = 0
        self.pending = collections.deque()  # (intended, request) waiting for a connection
        self.in_flight = 0
        self.peak_connections = 0

    # sending
    def submit(self, request, intended, now):
        counted = self.stats.counted(intended)
        if counted:  # the scheduler's own lateness, whether a connection is free or not
            self.stats.lag.append(now - intended)
        if self.idle and not self.pending:
            conn = self.idle.pop()
            self.in_flight += 1
            conn.send(request, intended)
            return
        self.pending.append((intended, request))
        if counted:
            self.stats.waited += 1
        if len(self.connections) + self.opening < self.max_connections and self.opening < len(self.pending):
            self._open()

    def _open(self):
        self.opening += 1
        task = self.loop.create_task(self._connect())
        task.add_done_callback(self._opened)

    async def _connect(self):
        # a numeric address and our own socket: create_connection(host, port) would resolve the
        # name in a thread on every connection, which shows as generator lag under load
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self.loop.sock_connect(sock, (self.host, self.port))
            return await self.loop.create_connection(lambda: _Connection(self), sock=sock)
        except BaseException:
            sock.close()
            raise

    async def preopen(self, n):
        """Open ``n`` connections before the schedule starts (setup is not what is measured)."""
        for _ in range(min(n, self.max_connections)):
            self.opening += 1
            try:
                await self._connect()
            except OSError:
                pass
            finally:
                self.opening -= 1

    def _opened(self, task):
        self.opening -= 1
        if task.cancelled() or task.exception() is None:  # exception() also marks it retrieved
            return
        # the request that asked for this connection fails: a dead server gives errors at the
        # offered rate, not an ever-growing queue
        if self.pending:
            intended, _ = self.pending.popleft()
            self.failed(intended, "connection", in_flight=False)

    def connected(self, conn):
        self.connections.add(conn)
        self.peak_connections = max(self.peak_connections, len(self.connections))
        self._release(conn)

    def _release(self, conn):
        if self.pending:
            intended, request = self.pending.popleft()
            self.in_flight += 1
            conn.send(request, intended)
        else:
            conn.busy = False
            conn.idle_since = _clock()
            self.idle.append(conn)

    # results
    def finished(self, conn, intended, status, version):
        self.in_flight -= 1
        stats = self.stats
        if stats.counted(intended):
            latency = _clock() - intended
            if 200 <= status < 300:
                stats.ok.append(latency)
                if version is not None:
                    stats.versions[version.decode("latin-1")] += 1
            elif status == 503:
                stats.rejected.append(latency)
            else:
                stats.other_status[status] += 1
        if conn.alive:
            self._release(conn)

    def failed(self, intended, kind, in_flight=True):
        if in_flight:
            self.in_flight -= 1
        if self.stats.counted(intended):
            if kind == "timeout":
                self.stats.timeouts += 1
            else:
                self.stats.connection_errors += 1

    def lost(self, conn):
        self.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def expire(self, now, timeout):
        """Fail requests older than ``timeout``: queued ones, and in-flight ones (their
        connection is closed: an HTTP/1.1 connection cannot skip a response)."""
        while self.pending and now - self.pending[0][0] > timeout:
            intended, _ = self.pending.popleft()
            if self.stats.counted(intended):
                self.stats.timeouts += 1
        # idle connections are taken last-in first-out, so the oldest sit at the bottom: close
        # them before the server's keep-alive timeout (uvicorn: 5 s) can race a request sent on
        # them (a POST is not retried: that would be a connection error nobody caused)
        while self.idle and now - self.idle[0].idle_since > IDLE_CLOSE:
            conn = self.idle.pop(0)
            conn.alive = False
            conn.transport.close()
        for conn in list(self.connections):
            if conn.intended is not None and now - conn.intended > timeout:
                intended, conn.intended = conn.intended, None
                self.failed(intended, "timeout")
                conn.alive = False
                conn.transport.abort()

    def close(self):
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()


async def _post_reload(host, port, path, token, model_file, timeout=30.0):
    """One ``POST /admin/reload`` on its own connection: (status, seconds)."""
    body = json.dumps({"model": model_file}).encode()
    headers = [("Authorization", f"Bearer {token}")] if token else []
    request = build_request(host, port, path, body, headers=headers).replace(
        b"Connection: keep-alive", b"Connection: close")
    t0 = _clock()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), timeout)
        writer.close()
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else -1
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        status = -1
    return status, _clock() - t0


def _rss_kib(pid):
    """Resident memory of a process (``VmRSS`` of ``/proc/PID/status``), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


async def _run(host, port, requests, rate, duration, warmup, max_connections, timeout,
               reload=None, server_pid=None, rss_every=5.0, lag_limit=0.005, preopen=16, spin=True):
    loop = asyncio.get_running_loop()
    host = socket.gethostbyname(host)
    n_total = int(round(rate * (warmup + duration)))
    n_warm = int(round(rate * warmup))
    stats = _Stats(measure_from=math.inf)
    client = _Client(loop, host, port, max_connections, stats)
    await client.preopen(preopen)
    t0 = _clock() + 0.01
    stats.measure_from = t0 + n_warm / rate
    reloads = []
    rss = []
    stop = asyncio.Event()

    async def expirer():
        while not stop.is_set():
            await asyncio.sleep(0.05)
            client.expire(_clock(), timeout)

    async def reloader():
        files, token, every, path = reload["files"], reload.get("token"), reload["every"], reload["path"]
        # reloads start with the measured part: a failure they cause must land in the counts
        await asyncio.sleep(max(0.0, stats.measure_from - _clock()))
        i = 0
        while True:
            try:
                await asyncio.wait_for(stop.wait(), every)
                return
            except asyncio.TimeoutError:
                pass
            status, seconds = await _post_reload(host, port, path, token, files[i % len(files)])
            reloads.append({"file": files[i % len(files)], "status": status, "seconds": round(seconds, 4)})
            i += 1

    async def sampler():
        # the first sample when the measured part starts (after the warm-up), then every rss_every
        await asyncio.sleep(max(0.0, stats.measure_from - _clock()))

        def sample():
            # with the counters so far: per-window throughput, p99 and errors (a soak's drift)
            failed = (len(stats.rejected) + sum(stats.other_status.values()) + stats.connection_errors
                      + stats.timeouts)
            rss.append((round(_clock() - stats.measure_from, 2), _rss_kib(server_pid), len(stats.ok), failed))
        while True:
            sample()
            try:
                await asyncio.wait_for(stop.wait(), rss_every)
                if _clock() - stats.measure_from - rss[-1][0] > 0.1:  # the end, unless just sampled
                    sample()
                return
            except asyncio.TimeoutError:
                pass

    helpers = [loop.create_task(expirer())]
    if reload:
        helpers.append(loop.create_task(reloader()))
    if server_pid:
        helpers.append(loop.create_task(sampler()))

    # the schedule: request i is due at t0 + i / rate, whatever happened to the ones before it
    n_req = len(requests)
    interval = 1.0 / rate
    submit = client.submit
    i = 0
    while i < n_total:
        now = _clock()
        due = t0 + i * interval
        while due <= now and i < n_total:
            submit(requests[i % n_req], due, now)
            i += 1
            due = t0 + i * interval
        if i >= n_total:
            break
        wait = due - _clock()
        # timers have ~1 ms granularity: sleep only when the next send is far, else yield once
        # (spin); without spin, sleep to the next send (up to ~1 ms late, counted as lag)
        if spin:
            await asyncio.sleep(wait - 0.0015 if wait > 0.002 else 0)
        else:
            await asyncio.sleep(max(wait, 0.0))
    end_schedule = _clock()
    # throughput counts what was answered within the measured window, not during the drain
    stats.ok_in_window = len(stats.ok)
    # drain: everything sent gets up to `timeout` to answer
    while (client.in_flight or client.pending) and _clock() - end_schedule < timeout + 0.1:
        await asyncio.sleep(0.005)
    stats.unfinished = client.in_flight + len(client.pending)
    stop.set()
    for task in helpers:
        await task
    client.close()
    await asyncio.sleep(0)
    return stats, client, n_total - n_warm, reloads, rss


def _summary(stats, rate, duration, client, planned, lag_limit):
    ok, rej = len(stats.ok), len(stats.rejected)
    other = sum(stats.other_status.values())
    errors = rej + other + stats.connection_errors + stats.timeouts + stats.unfinished
    lag_p99 = percentile(stats.lag, 99)
    # the generator's own lateness beyond `lag_limit`: its figures then describe the generator
    invalid = lag_p99 is not None and lag_p99 > lag_limit
    return {
        "offered_rate": rate,
        "duration_s": duration,
        "requests": planned,
        "throughput": round(stats.ok_in_window / duration, 1),
        "ok": ok,
        "p50_ms": _ms(percentile(stats.ok, 50)),
        "p95_ms": _ms(percentile(stats.ok, 95)),
        "p99_ms": _ms(percentile(stats.ok, 99)),
        "max_ms": _ms(max(stats.ok) if stats.ok else None),
        "rejected_503": rej,
        "rejected_share": round(rej / planned, 5) if planned else 0.0,
        "rejected_p99_ms": _ms(percentile(stats.rejected, 99)),
        "other_status": {str(k): v for k, v in sorted(stats.other_status.items())},
        "connection_errors": stats.connection_errors,
        "timeouts": stats.timeouts,
        "unfinished": stats.unfinished,
        "error_share": round(errors / planned, 5) if planned else 0.0,
        "lag_p50_ms": _ms(percentile(stats.lag, 50)),
        "lag_p99_ms": _ms(lag_p99),
        "lag_max_ms": _ms(max(stats.lag) if stats.lag else None),
        "waited_for_connection": stats.waited,
        "peak_connections": client.peak_connections,
        "versions": dict(stats.versions),
        "valid": not invalid,
        "note": (f"INVALID: the generator fell behind its schedule (lag p99 {_ms(lag_p99)} ms > "
                 f"{lag_limit * 1e3:g} ms): these figures measure the generator") if invalid else "",
    }


def _event_loop_policy():
    try:
        import uvloop
        return uvloop.EventLoopPolicy()
    except ImportError:  # still correct, only slower
        return None


def _arun(coro):
    policy = _event_loop_policy()
    if policy is None:
        return asyncio.run(coro)
    loop = policy.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def pin(cpu):
    """Pin this process to one core (``os.sched_setaffinity``); returns the previous set."""
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {int(cpu)})
    return before


# -- public entry points ------------------------------------------------------------------------
def run_step(host, port, requests, rate, duration, *, warmup=1.0, max_connections=512, timeout=5.0,
             reload=None, server_pid=None, rss_every=5.0, lag_limit=0.005, preopen=16, spin=True,
             keep_latencies=False):
    """One step at a constant arrival rate.

    Parameters
    ----------
    host, port : the server (loopback)
    requests : list of bytes
        Complete HTTP/1.1 requests (``build_requests``), sent in turn, cycled.
    rate : float
        Requests per second offered (intended send times ``t0 + i / rate``).
    duration : float
        Seconds measured, after ``warmup`` seconds sent at the same rate and not counted.
    max_connections : int
        Keep-alive connections opened at most; beyond, due requests queue in the generator.
    timeout : float
        Seconds after its intended time at which a request is failed as a timeout.
    reload : dict, optional
        ``{"every": s, "files": [...], "token": str, "path": "/admin/reload"}``: reloads
        posted during the step (their outcomes land in ``result["reloads"]``).
    server_pid : int, optional
        Sample the server's ``VmRSS`` every ``rss_every`` s (``result["rss_kib"]``: (seconds,
        KiB) pairs; ``rss_growth_share``: last over first, minus 1), with per-window figures
        (``result["windows"]``: throughput, p99 and failed requests of each interval).
    lag_limit : float
        Seconds of generator lag (p99) over which the step is marked invalid.
    preopen : int
        Connections opened before the schedule starts.
    spin : bool
        Yield to the event loop in a busy loop when the next send is under ~2 ms away (exact
        send times, 100% of the generator's core); False: sleep (~1 ms timer granularity,
        kinder to a core shared with other work).
    keep_latencies : bool
        Also return the 2xx latencies (seconds, completion order) as ``result["latencies"]``.

    Returns
    -------
    dict : the step's figures (see ``_summary``; latencies in ms).
    """
    stats, client, planned, reloads, rss = _arun(_run(
        host, port, requests, rate, duration, warmup, max_connections, timeout, reload, server_pid,
        rss_every, lag_limit, preopen, spin))
    result = _summary(stats, rate, duration, client, planned, lag_limit)
    if keep_latencies:
        result["latencies"] = list(stats.ok)
    if reload:
        result["reloads"] = reloads
        result["reloads_ok"] = sum(1 for r in reloads if 200 <= r["status"] < 300)
        result["reloads_failed"] = len(reloads) - result["reloads_ok"]
        result["failed_requests"] = (result["rejected_503"] + sum(result["other_status"].values())
                                     + result["connection_errors"] + result["timeouts"] + result["unfinished"])
    if server_pid:
        result["rss_kib"] = [(t, v) for t, v, _, _ in rss]
        # per sampling window: 2xx per second, their p99 (ms), failed requests
        result["windows"] = [
            {"t": t1, "throughput": round((n1 - n0) / (t1 - t0), 1) if t1 > t0 else None,
             "p99_ms": _ms(percentile(stats.ok[n0:n1], 99)), "failed": f1 - f0}
            for (t0, _, n0, f0), (t1, _, n1, f1) in zip(rss, rss[1:])]
        values = [v for _, v, _, _ in rss if v]
        if values:
            result["rss_first_kib"], result["rss_last_kib"], result["rss_max_kib"] = values[0], values[-1], max(values)
            result["rss_growth_share"] = round((values[-1] - values[0]) / values[0], 5)
    return result


def run_steps(host, port, requests, rates, duration, **options):
    """:func:`run_step` at each rate in turn; a list of results."""
    return [run_step(host, port, requests, r, duration, **options) for r in rates]


def step_holds(step, *, p99_limit=0.050, max_error_share=0.001):
    """Whether a step was sustained: valid, throughput >= 95% of offered, errors (503s
    included) at most ``max_error_share`` of requests, p99 of 2xx at most ``p99_limit`` s."""
    return (step["valid"] and step["throughput"] >= 0.95 * step["offered_rate"]
            and step["error_share"] <= max_error_share
            and step["p99_ms"] is not None and step["p99_ms"] <= p99_limit * 1e3)


def find_capacity(host, port, requests, *, start=500.0, factor=1.5, bisect=3, max_rate=200_000.0,
                  duration=3.0, p99_limit=0.050, max_error_share=0.001, **options):
    """The highest rate sustained (:func:`step_holds`): step up by ``factor`` from ``start``
    until a step breaks, then ``bisect`` halvings between the last good and the first bad rate.

    Returns
    -------
    dict : ``capacity`` (req/s offered by the best step that held, 0 if none),
        ``best`` (that step), ``steps`` (every step run, in order), ``limited_by_generator``
        (True when the breaking step was invalid: the generator's ceiling, not the server's).
    """
    steps = []
    good, bad = None, None
    rate = float(start)
    while rate <= max_rate:
        step = run_step(host, port, requests, rate, duration, **options)
        steps.append(step)
        if step_holds(step, p99_limit=p99_limit, max_error_share=max_error_share):
            good = step
            rate *= factor
        else:
            bad = step
            break
    if bad is not None and good is not None:
        lo, hi = good["offered_rate"], bad["offered_rate"]
        for _ in range(bisect):
            mid = round((lo + hi) / 2.0, 1)
            step = run_step(host, port, requests, mid, duration, **options)
            steps.append(step)
            if step_holds(step, p99_limit=p99_limit, max_error_share=max_error_share):
                good, lo = step, mid
            else:
                bad, hi = step, mid
    return {"capacity": good["offered_rate"] if good else 0.0, "best": good, "steps": steps,
            "limited_by_generator": bool(bad is not None and not bad["valid"]),
            "p99_limit_ms": p99_limit * 1e3, "max_error_share": max_error_share}


def soak(host, port, requests, rate, seconds, *, server_pid, rss_every=5.0, **options):
    """One long step at ``rate``, the server's resident memory sampled (see :func:`run_step`)."""
    return run_step(host, port, requests, rate, seconds, server_pid=server_pid, rss_every=rss_every, **options)


# -- a trivial server: the generator's own ceiling ----------------------------------------------
_CANNED = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nsegmint-model-version: trivial\r\n"
           b"content-length: 2\r\n\r\n{}")


class _TrivialProtocol(asyncio.Protocol):
    def __init__(self):
        import httptools
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except Exception:
            self.transport.close()

    def on_message_complete(self):
        self.transport.write(_CANNED)


async def _trivial(host, port, ready):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_TrivialProtocol, host, port, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"loadgen trivial server: ready on http://{host}:{port}", file=sys.stderr, flush=True)
    if ready is not None:
        ready(port)
    await server.serve_forever()


def trivial_server(host="127.0.0.1", port=0):
    """Serve a canned 200 to every request forever (raw protocol: far cheaper than any framework)."""
    _arun(_trivial(host, port, None))


# -- command line -----------------------------------------------------------------------------
def _table(steps):
    head = (f"{'offered':>9} {'thruput':>9} {'p50ms':>8} {'p95ms':>8} {'p99ms':>8} {'maxms':>8} "
            f"{'503':>7} {'503p99':>8} {'other':>6} {'conn':>5} {'tmo':>5} {'lag99':>7} {'conns':>5}  note")
    rows = [head]
    for s in steps:
        def f(v):
            return "-" if v is None else f"{v:.2f}"
        rows.append(f"{s['offered_rate']:>9.0f} {s['throughput']:>9.0f} {f(s['p50_ms']):>8} {f(s['p95_ms']):>8} "
                    f"{f(s['p99_ms']):>8} {f(s['max_ms']):>8} {s['rejected_503']:>7} {f(s['rejected_p99_ms']):>8} "
                    f"{sum(s['other_status'].values()):>6} {s['connection_errors']:>5} "
                    f"{s['timeouts'] + s['unfinished']:>5} {f(s['lag_p99_ms']):>7} {s['peak_connections']:>5}  "
                    f"{s['note']}")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server, e.g. http://127.0.0.1:8000")
    p.add_argument("--path", default="/score")
    p.add_argument("--rates", help="comma-separated rates (req/s), one step each")
    p.add_argument("--rate", type=float, help="the rate of --soak or of a single step")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per step")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds sent before each step, not counted")
    p.add_argument("--find-capacity", action="store_true")
    p.add_argument("--start", type=float, default=500.0, help="first rate of --find-capacity")
    p.add_argument("--factor", type=float, default=1.5)
    p.add_argument("--p99-limit-ms", type=float, default=50.0)
    p.add_argument("--max-error-share", type=float, default=0.001)
    p.add_argument("--soak", type=float, metavar="SECONDS")
    p.add_argument("--server-pid", type=int)
    p.add_argument("--rss-every", type=float, default=5.0)
    p.add_argument("--reload-every", type=float, metavar="S")
    p.add_argument("--reload-files", help="comma-separated model files posted to /admin/reload in turn")
    p.add_argument("--max-connections", type=int, default=512)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--lag-limit-ms", type=float, default=5.0,
                   help="generator lag p99 over which a step is invalid")
    p.add_argument("--no-spin", action="store_true", help="sleep between sends instead of spinning")
    p.add_argument("--records", type=int, default=1000, help="distinct customers cycled")
    p.add_argument("--cpu", type=int, help="pin the generator to this core")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON here ('-': stdout)")
    p.add_argument("--trivial-server", type=int, metavar="PORT",
                   help="instead: serve a canned response on PORT (0: any) to measure the generator")
    a = p.parse_args(argv)
    pin(a.cpu)
    if a.trivial_server is not None:
        trivial_server(port=a.trivial_server)
        return 0
    from urllib.parse import urlsplit
    url = urlsplit(a.url)
    host, port = url.hostname, url.port or 80
    requests = build_requests(host, port, customer_records(a.records), a.path)
    options = dict(warmup=a.warmup, max_connections=a.max_connections, timeout=a.timeout,
                   lag_limit=a.lag_limit_ms / 1e3, spin=not a.no_spin)
    if a.reload_every:
        options["reload"] = {"every": a.reload_every, "files": a.reload_files.split(","),
                             "token": os.environ.get("SEGMINT_ADMIN_TOKEN"), "path": "/admin/reload"}
    if a.soak:
        result = soak(host, port, requests, a.rate, a.soak, server_pid=a.server_pid, rss_every=a.rss_every,
                      **options)
        steps = [result]
    elif a.find_capacity:
        result = find_capacity(host, port, requests, start=a.start, factor=a.factor, duration=a.duration,
                               p99_limit=a.p99_limit_ms / 1e3, max_error_share=a.max_error_share, **options)
        steps = result["steps"]
    else:
        rates = [float(r) for r in a.rates.split(",")] if a.rates else [a.rate or 1000.0]
        steps = result = run_steps(host, port, requests, rates, a.duration, server_pid=a.server_pid, **options)
    print(_table(steps), file=sys.stderr)
    if a.find_capacity:
        print(f"capacity: {result['capacity']:.0f} req/s (p99 <= {a.p99_limit_ms:g} ms, errors <= "
              f"{a.max_error_share:.2%})" + ("; limited by the generator" if result["limited_by_generator"] else ""),
              file=sys.stderr)
    for s in steps:
        if "rss_growth_share" in s:
            print(f"server RSS {s['rss_first_kib']} -> {s['rss_last_kib']} KiB "
                  f"({s['rss_growth_share']:+.2%}, max {s['rss_max_kib']})", file=sys.stderr)
            for w in s["windows"]:
                print(f"  t={w['t']:>8.1f}s  {w['throughput']} req/s  p99 {w['p99_ms']} ms  failed {w['failed']}",
                      file=sys.stderr)
        if "reloads_ok" in s:
            print(f"reloads ok {s['reloads_ok']}, failed {s['reloads_failed']}; failed requests "
                  f"{s['failed_requests']}; responses per version {s['versions']}", file=sys.stderr)
    if a.json:
        text = json.dumps(result, indent=1)
        if a.json == "-":
            print(text)
        else:
            with open(a.json, "w") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
