"""``segmint serve`` over real HTTP: the server runs as a subprocess on a free loopback port.

Three servers for the module: a model served with an admin token (scoring, batches, errors,
metrics, reloads, SIGHUP, hot swaps under load), a rule set alone without a token, started as
``python -m segmint serve`` (rules-only scoring, the admin endpoint off), and a model with a tiny
queueing budget (admission control: no 503 at idle after a big batch, fast 503s in a burst, none
during hot swaps).
"""
import asyncio
import datetime as dt
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("uvicorn", reason="segmint serve needs the serve extra (uvicorn): pip install 'segmint[serve]'")
pytest.importorskip("orjson", reason="segmint serve needs the serve extra (orjson): pip install 'segmint[serve]'")

import segmint  # noqa: E402
from segmint.serve import Scorer  # noqa: E402

AS_OF = "2026-10-01"
SPEC = [{"column": "recency_days", "impute": "median", "indicator": True},
        {"column": "frequency", "log1p": True},
        {"column": "monetary", "log1p": True, "clip": [0.0, 0.995]},
        {"column": "income_k", "impute": "median"},                       # float32
        {"column": "email_opt_in"},                                        # boolean
        {"column": "region", "one_hot": True, "max_categories": 4},
        {"column": "channel", "one_hot": True, "null": "other"}]
RULES = [("no_consent", "not email_opt_in and not sms_opt_in"),
         ("never_bought", "frequency = 0"),
         ("lapsed_big", "monetary >= 2000 and days_since(last_order_date) > 365")]
FIELDS = ["customer_id", "recency_days", "frequency", "monetary", "income_k", "email_opt_in", "sms_opt_in",
          "region", "channel", "last_order_date"]
# the rule set served alone: a rules-only Scorer learns the types of the columns only its rules read
# from the first record, and a JSON date is a string there (serve --rules has no schema to say otherwise)
RULES_ONLY = RULES[:2]
TOKEN = "test-token-4f1c"


def _version(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]


