"""The commands over rules and models: ``fit``, ``score``, ``rules``."""
import os
import time

from .output import Progress, note, print_counts, read_spec_file


def fit(args):
    """``segmint fit``: fit a Segmenter (rules and/or a clusterer) and save it."""
    from ..cluster import KMeans, MiniBatchKMeans
    from ..pipeline import Segmenter
    from ..rules import RuleSet

    if os.path.exists(args.features) or args.features.endswith((".json", ".yaml", ".yml")):
        spec = read_spec_file(args.features, "the feature spec")
        if isinstance(spec, dict) and "features" in spec:
            spec = spec["features"]
    else:
        spec = [c.strip() for c in args.features.split(",") if c.strip()]
    renames = parse_renames(args.rename)  # before the work: a typo must not cost a fit
    rules = RuleSet.load(args.rules) if args.rules else None
    clusterer = None
    if not args.no_clusters:
        cls = {"minibatch": MiniBatchKMeans, "kmeans": KMeans}[args.clusterer]  # the parser's choices
        clusterer = cls(n_clusters=args.n_clusters, random_state=args.random_state)
    model = Segmenter(features=spec, clusterer=clusterer, rules=rules, cluster_within=args.cluster_within,
                      id_column=args.id_column, fit_rows=args.fit_rows, random_state=args.random_state)
    t0 = time.perf_counter()
    note(args, f"fitting on {args.data} ...")
    model.fit(args.data, as_of=args.as_of, batch_size=args.batch_size)
    if renames:
        model.rename(renames)
    model.save(args.output)
    dt = time.perf_counter() - t0
    n_rows = model.feature_spec_.n_rows_ if model.feature_spec_ else 0
    print(f"fitted {len(model.segment_names_)} segments on {n_rows:,} "
          f"rows ({model.n_rows_fit_:,} clustered) in {dt:.2f} s -> {args.output}")


def parse_renames(items):
    """``--rename ID=NAME`` options as ``{id or name: new name}``."""
    from ..errors import ParameterError
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


def score(args):
    """``segmint score``: score a table with a saved model, streaming to the output."""
    from ..io import open as open_source
    from ..pipeline.segmenter import Segmenter

    model = Segmenter.load(args.model)
    src = open_source(args.data)
    t0 = time.perf_counter()
    with Progress(args, src.num_rows, "scoring") as bar:
        model.score(src, out=args.output, as_of=args.as_of, batch_size=args.batch_size, progress=bar)
    dt = time.perf_counter() - t0
    n = src.num_rows
    print(f"scored {n:,} customers in {dt:.2f} s ({n / max(dt, 1e-9):,.0f} per second) -> {args.output}"
          if n is not None else f"scored in {dt:.2f} s -> {args.output}")


def rules(args):
    """``segmint rules``: evaluate a rule file over a table (counts, and rows when -o)."""
    from ..rules import RuleSet
    ruleset = RuleSet.load(args.rules)
    t0 = time.perf_counter()
    result = ruleset.evaluate(args.data, as_of=args.as_of, id_column=args.id_column, out=args.output,
                              batch_size=args.batch_size)
    dt = time.perf_counter() - t0
    print_counts(result.counts)
    print(f"{result.rows:,} rows in {dt:.2f} s" + (f" -> {args.output}" if args.output else ""))
