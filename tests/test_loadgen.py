"""scripts/loadgen.py against a tiny ASGI app on uvicorn in a subprocess (and on its own figures).

The app answers ``POST /score`` with 200 and a ``segmint-model-version`` header; it stalls its
event loop once for 200 ms (the request number given on its command line), answers 503 to a
body holding ``"reject"``, and ``POST /admin/reload`` (bearer token) switches the version it
reports to the file's name.
"""
import importlib.util
import math
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("uvicorn")
pytest.importorskip("httptools")

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
TOKEN = "test-token"

_spec = importlib.util.spec_from_file_location("_loadgen_under_test", SCRIPTS / "loadgen.py")
loadgen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loadgen)

APP = textwrap.dedent('''
    import asyncio, json, os, socket, sys, time
    import uvicorn

    STALL_AT = int(sys.argv[1])
    state = {"n": 0, "version": b"a"}
    TOKEN = os.environ["SEGMINT_ADMIN_TOKEN"].encode()

    async def read_body(receive):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                return body

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        status, payload = 200, b'{"segment_id":0}'
        if scope["path"] == "/admin/reload":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != b"Bearer " + TOKEN:
                status, payload = 401, b"{}"
            else:
                model = json.loads(body)["model"]
                state["version"] = os.path.basename(model).encode()
        else:
            state["n"] += 1
            if state["n"] == STALL_AT:
                time.sleep(0.2)  # blocks the event loop: every request behind it waits
            if b"reject" in body:
                status = 503
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"segmint-model-version", state["version"])]})
        await send({"type": "http.response.body", "body": payload})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http="httptools", loop="uvloop", access_log=False, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)

    async def main():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        print("ready", sock.getsockname()[1], file=sys.stderr, flush=True)
        await task

    asyncio.run(main())
''')


def _start(tmp_path, stall_at):
    path = tmp_path / f"tiny_app_{stall_at}.py"
    path.write_text(APP)
    env = dict(os.environ, SEGMINT_ADMIN_TOKEN=TOKEN)
    proc = subprocess.Popen([sys.executable, str(path), str(stall_at)], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("ready"):
            # keep reading stderr: a chatty server must never block on a full pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(line.split()[1])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    pytest.fail("the tiny app did not start")


@pytest.fixture
def tiny_server(tmp_path, request):
    proc, port = _start(tmp_path, getattr(request, "param", 0))
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def _requests(port, n=50, reject_every=0):
    records = [{"customer_id": i, "note": "reject" if reject_every and i % reject_every == 0 else "ok"}
               for i in range(n)]
    return loadgen.build_requests("127.0.0.1", port, records)


# -- percentiles -------------------------------------------------------------------------------
def _slow_percentile(values, q):
    """Nearest rank, by counting: the smallest observed value with at least q% of the values at
    or below it."""
    for candidate in sorted(values):
        if sum(1 for v in values if v <= candidate) * 100 >= q * len(values):
            return candidate
    return None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=60),
       st.sampled_from([50, 95, 99, 99.9, 100, 1, 0.1]))
def test_percentiles_are_the_nearest_rank_of_the_observed_latencies(values, q):
    assert loadgen.percentile(values, q) == _slow_percentile(values, q)


def test_percentiles_of_known_latencies_pick_the_right_element():
    values = list(range(1, 101))  # 1..100 ms
    assert loadgen.percentile(values, 50) == 50
    assert loadgen.percentile(values, 99) == 99
    assert loadgen.percentile(values, 100) == 100
    assert loadgen.percentile([7.0], 99) == 7.0
    assert loadgen.percentile([], 99) is None


def test_requests_are_complete_http_messages_with_iso_dates():
    import datetime as dt
    request = loadgen.build_requests("127.0.0.1", 1, [{"d": dt.date(2026, 1, 2), "x": None}])[0]
    head, body = request.split(b"\r\n\r\n")
    assert body == b'{"d":"2026-01-02","x":null}'
    assert f"Content-Length: {len(body)}".encode() in head
    assert head.startswith(b"POST /score HTTP/1.1\r\n")


# -- against a server --------------------------------------------------------------------------
@pytest.mark.parametrize("tiny_server", [200], indirect=True)
def test_a_200_ms_stall_shows_in_the_latency_of_every_request_due_during_it(tiny_server):
    rate = 400.0
    result = loadgen.run_step("127.0.0.1", tiny_server, _requests(tiny_server), rate, 1.5, warmup=0.25,
                              max_connections=8, keep_latencies=True)
    latencies = np.array(result["latencies"])
    assert result["ok"] == int(rate * 1.5)
    # the stall (request 200, ~0.5 s after the start, 0.25 s into the measured part) delayed every
    # request due while the loop slept: ~rate * 0.2 = 80 requests, from ~200 ms down to ~0. A
    # closed loop with 8 connections would have sent (and delayed) only 8 of them.
    assert latencies.max() >= 0.15
    assert (latencies > 0.05).sum() >= 40
    assert result["p99_ms"] >= 100


