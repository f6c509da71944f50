"""Over HTTP: ``segmint serve`` against a plain FastAPI + scikit-learn app, open-loop load.

The model is ``bench_realtime``'s (16 features, k=8, 20 rules: its SPEC and RULES), fitted on
``min(--size / 5, 100,000)`` customers (the training size does not change the cost of one
request) and saved. Each server runs in a subprocess pinned to core 0 (``taskset -c 0``), one at a time;
the load generator (``scripts/loadgen.py``: open loop, constant arrival rate, latency from the
intended send time) runs in this process pinned to core 1. On a 2-core machine the generator is
included in the machine: anything else running shows in the figures.

What pytest-benchmark times: one request's round trip on the idle server (one keep-alive
connection, one request at a time). The figures that matter come from the load generator, run
untimed after it. For each server: the capacity (``loadgen.find_capacity``: the highest rate
with throughput >= 95% of offered, errors and 503s <= 0.1%, p99 <= 50 ms, the generator on
schedule), then one step at 70% and one at 2x that capacity (each after a 3 s warm-up at its rate: the
steady state; the per-second ``*_windows`` show the measured part's settling). ``extra_info`` holds, per step, throughput, p50/p95/p99/max,
errors, the 503 share and the 503s' p99 (``at70_*``, ``at2x_*``), the capacity, and for ours
the ratio of our capacity to the baseline's (the baseline runs first). Quality: of a sample of
customers sent one by one, the responses equal to the in-process answer (ours: ``Scorer.
score_one``'s segment id, name, distance bits and rule; the baseline: its pipeline's batch
``predict``): ``equal``, all of them.

The baseline (``scripts/serve_baseline.py``) runs no rules and returns no distance: the
comparison flatters it.

Sizes: ``small`` (the untimed run of the test suite) starts both servers, checks 50 responses
and sends one tiny step (a few seconds in all); ``medium`` 2 s steps; ``large`` 5 s steps and
10 s at 70% and 2x (the figures the issue quotes).
"""
import contextlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import segmint
from bench_realtime import AS_OF, RULES, SPEC
from conftest import compare, record

pytest.importorskip("uvicorn")
pytest.importorskip("httptools")

ROOT = Path(__file__).resolve().parent.parent
GROUP = "http score[16 features,k=8,20 rules]"
TOKEN = "bench-token"
SERVER_CPU, GENERATOR_CPU = 0, 1
READY = re.compile(r"ready on http://([\d.]+):(\d+)")
# per --size: measured seconds of a capacity step, its warm-up, bisections, seconds at 70% / 2x
PLANS = {"small": None,
         "medium": {"duration": 2.0, "warmup": 0.5, "bisect": 2, "steps": 3.0, "steps_warmup": 1.0, "sample": 200},
         "large": {"duration": 5.0, "warmup": 1.0, "bisect": 3, "steps": 10.0, "steps_warmup": 3.0, "sample": 500}}
SMALL = {"rate": 200.0, "duration": 0.5, "warmup": 0.2, "sample": 50}
_CAPACITY = {}  # impl -> capacity, so ours can record the ratio to the baseline


def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"_{name}_bench", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loadgen = _load_script("loadgen")
baseline = _load_script("serve_baseline")


def _pinned(argv, cpu):
    """The command pinned to one core when the machine has two or more and taskset exists."""
    if cpu is not None and len(os.sched_getaffinity(0)) > 1 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)] + argv
    return argv


