"""The fast refusal of shed requests (``segmint.serve.protocol``) and the shedding controller
(``segmint.serve.admission.LoopLag.control``).

- ``scoring_request`` against httptools (the parser uvicorn runs): whatever it accepts, httptools
  reads as exactly one complete, keep-alive ``POST`` to that endpoint with that body and nothing
  after it (hypothesis over methods, targets, versions, header spellings, bodies, cut and extra
  bytes); and what common clients send is accepted.
- The controller on synthetic ticks: a stall never starts shedding, a busy loop with late ticks
  does, recovery ends it, a reload resets it, ``admit`` passes exactly its share.
- Over real HTTP, a ``segmint serve`` whose controller is held shedding (``tests/serve_forced.py``):
  the 503 is the app's own, the connection stays usable, pipelined, split, ``Expect`` and
  ``Connection: close`` requests go the usual way (answered, in order), the metrics count the
  refusals, and an idle connection still times out after refusals.
"""
import http.client
import json
import os
import socket
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("uvicorn", reason="segmint serve needs the serve extra (uvicorn): pip install 'segmint[serve]'")
httptools = pytest.importorskip("httptools", reason="the fast refusal runs on uvicorn's httptools protocol")

import segmint  # noqa: E402
from segmint.serve import admission  # noqa: E402
from segmint.serve.admission import LoopLag  # noqa: E402
from segmint.serve.protocol import BODY, protocol_class, scoring_request  # noqa: E402

from test_serve_http import AS_OF, FIELDS, SPEC, RULES, Server  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _request(target="/score", body=b'{"a":1}', headers=None, method="POST", version="HTTP/1.1"):
    if headers is None:
        headers = [("Host", "127.0.0.1:8000"), ("Content-Type", "application/json"),
                   ("Content-Length", str(len(body)))]
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


# -- what scoring_request accepts and refuses -------------------------------------------------------
def test_common_clients_requests_are_recognised():
    body = b'{"customer_id":1}'
    n = str(len(body))
    assert scoring_request(_request(body=body)) == "score"
    assert scoring_request(_request("/score/batch", body)) == "score_batch"
    assert scoring_request(_request(f"/score?as_of={AS_OF}", body)) == "score"
    # python-requests / http.client / curl spell their headers differently
    assert scoring_request(_request(body=body, headers=[
        ("Host", "x"), ("User-Agent", "python-requests/2.32"), ("Accept-Encoding", "gzip, deflate"),
        ("Accept", "*/*"), ("Connection", "keep-alive"), ("Content-Length", n)])) == "score"
    assert scoring_request(_request(body=body, headers=[("host", "x"), ("content-length", n)])) == "score"
    assert scoring_request(_request(body=body, headers=[("CONTENT-LENGTH", " " + n + " "),
                                                        ("connection", "Keep-Alive")])) == "score"
    assert scoring_request(_request(body=b"", headers=[("Content-Length", "0")])) == "score"
    sys.path.insert(0, os.path.join(HERE, os.pardir, "scripts"))
    try:
        import loadgen
    finally:
        sys.path.pop(0)
    assert scoring_request(loadgen.build_request("127.0.0.1", 8000, "/score", body)) == "score"


