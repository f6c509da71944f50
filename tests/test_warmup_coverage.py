"""After ``segmint.warmup()`` nothing compiles on a request path, in a fresh process.

One subprocess warms up (loading what the session's kernel cache already holds, compiling the
rest), then runs public calls that reach kernels through less common paths and lists every
Numba compile they cause: the list must be empty.
"""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import datetime as dt
    import warnings

    import numpy as np
    import pyarrow as pa
    from numba.core import event

    import segmint

    segmint.warmup(n_jobs=2)
    compiled = []

    class Listener(event.Listener):
        def on_start(self, ev):
            d = ev.data["dispatcher"]
            compiled.append(f"{d.py_func.__module__}.{d.py_func.__name__}")

        def on_end(self, ev):
            pass

    event.register("numba:compile", Listener())
    as_of = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    n = 4000
    idx = np.arange(n)
    ts = pa.array((1_760_000_000 + idx * 3600) * 10**6).cast(pa.timestamp("us", tz="UTC"))
    # a stream whose ids start dense and turn sparse: its state moves into hash mode
    ids = np.where(idx < n // 2, idx % 500, 10**12 + idx * 7_919_000_000)
    table = pa.table({"customer_id": ids, "ts": ts, "amount": idx * 1.5})
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=1000))
    segmint.aggregate(reader, amount="amount", as_of=np.datetime64("2026-01-01"), batch_size=1000)
    # the same log in memory, dense ids, string ids, balanced batches
    segmint.aggregate(table.set_column(0, "customer_id", pa.array(idx % 500)), amount="amount", as_of=as_of,
                      batch_size=700)
    segmint.aggregate(table.set_column(0, "customer_id", pa.array([f"c{i % 300}" for i in idx])),
                      amount="amount", as_of=as_of)
    # float64 data at many centers (the float32 screen), and a float32 model
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 7))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = segmint.KMeans(n_clusters=150, random_state=0, max_iter=2).fit(X)
    model.predict(X)
    segmint.MiniBatchKMeans(n_clusters=5, random_state=0).fit(X.astype(np.float32)).predict(X.astype(np.float32))
    print("COMPILED", sorted(set(compiled)))
""")


def test_nothing_compiles_after_a_warm_up_on_less_common_paths():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("COMPILED")][-1]
    assert line == "COMPILED []", line
