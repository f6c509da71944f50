"""The baseline of ``segmint serve``: the same model served by a plain FastAPI + scikit-learn app.

What a competent FastAPI user would write to serve "the customer segmentation model":

- a pydantic model of the record's fields (FastAPI validates and parses the JSON, dates
  included) and a pydantic response model (FastAPI then serializes with pydantic straight to
  JSON bytes: since FastAPI 0.120-ish this is the recommended fast path, ``ORJSONResponse`` is
  deprecated in the installed version);
- a ``Pipeline(StandardScaler, KMeans(k=8))`` fitted at start-up on the same 16 features of the
  same training customers as the segmint model: the 14 numeric columns with nulls filled with
  the segmint model's own imputed values (columns without imputation: 0), the two categories
  one-hot on the segmint model's kept categories (as ``_peer_matrix`` of
  ``benchmarks/bench_realtime.py``); ``predict`` of one row per request, BLAS and OpenMP on one
  thread (threadpoolctl, and ``OMP_NUM_THREADS=1`` for threads started later);
- the endpoint is ``async def`` (default): ``predict`` of one row is ~100-200 us of CPU, less
  than a threadpool hop plus the GIL handover a ``def`` endpoint costs, so experts run short
  CPU work on the loop; ``--endpoint def`` runs it in FastAPI's threadpool instead (measured on
  2 shared cores, server pinned to one: 450 req/s async against 412 def, twice each; the
  benchmark runs the faster, async);
- uvicorn with the same settings as ``segmint serve``: httptools, uvloop, no access log, one
  worker.

It does no rules (a scikit-learn pipeline has none), does not check field types beyond what
pydantic does, and answers ``distance: null`` (``predict`` gives only the label): the comparison
flatters it. Every response carries ``segmint-model-version`` (a hash of the fitted pipeline).

Run: ``python scripts/serve_baseline.py MODEL.seg --port 0`` prints
``serve_baseline: ready on http://HOST:PORT (...)`` on stderr when it accepts requests.
"""
import argparse
import asyncio
import datetime as _dt
import hashlib
import os
import pickle
import socket
import sys
import time
from typing import Optional

# BLAS/OpenMP pools read these when they start: before numpy or scikit-learn are imported
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

NUMERIC = ["recency_days", "frequency", "monetary", "avg_order_value", "tenure_days",
           "days_between_orders", "age", "income_k", "sessions_30d", "pages_per_session",
           "email_opens_90d", "email_clicks_90d", "cart_abandonments_90d", "discount_share"]
CATEGORIES = ("region", "channel")


def baseline_features(model):
    """What the pipeline's rows are made of, read from a fitted segmint Segmenter: per numeric
    column the value that fills a null, per category column its kept categories."""
    stats = model.feature_spec_.stats_
    fills = []
    for name in NUMERIC:
        fill = stats[name]["impute_value"]
        fills.append(float(fill) if fill is not None else 0.0)
    categories = {name: list(stats[name]["categories"]) for name in CATEGORIES}
    return {"numeric": list(NUMERIC), "fills": fills, "categories": categories}


def feature_matrix(features, table):
    """The (n, 14 + categories) float32 matrix of a pyarrow table of customers."""
    cols = []
    for name, fill in zip(features["numeric"], features["fills"]):
        v = table[name].to_numpy(zero_copy_only=False).astype(np.float64)
        cols.append(np.where(np.isnan(v), fill, v))
    for name in CATEGORIES:
        values = np.asarray(table[name].to_pylist(), dtype=object)
        for category in features["categories"][name]:
            cols.append((values == category).astype(np.float64))
    return np.ascontiguousarray(np.column_stack(cols), dtype=np.float32)


def fit_pipeline(features, n_customers, random_state=0):
    """``Pipeline(StandardScaler, KMeans(k=8))`` fitted on ``make_customers(n_customers)``."""
    import segmint
    from sklearn.cluster import KMeans
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    X = feature_matrix(features, segmint.make_customers(n_customers, random_state=random_state))
    pipe = Pipeline([("scale", StandardScaler()), ("kmeans", KMeans(n_clusters=8, n_init=1, random_state=0))])
    return pipe.fit(X)


