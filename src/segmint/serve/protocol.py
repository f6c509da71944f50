"""The cheap 503: refusing a scoring request in the HTTP protocol, before uvicorn parses it.

Why: a 503 answered by the ASGI app pays uvicorn's whole request cycle (parser callbacks, the
scope, a ``RequestResponseCycle`` with its ``asyncio.Event``, a task, two ``send`` awaits): ~53 us
of CPU against ~69 us for a scored request here, so past ~1.3x capacity the rejections alone fill
the core and the queue grows in the clients. Refused here, from the raw bytes of the read, a 503
costs about what the socket calls cost (a canned-answer server on uvloop: ~10 us a request), so
shedding holds the service's latency well past 2x its capacity
(:mod:`segmint.serve.admission` has the figures).

When: only while :class:`~segmint.serve.admission.LoopLag` is shedding (a sustained overload,
never one stall) and its :meth:`~segmint.serve.admission.LoopLag.admit` says this request is not
among the share admitted. Only a read that holds exactly one complete ``POST`` to ``/score`` or
``/score/batch`` (:func:`scoring_request`), on a connection with nothing in flight (no earlier
request unanswered, so answers stay in order) and its parser between messages, with a head
that follows HTTP's grammar strictly (else httptools must see it: it refuses what is malformed).
Anything else (a body split over reads, pipelined requests, ``Transfer-Encoding``, ``Expect``,
``Upgrade``, a ``Connection`` header other than one ``keep-alive``, HTTP/1.0, a head over 2 KiB)
goes the usual way, and the app sheds it with the same share (a request the protocol admitted
carries ``scope["segmint.admitted"]`` so the app does not judge it twice).

The answer has the app's 503 headers and body (uvicorn's default headers with the Date, the
same JSON, ``Retry-After``, the model's version header); the metrics count it as the app counts
its own. uvicorn's access log does not
see it: with ``--access-log`` the fast refusal is off (every request logged, as asked).

This leans on uvicorn's ``HttpToolsProtocol`` (``data_received``, ``on_message_begin``,
``on_message_complete``, ``cycle``, ``pipeline``, ``transport``, the keep-alive timer):
:func:`protocol_class` checks they are there and returns None otherwise, and ``segmint serve``
then runs uvicorn's own protocol (the app's 503 still works, only dearer). Tested on uvicorn
0.54 with httptools 0.9.
"""
import re

__all__ = ["protocol_class", "read_head", "scoring_request"]

_SCORING = {b"/score": "score", b"/score/batch": "score_batch"}
_NEEDED = ("data_received", "on_message_begin", "on_message_complete", "_unset_keepalive_if_required",
           "timeout_keep_alive_handler")
# the app's own 503 body (App._http): the same bytes whichever refuses
BODY = b'{"error":"Overloaded","message":"the service is overloaded: retry later"}'
# headers a fast refusal cannot honour by skipping the request (found after a CRLF, lower case)
_REFUSE_IF = (b"\r\ntransfer-encoding:", b"\r\nexpect:", b"\r\nupgrade:")
_LENGTH = b"\r\ncontent-length:"
# The whole head, strictly (RFC 9112): the request line, then header lines of a token, a colon
# right after it and a value of visible characters, blanks and obs-text; no obs-fold, no bare CR
# or LF, no control characters. httptools refuses (400, connection closed) what breaks these
# rules; a refusal that skipped such a request would keep the connection open and read what
# follows as a new request (a smuggling gap a front proxy could be led into): it goes to
# httptools instead.
_HEAD = re.compile(rb"POST /score(?:/batch)?(?:\?[\x21-\x7e]*)? HTTP/1\.1"
                   rb"(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t \x20-\x7e\x80-\xff]*)*")
ADMITTED = "segmint.admitted"  # the scope key of a request the protocol judged and admitted
_MAX_HEAD = 2048  # longer heads are not cached (nor refused fast): the cache stays ~2 MiB
_HEADS = 1024  # request heads remembered (see protocol_class)
_CONNECTION = b"\r\nconnection:"
_VERSION = b" HTTP/1.1"


