"""``segmint.dask.profile``: segment profiles of data beyond one machine, as mergeable partials.

(The module is not named ``profile``: importing a submodule binds its name on the package, and
``segmint.dask.profile`` would then be this module, not the function, as ``scoring`` holds
``score``.)

How the work splits: the data is cut into chunks of fixed global rows (a Parquet dataset from
its footers, :mod:`segmint.dask.chunks`; a dask DataFrame by slicing its partitions), each a
whole number of local profiles' row blocks (:data:`segmint.explain.profile.BLOCK_ROWS`, 65,536
rows: ``rows_per_chunk`` is a multiple of it). One task per chunk runs local segmint's own
profile pass over its rows (the same code, kernels included) and returns partials, never
combined across chunks:

- each row block's float moments (count, mean as a double-double, M2 per segment), in block order;
- integer counts: rows per segment, quantile-sketch buckets (sparse), and per string column the
  rows of each (segment, value), by the chunk's own codes;
- per string column its values in the order the chunk's rows first show them, and how many were
  met by each block's end (a chunk stops following a column once it has met more than
  :data:`~segmint.explain.profile.MAX_CATEGORIES` values: it will be left out anyway);
- for a segment column, the chunk's own sorted segment values (its codes index them).

The client merges as local does, so the result is the :class:`~segmint.explain.profile.Profile`
local :func:`segmint.profile` gives on the same rows, bit for bit: the block moments are
Chan-merged in global block order (chunk order, then block order), which is local's order; the
string values are numbered in chunk order, which is the order local's pass first meets them in,
and the limit on distinct values is checked at each block's end as local checks it; integer
counts are added (exact in any order) after mapping each chunk's segment and value codes to the
global ones. Nothing depends on the number of workers, their threads, ``rows_per_chunk``, the
files' row groups or the DataFrame's partitions.

The model of ``segments=`` travels as plain data (a Segmenter as its saved bytes, a RuleSet as
its document) and is loaded once per worker process (:mod:`segmint.dask.scoring`); a table of
(id, segment) is read on the client (as local reads it whole) and its id lookup sent to each
worker once.
"""
import importlib
import os
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ..errors import ParameterError
from ..io import DEFAULT_BATCH_SIZE
from ..io import open as open_source
from . import chunks as _chunks
from ._inputs import frame_chunk_reads, frame_schema, is_dask_dataframe, resolve_client, table_input
from .events import _read  # a chunk's rows: a Parquet chunk, or slices of DataFrame partitions
from .scoring import _columns_read, _fixed_as_of, _load, _model_future, _ship

# the modules (segmint.explain re-exports functions of the same names)
_local = importlib.import_module("..explain.profile", __package__)
_segments = importlib.import_module("..explain.segments", __package__)
_sketch = importlib.import_module("..kernels.sketch", __package__)


class _Partial(NamedTuple):
    """One chunk's statistics (see the module notes)."""

    n_rows: int
    names: object  # a segment column: the chunk's sorted segment names (its codes index them)
    values: object  # an integer segment column: the chunk's sorted values (int64)
    blocks: list  # each row block's moments (numeric columns, slots, 4), in block order
    rows: np.ndarray  # (slots,) int64
    sketch_at: np.ndarray  # flat indices of the non-zero counts of the (features, slots, buckets) sketches
    sketch_counts: np.ndarray
    categories: list  # per string column: (values by chunk code, values met at each block end, over, counts)


class _Segments(NamedTuple):
    """How a task finds each row's segment: ``kind`` 'column' (``column``), 'model' (the
    shipped model, scattered) or 'table' (its id lookup, scattered, and the segment names)."""

    kind: str
    column: object
    names: object
    id_column: object
    as_of: object