@contextlib.contextmanager
def _generator_on(cpu):
    before = os.sched_getaffinity(0)
    try:
        if len(before) > 1 and cpu in before:
            os.sched_setaffinity(0, {cpu})
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _server(argv, env=None, timeout=120.0):
    """Start a server subprocess, wait for its ready line (stderr); yields (pid, host, port)."""
    proc = subprocess.Popen(_pinned(argv, SERVER_CPU), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, **(env or {})), cwd=str(ROOT))
    lines = []
    try:
        deadline = time.monotonic() + timeout
        match = None
        while match is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            match = READY.search(line)
        if match is None:
            raise AssertionError(f"{argv[:4]} did not print a ready line:\n{''.join(lines)[-3000:]}")
        # keep reading its stderr so a chatty server never blocks on a full pipe
        threading.Thread(target=lambda: [lines.append(x) for x in proc.stderr], daemon=True).start()
        host, port = match.group(1), int(match.group(2))
        _wait_ready(host, port, deadline)
        yield proc.pid, host, port
        assert proc.poll() is None, f"the server died under load:\n{''.join(lines)[-3000:]}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(host, port, deadline):
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server never became ready (/readyz)")


def _post_each(host, port, records):
    """POST each record to /score on one keep-alive connection: the parsed JSON answers."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    answers = []
    for r in records:
        conn.request("POST", "/score", body=loadgen.encode_record(r), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        answers.append(json.loads(body) if response.status == 200 else {"status": response.status})
    conn.close()
    return answers


@pytest.fixture(scope="module")
def http_model(bench_dir, n_customers):
    # the training size does not change the cost of a request: small (CI) fits on 20,000
    table = segmint.make_customers(min(n_customers // 5, 100_000), random_state=0)
    model = segmint.Segmenter(SPEC, clusterer=segmint.MiniBatchKMeans(n_clusters=8, random_state=0),
                              rules=segmint.RuleSet(RULES, default="customers"), id_column="customer_id")
    model.fit(table, as_of=AS_OF)
    path = os.path.join(bench_dir, "http_model.seg")
    model.save(path)
    records = segmint.make_customers(1_000, random_state=1).to_pylist()
    return {"model": model, "path": path, "records": records, "n_train": table.num_rows}


def _load(request, host, port, records, pid):
    """The load plan of this --size: (capacity result or None, {label: step})."""
    plan = PLANS[request.config.getoption("--size")]
    reqs = loadgen.build_requests(host, port, records)
    with _generator_on(GENERATOR_CPU):
        if plan is None:  # the untimed CI run: one tiny step, enough to prove the path works
            step = loadgen.run_step(host, port, reqs, SMALL["rate"], SMALL["duration"], warmup=SMALL["warmup"])
            return None, {"tiny": step}
        found = loadgen.find_capacity(host, port, reqs, duration=plan["duration"], warmup=plan["warmup"],
                                      bisect=plan["bisect"])
        capacity = found["capacity"]
        steps = {}
        if capacity:
            for label, factor in (("at70", 0.7), ("at2x", 2.0)):
                steps[label] = loadgen.run_step(host, port, reqs, capacity * factor, plan["steps"],
                                                warmup=plan["steps_warmup"], server_pid=pid, rss_every=1.0)
        return found, steps


def _figures(found, steps):
    info = {}
    if found is not None:
        info.update(capacity_rps=found["capacity"], capacity_limited_by_generator=found["limited_by_generator"],
                    capacity_steps=[{k: s[k] for k in ("offered_rate", "throughput", "p99_ms", "error_share", "valid")}
                                    for s in found["steps"]])
    for label, s in steps.items():
        for key in ("offered_rate", "throughput", "p50_ms", "p95_ms", "p99_ms", "max_ms", "rejected_share",
                    "rejected_p99_ms", "connection_errors", "timeouts", "unfinished", "error_share", "valid",
                    "lag_p99_ms", "peak_connections"):
            info[f"{label}_{key}"] = s[key]
        info[f"{label}_other_status"] = s["other_status"]
        if "windows" in s:  # per second: how an overload's onset settles (shedding starts after ~0.5 s of saturation)
            info[f"{label}_windows"] = s["windows"]
    return info


def _sample(request):
    plan = PLANS[request.config.getoption("--size")]
    return (plan or SMALL)["sample"]


class _RoundTrip:
    """One request at a time on a keep-alive connection (a raw blocking socket: the client's
    own cost stays small): what pytest-benchmark times, the unloaded round trip."""

    def __init__(self, host, port, requests):
        import socket
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.requests, self.i = requests, 0

    def __call__(self):
        self.i = (self.i + 1) % len(self.requests)
        self.sock.sendall(self.requests[self.i])
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(body) < length:
            body += self.sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200"), head[:80]
        return body

    def close(self):
        self.sock.close()


def _time_round_trip(benchmark, host, port, records):
    """pytest-benchmark's figure: one request's round trip on an idle server."""
    trip = _RoundTrip(host, port, loadgen.build_requests(host, port, records[:200]))
    try:
        with _generator_on(GENERATOR_CPU):
            for _ in range(20):
                trip()  # warm: connection, caches
            benchmark(trip)
    finally:
        trip.close()


def test_peer_fastapi_sklearn_http_capacity(benchmark, http_model, request):
    pytest.importorskip("fastapi")
    pytest.importorskip("sklearn")
    records = http_model["records"]
    argv = [sys.executable, str(ROOT / "scripts" / "serve_baseline.py"), http_model["path"], "--host", "127.0.0.1",
            "--port", "0", "--train-customers", str(http_model["n_train"])]
    # the same pipeline in process: the answers the service must give
    features = baseline.baseline_features(http_model["model"])
    pipe = baseline.fit_pipeline(features, http_model["n_train"])
    sample = records[:_sample(request)]
    expected = pipe.predict(np.vstack([baseline.RowBuilder(features)(r) for r in sample]))
    with _server(argv) as (pid, host, port):
        answers = _post_each(host, port, sample)
        equal = sum(int(a.get("segment_id") == int(e)) for a, e in zip(answers, expected))
        compare(benchmark, GROUP, impl="fastapi.sklearn", threads=1)
        _time_round_trip(benchmark, host, port, records)
        found, steps = _load(request, host, port, records, pid)
    info = _figures(found, steps)
    if found is not None:
        _CAPACITY["baseline"] = found["capacity"]
    record(benchmark, quality=("responses equal to its batch predict", equal, "equal"), customers=len(sample),
           **info)
    assert equal == len(sample)
    for s in steps.values():
        assert s["ok"] > 0


def test_segmint_serve_http_capacity(benchmark, http_model, request):
    pytest.importorskip("orjson", reason="segmint serve needs the serve extra (uvicorn, orjson)")
    records = http_model["records"]
    argv = [sys.executable, "-m", "segmint.cli", "serve", http_model["path"], "--host", "127.0.0.1", "--port", "0",
            "--log-level", "warning"]
    scorer = http_model["model"].scorer()
    sample = records[:_sample(request)]
    with _server(argv, env={"SEGMINT_ADMIN_TOKEN": TOKEN}) as (pid, host, port):
        answers = _post_each(host, port, sample)
        equal = 0
        for a, r in zip(answers, sample):
            s = scorer.score_one(r)  # as_of: now, as the service scores
            equal += int(a.get("segment_id") == s.segment_id and a.get("segment") == s.segment
                         and a.get("distance") == s.distance and a.get("rule") == s.rule)
        compare(benchmark, GROUP, threads=1)
        _time_round_trip(benchmark, host, port, records)
        found, steps = _load(request, host, port, records, pid)
    info = _figures(found, steps)
    if found is not None and _CAPACITY.get("baseline"):
        info["capacity_ratio_vs_baseline"] = round(found["capacity"] / _CAPACITY["baseline"], 3)
    if "at70" in steps and "rss_growth_share" in steps["at70"]:
        info["at70_rss_growth_share"] = steps["at70"]["rss_growth_share"]
    record(benchmark, quality=("responses equal to the in-process Scorer", equal, "equal"), customers=len(sample),
           **info)
    assert equal == len(sample)
    for s in steps.values():
        assert s["ok"] > 0