def scoring_request(data):
    """The endpoint (``"score"`` or ``"score_batch"``) when ``data`` is exactly one complete
    HTTP/1.1 ``POST`` to ``/score`` or ``/score/batch`` (query string allowed) with a
    ``Content-Length`` body and nothing after it; None otherwise.

    Parameters
    ----------
    data : bytes
        One read from a connection whose parser is between messages.

    Returns
    -------
    str or None
        None also for any request a refusal cannot simply skip: more bytes than the one request
        (pipelining), a body still to come, ``Transfer-Encoding``, ``Expect`` or ``Upgrade``
        headers, a ``Connection`` header other than one ``keep-alive``, a repeated or unreadable
        ``Content-Length``, another version.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    known = read_head(data[:end])
    if known is not None and end + 4 + known[1] == len(data):
        return known[0]
    return None


def read_head(head):
    """``(endpoint, content_length)`` of a request's head (its bytes up to the blank line, not
    included) when a fast refusal may skip that request (see :func:`scoring_request`); else None.
    """
    if not head.startswith(b"POST /score") or _HEAD.fullmatch(head) is None:
        return None
    eol = head.find(b"\r\n")
    if eol < 0:
        eol = len(head)
    if not head.endswith(_VERSION, 0, eol):
        return None
    target = head[5:eol - len(_VERSION)]
    endpoint = _SCORING.get(target.split(b"?", 1)[0])
    if endpoint is None or b" " in target:
        return None
    head = head[eol:].lower() + b"\r\n"  # from the first CRLF through the last header's CRLF
    for name in _REFUSE_IF:
        if name in head:
            return None
    at = head.find(_CONNECTION)
    if at >= 0:  # HTTP/1.1 keeps the connection open anyway; "close" and the rest go the usual way
        if (head.find(_CONNECTION, at + 1) >= 0
                or _value(head, at + len(_CONNECTION)) != b"keep-alive"):
            return None
    at = head.find(_LENGTH)
    if at < 0 or head.find(_LENGTH, at + 1) >= 0:
        return None
    value = _value(head, at + len(_LENGTH))
    if not value.isdigit() or len(value) > 18:
        return None
    return endpoint, int(value)


def _value(head, start):
    """The header value starting at ``start`` of ``head`` (up to its CRLF), without blanks."""
    return head[start:head.index(b"\r\n", start)].strip(b" \t")


def protocol_class(app):
    """uvicorn's httptools protocol with the fast refusal for ``app`` (an
    :class:`~segmint.serve.app.App`), or None when httptools or that protocol's expected shape is
    missing (then uvicorn's own protocol runs)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None
    if not all(callable(getattr(HttpToolsProtocol, name, None)) for name in _NEEDED):
        return None

    canned = {}  # (model version, uvicorn's default headers list) -> the whole 503, bytes
    # request heads seen -> read_head's verdict: a client sends the same head again and again
    # (only the length may change), and a dict lookup is far cheaper than reading the headers;
    # only heads of scoring requests up to _MAX_HEAD bytes, at most _HEADS of them (~2 MiB)
    heads = {}

    def answer(served, defaults):
        # uvicorn's default headers (the Date, refreshed once a second as a new list): the same
        # headers as any other answer of the server
        version = served.version if served is not None else ""
        key = (version, id(defaults))
        data = canned.get(key)
        if data is None:
            canned.clear()
            data = canned[key] = (
                b"HTTP/1.1 503 Service Unavailable\r\n"
                + b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
                + b"content-type: application/json\r\n"
                + (b"segmint-model-version: " + version.encode() + b"\r\n" if version else b"")
                + b"retry-after: 1\r\ncontent-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
        return data

    class SheddingHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's ``HttpToolsProtocol``, refusing an overloaded scoring request from its bytes."""

        # the parser is between messages (nothing of a request read yet, or all of the last)
        _segmint_between = True
        # loop time of the last fast refusal: the connection was not idle since
        _segmint_refused_at = -1e300
        # the request about to be parsed was judged here and admitted: the app must not judge
        # it again (it would admit share x share)
        _segmint_admitted = False

        def on_message_begin(self):
            self._segmint_between = False
            super().on_message_begin()
            if self._segmint_admitted:
                self.scope[ADMITTED] = True
                self._segmint_admitted = False

        def on_message_complete(self):
            self._segmint_between = True
            super().on_message_complete()

        def data_received(self, data):
            lag = app.lag
            if (lag.shedding and self._segmint_between and not self.pipeline
                    and (self.cycle is None or self.cycle.response_complete)
                    and data.startswith(b"POST /score")):
                end = data.find(b"\r\n\r\n", 0, _MAX_HEAD + 4)
                if end >= 0:
                    head = data[:end]
                    known = heads.get(head)
                    if known is None:
                        if len(heads) >= _HEADS:
                            heads.clear()
                        known = heads[head] = read_head(head) or False
                    if known and end + 4 + known[1] == len(data):
                        if lag.admit():
                            self._segmint_admitted = True
                        else:
                            self.transport.write(answer(app.served, self.server_state.default_headers))
                            app.metrics.shed[known[0]] += 1
                            self.server_state.total_requests += 1
                            # the keep-alive timer is left armed (re-arming it costs more than
                            # the rest of a refusal): it checks this when it fires
                            self._segmint_refused_at = self.loop.time()
                            if self.timeout_keep_alive_task is None:
                                self.timeout_keep_alive_task = self.loop.call_later(
                                    self.timeout_keep_alive, self.timeout_keep_alive_handler)
                            return
            super().data_received(data)

        def timeout_keep_alive_handler(self):
            idle = self.loop.time() - self._segmint_refused_at
            if idle < self.timeout_keep_alive:  # refused a request since the timer was armed
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive - idle, self.timeout_keep_alive_handler)
                return
            super().timeout_keep_alive_handler()

    return SheddingHttpToolsProtocol
