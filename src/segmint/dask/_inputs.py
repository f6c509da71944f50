"""What scoring and warm-up were given: the client, and a table input cut into units of work.

(Kept apart from :mod:`segmint.dask.data`, which turns inputs into clustering feature blocks.)

Two kinds of table input become units a task handles on its own, without an open file or
memory map crossing the network:

- a Parquet file, folder or list of files: :class:`~segmint.dask.chunks.Chunk` descriptors cut
  from the footers (fixed global row ranges, :func:`~segmint.dask.chunks.parquet_chunks`);
- a dask DataFrame: its partitions, each converted to Arrow with the one schema of the
  DataFrame's ``meta`` (so that a partition whose object column happens to be all None is not
  typed differently from the others).
"""
import os
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
    """A dask DataFrame: its partitions (delayed pandas DataFrames) and their Arrow schema."""

    partitions: list
    schema: object
    label: str


def is_dask_dataframe(data):
    """True for a dask DataFrame (without importing dask.dataframe for other inputs)."""
    dd = sys.modules.get("dask.dataframe")
    return dd is not None and isinstance(data, dd.DataFrame)


def table_input(data, rows_per_chunk=_chunks.CHUNK_ROWS):
    """A :class:`ParquetInput` or :class:`FrameInput` for ``data`` (a Parquet path, list of
    Parquet files, or dask DataFrame); anything else is a :class:`ParameterError` saying what
    is accepted."""
    if is_dask_dataframe(data):
        import pyarrow as pa

        try:
            schema = pa.Schema.from_pandas(data._meta, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise ParameterError(f"the dask DataFrame's columns have no Arrow type: {exc}") from None
        return FrameInput(list(data.to_delayed()), schema,
                          f"the dask DataFrame ({data.npartitions} partitions)")
    if isinstance(data, (str, os.PathLike)) or (
            isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, os.PathLike)) for p in data)):
        given = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        dataset = _chunks.parquet_chunks(data if isinstance(data, (str, os.PathLike)) else given, rows_per_chunk)
        read = {piece.path for chunk in dataset.chunks for piece in chunk.pieces}
        return ParquetInput(dataset, tuple(Path(p) for p in given) + tuple(sorted(Path(p) for p in read)))
    raise ParameterError(f"segmint.dask reads a Parquet file, a folder of them, a list of them or a dask "
                         f"DataFrame here, got {type(data).__name__}")
