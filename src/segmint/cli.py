"""The ``segmint`` command line.

Subcommands: ``demo``, ``generate``, ``fit``, ``score``, ``rules``, ``aggregate``, ``rfm``,
``info``. Global options (before the subcommand): ``--threads N``, ``--quiet`` (no progress
bars or notes; results still print), ``--debug`` (tracebacks).

Exit codes: 0 success, 1 a user's error (a segmint error or the file system's: one line on
stderr, the traceback only with ``--debug``) or a bug (any other exception: its traceback),
2 wrong usage, 130 interrupted (Ctrl-C, at any moment: one line saying which outputs were
written; outputs are written atomically, so nothing partial is left at a destination).

Every output is checked against every input and every other output before any work (see
:mod:`segmint.io.outputs`).
"""
import argparse
import os
import sys
import time


def _parser():
    p = argparse.ArgumentParser(prog="segmint", description="Fast customer segmentation over Arrow data.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes")
    p.add_argument("--threads", type=_positive, default=None, help="threads for segmint's kernels (default: all cores)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("demo", help="generate customers, fit a Segmenter, score them, apply the RFM rules")
    d.add_argument("-n", "--customers", type=_positive, default=1_000_000, help="customers to generate (default 1000000)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--dir", default=None, help="folder for the demo files (default: a temporary folder)")

    g = sub.add_parser("generate", help="write a synthetic customer base (and event log)")
    g.add_argument("-n", "--customers", type=_positive, required=True, help="number of customers")
    g.add_argument("-o", "--output", required=True,
                   help="output: .arrow/.feather (memory-mappable), .parquet, or a folder/ (Parquet dataset)")
    g.add_argument("--events", default=None, help="also write the matching event log here")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--as-of", default=None, help="snapshot date YYYY-MM-DD (default 2026-10-01)")

    f = sub.add_parser("fit", help="fit a Segmenter on a customer table and save it")
    f.add_argument("data", help="customer table: .arrow, .parquet, folder")
    f.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.seg)")
    f.add_argument("--features", required=True,
                   help="comma-separated numeric columns (standardised), or a JSON/YAML file with the "
                        "feature spec (a list of column specs)")
    f.add_argument("-k", "--clusters", type=_positive, default=8, help="number of clusters (default 8)")
    f.add_argument("--algorithm", choices=["minibatch", "lloyd"], default="minibatch",
                   help="MiniBatchKMeans (default) or full KMeans")
    f.add_argument("--rules", default=None, help="a waterfall rule file (JSON/YAML) evaluated first")
    f.add_argument("--cluster-within", default=None,
                   help="the rule segment to cluster (default: the customers no rule took)")
    f.add_argument("--no-clusters", action="store_true", help="rules only: no clustering")
    f.add_argument("--id-column", default=None, help="column copied into scores (e.g. customer_id)")
    f.add_argument("--fit-rows", type=_positive, default=None, help="fit the clusterer on a sample of this many rows")
    f.add_argument("--as-of", default=None, help="date the rules count from (default now)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--rename", action="append", default=[], metavar="ID=NAME",
                   help="name a segment, e.g. --rename '0=Weekend bargain hunters' (repeatable)")

    s = sub.add_parser("score", help="score a customer table with a saved model, streaming")
    s.add_argument("model", help="model file from 'segmint fit'")
    s.add_argument("data", help="customer table to score")
    s.add_argument("-o", "--output", required=True, help="result: .arrow, .parquet or folder/ (written atomically)")
    s.add_argument("--as-of", default=None, help="date the rules count from (default now)")
    s.add_argument("--batch-size", type=_positive, default=131_072, help="rows per batch (bounds memory)")

    r = sub.add_parser("rules", help="evaluate a rule file over a table")
    r.add_argument("rules", help="rule file: JSON or YAML")
    r.add_argument("data", help="table to evaluate")
    r.add_argument("-o", "--output", default=None, help="write the per-row segments here")
    r.add_argument("--id-column", default=None, help="column copied into the output")
    r.add_argument("--as-of", default=None, help="date days_since() counts from (default now)")

    a = sub.add_parser("aggregate", help="per-customer features from an event log")
    a.add_argument("events", help="event log: .arrow, .parquet, folder")
    a.add_argument("-o", "--output", required=True, help="feature table to write")
    a.add_argument("--customer", default="customer_id")
    a.add_argument("--timestamp", default="ts")
    a.add_argument("--amount", default=None)
    a.add_argument("--event-type", default=None)
    a.add_argument("--qualifying", action="append", default=None, metavar="TYPE",
                   help="event type counted as a purchase (repeatable)")
    a.add_argument("--windows", default=None, help="JSON/YAML file: window name -> spec")
    a.add_argument("--as-of", default=None, help="instant the features describe (default now)")
    a.add_argument("--btyd", choices=["D", "W"], default=None,
                   help="write the BTYD (lifetimes) summary instead, with this period")

    m = sub.add_parser("rfm", help="RFM scores and the named RFM segments of a feature table")
    m.add_argument("data", help="table with recency_days, frequency, monetary (e.g. from 'segmint aggregate')")
    m.add_argument("-o", "--output", required=True)
    m.add_argument("--bins", type=_positive, default=5)
    m.add_argument("--boundaries", default=None, help="score against saved boundaries (JSON) instead of fitting")
    m.add_argument("--save-boundaries", default=None, help="write the fitted boundaries here (JSON)")

    i = sub.add_parser("info", help="what a data file or a model file holds")
    i.add_argument("path")
    return p


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def main(argv=None):
    """Run the command line; returns the exit status (0, 1 a user's error, 130 interrupted).

    A :class:`~segmint.errors.SegmintError` or an ``OSError`` (a file system's answer: no such
    file, permission denied, disk full) is the user's to fix: one line on stderr. Any other
    exception is a bug in segmint and keeps its traceback. A Ctrl-C at any moment ends in one
    line saying which outputs were written, and exit status 130.
    """
    from ._startup import take_over_interrupts
    _run.finished, _run.interrupted, _run.planned = False, 0.0, []
    take_over_interrupts(_on_interrupt)  # no gap: the start-up handler is swapped, not removed
    try:
        return _main(argv)
    except KeyboardInterrupt:  # one that came while an error or the first one was reported
        _run.finished = True
        print(f"segmint: {_interrupt_message(_run.planned)}", file=sys.stderr)
        return 130


