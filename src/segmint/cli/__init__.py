"""The ``segmint`` command line.

Subcommands: ``demo``, ``generate``, ``fit``, ``score``, ``rules``, ``aggregate``, ``rfm``,
``info``, the ones that explain segments: ``profile``, ``sweep``, ``validate``, ``report``,
and the ones that keep them current: ``drift``, ``refit``; ``warmup`` fills Numba's cache for an image
(``--check``: is it warm?); ``serve`` serves a model over HTTP (:mod:`.serve`). Global options
(before the subcommand): ``--threads N``, ``--quiet`` (no progress bars or notes; results still
print), ``--debug`` (tracebacks).

Exit codes: 0 success, 1 a user's error (a segmint error or the file system's: one line on
stderr, the traceback only with ``--debug``) or a bug (any other exception: its traceback),
2 wrong usage, 130 interrupted (Ctrl-C, at any moment: one line saying which outputs were
written; outputs are written atomically, so nothing partial is left at a destination).

Every output is checked against every input and every other output before any work (see
:mod:`segmint.io.outputs` and :mod:`segmint.cli.paths`).

The package: this module holds the parser, the dispatch table :data:`COMMANDS` and
:func:`main`; :mod:`.paths` what each command reads and writes (and the checks on outputs),
:mod:`.output` progress bars and printed summaries, :mod:`.tables` the commands
over tables and event logs (``generate``, ``aggregate``, ``rfm``, ``info``), :mod:`.models` the
commands over rules and models (``fit``, ``score``, ``rules``), :mod:`.demo` the demo,
:mod:`.explain` the commands that explain segments (each in its own module: :mod:`.profile`,
:mod:`.sweep`, :mod:`.validate`, :mod:`.report`).
Modules import segmint's heavy parts inside the commands, so ``segmint --help`` stays quick.
"""
import argparse
import os
import sys
import time

from ..events.aggregate import EVENT_BATCH_SIZE
from ..io import DEFAULT_BATCH_SIZE
from . import demo, explain, models, serve, tables, warmup
from .paths import check_paths, output_paths


