"""``segmint validate``: judge each segment (measurable, substantial, accessible, distinct, stable).

Prints the verdict table and the findings. The exit code is 0 whenever the validation ran, even
with failed checks: it is a report, not a gate (a script reads the verdicts from ``-o x.json``).
Errors in the input (an unknown column, a bad threshold) exit 1 as for every command.
"""
import os

from ..errors import ParameterError
from .paths import input_paths


def _comma_list(text):
    return [c.strip() for c in text.split(",") if c.strip()]


def run(args):
    """Run ``segmint validate`` with the parsed ``args``; returns the exit code (0)."""
    from ..explain.segments import cli_segments
    from ..explain.validate import validate
    from ..io import open as open_source

    if args.output is not None:
        _kind(args.output)  # a bad suffix is refused before any work
    src = open_source(args.data)
    segments = cli_segments(args.segments, src.column_names)
    kwargs = {}
    for name in ("min_share", "min_count", "random_state", "batch_size"):
        value = getattr(args, name, None)
        if value is not None:  # not given: the function's default
            kwargs[name] = value
    features = _comma_list(args.features) if args.features is not None else None
    if features is not None and not features:
        raise ParameterError(f"--features names no column: {args.features!r}")
    validation = validate(src, segments=segments, features=features, id_column=args.id_column,
                          reachable=args.reachable, as_of=args.as_of, **kwargs)
    print(validation)
    if args.output is not None:
        _write(validation, args.output, input_paths(args))
        if not getattr(args, "quiet", False):
            print(f"-> {args.output}")
    return 0


def _write(validation, path, inputs):
    """By suffix: ``.json`` the document, ``.md`` Markdown, ``.arrow``/``.parquet`` the table."""
    from ..io import write_table
    from ..io.writers import write_text

    kind = _kind(path)
    if kind == "json":
        write_text(path, validation.to_json(), inputs=inputs)
    elif kind == "md":
        write_text(path, validation.to_markdown(), inputs=inputs)
    else:
        write_table(validation.table, path, inputs=inputs)


def _kind(path):
    lower = str(path).lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".md"):
        return "md"
    if lower.endswith((".arrow", ".feather", ".ipc", ".parquet", "/", os.sep)):
        return "table"
    raise ParameterError(f"cannot tell what to write to {path!r}: -o ends in .json, .md, .arrow or .parquet")
