"""Which segment each customer is in, batch by batch, whatever says so.

Profiles, validation and the report take ``segments=`` in four forms and stream the source once;
this module turns each form into the same stream of ``(batch, codes)``:

- a **column** of the source (strings, dictionary strings or integers): a first pass over that
  one column finds the segment names (sorted), so that codes mean the same in every batch;
- a fitted :class:`~segmint.Segmenter`: scored on the fly (:meth:`Segmenter.stream`);
- a :class:`~segmint.RuleSet`: evaluated on the fly; a multi-mode set yields memberships;
- a **table** of ``(id, segment)`` (anything :func:`segmint.open` takes) joined on ``id_column``:
  read whole (two columns); integer ids are sorted once and each batch's ids found by binary
  search, string ids through a hash map (about 1 us per row: slower than integer ids);
- **per-row labels**: a 1-D numpy array or pyarrow array with one label per row of the source (a
  scikit-learn ``labels_``), integers or strings.

Code ``-1`` is a row without a segment: a null segment value, or an id the table does not hold.
"""
import os
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .._lazy import lazy_import
from ..errors import DataError, ParameterError, UnsupportedTypeError, unknown_column
from ..io import DEFAULT_BATCH_SIZE
from ..io import open as open_source
from ..io.columns import BOOLEAN, DICTIONARY, NUMERIC, column_kind

pc = lazy_import("pyarrow.compute")  # on first use: see segmint._lazy

# More distinct values than this in a segment column is almost surely not a segment column
# (an id, a price): refused with a message instead of profiling a million one-row "segments".
MAX_SEGMENTS = 1000

# Every random stream of the explain modules is keyed by (random_state, RNG_SALT, purpose):
# numpy's SeedSequence treats trailing zeros as absent, so a plain default_rng(0) is the stream
# of default_rng([0, 0, 0]), the one segmint's own customer generator draws block 0 from. A
# sample keyed like that picked customers by the generator's persona draws (clusterboot saw 11%
# of one cluster and 94% of another in a "uniform" sample of synthetic customers).
RNG_SALT = 0x5E6A1E


class SegmentBatch(NamedTuple):
    """One batch of :meth:`SegmentSource.stream`.

    Attributes
    ----------
    batch : segmint.io.Batch
        The rows, with the columns asked for.
    codes : numpy.ndarray of int32 or None
        Each row's segment code (an index into ``names``), -1 for a row without a segment.
        None for a multi-mode rule set.
    members : numpy.ndarray of uint64 or None
        Multi-mode rule sets only: ``(len(names), ceil(n / 64))`` bit words, bit ``r % 64`` of
        word ``r // 64`` of row ``s`` set when row ``r`` is in segment ``s``.
    distance : numpy.ndarray or None
        A Segmenter's distance of each row to its cluster's center (NaN where a rule took the
        row); None for the other kinds.
    """
    batch: object
    codes: object
    members: object
    distance: object


