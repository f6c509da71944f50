"""The HTTP service of ``segmint serve``: a raw ASGI app around one :class:`~segmint.serve.Scorer`.

Imported only by ``segmint serve`` and the tests (it needs the ``serve`` extra: orjson; uvicorn
runs it). No web framework: scoring takes microseconds, a framework's routing and validation
would cost more than the work. Scoring runs inline on the event loop (no thread hop: the Scorer
is microseconds and holds the GIL but inside its kernel).

Endpoints: ``POST /score`` (one record as a JSON object; ``?as_of=ISO``), ``POST /score/batch``
(``application/x-ndjson`` in and out, or an Arrow IPC stream in and out), ``GET /healthz``,
``GET /readyz``, ``GET /metrics`` (Prometheus text), ``POST /admin/reload`` (only with a token).
Every response carries ``segmint-model-version``: the content hash of the served file(s).
A record that fails in a batch fails the whole batch: 400 naming its line (ndjson) or record
number (Arrow) and the field, never a partial result to misread; ``--max-batch`` records at most
(413 beyond). A scoring request that has already waited longer than ``--queue-ms`` on the event
loop gets 503 with ``Retry-After`` (:mod:`segmint.serve.admission`; not on lag alone while a
reload loads a model); health, readiness, metrics and admin never do.
``POST /admin/reload`` takes an optional body ``{"model": path}`` or ``{"rules": path}``: the
whole new configuration (no body: the files being served, read again); a second reload while one
runs gets 409 at once (not queued: the caller decides), and SIGHUP then only logs it. A reload
body may name any file the server process can read: whoever holds the admin token can make it
load (and so probe) such a file; that token already means "may replace the model", which is more.
Keep the token file as private as the model files.

An Arrow batch is read, then checked in full (``Table.validate(full=True)``: offsets and lengths
inside their buffers) before any value is touched: a malformed stream is a 400 naming the problem,
never a read out of bounds. Compressed IPC bodies (LZ4/ZSTD buffers) are refused: the body limit
would not bound what they decompress to. A column the model reads must hold scalars (numbers,
booleans, strings, dates, timestamps, or a dictionary of them): any other type is a 400 naming it.

The model being served is one attribute, :attr:`App.served`, replaced whole by a reload; a
request reads it once at its start, so an in-flight request finishes on the model it started
with. A reload loads, validates and warms the new model in a worker thread, and swaps only on
success: a bad file is refused and the old model keeps serving.
"""
import asyncio
import datetime as _dt
import gc
import hashlib
import hmac
import logging
import os
import signal
import time
from urllib.parse import parse_qs

import orjson
import pyarrow as pa

from ..errors import ParameterError, SegmintError
from .admission import DEFAULT_QUEUE_MS, LoopLag

from .metrics import Metrics
from .protocol import ADMITTED

log = logging.getLogger("segmint.serve")

DEFAULT_MAX_BODY_BYTES = 1 << 20   # 1 MiB: ~3000 records of ~300 bytes
DEFAULT_MAX_BATCH = 1000           # records per batch: ~10-20 ms of the loop, which blocks meanwhile
RETRY_AFTER = b"1"                 # seconds (HTTP wants whole seconds)
NDJSON = "application/x-ndjson"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class Served:
    """One loaded model: its Scorer, its version and the files it came from.

    Attributes
    ----------
    scorer : Scorer
    version : str
        sha256 of the file(s)' bytes (model then rules), first 16 hex digits.
    model_path, rules_path : str or None
    id_column : str or None
        The model's customer id column (echoed in results when a record carries it).
    has_rules : bool
    description : str
        ``k=.., N rules``, for the ready line and the logs.
    """

    def __init__(self, scorer, version, model_path, rules_path, id_column, n_rules, k):
        self.scorer, self.version = scorer, version
        self.model_path, self.rules_path = model_path, rules_path
        self.id_column = id_column
        self.has_rules = n_rules > 0
        self.description = f"k={k}, {n_rules} rules"
        v = version.encode()
        # the header lists of every answer (content-length goes first, per response)
        self.json_headers = [(b"content-type", b"application/json"), (b"segmint-model-version", v)]
        self.version_header = (b"segmint-model-version", v)