_CLEAN_UP_SECONDS = 3.0  # further Ctrl-C presses within this time let the clean-up finish


class _run:
    """What the Ctrl-C handler needs: this command's outputs, and how far it got."""
    planned = []
    interrupted = 0.0  # time.monotonic() of the first Ctrl-C, or 0
    finished = False


def _on_interrupt(signum, frame):
    """SIGINT in the ``segmint`` process: a KeyboardInterrupt while the command runs (the
    writers drop their temporaries as it unwinds; a second Ctrl-C meanwhile is ignored so that
    the clean-up completes); once it has finished (Python shutting down, waiting for worker
    threads, say), one line and exit 130 at once."""
    if not _run.finished:
        now = time.monotonic()
        if _run.interrupted and now - _run.interrupted < _CLEAN_UP_SECONDS:
            return
        _run.interrupted = now  # a later press still stops a job whose code swallowed the first
        raise KeyboardInterrupt
    try:
        sys.stdout.flush()
    except Exception:  # stdout may be closed or a broken pipe: the line on stderr matters
        pass
    if not _run.interrupted:  # else the line was printed when the first Ctrl-C was answered
        os.write(2, f"segmint: {_interrupt_message(_run.planned)}\n".encode())
    os._exit(130)


def _main(argv):
    from .errors import SegmintError
    from .io import outputs

    outputs.forget_commits()
    args = None
    try:
        args = _parser().parse_args(argv)
        _run.planned = [path for path, _ in _output_paths(args)]
        _check_paths(args, _output_paths(args))  # before reading or computing anything
        if args.threads is not None:
            from ._parallel import set_num_threads
            set_num_threads(args.threads)
        code = _COMMANDS[args.command](args) or 0
        _run.finished = True
    except (SegmintError, OSError) as exc:
        _run.finished = True
        if args is not None and args.debug:
            raise
        print(f"segmint: error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        _run.finished = True
        print(f"segmint: {_interrupt_message(_run.planned)}", file=sys.stderr)
        code = 130
    return code


def _interrupt_message(paths):
    """Whether each output was committed before the Ctrl-C, in one line."""
    from .io.outputs import was_written
    written = [str(p) for p in paths if was_written(p)]
    missing = [str(p) for p in paths if not was_written(p)]
    text = "interrupted"
    if written:
        text += f" after {' and '.join(written)} {'was' if len(written) == 1 else 'were'} written"
    if missing:
        text += f"; nothing was written to {' or '.join(missing)}"
    elif not written:
        text += "; nothing was written"
    return text


# -- what each command reads and writes ---------------------------------------------------------
DEMO_FILES = ("customers.arrow", "model.seg", "segments.parquet")
DEMO_MARKER = "_segmint_demo.json"


def _output_paths(args):
    """``[(path, kind)]`` of everything the command writes; kind is 'table' (Arrow/Parquet
    by suffix, or a dataset folder) or 'file' (model, JSON)."""
    command = args.command
    if command == "demo":
        return [(os.path.join(args.dir, name), "file" if name.endswith(".seg") else "table")
                for name in DEMO_FILES] if args.dir is not None else []
    if command == "generate":
        return [(args.output, "table")] + ([(args.events, "table")] if args.events is not None else [])
    if command == "fit":
        return [(args.output, "file")]
    if command in ("score", "aggregate"):
        return [(args.output, "table")]
    if command == "rules":
        return [(args.output, "table")] if args.output is not None else []
    if command == "rfm":
        return [(args.output, "table")] + ([(args.save_boundaries, "file")]
                                           if args.save_boundaries is not None else [])
    return []


def _input_paths(args):
    """Every file or folder the command reads (data, model, rule, windows, boundaries, spec)."""
    command = args.command
    if command == "fit":
        spec = [args.features] if os.path.exists(args.features) else []
        return [args.data, args.rules] + spec
    if command == "score":
        return [args.model, args.data]
    if command == "rules":
        return [args.rules, args.data]
    if command == "aggregate":
        return [args.events, args.windows]
    if command == "rfm":
        return [args.data, args.boundaries]
    return []


def _check_paths(args, planned):
    """Refuse, up front, an output that is, contains or lies inside an input or another output,
    and ``""``, ``.``, the current or home folder, or a folder segmint did not write."""
    from .io.outputs import check_distinct, check_output
    from .io.writers import check_table_output

    if args.command == "demo" and args.dir is not None:
        _check_demo_dir(args.dir)
        if not os.path.isdir(args.dir):
            return  # a new folder: nothing in it to protect
    inputs = [p for p in _input_paths(args) if p is not None]
    for path, kind in planned:
        if kind == "table":
            check_table_output(path, inputs=inputs)
        else:
            check_output(path, inputs=inputs)
    check_distinct([path for path, _ in planned])


def _check_demo_dir(folder):
    """The demo's folder must be new, empty, or a folder an earlier demo wrote (its marker and
    nothing but the demo's files): the demo replaces customers.arrow, model.seg and
    segments.parquet there, and must not replace a user's files of those names."""
    import json

    from .errors import OutputError
    if not str(folder).strip():
        raise OutputError("the demo folder is empty; name a new or empty folder with --dir")
    if not os.path.lexists(folder):
        return
    if not os.path.isdir(folder):
        raise OutputError(f"--dir {folder!r} is not a folder")
    names = os.listdir(folder)
    if not names:
        return
    ours = False
    marker = os.path.join(folder, DEMO_MARKER)
    if os.path.isfile(marker) and os.path.getsize(marker) < 4096:
        try:
            with open(marker, "rb") as f:
                ours = json.loads(f.read().decode("utf-8")).get("format") == "segmint-demo"
        except (OSError, ValueError, AttributeError):
            ours = False
    foreign = sorted(set(names) - {DEMO_MARKER, *DEMO_FILES}) if ours else sorted(names)
    if foreign:
        raise OutputError(f"--dir {folder!r} holds {len(foreign)} file{'s' if len(foreign) > 1 else ''} "
                          f"an earlier demo did not write, e.g. {foreign[0]!r}; the demo writes "
                          f"{', '.join(DEMO_FILES)} there: name a new or empty folder")


class _Progress:
    """A tqdm bar on stderr when it is a terminal (and not ``--quiet``); else silent."""

    def __init__(self, args, total, desc, unit="rows"):
        self.bar = None
        if not args.quiet and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit=f" {unit}", unit_scale=True, file=sys.stderr,
                            leave=False, dynamic_ncols=True)

    def __call__(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _note(args, text):
    if not args.quiet:
        print(text, file=sys.stderr)


def _read_spec_file(path, what):
    from ._documents import read_document
    from .errors import DataError
    return read_document(path, what, DataError)


def _generate(args):
    from ._parallel import get_num_threads
    from .datasets import DEFAULT_AS_OF, write_customers
    t0 = time.perf_counter()
    written = write_customers(args.output, args.customers, seed=args.seed,
                              as_of=args.as_of or DEFAULT_AS_OF, events_path=args.events,
                              threads=get_num_threads())
    dt = time.perf_counter() - t0
    print(f"wrote {written['customers']:,} customers to {args.output}"
          + (f" and {written['events']:,} events to {args.events}" if args.events else "")
          + f" in {dt:.2f} s")


def _fit(args):
    from .cluster import KMeans, MiniBatchKMeans
    from .pipeline import Segmenter
    from .rules import RuleSet

    if os.path.exists(args.features) or args.features.endswith((".json", ".yaml", ".yml")):
        spec = _read_spec_file(args.features, "the feature spec")
        if isinstance(spec, dict) and "features" in spec:
            spec = spec["features"]
    else:
        spec = [c.strip() for c in args.features.split(",") if c.strip()]
    renames = _parse_renames(args.rename)  # before the work: a typo must not cost a fit
    rules = RuleSet.load(args.rules) if args.rules else None
    clusterer = None
    if not args.no_clusters:
        cls = MiniBatchKMeans if args.algorithm == "minibatch" else KMeans
        clusterer = cls(n_clusters=args.clusters, random_state=args.seed)
    model = Segmenter(spec, clusterer=clusterer, rules=rules, cluster_within=args.cluster_within,
                      id_column=args.id_column, fit_rows=args.fit_rows, random_state=args.seed)
    t0 = time.perf_counter()
    _note(args, f"fitting on {args.data} ...")
    model.fit(args.data, as_of=args.as_of)
    if renames:
        model.rename(renames)
    model.save(args.output)
    dt = time.perf_counter() - t0
    print(f"fitted {len(model.segment_names_)} segments on {model.feature_spec_.n_rows_ if model.feature_spec_ else 0:,} "
          f"rows ({model.n_rows_fit_:,} clustered) in {dt:.2f} s -> {args.output}")


def _parse_renames(items):
    """``--rename ID=NAME`` options as ``{id or name: new name}``."""
    from .errors import ParameterError
    renames = {}
    for item in items:
        key, sep, name = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"--rename takes ID=NAME (e.g. '0=Loyal'), got {item!r}")
        if key.isdecimal() and key.isascii():
            if len(key) > 6:
                raise ParameterError(f"--rename {item[:40]!r}: no model has that many segments")
            renames[int(key)] = name
        else:
            renames[key] = name
    return renames