class Server:
    """A ``segmint serve`` subprocess: its port, and its stderr lines (drained by a thread)."""

    def __init__(self, args, env=None, module="segmint.cli"):
        self.proc = subprocess.Popen([sys.executable, "-m", module, "serve", *args, "--port", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=env or os.environ.copy())
        self.lines = []
        self.port = None

    def wait_ready(self):
        """Read stderr up to the ready line (the port); then drain it in a thread."""
        deadline = time.monotonic() + 120  # a cold kernel cache compiles first
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if "segmint serve: ready on http://" in line:
                self.port = int(line.split("ready on http://")[1].split()[0].rsplit(":", 1)[1])
                break
        if self.port is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the server did not start:\n" + "".join(self.lines))
        self.ready_line = self.lines[-1]
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def score(self, record, as_of=AS_OF):
        return self.request("POST", f"/score?as_of={as_of}", json.dumps(record),
                            {"content-type": "application/json"})

    def reload(self, body=None, token=TOKEN):
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        return self.request("POST", "/admin/reload", None if body is None else json.dumps(body), headers)

    def stop(self):
        """SIGTERM, and the exit status (None: it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def _fit(table, seed):
    model = segmint.Segmenter(SPEC, clusterer=segmint.MiniBatchKMeans(n_clusters=6, random_state=seed),
                              rules=segmint.RuleSet(RULES, default="customers"), id_column="customer_id")
    return model.fit(table, as_of=AS_OF)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    table = segmint.make_customers(2000, random_state=0).select(FIELDS)
    paths = {}
    for name, seed in (("a", 0), ("b", 1)):
        paths[name] = str(folder / f"{name}.seg")
        _fit(table, seed).save(paths[name])
    paths["rules"] = str(folder / "rules.json")
    segmint.RuleSet(RULES_ONLY, default="customers").save(paths["rules"])
    paths["bad"] = str(folder / "bad.seg")
    with open(paths["bad"], "wb") as f:
        f.write(b"PK\x03\x04 not a model at all")
    paths["live"] = str(folder / "live.seg")
    shutil.copyfile(paths["a"], paths["live"])
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    env = os.environ.copy()
    env.pop("SEGMINT_ADMIN_TOKEN", None)
    servers = {}
    try:
        servers["model"] = Server([paths["live"], "--admin-token-file", str(token_file), "--max-body-bytes",
                                   "200000", "--max-batch", "300"], env)
        servers["rules"] = Server(["--rules", paths["rules"]], env, module="segmint")
        servers["tiny"] = Server([paths["a"], "--queue-ms", "5", "--max-batch", "5000",
                                  "--max-body-bytes", "10000000", "--admin-token-file", str(token_file)], env)
        for server in servers.values():  # started together, waited for in turn
            server.wait_ready()
        scorers = {_version(paths[n]): segmint.load(paths[n]).scorer() for n in ("a", "b")}
        yield {"paths": paths, "table": table, "servers": servers, "scorers": scorers,
               "rules_scorer": Scorer(segmint.load(paths["rules"]))}
    finally:
        for s in servers.values():
            s.stop()


def _records(table, n, seed):
    """Random customers from the table, with nulls and unseen categories mixed in (Python values)."""
    rng = random.Random(seed)
    rows = table.to_pylist()
    out = []
    for _ in range(n):
        r = dict(rng.choice(rows))
        roll = rng.random()
        if roll < 0.15:
            r["recency_days"] = None
        elif roll < 0.3:
            r["region"] = rng.choice(["Atlantis", "Mu", "zz"])
        elif roll < 0.4:
            r["channel"] = None
        elif roll < 0.5:
            r["income_k"] = None
        out.append(r)
    return out


def _as_json(record):
    """The record as a JSON body carries it: dates as ISO 8601 strings."""
    return {k: v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v for k, v in record.items()}


def _expected(scorers, version, record):
    s = scorers[version].score_one(record, as_of=AS_OF)
    return {"segment_id": s.segment_id, "segment": s.segment, "distance": s.distance, "rule": s.rule}


def test_the_ready_line_names_the_address_and_the_model(setup):
    line = setup["servers"]["model"].ready_line
    assert f"(model {_version(setup['paths']['a'])}, k=6, 3 rules)" in line
    assert "(model " in setup["servers"]["rules"].ready_line and "k=0, 2 rules" in setup["servers"]["rules"].ready_line


def test_a_scored_record_equals_the_in_process_scorer_bit_for_bit(setup):
    server, scorers = setup["servers"]["model"], setup["scorers"]
    for record in _records(setup["table"], 60, seed=1):
        status, headers, body = server.score(_as_json(record))
        assert status == 200, body
        got = json.loads(body)
        version = headers["segmint-model-version"]
        assert got["model_version"] == version and version in scorers
        expected = _expected(scorers, version, record)
        assert {k: got[k] for k in expected} == expected  # the distance's float repr round-trips exactly
        assert got["customer_id"] == record["customer_id"]


def test_a_rules_only_server_scores_with_the_rule_set(setup):
    server, scorer = setup["servers"]["rules"], setup["rules_scorer"]
    for record in _records(setup["table"], 20, seed=2):
        status, headers, body = server.score(_as_json(record))
        assert status == 200, body
        s = scorer.score_one(record, as_of=AS_OF)
        got = json.loads(body)
        assert (got["segment_id"], got["segment"], got["distance"], got["rule"]) == tuple(s)
        assert headers["segmint-model-version"] == _version(setup["paths"]["rules"])


def test_an_ndjson_batch_equals_score_many_in_order(setup):
    server, scorers = setup["servers"]["model"], setup["scorers"]
    records = _records(setup["table"], 120, seed=3)
    body = "\n".join(json.dumps(_as_json(r)) for r in records) + "\n"
    status, headers, out = server.request("POST", f"/score/batch?as_of={AS_OF}", body,
                                          {"content-type": "application/x-ndjson"})
    assert status == 200, out
    assert headers["content-type"] == "application/x-ndjson"
    version = headers["segmint-model-version"]
    expected = scorers[version].score_many(records, as_of=AS_OF).to_pylist()
    got = [json.loads(line) for line in out.decode().splitlines()]
    assert len(got) == len(records)
    for g, e in zip(got, expected):
        assert {k: g[k] for k in e} == e


def test_an_arrow_batch_equals_score_many(setup):
    server, scorers = setup["servers"]["model"], setup["scorers"]
    table = pa.Table.from_pylist(_records(setup["table"], 150, seed=4))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    status, headers, out = server.request("POST", f"/score/batch?as_of={AS_OF}", sink.getvalue().to_pybytes(),
                                          {"content-type": "application/vnd.apache.arrow.stream"})
    assert status == 200, out
    got = pa.ipc.open_stream(out).read_all()
    expected = scorers[headers["segmint-model-version"]].score_many(table, as_of=AS_OF)
    assert got.equals(expected)


def test_a_bad_record_in_a_batch_fails_the_batch_naming_its_line_and_field(setup):
    server = setup["servers"]["model"]
    records = [_as_json(r) for r in _records(setup["table"], 5, seed=5)]
    del records[3]["monetary"]
    body = "\n".join(json.dumps(r) for r in records)
    status, headers, out = server.request("POST", f"/score/batch?as_of={AS_OF}", body,
                                          {"content-type": "application/x-ndjson"})
    assert status == 400
    err = json.loads(out)
    assert err["error"] == "UnknownColumnError" and "line 4" in err["message"] and "monetary" in err["message"]
    assert "segmint-model-version" in headers


@pytest.mark.parametrize("edit, error, named", [
    ({"drop": "frequency"}, "UnknownColumnError", "frequency"),
    ({"set": ("monetary", "lots")}, "UnsupportedTypeError", "monetary"),
    ({"set": ("region", 7)}, "UnsupportedTypeError", "region"),
])
def test_a_missing_or_mistyped_field_gets_400_naming_it(setup, edit, error, named):
    server = setup["servers"]["model"]
    record = _as_json(_records(setup["table"], 1, seed=6)[0])
    if "drop" in edit:
        del record[edit["drop"]]
    else:
        record[edit["set"][0]] = edit["set"][1]
    status, headers, body = server.score(record)
    assert status == 400
    err = json.loads(body)
    assert err["error"] == error and named in err["message"]
    assert headers["segmint-model-version"]


def test_bad_json_and_a_body_that_is_not_an_object_get_400(setup):
    server = setup["servers"]["model"]
    status, _, body = server.request("POST", "/score", b'{"frequency": 3,', {"content-type": "application/json"})
    assert status == 400 and json.loads(body)["error"] == "DataError" and "char 16" in json.loads(body)["message"]
    status, _, body = server.request("POST", "/score", b"[1, 2]", {"content-type": "application/json"})
    assert status == 400 and "array" in json.loads(body)["message"]
    status, _, body = server.request("POST", f"/score?as_of=not-a-date", json.dumps(
        _as_json(_records(setup["table"], 1, seed=7)[0])))
    assert status == 400 and "Traceback" not in body.decode()


def test_a_body_over_the_limit_gets_413_and_so_does_a_batch_over_max_batch(setup):
    server = setup["servers"]["model"]
    status, headers, body = server.request("POST", "/score", b"x" * 250_000, {"content-type": "application/json"})
    assert status == 413 and json.loads(body)["error"] == "PayloadTooLarge"
    line = json.dumps(_as_json(_records(setup["table"], 1, seed=8)[0])) + "\n"
    status, _, body = server.request("POST", "/score/batch", line * 301, {"content-type": "application/x-ndjson"})
    assert status == 413 and "--max-batch" in json.loads(body)["message"]
    assert server.request("GET", "/healthz")[0] == 200


def test_unknown_paths_get_404_wrong_methods_405_with_allow_and_unknown_batch_types_415(setup):
    server = setup["servers"]["model"]
    assert server.request("GET", "/nope")[0] == 404
    status, headers, _ = server.request("GET", "/score")
    assert status == 405 and headers["allow"] == "POST"
    status, headers, _ = server.request("POST", "/healthz")
    assert status == 405 and "GET" in headers["allow"]
    status, _, body = server.request("POST", "/score/batch", b"a,b\n1,2", {"content-type": "text/csv"})
    assert status == 415 and "text/csv" in json.loads(body)["message"]


def test_healthz_and_readyz_answer_200_with_a_model_loaded(setup):
    server = setup["servers"]["model"]
    assert server.request("GET", "/healthz")[0] == 200
    status, headers, body = server.request("GET", "/readyz")
    assert status == 200 and json.loads(body)["model_version"] == headers["segmint-model-version"]


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _metrics(server):
    """/metrics as {(sample name, sorted labels): value}: read by prometheus_client's parser when
    it is installed, else by a strict reading of the text format (every line a comment or a sample)."""
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    out = {}
    try:
        from prometheus_client import parser
    except ImportError:
        for line in text.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                continue
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
        return out
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_parse_as_prometheus_text_and_the_counters_move(setup):
    server = setup["servers"]["model"]
    key = ("segmint_http_requests_total", (("endpoint", "score"), ("status", "200")))
    before = _metrics(server)
    record = _as_json(_records(setup["table"], 1, seed=9)[0])
    for _ in range(3):
        assert server.score(record)[0] == 200
    server.request("GET", "/nope")
    after = _metrics(server)
    assert after[key] - before.get(key, 0) == 3
    assert after[("segmint_http_requests_total", (("endpoint", "other"), ("status", "404")))] >= 1
    assert after[("segmint_http_request_duration_seconds_count", (("endpoint", "score"),))] \
        >= before.get(("segmint_http_request_duration_seconds_count", (("endpoint", "score"),)), 0) + 3
    assert any(name == "segmint_model_info" for name, _ in after)
    assert ("segmint_rejected_overloaded_total", ()) in after


def test_the_admin_endpoint_is_off_without_a_token(setup):
    server = setup["servers"]["rules"]
    assert server.reload()[0] == 404
    assert server.reload(token=None)[0] == 404


def test_the_admin_endpoint_refuses_a_missing_or_wrong_token(setup):
    server = setup["servers"]["model"]
    assert server.reload(token=None)[0] == 401
    assert server.reload(token="wrong")[0] == 403


def test_a_reload_with_the_token_swaps_the_version_and_a_bad_file_keeps_the_old_model(setup):
    server, paths = setup["servers"]["model"], setup["paths"]
    status, headers, body = server.reload({"model": paths["b"]})
    assert status == 200, body
    assert json.loads(body)["model_version"] == _version(paths["b"])
    record = _as_json(_records(setup["table"], 1, seed=10)[0])
    assert server.score(record)[1]["segmint-model-version"] == _version(paths["b"])
    failures = _metrics(server)[("segmint_reload_failures_total", ())]
    status, _, body = server.reload({"model": paths["bad"]})
    assert 400 <= status < 600 and "still serving" in json.loads(body)["message"]
    status, headers, _ = server.score(record)
    assert status == 200 and headers["segmint-model-version"] == _version(paths["b"])
    assert _metrics(server)[("segmint_reload_failures_total", ())] == failures + 1
    status, _, body = server.reload({"model": paths["a"], "rules": paths["rules"]})
    assert status == 400 and "rule set" in json.loads(body)["message"]
    assert server.reload({"model": paths["live"]})[0] == 200  # back to the configured file


def test_sighup_reloads_the_configured_file_from_disk(setup):
    server, paths = setup["servers"]["model"], setup["paths"]
    record = _as_json(_records(setup["table"], 1, seed=11)[0])
    assert server.score(record)[1]["segmint-model-version"] == _version(paths["live"])
    tmp = paths["live"] + ".tmp"
    shutil.copyfile(paths["b"], tmp)
    os.replace(tmp, paths["live"])
    try:
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if server.score(record)[1]["segmint-model-version"] == _version(paths["b"]):
                break
            time.sleep(0.05)
        assert server.score(record)[1]["segmint-model-version"] == _version(paths["b"])
        assert any("SIGHUP" in line for line in server.lines)
    finally:
        shutil.copyfile(paths["a"], tmp)
        os.replace(tmp, paths["live"])
        assert server.reload()[0] == 200


def test_hot_swaps_under_concurrent_load_fail_no_request(setup):
    server, paths, scorers = setup["servers"]["model"], setup["paths"], setup["scorers"]
    records = [_as_json(r) for r in _records(setup["table"], 50, seed=12)]
    expected = {v: [_expected(scorers, v, r) for r in _records(setup["table"], 50, seed=12)] for v in scorers}
    stop = threading.Event()
    results, problems = [], []

    def client(seed):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        i = seed
        while not stop.is_set():
            i = (i + 7) % len(records)
            try:
                conn.request("POST", f"/score?as_of={AS_OF}", json.dumps(records[i]))
                r = conn.getresponse()
                body = r.read()
            except Exception as e:  # a failed request is the failure this test looks for
                problems.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                continue
            version = r.getheader("segmint-model-version")
            if r.status != 200 or version not in scorers:
                problems.append((r.status, version, body[:200]))
                continue
            got = json.loads(body)
            if {k: got[k] for k in expected[version][i]} != expected[version][i]:
                problems.append(("wrong answer", version, i))
            results.append(version)
        conn.close()

    threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    swaps = 0
    try:
        for n in range(12):
            status, _, body = server.reload({"model": paths["b" if n % 2 == 0 else "a"]})
            assert status == 200, body
            swaps += 1
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    server.reload({"model": paths["live"]})
    assert swaps >= 10 and not problems, problems[:5]
    assert len(results) > 100 and set(results) == set(scorers)


def _ndjson(records, copies=1):
    return ("\n".join(json.dumps(r) for r in records) + "\n") * copies


def test_a_sequential_client_after_a_big_batch_gets_no_503(setup):
    # review finding 3: the last tick's lateness used to outlive the slow batch that caused it
    server = setup["servers"]["tiny"]
    records = [_as_json(r) for r in _records(setup["table"], 200, seed=14)]
    big, single = _ndjson(records, 5), json.dumps(records[0])  # 1000 records: ~10+ ms of the loop
    a = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    b = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    statuses = []
    try:
        for _ in range(15):
            time.sleep(0.02)
            a.request("POST", f"/score/batch?as_of={AS_OF}", big, {"content-type": "application/x-ndjson"})
            r = a.getresponse()
            r.read()
            assert r.status == 200
            b.request("POST", f"/score?as_of={AS_OF}", single)
            r = b.getresponse()
            r.read()
            statuses.append(r.status)
    finally:
        a.close()
        b.close()
    assert statuses == [200] * 15


def test_a_burst_behind_a_long_batch_gets_fast_503s_with_retry_after_and_the_server_stays_up(setup):
    server = setup["servers"]["tiny"]
    records = [_as_json(r) for r in _records(setup["table"], 250, seed=13)]
    big = _ndjson(records, 20)  # 5000 records: ~100 ms of the loop, while the burst arrives
    single = json.dumps(records[0]).encode()
    request = (f"POST /score?as_of={AS_OF} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
               f"content-length: {len(single)}\r\n\r\n").encode() + single
    n = 300

    def burst():
        socks = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(n)]
        batch = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            batch.request("POST", f"/score/batch?as_of={AS_OF}", big, {"content-type": "application/x-ndjson"})
            time.sleep(0.03)  # the batch is being read and scored: the burst queues behind it
            sent = time.perf_counter()
            for sock in socks:
                sock.sendall(request)
            outcomes = []
            for sock in socks:
                head = _read_response(sock)
                outcomes.append((int(head.split()[1]), time.perf_counter() - sent,
                                 re.search(rb"(?im)^retry-after: *(\S+)", head)))
            r = batch.getresponse()
            r.read()
        finally:
            batch.close()
            for sock in socks:
                sock.close()
        return outcomes

    # A stall of the VM (or a GC pause) longer than the 5 ms budget at the start of the burst's
    # pass leaves the pending tick overdue for the whole pass: every request of it has then truly
    # waited over the budget and is refused (seen once in CI: 300 of 300 refused). So up to three
    # bursts, each judged on its own; the same shape must show in one of them.
    rejected_before = _metrics(server)[("segmint_rejected_overloaded_total", ())]
    refused = 0
    for _ in range(3):
        outcomes = burst()
        refused += sum(st == 503 for st, _, _ in outcomes)
        if {st for st, _, _ in outcomes} == {200, 503}:
            break
    statuses = [st for st, _, _ in outcomes]
    assert set(statuses) <= {200, 503}
    shed = [(t, ra) for st, t, ra in outcomes if st == 503]
    # real shedding: the requests handled first in the pass are admitted, the rest refused
    assert shed and statuses.count(200) >= 1, statuses
    assert all(ra is not None and ra.group(1) == b"1" for _, ra in shed)
    # a 503 waits for the batch in front of it and the pass it is in, never for a queue
    assert max(t for t, _ in shed) < 2.0 and np.median([t for t, _ in shed]) < 1.0
    assert server.request("GET", "/healthz")[0] == 200
    # nothing is carried over: the next request, alone, is admitted
    assert server.score(records[1])[0] == 200
    assert _metrics(server)[("segmint_rejected_overloaded_total", ())] - rejected_before >= refused


def _read_response(sock):
    """One HTTP response's head from a raw socket (its body read and dropped)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head


def test_hot_swaps_under_steady_load_with_a_tiny_budget_give_no_503(setup):
    # loading a model in the worker thread makes the loop late (the GIL): that is no overload
    server, paths = setup["servers"]["tiny"], setup["paths"]
    records = [_as_json(r) for r in _records(setup["table"], 20, seed=15)]

    def swaps():
        stop = threading.Event()
        statuses = []

        def client(seed):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            i = seed
            while not stop.is_set():
                i = (i + 3) % len(records)
                conn.request("POST", f"/score?as_of={AS_OF}", json.dumps(records[i]))
                r = conn.getresponse()
                r.read()
                statuses.append(r.status)
                time.sleep(0.002)  # steady, moderate: a few hundred requests a second each
            conn.close()

        threads = [threading.Thread(target=client, args=(s,)) for s in range(3)]
        for t in threads:
            t.start()
        try:
            for n in range(10):
                status, _, body = server.reload({"model": paths["b" if n % 2 == 0 else "a"]})
                assert status == 200, body
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert len(statuses) > 100
        return [st for st in statuses if st != 200]

    # The budget is 5 ms: with the other test worker and this test's clients on a 2-core VM
    # whose host takes half the CPU, the server is now and then off the CPU for longer than that
    # between swaps, and a request then truly waits over the budget (the clean-clone CI saw one
    # or two 503s in ~1,500 requests, twice; never reproduced alone, beside CPU hogs or with a
    # cold kernel cache). So up to three rounds of ten swaps, each judged on its own. What a
    # reload's thread does to the loop is tested directly in
    # test_the_wait_reading_counts_the_current_pass_only_and_a_reload_suspends_shedding (a warm
    # reload of these small models did not delay the loop beyond 5 ms on that VM: this test
    # passed there with the reload budget set to 5 ms).
    for _ in range(3):
        refused = swaps()
        if not refused:
            break
    assert refused == []


# -- Arrow bodies: malformed, hostile, compressed, mistyped (review finding 1) --------------------
ARROW = {"content-type": "application/vnd.apache.arrow.stream"}
_CRASH_RECORD = {"customer_id": 1000001, "recency_days": 319, "frequency": 3, "monetary": 184.75,
                 "income_k": 45.27, "email_opt_in": False, "sms_opt_in": False, "region": "CA",
                 "channel": "none", "last_order_date": "2025-11-16"}


def _stream(table, **options):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(**options)) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _review_bodies():
    """The reviewer's valid 2-row stream, and its one-byte mutations at 1386 (string offsets
    past their data: read out of bounds, a segfault) and 1330 (a SystemError in the error path)."""
    good = _stream(pa.Table.from_pylist([_CRASH_RECORD, dict(_CRASH_RECORD, customer_id=2)]))
    rng, found = random.Random(1), {}
    for _ in range(300):
        b = bytearray(good)
        pos = rng.randrange(len(b))
        b[pos] = rng.randrange(256)
        if pos in (1386, 1330):
            found[pos] = bytes(b)
        if pos == 1386:
            break
    return good, found


