"""``segmint.dask.aggregate`` and ``btyd_summary``: event-log features on a Dask cluster.

The method (issue 17): the events are cut into chunks of fixed global row ranges
(:mod:`segmint.dask.chunks`); one task per chunk runs local segmint's own scan
(:class:`segmint.events.aggregate._Scan`) on each segment of its rows and splits the
per-(segment, customer) partial states it gives into ``buckets`` by a hash of the customer id
that is the same in every process (:mod:`kernels.bucket`); one task per bucket folds its
customers' partials in global segment order (chunk order, then segment order within a chunk)
and builds the result columns with local segmint's own column code. Only the
per-customer partials travel between workers, never the events.

Equality with local :func:`segmint.aggregate`
---------------------------------------------
Bit for bit, every column. Floating-point sums are the one place where the order of additions
shows, so local segmint gives every float sum (``monetary``, sum windows, BTYD's first-period
amount) a fixed structure: amounts are added from 0.0 in row order within segments of
:data:`segmint.events.aggregate.SEGMENT_ROWS` (65,536) global rows, and a customer's segment
partials are added to its total in segment order, a left fold from 0.0 (see "Sums by segment"
in :mod:`segmint.events.aggregate`). A chunk here is whole segments; its task scans each of
its segments on its own and sends the per-(segment, customer) partials, unfolded; each bucket
task folds a customer's partials in global segment order, as local does. So the result depends
on nothing about the run: not ``rows_per_chunk``, the number of workers, their threads, the
buckets, nor the input's files, row groups or partitions.
"""
import datetime as _dt
import importlib
import json
import os
from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from .._lazy import lazy_import
from ..errors import DataError, ParameterError
from ..io.writers import ResultWriter
from ..kernels import aggregate as _agg
from ..kernels import bucket as _bucket
from ._inputs import frame_chunk_reads, frame_schema, is_dask_dataframe, partition_table, table_input
from .chunks import ALIGN, CHUNK_ROWS, parquet_chunks, read_chunk

# the module, not the function segmint.events re-exports under the same name
_local = importlib.import_module("..events.aggregate", __package__)
pc = lazy_import("pyarrow.compute")
pq = lazy_import("pyarrow.parquet")

DEFAULT_BUCKETS = 16  # bucket tasks: enough to spread the fold over a few workers
_REPORT_KEY = b"segmint.events"  # schema metadata: the events left out, as local's result says
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def aggregate(events, *, id_column="customer_id", timestamp="ts", amount=None, event_type=None,
              qualifying=None, as_of=None, windows=None, batch_size=_local.EVENT_BATCH_SIZE,
              client=None, rows_per_chunk=CHUNK_ROWS, buckets=None, output=None):
    """:func:`segmint.aggregate` on a Dask cluster: per-customer features from an event log.

    Parameters
    ----------
    events : str, Path, list of them, or dask.dataframe.DataFrame
        A Parquet file, a folder of Parquet files or a list of Parquet files (read as
        :func:`segmint.open` reads them: files in sorted order, strings dictionary-encoded),
        or a dask DataFrame (its partitions, in order).
    id_column, timestamp, amount, event_type, qualifying, as_of, windows, batch_size
        As in :func:`segmint.aggregate` (``batch_size``: events per batch inside a chunk task).
        ``as_of`` defaults to now, read once on the client.
    client : distributed.Client, optional
        Default: the current client (:func:`distributed.get_client`).
    rows_per_chunk : int, default :data:`segmint.dask.chunks.CHUNK_ROWS`
        Events per chunk task, a positive multiple of 65,536 (the segments of local sums, see
        the module notes); results do not depend on it.
    buckets : int, optional
        Bucket tasks that fold the partials (default 16); each customer belongs to one.
    output : str or Path, optional
        A folder to write the result to as a Parquet dataset (one file per bucket, written by
        the workers; the folder appears at once, when all are written). Default: return it.

    Returns
    -------
    pyarrow.Table or str
        Without ``output``: the table local :func:`segmint.aggregate` gives in ``.table``, one
        row per customer sorted by id; its schema metadata ``segmint.events`` holds the events
        left out (JSON: ``n_events``, ``null_id``, ``null_timestamp``, ``after_as_of``). With
        ``output``: its path. The dataset's file ``part-0000b.parquet`` holds bucket ``b``'s
        customers sorted by id (buckets are hash classes: read it whole and sort by id for
        local's order).

    Raises
    ------
    ParameterError, DataError
        As :func:`segmint.aggregate` (checked on the client, before any task runs), and for a
        bad ``rows_per_chunk``, ``buckets`` or events of an unknown kind.
    OutputError
        ``output`` exists and is not a dataset segmint wrote, or lies in an input.
    """
    opts = dict(id_column=id_column, timestamp=timestamp, amount=amount, event_type=event_type,
                qualifying=qualifying, windows=windows)
    return _run(events, opts, as_of, batch_size, client, rows_per_chunk, buckets, output, period=None)


