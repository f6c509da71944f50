"""Admission control: answer 503 at once to a request that has already waited too long.

Where the queue is: scoring runs inline on the one event loop, so a request waits in the socket
buffers and in the loop's ready queue, not in any counter the app could bound. One loop iteration
reads every readable connection (uvicorn parses the requests and queues one task each), and the
next pass over the ready queue runs all those tasks one after the other: a request handled late
in a long pass has waited at least as long as the pass has been running. So the app asks, for
each scoring request and from fresh evidence only (:meth:`LoopLag.waited`):

(b) how long the current pass over the ready queue has been running. The pass's start is the
    moment a one-shot "boundary" callback runs (queued with ``call_soon`` by the first request of
    the previous pass, it runs first in the next pass, after the poll that read every request of
    this pass), or, when the previous pass held no request, the first request's own start. Every
    request of the pass was read before that moment: it has waited at least ``now - start``.
(a) how overdue the pending timer tick is now (a long pass, or a worker thread holding the GIL,
    delays every timer: the same evidence seen from the timers' side).

Over the budget (``--queue-ms``) the request gets 503 without its body being read or scored: a
long pass then admits the requests of its first ``queue_ms`` and rejects the rest cheaply, so
the loop catches up instead of queueing. Nothing is carried from one pass to the next: the old
rule (the *last* tick's lateness) kept shedding for up to one tick interval after the loop had
caught up, so a lone client got 503s after one big batch (review finding 3).

Why not uvloop's ``loop.time()`` as the iteration's start: it is not cached; uvloop 0.23's
``Loop._time`` calls ``uv_update_time`` first, so ``time.monotonic() - loop.time()`` stays ~0
(measured: 0.1-1 ms, the same before and after a 50 ms busy callback). The boundary callback
gives the same reading on uvloop and plain asyncio (both run only the callbacks queued before a
pass starts).

While a reload loads and warms a model in a worker thread (:meth:`LoopLag.reloading`), the
thread takes the GIL in long C calls (file reading, Arrow, Numba's cache loading) and every pass
gets late by its share, not by queued requests: shedding on lag then rejects requests that are
no overload (measured before this rule: 503s during hot swaps at moderate load). So during a
reload the budget is raised to :data:`RELOAD_BUDGET_S` (a true overload is still bounded).

Costs, the arithmetic of shedding (measured 2026-11-30 on the shared 2-core VM, load average ~1
from others: server ``taskset -c 0``, ``scripts/loadgen.py`` pinned to core 1, a 1.5k-row model;
CPU = utime+stime of the server process from /proc over a steady open-loop rate, minus its idle
~1-2 % (the tick), divided by the requests answered):

==========================  ==================  ==================
request                     at 1,500 req/s      at 12,000 req/s
==========================  ==================  ==================
scored ``POST /score``      ~115 us             ~69 us
503 (proxy: ``POST`` to an  ~75 us              ~53 us
unknown path, same body,
answered before the body)
``GET /healthz``            ~71 us              ~52 us
==========================  ==================  ==================

(fewer us a request at high rates: one loop iteration serves many.) Scoring itself is ~15 us of
a request; uvicorn's HTTP handling (parsing, the ASGI task, the write) is the rest, and a 503
pays all of it. Shedding keeps latency bounded only while ``offered rate x CPU per 503 < 1
core``: 53 us a 503 -> ~19,000 req/s, i.e. ~1.3x the scoring capacity (~14,500 req/s, 69 us).
Beyond that the rejections alone fill the core and the queue grows where the app cannot see it
(socket buffers, clients). Measured with ``--queue-ms`` 20 and 10 (5 s steps, 512 connections):

===========  ==========================================  ==========================================
offered      queue-ms 10                                 queue-ms 20
===========  ==========================================  ==========================================
0.6x (8.4k)  no 503, admitted p99 1.7 ms                 no 503, admitted p99 1.3 ms
0.9x (13k)   no 503, admitted p99 7.6 ms                 no 503, p99 52 ms (generator-invalid step)
1.25x (18k)  503 45 % (p99 275 ms), admitted p99 279 ms  503 1 % (p99 732 ms), admitted p99 720 ms
1.65x (24k)  503 41 % (p99 2.4 s), admitted p99 2.4 s    503 1.5 % (p99 3.4 s), admitted p99 2.3 s
===========  ==========================================  ==========================================

The default was 10 ms on that table; the final run (alone on the machine, issue 16's notes)
moved it to 50 ms: a 10-minute soak at 70% of capacity (8,200 req/s) with 10 ms gave 612 503s in
4.9 million requests (0.012 %, every one a request caught behind a VM or GC stall of 10-230 ms that
the loop drained in the next passes anyway), while at overload a tight budget buys little since a
503 costs ~75 % of a scored request. 50 ms is the issue's bound for an admitted request's p99:
nothing that waited less is refused, and a sustained overload (a queue that keeps growing) is
still cut. Neither budget holds the issue's "p99 <= 50 ms at 2x" alone: above ~1.3x no in-app rule
can, because a 503 costs ~75 % of a scored request.

Beyond capacity: shedding a sustained overload. Two things stood in the way, and a controller
with a cheaper refusal answers both:

1. *The queue the service cannot see.* A keep-alive client keeps one request in flight per
   connection, so 512 connections put at most ~512 requests (~26 ms of work) in the server: under
   a 50 ms budget nothing is ever refused, and at 2x the overload queues in the clients (measured:
   no 503, 66 % timeouts; 380 of 512 server sockets held an unread request). What the service
   does see is its loop busy window after window with late timer ticks. :meth:`LoopLag.control`
   reads, every :data:`SHED_WINDOW_S`, the process's CPU time over the wall time ("busy") and
   whether a tick came later than :data:`SHED_TARGET_S`; windows both saturated (busy >=
   :data:`SHED_START_BUSY`) and late count up, the others count down by :data:`SHED_LEAK`;
   :data:`SHED_START_WINDOWS` on the count (~0.3 s of saturation) start shedding at half the
   requests. Busy alone misleads: the loop batches more as load rises (~69 us a scored request at
   12k req/s, ~52 us at 19k), so 70 % of capacity already reads ~0.93 busy; a stall alone is one
   window. Shedding, the admitted share falls (x :data:`SHED_DECREASE`) in each window that is
   pinned (busy >= :data:`SHED_PINNED`) or both late and busier than :data:`SHED_BUSY`, rises
   (+ :data:`SHED_INCREASE`) in the other busy windows and faster (+ :data:`SHED_IDLE_INCREASE`)
   in idle ones (busy < :data:`SHED_IDLE`): the headroom drains what queued in the clients
   before shedding began. Back at 1 it stops. Why pinned windows count without late ticks: at
   2x, shedding, the queue waits in the clients (one request in flight per connection), so the
   loop's passes stay short and its ticks punctual (measured: ~15 of 18 windows a second
   punctual and ~0.996 busy); a rule needing late ticks let the share creep back up between
   the few late windows and oscillate between 0.18 and 0.55 around the ~0.29 the core can hold
   (admitted p99 0.47 s at 45.6k req/s). With it: share 0.25-0.40, admitted p99 6.5 ms, 503
   p99 4.5 ms. Near capacity without a queue a loop reads ~0.95-0.98 busy, under the pinned
   bound: after a 2x burst falling to 0.9x, shedding ended within ~1.5 s.
   ``admit`` lets exactly that share pass, evenly. Tuning on this machine (each a full run of
   ``bench_http.py``): starting at 0.9 and falling x0.85 per 50 ms took ~1 s to drain the onset's
   queue (2x: p99 0.64 s); a late-tick-only rule never drained it (p99 1.2-1.5 s); a 0.95 busy
   start shed 1 % at 0.67x capacity (the capacity search then stopped there); lowering the
   share on late ticks alone kept a 10-minute soak at 70 % shedding ~35 % for 90 s after a VM
   hiccup (late ticks from steal, the loop not busy), and on busy alone it could stay shedding
   just under capacity (a reviewer's model: 0.9x after a 2x burst, a third refused); starting after 0.2 s of saturation shed
   during the catch-up after a stall (at 70 % the loop is ~93 % busy: a 0.3 s stall takes
   seconds to drain), hence longer; but 20 windows *in a row* never came at 2x (an idle or
   punctual window now and then reset the count: no 503 at all, 50 % timeouts), hence a leaky
   count of 12.
2. *The dear refusal.* A shed request is refused by :mod:`segmint.serve.protocol` from the raw
   bytes of its read, before uvicorn parses it: ~13 us of CPU at 38k req/s (a canned-answer
   server on uvloop, the floor: ~10 us), against ~53 us for the app's 503.

Measured with the server on core 0 and ``scripts/loadgen.py`` on core 1 (512 connections), the
same model as the issue's figures: see BENCHMARKS.md (issue 16) for the final run.
"""
import time