def profile(data, *, segments, features=None, categories=None, id_column=None, revenue=None,
            reachable=None, top=5, as_of=None, client=None, rows_per_chunk=_chunks.CHUNK_ROWS):
    """:func:`segmint.profile` on a Dask cluster: each segment's statistics, in one pass.

    Parameters
    ----------
    data : str, Path, list of them, or dask.dataframe.DataFrame
        A Parquet file, a folder of Parquet files or a list of Parquet files (read as
        :func:`segmint.open` reads them; every worker must be able to read the paths), or a
        dask DataFrame (its partitions, in order).
    segments : str, Segmenter, RuleSet or table
        As in :func:`segmint.profile`: a column of ``data``, a fitted Segmenter or a RuleSet
        (applied on the workers), or a table of (id, segment) joined on ``id_column`` (read on
        the client, its ids sent to every worker once). Per-row labels (an array beside the
        data) are refused: they cannot follow the rows to the workers; add them as a column.
    features, categories, id_column, revenue, reachable, top
        As in :func:`segmint.profile` (the same defaults, limits and notes).
    as_of : datetime, date or ISO string, optional
        For rules using dates; default now (UTC), read once on the client.
    client : distributed.Client, optional
        Default: the current client.
    rows_per_chunk : int, default :data:`segmint.dask.chunks.CHUNK_ROWS`
        Rows per task, a positive multiple of 65,536; the result does not depend on it.

    Returns
    -------
    segmint.explain.profile.Profile
        The profile local :func:`segmint.profile` gives on the same rows, bit for bit (with
        ``as_of`` fixed alike).

    Raises
    ------
    ParameterError, UnknownColumnError, UnsupportedTypeError
        Bad parameters or columns, checked on the client before any task runs.
    DataError
        As local: e.g. a segment column with too many values, a named string column with too
        many distinct values.
    """
    from .._estimator import check_positive_int

    top = check_positive_int("top", top)
    if (isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, (int, np.integer))
            or rows_per_chunk <= 0 or rows_per_chunk % _chunks.ALIGN):
        raise ParameterError(f"rows_per_chunk must be a positive multiple of {_chunks.ALIGN:,}, "
                             f"got {rows_per_chunk!r}")
    if isinstance(segments, (np.ndarray, pa.Array, pa.ChunkedArray, list)):
        raise ParameterError("segments= as per-row labels (an array beside the data) cannot follow the "
                             "rows to the Dask workers: add them to the data as a column and pass its name")
    client = resolve_client(client)
    source, schema, label, inputs = _data_input(data, client)
    as_of = _fixed_as_of(as_of)
    # local's checks (columns, types, the model's fit, a table of segments) on no rows, before
    # any task: the same errors, and the plan every task follows
    seg = _segments.resolve_segments(open_source(schema.empty_table(), label=label), segments,
                                     id_column=id_column, as_of=as_of)
    plan = _local._Plan(seg, features, categories, id_column, revenue, reachable)
    how, payload, needed = _how(seg, schema, id_column, as_of)
    columns = list(dict.fromkeys(plan.columns + needed + ([id_column] if id_column else [])))
    strings = [c for c in columns if _is_string(schema.field(c).type)]
    reads = _chunk_reads(source, schema, columns, int(rows_per_chunk), client)
    tasks = []
    if reads:
        import dask
        if how.kind == "model":  # a task's result, fetched once per worker (and recomputed if lost)
            payload = _model_future(client, payload)
        elif payload is not None:
            payload = client.submit(_given, payload, pure=False)
        tasks = [dask.delayed(_chunk_partial, pure=True)(read, columns, strings, plan, how, payload, label)
                 for read in reads]
    parts = client.gather(client.compute(tasks)) if tasks else []
    acc, names = _merge(parts, plan, seg, how)
    built = SimpleNamespace(names=names, multi=seg.multi, segmenter=seg.segmenter)
    return _local._build(plan, built, acc, top, list(inputs) + [p for p in seg.paths if p is not None])