def _score(args):
    from .io import open as open_source
    from .pipeline import load

    model = load(args.model)
    src = open_source(args.data)
    t0 = time.perf_counter()
    with _Progress(args, src.num_rows, "scoring") as bar:
        model.score(src, out=args.output, as_of=args.as_of, batch_size=args.batch_size, progress=bar)
    dt = time.perf_counter() - t0
    n = src.num_rows
    print(f"scored {n:,} customers in {dt:.2f} s ({n / max(dt, 1e-9):,.0f} per second) -> {args.output}"
          if n is not None else f"scored in {dt:.2f} s -> {args.output}")


def _rules(args):
    from .rules import RuleSet
    rules = RuleSet.load(args.rules)
    t0 = time.perf_counter()
    result = rules.evaluate(args.data, as_of=args.as_of, id_column=args.id_column, out=args.output)
    dt = time.perf_counter() - t0
    _print_counts(result.counts)
    print(f"{result.rows:,} rows in {dt:.2f} s" + (f" -> {args.output}" if args.output else ""))


def _print_counts(counts):
    for name, matched, unknown, share in zip(*(counts.column(c).to_pylist()
                                              for c in ("segment", "matched", "unknown", "share"))):
        note = f"  ({unknown:,} unknown: a value was null)" if unknown else ""
        print(f"  {name:<24} {matched:>11,} {share:7.1%}{note}")


