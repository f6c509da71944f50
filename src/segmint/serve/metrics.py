"""The service's Prometheus metrics, counted by hand and written in the text exposition format.

Why not ``prometheus_client``: its labelled counter and histogram take a lock per update;
measured here (one ``inc`` + one ``observe`` on cached children) ~1.2 us per request against
~0.25 us for the plain dict and list below, and the request path is tens of microseconds. Every
update happens on the event loop's thread (the reload worker thread hands its result back to the
loop before anything is counted), so no lock is needed. The output is checked with
``prometheus_client.parser`` in the tests.
"""
import bisect
import time

# handling time buckets (seconds): a scored request takes tens of microseconds, a batch or a
# stalled loop milliseconds
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1.0, 2.5)
# the endpoints counted (a fixed set: a scan of random paths must not grow the label space)
ENDPOINTS = ("score", "score_batch", "healthz", "readyz", "metrics", "admin_reload", "other")


class Metrics:
    """Counters of one app: requests by endpoint and status, errors by class, a latency histogram
    per endpoint, overload rejections, reloads.

    Attributes
    ----------
    requests : dict
        ``(endpoint, status) -> count``.
    errors : dict
        ``error class name -> count`` of the 4xx/5xx answers that name one.
    rejected : int
        Requests answered 503 by admission control.
    reloads, reload_failures : int
        Successful and refused reloads (HTTP and SIGHUP).
    """

    def __init__(self):
        self.requests = {}
        self.errors = {}
        self.rejected = 0
        # requests the protocol refused from their raw bytes (segmint.serve.protocol), by
        # endpoint: counted here, folded into the totals when rendered (no handling time: they
        # never reach the app)
        self.shed = {"score": 0, "score_batch": 0}
        self.reloads = 0
        self.reload_failures = 0
        # per endpoint: bucket counts (one past the last bucket: +Inf), count, sum
        self._hist = {e: [[0] * (len(BUCKETS) + 1), 0, 0.0] for e in ENDPOINTS}
        self.started = time.time()

    def observe(self, endpoint, status, seconds):
        """Count one answered request: its endpoint, status and handling time."""
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        h = self._hist[endpoint]
        h[0][bisect.bisect_left(BUCKETS, seconds)] += 1
        h[1] += 1
        h[2] += seconds

    def error(self, name):
        self.errors[name] = self.errors.get(name, 0) + 1

    def render(self, version, loop_lag, admitted_share=1.0):
        """The text exposition format (version 0.0.4) of every metric, as bytes."""
        out = []
        add = out.append
        add("# HELP segmint_http_requests_total HTTP requests answered, by endpoint and status.")
        add("# TYPE segmint_http_requests_total counter")
        requests = dict(self.requests)
        errors = dict(self.errors)
        shed = 0
        for endpoint, n in self.shed.items():
            if n:
                requests[(endpoint, 503)] = requests.get((endpoint, 503), 0) + n
                errors["Overloaded"] = errors.get("Overloaded", 0) + n
                shed += n
        for (endpoint, status), n in sorted(requests.items()):
            add(f'segmint_http_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
        add("# HELP segmint_http_errors_total Error answers (4xx and 5xx naming an error class), by class.")
        add("# TYPE segmint_http_errors_total counter")
        for name, n in sorted(errors.items()):
            add(f'segmint_http_errors_total{{error="{_escape(name)}"}} {n}')
        add("# HELP segmint_http_request_duration_seconds The app's handling time of a request (not of a "
            "request refused from its raw bytes: it never reaches the app).")
        add("# TYPE segmint_http_request_duration_seconds histogram")
        for endpoint in ENDPOINTS:
            counts, count, total = self._hist[endpoint]
            if not count:
                continue
            running = 0
            for bound, n in zip(BUCKETS, counts):
                running += n
                add(f'segmint_http_request_duration_seconds_bucket{{endpoint="{endpoint}",le="{bound}"}} '
                    f'{running}')
            add(f'segmint_http_request_duration_seconds_bucket{{endpoint="{endpoint}",le="+Inf"}} {count}')
            add(f'segmint_http_request_duration_seconds_count{{endpoint="{endpoint}"}} {count}')
            add(f'segmint_http_request_duration_seconds_sum{{endpoint="{endpoint}"}} {total!r}')
        add("# HELP segmint_rejected_overloaded_total Requests answered 503 by admission control.")
        add("# TYPE segmint_rejected_overloaded_total counter")
        add(f"segmint_rejected_overloaded_total {self.rejected + shed}")
        add("# HELP segmint_event_loop_lag_seconds Lateness of the event loop's last timer tick.")
        add("# TYPE segmint_event_loop_lag_seconds gauge")
        add(f"segmint_event_loop_lag_seconds {loop_lag!r}")
        add("# HELP segmint_admitted_share The share of scoring requests admitted (1: not shedding).")
        add("# TYPE segmint_admitted_share gauge")
        add(f"segmint_admitted_share {admitted_share!r}")
        add("# HELP segmint_model_info The model being served (its content hash).")
        add("# TYPE segmint_model_info gauge")
        if version is not None:
            add(f'segmint_model_info{{version="{_escape(version)}"}} 1')
        add("# HELP segmint_reloads_total Successful model reloads.")
        add("# TYPE segmint_reloads_total counter")
        add(f"segmint_reloads_total {self.reloads}")
        add("# HELP segmint_reload_failures_total Refused reloads (a bad file: the old model kept serving).")
        add("# TYPE segmint_reload_failures_total counter")
        add(f"segmint_reload_failures_total {self.reload_failures}")
        add("# HELP segmint_start_time_seconds Start time of the process since the Unix epoch.")
        add("# TYPE segmint_start_time_seconds gauge")
        add(f"segmint_start_time_seconds {self.started!r}")
        return ("\n".join(out) + "\n").encode()


def _escape(text):
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
