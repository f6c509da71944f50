"""What scoring and warm-up were given: the client, and a table input cut into units of work.

(Kept apart from :mod:`segmint.dask.data`, which turns inputs into clustering feature blocks.)

Two kinds of table input become units a task handles on its own, without an open file or
memory map crossing the network:

- a Parquet file, folder or list of files: :class:`~segmint.dask.chunks.Chunk` descriptors cut
  from the footers (fixed global row ranges, :func:`~segmint.dask.chunks.parquet_chunks`);
- a dask DataFrame: its partitions, each converted to Arrow with one schema for all of them
  (so that a partition whose object column happens to be all None is not typed differently
  from the others): the types of the DataFrame's ``meta``, except where ``meta`` says nothing
  (an object column is ``null`` there, a categorical of unknown values ``dictionary<null>``),
  and only for the columns a job reads (see :func:`frame_schema`).
"""
import glob
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

from ..errors import ParameterError
from . import chunks as _chunks


def resolve_client(client=None):
    """``client``, or the current ``distributed`` client; a clear error when there is none."""
    import distributed

    if client is not None:
        if not isinstance(client, distributed.Client):
            raise ParameterError(f"client must be a distributed.Client, got {type(client).__name__}")
        return client
    try:
        return distributed.get_client()
    except ValueError:
        raise ParameterError("no Dask client is running: connect one first (Client('tcp://scheduler:8786') "
                             "or Client(LocalCluster())) or pass client=") from None


class ParquetInput(NamedTuple):
    """A Parquet dataset cut into chunks, and the paths it reads (never written over)."""

    dataset: object   # segmint.dask.chunks.Dataset
    paths: tuple      # the paths given and the files read

    @property
    def schema(self):
        return self.dataset.schema


class FrameInput(NamedTuple):
    """A dask DataFrame, the Arrow schema of its ``meta`` (a column ``meta`` cannot type is
    ``null`` there: see :func:`frame_schema`) and the paths it reads (never written over)."""

    frame: object
    schema: object
    label: str
    paths: tuple

    def partitions(self, columns):
        """The partitions of ``columns`` only (delayed pandas DataFrames), in order: the other
        columns are never computed nor converted (a Parquet read reads only these). Their
        number may be smaller than the frame's: dask combines the partitions of a Parquet read
        when it reads fewer columns."""
        labels = {str(c): c for c in self.frame.columns}
        return list(self.frame[[labels[c] for c in columns]].to_delayed())


def is_dask_dataframe(data):
    """True for a dask DataFrame (without importing dask.dataframe for other inputs)."""
    dd = sys.modules.get("dask.dataframe")
    return dd is not None and isinstance(data, dd.DataFrame)


def table_input(data, rows_per_chunk=_chunks.CHUNK_ROWS):
    """A :class:`ParquetInput` or :class:`FrameInput` for ``data`` (a Parquet path, list of
    Parquet files, or dask DataFrame); anything else is a :class:`ParameterError` saying what
    is accepted."""
    if is_dask_dataframe(data):
        return FrameInput(data, _meta_schema(data._meta), "the dask DataFrame", frame_paths(data))
    if isinstance(data, (str, os.PathLike)) or (
            isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, os.PathLike)) for p in data)):
        given = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        dataset = _chunks.parquet_chunks(data if isinstance(data, (str, os.PathLike)) else given, rows_per_chunk)
        read = {piece.path for chunk in dataset.chunks for piece in chunk.pieces}
        return ParquetInput(dataset, tuple(Path(p) for p in given) + tuple(sorted(Path(p) for p in read)))
    raise ParameterError(f"segmint.dask reads a Parquet file, a folder of them, a list of them or a dask "
                         f"DataFrame here, got {type(data).__name__}")


# -- dask DataFrames ----------------------------------------------------------------------------
def _meta_schema(meta):
    """The Arrow schema of a dask DataFrame's ``meta`` (an empty pandas DataFrame), column by
    column: a column ``meta`` cannot type (e.g. a categorical of mixed categories) is ``null``,
    like an object column, and is typed from the data if a job reads it (:func:`frame_schema`)."""
    import pyarrow as pa

    fields = []
    for label in meta.columns:
        name = str(label)
        if _unknown_categories(meta[label]):  # dask's placeholder category, not the values
            fields.append(pa.field(name, pa.dictionary(pa.int32(), pa.null())))
            continue
        try:
            field = pa.Schema.from_pandas(meta[[label]], preserve_index=False).field(0)
        except (pa.ArrowException, TypeError, ValueError):
            field = pa.field(name, pa.null())
        fields.append(field.with_name(name))
    try:
        return pa.schema(fields)
    except (pa.ArrowException, TypeError) as exc:  # e.g. two labels with one name as text
        raise ParameterError(f"the dask DataFrame's columns have no Arrow schema: {exc}") from None


