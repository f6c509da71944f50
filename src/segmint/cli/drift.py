"""``segmint drift``: who moved between segments, and which features and segment shares drifted.

``segmint drift DATA --previous SNAP --id-column ID`` compares two (id, segment) snapshots;
``segmint drift DATA --model M.seg`` scores DATA with the model and compares it with the
reference statistics saved at fit; both together add the migration to the model's view. Prints
the summary; ``-o out.json`` or ``-o out.md`` also writes it. The exit code is 0 whenever the
comparison ran, drift or not: it is a report, not a gate (a script reads the verdicts from the
JSON).
"""
from ..errors import ParameterError
from .paths import input_paths


def run(args):
    """Run ``segmint drift`` with the parsed ``args``; returns the exit code (0)."""
    from ..monitor.compare import drift
    from ..io.writers import write_text

    kind = _kind(args.output) if args.output is not None else None  # a bad suffix before any work
    kwargs = {}
    for name in ("epsilon", "alpha", "batch_size"):
        value = getattr(args, name, None)
        if value is not None:  # not given: the function's default
            kwargs[name] = value
    result = drift(args.data, previous=args.previous, model=args.model, id_column=args.id_column,
                   segments=args.segments, as_of=args.as_of, **kwargs)
    print(result)
    if args.output is not None:
        text = result.to_json() if kind == "json" else result.to_markdown()
        write_text(args.output, text, inputs=input_paths(args))
        if not getattr(args, "quiet", False):
            print(f"-> {args.output}")
    return 0


def _kind(path):
    lower = str(path).lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".md"):
        return "md"
    raise ParameterError(f"cannot tell what to write to {path!r}: -o ends in .json or .md")
