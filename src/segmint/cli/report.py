"""``segmint report``: one self-contained HTML page about the segments of a customer base.

The profile always; the validation unless ``--no-validate`` (it reuses the profile's pass); the
k sweep only with ``--sweep-features`` (it fits k-means many times: the slow part).
"""
import os
import time

from ..errors import ParameterError
from .output import Progress, note, read_spec_file

_SUFFIXES = (".html", ".htm")


def _comma_list(text, option):
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise ParameterError(f"{option} names no column: {text!r}")
    return names


def run(args):
    """Run ``segmint report DATA --segments S -o report.html`` with the parsed ``args``."""
    from ..explain.profile import profile
    from ..explain.segments import cli_segments
    from ..io import open as open_source
    from ..io.outputs import check_output
    from ..report import write_report

    output = args.output
    if output is None or not str(output).lower().endswith(_SUFFIXES):
        raise ParameterError(f"-o {output!r}: the report is an HTML file; name it report.html")
    src = open_source(args.data)
    segments = cli_segments(args.segments, src.column_names)
    sweep_spec = args.sweep_features
    if sweep_spec is not None and os.path.isfile(sweep_spec):
        sweep_features = read_spec_file(sweep_spec, "the sweep's feature spec")
    else:
        sweep_features = _comma_list(sweep_spec, "--sweep-features")
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
        prof = profile(src, segments=segments, features=_comma_list(args.features, "--features"),
                       categories=_comma_list(args.categories, "--categories"), id_column=args.id_column,
                       revenue=args.revenue, reachable=args.reachable, as_of=args.as_of, progress=bar,
                       **batch)
    validation = sweep = None
    if not args.no_validate:
        from ..explain.validate import validate
        validation = validate(src, segments=segments, features=list(prof.features), id_column=args.id_column,
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