# -- on the client --------------------------------------------------------------------------------
def _is_string(t):
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _data_input(data, client):
    """``(what the chunks are cut from, schema, label, input paths)``: a Parquet dataset's
    chunks (from the footers), or a dask DataFrame's input with its columns typed (those its
    ``meta`` leaves untyped, from the data: :func:`segmint.dask._inputs.frame_schema`)."""
    if is_dask_dataframe(data):
        inp = table_input(data)
        return inp, frame_schema(inp, inp.schema.names, client), inp.label, tuple(str(p) for p in inp.paths)
    if isinstance(data, (str, os.PathLike)) or (isinstance(data, (list, tuple)) and data
                                                and all(isinstance(p, (str, os.PathLike)) for p in data)):
        given = list(data) if isinstance(data, (list, tuple)) else data
        ds = _chunks.parquet_chunks(given, _chunks.ALIGN)  # the footers checked, the schema as segmint reads it
        if isinstance(given, list):
            paths = tuple(str(p) for p in given)
        else:  # the paths local segmint's source names (the folder and its files)
            src = open_source(given)
            paths = tuple(str(p) for p in src.paths)
            src.close()
        return given, ds.schema, ds.label, paths
    raise ParameterError("segmint.dask.profile reads a Parquet file, a folder of them, a list of them or a "
                         f"dask DataFrame, got {type(data).__name__}")


def _chunk_reads(source, schema, columns, rows_per_chunk, client):
    """One read per chunk of ``rows_per_chunk`` global rows: a Parquet chunk, or the slices of
    the DataFrame partitions (of ``columns`` only) that hold its rows
    (:func:`segmint.dask._inputs.frame_chunk_reads`)."""
    if not hasattr(source, "frame"):
        return [("parquet", c) for c in _chunks.parquet_chunks(source, rows_per_chunk).chunks]
    return frame_chunk_reads(source.frame, columns, schema, rows_per_chunk, client)


def _how(seg, schema, id_column, as_of):
    """``(_Segments, what the workers need besides the rows (the shipped model, a table's id
    lookup) or None, the columns the segments read)``."""
    if seg.kind == "column":
        return _Segments("column", seg.column, None, id_column, as_of), None, [seg.column]
    if seg.kind == "table":
        return _Segments("table", None, list(seg.names), id_column, as_of), seg._lookup, [id_column]
    model = seg.segmenter if seg.segmenter is not None else seg.ruleset
    shipped, _ = _ship(model)
    needed = _columns_read(model, schema, SimpleNamespace(id_column=None, columns=()))
    return _Segments("model", None, None, id_column, as_of), shipped, needed


def _merge(parts, plan, seg, how):
    """The chunks' partials merged as local merges its pass: an accumulator for
    :func:`segmint.explain.profile._build`, and the segment names."""
    names = list(seg.names)
    slot_maps = [None] * len(parts)
    if how.kind == "column":  # the global names: every chunk's, sorted as local sorts them
        lookup = seg._lookup
        if lookup._values is not None:
            values = np.unique(np.concatenate([np.zeros(0, np.int64)] + [p.values for p in parts]))
            names = [str(v) for v in values]
        elif not lookup._boolean:
            names = sorted(set().union(*[p.names for p in parts]))
        _segments._check_count(len(names), how.column, seg.source)
        where = {name: i for i, name in enumerate(names)}
        slot_maps = [np.array([where[name] for name in p.names] + [len(names)], dtype=np.intp) for p in parts]
    n_slots = len(names) + 1
    acc = _local._Accumulator(plan, len(names), n_threads=1)  # (local's check of the sketches' memory, too)

    def slots(a, i, axis):  # chunk i's slots placed at their global positions
        if slot_maps[i] is None:
            return a
        shape = list(a.shape)
        shape[axis] = n_slots
        out = np.zeros(shape, dtype=a.dtype)
        index = [slice(None)] * a.ndim
        index[axis] = slot_maps[i]
        out[tuple(index)] = a
        return out

    for i, part in enumerate(parts):  # chunk order, then block order: local's block order
        for block in part.blocks:
            acc._add_block(slots(block, i, 1))
    acc.n_rows = sum(p.n_rows for p in parts)
    state = acc._acquire()
    try:
        buckets = _sketch.N_BUCKETS
        for i, part in enumerate(parts):
            state.rows += slots(part.rows, i, 0)
            n_local = len(part.rows)
            f, rest = np.divmod(part.sketch_at, n_local * buckets)
            s, b = np.divmod(rest, buckets)
            if slot_maps[i] is not None:
                s = slot_maps[i][s]
            state.sketches.reshape(-1)[(f * n_slots + s) * buckets + b] += part.sketch_counts
        for j in range(len(plan.categories)):
            state.categories[j] = _merge_category(acc, j, parts, slot_maps, n_slots)
    finally:
        acc._release(state)
    return acc, names