def untyped(arrow_type):
    """True for the types a pandas ``meta`` gives when it says nothing: ``null`` (an object
    column) and ``dictionary<null>`` (a categorical whose categories it does not hold)."""
    import pyarrow as pa

    return pa.types.is_null(arrow_type) or (pa.types.is_dictionary(arrow_type)
                                           and pa.types.is_null(arrow_type.value_type))


def _unknown_categories(series):
    """True for a categorical whose ``meta`` holds dask's placeholder instead of its categories
    (a Parquet read of a pandas categorical, ``.cat.as_unknown()``): Arrow would type the
    placeholder (strings), not the values."""
    dtype = getattr(series, "dtype", None)
    if getattr(dtype, "name", None) != "category":
        return False
    try:
        from dask.dataframe.utils import has_known_categories
    except ImportError:  # pragma: no cover - dask without its dataframe part
        return False
    return not has_known_categories(series)


def frame_schema(inp, names, client):
    """``inp.schema`` with the columns of ``names`` that ``meta`` left untyped typed from the
    data, as local segmint types the whole column: each partition's Arrow type of each such
    column is inferred on the cluster (one parallel pass over those columns only), and the
    types are unified in partition order with Arrow's permissive promotion (int64 and double:
    double; decimals: the scale and precision that hold both; dictionaries of strings: int32
    indices, as a Parquet read gives; of numbers: the numbers). Every partition is then converted to that one type, safely
    (:func:`partition_table`). A column with no value in any partition stays ``null``; one
    Arrow cannot type, or whose partitions' types do not unify, is a
    :class:`~segmint.errors.DataError` naming it and the partition.
    """
    import dask
    import pyarrow as pa

    from ..errors import DataError

    wanted = [n for n in dict.fromkeys(names) if n in inp.schema.names and untyped(inp.schema.field(n).type)]
    if not wanted:
        return inp.schema
    parts = inp.partitions(wanted)
    inferred = client.compute([dask.delayed(_partition_types, pure=True)(part, wanted) for part in parts],
                              sync=True)
    types = {}
    for index, found in enumerate(inferred):
        for name, (arrow_type, dtype, problem) in zip(wanted, found):
            if problem is not None:
                raise DataError(f"{inp.label}, partition {index} of {len(parts)}: column {name!r} "
                                f"(dtype {dtype}) cannot be converted to Arrow: {problem}")
            if untyped(arrow_type):
                continue
            if name not in types:
                types[name] = (arrow_type, index)
                continue
            try:
                unified = pa.unify_schemas([pa.schema([pa.field(name, types[name][0])]),
                                            pa.schema([pa.field(name, arrow_type)])],
                                           promote_options="permissive").field(0).type
            except (pa.ArrowException, TypeError, ValueError):
                raise DataError(f"{inp.label}: column {name!r} holds {types[name][0]} in partition "
                                f"{types[name][1]} and {arrow_type} in partition {index} of {len(parts)}: "
                                "one column needs one type") from None
            types[name] = (unified, types[name][1])
    if not types:
        return inp.schema
    fields = [f.with_type(types[f.name][0]) if f.name in types else f for f in inp.schema]
    return pa.schema(fields, metadata=inp.schema.metadata)


def _partition_types(frame, names):
    """On a worker: per column of ``names``, (the Arrow type pyarrow infers for this partition's
    values, with dictionary indices widened to int32; the pandas dtype; the problem or None)."""
    import pyarrow as pa

    out = []
    for position, _ in enumerate(names):
        series = frame.iloc[:, position]
        try:
            arrow_type = pa.array(series, from_pandas=True).type
        except (pa.ArrowException, TypeError, ValueError) as exc:
            out.append((None, str(series.dtype), str(exc)))
            continue
        if pa.types.is_dictionary(arrow_type):
            value = arrow_type.value_type
            # strings stay dictionary-encoded (int32 indices, as a Parquet read gives them);
            # a categorical of numbers is its numbers, as segmint reads those files locally
            arrow_type = pa.dictionary(pa.int32(), value) if (pa.types.is_string(value)
                                                              or pa.types.is_large_string(value)) else value
        out.append((arrow_type, str(series.dtype), None))
    return out