def test_503s_are_counted_with_their_own_percentile_and_not_as_throughput(tiny_server):
    result = loadgen.run_step("127.0.0.1", tiny_server, _requests(tiny_server, n=50, reject_every=5), 300.0, 1.0,
                              warmup=0.2)
    planned = int(300 * 1.0)
    assert result["rejected_503"] + result["ok"] == planned
    assert result["rejected_503"] == pytest.approx(planned / 5, abs=2)
    assert result["rejected_p99_ms"] is not None
    assert result["rejected_share"] == pytest.approx(0.2, abs=0.01)
    # throughput: 2xx answered inside the measured second (not those answered while draining)
    assert 0.9 * result["ok"] <= result["throughput"] <= result["ok"]
    assert result["versions"] == {"a": result["ok"]}


def test_a_server_that_is_not_there_gives_connection_errors_not_a_hang():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    t0 = time.monotonic()
    result = loadgen.run_step("127.0.0.1", port, _requests(port), 200.0, 0.5, warmup=0.1, timeout=1.0)
    assert time.monotonic() - t0 < 5
    assert result["ok"] == 0
    assert result["connection_errors"] + result["timeouts"] == 100
    assert result["error_share"] == 1.0
    assert not loadgen.step_holds(result)


def test_reload_mode_counts_reloads_and_responses_per_model_version(tiny_server, tmp_path):
    files = [str(tmp_path / "a.seg"), str(tmp_path / "b.seg")]
    result = loadgen.run_step("127.0.0.1", tiny_server, _requests(tiny_server), 300.0, 1.5, warmup=0.2,
                              reload={"every": 0.2, "files": files, "token": TOKEN, "path": "/admin/reload"})
    assert result["reloads_ok"] >= 5 and result["reloads_failed"] == 0
    assert result["failed_requests"] == 0
    # "a": the app's first version, served until the first reload (0.2 s into the measured part)
    assert {"a.seg", "b.seg"} <= set(result["versions"]) <= {"a", "a.seg", "b.seg"}
    assert sum(result["versions"].values()) == result["ok"] == 450


def test_a_reload_without_the_token_is_counted_as_failed(tiny_server, tmp_path):
    result = loadgen.run_step("127.0.0.1", tiny_server, _requests(tiny_server), 100.0, 0.6, warmup=0.1,
                              reload={"every": 0.2, "files": ["x.seg"], "token": "wrong", "path": "/admin/reload"})
    assert result["reloads_failed"] >= 2 and result["reloads_ok"] == 0
    assert {r["status"] for r in result["reloads"]} == {401}


def test_capacity_search_stops_at_the_first_broken_step_and_bisects(monkeypatch):
    calls = []

    def fake_step(host, port, requests, rate, duration, **options):
        calls.append(rate)
        held = rate <= 1500
        return {"offered_rate": rate, "throughput": rate if held else rate / 2, "error_share": 0.0,
                "p99_ms": 1.0, "valid": True}

    monkeypatch.setattr(loadgen, "run_step", fake_step)
    result = loadgen.find_capacity("h", 1, [], start=500, factor=2, bisect=3)
    assert calls[:3] == [500, 1000, 2000]
    assert len(calls) == 6
    assert 1000 <= result["capacity"] <= 1500 and result["capacity"] == max(r for r in calls if r <= 1500)
    assert not result["limited_by_generator"]


def test_soak_mode_samples_the_servers_resident_memory(tiny_server):
    # this test process stands in for the server: its VmRSS is readable
    result = loadgen.soak("127.0.0.1", tiny_server, _requests(tiny_server), 100.0, 0.6, server_pid=os.getpid(),
                          rss_every=0.2, warmup=0.1)
    assert len(result["rss_kib"]) >= 3
    assert result["rss_first_kib"] > 0 and math.isfinite(result["rss_growth_share"])
    assert result["ok"] == 60
    windows = result["windows"]
    assert len(windows) == len(result["rss_kib"]) - 1
    assert sum(w["failed"] for w in windows) == 0
    assert all(w["throughput"] is None or w["throughput"] >= 0 for w in windows)