def _parser():
    p = argparse.ArgumentParser(prog="segmint", description="Fast customer segmentation over Arrow data.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes")
    p.add_argument("--threads", type=_positive, default=None, help="threads for segmint's kernels (default: all cores)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("demo", help="generate customers, fit a Segmenter, score them, apply the RFM rules")
    d.add_argument("-n", "--customers", type=_positive, default=1_000_000, help="customers to generate (default 1000000)")
    _random_state(d)
    d.add_argument("--dir", default=None, help="folder for the demo files (default: a temporary folder)")

    g = sub.add_parser("generate", help="write a synthetic customer base (and event log)")
    g.add_argument("-n", "--customers", type=_positive, required=True, help="number of customers")
    g.add_argument("-o", "--output", required=True,
                   help="output: .arrow/.feather (memory-mappable), .parquet, or a folder/ (Parquet dataset)")
    g.add_argument("--events", default=None, help="also write the matching event log here")
    _random_state(g)
    g.add_argument("--as-of", default=None, help="snapshot date YYYY-MM-DD (default 2026-10-01)")

    f = sub.add_parser("fit", help="fit a Segmenter on a customer table and save it")
    f.add_argument("data", help="customer table: .arrow, .parquet, folder")
    f.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.seg)")
    f.add_argument("--features", required=True,
                   help="comma-separated numeric columns (standardised), or a JSON/YAML file with the "
                        "feature spec (a list of column specs)")
    f.add_argument("-k", "--n-clusters", type=_positive, default=8, help="number of clusters (default 8)")
    f.add_argument("--clusterer", choices=["minibatch", "kmeans"], default="minibatch",
                   help="the clustering engine: minibatch (MiniBatchKMeans, default) or kmeans (KMeans)")
    f.add_argument("--rules", default=None, help="a waterfall rule file (JSON/YAML) evaluated first")
    f.add_argument("--cluster-within", default=None,
                   help="the rule segment to cluster (default: the customers no rule took)")
    f.add_argument("--no-clusters", action="store_true", help="rules only: no clustering")
    f.add_argument("--id-column", default=None, help="column copied into scores (e.g. customer_id)")
    f.add_argument("--fit-rows", type=_positive, default=None, help="fit the clusterer on a sample of this many rows")
    f.add_argument("--as-of", default=None, help="date the rules count from (default now)")
    _random_state(f)
    _batch_size(f)
    f.add_argument("--rename", action="append", default=[], metavar="ID=NAME",
                   help="name a segment, e.g. --rename '0=Weekend bargain hunters' (repeatable)")

    s = sub.add_parser("score", help="score a customer table with a saved model, streaming")
    s.add_argument("model", help="model file from 'segmint fit'")
    s.add_argument("data", help="customer table to score")
    s.add_argument("-o", "--output", required=True, help="result: .arrow, .parquet or folder/ (written atomically)")
    s.add_argument("--as-of", default=None, help="date the rules count from (default now)")
    _batch_size(s)

    r = sub.add_parser("rules", help="evaluate a rule file over a table")
    r.add_argument("rules", help="rule file: JSON or YAML")
    r.add_argument("data", help="table to evaluate")
    r.add_argument("-o", "--output", default=None, help="write the per-row segments here")
    r.add_argument("--id-column", default=None, help="column copied into the output")
    r.add_argument("--as-of", default=None, help="date days_since() counts from (default now)")
    _batch_size(r, None)  # RuleSet.evaluate's own choice (segmint.rules.ruleset.auto_batch_size)

    a = sub.add_parser("aggregate", help="per-customer features from an event log")
    a.add_argument("events", help="event log: .arrow, .parquet, folder")
    a.add_argument("-o", "--output", required=True, help="feature table to write")
    a.add_argument("--id-column", default="customer_id", help="the customer id column (default customer_id)")
    a.add_argument("--timestamp", default="ts", help="the event time column (default ts)")
    a.add_argument("--amount", default=None, help="the column of each event's money")
    a.add_argument("--event-type", default=None, help="the column of event types")
    a.add_argument("--qualifying", action="append", default=None, metavar="TYPE",
                   help="event type counted as a purchase (repeatable)")
    a.add_argument("--windows", default=None, help="JSON/YAML file: window name -> spec")
    a.add_argument("--as-of", default=None, help="instant the features describe (default now)")
    a.add_argument("--btyd", choices=["D", "W"], default=None,
                   help="write the BTYD (lifetimes) summary instead, with this period")
    _batch_size(a, EVENT_BATCH_SIZE, "events")

    m = sub.add_parser("rfm", help="RFM scores and the named RFM segments of a feature table")
    m.add_argument("data", help="table with recency_days, frequency, monetary (e.g. from 'segmint aggregate')")
    m.add_argument("-o", "--output", required=True)
    m.add_argument("--bins", type=_positive, default=5)
    m.add_argument("--boundaries", default=None, help="score against saved boundaries (JSON) instead of fitting")
    m.add_argument("--save-boundaries", default=None, help="write the fitted boundaries here (JSON)")

    i = sub.add_parser("info", help="what a data file or a model file holds")
    i.add_argument("path")

    pr = sub.add_parser("profile", help="describe each segment: size, revenue, reach, what sets it apart")
    _data_and_segments(pr)
    _profile_columns(pr)
    pr.add_argument("-o", "--output", default=None,
                    help="also write the profile: .json, .md, or .arrow/.parquet (the tidy table)")
    _batch_size(pr)

    sw = sub.add_parser("sweep", help="fit k-means for a range of k and score each (choosing k)")
    sw.add_argument("data", help="customer table: .arrow, .parquet, folder")
    sw.add_argument("--features", required=True,
                    help="comma-separated numeric columns (standardised), or a JSON/YAML feature spec file")
    sw.add_argument("--ks", default="2-12", help="the k to try: a range 2-12 or a list 2,4,8 (default 2-12)")
    sw.add_argument("--seeds", type=_positive, default=3, help="fits per k, seeds random-state.. (default 3)")
    _random_state(sw)
    sw.add_argument("--fit-rows", type=_positive, default=None, help="fit each k on a sample of this many rows")
    sw.add_argument("-o", "--output", default=None,
                    help="also write the sweep: .json, .md, or .arrow/.parquet (one row per k and seed)")
    _batch_size(sw)

    v = sub.add_parser("validate", help="flag segments too small, too close, unstable or unreachable")
    _data_and_segments(v)
    v.add_argument("--features", default=None, help="comma-separated numeric columns the segments are judged on")
    v.add_argument("--reachable", default=None, help="boolean column: the customer can be contacted (consent)")
    v.add_argument("--min-share", type=float, default=None, help="smallest share of customers worth a segment (default 0.02)")
    v.add_argument("--min-count", type=_positive, default=None, help="smallest number of customers worth a segment (default 1000)")
    _random_state(v)
    v.add_argument("-o", "--output", default=None,
                   help="also write the validation: .json, .md, or .arrow/.parquet (one row per segment)")
    _batch_size(v)

    rp = sub.add_parser("report", help="one self-contained HTML page: profiles, validation, plots")
    _data_and_segments(rp)
    _profile_columns(rp)
    rp.add_argument("-o", "--output", required=True, help="the HTML file to write (e.g. report.html)")
    rp.add_argument("--sweep-features", default=None,
                    help="also sweep k over these comma-separated columns (or a feature spec file)")
    rp.add_argument("--no-validate", action="store_true", help="leave the validation out")
    rp.add_argument("--previous", default=None,
                    help="an earlier (id, segment) snapshot: adds who moved where to the drift section; its "
                         "ids in --id-column (with a model: default the model's), its segments in the column "
                         "named by --segments, or in a column named 'segment' when --segments is a model "
                         "file (.seg)")
    _random_state(rp)
    _batch_size(rp)

    dr = sub.add_parser("drift", help="who moved between segments, and which features and segment sizes drifted")
    dr.add_argument("data", help="the current data: a customer table (with --model) or an (id, segment) snapshot")
    dr.add_argument("--model", default=None,
                    help="a model file (.seg): score the data and compare it with the reference statistics "
                         "saved at fit")
    dr.add_argument("--previous", default=None, help="the earlier (id, segment) snapshot: .arrow, .parquet, folder")
    dr.add_argument("--id-column", default=None, help="the customer id column (default: the model's)")
    dr.add_argument("--segments", default="segment", help="the segment column of the snapshots (default segment)")
    dr.add_argument("--epsilon", type=float, default=None,
                    help="floor of an empty bin's share in the PSI (default 0.0001)")
    dr.add_argument("--alpha", type=float, default=None,
                    help="false-alarm rate of the drift verdict (default 0.05)")
    dr.add_argument("--as-of", default=None, help="date the model's rules count from (default now)")
    dr.add_argument("-o", "--output", default=None, help="also write the result: .json or .md")
    _batch_size(dr)

    rf = sub.add_parser("refit", help="fit a saved model again on new data, keeping its segment names")
    rf.add_argument("model", help="the model file to refresh (never written)")
    rf.add_argument("data", help="the new customer table: .arrow, .parquet, folder")
    rf.add_argument("-o", "--output", required=True, help="the new model file (e.g. model-2026-12.seg)")
    rf.add_argument("--statistics", choices=["frozen", "refit"], default="frozen",
                    help="keep the feature statistics (frozen, default: centers stay comparable) or fit "
                         "them again (refit)")
    rf.add_argument("-k", "--n-clusters", type=_positive, default=None,
                    help="number of clusters (default: the model's)")
    rf.add_argument("--as-of", default=None, help="date the rules count from (default now)")
    rf.add_argument("--random-state", type=int, default=None, help="seed (default: the model's)")
    _batch_size(rf)

    w = sub.add_parser("warmup", help="compile every kernel into Numba's cache (for an image), or check it")
    w.add_argument("--check", action="store_true",
                   help="compile nothing: exit 0 if the cache is warm, 1 if a kernel would compile")
    w.add_argument("--jobs", type=_positive, default=None, metavar="N",
                   help="processes compiling at once on a cold cache (default: the thread count, at most 2)")
    w.add_argument("--bytecode", action="store_true",
                   help="write segmint's bytecode even when PYTHONDONTWRITEBYTECODE (or -B) says not to")

    serve.add_parser(sub, _positive)
    return p


