"""The migration matrix of two assignment snapshots: who moved from which segment to which.

``migration(previous, current, id_column=...)`` matches two (id, segment) tables on the customer
id and counts, for every pair of segments, the customers who were in the first and are now in
the second. Three labels are segmint's own and never a segment's name:

- :data:`NEW` ``"(new)"``: the from-label of customers only in the current snapshot (the last
  row of :attr:`Migration.matrix`);
- :data:`DEPARTED` ``"(departed)"``: the to-label of customers only in the previous snapshot
  (the last column);
- :data:`NONE` ``"(none)"``: the segment of a row whose segment is null. A customer without a
  segment is still a customer (unassigned, or not scored), so it is counted as its own group
  rather than dropped or refused.

A snapshot whose segment column holds one of these three texts is refused (the output could not
tell them apart). Ids are refused when null (with their count) or repeated within a snapshot
(naming one repeated id).

Both axes of the matrix list the same segments in one order (the union of both snapshots;
integer segments in numeric order), so its diagonal is "stayed in their segment".

The join: integer ids (any width; uint64 ids keep their bits as int64 keys, only equality
matters) are addressed directly when
they are dense (their span at most :data:`DENSE_SPAN` times the rows), else numbered first
through hash partitions; string ids are dictionary-encoded against one dictionary for both snapshots, which
makes them dense integers. Both ways end in the kernels of :mod:`segmint.kernels.join`: each
snapshot's segments scattered into one slot per id (the two snapshots on two threads), then
the slots of both walked in order and counted pair by pair, in chunks.
"""
import json
import re

import numpy as np
import pyarrow as pa

from .._lazy import lazy_import
from .._parallel import chunk_bounds, run_chunks
from ..explain.segments import MAX_SEGMENTS
from ..errors import DataError, ParameterError, UnsupportedTypeError, unknown_column
from ..io.columns import read_only
from ..io.source import open as open_source
from ..io.writers import write_text
from ..kernels import join as _join

pc = lazy_import("pyarrow.compute")  # on first use: see segmint._lazy

NEW = "(new)"
DEPARTED = "(departed)"
NONE = "(none)"
RESERVED = (NEW, DEPARTED, NONE)

# Direct addressing costs 4 bytes per id of the span: allowed while the span is at most this
# many times the rows of both snapshots, else ids are numbered through a hash table first.
DENSE_SPAN = 4
# Sparse ids: up to 2^P_BITS hash partitions (about 4,096 ids or more each: more partitions
# scatter slower, fewer outgrow the cache), numbered in chunks
# of partitions.
P_BITS = 9
PARTITIONS_PER_CHUNK = 64
# The longest probe of the hash table (load at most 1/2: random ids never come close) before
# the ids are taken as chosen to collide and numbered by a sort instead (np.unique).
MAX_PROBE = 128
# Slots counted per chunk of the crosstab (chunks depend on the id span only).
CHUNK_SLOTS = 1 << 20
# A segment whose share of customers moved by less than this (absolute) gets no finding and the
# status "about the same". Compared after rounding to the 0.1 points shown (share_moved), so
# the words always agree with the figures printed beside them.
MIN_SHARE_CHANGE = 0.005
ABOUT_THE_SAME = "about the same"

_INT64_MAX = np.iinfo(np.int64).max

SIZES_SCHEMA = pa.schema([
    ("segment", pa.string()),
    ("previous_count", pa.int64()),
    ("previous_share", pa.float64()),
    ("current_count", pa.int64()),
    ("current_share", pa.float64()),
    ("count_change", pa.int64()),
    ("change", pa.float64()),
    ("status", pa.string()),
])
TABLE_SCHEMA = pa.schema([
    ("from_segment", pa.string()),
    ("to_segment", pa.string()),
    ("count", pa.int64()),
    ("share_of_from", pa.float64()),
])