def frame_chunk_reads(frame, columns, schema, rows_per_chunk, client):
    """Chunks of fixed global rows over a dask DataFrame's partitions (of ``columns`` only),
    in order: one ``("frame", pieces, schema of columns, first global row)`` per chunk, each
    piece ``(delayed partition, lo, hi, partition index, partitions)``, so a chunk is the same
    rows however the frame is partitioned.

    The lengths are those of these very partitions (one ``len`` task each): computing the
    frame's own ``map_partitions(len)`` lets dask fuse the partitions of a Parquet read of few
    columns (4 lengths for 20 partitions), and slices would then pair with the wrong partition
    (a reviewer's probe lost 80% of the events that way).
    """
    import dask
    import numpy as np
    import pyarrow as pa

    labels = {str(c): c for c in frame.columns}
    parts = frame[[labels[c] for c in columns]].to_delayed()
    lengths = [int(n) for n in client.compute([dask.delayed(len)(p) for p in parts], sync=True)]
    ends = np.cumsum([0] + lengths)
    total = int(ends[-1])
    read_schema = pa.schema([schema.field(c) for c in columns])
    reads = []
    for start in range(0, total, rows_per_chunk):
        stop = min(start + rows_per_chunk, total)
        pieces = []
        for i in range(len(lengths)):
            lo, hi = max(start, int(ends[i])), min(stop, int(ends[i + 1]))
            if hi > lo:
                pieces.append((parts[i], lo - int(ends[i]), hi - int(ends[i]), i, len(lengths)))
        reads.append(("frame", pieces, read_schema, start))
    return reads


def partition_table(frame, schema, where):
    """One partition (a pandas DataFrame holding ``schema``'s columns, in order) as an Arrow
    table of ``schema``: each column converted as pyarrow infers it, then cast to the schema's
    type *safely*, so a value the type cannot hold (2.5 in an integer column, a decimal's lost
    digits) is a :class:`~segmint.errors.DataError` naming the column, its dtype and ``where``
    (e.g. "the dask DataFrame, partition 3 of 8"; None: the caller adds it), never a silently
    changed value."""
    import pyarrow as pa

    from ..errors import DataError

    arrays = []
    for position, field in enumerate(schema):
        series = frame.iloc[:, position]
        try:
            array = pa.array(series, from_pandas=True)
            if array.type != field.type:
                array = array.cast(field.type, safe=True)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataError(f"{where + ': ' if where else ''}column {field.name!r} (dtype {series.dtype}) "
                            f"cannot be read as {field.type}: {exc}") from None
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema)


def frame_paths(frame):
    """The files and folders a dask DataFrame reads, as far as its expression says: the
    ``path`` of every Parquet read in it (``dd.read_parquet``), globs expanded, local paths
    only. A frame built from pandas, arrays or delayed objects names no file: nothing to
    protect, the empty tuple (and so for readers other than Parquet, which this does not know).
    """
    try:
        from dask.dataframe.dask_expr.io.parquet import ReadParquet
    except ImportError:  # a dask without expressions: no reader to look into
        return ()
    expr = getattr(frame, "expr", None)
    if expr is None:
        return ()
    paths = []
    for node in expr.walk():
        if isinstance(node, ReadParquet):
            given = node.operand("path")
            for path in given if isinstance(given, (list, tuple)) else [given]:
                paths.extend(_local_paths(path))
    return tuple(dict.fromkeys(paths))


_MAGIC = re.compile(r"[*?[]")  # what makes a path a glob (as the glob module decides)


def _local_paths(path):
    """A reader's path as local paths: itself, or for a glob the folder it looks in and the
    files it matches; a URL of another file system (``s3://``...) names no local path."""
    if not isinstance(path, (str, os.PathLike)):  # an open file, a buffer: no path to protect
        return []
    path = os.fspath(path)
    if not isinstance(path, str):
        return []
    if path.startswith("file://"):
        path = path[len("file://"):]
    elif "://" in path:
        return []
    if not _MAGIC.search(path):
        return [Path(path)]
    folder = Path(path)
    while _MAGIC.search(str(folder)) and folder != folder.parent:
        folder = folder.parent
    return [folder] + [Path(p) for p in sorted(glob.glob(path, recursive=True))]