def _data_and_segments(parser):
    parser.add_argument("data", help="customer table: .arrow, .parquet, folder")
    parser.add_argument("--segments", required=True,
                        help="a column of the data, a model file (.seg), a rule file (.json/.yaml) "
                             "or a table of (id, segment) joined on --id-column")
    parser.add_argument("--id-column", default=None, help="the customer id column (joins a table of segments)")
    parser.add_argument("--as-of", default=None, help="date the rules count from (default now)")


def _profile_columns(parser):
    parser.add_argument("--features", default=None,
                        help="comma-separated numeric columns to profile (default: every numeric column)")
    parser.add_argument("--categories", default=None,
                        help="comma-separated string columns to profile (default: every string column)")
    parser.add_argument("--revenue", default=None, help="the money column (revenue per segment)")
    parser.add_argument("--reachable", default=None, help="boolean column: the customer can be contacted (consent)")


def _random_state(parser):
    parser.add_argument("--random-state", type=int, default=0, help="seed of the random numbers (default 0)")


def _batch_size(parser, default=DEFAULT_BATCH_SIZE, what="rows"):
    shown = ("a quarter of a large input's rows per thread, 131,072 to 1,048,576" if default is None
             else default)
    parser.add_argument("--batch-size", type=_positive, default=default,
                        help=f"{what} per batch: memory holds about one (default {shown})")


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


# The one place a command name meets its function: every caller of a command is found here.
COMMANDS = {
    "demo": demo.demo,
    "generate": tables.generate,
    "fit": models.fit,
    "score": models.score,
    "rules": models.rules,
    "aggregate": tables.aggregate,
    "rfm": tables.rfm,
    "info": tables.info,
    "profile": explain.profile,
    "sweep": explain.sweep,
    "validate": explain.validate,
    "report": explain.report,
    "drift": explain.drift,
    "refit": explain.refit,
    "warmup": warmup.run,
    "serve": serve.run,
}


def main(argv=None):
    """Run the command line; returns the exit status (0, 1 a user's error, 130 interrupted).

    A :class:`~segmint.errors.SegmintError` or an ``OSError`` (a file system's answer: no such
    file, permission denied, disk full) is the user's to fix: one line on stderr. Any other
    exception is a bug in segmint and keeps its traceback. A Ctrl-C at any moment ends in one
    line saying which outputs were written, and exit status 130.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``segmint`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
    """
    from .._startup import take_over_interrupts
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
    from ..errors import SegmintError
    from ..io import outputs

    outputs.forget_commits()
    args = None
    try:
        args = _parser().parse_args(argv)
        _run.planned = [path for path, _ in output_paths(args)]
        check_paths(args, output_paths(args))  # before reading or computing anything
        if args.threads is not None:
            from .._parallel import set_num_threads
            set_num_threads(args.threads)
        code = COMMANDS[args.command](args) or 0
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
    from ..io.outputs import was_written
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