def btyd_summary(events, *, id_column="customer_id", timestamp="ts", amount=None,
                 event_type=None, qualifying=None, as_of=None, period="D",
                 batch_size=_local.EVENT_BATCH_SIZE, client=None, rows_per_chunk=CHUNK_ROWS,
                 buckets=None, output=None):
    """:func:`segmint.btyd_summary` on a Dask cluster (lifetimes' frequency, recency, T and
    monetary value per customer).

    Parameters
    ----------
    events, client, rows_per_chunk, buckets, output
        As in :func:`aggregate`.
    id_column, timestamp, amount, event_type, qualifying, as_of, period, batch_size
        As in :func:`segmint.btyd_summary`.

    Returns
    -------
    pyarrow.Table or str
        As :func:`aggregate`: local's ``.table``, or the path of the dataset written. Each
        chunk also sends its distinct (customer, purchase period) pairs, so that distinct
        periods are counted across chunks.
    """
    key = str(period).strip().upper()
    key = {"DAY": "D", "WEEK": "W"}.get(key, key)
    if key not in _local._PERIODS:
        raise ParameterError(f"period={period!r}: use 'D' (day) or 'W' (week)")
    opts = dict(id_column=id_column, timestamp=timestamp, amount=amount, event_type=event_type,
                qualifying=qualifying, period=key)
    return _run(events, opts, as_of, batch_size, client, rows_per_chunk, buckets, output, period=key)


# -- the client's side ---------------------------------------------------------------------------

def _run(events, opts, as_of, batch_size, client, rows_per_chunk, buckets, output, period):
    import dask
    from distributed import get_client

    n_buckets = _check_buckets(buckets)
    if (isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, (int, np.integer))
            or rows_per_chunk <= 0 or rows_per_chunk % ALIGN):
        raise ParameterError(f"rows_per_chunk must be a positive multiple of {ALIGN:,}, got {rows_per_chunk!r}")
    rows_per_chunk = int(rows_per_chunk)
    _local._check_batch_size(batch_size)
    # now, read once: every task (and the empty template) must see the same instant
    as_of = _EPOCH + _dt.timedelta(microseconds=_local._as_of_us(as_of))
    opts = dict(opts, as_of=as_of, batch_size=batch_size)
    if client is None:
        try:
            client = get_client()
        except ValueError:
            raise ParameterError("segmint.dask needs a Dask client: pass client= or create a "
                                 "distributed.Client first") from None
    reads, schema, inputs = _chunk_reads(events, opts, rows_per_chunk, client)
    local_fn = _local.btyd_summary if period else _local.aggregate
    # local segmint checks every option and column on an empty table of the same schema, and
    # gives the result's schema (the one the buckets' tables are cast to)
    empty = schema.empty_table()
    if is_dask_dataframe(events):  # local's messages name the input ("unknown column ... in ...")
        from ..io.source import open as _open
        empty = _open(empty, label="the dask DataFrame")
    template = local_fn(empty, **opts).table.schema
    writer = None
    if output is not None:
        writer = _DatasetCommit(output, template, inputs)
    try:
        columns, strings = _columns(opts, schema)
        chunk_tasks = [dask.delayed(_chunk_partials, nout=n_buckets, pure=True)(
            read, columns, strings, opts, n_buckets, period) for read in reads]
        folds = [dask.delayed(_fold_bucket, pure=True)(
            [t[b] for t in chunk_tasks], opts, template, period, b,
            None if writer is None else str(writer.part_path(b))) for b in range(n_buckets)]
        results = client.gather(client.compute(folds))  # one graph: each chunk is read once
        if writer is not None:
            writer.n_parts = n_buckets
            writer.close()
            return str(output)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    counts = results[0][1]  # bucket 0 adds up the chunks' reports
    table = pa.concat_tables([r[0] for r in results])
    table = table.take(pc.sort_indices(table[opts["id_column"]])) if table.num_rows else table
    meta = dict(template.metadata or {})
    meta[_REPORT_KEY] = json.dumps(dict(zip(("n_events", "null_id", "null_timestamp", "after_as_of"),
                                            map(int, counts)))).encode()
    return table.replace_schema_metadata(meta)


