"""Chunk descriptors: a Parquet dataset cut into fixed row ranges any worker reads on its own.

A :class:`Chunk` is plain data (an index, its first global row, its row count, and the
``(path, row group, lo, hi)`` pieces holding those rows), built on the client from the files'
footers only: no data read, no open file or memory map shipped to a worker. Chunks cover the
dataset's rows in the order :func:`segmint.open` reads them (files in sorted path order, row
groups in file order) and every chunk but the last holds exactly ``rows_per_chunk`` rows, a
multiple of local segmint's accumulation chunk (:data:`segmint.cluster._passes.CHUNK`, 65,536
rows). So a worker's partial results line up with the chunks a local pass accumulates, and the
client, combining them in chunk order, gets local segmint's bits whatever the workers, their
threads or the dataset's files and row groups.

The row counts are fixed by the footers, whichever columns a task reads.
"""
import os
from pathlib import Path
from typing import NamedTuple

from .._lazy import lazy_import
from ..errors import ParameterError, SegmintError
from ..io import source as _source

pq = lazy_import("pyarrow.parquet")
pa = lazy_import("pyarrow")

ALIGN = 65_536  # segmint.cluster._passes.CHUNK (not imported: that loads the clustering code)
CHUNK_ROWS = 16 * ALIGN  # 1,048,576 rows a task by default


class Piece(NamedTuple):
    """Rows ``lo..hi`` (end excluded) of row group ``row_group`` of the Parquet file ``path``."""

    path: str
    row_group: int
    lo: int
    hi: int


class Chunk(NamedTuple):
    """Global rows ``start..start + rows`` of a dataset, and the pieces of files that hold them.

    Attributes
    ----------
    index : int
        Position among the dataset's chunks (0, 1, ...): the order results are combined in.
    start : int
        Global index of the chunk's first row (a multiple of ``rows_per_chunk``).
    rows : int
    pieces : tuple of Piece
        In row order.
    label : str
        How errors name the dataset.
    """

    index: int
    start: int
    rows: int
    pieces: tuple
    label: str


class Dataset(NamedTuple):
    """A Parquet dataset's chunks, schema (as segmint reads it) and row count."""

    chunks: tuple
    schema: object
    num_rows: int
    label: str


def parquet_chunks(path, rows_per_chunk=CHUNK_ROWS, label=None):
    """Cut a Parquet file, a folder of Parquet files or a list of Parquet files into chunks.

    Parameters
    ----------
    path : str, Path or list of them
        What :func:`segmint.open` accepts for Parquet (a list: its files, in the order given).
    rows_per_chunk : int
        Rows per chunk (the last may hold fewer): a positive multiple of 65,536.
    label : str, optional
        How errors name the dataset (default: the path).

    Returns
    -------
    Dataset
        Footers are checked as :func:`segmint.open` checks them (size bound, one schema for
        every file); nothing else is read.
    """
    if (isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, int)
            or rows_per_chunk <= 0 or rows_per_chunk % ALIGN):
        raise ParameterError(f"rows_per_chunk must be a positive multiple of {ALIGN:,}, got {rows_per_chunk!r}")
    if isinstance(path, (list, tuple)):
        if not path:
            raise ParameterError("an empty list of Parquet files")
        files = [Path(p) for p in path]
        for f in files:
            if not f.is_file():
                raise _source.SourceNotFoundError(f"no such Parquet file: {str(f)!r}")
        src = _source.ParquetSource(files, label or f"the {len(files)} Parquet files")
    else:
        src = _source.open(path, label=label)
        if src.kind != "parquet":
            src.close()
            raise ParameterError(f"{src.label} is not Parquet (a {src.kind} source): segmint.dask "
                                 "reads Parquet files, folders of them, or a dask DataFrame")
    try:
        groups = []  # (path, row group, rows) in read order
        for f, meta in zip(src.files, src._metadata):
            # absolute: a worker resolves a relative path against its own working folder (where
            # another file of that name would be read silently)
            f = os.path.abspath(f)
            for rg in range(meta.num_row_groups):
                n = meta.row_group(rg).num_rows
                if n:
                    groups.append((f, rg, n))
        total = sum(n for _, _, n in groups)
        chunks = []
        pieces, start, filled = [], 0, 0
        for f, rg, n in groups:
            lo = 0
            while lo < n:
                take = min(n - lo, rows_per_chunk - filled)
                pieces.append(Piece(f, rg, lo, lo + take))
                lo += take
                filled += take
                if filled == rows_per_chunk:
                    chunks.append(Chunk(len(chunks), start, filled, tuple(pieces), src.label))
                    start += filled
                    pieces, filled = [], 0
        if filled:
            chunks.append(Chunk(len(chunks), start, filled, tuple(pieces), src.label))
        return Dataset(tuple(chunks), src.schema, total, src.label)
    finally:
        src.close()


def read_chunk(chunk, columns, strings=None):
    """The chunk's rows of ``columns`` as a pyarrow Table (on a worker).

    Parameters
    ----------
    chunk : Chunk
    columns : list of str
    strings : list of str, optional
        String columns to read dictionary-encoded (as :func:`segmint.open` reads them).

    Returns
    -------
    pyarrow.Table
        ``chunk.rows`` rows; a file changed since the chunks were cut (fewer rows, another
        schema) or damaged is a :class:`~segmint.errors.CorruptFileError` naming it.
    """
    if not columns:  # no column to read (rules on constants): the rows still count
        return pa.table({"_": pa.nulls(chunk.rows)}).select([])
    parts = []
    try:
        files = {}
        for piece in chunk.pieces:
            pf = files.get(piece.path)
            if pf is None:
                _source._check_parquet_footer(piece.path, chunk.label)
                pf = files[piece.path] = pq.ParquetFile(piece.path, read_dictionary=strings or None,
                                                        pre_buffer=False)
            table = pf.read_row_group(piece.row_group, columns=list(columns), use_threads=False)
            if table.num_rows < piece.hi:
                raise _source.CorruptFileError(
                    f"{chunk.label}: {Path(piece.path).name} row group {piece.row_group} holds "
                    f"{table.num_rows} rows, {piece.hi} expected: the file changed since the job started")
            parts.append(table.slice(piece.lo, piece.hi - piece.lo))
    except SegmintError:
        raise
    except _source._READ_ERRORS as exc:
        raise _source._corrupt(chunk.label, exc) from None
    try:
        return pa.concat_tables(parts)
    except pa.ArrowInvalid as exc:
        raise _source.CorruptFileError(f"{chunk.label}: the files' schemas changed since the job "
                                       f"started ({exc})") from None
