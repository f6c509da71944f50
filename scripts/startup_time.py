"""How long a fresh process takes to score its first customer: ``import segmint``, then
``segmint.load(model)``, then the first score of one customer.

Each figure is the median over ``--runs`` fresh processes (``sys.executable -c ...``), with a
warm Numba cache: one untimed process scores first, so whatever it compiles is cached before
the timed runs start. The model is the issue's reference shape (issue 16): 16 features
(numeric transforms and a one-hot column), k=8 clusters and 20 waterfall rules, fitted on
synthetic customers and saved to a temporary folder (or ``--model``, a saved ``.seg``).

The first score is ``model.scorer().score_one(record)`` when the Segmenter has a Scorer, and
``model.predict(table of one row)`` otherwise (``--path predict`` forces the latter). Each
process also reports which kernel modules and which heavy libraries it imported, so a change
that pulls a module onto the scoring path shows up here.

Before the timed runs the script writes segmint's bytecode (as ``segmint warmup --bytecode``
does for an image), so that a development shell's stale bytecode is not what gets timed.

Run: ``python scripts/startup_time.py [--runs 7] [--model model.seg] [--path auto|scorer|predict]``.
Timings depend on the machine and on what else runs: quote medians and say what ran beside.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

AS_OF = "2026-10-01"

# 16 features: 10 numeric columns (some imputed, logged, clipped, robust-scaled), an
# indicator, and a one-hot column of 5 categories
SPEC = [{"column": "recency_days", "impute": "median", "indicator": True},
        {"column": "frequency", "log1p": True},
        {"column": "monetary", "log1p": True, "clip": [0.0, 0.995]},
        {"column": "avg_order_value", "impute": "median", "log1p": True},
        {"column": "tenure_days", "scale": "robust"},
        {"column": "age", "impute": "median"}, {"column": "income_k", "impute": "median"},
        "sessions_30d", {"column": "pages_per_session", "impute": 0.0},
        {"column": "discount_share", "impute": "median"},
        {"column": "region", "one_hot": True, "max_categories": 5}]

RULES = [(f"r{i:02d}", text) for i, text in enumerate([
    "not email_opt_in and not sms_opt_in and frequency = 0",
    "returns_count > 20", "support_tickets > 30", "monetary > 1e9", "age < 0",
    "income_k is null and age is null and frequency > 5000",
    "cart_abandonments_90d > 400", "email_clicks_90d > 900", "sessions_30d > 2000",
    "days_between_orders > 5000", "discount_share > 1.5", "pages_per_session > 900",
    "region = 'nowhere'", "channel = 'fax'", "device = 'pager'",
    "days_since(last_order_date) < -10", "days_since(signup_date) > 40000",
    "tenure_days between -100 and -1", "recency_days > 50000",
    "coalesce(monetary, 0) / 2 > 1e12"])]

CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import segmint
    t1 = time.perf_counter()
    model = segmint.load(sys.argv[1])
    t2 = time.perf_counter()
    record = json.loads(sys.argv[2])
    path = sys.argv[3]
    if path == "auto":
        path = "scorer" if hasattr(model, "scorer") else "predict"
    if path == "scorer":
        import datetime as dt
        for name in ("signup_date", "first_order_date", "last_order_date"):
            record[name] = dt.date.fromisoformat(record[name])
        result = model.scorer().score_one(record)
    else:
        import pyarrow as pa
        table = pa.Table.from_pylist([record])
        for name in ("signup_date", "first_order_date", "last_order_date"):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table.column(name).cast(pa.string()).cast(pa.date32()))
        result = model.predict(table, as_of="%s")
    t3 = time.perf_counter()
    heavy = ("scipy", "pyarrow.compute", "pyarrow.dataset", "pyarrow.parquet", "pyarrow.csv",
             "pandas", "polars", "matplotlib", "tqdm", "yaml", "numba", "sklearn")
    print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first score": t3 - t2, "total": t3 - t0,
                      "path": path,
                      "kernels": sorted(m.rsplit(".", 1)[1] for m in sys.modules
                                        if m.startswith("segmint.kernels.")),
                      "heavy": [m for m in heavy if m in sys.modules]}))
""" % AS_OF)


def make_model(folder):
    """Fit and save the reference model; returns its path and one customer as a record."""
    import segmint

    table = segmint.make_customers(20_000, random_state=0)
    model = segmint.Segmenter(SPEC, clusterer=segmint.MiniBatchKMeans(n_clusters=8, random_state=0),
                              rules=segmint.RuleSet(RULES, default="customers"), id_column="customer_id")
    model.fit(table, as_of=AS_OF)
    path = os.path.join(folder, "model.seg")
    model.save(path)
    return path


def one_record():
    """One customer as a JSON-able mapping of column name to scalar (dates as ISO text)."""
    import segmint

    row = segmint.make_customers(1, random_state=3).to_pylist()[0]
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def run_child(model_path, record, path):
    out = subprocess.run([sys.executable, "-c", CHILD, model_path, json.dumps(record), path],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the child process failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7, help="fresh processes timed (default 7)")
    p.add_argument("--model", default=None, help="a saved .seg model (default: fit the reference one)")
    p.add_argument("--path", choices=["auto", "scorer", "predict"], default="auto",
                   help="how the first customer is scored (default: the Scorer when there is one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segmint-startup-") as folder:
        model_path = args.model or make_model(folder)
        record = one_record()
        # as an installed package (or an image after `segmint warmup`) has it: current bytecode,
        # else every edited module is compiled from source in each process (PYTHONDONTWRITEBYTECODE
        # in a development shell leaves stale bytecode behind: ~20-150 ms)
        from segmint.cli.warmup import _compile_bytecode
        _compile_bytecode()
        first = run_child(model_path, record, args.path)  # untimed: fills the cache if it is cold
        runs = [run_child(model_path, record, args.path) for _ in range(args.runs)]
    print(f"segmint start-up, {args.runs} fresh processes, warm Numba cache, path: {first['path']}")
    for key in ("import", "load", "first score", "total"):
        values = [r[key] for r in runs]
        print(f"  {key:<12} median {statistics.median(values) * 1000:7.1f} ms"
              f"   (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")
    print(f"  kernel modules loaded: {', '.join(runs[-1]['kernels']) or 'none'}")
    print(f"  heavy libraries imported: {', '.join(runs[-1]['heavy']) or 'none'}")
    return runs


if __name__ == "__main__":
    main()