def _check_buckets(buckets):
    if buckets is None:
        return DEFAULT_BUCKETS
    if isinstance(buckets, bool) or not isinstance(buckets, (int, np.integer)) or not 1 <= buckets <= 65_536:
        raise ParameterError(f"buckets must be a whole number from 1 to 65,536, got {buckets!r}")
    return int(buckets)


def _chunk_reads(events, opts, rows_per_chunk, client):
    """``(one read description per chunk, schema, input paths)``: plain data for Parquet
    (:class:`~segmint.dask.chunks.Chunk`), delayed partition slices for a dask DataFrame."""
    if isinstance(events, (str, os.PathLike)) or (isinstance(events, (list, tuple)) and events
                                                  and all(isinstance(p, (str, os.PathLike)) for p in events)):
        ds = parquet_chunks(list(events) if isinstance(events, tuple) else events, rows_per_chunk)
        paths = events if isinstance(events, (list, tuple)) else [events]
        return [("parquet", c) for c in ds.chunks], ds.schema, [str(p) for p in paths]
    if is_dask_dataframe(events):
        return _frame_reads(events, opts, rows_per_chunk, client)
    raise ParameterError("segmint.dask events are a Parquet file, folder or list of files, or a dask "
                         f"DataFrame; got {type(events).__name__}")


def _frame_reads(frame, opts, rows_per_chunk, client):
    """Chunks of fixed global rows over a dask DataFrame's partitions, in order.

    Only the columns the job reads are computed (a Parquet-backed frame reads only those; the
    others are never converted), typed from ``meta`` or, where ``meta`` says nothing (object
    columns, categoricals of unknown categories), from the data (:func:`_inputs.frame_schema`).
    Each chunk task gets the partitions that overlap its rows and slices them
    (:func:`_inputs.frame_chunk_reads`), so a chunk is the same rows however the frame is
    partitioned. The files a ``dd.read_parquet`` frame reads are the
    job's inputs: ``output=`` may not be one of them, nor hold or lie in one.
    """
    inp = table_input(frame)
    read = _named(opts)
    if any(c not in inp.schema.names for c in read):
        return [], inp.schema, []  # the caller's check on an empty table gives local's message
    schema = frame_schema(inp, read, client)
    schema = pa.schema([schema.field(c) for c in read], metadata=schema.metadata)
    reads = frame_chunk_reads(frame, read, schema, rows_per_chunk, client)
    return reads, schema, [str(p) for p in inp.paths]


def _named(opts):
    """The columns a job reads, in order: id, time, then amount and event type when given."""
    read = [opts["id_column"], opts["timestamp"]] + [opts[c] for c in ("amount", "event_type") if opts.get(c)]
    return list(dict.fromkeys(read))