def _aggregate(args):
    from .events import aggregate, btyd_summary
    from .io import write_table

    windows = _read_spec_file(args.windows, "the windows") if args.windows else None
    kw = dict(customer=args.customer, timestamp=args.timestamp, amount=args.amount,
              event_type=args.event_type, qualifying=args.qualifying, as_of=args.as_of)
    t0 = time.perf_counter()
    result = btyd_summary(args.events, period=args.btyd, **kw) if args.btyd else aggregate(args.events, windows=windows, **kw)
    write_table(result.table, args.output, inputs=_input_paths(args))
    dt = time.perf_counter() - t0
    print(f"{result.events:,} events -> {result.table.num_rows:,} customers in {dt:.2f} s -> {args.output}")
    left = [(result.null_customer, "with a null customer id"), (result.null_timestamp, "with a null timestamp"),
            (result.after_as_of, "after as_of")]
    for count, why in left:
        if count:
            print(f"  left out {count:,} events {why}")


def _rfm(args):
    import json

    from .events import RFMScorer, rfm_segments
    from .io import open as open_source
    from .io import write_table

    table = open_source(args.data).read()
    if args.boundaries:
        scorer = RFMScorer.from_dict(_read_spec_file(args.boundaries, "the RFM boundaries"))
    else:
        scorer = RFMScorer(bins=args.bins).fit(table)
    scored = scorer.transform(table)
    rules = rfm_segments()
    result = rules.evaluate(scored)
    scored = scored.append_column("rfm_segment", result.table.column("segment"))
    write_table(scored, args.output, inputs=_input_paths(args))
    if args.save_boundaries:
        from .io.writers import write_text
        write_text(args.save_boundaries, json.dumps(scorer.to_dict(), indent=1), inputs=_input_paths(args))
    _print_counts(result.counts)
    print(f"{scored.num_rows:,} customers -> {args.output}")


