"""The commands over tables and event logs: ``generate``, ``aggregate``, ``rfm``, ``info``."""
import os
import time

from .output import print_counts, read_spec_file
from .paths import input_paths


def generate(args):
    """``segmint generate``: a synthetic customer base (and its event log), streamed to files."""
    from ..datasets import DEFAULT_AS_OF, write_customers
    t0 = time.perf_counter()
    written = write_customers(args.output, args.customers, random_state=args.random_state,
                              as_of=args.as_of or DEFAULT_AS_OF, events_path=args.events)
    dt = time.perf_counter() - t0
    print(f"wrote {written['customers']:,} customers to {args.output}"
          + (f" and {written['events']:,} events to {args.events}" if args.events else "")
          + f" in {dt:.2f} s")


def aggregate(args):
    """``segmint aggregate``: per-customer features (or the BTYD summary) of an event log."""
    from ..events import aggregate as aggregate_events
    from ..events import btyd_summary
    from ..io import write_table

    windows = read_spec_file(args.windows, "the windows") if args.windows else None
    kw = dict(id_column=args.id_column, timestamp=args.timestamp, amount=args.amount,
              event_type=args.event_type, qualifying=args.qualifying, as_of=args.as_of,
              batch_size=args.batch_size)
    t0 = time.perf_counter()
    if args.btyd:
        result = btyd_summary(args.events, period=args.btyd, **kw)
    else:
        result = aggregate_events(args.events, windows=windows, **kw)
    write_table(result.table, args.output, inputs=input_paths(args))
    dt = time.perf_counter() - t0
    print(f"{result.n_events:,} events -> {result.table.num_rows:,} customers in {dt:.2f} s -> {args.output}")
    left = [(result.null_id, "with a null customer id"), (result.null_timestamp, "with a null timestamp"),
            (result.after_as_of, "after as_of")]
    for count, why in left:
        if count:
            print(f"  left out {count:,} events {why}")


def rfm(args):
    """``segmint rfm``: RFM scores and the named RFM segments of a feature table."""
    import json

    from ..events import RFMScorer, rfm_segments
    from ..io import open as open_source
    from ..io import write_table

    table = open_source(args.data).read()
    if args.boundaries:
        scorer = RFMScorer.from_dict(read_spec_file(args.boundaries, "the RFM boundaries"))
    else:
        scorer = RFMScorer(bins=args.bins).fit(table)
    scored = scorer.transform(table)
    result = rfm_segments().evaluate(scored)
    scored = scored.append_column("rfm_segment", result.table.column("segment"))
    write_table(scored, args.output, inputs=input_paths(args))
    if args.save_boundaries:
        from ..io.writers import write_text
        write_text(args.save_boundaries, json.dumps(scorer.to_dict(), indent=1), inputs=input_paths(args))
    print_counts(result.counts)
    print(f"{scored.num_rows:,} customers -> {args.output}")


def info(args):
    """``segmint info``: what a data file or a model file holds."""
    import zipfile

    # is_zipfile on a device or FIFO never returns: only a regular file can be a model
    if os.path.isfile(args.path) and zipfile.is_zipfile(args.path):
        from ..pipeline.segmenter import Segmenter
        print(describe_model(Segmenter.load(args.path), args.path))
        return
    from ..io import open as open_source
    with open_source(args.path) as src:
        print(describe(src))


def describe_model(model, path):
    """A human-readable summary of a saved Segmenter."""
    lines = [f"{path}: segmint model, {len(model.segment_names_)} segments"]
    spec = model.feature_spec_
    if spec is not None:
        lines.append(f"  features ({spec.n_features_out_} after transforms, fitted on {spec.n_rows_:,} rows): "
                     + ", ".join(spec.input_columns))
    if model.rules_ is not None:
        lines.append(f"  rules ({model.rules_.mode}):")
        lines += [f"    {s.name}: {s.rule}" for s in model.rules_.segments]
    if model.clusterer_ is not None:
        c = model.clusterer_
        within = f" within {', '.join(model.within_)}" if model.within_ else ""
        lines.append(f"  clusterer: {type(c).__name__}(n_clusters={model.n_clusters_}){within}, "
                     f"fitted on {model.n_rows_fit_:,} rows, dtype {c.cluster_centers_.dtype}")
    lines.append("  segments: " + ", ".join(f"{i}={n}" for i, n in enumerate(model.segment_names_)))
    ref = getattr(model, "reference_", None)
    if ref is None:
        lines.append("  reference statistics: none (saved by an older segmint, or fitted on a stream): "
                     "segmint drift needs --previous, or refit the model")
    else:
        lines.append(f"  reference statistics: {ref.n_rows:,} rows, {len(ref.features)} numeric and "
                     f"{len(ref.categories)} categorical features (for segmint drift)")
    return "\n".join(lines)


def describe(src):
    """A human-readable summary of a source: rows, and per column its kind and type."""
    from ..io.columns import column_kind
    lines = [f"{src.label}: {src.kind}{' (memory-mapped, zero-copy)' if src.zero_copy and src.kind == 'ipc' else ''}, "
             f"{src.num_rows:,} rows x {len(src.column_names)} columns"]
    width = max((len(n) for n in src.column_names), default=0)
    for field in src.schema:
        kind = column_kind(field.type) or "unsupported"
        lines.append(f"  {field.name:<{width}}  {kind:<10}  {field.type}")
    return "\n".join(lines)