def _columns(opts, schema):
    read = _named(opts)
    strings = [c for c in read if pa.types.is_string(schema.field(c).type)
               or pa.types.is_large_string(schema.field(c).type)]
    return read, strings


class _DatasetCommit(ResultWriter):
    """segmint's atomic Parquet-dataset writer, its part files written by the bucket tasks.

    The checks (not over an input, not over a folder segmint did not write), the temporary
    folder beside the destination, the marker and the final rename are
    :class:`~segmint.io.writers.ResultWriter`'s; only the writing of parts moves to the workers
    (which must see the same file system as the client).
    """

    n_parts = 0

    def __init__(self, path, schema, inputs):
        super().__init__(path, schema, format="parquet-dataset", inputs=inputs)

    def _new_writer(self):
        return None  # parts come from the workers

    def part_path(self, b):
        return self._tmp / f"part-{b:05d}.parquet"

    def close(self):
        self._part = self.n_parts - 1
        self._writer = SimpleNamespace(close=lambda: None)
        super().close()


# -- the tasks -----------------------------------------------------------------------------------

def _read(read, columns, strings):
    """The chunk's events as a pyarrow Table (on a worker)."""
    if read[0] == "parquet":
        return read_chunk(read[1], columns, strings)
    _, pieces, schema, _ = read
    columns_schema = pa.schema([schema.field(c) for c in columns])
    tables = [partition_table(df.iloc[lo:hi], columns_schema, f"the dask DataFrame, partition {index} of {count}")
              for df, lo, hi, index, count in pieces]
    return pa.concat_tables(tables) if tables else columns_schema.empty_table()


def _chunk_partials(read, columns, strings, opts, n_buckets, period):
    """One chunk's partial states, one per (segment, customer), split into ``n_buckets`` pieces.

    The chunk's rows are whole segments of local segmint's float sums (``rows_per_chunk`` is a
    multiple of :data:`segmint.events.aggregate.SEGMENT_ROWS`); each segment is scanned on its
    own, so its sums are the segment partials local segmint folds, never pre-folded across
    segments here. A piece is a dict of arrays, its rows in segment order (None when no
    customer of the chunk falls in the bucket), plus, last, the chunk's report
    ``(events, null id, null time, after as_of)``.
    """
    table = _read(read, columns, strings)
    kw = {k: v for k, v in opts.items() if k not in ("windows", "period", "batch_size")}
    inp = _local._inputs(table, **kw)
    spec = _local._windows(opts.get("windows"))
    start = read[1].start if read[0] == "parquet" else read[3]
    step = _local.SEGMENT_ROWS
    batch = max(1, min(opts["batch_size"], step))
    states, report = [], np.zeros(4, dtype=np.int64)
    for lo in range(0, max(table.num_rows, 1), step):
        seg = table.slice(lo, step)
        try:
            scan = _local._Scan(_local._inputs(seg, **kw), spec, batch,
                                period=_local._PERIODS[period] if period else None)
        except DataError as exc:  # local's message counts rows from the segment's first row
            raise DataError(f"{exc} (the row counted from global row {start + lo:,}, where the "
                            "segment holding it starts)") from None
        states.append(scan.table(lambda s, rows, ids: _partial_state(s, rows, ids, period)))
        report += np.array([scan.n_events, *scan.report_counts()], dtype=np.int64)
    state = {k: (pa.concat_arrays([st[k] for st in states]) if isinstance(states[0][k], pa.Array)
                 else np.concatenate([st[k] for st in states])) for k in states[0]}
    if period:
        state["pairs"] = _period_pairs(table, inp, period)
    return tuple((piece, report) for piece in _split(state, n_buckets, inp, period))