@pytest.mark.parametrize("data", [
    _request(method="GET"),
    _request("/scores"),
    _request("/score/batch/x"),
    _request("/"),
    _request(version="HTTP/1.0"),
    _request(body=b"{}", headers=[("Content-Length", "3")]),               # the body is still coming
    _request(body=b"{}", headers=[("Content-Length", "1")]),               # bytes after the request
    _request() + _request(),                                                 # pipelined
    _request(body=b"{}", headers=[("Transfer-Encoding", "chunked"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("Expect", "100-continue"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("Upgrade", "h2c"), ("Connection", "Upgrade"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("Connection", "close"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("Connection", "keep-alive"), ("Connection", "keep-alive"),
                                  ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("Content-Length", "2"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("Content-Length", "+2")]),
    _request(body=b"{}", headers=[("Content-Length", "0x2")]),
    _request(body=b"{}", headers=[("Host", "x")]),                           # no length at all
    _request()[:20],
    b"POST /score HTTP/1.1\r\nContent-Length: 2\r\n",                       # no blank line yet
    b"",
    # malformed heads: httptools refuses them (400, connection closed), so must see them
    _request(body=b"5c\r\n", headers=[("Transfer-Encoding ", "chunked"), ("Content-Length", "4")]),
    _request(body=b"{}", headers=[("X", "a\r\n Transfer-Encoding: chunked"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("X", "a\nConnection: close"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("X", "a\x00b"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("X", "a\rb"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("X Y", "a"), ("Content-Length", "2")]),
    _request(body=b"{}", headers=[("Content-Length", "2"), ("NoColon", "")]).replace(b"NoColon: ", b"NoColon"),
    _request("/score?a\tb", body=b"{}", headers=[("Content-Length", "2")]),
], ids=lambda d: repr(d[:40]))
def test_anything_a_refusal_cannot_simply_skip_is_left_to_uvicorn(data):
    assert scoring_request(data) is None


class _Parsed:
    def __init__(self):
        self.url, self.body, self.headers, self.begun, self.complete = b"", b"", [], 0, 0

    def on_message_begin(self):
        self.begun += 1

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        self.complete += 1


_NAMES = st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH", "Content-length"])
_HEADER = st.one_of(
    st.tuples(st.sampled_from(["Host", "host", "Accept", "X-Trace", "Content-Type"]),
              st.sampled_from(["x", "a b", "*/*", "application/json", ""])),
    st.tuples(st.sampled_from(["Connection", "connection"]),
              st.sampled_from(["keep-alive", "Keep-Alive", "close", "upgrade", "keep-alive, close"])),
    st.tuples(st.sampled_from(["Transfer-Encoding", "Expect", "Upgrade"]),
              st.sampled_from(["chunked", "100-continue", "h2c"])),
    # malformed: a blank before the colon, obs-fold, bare LF or CR, NUL, a control in a name
    st.tuples(st.sampled_from(["X", "X Y", "Transfer-Encoding ", "Bad\x01", "Content-Length "]),
              st.sampled_from(["a\r\n Transfer-Encoding: chunked", "a\nConnection: close", "a\x00",
                               "a\rb", "ok", "\t2"])),
)


@st.composite
def _requests(draw):
    body = draw(st.binary(max_size=40))
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
    target = draw(st.sampled_from(["/score", "/score/batch", f"/score?as_of={AS_OF}", "/score/batch?x=1",
                                   "/scores", "/score/", "/healthz", "/score?a b"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
    headers = draw(st.lists(_HEADER, max_size=4))
    lengths = draw(st.lists(st.sampled_from([str(len(body)), f" {len(body)}", str(len(body) + 1),
                                             str(max(0, len(body) - 1)), "x"]), max_size=2))
    for value in lengths:
        headers.insert(draw(st.integers(0, len(headers))), (draw(_NAMES), value))
    data = _request(target, body, headers, method, version)
    cut = draw(st.sampled_from([None, None, "short", "extra", "pipelined"]))
    if cut == "short" and len(data) > 1:
        data = data[:draw(st.integers(1, len(data) - 1))]
    elif cut == "extra":
        data += draw(st.binary(min_size=1, max_size=8))
    elif cut == "pipelined":
        data += _request()
    return data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_whatever_is_recognised_httptools_reads_as_one_complete_keep_alive_scoring_post(data):
    endpoint = scoring_request(data)
    if endpoint is None:
        return
    parsed = _Parsed()
    parser = httptools.HttpRequestParser(parsed)
    parser.feed_data(data)  # raises on anything malformed or an upgrade
    assert parsed.begun == 1 and parsed.complete == 1
    assert parser.get_method() == b"POST" and parser.get_http_version() == "1.1"
    assert parser.should_keep_alive() and not parser.should_upgrade()
    path = httptools.parse_url(parsed.url).path
    assert {b"/score": "score", b"/score/batch": "score_batch"}[path] == endpoint
    names = {name for name, _ in parsed.headers}
    assert not names & {b"transfer-encoding", b"expect", b"upgrade"}
    length = [int(v) for n, v in parsed.headers if n == b"content-length"]
    assert length == [len(parsed.body)]
    # nothing after the request: the bytes end exactly where the body does
    assert data.endswith(parsed.body) and data.index(b"\r\n\r\n") + 4 + len(parsed.body) == len(data)


# -- the controller ----------------------------------------------------------------------------------
def _drive(lag, ticks, *, start=0.0, period=0.005):
    """Feed ``ticks`` (lateness, busy share) to ``lag.control`` one ``period`` apart (each tick's
    time includes its lateness); returns the shedding state and share after every tick."""
    now, cpu, out = start, start, []
    for late, busy in ticks:
        step = period + late
        now += step
        cpu += step * busy
        lag.control(late, now, cpu)
        out.append((lag.shedding, lag.share))
    return out


def test_a_single_long_stall_then_a_catch_up_never_starts_shedding():
    lag = LoopLag()
    # a 230 ms stall, 40 ms of catching up busy and late, then punctual ticks at 70 % busy
    states = _drive(lag, [(0.23, 1.0)] + [(0.008, 1.0)] * 5 + [(0.0, 0.7)] * 200)
    assert not any(shedding for shedding, _ in states)


def test_a_busy_loop_with_late_ticks_starts_shedding_then_recovers_and_stops():
    lag = LoopLag()
    window_ticks = int(admission.SHED_WINDOW_S / 0.005)
    states = _drive(lag, [(0.009, 1.0)] * (window_ticks * (admission.SHED_START_WINDOWS + 1)))
    assert states[-1][0] is True and states[-1][1] <= admission.SHED_START_SHARE
    # still overloaded: the share keeps falling, never under the floor
    states = _drive(lag, [(0.009, 1.0)] * 600, start=10.0)
    assert states[-1][1] == pytest.approx(admission.SHED_FLOOR)
    # the overload ends: the share rises back and shedding stops
    states = _drive(lag, [(0.0, 0.5)] * 2000, start=20.0)
    assert states[-1] == (False, 1.0)
    shares = [share for _, share in states]
    assert shares == sorted(shares)


def test_busy_without_late_ticks_or_late_ticks_without_a_busy_loop_do_not_start_shedding():
    assert not any(s for s, _ in _drive(LoopLag(), [(0.0, 1.0)] * 400))      # busy but punctual
    assert not any(s for s, _ in _drive(LoopLag(), [(0.009, 0.5)] * 400))    # late but idle (steal)


def test_a_reload_freezes_the_controller_and_its_window_restarts_after():
    lag = LoopLag()
    _drive(lag, [(0.009, 1.0)] * 200)
    assert lag.shedding
    frozen = lag.share
    lag.reloading = True
    states = _drive(lag, [(0.009, 1.0)] * 100 + [(0.0, 0.1)] * 100, start=5.0)
    assert set(states) == {(True, frozen)}  # neither busier nor idler while the reload runs
    lag.reloading = False
    _drive(lag, [(0.0, 0.1)] * 2000, start=10.0)
    assert (lag.shedding, lag.share) == (False, 1.0)
    # not shedding when the reload starts: its stalls never start shedding
    lag = LoopLag()
    lag.reloading = True
    assert not any(s for s, _ in _drive(lag, [(0.009, 1.0)] * 400))


def test_near_capacity_without_a_queue_ends_shedding():
    # after an overload, the loop stays ~98 % busy but its ticks are punctual: no queue, so the
    # share rises back and shedding ends (a reviewer found it could stay shedding on busy alone)
    lag = LoopLag()
    _drive(lag, [(0.009, 1.0)] * 200)
    assert lag.shedding
    _drive(lag, [(0.001, 0.98)] * 2000, start=10.0)
    assert (lag.shedding, lag.share) == (False, 1.0)



def test_a_pinned_loop_with_punctual_ticks_keeps_shedding_more():
    # at 2x the queue waits in the clients (one request in flight per connection): the loop's
    # passes stay short, so ticks are punctual, but it never idles: the share must keep falling
    # (measured before this rule: the share crept back up on such windows, admitted p99 0.47 s)
    lag = LoopLag()
    lag.shedding, lag.share = True, 0.5
    states = _drive(lag, [(0.0, 0.995)] * 100)
    assert states[-1][0] and states[-1][1] < 0.1
    # a few idle windows raise it faster than busy-but-unsaturated ones
    idle, busy = LoopLag(), LoopLag()
    for one in (idle, busy):
        one.shedding, one.share = True, 0.3
    _drive(idle, [(0.0, 0.5)] * 30)
    _drive(busy, [(0.0, 0.95)] * 30)
    assert idle.share > busy.share > 0.3

@pytest.mark.parametrize("share", [0.05, 0.3, 0.5, 0.9, 1.0])
def test_admit_passes_exactly_its_share_evenly(share):
    lag = LoopLag()
    lag.shedding, lag.share = True, share
    passed = [lag.admit() for _ in range(1000)]
    assert abs(sum(passed) - share * 1000) <= 1
    # evenly: any 100 in a row hold their share, give or take one
    for i in range(0, 900, 50):
        assert abs(sum(passed[i:i + 100]) - share * 100) <= 1


def test_protocol_class_builds_on_the_installed_uvicorn():
    class _App:  # the attributes the protocol reads
        lag = LoopLag()

    cls = protocol_class(_App())
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    assert cls is not None and issubclass(cls, HttpToolsProtocol)


# -- over real HTTP, the controller held shedding ------------------------------------------------------
@pytest.fixture(scope="module")
def forced(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forced")
    table = segmint.make_customers(500, random_state=3).select(FIELDS)
    model = segmint.Segmenter(SPEC, clusterer=segmint.MiniBatchKMeans(n_clusters=4, random_state=0),
                              rules=segmint.RuleSet(RULES, default="customers"), id_column="customer_id")
    path = str(folder / "m.seg")
    model.fit(table, as_of=AS_OF).save(path)
    record = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in table.slice(0, 1).to_pylist()[0].items()}
    servers = {}
    try:
        for name, share in (("none", "0"), ("half", "0.5"), ("all", "1")):
            env = os.environ.copy()
            env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
            env["SEGMINT_TEST_SHARE"] = share
            servers[name] = Server([path], env, module="serve_forced")
        for s in servers.values():
            s.wait_ready()
        yield {"servers": servers, "record": record, "body": json.dumps(record).encode()}
    finally:
        for s in servers.values():
            s.stop()


def _score_request(body, extra=(), target=f"/score?as_of={AS_OF}"):
    return _request(target, body, [("Host", "127.0.0.1"), ("Content-Type", "application/json"), *extra,
                                   ("Content-Length", str(len(body)))])


class _Conn:
    """One raw keep-alive connection: send bytes, read whole responses (status, headers, body)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        n = int(headers.get("content-length", 0))
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            rest += chunk
        self.buf = rest[n:]
        return status, headers, rest[:n]

    def closed(self, wait=3.0):
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def _metric(server, name, **labels):
    _, _, text = server.request("GET", "/metrics")
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.decode().splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_shed_request_gets_the_apps_503_and_its_connection_serves_on(forced):
    server, body = forced["servers"]["none"], forced["body"]
    conn = _Conn(server.port)
    try:
        for _ in range(3):
            conn.send(_score_request(body))
            status, headers, payload = conn.response()
            assert status == 503 and payload == BODY
            assert json.loads(payload) == {"error": "Overloaded", "message": "the service is overloaded: retry later"}
            assert headers["retry-after"] == "1" and headers["content-type"] == "application/json"
            assert "date" in headers  # uvicorn's default headers, as on every other answer
            assert len(headers["segmint-model-version"]) == 16
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection, not a scoring request
        assert conn.response()[0] == 200
    finally:
        conn.close()


def _handled_by_app(server):
    # the app times what it answers; the protocol's refusals never reach it
    return _metric(server, "segmint_http_request_duration_seconds_count", endpoint="score")


def test_requests_a_refusal_cannot_skip_are_shed_by_the_app_in_order(forced):
    server, body = forced["servers"]["none"], forced["body"]
    before = _handled_by_app(server)
    conn = _Conn(server.port)
    try:
        # pipelined: two requests in one write, both refused by the app, in order
        conn.send(_score_request(body) + _score_request(body, target="/healthz"))
        assert [conn.response()[0] for _ in range(2)] == [503, 405]
        # the body split over two writes
        data = _score_request(body)
        conn.send(data[:-5])
        time.sleep(0.05)
        conn.send(data[-5:])
        assert conn.response()[0] == 503
        # a head over 2 KiB (never cached nor refused from its bytes)
        conn.send(_score_request(body, [("X-Trace", "t" * 3000)]))
        assert conn.response()[0] == 503
        assert _handled_by_app(server) - before == 3  # the app answered those three
        # and a plain one is refused by the protocol on the same connection
        conn.send(_score_request(body))
        assert conn.response()[0] == 503
        assert _handled_by_app(server) - before == 3
        # Connection: close is refused by the app and the connection closed
        conn.send(_score_request(body, [("Connection", "close")]))
        assert conn.response()[0] == 503
        assert conn.closed()
    finally:
        conn.close()


def test_a_malformed_head_reaches_httptools_and_the_connection_closes(forced):
    # the reviewer's smuggling probe: an obfuscated Transfer-Encoding, then a second request
    server = forced["servers"]["none"]
    for head in (b"Transfer-Encoding : chunked\r\nContent-Length: 4",
                 b"X: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 4"):
        conn = _Conn(server.port)
        try:
            conn.send(b"POST /score HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n\r\n5c\r\n")
            time.sleep(0.05)
            try:
                conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                pass
            assert conn.response()[0] == 400
            assert conn.closed()
        finally:
            conn.close()


def test_admitted_requests_are_scored_and_judged_once(forced):
    # share 1 held while shedding: the protocol admits every request and the app must not
    # judge them again (share x share); fallbacks are judged by the app alone
    server, body = forced["servers"]["all"], forced["body"]
    conn = _Conn(server.port)
    try:
        for _ in range(5):
            conn.send(_score_request(body))
            assert conn.response()[0] == 200
        conn.send(_score_request(body) + _score_request(body))
        assert [conn.response()[0] for _ in range(2)] == [200, 200]
    finally:
        conn.close()


def test_the_metrics_count_the_refusals_as_503s_of_their_endpoint(forced):
    server, body = forced["servers"]["none"], forced["body"]
    before = (_metric(server, "segmint_http_requests_total", endpoint="score_batch", status="503"),
              _metric(server, "segmint_rejected_overloaded_total"),
              _metric(server, "segmint_http_errors_total", error="Overloaded"))
    conn = _Conn(server.port)
    try:
        for _ in range(4):
            conn.send(_score_request(body + b"\n", target="/score/batch"))
            assert conn.response()[0] == 503
    finally:
        conn.close()
    after = (_metric(server, "segmint_http_requests_total", endpoint="score_batch", status="503"),
             _metric(server, "segmint_rejected_overloaded_total"),
             _metric(server, "segmint_http_errors_total", error="Overloaded"))
    assert [a - b for a, b in zip(after, before)] == [4, 4, 4]
    assert _metric(server, "segmint_admitted_share") == 0.0


def test_half_admitted_scores_every_other_request_bit_for_bit(forced):
    server, body = forced["servers"]["half"], forced["body"]
    conn = _Conn(server.port)
    try:
        statuses, answers = [], []
        for _ in range(10):
            conn.send(_score_request(body))
            status, _, payload = conn.response()
            statuses.append(status)
            if status == 200:
                answers.append(payload)
    finally:
        conn.close()
    assert statuses.count(200) == 5 and statuses.count(503) == 5
    assert len(set(answers)) == 1  # every admitted one scored the same customer the same way
    assert json.loads(answers[0])["customer_id"] == forced["record"]["customer_id"]


def test_an_idle_connection_still_times_out_after_refusals(forced):
    server, body = forced["servers"]["none"], forced["body"]
    conn = _Conn(server.port)
    try:
        conn.send(_score_request(body))
        assert conn.response()[0] == 503
        # uvicorn closes an idle keep-alive connection after 5 s (timeout_keep_alive)
        assert not conn.closed(wait=3.0)
        conn.send(_score_request(body))  # refused again: the idle clock restarts
        assert conn.response()[0] == 503
        assert not conn.closed(wait=3.5)
        assert conn.closed(wait=4.0)
    finally:
        conn.close()


def test_http_client_sees_the_503_and_retry_after(forced):
    server, body = forced["servers"]["none"], forced["body"]
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        c.request("POST", f"/score?as_of={AS_OF}", body=body, headers={"content-type": "application/json"})
        r = c.getresponse()
        assert r.status == 503 and r.getheader("retry-after") == "1" and r.read() == BODY
    finally:
        c.close()
