"""``segmint report``: one self-contained HTML page about the segments of a customer base.

The profile always; the validation unless ``--no-validate`` (it reuses the profile's pass); the
k sweep only with ``--sweep-features`` (it fits k-means many times: the slow part); a drift
section when ``--segments`` is a model file (features and segment shares against the reference
statistics saved with it) or ``--previous`` names an earlier (id, segment) snapshot (who moved
where). A model saved without reference statistics gets a note in that section, not an error.
"""
import os
import time

from ..errors import ParameterError
from .output import Progress, note

_SUFFIXES = (".html", ".htm")


def _comma_list(text, option):
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise ParameterError(f"{option} names no column: {text!r}")
    return names


def _check_sweep_columns(spec, src, text):
    """Refuse a sweep spec that is not a feature spec or names a column the data lacks."""
    from ..errors import SegmintError, unknown_column
    from ..pipeline.features import FeatureSpec

    try:
        columns = FeatureSpec(spec).input_columns
    except SegmintError:
        raise
    except (TypeError, ValueError, KeyError) as exc:  # a malformed document: name the option
        raise ParameterError(f"--sweep-features {text!r} is not a feature spec: {exc}") from None
    for column in columns:
        if column not in src.column_names:
            raise unknown_column(column, src.column_names, f"the data (--sweep-features {text})")


NO_REFERENCE = ("Drift against the model's fit needs the reference statistics a model saves when it is "
                "fitted; this model file holds none (saved by an older segmint). Refit it (segmint refit "
                "MODEL DATA -o NEW.seg) or fit it again to record them, or pass --previous SNAPSHOT to see "
                "who moved where.")


def _drift_plan(args, src, segments, is_model, id_column, previous):
    """A function computing the report's drift section (a :class:`segmint.monitor.compare.Drift`;
    for a model without reference statistics, one holding only a note saying so), or None (no
    drift section). The arguments are checked here, before any pass, so that a wrong
    ``--previous`` costs no profile."""
    from ..errors import unknown_column
    from ..io import open as open_source

    if not is_model and previous is None:
        return None
    if is_model and previous is None and getattr(segments, "reference_", None) is None:
        from ..monitor.compare import Drift
        return lambda: Drift(n_current=src.num_rows, notes=[NO_REFERENCE])
    if previous is not None and id_column is None:
        raise ParameterError(f"--previous {previous!r} is matched with the current segments on the customer "
                             "id: name the id column with --id-column"
                             + ("" if not is_model else " (the model has none)"))
    if previous is not None and not is_model and segments not in src.column_names:
        raise ParameterError(f"--previous compares an earlier snapshot with the current segments of a model "
                             f"file (.seg) or of a segment column of the data; --segments {args.segments!r} "
                             "is neither")
    # with a model, the previous snapshot's segment column is "segment" (the name the model's
    # scores give it; --segments names the model file then): the --previous help says so
    segment_column = "segment" if is_model else segments
    if previous is not None:
        label = f"the previous snapshot ({previous})" + (
            "; with a model file its segment column is named 'segment'" if is_model else "")
        snapshot = open_source(previous, label=label)
        for column in (id_column, segment_column):
            if column not in snapshot.column_names:
                raise unknown_column(column, snapshot.column_names, snapshot.label)
    batch = {"batch_size": args.batch_size} if getattr(args, "batch_size", None) is not None else {}

    def compute():
        from ..monitor.compare import drift

        if is_model:  # the model scores the data: its segments are the current ones
            return drift(args.data, model=segments, previous=previous, id_column=id_column,
                         as_of=args.as_of, **batch)
        # the current snapshot: the data's id and segment columns
        return drift(src.read([id_column, segments]), previous=previous, id_column=id_column,
                     segments=segments, **batch)
    return compute


def run(args):
    """Run ``segmint report DATA --segments S -o report.html`` with the parsed ``args``."""
    from ..explain.profile import profile
    from ..explain.segments import cli_segments
    from ..io import open as open_source
    from ..io.outputs import check_output
    from ..pipeline import Segmenter
    from ..report import write_report
    from .sweep import parse_features

    output = args.output
    if output is None or not str(output).lower().endswith(_SUFFIXES):
        raise ParameterError(f"-o {output!r}: the report is an HTML file; name it report.html")
    src = open_source(args.data)
    segments = cli_segments(args.segments, src.column_names)
    is_model = isinstance(segments, Segmenter)
    features = _comma_list(args.features, "--features")
    id_column = args.id_column
    if id_column is None and is_model:
        id_column = segments.id_column  # else the model's id column would be profiled as a feature
    sweep_spec = args.sweep_features
    # the same spec forms as ``segmint sweep --features`` (a list or {"features": [...]} file, or
    # a comma list), checked against the data's columns before any pass: a typo must not cost one
    sweep_features = None
    if sweep_spec is not None:
        sweep_features = parse_features(sweep_spec)
        if not sweep_features:
            raise ParameterError(f"--sweep-features names no column: {sweep_spec!r}")
        _check_sweep_columns(sweep_features, src, sweep_spec)
    inputs = [args.data]
    if isinstance(args.segments, str) and args.segments not in src.column_names:
        inputs.append(args.segments)  # a model, rule or assignment file
    if sweep_spec is not None and os.path.exists(sweep_spec):
        inputs.append(sweep_spec)
    previous = getattr(args, "previous", None)  # None: not given (or a namespace without it)
    if previous is not None:
        inputs.append(previous)
    check_output(output, inputs=inputs)  # refuse a bad destination before any pass
    drift_plan = _drift_plan(args, src, segments, is_model, id_column, previous)
    batch = {"batch_size": args.batch_size} if getattr(args, "batch_size", None) is not None else {}
    seed = {"random_state": args.random_state} if getattr(args, "random_state", None) is not None else {}

    t0 = time.perf_counter()
    with Progress(args, src.num_rows, "profiling") as bar:
        prof = profile(src, segments=segments, features=features,
                       categories=_comma_list(args.categories, "--categories"), id_column=id_column,
                       revenue=args.revenue, reachable=args.reachable, as_of=args.as_of, progress=bar,
                       **batch)
    validation = sweep = None
    if not args.no_validate:
        from ..explain.validate import validate
        # only the user's --features: a Segmenter is judged in its own features (validate
        # refuses features= with one), anything else by the same default columns as the profile
        validation = validate(src, segments=segments, features=None if is_model else features, id_column=id_column,
                              reachable=args.reachable, as_of=args.as_of, profile=prof, **batch, **seed)
    if sweep_features is not None:
        from ..explain.sweep import sweep_k
        note(args, "sweeping k (fits k-means for every k and seed)...")
        sweep = sweep_k(src, features=sweep_features, **batch, **seed)
    drift = None
    if drift_plan is not None:
        note(args, "computing the drift section...")
        drift = drift_plan()
    write_report(output, prof, validation=validation, sweep=sweep, drift=drift, inputs=inputs)
    dt = time.perf_counter() - t0
    print(f"wrote the report on {prof.n_rows:,} customers in {len(prof.segments):,} segments"
          + (" with a drift section" if drift is not None else "") + f" to {output} in {dt:.2f} s")
    return 0
