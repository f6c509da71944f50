"""``segmint.open``: one way in for every kind of customer data.

A :class:`Source` knows its schema and row count without reading data, and streams
:class:`Batch` objects of at most ``batch_size`` rows whose columns are
:class:`~segmint.io.columns.ColumnView` objects. What reading costs depends on the input:

- uncompressed Arrow IPC (Feather v2) file: memory-mapped; views point into the mapping;
- compressed IPC file: memory-mapped, each record batch decompressed as it is reached
  (only the projected columns);
- IPC stream file: read front to back on every pass;
- Parquet file or directory of Parquet files: read row group by row group with column
  projection, files in sorted path order, strings read dictionary-encoded;
- pyarrow Table / RecordBatch, pandas or polars DataFrame, dict of arrays, 2-D numpy array:
  held in memory as a pyarrow Table (zero-copy where pyarrow allows; polars frames through
  the Arrow C stream interface, so their buffers are shared, not copied);
- pyarrow RecordBatchReader, and any other object exporting the Arrow PyCapsule stream
  interface (``__arrow_c_stream__``: DuckDB relations, ADBC readers, other Arrow producers):
  streamed batch by batch, zero-copy where the producer allows, one pass only.

Memory stays bounded by one batch (one record batch or row group for compressed files) plus,
per string column, its dictionary.

A file is untrusted input. Only regular files are opened (not devices, FIFOs or sockets),
and headers are read with a bound. Every record batch read from an IPC file or stream passes
Arrow's cheap ``validate()`` (buffer sizes), and its string and dictionary columns, of those
read, have their offsets and indices checked (:func:`~segmint.io.columns.check_layout`, about
1 ms per million rows and column) before any kernel or Arrow compute function trusts them;
numeric columns stay zero-copy and unchecked beyond buffer sizes. A stream must end with
its end-of-stream marker. Whatever pyarrow raises on a damaged file, here or later while a
batch is viewed, becomes a :class:`~segmint.errors.CorruptFileError` naming the file. Values
damaged inside a buffer cannot be told from real ones: IPC bodies carry no checksum.
"""
import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from .._lazy import lazy_import
from ..errors import (CorruptFileError, DataError, DuplicateColumnError, ParameterError,
                      SegmintError, SourceConsumedError, SourceNotFoundError, unknown_column)
from .columns import DictionaryUnifier, LayoutError, check_layout, check_supported, view_of

pc = lazy_import("pyarrow.compute")  # on first use: see segmint._lazy
pq = lazy_import("pyarrow.parquet")

# Rows per batch wherever a call does not say: segmint's one default (memory holds about one
# batch per stream; 131,072 rows keep per-batch overheads small and a batch in cache-sized pieces)
DEFAULT_BATCH_SIZE = 131_072

_IPC_MAGIC = b"ARROW1"
_PARQUET_MAGIC = b"PAR1"
_FEATHER_V1_MAGIC = b"FEA1"
# A Parquet footer (the file's metadata) is read whole into memory by pyarrow: refuse one that
# declares more than this (large real footers, thousands of row groups x columns, are a few MB)
MAX_PARQUET_FOOTER = 256 * 2 ** 20
_STREAM_CONTINUATION = b"\xff\xff\xff\xff"
# A stream ends with a continuation marker and a zero length (before Arrow 0.15: a zero length)
_STREAM_END = _STREAM_CONTINUATION + b"\0\0\0\0"
_LEGACY_STREAM_END = b"\0\0\0\0"

# What pyarrow and Python raise on a damaged file: Arrow's own errors, and the builtins its
# Python layer raises on bad bytes (UnicodeDecodeError for names, MemoryError or OverflowError
# for absurd declared sizes, IndexError/KeyError for indices into metadata).
_READ_ERRORS = (pa.ArrowException, OSError, ValueError, TypeError, KeyError, IndexError,
                OverflowError, MemoryError, RecursionError)


