"""``segmint sweep``: fit k-means over a range of k and seeds, score each fit, suggest k."""
import os
import time

from .output import note, read_spec_file

TEXT_SUFFIXES = (".json", ".md")
TABLE_SUFFIXES = (".arrow", ".feather", ".ipc", ".parquet")


def parse_ks(text):
    """``"2-12"`` (a range, both ends included) or ``"2,4,8"`` as a list of int.

    Raises
    ------
    ParameterError
        Naming the text and the expected forms.
    """
    from ..errors import ParameterError
    text = str(text).strip()
    expected = "--ks takes a range like 2-12 or a list like 2,4,8"
    try:
        if "-" in text and "," not in text:
            low, _, high = text.partition("-")
            low, high = int(low.strip()), int(high.strip())
            ks = None
        else:
            ks = [int(c.strip()) for c in text.split(",") if c.strip()]
    except ValueError:
        raise ParameterError(f"{expected}; got {text[:40]!r}") from None
    if ks is None:
        if high < low:
            raise ParameterError(f"{expected}; got {text!r}: the range ends before it starts")
        if high - low > 10_000:
            raise ParameterError(f"{expected}; got {text!r}: more than 10,000 values of k")
        return list(range(low, high + 1))
    if not ks:
        raise ParameterError(f"{expected}; got {text[:40]!r}")
    return ks


def parse_features(text):
    """A feature spec file (JSON/YAML, a list or ``{"features": [...]}``) or a comma list of columns."""
    if os.path.exists(text) or text.endswith((".json", ".yaml", ".yml")):
        spec = read_spec_file(text, "the feature spec")
        if isinstance(spec, dict) and "features" in spec:
            spec = spec["features"]
        return spec
    return [c.strip() for c in text.split(",") if c.strip()]


def _output_kind(path):
    from ..errors import ParameterError
    if path is None:
        return None
    lower = str(path).lower()
    if lower.endswith(TEXT_SUFFIXES):
        return "markdown" if lower.endswith(".md") else "json"
    if lower.endswith(TABLE_SUFFIXES) or lower.endswith(("/", os.sep)):
        return "table"
    raise ParameterError(f"-o {path}: the output must end in {', '.join(TEXT_SUFFIXES + TABLE_SUFFIXES)} "
                         "(or / for a Parquet dataset folder)")


def run(args):
    """``segmint sweep DATA --features a,b|spec.json [--ks 2-12] [--seeds 3] [-o OUT]``.

    Prints the sweep's table and suggestion; ``-o`` writes ``.json`` (the whole result),
    ``.md`` (the summary as Markdown), or ``.arrow``/``.parquet`` (one row per k and seed).
    """
    from ..explain.sweep import sweep_k
    from ..io import write_table
    from ..io.writers import write_text

    kind = _output_kind(args.output)  # before the work: a bad suffix must not cost a sweep
    ks = parse_ks(args.ks)
    spec = parse_features(args.features)
    t0 = time.perf_counter()
    note(args, f"sweeping k = {', '.join(map(str, ks)) if len(ks) <= 4 else f'{ks[0]}..{ks[-1]}'} "
               f"({args.seeds} seed(s) each) on {args.data} ...")
    clusterer = getattr(args, "clusterer", None) or "minibatch"  # not a sweep option today; fit's if added
    sweep = sweep_k(args.data, features=spec, ks=ks, n_seeds=args.seeds, random_state=args.random_state,
                    clusterer=clusterer,
                    fit_rows=args.fit_rows, batch_size=args.batch_size)
    print(sweep)
    dt = time.perf_counter() - t0
    if kind == "json":
        write_text(args.output, sweep.to_json(), inputs=[args.data])
    elif kind == "markdown":
        write_text(args.output, sweep.to_markdown(), inputs=[args.data])
    elif kind == "table":
        write_table(sweep.table, args.output, inputs=[args.data])
    where = f" -> {args.output}" if args.output is not None else ""
    note(args, f"swept {len(ks)} values of k x {args.seeds} seed(s) in {dt:.1f} s{where}")