class SegmentSource:
    """A source with a segment for each of its rows; made by :func:`resolve_segments`.

    Attributes
    ----------
    source : segmint.io.Source
    kind : {'column', 'segmenter', 'ruleset', 'table', 'labels'}
    names : list of str
        Segment code ``i`` is ``names[i]``.
    column : str or None
        The segment column (kind 'column'), which profiles leave out of the features.
    segmenter : Segmenter or None
    ruleset : RuleSet or None
    multi : bool
        A multi-mode rule set: a row may be in several segments (``members``, no ``codes``).
    id_column : str or None
    paths : tuple of str
        Every file read: the source's and a table of segments' (outputs never go over them).
    """

    def __init__(self, source, kind, names, *, column=None, segmenter=None, ruleset=None,
                 id_column=None, as_of=None, lookup=None, paths=()):
        self.source = source
        self.paths = tuple(source.paths) + tuple(paths)
        self.kind = kind
        self.names = list(names)
        self.column = column
        self.segmenter = segmenter
        self.ruleset = ruleset
        self.multi = ruleset is not None and ruleset.mode == "multi"
        self.id_column = id_column
        self._as_of = as_of
        self._lookup = lookup  # column: value -> code; table: the sorted ids and their codes

    def __repr__(self):
        return f"<SegmentSource {self.kind}: {len(self.names)} segments of {self.source.label}>"

    def stream(self, columns=(), batch_size=DEFAULT_BATCH_SIZE):
        """Yield a :class:`SegmentBatch` per batch of the source, in order.

        Parameters
        ----------
        columns : sequence of str
            Columns of the source to read (besides what the segments need).
        batch_size : int
            Rows per batch.
        """
        columns = list(dict.fromkeys(columns or ()))
        for c in columns:
            if c not in self.source.column_names:
                raise unknown_column(c, self.source.column_names, self.source.label)
        if self.kind == "segmenter":
            for batch, seg, dist in self.segmenter.stream(self.source, as_of=self._as_of,
                                                          batch_size=batch_size, columns=columns):
                yield SegmentBatch(batch, seg.astype(np.int32), None, dist.astype(np.float64))
        elif self.kind == "ruleset":
            for batch, codes, members in self.ruleset.stream(self.source, as_of=self._as_of,
                                                             batch_size=batch_size, columns=columns):
                yield SegmentBatch(batch, None if codes is None else codes.astype(np.int32), members, None)
        elif self.kind == "labels":
            for batch in self.source.batches(columns=columns or None, batch_size=batch_size):
                yield SegmentBatch(batch, self._lookup[batch.start:batch.start + batch.num_rows], None, None)
        elif self.kind == "column":
            read = list(dict.fromkeys(columns + [self.column]))
            for batch in self.source.batches(columns=read, batch_size=batch_size):
                yield SegmentBatch(batch, self._lookup.codes(batch[self.column]), None, None)
        else:
            read = list(dict.fromkeys(columns + [self.id_column]))
            for batch in self.source.batches(columns=read, batch_size=batch_size):
                ids = batch.record_batch.column(self.id_column)
                yield SegmentBatch(batch, self._lookup.codes(ids), None, None)


def resolve_segments(source, segments, *, id_column=None, as_of=None):
    """Open ``source`` and say how to find each row's segment.

    Parameters
    ----------
    source : anything :func:`segmint.open` accepts
    segments : str, Segmenter, RuleSet, or a table
        A column name of ``source``; a fitted Segmenter or a RuleSet (applied on the fly); or a
        table of (id, segment) (a path or anything :func:`segmint.open` accepts) joined on
        ``id_column``: its segment column is the one besides the id column, or ``segment``.
    id_column : str, optional
        The customer id column; required to join a table of segments.
    as_of : datetime, date or ISO string, optional
        For rules using dates.

    Returns
    -------
    SegmentSource
    """
    from ..pipeline import Segmenter
    from ..rules import RuleSet

    src = open_source(source)
    if id_column is not None and id_column not in src.column_names:
        raise unknown_column(id_column, src.column_names, src.label)
    if isinstance(segments, Segmenter):
        if not hasattr(segments, "segment_names_"):
            from .._estimator import NotFittedError
            raise NotFittedError("segments= is a Segmenter that is not fitted: fit it or load a saved one")
        return SegmentSource(src, "segmenter", segments.segment_names_, segmenter=segments,
                             id_column=id_column, as_of=as_of)
    if isinstance(segments, RuleSet):
        names = list(segments.names) + ([segments.default] if segments.mode == "waterfall" else [])
        return SegmentSource(src, "ruleset", names, ruleset=segments, id_column=id_column, as_of=as_of)
    if isinstance(segments, str) and segments in src.column_names:
        if src.one_shot:  # the names are found in a first pass: a stream cannot give a second
            raise DataError(f"segments={segments!r} is a column of {src.label}, which can be read only "
                            "once, but a segment column is read twice (its names first): write the data "
                            "to a file first, or pass the segments as a table of (id, segment)")
        return _column_segments(src, segments, id_column)
    if isinstance(segments, (np.ndarray, pa.Array, pa.ChunkedArray, list)):
        return _label_segments(src, segments, id_column)
    if isinstance(segments, str) and not os.path.exists(segments):
        raise unknown_column(segments, src.column_names, f"{src.label} (segments= names a column "
                             "of the source, a Segmenter, a RuleSet or a table of segments)")
    if segments is None or isinstance(segments, (bool, int, float)):
        raise ParameterError("segments= must be a column of the source, a fitted Segmenter, a RuleSet "
                             f"or a table of (id, segment); got {segments!r}")
    return _table_segments(src, segments, id_column)