def content_version(paths):
    """The content hash of the files served: sha256 of their bytes in order, first 16 hex digits."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        if len(paths) > 1:  # the boundary between two files is part of the content
            h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:16]


def load_served(model_path=None, rules_path=None):
    """Load, validate and warm a model (and/or a rule set) from disk: a :class:`Served`.

    Runs off the event loop (at start-up, before binding; on reload, in a worker thread).

    Parameters
    ----------
    model_path : str, optional
        A saved Segmenter (``segmint.load``).
    rules_path : str, optional
        A waterfall rule file, served by a rules-only Scorer.

    Raises
    ------
    ParameterError
        Neither or both given (a fitted model's rules are part of it: its segments are numbered
        from them, so segmint has no way to give it another rule set), or a file of the other
        kind.
    SegmintError, OSError
        What ``segmint.load`` and the Scorer refuse.
    """
    from .. import RuleSet, Segmenter, load
    from .scorer import Scorer

    if model_path is None and rules_path is None:
        raise ParameterError("segmint serve needs a model file or --rules")
    if model_path is not None and rules_path is not None:
        raise ParameterError(
            "segmint serve: a model and --rules together: a fitted model's rules are part of it (its "
            "segments are numbered from them) and segmint has no way to give it another rule set; serve "
            "the model alone, or fit a model with these rules (segmint fit --rules) and serve that")
    path = model_path if model_path is not None else rules_path
    obj = load(path)  # first: its errors name what is wrong with the file
    # hashed after loading: a file replaced in between gets the new file's hash with the old
    # content (rare, and the next reload corrects it); reading the bytes once for both would need
    # a loader of bytes
    version = content_version([path])
    if model_path is not None:
        if not isinstance(obj, Segmenter):
            hint = "; serve a rule set with --rules" if isinstance(obj, RuleSet) else ""
            raise ParameterError(f"{path} holds a {type(obj).__name__}, not a model (a .seg file from "
                                 f"'segmint fit'){hint}")
        scorer = Scorer(obj)
        rules = obj.rules_
        n_rules = 0 if rules is None else len(rules.names)
        return Served(scorer, version, model_path, None, obj.id_column, n_rules, obj.n_clusters_)
    if not isinstance(obj, RuleSet):
        raise ParameterError(f"{path} holds a {type(obj).__name__}, not a rule set (give a model file as "
                             "MODEL, without --rules)")
    scorer = Scorer(obj)
    return Served(scorer, version, None, rules_path, None, len(obj.names), 0)


class _BadRequest(Exception):
    """An answer other than 200, raised inside a handler: status, error class, message."""

    def __init__(self, status, error, message, close=False):
        super().__init__(message)
        self.status, self.error, self.message, self.close = status, error, message, close


class App:
    """The ASGI application of ``segmint serve``.

    Parameters
    ----------
    served : Served or None
        The model to serve (None: ``/readyz`` answers 503 until a reload loads one).
    admin_token : str, optional
        The bearer token of ``POST /admin/reload``; None turns the endpoint off (404).
    max_body_bytes : int
        Larger bodies get 413 (reading stops at the limit).
    max_batch : int
        More records in one batch get 413.
    queue_ms : float
        Queueing delay budget: a scoring request that has waited longer gets 503 at once (see
        :mod:`segmint.serve.admission`).

    Attributes
    ----------
    served : Served
        The model being served; replaced whole (one attribute) by a reload.
    metrics : Metrics
    """

    def __init__(self, served=None, *, admin_token=None, max_body_bytes=DEFAULT_MAX_BODY_BYTES,
                 max_batch=DEFAULT_MAX_BATCH, queue_ms=DEFAULT_QUEUE_MS):
        self.served = served
        self._token = admin_token.encode() if admin_token else None
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.lag = LoopLag(queue_ms)
        self.metrics = Metrics()
        self._reloading = False
        self._tasks = set()
        self._routes = {
            "/score": ("score", ("POST",), self._score),
            "/score/batch": ("score_batch", ("POST",), self._score_batch),
            "/healthz": ("healthz", ("GET", "HEAD"), self._healthz),
            "/readyz": ("readyz", ("GET", "HEAD"), self._readyz),
            "/metrics": ("metrics", ("GET", "HEAD"), self._metrics),
            "/admin/reload": ("admin_reload", ("POST",), self._admin_reload),
        }

    # -- ASGI ----------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # everything imported and loaded so far lives as long as the process: move it out
                # of the collector's sight, so a full collection no longer scans ~120k objects
                # (~25 ms of a stalled loop, measured) in the middle of requests. Models loaded by
                # later reloads stay collectable.
                gc.collect()
                gc.freeze()
                loop = asyncio.get_running_loop()
                self.lag.start(loop)
                try:
                    loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
                except (NotImplementedError, AttributeError, RuntimeError):  # no SIGHUP (Windows)
                    pass
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.lag.stop()
                try:
                    asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
                except (NotImplementedError, AttributeError, RuntimeError):
                    pass
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope, receive, send):
        t0 = time.perf_counter()
        served = self.served  # read once: the whole request runs on this model
        route = self._routes.get(scope["path"])
        if route is None:
            endpoint = "other"
            status = await self._error(send, served, 404, "NotFound", f"no endpoint {scope['path']}")
        else:
            endpoint, methods, handler = route
            if scope["method"] not in methods:
                status = await self._error(send, served, 405, "MethodNotAllowed",
                                           f"{scope['path']} takes {' or '.join(methods)}",
                                           extra=[(b"allow", ", ".join(methods).encode())])
            elif endpoint in ("score", "score_batch") and (
                    self.lag.overloaded()
                    # shedding a sustained overload: the requests the protocol did not judge (it
                    # refuses from the raw bytes, far cheaper: segmint.serve.protocol)
                    or (self.lag.shedding and ADMITTED not in scope and not self.lag.admit())):
                # refused before reading the body: the cheapest answer (Retry-After: come back)
                self.metrics.rejected += 1
                status = await self._error(send, served, 503, "Overloaded",
                                           "the service is overloaded: retry later",
                                           extra=[(b"retry-after", RETRY_AFTER)])
            else:
                try:
                    status = await handler(scope, receive, send, served)
                except _BadRequest as e:
                    extra = [(b"connection", b"close")] if e.close else None
                    status = await self._error(send, served, e.status, e.error, e.message, extra=extra)
                except Exception as e:  # a bug: a short answer, the traceback in the log
                    log.exception("segmint serve: unexpected error on %s %s", scope["method"], scope["path"])
                    status = await self._error(send, served, 500, "InternalError",
                                               f"unexpected {type(e).__name__}; see the server's log")
        self.metrics.observe(endpoint, status, time.perf_counter() - t0)

    # -- answers -------------------------------------------------------------------------------
    @staticmethod
    async def _send(send, status, body, headers):
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})
        return status

    async def _json(self, send, served, status, obj):
        headers = served.json_headers if served is not None else [(b"content-type", b"application/json")]
        return await self._send(send, status, orjson.dumps(obj), headers)

    async def _error(self, send, served, status, error, message, extra=None):
        self.metrics.error(error)
        headers = [(b"content-type", b"application/json")]
        if served is not None:
            headers.append(served.version_header)
        if extra:
            headers += extra
        return await self._send(send, status, orjson.dumps({"error": error, "message": message}), headers)

    async def _body(self, scope, receive):
        """The request's body, refused (413) past ``max_body_bytes``: by its Content-Length at once,
        else as soon as the bytes read pass it (the rest is never read)."""
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise _BadRequest(400, "DataError", "Content-Length is not a number") from None
                if declared > limit:
                    raise _BadRequest(413, "PayloadTooLarge",
                                      f"the body is {declared} bytes, over the limit of {limit} "
                                      "(--max-body-bytes)", close=True)
                break
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise _BadRequest(413, "PayloadTooLarge", f"the body is over the limit of {limit} bytes "
                                  "(--max-body-bytes)", close=True)
            return body
        chunks, size = [body], len(body)
        while True:
            if size > limit:
                raise _BadRequest(413, "PayloadTooLarge", f"the body is over the limit of {limit} bytes "
                                  "(--max-body-bytes)", close=True)
            if not message.get("more_body", False):
                return b"".join(chunks)
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _BadRequest(400, "DataError", "the client went away before the body was read")
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)

    @staticmethod
    def _as_of(scope):
        query = scope.get("query_string")
        if not query:
            return None
        values = parse_qs(query.decode("latin-1"), keep_blank_values=True).get("as_of")
        if not values:
            return None
        if not values[-1].strip():  # "?as_of=": a mistake, never "now"
            raise _BadRequest(400, "ParameterError", "as_of is empty: give an ISO 8601 date or time "
                              "(e.g. ?as_of=2026-10-01), or leave it out for now")
        return values[-1]

    @staticmethod
    def _not_ready(served):
        if served is None:
            raise _BadRequest(503, "NotReady", "no model is loaded yet")

    # -- endpoints -----------------------------------------------------------------------------
    async def _score(self, scope, receive, send, served):
        self._not_ready(served)
        body = await self._body(scope, receive)
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise _BadRequest(400, "DataError", f"the body is not JSON: {e}") from None
        if type(record) is not dict:
            raise _BadRequest(400, "UnsupportedTypeError", "the body must be one record: a JSON object of "
                              f"field -> value, got a JSON {_json_kind(record)}")
        try:
            s = served.scorer.score_one(record, as_of=self._as_of(scope))
        except SegmintError as e:
            raise _BadRequest(400, type(e).__name__, str(e)) from None
        out = {"segment_id": s.segment_id, "segment": s.segment, "distance": s.distance, "rule": s.rule,
               "model_version": served.version}
        id_column = served.id_column
        if id_column is not None and id_column in record:
            out[id_column] = record[id_column]
        return await self._send(send, 200, orjson.dumps(out), served.json_headers)

    async def _score_batch(self, scope, receive, send, served):
        self._not_ready(served)
        kind = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                kind = value.decode("latin-1").split(";")[0].strip().lower()
                break
        if kind not in (NDJSON, ARROW_STREAM):
            raise _BadRequest(415, "UnsupportedMediaType", f"a batch is {NDJSON} (one JSON record a line) or "
                              f"{ARROW_STREAM} (an Arrow IPC stream), got {kind or 'no Content-Type'!r}")
        body = await self._body(scope, receive)
        as_of = self._as_of(scope)
        if as_of is None and served.has_rules:  # one instant for the whole batch, as score_many
            as_of = _dt.datetime.now(_dt.timezone.utc)
        if kind == NDJSON:
            return await self._batch_ndjson(send, served, body, as_of)
        return await self._batch_arrow(send, served, body, as_of)

    def _too_many(self, n):
        return _BadRequest(413, "PayloadTooLarge", f"the batch has {n} records, over the limit of "
                           f"{self.max_batch} (--max-batch)")

    async def _batch_ndjson(self, send, served, body, as_of):
        records = []
        lines = body.split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if len(records) == self.max_batch:
                raise self._too_many(f"more than {self.max_batch}")
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise _BadRequest(400, "DataError", f"line {number}: not JSON: {e}") from None
            if type(record) is not dict:
                raise _BadRequest(400, "UnsupportedTypeError", f"line {number}: a record is a JSON object "
                                  f"of field -> value, got a JSON {_json_kind(record)}")
            records.append((number, record))
        scorer, id_column, version = served.scorer, served.id_column, served.version
        out = []
        for number, record in records:
            try:
                s = scorer.score_one(record, as_of=as_of)
            except SegmintError as e:
                raise _BadRequest(400, type(e).__name__, f"line {number}: {e}") from None
            result = {"segment_id": s.segment_id, "segment": s.segment, "distance": s.distance,
                      "rule": s.rule, "model_version": version}
            if id_column is not None and id_column in record:
                result[id_column] = record[id_column]
            out.append(orjson.dumps(result))
        text = b"\n".join(out) + b"\n" if out else b""
        headers = [(b"content-type", NDJSON.encode()), served.version_header]
        return await self._send(send, 200, text, headers)

    async def _batch_arrow(self, send, served, body, as_of):
        scorer = served.scorer
        wanted = list(scorer.columns)
        if served.id_column is not None and served.id_column not in wanted:
            wanted.append(served.id_column)
        try:
            table = _read_arrow(body, wanted, self.max_batch)
        except _TooManyRows as e:
            raise self._too_many(e.rows) from None
        try:
            result = scorer.score_many(table, as_of=as_of)
        except SegmintError as e:
            # which record: scored one by one until it fails again (the error path only)
            for number, record in enumerate(table.to_pylist(), 1):
                try:
                    scorer.score_one(record, as_of=as_of)
                except SegmintError as e1:
                    raise _BadRequest(400, type(e1).__name__, f"record {number}: {e1}") from None
            raise _BadRequest(400, type(e).__name__, str(e)) from None
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, result.schema) as writer:
            writer.write_table(result)
        headers = [(b"content-type", ARROW_STREAM.encode()), served.version_header]
        return await self._send(send, 200, sink.getvalue().to_pybytes(), headers)

    async def _healthz(self, scope, receive, send, served):
        return await self._json(send, served, 200, {"status": "ok"})

    async def _readyz(self, scope, receive, send, served):
        if served is None or not served.scorer.ready:
            raise _BadRequest(503, "NotReady", "no model is loaded yet")
        return await self._json(send, served, 200, {"status": "ready", "model_version": served.version})

    async def _metrics(self, scope, receive, send, served):
        body = self.metrics.render(served.version if served is not None else None, self.lag.current(),
                                   self.lag.share if self.lag.shedding else 1.0)
        headers = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
        if served is not None:
            headers.append(served.version_header)
        return await self._send(send, 200, body, headers)

    async def _admin_reload(self, scope, receive, send, served):
        if self._token is None:  # off: as if the endpoint did not exist
            raise _BadRequest(404, "NotFound", "no endpoint /admin/reload (no admin token is configured)")
        given = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        # the scheme is case-insensitive (RFC 7235), the token is not
        if given is None or given[:7].lower() != b"bearer ":
            raise _BadRequest(401, "Unauthorized", "POST /admin/reload needs 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given[7:].strip(), self._token):
            raise _BadRequest(403, "Forbidden", "wrong admin token")
        body = await self._body(scope, receive)
        model = rules = None
        if body.strip():
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise _BadRequest(400, "DataError", f"the body is not JSON: {e}") from None
            if type(doc) is not dict or set(doc) - {"model", "rules"} or not doc \
                    or not all(isinstance(v, str) for v in doc.values()):
                raise _BadRequest(400, "ParameterError", 'the body is {"model": path} or {"rules": path} (or '
                                  "empty: the files being served, read again)")
            model, rules = doc.get("model"), doc.get("rules")
        new, error = await self.reload(model, rules, source="POST /admin/reload")
        if new is None:
            status, name, message = error
            raise _BadRequest(status, name, message)
        return await self._json(send, new, 200, {"status": "reloaded", "model_version": new.version,
                                                 "previous_version": served.version if served else None})

    # -- reload --------------------------------------------------------------------------------
    def _on_sighup(self):
        task = asyncio.ensure_future(self.reload(source="SIGHUP"))
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)

    async def reload(self, model=None, rules=None, *, source="reload"):
        """Load, validate and warm a model in a worker thread; swap it in on success.

        Parameters
        ----------
        model, rules : str, optional
            The new files (both None: the files being served, read again from disk).
        source : str
            Who asked (for the log).

        Returns
        -------
        (Served, None) on success, or (None, (status, error class, message)): 409 while another
        reload runs (refused at once, not queued), 400 for a file segmint refuses, 500 otherwise.
        """
        if self._reloading:
            log.warning("segmint serve: %s refused: a reload is already running", source)
            return None, (409, "ReloadInProgress", "a reload is already running; try again when it ends")
        self._reloading = True
        try:
            current = self.served
            if model is None and rules is None:
                if current is None:
                    return None, (400, "ParameterError", "nothing to reload: no model is configured")
                model, rules = current.model_path, current.rules_path
            # the worker thread takes the GIL in long C calls and makes the loop late: that lag is
            # not a queue, so admission control does not shed on it meanwhile (admission.py)
            self.lag.reloading = True
            try:
                new = await asyncio.to_thread(load_served, model, rules)
            except (SegmintError, OSError) as e:
                self.metrics.reload_failures += 1
                log.error("segmint serve: %s refused, still serving %s: %s: %s", source,
                          current.version if current else "nothing", type(e).__name__, e)
                return None, (400 if isinstance(e, SegmintError) else 500, type(e).__name__,
                              f"reload refused, still serving the previous model: {e}")
            except Exception as e:
                self.metrics.reload_failures += 1
                log.exception("segmint serve: %s failed, still serving the previous model", source)
                return None, (500, "InternalError", f"reload failed ({type(e).__name__}), still serving "
                              "the previous model; see the server's log")
            if new.scorer.compiled:
                log.warning("segmint serve: the kernel cache was cold: the new model compiled its kernels "
                            "(%.1f s); run 'segmint warmup' when building the image", new.scorer.warm_seconds)
            self.served = new  # the swap: one attribute; requests already running keep theirs
            self.metrics.reloads += 1
            log.info("segmint serve: %s: now serving model %s (%s), was %s", source, new.version,
                     new.description, current.version if current else "nothing")
            return new, None
        finally:
            self._reloading = False
            self.lag.reloading = False


# -- Arrow bodies --------------------------------------------------------------------------------
class _TooManyRows(Exception):
    def __init__(self, rows):
        super().__init__(rows)
        self.rows = rows


def _u32(buf, pos):
    return int.from_bytes(buf[pos:pos + 4], "little") if 0 <= pos <= len(buf) - 4 else None


def _field(buf, table, index):
    """The position of field ``index`` of the flatbuffer table at ``table`` (None: absent)."""
    soffset = _u32(buf, table)
    if soffset is None:
        return None
    vtable = table - (soffset - (1 << 32) if soffset >= 1 << 31 else soffset)
    if not 0 <= vtable <= len(buf) - 4:
        return None
    size = int.from_bytes(buf[vtable:vtable + 2], "little")
    slot = vtable + 4 + 2 * index
    if 4 + 2 * index >= size or slot + 2 > len(buf):
        return None
    offset = int.from_bytes(buf[slot:slot + 2], "little")
    return table + offset if offset else None


def _table_at(buf, pos):
    """The table a flatbuffer offset field at ``pos`` points to."""
    if pos is None:
        return None
    offset = _u32(buf, pos)
    return None if offset is None else pos + offset


def _compressed(metadata):
    """Whether an IPC message (its flatbuffer metadata) is a record or dictionary batch with
    compressed buffers: Message.header (field 2) -> RecordBatch.compression (field 3), or
    DictionaryBatch.data (field 1) -> RecordBatch.compression (Arrow's Message.fbs, Schema 5)."""
    buf = metadata
    root = _u32(buf, 0)
    if root is None:
        return False
    header_type_pos = _field(buf, root, 1)
    if header_type_pos is None or header_type_pos >= len(buf):
        return False
    header_type = buf[header_type_pos]
    header = _table_at(buf, _field(buf, root, 2))
    if header is None:
        return False
    if header_type == 2:  # DictionaryBatch: its data is a RecordBatch
        header = _table_at(buf, _field(buf, header, 1))
        if header is None:
            return False
    elif header_type != 3:  # only record batches carry buffers
        return False
    return _field(buf, header, 3) is not None


# Arrow types a column the model reads may have: the ones whose Python values are scalars the
# Scorer checks (anything else is refused naming the column, before a value is converted)
def _scalar_type(t):
    if pa.types.is_dictionary(t):
        return _scalar_type(t.value_type)
    return (pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t)
            or pa.types.is_floating(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_date(t) or pa.types.is_timestamp(t))


def _read_arrow(body, wanted, max_rows):
    """An Arrow IPC stream body as a validated table of the columns in ``wanted`` it has.

    Raises _BadRequest (400) for a body that is not a well-formed uncompressed stream (whatever
    pyarrow raises while reading or validating it: all of it is the client's input), or for a
    column of ``wanted`` of a type the model cannot read; _TooManyRows past ``max_rows``.
    """
    buffer = pa.py_buffer(body)
    try:
        messages = pa.ipc.MessageReader.open_stream(buffer)
        while True:
            try:
                message = messages.read_next_message()
            except StopIteration:
                break
            if message.type in ("record batch", "dictionary") and \
                    _compressed(message.metadata.to_pybytes()):
                raise _BadRequest(400, "DataError", "the Arrow IPC stream is compressed (LZ4/ZSTD buffers): "
                                  "send it uncompressed (the body limit bounds only the compressed size)")
        table = pa.ipc.open_stream(buffer).read_all()
        if table.num_rows > max_rows:
            raise _TooManyRows(table.num_rows)
        # offsets and lengths inside their buffers, UTF-8, dictionary indices: before any read
        table.validate(full=True)
    except (_BadRequest, _TooManyRows):
        raise
    except Exception as e:  # any pyarrow error here is about the client's bytes
        raise _BadRequest(400, "DataError", f"the body is not a valid Arrow IPC stream: "
                          f"{type(e).__name__}: {e}") from None
    names = table.schema.names
    keep = []
    for name in wanted:
        n = names.count(name)
        if n > 1:
            raise _BadRequest(400, "DataError", f"the Arrow stream has {n} columns named {name!r}")
        if n:
            t = table.schema.field(name).type
            if not _scalar_type(t):
                raise _BadRequest(400, "UnsupportedTypeError", f"column {name!r} is {t}: the model reads "
                                  "numbers, booleans, strings, dates or timestamps there")
            keep.append(name)
    return table.select(keep)


def _json_kind(value):
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def read_token(path=None):
    """The admin token: from the file at ``path`` (its first line), else ``SEGMINT_ADMIN_TOKEN``;
    None when neither is set (the admin endpoint is then off)."""
    if path is not None:
        with open(path, encoding="utf-8") as f:
            token = f.readline().strip()
        if not token:
            raise ParameterError(f"the admin token file {path} is empty")
        return token
    token = os.environ.get("SEGMINT_ADMIN_TOKEN", "").strip()
    return token or None


__all__ = ["App", "Served", "load_served", "content_version", "read_token"]