def test_the_reviewers_malformed_arrow_bodies_get_400_and_the_server_lives(setup):
    server = setup["servers"]["model"]
    good, bad = _review_bodies()
    assert sorted(bad) == [1330, 1386]
    assert server.request("POST", f"/score/batch?as_of={AS_OF}", good, ARROW)[0] == 200
    status, _, body = server.request("POST", f"/score/batch?as_of={AS_OF}", bad[1386], ARROW)
    assert status == 400, body
    err = json.loads(body)
    assert err["error"] == "DataError" and "offsets" in err["message"]
    status, _, body = server.request("POST", f"/score/batch?as_of={AS_OF}", bad[1330], ARROW)
    assert status == 400 and json.loads(body)["error"] == "DataError", body
    assert server.request("GET", "/healthz")[0] == 200


def test_byte_mutations_of_an_arrow_stream_never_get_a_500_nor_kill_the_server(setup):
    server = setup["servers"]["model"]
    good, _ = _review_bodies()
    rng = random.Random(16)
    statuses = {}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for _ in range(300):
            b = bytearray(good)
            for _ in range(rng.choice((1, 1, 2, 4))):
                b[rng.randrange(len(b))] = rng.randrange(256)
            conn.request("POST", f"/score/batch?as_of={AS_OF}", bytes(b), ARROW)
            r = conn.getresponse()
            body = r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            assert r.status in (200, 400, 413), (r.status, body[:300])
    finally:
        conn.close()
    assert statuses.get(400, 0) > 100
    assert server.request("GET", "/healthz")[0] == 200