def cli_segments(text, source_columns):
    """What the command line's ``--segments TEXT`` means: a column of the data wins; else a path
    (``.seg`` a model, ``.json``/``.yaml``/``.yml`` a rule set, anything else a table of
    segments). Returns what :func:`resolve_segments` takes."""
    if text in source_columns:
        return text
    if not os.path.exists(text):
        raise unknown_column(text, source_columns, "the data (--segments names a column, a model "
                             "file, a rule file or a table of segments)")
    lower = text.lower()
    if lower.endswith(".seg"):
        from ..pipeline import Segmenter
        return Segmenter.load(text)
    if lower.endswith((".json", ".yaml", ".yml")):
        from ..rules import RuleSet
        return RuleSet.load(text)
    return text


# -- a segment column ----------------------------------------------------------------------------
class _ValueCodes:
    """Codes of a column's values: dictionary strings through their (growing) dictionary,
    integers through the sorted distinct values, booleans as 0/1 into ``["False", "True"]``."""

    def __init__(self, names, integer_values=None, boolean=False):
        self.names = names
        self._index = {n: i for i, n in enumerate(names)}
        self._values = integer_values  # sorted int64 distinct values, or None
        self._boolean = boolean
        self._map = np.zeros(0, dtype=np.int32)

    def codes(self, view):
        n = len(view)
        valid = view.is_valid() if view.null_count else None
        if self._boolean:
            codes = view.to_numpy().astype(np.int32)
        elif self._values is not None:
            values = view.values.astype(np.int64, copy=False)
            if not n or not len(self._values):
                return np.full(n, -1, dtype=np.int32)
            pos = np.minimum(np.searchsorted(self._values, values), len(self._values) - 1)
            # a value the first pass did not see (the data changed between the passes): no segment
            codes = np.where(self._values[pos] == values, pos, -1).astype(np.int32)
        else:
            dictionary = view.dictionary
            if len(dictionary) != len(self._map):  # the pass's dictionary grew: extend the map
                strings = dictionary.to_pylist()
                self._map = np.asarray([self._index.get(s, -1) for s in strings], dtype=np.int32)
            if not len(self._map) or not n:  # nothing but nulls so far
                return np.full(n, -1, dtype=np.int32)
            # indices under null slots may hold anything: clip, then mask them below
            codes = np.take(self._map, view.values, mode="clip")
        if valid is not None:
            codes = np.where(valid, codes, -1).astype(np.int32)
        return codes