def migration(previous, current, *, id_column, segments="segment"):
    """Who moved from which segment to which between two assignment snapshots.

    Parameters
    ----------
    previous, current : anything :func:`segmint.open` accepts
        The older and the newer snapshot, each holding ``id_column`` and ``segments``.
    id_column : str
        The customer id column of both: integers of any width or strings (dictionary-encoded
        or not); both snapshots the same kind. uint64 ids beyond 2^63 - 1 are matched with
        unsigned ids only.
    segments : str, default ``"segment"``
        The segment column of both: strings, dictionary strings or integers (named by their
        decimal text). A null segment counts as :data:`NONE`. Here ``segments=`` is always a
        column name (the first of the forms it takes in :func:`segmint.profile` and
        :func:`segmint.validate`): a snapshot is already an (id, segment) table; to compare with
        a model's assignments, use :func:`segmint.monitor.compare.drift` with ``model=``.

    Returns
    -------
    Migration

    Raises
    ------
    ParameterError
        ``id_column`` or ``segments`` is not a column name (a non-empty str).
    UnknownColumnError
        A snapshot lacks ``id_column`` or ``segments``.
    UnsupportedTypeError
        An id or segment column of another type.
    DataError
        Null ids (with their count), an id twice in one snapshot (naming it and the
        snapshot), integer ids in one snapshot and strings in the other, uint64 ids beyond
        2^63 - 1 beside signed ids, or a segment named like one of :data:`RESERVED`.
    """
    for name, value in (("id_column", id_column), ("segments", segments)):
        if not isinstance(value, str) or not value:
            raise ParameterError(f"{name} must be the name of a column (a non-empty str), got "
                                 f"{type(value).__name__} {repr(value)[:60]}")
    prev = _Snapshot.read(previous, "the previous snapshot", id_column, segments)
    cur = _Snapshot.read(current, "the current snapshot", id_column, segments)
    return _from_snapshots(prev, cur, id_column)


def _from_snapshots(prev, cur, id_column, order=()):
    """The :class:`Migration` of two snapshots already read (:meth:`_Snapshot.read`): lets
    :func:`segmint.drift` check the previous snapshot before its scoring pass. ``order``: names
    that come first, in this order (a model's segments, so that its tables agree), when present."""
    prev_keys, cur_keys, base, span = _join_keys(prev, cur, id_column)

    matrix = _crosstab(prev, prev_keys, cur, cur_keys, base, span, id_column)
    names = _union_names(prev, cur)
    if order:
        present = set(names)
        first = [n for n in dict.fromkeys(order) if n in present]
        names = first + [n for n in names if n not in set(first)]
    return Migration(_on_union(matrix, prev.names, cur.names, names), names, names,
                     id_column=id_column, inputs=tuple(prev.paths) + tuple(cur.paths))


_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def _union_names(prev, cur):
    """The segments of either snapshot in one order for both axes: numeric order of integer
    names when either snapshot's segments are integers (so ``"2"`` precedes ``"10"`` on both
    sides), else text order; :data:`NONE` last."""
    names = (set(prev.names) | set(cur.names)) - {NONE}
    if prev.numeric or cur.numeric:
        def key(name):
            return (0, int(name), name) if _INTEGER_TEXT.fullmatch(name) else (1, 0, name)
        ordered = sorted(names, key=key)
    else:
        ordered = sorted(names)
    return ordered + ([NONE] if NONE in prev.names or NONE in cur.names else [])


def _on_union(matrix, from_names, to_names, names):
    """``matrix`` (rows ``from_names`` + new, columns ``to_names`` + departed) spread over the
    square of ``names``: zero rows and columns for a segment absent from one snapshot."""
    position = {name: i for i, name in enumerate(names)}
    rows = [position[n] for n in from_names] + [len(names)]
    cols = [position[n] for n in to_names] + [len(names)]
    square = np.zeros((len(names) + 1, len(names) + 1), dtype=np.int64)
    square[np.ix_(rows, cols)] = matrix
    return square