def open(source, *, columns=None, label=None):  # noqa: A001 - mirrors io.open / pyarrow's open_*
    """Open customer data for segmint.

    Parameters
    ----------
    source : str, os.PathLike or in-memory data
        A path to an Arrow IPC / Feather v2 file (compressed or not), an IPC stream file, a
        Parquet file or a directory of Parquet files; or a pyarrow Table, RecordBatch or
        RecordBatchReader, a pandas or polars DataFrame, any object exporting the Arrow
        PyCapsule stream interface (``__arrow_c_stream__``: a DuckDB relation, an ADBC
        reader...; read once, as a stream), a dict of 1-D arrays, or a 2-D numpy array
        (columns named ``x0, x1, ...``). An already open :class:`Source` is returned as is.
    columns : list of str, optional
        Restrict the source to these columns (checked now: an unknown name raises).
    label : str, optional
        What to call the source in messages; defaults to the path or the input's type.

    Returns
    -------
    Source

    Raises
    ------
    SourceNotFoundError
        The path does not exist.
    CorruptFileError
        The file is truncated, corrupt, of another format, or not a regular file (a device,
        FIFO or socket). Damage found later, while batches are read, raises it too.
    DuplicateColumnError, UnknownColumnError, UnsupportedTypeError
        Column names repeat, ``columns`` names a missing column, or a selected column has a
        type segmint cannot read.
    """
    if isinstance(source, Source):
        return source if columns is None else source.select(columns)
    if isinstance(source, (str, os.PathLike)):
        source = _open_path(Path(source), label)
    else:
        source = _open_memory(source, label)
    return source if columns is None else source.select(columns)


class Batch:
    """A slice of consecutive rows of a source.

    Attributes
    ----------
    start : int
        Index of the batch's first row in the source.
    num_rows : int
    record_batch : pyarrow.RecordBatch
        The Arrow data behind the views.
    """

    def __init__(self, record_batch, start, unifiers, label="the source"):
        self.record_batch = record_batch
        self.start = start
        self.num_rows = record_batch.num_rows
        self._unifiers = unifiers
        self._label = label
        self._views = {}

    @property
    def column_names(self):
        return self.record_batch.schema.names

    def __len__(self):
        return self.num_rows

    def __getitem__(self, name):
        """The :class:`~segmint.io.columns.ColumnView` of column ``name``."""
        view = self._views.get(name)
        if view is None:
            index = self.record_batch.schema.get_field_index(name)
            if index < 0:
                raise unknown_column(name, self.column_names, "this batch")
            try:
                view = view_of(name, self.record_batch.column(index), self._unifiers.get(name))
            except LayoutError as exc:  # says what is damaged, not where
                raise _corrupt(f"column {name!r} of {self._label}", exc) from None
            except SegmintError:
                raise
            except _READ_ERRORS as exc:
                raise _corrupt(f"column {name!r} of {self._label}", exc) from None
            self._views[name] = view
        return view

    def __repr__(self):
        return f"<segmint Batch rows {self.start}..{self.start + self.num_rows - 1} of {self.column_names}>"


class Column:
    """A whole column: its views, one per batch of one pass over the source."""

    def __init__(self, name, views):
        self.name = name
        self.chunks = views

    def __len__(self):
        return sum(len(v) for v in self.chunks)

    @property
    def null_count(self):
        return sum(v.null_count for v in self.chunks)

    @property
    def dictionary(self):
        """For strings: the dictionary of the whole column (the last chunk's holds all)."""
        return self.chunks[-1].dictionary if self.chunks else None

    def to_numpy(self):
        """All values in one numpy array (a copy when there is more than one chunk)."""
        if len(self.chunks) == 1:
            return self.chunks[0].to_numpy()
        if not self.chunks:
            return np.zeros(0)
        return np.concatenate([v.to_numpy() for v in self.chunks])

    def is_valid(self):
        """Unpacked validity of the whole column (a bool copy)."""
        if not self.chunks:
            return np.zeros(0, dtype=bool)
        return np.concatenate([v.is_valid() for v in self.chunks])


