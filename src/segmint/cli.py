"""The ``segmint`` command line.

Exit codes: 0 success, 1 a segmint error (bad input, unreadable file: one line on stderr,
the traceback only with ``--debug``), 2 wrong usage, 130 interrupted.
"""
import argparse
import sys
import time


def _parser():
    p = argparse.ArgumentParser(prog="segmint", description="Fast customer segmentation over Arrow data.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("demo", help="generate a synthetic customer base and show what segmint sees")
    d.add_argument("-n", "--customers", type=int, default=200_000, help="customers to generate (default 200000)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--dir", default=None, help="folder for the demo files (default: a temporary folder)")

    g = sub.add_parser("generate", help="write a synthetic customer base (and event log)")
    g.add_argument("-n", "--customers", type=int, required=True, help="number of customers")
    g.add_argument("-o", "--output", required=True,
                   help="output: .arrow/.feather (memory-mappable), .parquet, or a folder/ (Parquet dataset)")
    g.add_argument("--events", default=None, help="also write the matching event log here")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--as-of", default=None, help="snapshot date YYYY-MM-DD (default 2026-10-01)")
    g.add_argument("--threads", type=int, default=2)

    i = sub.add_parser("info", help="what a data file holds")
    i.add_argument("path")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    from .errors import SegmintError
    try:
        return {"demo": _demo, "generate": _generate, "info": _info}[args.command](args) or 0
    except SegmintError as exc:
        if args.debug:
            raise
        print(f"segmint: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("segmint: interrupted; no partial output was left at the destination", file=sys.stderr)
        return 130


def _generate(args):
    from .datasets import DEFAULT_AS_OF, write_customers
    t0 = time.perf_counter()
    written = write_customers(args.output, args.customers, seed=args.seed,
                              as_of=args.as_of or DEFAULT_AS_OF, events_path=args.events,
                              threads=args.threads)
    dt = time.perf_counter() - t0
    print(f"wrote {written['customers']:,} customers to {args.output}"
          + (f" and {written['events']:,} events to {args.events}" if args.events else "")
          + f" in {dt:.2f} s")


def _info(args):
    from .io import open as open_source
    with open_source(args.path) as src:
        print(describe(src))


def describe(src):
    """A human-readable summary of a source: rows, and per column its kind and type."""
    from .io.columns import column_kind
    lines = [f"{src.label}: {src.kind}{' (memory-mapped, zero-copy)' if src.zero_copy and src.kind == 'ipc' else ''}, "
             f"{src.num_rows:,} rows x {len(src.column_names)} columns"]
    width = max((len(n) for n in src.column_names), default=0)
    for field in src.schema:
        kind = column_kind(field.type) or "unsupported"
        lines.append(f"  {field.name:<{width}}  {kind:<10}  {field.type}")
    return "\n".join(lines)


def _demo(args):
    import os
    import tempfile

    import numpy as np

    from .datasets import PERSONAS, write_customers
    from .io import open as open_source

    with tempfile.TemporaryDirectory(prefix="segmint-demo-") as tmp:
        folder = args.dir or tmp
        if args.dir:
            os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "customers.arrow")
        t0 = time.perf_counter()
        write_customers(path, args.customers, seed=args.seed)
        t_gen = time.perf_counter() - t0
        print(f"Generated {args.customers:,} synthetic customers (seed {args.seed}) in {t_gen:.2f} s -> {path}")

        t0 = time.perf_counter()
        src = open_source(path)
        t_open = time.perf_counter() - t0
        print(f"Opened in {t_open * 1e3:.1f} ms: " + describe(src).split("\n")[0])
        print()
        t0 = time.perf_counter()
        summary = _summarise(src)
        t_scan = time.perf_counter() - t0
        print(f"{'column':<22} {'kind':<10} {'nulls':>8} {'mean':>12} {'min':>10} {'max':>10}")
        for name, kind, nulls, mean, lo, hi in summary:
            print(f"{name:<22} {kind:<10} {nulls:>8,} {mean:>12} {lo:>10} {hi:>10}")
        print(f"\nScanned {len(summary)} columns in batches in {t_scan * 1e3:.0f} ms")

        counts = np.bincount(src.column("true_segment").to_numpy(), minlength=len(PERSONAS))
        print("\nLatent personas (what clustering should recover):")
        for name, count in zip(PERSONAS, counts):
            print(f"  {name:<16} {count:>9,}  {count / max(src.num_rows, 1):6.1%}")
        regions = src.column("region")
        codes = np.concatenate([v.values for v in regions.chunks])
        top = np.bincount(codes, minlength=len(regions.dictionary))
        names = regions.dictionary.to_pylist()
        print("\nTop regions: " + ", ".join(f"{names[i]} {top[i] / max(codes.size, 1):.0%}"
                                             for i in np.argsort(-top)[:5]))
        _demo_clusters(src, args)
        _demo_rules(src)
        src.close()


DEMO_RULES = [
    ("champions", "frequency >= 15 and monetary >= 1500"),
    ("at_risk", "frequency >= 4 and days_since(last_order_date) between 120 and 365"),
    ("west_coast_opted_in", "region in ('CA', 'WA') and email_opt_in"),
    ("seniors", "age >= 65"),
    ("never_bought", "frequency = 0"),
]


def _demo_rules(src):
    """Evaluate a small waterfall rule set and show sizes and rows left out as unknown."""
    from .datasets import DEFAULT_AS_OF
    from .rules import RuleSet

    rules = RuleSet(DEMO_RULES, default="everyone_else")
    print(f"\nRules (waterfall, as of {DEFAULT_AS_OF}): first matching segment wins")
    t0 = time.perf_counter()
    counts = rules.counts(src, as_of=DEFAULT_AS_OF)
    elapsed = time.perf_counter() - t0
    rules_text = dict(DEMO_RULES)
    for name, matched, unknown, share in zip(*(counts.column(c).to_pylist()
                                              for c in ("segment", "matched", "unknown", "share"))):
        note = f"  ({unknown:,} unknown: a value was null)" if unknown else ""
        print(f"  {name:<22} {matched:>9,} {share:6.1%}  {rules_text.get(name, '')}{note}")
    print(f"evaluated in {elapsed * 1e3:.0f} ms (the first run includes compiling the rule engine once; "
          "segmint.warmup() does it ahead of time)")


def _demo_clusters(src, args):
    """Fit MiniBatchKMeans on the prepared features and describe the segments it finds."""
    import numpy as np

    from .cluster import MiniBatchKMeans
    from .datasets import NUMERIC_FEATURES, PERSONAS
    from .datasets.features import feature_matrix

    print("\nClustering: MiniBatchKMeans(n_clusters=8) on the 16 numeric features "
          "(median-imputed, log1p, standardised)")
    X = feature_matrix(src, NUMERIC_FEATURES)
    t0 = time.perf_counter()
    model = MiniBatchKMeans(n_clusters=8, batch_size=4096, random_state=args.seed).fit(X)
    t_fit = time.perf_counter() - t0  # includes compiling the kernels on a cold cache
    t0 = time.perf_counter()
    labels = model.predict(X)
    t_predict = time.perf_counter() - t0
    raw = src.read(["recency_days", "frequency", "monetary", "true_segment"])
    recency = raw.column("recency_days").to_numpy(zero_copy_only=False).astype(float)
    frequency = raw.column("frequency").to_numpy()
    monetary = raw.column("monetary").to_numpy()
    truth = raw.column("true_segment").to_numpy()
    print(f"fit {t_fit:.2f} s ({model.n_steps_} steps; first run includes compiling), "
          f"predict {t_predict * 1e3:.0f} ms, inertia {model.inertia_:,.0f}")
    print(f"\n{'segment':<10} {'customers':>10} {'share':>7} {'recency':>8} {'orders':>7} "
          f"{'spend':>9}  main persona")
    for c in np.argsort(-np.bincount(labels, minlength=8)):
        mine = labels == c
        size = int(mine.sum())
        if not size:
            continue
        persona = np.bincount(truth[mine], minlength=len(PERSONAS))
        top = int(np.argmax(persona))
        rec = np.nanmedian(recency[mine]) if np.isfinite(recency[mine]).any() else float("nan")
        print(f"segment_{c:<2} {size:>10,} {size / len(labels):>7.1%} {rec:>8.0f} "
              f"{np.median(frequency[mine]):>7.0f} {np.median(monetary[mine]):>9,.0f}  "
              f"{PERSONAS[top]} ({persona[top] / size:.0%})")


def _summarise(src):
    """Per column: (name, kind, null count, mean, min, max) over valid values, batch by batch."""
    import numpy as np
    stats = {}
    for batch in src.batches():
        for name in batch.column_names:
            view = batch[name]
            s = stats.setdefault(name, [view.kind, 0, 0.0, 0, None, None])
            s[1] += view.null_count
            if view.kind in ("numeric", "temporal", "boolean"):
                valid = view.is_valid()
                x = view.to_numpy()[valid].astype(np.float64)
                if x.size:
                    x = x[~np.isnan(x)]
                if x.size:
                    s[2] += x.sum()
                    s[3] += x.size
                    s[4] = x.min() if s[4] is None else min(s[4], x.min())
                    s[5] = x.max() if s[5] is None else max(s[5], x.max())
    import datetime as dt

    import pyarrow as pa
    epoch = dt.date(1970, 1, 1)
    out = []
    for name, (kind, nulls, total, count, lo, hi) in stats.items():
        if kind == "dictionary" or count == 0:
            out.append((name, kind, nulls, "", "", ""))
        elif pa.types.is_date32(src.schema.field(name).type):
            days = [epoch + dt.timedelta(days=int(round(v))) for v in (total / count, lo, hi)]
            out.append((name, kind, nulls, *(d.isoformat() for d in days)))
        else:
            out.append((name, kind, nulls, f"{total / count:.4g}", f"{lo:.4g}", f"{hi:.4g}"))
    return out



if __name__ == "__main__":
    sys.exit(main())