def _crosstab(prev, prev_keys, cur, cur_keys, base, span, id_column):
    """The (n_from + 1, n_to + 1) pair counts: both snapshots scattered into slots side by
    side, then the slots counted in fixed chunks whose matrices are added in chunk order."""
    slots = [np.zeros(span, dtype=np.int32), np.zeros(span, dtype=np.int32)]
    jobs = [(prev, prev_keys, slots[0]), (cur, cur_keys, slots[1])]
    # keys and codes are zero-copy Arrow views (read-only) or computed (writable) depending on
    # the ids: read-only views of both always, so scatter_codes compiles once, not per mix
    rows = run_chunks(lambda job: _join.scatter_codes(read_only(job[1]), base, read_only(job[0].codes),
                                                      job[2]), jobs)
    for (snap, _, _), row in zip(jobs, rows):
        if row >= 0:
            raise snap.duplicate(row, id_column)
    shape = (len(prev.names) + 1, len(cur.names) + 1)

    def count(bounds):
        part = np.zeros(shape, dtype=np.int64)
        _join.crosstab_slots(slots[0], slots[1], bounds[0], bounds[1], part)
        return part

    matrix = np.zeros(shape, dtype=np.int64)
    # a wide matrix gets longer chunks, so the partial matrices stay few
    chunk = max(CHUNK_SLOTS, 16 * shape[0] * shape[1])
    for part in run_chunks(count, chunk_bounds(span, chunk)):
        matrix += part
    return matrix


class _Snapshot:
    """One snapshot read for the join: its ids (Arrow), segment names and codes, paths."""

    def __init__(self, label, ids, names, codes, paths, numeric=False):
        self.label, self.ids, self.names, self.codes, self.paths = label, ids, names, codes, paths
        self.numeric = numeric  # integer segments, named by their decimal text

    @classmethod
    def read(cls, source, label, id_column, segments):
        src = open_source(source, label=label)
        for column in (id_column, segments):
            if column not in src.column_names:
                raise unknown_column(column, src.column_names, src.label)
        if id_column == segments:
            raise DataError(f"id_column and segments both name {id_column!r}: the snapshot needs "
                            "an id column and a segment column")
        table = src.read([id_column, segments]).unify_dictionaries()
        ids = table.column(id_column).combine_chunks()
        if ids.null_count:
            raise DataError(f"{src.label} has {ids.null_count:,} null ids in column {id_column!r}: "
                            "every customer needs an id to be matched")
        values = table.column(segments).combine_chunks()
        names, codes = _segment_codes(values, segments, src.label)
        kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
        return cls(src.label, ids, names, codes, src.paths, numeric=pa.types.is_integer(kind))

    def duplicate(self, row, id_column):
        value = self.ids[int(row)].as_py()
        return DataError(f"{self.label} holds {id_column}={value!r} more than once: a customer is "
                         "in one segment per snapshot")