class Source:
    """Customer data opened by :func:`segmint.open`. Iterate with :meth:`batches`."""

    kind = "abstract"
    one_shot = False

    def __init__(self, schema, label):
        _check_duplicates(schema, label)
        self._schema = schema
        self.label = label
        self._columns = None  # projection; None means all

    # -- what it holds -------------------------------------------------------------------
    @property
    def schema(self):
        """The pyarrow schema of the selected columns."""
        if self._columns is None:
            return self._schema
        return pa.schema([self._schema.field(c) for c in self._columns], metadata=self._schema.metadata)

    @property
    def column_names(self):
        return list(self.schema.names)

    @property
    def num_rows(self):
        """Number of rows, from metadata where the format keeps it (None for a one-shot reader)."""
        raise NotImplementedError

    @property
    def zero_copy(self):
        """True when column views point into the source's own memory (no copy on read)."""
        return False

    @property
    def paths(self):
        """The files or folders this source reads (empty for in-memory data): writers refuse
        an output that is, contains or lies inside one of them."""
        return ()

    def select(self, columns):
        """A source restricted to ``columns`` (checked: unknown names and types raise)."""
        columns = self._check_columns(columns)
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._columns = columns
        return other

    def _check_columns(self, columns):
        if isinstance(columns, str):
            columns = [columns]
        columns = list(columns)
        available = self.column_names
        for c in columns:
            if c not in available:
                raise unknown_column(c, available, self.label)
            check_supported(c, self._schema.field(c).type)
        if len(set(columns)) != len(columns):
            repeated = sorted({c for c in columns if columns.count(c) > 1})
            raise DuplicateColumnError(f"columns {repeated} are asked for more than once")
        return columns

    # -- reading -------------------------------------------------------------------------
    def batches(self, columns=None, batch_size=DEFAULT_BATCH_SIZE, *, balanced=False):
        """Stream the rows as :class:`Batch` objects of at most ``batch_size`` rows.

        Batches never straddle the source's own chunks (record batches, row groups), so some
        may be shorter than ``batch_size``. String codes are consistent across the batches of
        one call.

        With ``balanced=True`` each chunk of a zero-copy source (an in-memory table, an
        uncompressed memory-mapped Arrow file) is cut into ``round(rows / batch_size)`` pieces
        (at least one) of nearly equal size instead: no short remainder batch, at the price of
        batches of up to 1.5 x ``batch_size`` rows. Sources that read or decode (Parquet,
        streams) are read as without it. For passes whose cost per batch is large (the event
        scan sweeps its per-customer state once per batch).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
        names = self._check_columns(columns) if columns is not None else self.column_names
        for c in names:
            check_supported(c, self._schema.field(c).type)
        unifiers = {c: DictionaryUnifier() for c in names
                    if _is_string_like(self._schema.field(c).type)}
        start = 0
        batch_size = int(batch_size)
        if not isinstance(balanced, (bool, np.bool_)):
            raise ParameterError(f"balanced must be True or False, got {balanced!r}")
        # balanced: a zero-copy source hands its chunks whole (slicing them costs nothing); a
        # source that reads or decodes (Parquet, a stream) reads batch_size rows at a time as
        # always, so its memory stays one batch
        cap = _WHOLE_CHUNKS if balanced and self.zero_copy else batch_size
        for record_batch in self._record_batches(names, cap):
            for offset, size in _pieces(record_batch.num_rows, batch_size, balanced):
                piece = record_batch.slice(offset, size)
                yield Batch(piece, start, unifiers, self.label)
                start += piece.num_rows

    def column(self, name):
        """One whole column as a :class:`Column` (one pass over the source)."""
        views = [b[name] for b in self.batches([name])]
        return Column(name, views)

    def read(self, columns=None):
        """Materialise the selected columns as one pyarrow Table (in memory: mind the size)."""
        names = self._check_columns(columns) if columns is not None else self.column_names
        batches = list(self._record_batches(names, DEFAULT_BATCH_SIZE))
        schema = pa.schema([self._schema.field(c) for c in names], metadata=self._schema.metadata)
        try:
            if not batches:
                return schema.empty_table()
            # Parquet strings arrive dictionary-encoded (see ParquetSource): the table keeps
            # the types the source declares
            return _as_schema(pa.Table.from_batches(batches), schema)
        except _READ_ERRORS as exc:
            raise _corrupt(self.label, exc) from None

    def _record_batches(self, names, batch_size):
        raise NotImplementedError

    def close(self):
        """Release files and mappings; views handed out stay valid while referenced."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        rows = self.num_rows if not self.one_shot else "?"
        return (f"<segmint Source {self.kind} {self.label}: {rows} rows x "
                f"{len(self.column_names)} columns>")


