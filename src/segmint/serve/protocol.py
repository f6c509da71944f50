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
request unanswered, so answers stay in order) and its parser between messages. Anything else
(a body split over reads, pipelined requests, ``Transfer-Encoding``, ``Expect``, ``Upgrade``,
a ``Connection`` header other than one ``keep-alive``, HTTP/1.0) goes the usual way, where the app's own 503 still applies. A
refused request's headers are not validated (a malformed one gets 503 now and 400 on retry).

The answer is the app's 503 byte for byte in content (the same JSON, ``Retry-After``, the model's
version header); the metrics count it as the app counts its own. uvicorn's access log does not
see it: with ``--access-log`` the fast refusal is off (every request logged, as asked).

This leans on uvicorn's ``HttpToolsProtocol`` (``data_received``, ``on_message_begin``,
``on_message_complete``, ``cycle``, ``pipeline``, ``transport``, the keep-alive timer):
:func:`protocol_class` checks they are there and returns None otherwise, and ``segmint serve``
then runs uvicorn's own protocol (the app's 503 still works, only dearer). Tested on uvicorn
0.54 with httptools 0.9.
"""
__all__ = ["protocol_class", "read_head", "scoring_request"]

_SCORING = {b"/score": "score", b"/score/batch": "score_batch"}
_NEEDED = ("data_received", "on_message_begin", "on_message_complete", "_unset_keepalive_if_required",
           "timeout_keep_alive_handler")
# the app's own 503 body (App._http): the same bytes whichever refuses
BODY = b'{"error":"Overloaded","message":"the service is overloaded: retry later"}'
# headers a fast refusal cannot honour by skipping the request (found after a CRLF, lower case)
_REFUSE_IF = (b"\r\ntransfer-encoding:", b"\r\nexpect:", b"\r\nupgrade:")
_LENGTH = b"\r\ncontent-length:"
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
    if not head.startswith(b"POST /score"):
        return None
    eol = head.find(b"\r\n")
    if eol < 0 or not head.endswith(_VERSION, 0, eol):
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

    canned = {}  # model version -> the whole 503, bytes (one version at a time)
    # request heads seen -> read_head's verdict: a client sends the same head again and again
    # (only the length may change), and a dict lookup is far cheaper than reading the headers;
    # bounded (a client varying its headers only misses)
    heads = {}

    def answer(served):
        version = served.version if served is not None else ""
        data = canned.get(version)
        if data is None:
            canned.clear()
            data = canned[version] = (
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                + (b"segmint-model-version: " + version.encode() + b"\r\n" if version else b"")
                + b"retry-after: 1\r\ncontent-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
        return data

    class SheddingHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's ``HttpToolsProtocol``, refusing an overloaded scoring request from its bytes."""

        # the parser is between messages (nothing of a request read yet, or all of the last)
        _segmint_between = True
        # loop time of the last fast refusal: the connection was not idle since
        _segmint_refused_at = -1e300

        def on_message_begin(self):
            self._segmint_between = False
            super().on_message_begin()

        def on_message_complete(self):
            self._segmint_between = True
            super().on_message_complete()

        def data_received(self, data):
            lag = app.lag
            if (lag.shedding and self._segmint_between and not self.pipeline
                    and (self.cycle is None or self.cycle.response_complete)):
                end = data.find(b"\r\n\r\n")
                if end >= 0:
                    head = data[:end]
                    known = heads.get(head)
                    if known is None:
                        if len(heads) >= _HEADS:
                            heads.clear()
                        known = heads[head] = read_head(head) or False
                    if known and end + 4 + known[1] == len(data) and not lag.admit():
                        self.transport.write(answer(app.served))
                        app.metrics.shed[known[0]] += 1
                        self.server_state.total_requests += 1
                        # the keep-alive timer is left armed (re-arming it costs more than the
                        # rest of a refusal): it checks this when it fires
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