def _segment_codes(values, column, label):
    """Names of the segments in ``values`` (sorted; :data:`NONE` last if any is null) and the
    int32 code of each row."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        if not (_is_string(kind.value_type) or pa.types.is_integer(kind.value_type)):
            raise UnsupportedTypeError(f"segment column {column!r} of {label} is {kind}: segments are "
                                       "strings, dictionary strings or integers")
        if pa.types.is_integer(kind.value_type) or values.dictionary.null_count:
            # integer names sort as numbers; a null in the dictionary is a null segment
            return _segment_codes(values.cast(kind.value_type), column, label)
        indices = values.indices
        indices = (indices.fill_null(0) if values.null_count else indices).to_numpy(zero_copy_only=False)
        dictionary = values.dictionary.to_pylist()
        valid_indices = indices[np.asarray(values.is_valid())] if values.null_count else indices
        used = np.flatnonzero(np.bincount(valid_indices, minlength=len(dictionary)))
        names = sorted({dictionary[i] for i in used})
        position = {name: i for i, name in enumerate(names)}
        remap = np.array([position.get(text, 0) for text in dictionary] or [0], dtype=np.int32)
        if np.array_equal(remap, np.arange(len(dictionary))):
            codes = indices  # sorted, distinct and all used: the indices are the codes
        else:
            codes = remap[indices] if len(indices) else np.zeros(0, np.int32)
    elif _is_string(kind):
        return _segment_codes(pc.dictionary_encode(values), column, label)
    elif pa.types.is_integer(kind):
        numbers = values.fill_null(0).to_numpy(zero_copy_only=False)
        valid = np.asarray(values.is_valid()) if values.null_count else None
        present = numbers[valid] if valid is not None else numbers
        if pa.types.is_uint64(kind) and present.size and present.max() > _INT64_MAX:
            raise DataError(f"segment column {column!r} of {label} holds {int(present.max()):,}, "
                            "beyond the int64 range segment values are read in")
        numbers = numbers.astype(np.int64, copy=False)
        distinct, inverse = _distinct_integers(numbers, present.astype(np.int64, copy=False))
        names = [str(v) for v in distinct]
        codes = inverse
    else:
        raise UnsupportedTypeError(f"segment column {column!r} of {label} is {kind}: segments are "
                                   "strings, dictionary strings or integers")
    if len(names) > MAX_SEGMENTS:
        raise DataError(f"segment column {column!r} of {label} has {len(names):,} distinct values, more "
                        f"than {MAX_SEGMENTS:,}: is it a segment column?")
    clash = sorted(set(names) & set(RESERVED))
    if clash:
        raise DataError(f"segment column {column!r} of {label} holds a segment named {clash[0]!r}, "
                        f"a label migration reserves ({', '.join(RESERVED)}): rename that segment")
    codes = np.asarray(codes, dtype=np.int32)
    if values.null_count:
        codes = codes.copy() if not codes.flags.writeable else codes
        codes[~np.asarray(values.is_valid())] = len(names)
        names = names + [NONE]
    return names, codes


def _distinct_integers(numbers, present):
    """Sorted distinct values of ``present`` and the position of each of ``numbers`` among
    them (rows not in ``present``, nulls, get any position: the caller overwrites them)."""
    if present.size == 0:
        return np.zeros(0, np.int64), np.zeros(numbers.size, np.int32)
    lo, hi = int(present.min()), int(present.max())
    if hi - lo < (1 << 20):  # a lookup table: no sort of the rows
        seen = np.bincount(present - lo, minlength=hi - lo + 1) > 0
        distinct = np.flatnonzero(seen) + lo
        lookup = np.cumsum(seen, dtype=np.int32) - 1
        return distinct, lookup[np.clip(numbers - lo, 0, hi - lo)]
    distinct = np.unique(present)
    return distinct, np.searchsorted(distinct, numbers).clip(0, len(distinct) - 1)


def _is_string(kind):
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _join_keys(prev, cur, id_column):
    """Both snapshots' ids as int64 keys, their base and span: ``key - base`` in ``0..span-1``,
    one id, one slot."""
    a, b = _decoded(prev.ids), _decoded(cur.ids)
    for ids, snap in ((a, prev), (b, cur)):
        if not (pa.types.is_integer(ids.type) or _is_string(ids.type)):
            raise UnsupportedTypeError(f"id column {id_column!r} of {snap.label} is {snap.ids.type}: "
                                       "ids are integers or strings")
    if pa.types.is_integer(a.type) and pa.types.is_integer(b.type):
        x, y = _int64_ids(a, b, prev.label, cur.label, id_column)
        if x.size + y.size == 0:
            return x, y, 0, 0
        lo = min(int(x.min()) if x.size else _INT64_MAX, int(y.min()) if y.size else _INT64_MAX)
        hi = max(int(x.max()) if x.size else -_INT64_MAX, int(y.max()) if y.size else -_INT64_MAX)
        span = hi - lo + 1
        if span <= DENSE_SPAN * (x.size + y.size) + 1024:
            return x, y, lo, span
        return _numbered(x, y)
    if pa.types.is_integer(a.type) or pa.types.is_integer(b.type):
        kinds = f"{a.type} in {prev.label} but {b.type} in {cur.label}"
        raise DataError(f"id column {id_column!r} is {kinds}: ids are matched only integers with "
                        "integers or strings with strings")
    both = pa.chunked_array([a.cast(pa.large_string()), b.cast(pa.large_string())]).combine_chunks()
    codes = pc.dictionary_encode(both).indices.to_numpy().astype(np.int64)
    return codes[:len(a)], codes[len(a):], 0, int(codes.max()) + 1 if codes.size else 0


def _decoded(ids):
    """Dictionary-encoded ids as their values (matched by value, whatever their dictionaries)."""
    return ids.cast(ids.type.value_type) if pa.types.is_dictionary(ids.type) else ids


def _int64_ids(a, b, a_label, b_label, id_column):
    """Both snapshots' integer ids as int64 keys, equal exactly where the ids are equal.

    Only equality matters, so uint64 ids keep their bits (those beyond the int64 range become
    negative keys). That is safe when both snapshots are unsigned: the other's values are then
    non-negative, or uint64 with the same bits. Signed ids beside uint64 ids beyond the int64
    range are refused: a negative id and a large unsigned one could share their bits."""
    x, y = a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False)
    unsigned = [pa.types.is_unsigned_integer(t) for t in (a.type, b.type)]
    for values, label, other, other_unsigned in ((x, a_label, b, unsigned[1]), (y, b_label, a, unsigned[0])):
        if values.dtype == np.uint64 and values.size and not other_unsigned:
            top = int(values.max())
            if top > _INT64_MAX:
                raise DataError(f"{label} holds {id_column}={top} (uint64, beyond 2^63 - 1) while the "
                                f"other snapshot's ids are {other.type}: signed and unsigned ids are "
                                "matched only within the int64 range; give both snapshots unsigned "
                                "(or both signed) ids")
    return tuple(v.view(np.int64) if v.dtype == np.uint64 else v.astype(np.int64, copy=False)
                 for v in (x, y))


def _numbered(x, y):
    """Sparse ids numbered by hash partitions (see :mod:`segmint.kernels.join`): one number per
    distinct id, in ``0..rows-1``, the same for both snapshots and any thread count."""
    ids = np.concatenate([x, y])
    rows = ids.size
    p_bits = min(P_BITS, max(1, (rows // 4096).bit_length()))
    p_shift = 64 - p_bits
    counts = np.zeros(1 << p_bits, dtype=np.int64)
    _join.partition_count(ids, p_shift, counts)
    starts = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    part_ids, part_rows = np.empty(rows, np.int64), np.empty(rows, np.int64)
    _join.partition_scatter(ids, p_shift, starts[:-1].copy(), part_ids, part_rows)
    del ids
    out = np.empty(rows, dtype=np.int64)

    def number(bounds):
        # scratch for the largest partition of this chunk (each partition sizes its own table)
        largest = int(counts[bounds[0]:bounds[1]].max()) if bounds[1] > bounds[0] else 0
        cap = max(16, 1 << (2 * largest - 1).bit_length()) if largest else 16
        keys, numbers = np.empty(cap, np.int64), np.empty(cap, np.int32)
        return _join.number_partitions(part_ids, part_rows, starts, bounds[0], bounds[1], MAX_PROBE,
                                       keys, numbers, out)

    failed = run_chunks(number, chunk_bounds(counts.size, PARTITIONS_PER_CHUNK))
    if any(p >= 0 for p in failed):
        # ids chosen to collide: number them by a sort, O(n log n) whatever they are
        del part_ids, part_rows, out
        ids = np.concatenate([x, y])
        distinct, inverse = np.unique(ids, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.int64, copy=False)
        return inverse[:x.size], inverse[x.size:], 0, int(distinct.size)
    return out[:x.size], out[x.size:], 0, rows


class Migration:
    """The migration matrix of two snapshots, its tidy table, segment sizes and findings.

    Attributes
    ----------
    matrix : numpy.ndarray of int64, shape (n_from + 1, n_to + 1)
        ``matrix[i, j]`` customers in previous segment ``from_names[i]`` and current segment
        ``to_names[j]``. The last row is :data:`NEW` (only in current), the last column
        :data:`DEPARTED` (only in previous); ``matrix[-1, -1]`` is always 0.
    from_names : list of str
        The segments of either snapshot in one order (text order, or numeric order when
        segments are integers; :data:`NONE` last when a segment was null), then :data:`NEW`:
        one name per row of ``matrix``. A segment absent from the previous snapshot has a
        zero row.
    to_names : list of str
        The same segments in the same order, then :data:`DEPARTED`: one name per column (a
        segment absent from the current snapshot has a zero column). So ``matrix[i, i]`` is
        the customers who stayed in segment ``i``, and a heatmap's diagonal means "stayed".
    table : pyarrow.Table
        Tidy: ``from_segment``, ``to_segment``, ``count`` (int64), ``share_of_from`` (float64: the
        count over all customers of the from-segment, departed included); one row per non-zero
        cell, in matrix order.
    sizes : pyarrow.Table
        One row per segment of either snapshot: ``segment``, ``previous_count``,
        ``previous_share``, ``current_count``, ``current_share``, ``count_change`` (int64:
        current count minus previous count), ``change`` (current share minus previous share),
        ``status``. The status compares *shares* (a segment can gain customers and still
        shrink in share when the base grows faster), and says so: ``"share grew"``,
        ``"share shrank"``, or ``"about the same"`` when the change, rounded to the 0.1
        points shown (:func:`points`), is below :data:`MIN_SHARE_CHANGE`; or ``"new"`` (only
        in current), ``"vanished"`` (only in previous).
    findings : list of str
        Plain-words findings, the overall movement first (customers in :data:`NONE` in both
        snapshots do not count as staying in their segment), then segments whose share moved
        by at least :data:`MIN_SHARE_CHANGE` (rounded as shown), largest change first; the :data:`NONE` group in
        words of its own ("420 customers (4.7%) have no segment now (was 2.1%)").
    weighted_findings : list of (float, str)
        The same findings, each with its weight: the share change of its segment (absolute),
        1.0 for the overall movement; :class:`segmint.monitor.compare.Drift` ranks them by it.
    previous_rows, current_rows : int
    id_column : str
    inputs : tuple of str
        The files the snapshots were read from (``to_json`` never writes over them).

    Built by :func:`migration`: ``matrix`` the pair counts, ``from_segments``/``to_segments``
    the segment names of its rows and columns without the new/departed labels (the same list
    there; a segment with no customers on a side counts as absent from that snapshot).
    """

    def __init__(self, matrix, from_segments, to_segments, *, id_column, inputs=()):
        self.matrix = matrix
        self.from_names = list(from_segments) + [NEW]
        self.to_names = list(to_segments) + [DEPARTED]
        self.id_column = id_column
        self.inputs = tuple(dict.fromkeys(str(p) for p in inputs))
        self.previous_rows = int(matrix[:-1].sum())
        self.current_rows = int(matrix[:, :-1].sum())
        self.table = self._tidy()
        self.sizes = self._sizes()
        self.weighted_findings = self._findings()
        self.findings = [text for _, text in self.weighted_findings]

    # -- the views ----------------------------------------------------------------------------
    def _tidy(self):
        rows, cols = np.nonzero(self.matrix)
        counts = self.matrix[rows, cols]
        totals = self.matrix.sum(axis=1)
        return pa.table([
            pa.array([self.from_names[i] for i in rows], pa.string()),
            pa.array([self.to_names[j] for j in cols], pa.string()),
            pa.array(counts, pa.int64()),
            pa.array(counts / totals[rows] if len(rows) else np.zeros(0), pa.float64()),
        ], schema=TABLE_SCHEMA)

    def _segment_counts(self):
        """{segment: (previous count, current count)} in from order, then current-only ones
        (a count of 0: the segment is absent from that snapshot)."""
        prev = dict(zip(self.from_names[:-1], self.matrix[:-1].sum(axis=1).tolist()))
        cur = dict(zip(self.to_names[:-1], self.matrix[:, :-1].sum(axis=0).tolist()))
        names = list(prev) + [n for n in cur if n not in prev]
        return {n: (prev.get(n, 0), cur.get(n, 0)) for n in names}

    def _sizes(self):
        rows = []
        for name, (p, c) in self._segment_counts().items():
            if not p and not c:
                continue
            ps = _share(p, self.previous_rows)
            cs = _share(c, self.current_rows)
            if not p:
                status = "new"
            elif not c:
                status = "vanished"
            elif not share_moved(cs - ps):
                status = ABOUT_THE_SAME
            else:
                status = "share grew" if cs > ps else "share shrank"
            rows.append((name, p, ps, c, cs, c - p, cs - ps, status))
        columns = list(zip(*rows)) if rows else [[]] * len(SIZES_SCHEMA)
        return pa.table([pa.array(col, f.type) for col, f in zip(columns, SIZES_SCHEMA)],
                        schema=SIZES_SCHEMA)

    def _findings(self):
        m = self.matrix
        n_new, n_departed = int(m[-1].sum()), int(m[:, -1].sum())
        both = self.previous_rows - n_departed
        # customers without a segment in both snapshots did not "stay in their segment"
        stayed = sum(int(m[i, self.to_names.index(name)]) for i, name in enumerate(self.from_names[:-1])
                     if name in self.to_names[:-1] and name != NONE)
        words = [f"{_customers(self.previous_rows)} before, {self.current_rows:,} now: "
                 f"{n_new:,} new, {n_departed:,} departed"
                 + (f"; {_share(stayed, both):.1%} of the {both:,} in both stayed in their segment"
                    if both else "")]
        weights = [1.0]  # the overall movement; then each segment's line weighs its share change
        self._finding_segments = [None]  # the segment each line is about (None: the overall one)
        sizes = self.sizes.to_pylist()
        sizes.sort(key=lambda r: -abs(r["change"]))
        for r in sizes:
            line = self._segment_line(r)
            if line is not None:
                words.append(line)
                weights.append(abs(r["change"]))
                self._finding_segments.append(r["segment"])
        return list(zip(weights, words))

    def _segment_line(self, r, since=""):
        """The finding of one row of :attr:`sizes`, or None when its share stayed about the same;
        ``since`` (e.g. " since the previous snapshot") follows the figures."""
        name = r["segment"]
        if name == NONE:
            if r["status"] in ("vanished", "new") or share_moved(r["change"]):
                return self._unassigned(r)
            return None
        if r["status"] == "new":
            return (f"{name} is new{since}: {r['current_share']:.1%} of customers "
                    f"({r['current_count']:,})" + self._inflow(name))
        if r["status"] == "vanished":
            return (f"{name} vanished{since} (was {r['previous_share']:.1%}, "
                    f"{_customers(r['previous_count'])})" + self._outflow(name))
        if share_moved(r["change"]):
            verb = "grew" if r["change"] > 0 else "shrank"
            tail = self._inflow(name) if verb == "grew" else self._outflow(name)
            return f"{name} {verb} from {r['previous_share']:.1%} to {r['current_share']:.1%}{since}" + tail
        return None

    @staticmethod
    def _unassigned(r):
        """'420 customers (4.7%) have no segment now (was 2.1%)': the :data:`NONE` group."""
        c = r["current_count"]
        words = f"{_customers(c)} ({r['current_share']:.1%}) {'has' if c == 1 else 'have'} no segment now"
        return words + (f" (was {r['previous_share']:.1%})" if r["previous_count"] else "")

    def _outflow(self, name):
        """'; 38.1% of its customers moved to segment_1': the largest move out of ``name``."""
        move = self.largest_outflow(name)
        if move is None:
            return ""
        to, share = move
        if to == DEPARTED:
            return f"; {share:.1%} of its customers departed"
        return f"; {share:.1%} of its customers moved to {to}"

    def _inflow(self, name):
        """'; 40.0% of its customers came from segment_2': the largest move into ``name``."""
        move = self.largest_inflow(name)
        if move is None:
            return ""
        source, share = move
        if source == NEW:
            return f"; {share:.1%} of its customers are new"
        return f"; {share:.1%} of its customers came from {source}"

    def largest_outflow(self, segment):
        """Where most of the customers who left ``segment`` went.

        Parameters
        ----------
        segment : str
            A segment of the previous snapshot (a name of :attr:`from_names`).

        Returns
        -------
        (str, float) or None
            The destination (a segment, or :data:`DEPARTED`) and its share of all the
            previous customers of ``segment``; None when nobody left it (or it is absent).
        """
        if segment not in self.from_names[:-1]:
            return None
        i = self.from_names.index(segment)
        row = self.matrix[i].copy()
        if segment in self.to_names[:-1]:
            row[self.to_names.index(segment)] = 0
        if row.sum() == 0:
            return None
        j = int(np.argmax(row))
        return self.to_names[j], _share(int(row[j]), int(self.matrix[i].sum()))

    def largest_inflow(self, segment):
        """Where most of the customers who joined ``segment`` came from.

        Parameters
        ----------
        segment : str
            A segment of the current snapshot (a name of :attr:`to_names`).

        Returns
        -------
        (str, float) or None
            The origin (a segment, or :data:`NEW`) and its share of all the current customers
            of ``segment``; None when nobody joined it (or it is absent).
        """
        if segment not in self.to_names[:-1]:
            return None
        j = self.to_names.index(segment)
        col = self.matrix[:, j].copy()
        if segment in self.from_names[:-1]:
            col[self.from_names.index(segment)] = 0
        if col.sum() == 0:
            return None
        i = int(np.argmax(col))
        return self.from_names[i], _share(int(col[i]), int(self.matrix[:, j].sum()))

    # -- documents ----------------------------------------------------------------------------
    def to_dict(self):
        """Plain data (JSON-ready): names, matrix, sizes, findings and the reserved labels."""
        return {
            "format": "segmint-migration",
            "id_column": self.id_column,
            "previous_rows": self.previous_rows,
            "current_rows": self.current_rows,
            "labels": {"new": NEW, "departed": DEPARTED, "none": NONE},
            "from_names": list(self.from_names),
            "to_names": list(self.to_names),
            "matrix": self.matrix.tolist(),
            "sizes": self.sizes.to_pylist(),
            "findings": list(self.findings),
        }

    def to_json(self, path=None):
        """The :meth:`to_dict` document as JSON text; written atomically to ``path`` if given
        (never over the snapshots' files). Returns the text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if path is not None:
            write_text(path, text, inputs=self.inputs)
        return text

    def to_markdown(self):
        """Findings, the sizes table and the matrix as Markdown."""
        lines = ["## Segment migration", ""]
        lines += [f"- {_md(f)}" for f in self.findings]
        lines += ["", "| segment | previous | previous share | current | current share | change | status |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for r in self.sizes.to_pylist():
            lines.append(f"| {_md(r['segment'])} | {r['previous_count']:,} | {r['previous_share']:.1%} | "
                         f"{r['current_count']:,} | {r['current_share']:.1%} | {points(r['change'])} | "
                         f"{r['status']} |")
        lines += ["", "| from \\ to | " + " | ".join(_md(n) for n in self.to_names) + " |",
                  "|---|" + "---:|" * len(self.to_names)]
        for name, row in zip(self.from_names, self.matrix.tolist()):
            lines.append(f"| {_md(name)} | " + " | ".join(f"{v:,}" for v in row) + " |")
        return "\n".join(lines) + "\n"

    def __str__(self):
        width = max([len(n) for n in self.sizes.column("segment").to_pylist()] + [7])
        lines = ["Segment migration"] + [f"  {f}" for f in self.findings] + [""]
        lines.append(f"  {'segment':<{width}}  {'previous':>12}  {'current':>12}  {'change':>9}  status")
        for r in self.sizes.to_pylist():
            lines.append(f"  {r['segment']:<{width}}  {r['previous_count']:>12,}  {r['current_count']:>12,}  "
                         f"{points(r['change']):>9}  {r['status']}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"Migration({len(self.from_names) - 1} -> {len(self.to_names) - 1} segments, "
                f"{self.previous_rows:,} -> {self.current_rows:,} customers)")


def share_moved(change):
    """Whether a share change (current minus previous share, a fraction) is worth words: at
    least :data:`MIN_SHARE_CHANGE` once rounded to the 0.1 points :func:`points` shows."""
    return abs(round(change * 100, 1)) >= round(MIN_SHARE_CHANGE * 100, 1)


def points(change):
    """A share change in percentage points, as shown everywhere: "+3.4 pts", "-0.5 pts", "0.0 pts"."""
    value = round(change * 100, 1)
    return "0.0 pts" if value == 0 else f"{value:+.1f} pts"


def _share(part, whole):
    return part / whole if whole else 0.0


def _customers(n):
    return f"{n:,} customer" + ("" if n == 1 else "s")


def _md(text):
    """``text`` for a Markdown table cell or list item: pipes escaped, line breaks as ``<br>``
    (a raw newline would end the row)."""
    text = str(text).replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")