def _info(args):
    import zipfile

    # is_zipfile on a device or FIFO never returns: only a regular file can be a model
    if os.path.isfile(args.path) and zipfile.is_zipfile(args.path):
        from .pipeline import load
        print(describe_model(load(args.path), args.path))
        return
    from .io import open as open_source
    with open_source(args.path) as src:
        print(describe(src))


def describe_model(model, path):
    """A human-readable summary of a saved Segmenter."""
    lines = [f"{path}: segmint model, {len(model.segment_names_)} segments"]
    spec = model.feature_spec_
    if spec is not None:
        lines.append(f"  features ({spec.n_features_out_} after transforms, fitted on {spec.n_rows_:,} rows): "
                     + ", ".join(spec.input_columns))
    if model.rules_ is not None:
        lines.append(f"  rules ({model.rules_.mode}):")
        lines += [f"    {s.name}: {s.rule}" for s in model.rules_.segments]
    if model.clusterer_ is not None:
        c = model.clusterer_
        within = f" within {', '.join(model.within_)}" if model.within_ else ""
        lines.append(f"  clusterer: {type(c).__name__}(n_clusters={model.n_clusters_}){within}, "
                     f"fitted on {model.n_rows_fit_:,} rows, dtype {c.cluster_centers_.dtype}")
    lines.append("  segments: " + ", ".join(f"{i}={n}" for i, n in enumerate(model.segment_names_)))
    return "\n".join(lines)


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


DEMO_FEATURES = [
    {"column": "recency_days", "impute": "median", "indicator": True},
    {"column": "frequency", "log1p": True},
    {"column": "monetary", "log1p": True, "clip": [0.0, 0.995]},
    {"column": "avg_order_value", "log1p": True, "impute": "median"},
    {"column": "sessions_30d", "log1p": True},
    {"column": "email_opens_90d", "log1p": True},
    {"column": "discount_share", "impute": 0.0},
    {"column": "tenure_days", "scale": "robust"},
]
DEMO_RULES = [
    ("no_consent", "not email_opt_in and not sms_opt_in"),
    ("never_bought", "frequency = 0"),
]


def _demo(args):
    import tempfile

    if args.dir is not None:  # checked by _check_demo_dir: new, empty or an earlier demo's
        import json

        from .io.writers import write_text
        os.makedirs(args.dir, exist_ok=True)
        write_text(os.path.join(args.dir, DEMO_MARKER),
                   json.dumps({"format": "segmint-demo", "files": list(DEMO_FILES)}) + "\n")
        _run_demo(args, args.dir)
        return
    with tempfile.TemporaryDirectory(prefix="segmint-demo-") as tmp:
        _run_demo(args, tmp)


