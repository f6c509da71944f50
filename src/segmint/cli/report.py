"""``segmint report``: one self-contained HTML page about the segments of a customer base.

The profile always; the validation unless ``--no-validate`` (it reuses the profile's pass); the
k sweep only with ``--sweep-features`` (it fits k-means many times: the slow part).
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
    check_output(output, inputs=inputs)  # refuse a bad destination before any pass
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
    write_report(output, prof, validation=validation, sweep=sweep, inputs=inputs)
    dt = time.perf_counter() - t0
    print(f"wrote the report on {prof.n_rows:,} customers in {len(prof.segments):,} segments to {output} "
          f"in {dt:.2f} s")
    return 0
