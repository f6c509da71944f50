"""``segmint profile``: describe each segment of a customer base."""
import time

from .output import Progress, note

_TABLE_SUFFIXES = (".arrow", ".feather", ".ipc", ".parquet")


def run(args):
    """``segmint profile DATA --segments S``: print the profile; ``-o`` writes ``.json``, ``.md``,
    or the tidy table (``.arrow``/``.parquet``)."""
    from ..errors import ParameterError
    from ..explain.profile import profile
    from ..explain.segments import cli_segments
    from ..io import open as open_source

    output = getattr(args, "output", None)
    lower = (output or "").lower()
    if output and not lower.endswith((".json", ".md") + _TABLE_SUFFIXES):
        raise ParameterError(f"-o {output!r}: a profile is written as .json, .md, .arrow or .parquet")
    src = open_source(args.data)
    segments = cli_segments(args.segments, src.column_names)
    kwargs = dict(segments=segments, features=_names(args.features), categories=_names(args.categories),
                  id_column=args.id_column, revenue=args.revenue, reachable=args.reachable,
                  as_of=args.as_of)
    if getattr(args, "batch_size", None) is not None:
        kwargs["batch_size"] = args.batch_size
    inputs = [args.data] + ([args.segments] if args.segments not in src.column_names else [])
    if output:  # refuse a bad destination before the pass, not after it
        from ..io.writers import check_table_output
        if lower.endswith(_TABLE_SUFFIXES):
            check_table_output(output, inputs=inputs)
    t0 = time.perf_counter()
    with Progress(args, src.num_rows, "profiling") as bar:
        result = profile(src, progress=bar, **kwargs)
    dt = time.perf_counter() - t0
    print(result)
    if output:
        if lower.endswith(".json"):
            _write_text(output, result.to_json(), inputs)
        elif lower.endswith(".md"):
            _write_text(output, result.to_markdown(), inputs)
        else:
            from ..io import write_table
            write_table(result.table, output, inputs=inputs)
    note(args, f"profiled {result.n_rows:,} customers in {dt:.2f} s" + (f" -> {output}" if output else ""))


def _names(text):
    if text is None:
        return None
    return [c.strip() for c in text.split(",") if c.strip()]


def _write_text(path, text, inputs):
    from ..io.writers import write_text
    write_text(path, text, inputs=inputs)