def _partial_state(scan, rows, ids, period):
    ist, fst = scan.fields(rows)
    state = {"ids": ids, "ist": np.ascontiguousarray(ist.T), "fst": np.ascontiguousarray(fst.T)}
    if period:
        state["first_period"] = scan.flat(scan.first_period, rows)
        state["first_amount"] = scan.flat(scan.first_amount, rows)
    return state


def _period_pairs(table, inp, period):
    """The chunk's distinct (customer, purchase period) pairs, as local BTYD counts them: the
    qualifying events with an id and a time, not after as_of."""
    period_us, shift_us = _local._PERIODS[period]
    ids, ts = table[inp.id_column], table[inp.timestamp]
    keep = pc.and_(pc.is_valid(ids), pc.is_valid(ts))
    unit = _local._TimeUnit.of(inp.scale)
    t = ts.cast(pa.int64()) if not pa.types.is_date32(ts.type) else ts.cast(pa.int32()).cast(pa.int64())
    t = np.asarray(t.fill_null(0)) * unit.mul // unit.div
    keep = np.asarray(keep) & (t <= inp.as_of_us)
    if inp.qualifying:
        types = table[inp.event_type]
        keep &= np.asarray(pc.fill_null(pc.is_in(types.cast(pa.string()) if pa.types.is_dictionary(types.type)
                                                 else types, value_set=pa.array(inp.qualifying)), False))
    mask = pa.array(keep)
    id_col = ids.filter(mask)
    if pa.types.is_dictionary(id_col.type):
        id_col = id_col.cast(pa.string())
    pairs = pa.table({"id": id_col, "p": pa.array((t[keep] + shift_us) // period_us)})
    return pairs.group_by(["id", "p"]).aggregate([])


def _int_keys(ids, flip):
    """Int ids as int64 keys in id order (uint64 with its top bit flipped, as local does)."""
    values = np.asarray(ids.cast(pa.uint64() if flip else pa.int64()))
    return values.view(np.int64) ^ _local._SIGN if flip else values


def _buckets_of(ids, flip, n_buckets):
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    out = np.empty(len(ids), dtype=np.int32)
    if n_buckets == 1:
        out[:] = 0
    elif pa.types.is_integer(ids.type):
        _bucket.int_buckets(_int_keys(ids, flip), n_buckets, out)
    else:
        ids = ids.cast(pa.large_string())
        offsets = np.frombuffer(ids.buffers()[1], dtype=np.int64)[ids.offset:ids.offset + len(ids) + 1]
        data = np.frombuffer(ids.buffers()[2], dtype=np.uint8) if ids.buffers()[2] is not None \
            else np.zeros(0, np.uint8)
        _bucket.string_buckets(offsets, data, n_buckets, out)
    return out


def _split(state, n_buckets, inp, period):
    """The chunk's state cut into buckets: one dict of arrays per bucket (None: no customer)."""
    which = _buckets_of(state["ids"], inp.flip_ids, n_buckets)
    # one sort, not one scan per bucket; as uint16, numpy's stable sort is a radix sort (~3.5x
    # faster than on int32 at a million states) and a stable order is the same whatever the sort
    order = np.argsort(which.astype(np.uint16) if n_buckets <= 1 << 16 else which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(n_buckets + 1))
    if period:  # (a customer with pairs has a state too: a pair is one of its events)
        pair_bucket = _buckets_of(state["pairs"]["id"], inp.flip_ids, n_buckets)
    out = []
    for b in range(n_buckets):
        sel = order[bounds[b]:bounds[b + 1]]
        if sel.size == 0:
            out.append(None)
            continue
        piece = {k: (v.take(pa.array(sel)) if isinstance(v, pa.Array) else v[sel])
                 for k, v in state.items() if k != "pairs"}
        if period:
            piece["pairs"] = state["pairs"].filter(pa.array(pair_bucket == b))
        out.append(piece)
    return out


def _fold_bucket(pieces, opts, template, period, b, path):
    """Fold one bucket's partials, in segment order, into its rows of the result (sorted by id);
    write them to ``path`` when given (then the row count stands for the table). Returns
    ``(table or rows, the chunks' reports added up)``; only bucket 0 adds the reports."""
    states = [p[0] for p in pieces if p[0] is not None]
    report = np.sum([p[1] for p in pieces], axis=0, dtype=np.int64) if b == 0 and pieces else np.zeros(4, np.int64)
    table = _bucket_table(states, opts, template, period)
    if path is None:
        return table, report
    pq.write_table(table, path)
    return table.num_rows, report


def _bucket_table(states, opts, template, period):
    id_column = opts["id_column"]
    id_type = template.field(id_column).type
    states = [s for s in states if len(s["ids"])]
    if not states:
        return template.empty_table()
    ids = pa.concat_arrays([s["ids"].cast(id_type) for s in states])
    ist = np.concatenate([s["ist"] for s in states])
    fst = np.concatenate([s["fst"] for s in states])
    # stable: a customer's partials stay in global segment order (chunks, then their segments)
    if pa.types.is_integer(id_type):
        keys = _int_keys(ids, pa.types.is_uint64(id_type))
        order = np.argsort(keys, kind="stable")
        k = keys[order]
        new = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    else:
        seq = pa.array(np.arange(len(ids)))
        order = np.asarray(pc.sort_indices(pa.table({"id": ids, "seq": seq}),
                                           sort_keys=[("id", "ascending"), ("seq", "ascending")]))
        s = ids.take(pa.array(order))
        new = np.flatnonzero(np.r_[True, np.asarray(pc.not_equal(s[1:], s[:-1]))]) if len(s) > 1 \
            else np.zeros(1, np.int64)
    starts = np.r_[new, len(order)].astype(np.int64)
    groups = new.size
    out_i = np.empty((groups, ist.shape[1]), dtype=np.int64)
    out_f = np.empty((groups, fst.shape[1]), dtype=np.float64)
    _bucket.fold_partials(starts, np.ascontiguousarray(ist[order]), np.ascontiguousarray(fst[order]),
                          out_i, out_f, _agg.I_COUNT, _agg.I_AMOUNT_N, _agg.I_FIRST, _agg.I_LAST,
                          _agg.I_FIRST_Q, _agg.I_LAST_Q)
    out_ids = ids.take(pa.array(order[new]))
    spec = _local._windows(opts.get("windows"))
    inp = SimpleNamespace(as_of_us=_local._as_of_us(opts["as_of"]), id_column=id_column)
    ist_t, fst_t = np.ascontiguousarray(out_i.T), np.ascontiguousarray(out_f.T)
    scan = SimpleNamespace(inp=inp, spec=spec, fields=lambda rows: (ist_t[:, rows], fst_t[:, rows]),
                           flat=lambda a, rows: a.reshape(-1)[rows])
    rows = np.arange(groups)
    if period:
        first_p = np.concatenate([s["first_period"] for s in states])[order]
        first_a = np.concatenate([s["first_amount"] for s in states])[order]
        scan.first_period = np.empty(groups, np.int64)
        scan.first_amount = np.empty(groups, np.float64)
        _bucket.fold_first_period(starts, np.ascontiguousarray(first_p), np.ascontiguousarray(first_a),
                                  scan.first_period, scan.first_amount)
        pairs = pa.concat_tables([s["pairs"] for s in states]).group_by(["id", "p"]).aggregate([])
        per_id = pairs.group_by("id").aggregate([("p", "count")])
        pos = np.asarray(pc.index_in(out_ids.cast(per_id["id"].type), value_set=per_id["id"]).fill_null(-1))
        counts = np.asarray(per_id["p_count"])
        scan.n_periods = np.where(pos >= 0, counts[np.maximum(pos, 0)], 0).astype(np.int64)
        scan.period = _local._PERIODS[period]
        table = _local._columns_btyd(scan, rows, out_ids)
    else:
        table = _local._columns_aggregate(scan, rows, out_ids)
    return table.cast(template)