def test_a_compressed_arrow_body_and_a_nested_column_get_400_naming_the_problem(setup):
    server = setup["servers"]["model"]
    table = pa.Table.from_pylist([_CRASH_RECORD] * 50)
    for codec in ("zstd", "lz4"):
        status, _, body = server.request("POST", f"/score/batch?as_of={AS_OF}",
                                         _stream(table, compression=codec), ARROW)
        assert status == 400 and "compressed" in json.loads(body)["message"], body
    nested = table.set_column(table.schema.get_field_index("monetary"), "monetary",
                              pa.array([[1.0, 2.0]] * 50))
    status, _, body = server.request("POST", f"/score/batch?as_of={AS_OF}", _stream(nested), ARROW)
    err = json.loads(body)
    assert status == 400 and err["error"] == "UnsupportedTypeError" and "monetary" in err["message"]
    # a column the model does not read may have any type
    extra = table.append_column("tags", pa.array([{"a": 1}] * 50))
    assert server.request("POST", f"/score/batch?as_of={AS_OF}", _stream(extra), ARROW)[0] == 200


# -- small HTTP details (review finding 7) --------------------------------------------------------
def test_an_empty_as_of_gets_400_naming_it(setup):
    server = setup["servers"]["model"]
    record = _as_json(_records(setup["table"], 1, seed=17)[0])
    for query in ("?as_of=", "?as_of=%20", "?as_of=nope"):
        status, _, body = server.request("POST", f"/score{query}", json.dumps(record))
        assert status == 400 and "as_of" in json.loads(body)["message"], (query, body)