def _column_segments(src, column, id_column):
    arrow_type = src.schema.field(column).type
    value_type = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    kind = column_kind(arrow_type)
    distinct = set()
    if kind == DICTIONARY:
        for batch in src.batches(columns=[column]):
            view = batch[column]
            used = np.unique(view.values[view.is_valid()] if view.null_count else view.values)
            if used.size:
                distinct.update(view.dictionary.take(pa.array(used)).to_pylist())
            _check_count(len(distinct), column, src)
        names = sorted(distinct)
        return SegmentSource(src, "column", names, column=column, id_column=id_column,
                             lookup=_ValueCodes(names))
    if kind == BOOLEAN:
        return SegmentSource(src, "column", ["False", "True"], column=column, id_column=id_column,
                             lookup=_ValueCodes(["False", "True"], boolean=True))
    if kind == NUMERIC and pa.types.is_integer(value_type):
        for batch in src.batches(columns=[column]):
            view = batch[column]
            values = view.values[view.is_valid()] if view.null_count else view.values
            if values.dtype == np.uint64 and values.size and values.max() > np.iinfo(np.int64).max:
                raise DataError(f"segment column {column!r} of {src.label} holds {int(values.max()):,}, "
                                "beyond the int64 range segment values are read in")
            distinct.update(np.unique(values).tolist())
            _check_count(len(distinct), column, src)
        values = np.asarray(sorted(distinct), dtype=np.int64)
        names = [str(v) for v in values]
        return SegmentSource(src, "column", names, column=column, id_column=id_column,
                             lookup=_ValueCodes(names, values))
    raise UnsupportedTypeError(f"segment column {column!r} of {src.label} is {arrow_type}: segments "
                               "come from a string, integer or boolean column")


def _label_segments(src, labels, id_column):
    """Per-row labels given beside the source (a scikit-learn ``labels_``)."""
    if isinstance(labels, (list, np.ndarray)):
        array = np.asarray(labels)
        if array.ndim != 1:
            raise ParameterError(f"segments= as per-row labels must be 1-D, got shape {array.shape}")
        if array.dtype.kind in "iub":
            labels = pa.array(array)
        else:
            try:
                labels = pa.array(array.tolist(), pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise UnsupportedTypeError("segments= as per-row labels holds values that are neither "
                                           f"integers nor strings (dtype {array.dtype})") from None
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    if pa.types.is_dictionary(labels.type):
        labels = labels.cast(labels.type.value_type)
    n = src.num_rows
    if n is None or len(labels) != n:
        rows = "an unknown number of" if n is None else f"{n:,}"
        raise DataError(f"segments= holds {len(labels):,} labels but {src.label} has {rows} rows: "
                        "per-row labels need one label per row (or pass a table of (id, segment) "
                        "with id_column=)")
    if pa.types.is_boolean(labels.type):
        labels = labels.cast(pa.int8())
    if not (pa.types.is_integer(labels.type) or pa.types.is_string(labels.type)
            or pa.types.is_large_string(labels.type)):
        raise UnsupportedTypeError(f"segments= as per-row labels is {labels.type}: labels are integers "
                                   "or strings")
    names, codes = _names_and_codes(labels, "segments=", src.label)
    return SegmentSource(src, "labels", names, id_column=id_column, lookup=codes)


def _names_and_codes(values, what, label):
    """Sorted names of the distinct non-null ``values`` and each value's code (-1 for null)."""
    distinct = pc.unique(values.drop_null())
    if len(distinct) > MAX_SEGMENTS:
        raise DataError(f"{what} of {label} has more than {MAX_SEGMENTS:,} distinct values: is it a "
                        "segment column?")
    if pa.types.is_integer(values.type):
        numbers = distinct.to_numpy(zero_copy_only=False)
        if numbers.dtype == np.uint64 and numbers.size and numbers.max() > np.iinfo(np.int64).max:
            raise DataError(f"{what} of {label} holds {int(numbers.max()):,}, beyond the int64 range "
                            "segment values are read in")
        ordered = np.sort(numbers.astype(np.int64))
        names = [str(v) for v in ordered]
        codes = np.searchsorted(ordered, values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64))
    else:
        names = sorted(distinct.to_pylist())
        codes = np.asarray(pc.index_in(values, value_set=pa.array(names, values.type)).fill_null(-1))
    codes = np.array(codes, dtype=np.int32)  # a copy: Arrow's buffers are read-only
    if values.null_count:
        codes[~np.asarray(values.is_valid())] = -1
    return names, codes