def _run_demo(args, folder):
    """Generate, fit, save, load, score, RFM: the whole nightly job on synthetic data."""
    import numpy as np

    from ._parallel import get_num_threads
    from .cluster import MiniBatchKMeans
    from .datasets import DEFAULT_AS_OF, PERSONAS, write_customers
    from .events import RFMScorer, rfm_segments
    from .io import open as open_source
    from .pipeline import Segmenter, load
    from .rules import RuleSet

    timings = []

    def timed(label, func):
        t0 = time.perf_counter()
        value = func()
        timings.append((label, time.perf_counter() - t0))
        return value

    data = os.path.join(folder, "customers.arrow")
    timed("generate", lambda: write_customers(data, args.customers, seed=args.seed, threads=get_num_threads()))
    print(f"Generated {args.customers:,} synthetic customers (seed {args.seed}, as of {DEFAULT_AS_OF}) "
          f"in {timings[-1][1]:.2f} s -> {data}")
    src = timed("open", lambda: open_source(data))
    print(f"Opened in {timings[-1][1] * 1e3:.1f} ms: " + describe(src).split("\n")[0])

    rules = RuleSet(DEMO_RULES, default="customers")
    model = Segmenter(DEMO_FEATURES, clusterer=MiniBatchKMeans(n_clusters=6, random_state=args.seed),
                      rules=rules, id_column="customer_id", random_state=args.seed)
    _note(args, "fitting (the first run on a machine also compiles the kernels; segmint.warmup() does it ahead) ...")
    timed("fit", lambda: model.fit(src, as_of=DEFAULT_AS_OF))
    print(f"\nSegmenter: rules first ({', '.join(n for n, _ in DEMO_RULES)}), then MiniBatchKMeans(6) on "
          f"{model.n_rows_fit_:,} customers over {model.feature_spec_.n_features_out_} features; "
          f"fit in {timings[-1][1]:.2f} s")
    km = model.clusterer_
    X = model.transform(src)
    timed("predict", lambda: km.predict(X))
    print(f"MiniBatchKMeans: inertia {km.inertia_:,.0f} after {km.n_steps_} steps; predict of all "
          f"{X.shape[0]:,} customers ({X.shape[1]} {X.dtype} features) in {timings[-1][1] * 1e3:.1f} ms")
    del X
    model_path = os.path.join(folder, "model.seg")
    timed("save", lambda: model.save(model_path))
    loaded = timed("load", lambda: load(model_path))
    out = os.path.join(folder, "segments.parquet")
    with _Progress(args, src.num_rows, "scoring") as bar:
        timed("score", lambda: loaded.score(src, out=out, as_of=DEFAULT_AS_OF, progress=bar))
    print(f"Saved the model ({os.path.getsize(model_path):,} bytes, no pickle), loaded it, scored every "
          f"customer in {timings[-1][1]:.2f} s -> {out}")

    scores = open_source(out).read(["segment_id", "distance"])
    seg = scores.column("segment_id").to_numpy()
    raw = src.read(["recency_days", "frequency", "monetary", "true_segment"])
    recency = raw.column("recency_days").to_numpy(zero_copy_only=False).astype(float)
    frequency = raw.column("frequency").to_numpy()
    monetary = raw.column("monetary").to_numpy()
    truth = raw.column("true_segment").to_numpy()
    print(f"\n{'id':>2} {'segment':<14} {'customers':>10} {'share':>6} {'recency':>8} {'orders':>7} "
          f"{'spend':>9}  main persona")
    for i, name in enumerate(loaded.segment_names_):
        mine = seg == i
        size = int(mine.sum())
        if not size:
            continue
        persona = np.bincount(truth[mine], minlength=len(PERSONAS))
        top = int(np.argmax(persona))
        rec = recency[mine]
        rec = f"{np.nanmedian(rec):8.0f}" if np.isfinite(rec).any() else f"{'-':>8}"
        print(f"{i:>2} {name:<14} {size:>10,} {size / len(seg):>6.1%} {rec} {np.median(frequency[mine]):>7.0f} "
              f"{np.median(monetary[mine]):>9,.0f}  {PERSONAS[top]} ({persona[top] / size:.0%})")

    table = src.read(["customer_id", "recency_days", "frequency", "monetary"])
    scored = timed("rfm scores", lambda: RFMScorer().fit_transform(table))
    counts = timed("rfm rules", lambda: rfm_segments().counts(scored))
    print("\nRFM: scores 1..5 by quantiles, then the named RFM segments (a built-in rule set):")
    for name, matched, share in zip(*(counts.column(c).to_pylist() for c in ("segment", "matched", "share"))):
        if matched:
            print(f"  {name:<22} {matched:>10,} {share:6.1%}")
    print("\nTimings: " + ", ".join(f"{label} {t:.2f} s" for label, t in timings)
          + f" ({get_num_threads()} threads)")
    src.close()


_COMMANDS = {"demo": _demo, "generate": _generate, "fit": _fit, "score": _score, "rules": _rules,
             "aggregate": _aggregate, "rfm": _rfm, "info": _info}

if __name__ == "__main__":
    sys.exit(main())
