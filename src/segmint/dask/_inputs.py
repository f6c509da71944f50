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


def frame_schema(inp, names, client):
    """``inp.schema`` with the columns of ``names`` that ``meta`` left untyped typed from the
    data: the first partition in which such a column holds a value gives its type (computed on
    the cluster, for those columns only), and every partition is then converted with that one
    type. A column with no value in any partition stays ``null``; one Arrow cannot type is a
    :class:`~segmint.errors.DataError` naming it, its dtype and the partition.
    """
    import pyarrow as pa

    from ..errors import DataError

    wanted = [n for n in dict.fromkeys(names) if n in inp.schema.names and untyped(inp.schema.field(n).type)]
    types = {}
    parts = inp.partitions(wanted) if wanted else []
    for index, part in enumerate(parts):
        frame = client.compute(part).result()
        for position, name in enumerate(wanted):
            if name in types:
                continue
            series = frame.iloc[:, position]
            try:
                arrow_type = pa.array(series, from_pandas=True).type
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise DataError(f"{inp.label}, partition {index} of {len(parts)}: column {name!r} "
                                f"(dtype {series.dtype}) "
                                f"cannot be converted to Arrow: {exc}") from None
            if not untyped(arrow_type):
                types[name] = arrow_type
        if len(types) == len(wanted):
            break
    if not types:
        return inp.schema
    fields = [f.with_type(types[f.name]) if f.name in types else f for f in inp.schema]
    return pa.schema(fields, metadata=inp.schema.metadata)


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