class RowBuilder:
    """One record (a mapping, or the request's pydantic object through ``vars``) to a 1-row
    float32 array, in the pipeline's column order."""

    def __init__(self, features):
        self.fills = list(zip(features["numeric"], features["fills"]))
        self.onehot = [(name, {c: i for i, c in enumerate(cats)}) for name, cats in features["categories"].items()]
        self.width = len(self.fills) + sum(len(c) for _, c in self.onehot)

    def __call__(self, record):
        row = np.zeros((1, self.width), dtype=np.float32)
        out = row[0]
        for j, (name, fill) in enumerate(self.fills):
            v = record.get(name)
            out[j] = fill if v is None else v
        j = len(self.fills)
        for name, index in self.onehot:
            i = index.get(record.get(name))
            if i is not None:
                out[j + i] = 1.0
            j += len(index)
        return row


def make_app(pipe, features, endpoint="async"):
    """The FastAPI application (``endpoint``: ``"async"`` or ``"def"``)."""
    from fastapi import FastAPI, Response
    from pydantic import BaseModel

    class Customer(BaseModel):
        customer_id: Optional[int] = None
        signup_date: Optional[_dt.date] = None
        first_order_date: Optional[_dt.date] = None
        last_order_date: Optional[_dt.date] = None
        recency_days: Optional[int] = None
        frequency: Optional[int] = None
        monetary: Optional[float] = None
        avg_order_value: Optional[float] = None
        tenure_days: Optional[int] = None
        days_between_orders: Optional[float] = None
        age: Optional[int] = None
        income_k: Optional[float] = None
        region: Optional[str] = None
        channel: Optional[str] = None
        device: Optional[str] = None
        sessions_30d: Optional[int] = None
        pages_per_session: Optional[float] = None
        email_opens_90d: Optional[int] = None
        email_clicks_90d: Optional[int] = None
        cart_abandonments_90d: Optional[int] = None
        discount_share: Optional[float] = None
        returns_count: Optional[int] = None
        support_tickets: Optional[int] = None
        email_opt_in: Optional[bool] = None
        sms_opt_in: Optional[bool] = None

    class Segment(BaseModel):
        segment_id: int
        segment: str
        distance: Optional[float] = None
        rule: Optional[str] = None
        model_version: str

    version = hashlib.sha256(pickle.dumps(pipe)).hexdigest()[:16]
    names = [f"cluster_{i}" for i in range(pipe[-1].n_clusters)]
    build = RowBuilder(features)
    app = FastAPI(title="segments (baseline)", docs_url=None, redoc_url=None, openapi_url=None)

    def predict(customer):
        label = int(pipe.predict(build(customer.__dict__))[0])
        return Segment(segment_id=label, segment=names[label], model_version=version)

    if endpoint == "async":
        @app.post("/score")
        async def score(customer: Customer, response: Response) -> Segment:
            response.headers["segmint-model-version"] = version
            return predict(customer)
    elif endpoint == "def":
        @app.post("/score")
        def score(customer: Customer, response: Response) -> Segment:  # noqa: F811 (FastAPI's threadpool)
            response.headers["segmint-model-version"] = version
            return predict(customer)
    else:
        raise ValueError(f"endpoint must be 'async' or 'def', got {endpoint!r}")

    @app.get("/readyz")
    async def readyz(response: Response):
        response.headers["segmint-model-version"] = version
        return {"ready": True}

    app.state.version = version
    return app


def main(argv=None):
    p = argparse.ArgumentParser(description="FastAPI + scikit-learn baseline of segmint serve")
    p.add_argument("model", help="a fitted segmint model (.seg): its imputed values and categories")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--train-customers", type=int, default=20_000)
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--endpoint", choices=("async", "def"), default="async")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    import segmint
    import threadpoolctl
    import uvicorn

    threadpoolctl.threadpool_limits(limits=1)
    features = baseline_features(segmint.load(a.model))
    pipe = fit_pipeline(features, a.train_customers, a.random_state)
    app = make_app(pipe, features, a.endpoint)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, http="httptools", loop="uvloop", access_log=False, log_level="warning",
                            workers=1, lifespan="off", backlog=2048)  # the same as segmint serve's
    server = uvicorn.Server(config)

    async def serve():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            print(f"serve_baseline: ready on http://{host}:{port} (FastAPI + scikit-learn Pipeline, "
                  f"{a.endpoint} endpoint, model {app.state.version}, {time.perf_counter() - t0:.1f} s)",
                  file=sys.stderr, flush=True)
        await task

    import uvloop
    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