_WHOLE_CHUNKS = 1 << 62  # a batch size no chunk reaches: sources hand their chunks whole


def _pieces(rows, batch_size, balanced):
    """(offset, size) of the batches one chunk of ``rows`` rows is cut into (see ``batches``)."""
    if not balanced:
        return [(o, min(batch_size, rows - o)) for o in range(0, rows, batch_size)]
    # round half up in integers: 1.5 batches make two pieces, 1.49 one
    count = max(1, (2 * rows + batch_size) // (2 * batch_size))
    bounds = [rows * i // count for i in range(count + 1)]
    return [(lo, hi - lo) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def _as_schema(table, schema):
    """``table`` with the types ``schema`` declares: strings read dictionary-encoded are
    decoded (Arrow cannot cast a dictionary of string views to string views)."""
    if table.schema.equals(schema):
        return table
    columns = []
    for field, column in zip(schema, table.columns):
        if pa.types.is_dictionary(column.type) and not pa.types.is_dictionary(field.type):
            column = pa.chunked_array([_decode(c) for c in column.chunks], type=column.type.value_type)
        columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _decode(chunk):
    """A dictionary array's values, row by row (through large strings where Arrow has no
    kernel for string views)."""
    try:
        return chunk.dictionary_decode()
    except pa.ArrowNotImplementedError:
        return chunk.dictionary.cast(pa.large_string()).take(chunk.indices).cast(chunk.type.value_type)


def _is_string_like(t):
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _check_duplicates(schema, label):
    names = schema.names
    if len(set(names)) != len(names):
        seen, repeated = set(), []
        for n in names:
            if n in seen and n not in repeated:
                repeated.append(n)
            seen.add(n)
        raise DuplicateColumnError(
            f"{label} has more than one column named {', '.join(repr(n) for n in repeated)}; "
            "rename them so each name says which column is meant")


def _corrupt(label, exc):
    if isinstance(exc, MemoryError):
        reason = f"it declares a size too large to allocate ({exc or type(exc).__name__})"
    else:
        reason = str(exc) or type(exc).__name__
    return CorruptFileError(f"cannot read {label}: {reason}")


def _needs_layout_check(t):
    return (pa.types.is_dictionary(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_binary(t) or pa.types.is_large_binary(t)
            or pa.types.is_string_view(t) or pa.types.is_binary_view(t))


def _checked(batch, label, dictionaries):
    """``batch`` after :func:`~segmint.io.columns.check_layout` of its string and dictionary
    columns (numeric columns have nothing beyond ``validate()`` to check, and stay zero-copy).

    ``dictionaries`` maps a column name to its last checked dictionary (updated here)."""
    for i, field in enumerate(batch.schema):
        if not _needs_layout_check(field.type):
            continue
        column = batch.column(i)
        try:
            fixed = check_layout(column, dictionaries.get(field.name))
        except LayoutError as exc:
            raise CorruptFileError(f"{label} is damaged: column {field.name!r}: {exc}") from None
        if pa.types.is_dictionary(field.type):
            dictionaries[field.name] = column.dictionary
        if fixed is not column:
            batch = batch.set_column(i, field, fixed)
    return batch


# ---------------------------------------------------------------------------- files
class IpcFileSource(Source):
    """An Arrow IPC (Feather v2) file, memory-mapped."""

    kind = "ipc"

    def __init__(self, path, label):
        self.path = path
        try:
            self.memory_map = pa.memory_map(str(path), "r")
            reader = ipc.open_file(self.memory_map)
            schema = reader.schema
            self._num_rows = reader.count_rows()
            self._num_record_batches = reader.num_record_batches
            self._zero_copy = self._probe_zero_copy(reader)
        except _READ_ERRORS as exc:
            raise _corrupt(label, exc) from None
        self._checked_dictionaries = {}
        super().__init__(schema, label)

    def _probe_zero_copy(self, reader):
        if reader.num_record_batches == 0 or reader.schema.names == []:
            return True
        column = reader.get_batch(0).column(0)
        buffers = [b for b in column.buffers() if b is not None]
        return all(self._in_mapping(b.address) for b in buffers)

    def _in_mapping(self, address):
        base, size = self.mapped_range()
        return base <= address < base + size

    def mapped_range(self):
        """``(start address, size)`` of the file's memory mapping (for zero-copy checks)."""
        self.memory_map.seek(0)
        whole = self.memory_map.read_buffer(self.memory_map.size())
        return whole.address, whole.size

    @property
    def num_rows(self):
        return self._num_rows

    @property
    def zero_copy(self):
        return self._zero_copy

    @property
    def paths(self):
        return (self.path,)

    def _record_batches(self, names, batch_size):
        indices = sorted(self._schema.get_field_index(n) for n in names)
        try:
            if self._zero_copy or not names:
                # projecting with included_fields makes Arrow copy out of the mapping: on an
                # uncompressed file read whole batches (free) and select columns afterwards
                reader = ipc.open_file(self.memory_map)
            else:  # compressed: decompress only the columns asked for (in schema order)
                reader = ipc.open_file(self.memory_map, options=ipc.IpcReadOptions(included_fields=indices))
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                batch.validate()  # cheap structural check: catches bodies shorter than declared
                if not names:
                    yield _empty_batch(batch.num_rows)
                    continue
                yield _checked(batch.select(names), self.label, self._checked_dictionaries)
        except SegmintError:
            raise
        except _READ_ERRORS as exc:
            raise _corrupt(self.label, exc) from None

    def close(self):
        self.memory_map.close()


class IpcStreamSource(Source):
    """An Arrow IPC stream file: no footer, so every pass reads front to back."""

    kind = "ipc-stream"

    def __init__(self, path, label):
        self.path = path
        try:
            with pa.memory_map(str(path), "r") as mm:
                schema = ipc.open_stream(mm).schema
        except _READ_ERRORS as exc:
            raise _corrupt(label, exc) from None
        self._num_rows = None
        self._checked_dictionaries = {}
        super().__init__(schema, label)

    @property
    def paths(self):
        return (self.path,)

    @property
    def num_rows(self):
        if self._num_rows is None:  # the format keeps no count: one pass, batch by batch
            self._num_rows = sum(b.num_rows for b in self._record_batches([], DEFAULT_BATCH_SIZE))
        return self._num_rows

    def _record_batches(self, names, batch_size):
        try:
            with pa.memory_map(str(self.path), "r") as mm:
                reader = ipc.open_stream(mm)
                message_end = mm.tell()
                for batch in reader:
                    batch.validate()
                    yield _checked(batch.select(names), self.label, self._checked_dictionaries)
                    message_end = mm.tell()
                self._check_end(mm, message_end)
        except SegmintError:
            raise
        except _READ_ERRORS as exc:
            raise _corrupt(self.label, exc) from None

    def _check_end(self, mm, message_end):
        """Refuse a stream cut between two messages: pyarrow reads it as complete, but the
        bytes after the last record batch must be the end-of-stream marker."""
        end = mm.tell()
        mm.seek(message_end)
        marker = mm.read(end - message_end)
        if marker not in (_STREAM_END, _LEGACY_STREAM_END):
            raise CorruptFileError(
                f"{self.label} is truncated: the Arrow IPC stream stops between two messages, "
                "without its end-of-stream marker, so rows may be missing")


class ParquetSource(Source):
    """A Parquet file or a directory of Parquet files (read in sorted path order)."""

    kind = "parquet"

    def __init__(self, files, label, root=None):
        self.files = files
        self.root = root if root is not None else files[0]
        try:
            for f in files:
                _check_parquet_footer(f, label)
            self._metadata = [pq.read_metadata(str(f)) for f in files]
            schema = pq.read_schema(str(files[0]))
            for f in files[1:]:
                other = pq.read_schema(str(f))
                if not other.equals(schema, check_metadata=False):
                    raise CorruptFileError(
                        f"{label}: {f.name} has schema {other} but {files[0].name} has {schema}; "
                        "every file of a dataset must have the same columns and types")
        except SegmintError:
            raise
        except _READ_ERRORS as exc:
            raise _corrupt(label, exc) from None
        super().__init__(_as_read(schema), label)

    @property
    def paths(self):
        # the folder and each file: a part may be a symlink to a file outside the folder
        return (self.root, *self.files)

    @property
    def num_rows(self):
        return sum(m.num_rows for m in self._metadata)

    def _record_batches(self, names, batch_size):
        strings = [n for n in names if _is_string_like(self._schema.field(n).type)]
        try:
            for f in self.files:
                # pre_buffer off: with it, pyarrow keeps read-ahead buffers that grow the resident
                # memory with the rows read (a streaming pass must stay bounded)
                pf = pq.ParquetFile(str(f), read_dictionary=strings, pre_buffer=False)
                if not names:
                    for rg in range(pf.num_row_groups):
                        yield _empty_batch(pf.metadata.row_group(rg).num_rows)
                    continue
                for batch in pf.iter_batches(batch_size=batch_size, columns=names, use_threads=True):
                    yield batch
        except SegmintError:
            raise
        except _READ_ERRORS as exc:
            raise _corrupt(self.label, exc) from None


def _as_read(schema):
    """The schema of the batches pyarrow's Parquet reader gives: it restores dictionary columns
    with int32 indices whatever index type was written (e.g. int16 segment labels)."""
    fields = []
    for f in schema:
        if pa.types.is_dictionary(f.type) and f.type.index_type != pa.int32():
            f = f.with_type(pa.dictionary(pa.int32(), f.type.value_type, f.type.ordered))
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def _empty_batch(num_rows):
    """A record batch with no columns and ``num_rows`` rows."""
    return pa.record_batch([pa.nulls(num_rows)], names=["_"]).select([])


def _open_path(path, name):
    label = name or repr(str(path))
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        hint = ""
        if parent.is_dir():
            from ..errors import closest_names
            near = closest_names(path.name, [p.name for p in parent.iterdir()])
            if near:
                hint = "; did you mean " + " or ".join(repr(str(parent / n)) for n in near) + "?"
        raise SourceNotFoundError(f"no such file or directory: {str(path)!r}{hint}")
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        return ParquetSource(_dataset_files(path), label, root=path)
    if not stat.S_ISREG(mode):
        # a device, FIFO or socket never ends (/dev/zero) or blocks the open (a FIFO)
        raise CorruptFileError(f"{label} is {_file_kind(mode)}, not a regular file; segmint reads "
                               "Arrow IPC and Parquet files, or a folder of Parquet files")
    with path.open("rb") as fh:
        head = fh.read(8)
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        tail = b""
        if size >= 6:
            fh.seek(size - 6)
            tail = fh.read(6)
    if head[:6] == _IPC_MAGIC:
        if tail != _IPC_MAGIC:
            raise CorruptFileError(f"{label} is truncated: an Arrow IPC file must end with its footer")
        return IpcFileSource(path, label)
    if head[:4] == _PARQUET_MAGIC:
        if tail[-4:] != _PARQUET_MAGIC:
            raise CorruptFileError(f"{label} is truncated: a Parquet file must end with its footer")
        return ParquetSource([path], label)
    if head[:4] == _FEATHER_V1_MAGIC:
        raise CorruptFileError(f"{label} is a Feather v1 file; rewrite it as Feather v2 / Arrow IPC "
                               "(pyarrow.feather.write_feather(table, path, version=2))")
    if head[:4] == _STREAM_CONTINUATION:
        return IpcStreamSource(path, label)
    if size == 0:
        raise CorruptFileError(f"{label} is empty")
    raise CorruptFileError(f"{label} is neither an Arrow IPC / Feather v2 file nor a Parquet file "
                           "(its first bytes are not a known magic number)")


def _check_parquet_footer(path, label):
    """Refuse a Parquet file whose footer length (its last 8 bytes: length, then ``PAR1``) is
    larger than the file or than :data:`MAX_PARQUET_FOOTER`, before pyarrow allocates it."""
    with Path(path).open("rb") as fh:  # (this module's open is segmint.open)
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size < 12:
            raise CorruptFileError(f"{label}: {str(path)!r} is too short to be a Parquet file")
        fh.seek(size - 8)
        tail = fh.read(8)
    declared = int.from_bytes(tail[:4], "little")
    if tail[4:] != _PARQUET_MAGIC or declared > size - 12:
        raise CorruptFileError(f"{label}: {str(path)!r} is truncated or damaged: its Parquet footer "
                               f"declares {declared:,} bytes in a file of {size:,}")
    if declared > MAX_PARQUET_FOOTER:
        raise CorruptFileError(f"{label}: {str(path)!r} declares a Parquet footer of {declared:,} "
                               f"bytes; segmint reads footers of at most {MAX_PARQUET_FOOTER:,}")


def _dataset_files(folder):
    """The Parquet files of a dataset folder, in sorted path order; refuses other kinds of
    entries with a Parquet name (a FIFO among the parts would block the read)."""
    files = []
    for p in sorted(folder.rglob("*")):
        if _hidden(p, folder) or p.suffix.lower() not in (".parquet", ".pq", ".parq"):
            continue
        try:
            mode = p.stat().st_mode
        except OSError as exc:  # a dangling link, a link loop, a part deleted meanwhile
            raise CorruptFileError(f"cannot read {str(p)!r} in dataset {str(folder)!r}: {exc}") from None
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            raise CorruptFileError(f"{str(p)!r} in dataset {str(folder)!r} is {_file_kind(mode)}, "
                                   "not a regular file")
        files.append(p)
    if not files:
        raise CorruptFileError(f"directory {str(folder)!r} holds no .parquet files")
    return files


def _file_kind(mode):
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _hidden(p, root):
    return any(part.startswith((".", "_")) for part in p.relative_to(root).parts)


# ---------------------------------------------------------------------------- memory
class TableSource(Source):
    """Data held in memory as a pyarrow Table. String columns are dictionary-encoded once."""

    kind = "table"

    def __init__(self, table, label):
        super().__init__(table.schema, label)
        self.table = table
        self._encoded = {}

    @property
    def num_rows(self):
        return self.table.num_rows

    @property
    def zero_copy(self):
        return True

    def _chunked(self, name):
        column = self.table.column(name)
        if not _is_string_like(column.type):
            return column
        encoded = self._encoded.get(name)
        if encoded is None:
            # one encoding of the whole column: every chunk shares one dictionary (chunks are
            # encoded on the thread pool, then their dictionaries unified, all in Arrow)
            if not pa.types.is_dictionary(column.type):
                from .._parallel import run_chunks
                column = pa.chunked_array(run_chunks(pc.dictionary_encode, column.chunks),
                                          type=pa.dictionary(pa.int32(), column.type))
            encoded = column.unify_dictionaries()
            self._encoded[name] = encoded
        return encoded

    def _record_batches(self, names, batch_size):
        if not names:
            yield from (_empty_batch(b.num_rows) for b in self.table.select([]).to_batches(batch_size))
            return
        table = pa.Table.from_arrays([self._chunked(n) for n in names], names=names)
        yield from table.to_batches(max_chunksize=batch_size)


class ReaderSource(Source):
    """A stream of record batches (a pyarrow RecordBatchReader, or a reader imported from an
    Arrow C stream): it can be read once."""

    kind = "reader"
    one_shot = True

    def __init__(self, reader, label):
        super().__init__(reader.schema, label)
        self._reader = reader
        self._consumed = False

    @property
    def num_rows(self):
        return None

    def _record_batches(self, names, batch_size):
        if self._consumed:
            raise SourceConsumedError(
                f"{self.label} is a stream and was already read once; open the data "
                "again, or pass a Table or a file to read it several times")
        self._consumed = True
        batches = iter(self._reader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as exc:  # the producer failed mid-stream (a query's error...)
                raise _producer_error(f"reading {self.label} failed", exc) from None
            yield batch.select(names) if names else _empty_batch(batch.num_rows)

    def close(self):
        """Release the stream (a database's result set, say) whether or not it was read."""
        try:
            self._reader.close()
        except Exception:  # closing twice, or a producer that cannot: nothing left to release
            pass


def _producer_error(what, exc):
    """A producer's own exception (pyarrow's, DuckDB's, a driver's...) as a DataError."""
    if isinstance(exc, SegmintError):
        return exc
    return DataError(f"{what}: {type(exc).__name__}: {exc}")


def _open_stream(data, label):
    """A one-shot source over an object exporting ``__arrow_c_stream__``.

    pyarrow imports the C stream without copying: each record batch's buffers stay the
    producer's. A producer may re-run its work on every export (a DuckDB relation re-runs
    its query, perhaps in another row order) or yield nothing the second time (a reader):
    either would break a source read several times, so one export is made, read once.
    """
    try:
        reader = pa.RecordBatchReader.from_stream(data)
    except Exception as exc:  # the producer's refusal (a busy connection...) or not a table
        raise _producer_error(f"cannot read {label} through the Arrow C stream interface", exc) from None
    return ReaderSource(reader, label)


def _open_memory(data, name):
    if isinstance(data, pa.Table):
        return TableSource(data, name or "a pyarrow Table")
    if isinstance(data, pa.RecordBatch):
        return TableSource(pa.Table.from_batches([data]), name or "a pyarrow RecordBatch")
    if isinstance(data, pa.RecordBatchReader):
        return ReaderSource(data, name or "a pyarrow RecordBatchReader")
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        names = [str(c) for c in data.columns]
        _check_duplicates(pa.schema([(n, pa.null()) for n in names]), name or "the DataFrame")
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"cannot convert the pandas DataFrame to Arrow: {exc}") from None
        return TableSource(table, name or "a pandas DataFrame")
    if module == "polars" and hasattr(data, "__arrow_c_stream__") and hasattr(data, "columns"):
        # a DataFrame in memory: one Table over its own buffers, read as often as asked
        try:
            table = pa.table(data)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataError(f"cannot read the polars DataFrame through Arrow: {exc}") from None
        return TableSource(table, name or "a polars DataFrame")
    if hasattr(type(data), "__arrow_c_stream__"):
        return _open_stream(data, name or f"a {type(data).__name__} (Arrow stream)")
    if isinstance(data, dict):
        return TableSource(_table_from_dict(data), name or "a dict of arrays")
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise DataError(f"a numpy array source must be 2-D (rows x features), got shape {data.shape}")
        arrays = {f"x{j}": data[:, j] for j in range(data.shape[1])}
        return TableSource(_table_from_dict(arrays), name or "a 2-D numpy array")
    raise DataError(
        f"segmint.open cannot read an object of type {type(data).__name__}; give a path, a "
        "pyarrow Table/RecordBatch/RecordBatchReader, a pandas or polars DataFrame, an object "
        "with __arrow_c_stream__ (DuckDB relation, ADBC reader...), a dict of arrays or a "
        "2-D numpy array")


def _table_from_dict(data):
    arrays, names = [], []
    length = None
    for key, value in data.items():
        name = str(key)
        try:
            if isinstance(value, (pa.Array, pa.ChunkedArray)):
                array = value
            elif isinstance(value, np.ma.MaskedArray):
                array = pa.array(np.ma.getdata(value), mask=np.ma.getmaskarray(value))
            else:
                value = np.asarray(value) if not isinstance(value, list) else value
                if isinstance(value, np.ndarray) and value.ndim != 1:
                    raise DataError(f"column {name!r} must be 1-D, got shape {value.shape}")
                array = pa.array(value)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"column {name!r} cannot be converted to Arrow: {exc}") from None
        if length is not None and len(array) != length:
            raise DataError(f"column {name!r} has {len(array)} rows but {names[0]!r} has {length}")
        length = len(array)
        arrays.append(array)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)