def _merge_category(acc, j, parts, slot_maps, n_slots):
    """String column ``j``: its values numbered in chunk order (local's order of first
    appearance), the limit checked at each block's end as local checks it, and the counts
    added by global codes; None when the column is left out (or local's error raised)."""
    seen = acc.seen[j]
    index, strings = {}, []
    for part in parts:
        values, ends, _, _ = part.categories[j]
        values = values.to_pylist()
        start = 0
        for end in ends:
            for v in values[start:end]:
                if v not in index:
                    index[v] = len(strings)
                    strings.append(v)
            start = end
            seen.n = len(strings)
            seen.block_end()
            if seen.over:
                acc._too_many(j)  # local's rule: refused when named, else left out with a note
                return None
        # (a chunk that stopped following the column has met the limit by its last end, above)
    seen.dictionary = pa.array(strings, pa.string())
    seen.seen = np.arange(len(strings), dtype=np.int32)
    seen.n = len(strings)
    counts = np.zeros((n_slots, len(strings) + 1), dtype=np.int64)
    for i, part in enumerate(parts):
        values, _, _, chunk_counts = part.categories[j]
        columns = np.array([0] + [1 + index[v] for v in values.to_pylist()], dtype=np.intp)
        rows = slot_maps[i] if slot_maps[i] is not None else np.arange(n_slots)
        counts[np.ix_(rows, columns)] += chunk_counts[:, :len(columns)]
    return counts


# -- on a worker ----------------------------------------------------------------------------------
def _given(data):
    """Task: ``data`` as given (a table of segments' id lookup: one task the workers fetch
    once, which the scheduler computes again if the worker holding it is lost)."""
    return data


def _chunk_partial(read, columns, strings, plan, how, payload, label):
    """Task: one chunk's :class:`_Partial`, from local segmint's profile pass over its rows."""
    table = _read(read, columns, strings)
    src = open_source(table, label=label)
    if how.kind == "column":
        seg = _segments._column_segments(src, how.column, how.id_column)
    elif how.kind == "table":
        seg = _segments.SegmentSource(src, "table", how.names, id_column=how.id_column, lookup=payload)
    else:
        seg = _segments.resolve_segments(src, _load(payload), id_column=how.id_column, as_of=how.as_of)
    # one thread: the cluster runs chunks side by side (the bits do not depend on it)
    acc = _local._pass(seg, plan, DEFAULT_BATCH_SIZE, n_threads=1, keep_blocks=True)
    rows, sketches, cats = acc.totals()
    flat = sketches.reshape(-1)
    at = np.flatnonzero(flat)
    categories = [(fs.strings(), list(fs.ends), fs.over, counts) for fs, counts in zip(acc.seen, cats)]
    lookup = getattr(seg, "_lookup", None)
    return _Partial(acc.n_rows, list(seg.names) if how.kind == "column" else None,
                    getattr(lookup, "_values", None) if how.kind == "column" else None,
                    acc.blocks, rows, at, flat[at], categories)