def _check_count(n, column, src):
    if n > MAX_SEGMENTS:
        raise DataError(f"column {column!r} of {src.label} has more than {MAX_SEGMENTS:,} distinct "
                        "values: is it a segment column? (segments= names the column holding each "
                        "customer's segment)")


# -- a table of (id, segment) ----------------------------------------------------------------------
class _IdCodes:
    """Segment code of each id: the table's ids sorted once (integers) or hashed (strings)."""

    def __init__(self, ids, codes):
        if pa.types.is_integer(ids.type):
            values = ids.to_numpy(zero_copy_only=False).astype(np.int64)
            order = np.argsort(values, kind="stable")
            self._sorted = values[order]
            self._codes = codes[order]
            self._dict = None
        else:
            self._sorted = None
            self._dict = dict(zip(ids.to_pylist(), codes.tolist()))

    def codes(self, ids):
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        valid = None if ids.null_count == 0 else np.asarray(ids.is_valid())
        if self._sorted is not None:
            if not pa.types.is_integer(ids.type):
                raise DataError(f"the source's id column is {ids.type} but the segments table's ids "
                                "are integers")
            values = ids.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            pos = np.searchsorted(self._sorted, values)
            pos_c = np.minimum(pos, max(len(self._sorted) - 1, 0))
            found = (pos < len(self._sorted)) & (self._sorted[pos_c] == values) if len(self._sorted) \
                else np.zeros(len(values), dtype=bool)
            out = np.where(found, self._codes[pos_c] if len(self._sorted) else -1, -1).astype(np.int32)
        else:
            get = self._dict.get
            out = np.asarray([get(v, -1) for v in ids.to_pylist()], dtype=np.int32).reshape(-1)
        if valid is not None:
            out[~valid] = -1
        return out


def _table_segments(src, segments, id_column):
    if id_column is None:
        raise ParameterError("a table of segments is joined on the customer id: pass id_column=")
    table_src = open_source(segments, label="the segments table")
    cols = table_src.column_names
    if id_column not in cols:
        raise unknown_column(id_column, cols, table_src.label)
    others = [c for c in cols if c != id_column]
    seg_col = "segment" if "segment" in others else (others[0] if len(others) == 1 else None)
    if seg_col is None:
        raise DataError(f"{table_src.label} has columns {cols}: it needs {id_column!r} and one "
                        "segment column (or one named 'segment')")
    table = table_src.read([id_column, seg_col])
    ids, values = table.column(id_column).combine_chunks(), table.column(seg_col).combine_chunks()
    id_type = src.schema.field(id_column).type
    if pa.types.is_integer(ids.type) != pa.types.is_integer(id_type):
        raise DataError(f"id column {id_column!r} is {id_type} in {src.label} but {ids.type} in "
                        f"{table_src.label}")
    if ids.null_count:
        raise DataError(f"{table_src.label} has {ids.null_count:,} null ids in column {id_column!r}")
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
            or pa.types.is_integer(values.type)):
        raise UnsupportedTypeError(f"segment column {seg_col!r} of {table_src.label} is {values.type}: "
                                   "segments are strings or integers")
    names, codes = _names_and_codes(values, f"column {seg_col!r}", table_src.label)
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))
    if len(repeated):
        first = repeated.field("values")[0].as_py()
        raise DataError(f"{table_src.label} gives {len(repeated):,} ids more than one segment, e.g. "
                        f"{id_column}={first!r}: a customer is in one segment per table")
    if pa.types.is_uint64(ids.type) and len(ids) and pc.max(ids).as_py() > np.iinfo(np.int64).max:
        raise DataError(f"ids of {table_src.label} go beyond the int64 range ids are joined in")
    return SegmentSource(src, "table", names, id_column=id_column, lookup=_IdCodes(ids, codes),
                         paths=table_src.paths)
