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
        ks = [low, high]  # the ends are checked; the range is built after
    if not ks:
        raise ParameterError(f"{expected}; got {text[:40]!r}")
    from ..explain.sweep import MAX_K
    _check_range("--ks holds", min(ks), 2, MAX_K, "choosing k needs at least 2 clusters",
                 f"at most {MAX_K:,} clusters are swept")
    _check_range("--ks holds", max(ks), 2, MAX_K, "choosing k needs at least 2 clusters",
                 f"at most {MAX_K:,} clusters are swept")
    return list(range(low, high + 1)) if "-" in text and "," not in text else ks


def _check_range(what, value, low, high, below, above):
    """Refuse ``value`` outside ``low..high`` naming the option (``what``) and why."""
    from ..errors import ParameterError
    if value < low:
        raise ParameterError(f"{what} {value}: {below}")
    if high is not None and value > high:
        raise ParameterError(f"{what} {value}: {above}")


def check_options(args):
    """The sweep's numeric options in range, named as on the command line (the API would say
    ``n_seeds=``, ``fit_rows=``)."""
    from ..errors import ParameterError
    from ..explain.sweep import MAX_SEEDS
    for option, value, low, high in (("--seeds", args.seeds, 1, MAX_SEEDS), ("--random-state", args.random_state, 0,
                                     None), ("--fit-rows", args.fit_rows, 1, None)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{option} takes a whole number, got {value!r:.40}")
        upper = f" and at most {high:,}" if high is not None else ""
        _check_range(option, value, low, high, f"must be at least {low}{upper}", f"must be at least {low}{upper}")


# API argument names in the sweep's errors that depend on the data, as the CLI's options
_OPTION_NAMES = (("ks=", "--ks"), ("fit_rows=", "--fit-rows "), ("n_seeds", "--seeds"))


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

    from ..errors import ParameterError
    kind = _output_kind(args.output)  # before the work: a bad suffix must not cost a sweep
    ks = parse_ks(args.ks)
    check_options(args)
    spec = parse_features(args.features)
    spec_file = args.features if os.path.exists(args.features) else None
    t0 = time.perf_counter()
    note(args, f"sweeping k = {', '.join(map(str, ks)) if len(ks) <= 4 else f'{ks[0]}..{ks[-1]}'} "
               f"({args.seeds} seed(s) each) on {args.data} ...")
    clusterer = getattr(args, "clusterer", None) or "minibatch"  # not a sweep option today; fit's if added
    try:
        sweep = sweep_k(args.data, features=spec, ks=ks, n_seeds=args.seeds, random_state=args.random_state,
                        clusterer=clusterer, fit_rows=args.fit_rows, batch_size=args.batch_size)
    except ParameterError as e:  # limits known only with the data (k above the rows): the options' names
        message = str(e)
        for api, option in _OPTION_NAMES:
            message = message.replace(api, option)
        raise ParameterError(message) from None
    if spec_file is not None:
        sweep.inputs = (*sweep.inputs, str(spec_file))  # never written over either
    print(sweep)
    dt = time.perf_counter() - t0
    inputs = [args.data, *sweep.inputs]
    if kind == "json":
        write_text(args.output, sweep.to_json(), inputs=inputs)
    elif kind == "markdown":
        write_text(args.output, sweep.to_markdown(), inputs=inputs)
    elif kind == "table":
        write_table(sweep.table, args.output, inputs=inputs)
    where = f" -> {args.output}" if args.output is not None else ""
    note(args, f"swept {len(ks)} values of k x {args.seeds} seed(s) in {dt:.1f} s{where}")
