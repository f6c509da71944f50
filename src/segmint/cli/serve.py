"""``segmint serve``: the HTTP service (:mod:`segmint.serve.app`) on uvicorn, one process.

The model is loaded, validated and warmed before the port is bound, so a missing or bad file
ends the command (exit 1) before anything listens; the socket is bound here too, so a port in
use is one clear line. The ready line goes to stderr once uvicorn accepts connections:
``segmint serve: ready on http://HOST:PORT (model <version>, k=.., N rules)`` (``--port 0``: the
port the system chose). The admin token comes from ``SEGMINT_ADMIN_TOKEN`` or
``--admin-token-file``, never from the command line (``ps`` shows it to every user).

Exit status: 0 after a graceful stop (SIGTERM or SIGINT: uvicorn finishes the requests in
flight; uvicorn itself would re-raise the signal and end with 143/130), 1 for a bad model file,
a port in use or a server that never started (as uvicorn's own STARTUP_FAILURE).
``python -m segmint serve ...`` runs the same command (:mod:`segmint.__main__`).
"""
import errno
import logging
import socket
import sys

from ..errors import MissingExtraError, ParameterError

# segmint.serve.admission.DEFAULT_QUEUE_MS, not imported: that loads the Scorer, and the parser
# is built for every command (segmint --help stays quick); a test keeps the two equal
DEFAULT_QUEUE_MS = 50.0


def add_parser(sub, positive):
    """The ``serve`` subcommand's options (``positive``: the CLI's whole-number type)."""
    s = sub.add_parser("serve", help="serve a model over HTTP (POST /score, /score/batch; needs segmint[serve])")
    s.add_argument("model", nargs="?", default=None, help="model file from 'segmint fit' (.seg)")
    s.add_argument("--rules", default=None, help="serve a waterfall rule file (JSON/YAML) alone, without a model")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: a free port, printed)")
    s.add_argument("--max-body-bytes", type=positive, default=1 << 20,
                   help="larger request bodies get 413 (default 1048576)")
    s.add_argument("--max-batch", type=positive, default=1000,
                   help="more records in one /score/batch get 413 (default 1000)")
    s.add_argument("--queue-ms", type=_milliseconds, default=DEFAULT_QUEUE_MS,
                   help="queueing delay budget: a scoring request that has waited longer on the event "
                        f"loop gets 503 at once (default {DEFAULT_QUEUE_MS:g}). Beside it, a sustained "
                        "overload (the loop saturated, with ticks over 5 ms late, for ~0.3 s) sheds a share "
                        "of scoring requests with a 503 answered from their raw bytes "
                        "(segmint.serve.admission)")
    s.add_argument("--admin-token-file", default=None,
                   help="file holding the token of POST /admin/reload (else SEGMINT_ADMIN_TOKEN; "
                        "neither: the endpoint is off). A reload body may name any file the server "
                        "process can read: the token's holder can make it load (probe) such a file")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="log level (default info)")
    s.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs)")
    return s


def _port(text):
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:  # getaddrinfo would wrap 70000 to 4464
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: a free one), got {value}")
    return value


def _milliseconds(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of milliseconds, got {text!r}")
    return value


def run(args):
    """Run ``segmint serve`` until SIGTERM/SIGINT; returns the exit status."""
    try:
        import orjson  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise MissingExtraError(f"segmint serve needs the serve extra ({e.name} is missing): "
                                "pip install 'segmint[serve]'") from None
    from ..serve.app import App, load_served, read_token

    if args.model is None and args.rules is None:
        raise ParameterError("segmint serve needs a model file (MODEL) or --rules RULES")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("segmint.serve")
    token = read_token(args.admin_token_file)
    served = load_served(args.model, args.rules)  # before binding: a bad file never listens
    if served.scorer.compiled:
        log.warning("the kernel cache was cold: building the Scorer compiled its kernels (%.1f s); run "
                    "'segmint warmup' when building the image", served.scorer.warm_seconds)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    app = App(served, admin_token=token, max_body_bytes=args.max_body_bytes, max_batch=args.max_batch,
              queue_ms=args.queue_ms)
    http = _http(app, args.access_log)
    config = uvicorn.Config(app, lifespan="on", log_config=None, log_level=args.log_level,
                            access_log=args.access_log, http=http, loop=_loop(), server_header=False,
                            # uvicorn's default, written out: scripts/serve_baseline.py uses the same
                            backlog=2048)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            # uvicorn re-raises a captured signal after its graceful shutdown (exit 143/130);
            # a graceful stop is a success here
            self._captured_signals.clear()

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started:
                print(f"segmint serve: ready on {where} (model {app.served.version}, "
                      f"{app.served.description})", file=sys.stderr, flush=True)

    server = Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        log.error("segmint serve: the server did not start (see the messages above)")
        return 1
    return 0


def _bind(host, port):
    """A listening-ready socket bound to (host, port), or one line saying why not."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ParameterError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    try:
        # restart at once after a stop (connections in TIME_WAIT); a live listener still refuses
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ParameterError(f"cannot listen on {host}:{port}: the port is in use (another server?); "
                                 "choose another with --port, or --port 0 for a free one") from None
        raise ParameterError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def _http(app, access_log):
    """uvicorn's HTTP protocol: httptools with the fast refusal of shed requests
    (:mod:`segmint.serve.protocol`) unless every request must reach the access log; plain
    httptools, or h11 without it."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    if not access_log:
        from ..serve.protocol import protocol_class

        cls = protocol_class(app)
        if cls is not None:
            return cls
    return "httptools"


def _loop():
    try:
        import uvloop  # noqa: F401
        return "uvloop"
    except ImportError:
        return "asyncio"