DEFAULT_QUEUE_MS = 50.0  # measured: see above
# the budget while a reload runs in a worker thread (see the module's docstring)
RELOAD_BUDGET_S = 1.0

# Sustained overload, the shedding controller (see "Beyond capacity" above; measured choices).
SHED_WINDOW_S = 0.025
SHED_TARGET_S = 0.005
SHED_START_BUSY = 0.98
SHED_BUSY = 0.97
SHED_START_WINDOWS = 12
SHED_LEAK = 2
SHED_DECREASE = 0.7
SHED_INCREASE = 0.005
SHED_IDLE = 0.9        # a window this idle: no queue anywhere, the share rises faster
SHED_IDLE_INCREASE = 0.05
SHED_PINNED = 0.99     # a window this busy while shedding: a queue is waiting (in the clients)
SHED_START_SHARE = 0.5
SHED_FLOOR = 0.05      # never below: admitted requests keep flowing while the loop recovers


class LoopLag:
    """Measures how long a request has waited on the event loop and judges overload.

    Parameters
    ----------
    queue_ms : float
        The queueing delay budget in milliseconds: a request that has waited longer gets 503.
    interval_ms : float, optional
        The timer's period (default a quarter of the budget, between 1 and 5 ms: libuv's timers
        count whole milliseconds).

    Attributes
    ----------
    lag : float
        The lateness of the last tick, in seconds (for the metrics gauge only: it is past
        evidence, never used to refuse a request).
    reloading : bool
        Set by the app while a reload loads a model in a worker thread: the budget is then
        :data:`RELOAD_BUDGET_S`, and stays so until the first tick after the reload ends.
    """

    def __init__(self, queue_ms=DEFAULT_QUEUE_MS, interval_ms=None):
        self.budget = queue_ms / 1000.0
        if interval_ms is None:
            interval_ms = min(5.0, max(1.0, queue_ms / 4.0))
        self.interval = interval_ms / 1000.0
        self.lag = 0.0
        self._reloading = False
        self._settling = False  # a reload ended and no tick has run since
        self._due = None
        self._handle = None
        self._loop = None
        # the current pass over the ready queue: its start (None: no request seen in it yet),
        # whether a boundary callback is queued, whether a request ran since the last boundary
        self._start = None
        self._armed = False
        self._busy = False
        # the shedding controller: the share of scoring requests admitted while shedding, since
        # when the ticks have been late without a break, and the admission credit (deterministic:
        # exactly ``share`` of the requests pass, spread evenly)
        self.shedding = False
        self.share = 1.0
        self._credit = 0.0
        self._window = None     # (wall, cpu) at the window's start
        self._late = False      # a tick of this window was late
        self._busy_windows = 0  # busy windows with late ticks in a row (not shedding)

    @property
    def reloading(self):
        return self._reloading

    @reloading.setter
    def reloading(self, value):
        # the raised budget lasts until the first tick after the reload: the requests of the pass
        # in which the reload ends were delayed by its thread, and the pending tick is still as
        # overdue as that thread made it
        self._settling = self._settling or (self._reloading and not value)
        self._reloading = bool(value)

    def start(self, loop):
        """Start ticking on ``loop`` (from a coroutine running on it)."""
        self._loop = loop
        self._due = time.perf_counter() + self.interval
        self._handle = loop.call_later(self.interval, self._tick)

    def stop(self):
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._due = None

    def _tick(self):
        now = time.perf_counter()
        self.lag = max(0.0, now - self._due)
        self._settling = False
        self._due = now + self.interval
        self._handle = self._loop.call_later(self.interval, self._tick)
        self.control(self.lag, now)

    def control(self, lag, now, cpu=None):
        """Update the shedding state from one tick: its lateness ``lag`` seen at ``now`` (seconds,
        ``time.perf_counter``), and the process's CPU time ``cpu`` (``time.process_time``; read
        when None). Decides once a window (see :data:`SHED_WINDOW_S`); a reload in a worker
        thread keeps the loop busy and late without any overload: the controller stays as it is
        until the reload ends.
        """
        if self.reloading:
            # frozen, not reset: an overload during a reload stays shed as it was; the window
            # restarts after it (the reload's GIL-holding thread made this one meaningless)
            self._window, self._late, self._busy_windows = None, False, 0
            return
        if cpu is None:
            cpu = time.process_time()
        self._late = self._late or lag > SHED_TARGET_S
        if self._window is None:
            self._window = (now, cpu)
            return
        wall0, cpu0 = self._window
        if now - wall0 < SHED_WINDOW_S:
            return
        busy = (cpu - cpu0) / (now - wall0)
        late, self._late, self._window = self._late, False, (now, cpu)
        if self.shedding:
            # both: late ticks without a busy loop are the VM's (steal), not a queue; a busy loop
            # with punctual ticks is near capacity without a queue (the loop batches more as load
            # rises): neither is a reason to refuse more
            if busy >= SHED_PINNED or (late and busy > SHED_BUSY):
                self.share = max(SHED_FLOOR, self.share * SHED_DECREASE)
            else:
                self.share += SHED_IDLE_INCREASE if busy < SHED_IDLE else SHED_INCREASE
                if self.share >= 1.0:
                    self.shedding, self.share, self._busy_windows = False, 1.0, 0
        elif busy >= SHED_START_BUSY and late:
            self._busy_windows += 1
            if self._busy_windows >= SHED_START_WINDOWS:
                self.shedding, self.share, self._credit = True, SHED_START_SHARE, 0.0
        else:
            # leaky, not reset: at 2x a saturated loop still shows an idle or punctual window now
            # and then (measured: with a reset, 20 windows in a row never came at 2x)
            self._busy_windows = max(0, self._busy_windows - SHED_LEAK)

    def admit(self):
        """While shedding: whether to admit this scoring request (exactly ``share`` of them pass,
        evenly spread: no random numbers, so a run can be replayed)."""
        credit = self._credit + self.share
        if credit >= 1.0:
            self._credit = credit - 1.0
            return True
        self._credit = credit
        return False

    def _boundary(self):
        # runs first in the pass after the one that queued it: every request of this pass was
        # read before now. A pass with requests keeps the chain going (one callback a pass); an
        # idle pass ends it (no wake-ups at idle).
        if self._busy:
            self._start = time.perf_counter()
            self._busy = False
            self._loop.call_soon(self._boundary)
        else:
            self._start = None
            self._armed = False

    def waited(self):
        """At least how long the request being handled now has waited, in seconds (fresh evidence:
        the current pass's running time, and how overdue the pending tick is)."""
        now = time.perf_counter()
        self._busy = True
        if not self._armed and self._loop is not None:
            self._armed = True
            self._loop.call_soon(self._boundary)
        start = self._start
        if start is None:
            self._start = start = now
        due = self._due
        return max(now - start, 0.0 if due is None else now - due)

    def overloaded(self):
        """True when the request being handled now has waited over the budget (it should get 503)."""
        return self.waited() > (RELOAD_BUDGET_S if self._reloading or self._settling else self.budget)

    def current(self):
        """The queueing delay now, in seconds (for the metrics gauge)."""
        due = self._due
        overdue = 0.0 if due is None else time.perf_counter() - due
        return max(self.lag, overdue, 0.0)