def test_the_bearer_scheme_is_case_insensitive_and_head_metrics_is_allowed(setup):
    server = setup["servers"]["model"]
    status, _, body = server.request("POST", "/admin/reload", None, {"authorization": f"bearer {TOKEN}"})
    assert status == 200, body
    status, headers, body = server.request("HEAD", "/metrics")
    assert status == 200 and body == b""


def test_a_missing_model_file_or_a_model_with_rules_ends_before_binding(setup, tmp_path):
    paths = setup["paths"]
    for args in ([str(tmp_path / "missing.seg")], [paths["bad"]], [paths["a"], "--rules", paths["rules"]], []):
        done = subprocess.run([sys.executable, "-m", "segmint.cli", "serve", *args, "--port", "0"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0, args
        assert "ready on" not in done.stderr and "Traceback" not in done.stderr
        assert "segmint: error:" in done.stderr or "error:" in done.stderr
    assert "no file at" in subprocess.run([sys.executable, "-m", "segmint.cli", "serve", str(tmp_path / "m.seg")],
                                          capture_output=True, text=True, timeout=60).stderr


def test_a_port_in_use_is_one_clear_line(setup):
    port = setup["servers"]["rules"].port
    done = subprocess.run([sys.executable, "-m", "segmint.cli", "serve", "--rules", setup["paths"]["rules"],
                           "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "port is in use" in done.stderr and "Traceback" not in done.stderr


def test_the_command_line_default_queue_budget_is_the_apps():
    from segmint.cli import serve as cli_serve
    from segmint.serve import admission
    assert cli_serve.DEFAULT_QUEUE_MS == admission.DEFAULT_QUEUE_MS


def test_a_port_outside_0_to_65535_is_refused_clearly():
    for port in ("70000", "-1"):
        done = subprocess.run([sys.executable, "-m", "segmint", "serve", "--rules", "x.json", "--port", port],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "a port is 0..65535" in done.stderr, done.stderr


def test_sigterm_and_sigint_stop_the_server_gracefully_with_exit_status_0(setup):
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = Server(["--rules", setup["paths"]["rules"]], module="segmint").wait_ready()
        try:
            assert server.request("GET", "/healthz")[0] == 200
            server.proc.send_signal(sig)
            assert server.proc.wait(20) == 0, "".join(server.lines)
        finally:
            server.stop()


# -- admission control's reading, in process (no server) -------------------------------------------
def _loops():
    loops = [("asyncio", asyncio.new_event_loop)]
    try:
        import uvloop
        loops.append(("uvloop", uvloop.new_event_loop))
    except ImportError:
        pass
    return loops


@pytest.mark.parametrize("name, new_loop", _loops(), ids=[n for n, _ in _loops()])
def test_the_wait_reading_counts_the_current_pass_only_and_a_reload_suspends_shedding(name, new_loop):
    from segmint.serve.admission import LoopLag

    def busy(seconds):
        t = time.perf_counter()
        while time.perf_counter() - t < seconds:
            pass

    async def main():
        loop = asyncio.get_running_loop()
        lag = LoopLag(queue_ms=10)
        lag.start(loop)
        seen = {}
        # one pass: a request, 30 ms of work, another request: the second has waited 30 ms
        loop.call_soon(lambda: seen.setdefault("first", lag.waited()))
        loop.call_soon(busy, 0.03)
        loop.call_soon(lambda: seen.setdefault("late", (lag.waited(), lag.overloaded())))
        await asyncio.sleep(0.02)
        # a later pass, once the loop has caught up: nothing carried over
        seen["next"] = (lag.waited(), lag.overloaded())
        # a reload in a worker thread: the same late pass is not shed on (up to RELOAD_BUDGET_S)
        lag.reloading = True
        loop.call_soon(lambda: lag.waited())
        loop.call_soon(busy, 0.03)
        loop.call_soon(lambda: seen.setdefault("reload", lag.overloaded()))
        await asyncio.sleep(0.02)
        # the reload ends within a late pass: its requests are still not shed on, until a tick
        # has run (the loop has caught up); then the usual budget again
        loop.call_soon(lambda: lag.waited())
        loop.call_soon(busy, 0.03)
        loop.call_soon(setattr, lag, "reloading", False)
        loop.call_soon(lambda: seen.setdefault("ended", lag.overloaded()))
        await asyncio.sleep(0.02)
        loop.call_soon(lambda: lag.waited())
        loop.call_soon(busy, 0.03)
        loop.call_soon(lambda: seen.setdefault("after", lag.overloaded()))
        await asyncio.sleep(0.02)
        lag.stop()
        return seen

    loop = new_loop()
    try:
        seen = loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen["first"] < 0.005
    assert seen["late"][0] >= 0.03 and seen["late"][1] is True
    assert seen["next"][0] < 0.005 and seen["next"][1] is False
    assert seen["reload"] is False
    assert seen["ended"] is False and seen["after"] is True
