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
import math
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
# Reading a piece of a row group: rows per record batch when the piece's bounds share no large
# divisor, and bytes read at a time from a column chunk (see read_chunk)
READ_BATCH = ALIGN
READ_BUFFER = 1 << 20


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

    Only the chunk's rows are read: each piece streams its row group in batches and stops at
    the piece's last row, so a chunk much smaller than its row group no longer reads and
    decodes the whole group (pyarrow has no row-range read: the rows of the group before the
    piece are still decoded, then dropped).

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
    batches = []
    try:
        files = {}
        for piece in chunk.pieces:
            pf = files.get(piece.path)
            if pf is None:
                _source._check_parquet_footer(piece.path, chunk.label)
                # pre_buffer off and a read buffer: the column chunks are read as the batches
                # need them, so the bytes after the piece are not read either
                pf = files[piece.path] = pq.ParquetFile(piece.path, read_dictionary=strings or None,
                                                        pre_buffer=False, buffer_size=READ_BUFFER)
            batches.extend(_piece_batches(pf, piece, list(columns), chunk.label))
    except SegmintError:
        raise
    except _source._READ_ERRORS as exc:
        raise _source._corrupt(chunk.label, exc) from None
    try:
        return pa.Table.from_batches(batches)
    except pa.ArrowInvalid as exc:
        raise _source.CorruptFileError(f"{chunk.label}: the files' schemas changed since the job "
                                       f"started ({exc})") from None


def _piece_batches(pf, piece, columns, label):
    """Record batches holding rows ``lo..hi`` of the piece's row group, read up to ``hi`` only.

    Batches are as long as the largest common divisor of ``lo`` and the piece's length (the
    piece then starts and ends on batch bounds: chunks of a large row group arrive in whole
    batches, no slicing), or ``READ_BATCH`` rows when that divisor is small (odd row groups).
    """
    def changed(rows):
        return _source.CorruptFileError(
            f"{label}: {Path(piece.path).name} row group {piece.row_group} holds {rows} rows, "
            f"{piece.hi} expected: the file changed since the job started")

    if piece.row_group >= pf.metadata.num_row_groups:
        raise _source.CorruptFileError(
            f"{label}: {Path(piece.path).name} has {pf.metadata.num_row_groups} row groups, row group "
            f"{piece.row_group} expected: the file changed since the job started")
    declared = pf.metadata.row_group(piece.row_group).num_rows
    if declared < piece.hi:
        raise changed(declared)
    size = piece.hi - piece.lo
    step = math.gcd(piece.lo, size)
    if step < READ_BATCH:
        step = min(size, READ_BATCH)
    out, pos = [], 0
    reader = pf.iter_batches(batch_size=step, row_groups=[piece.row_group], columns=columns,
                             use_threads=False)
    try:
        for batch in reader:
            end = pos + batch.num_rows
            if end > piece.lo:
                lo = max(pos, piece.lo)
                out.append(batch.slice(lo - pos, min(end, piece.hi) - lo))
            pos = end
            if pos >= piece.hi:
                break
    finally:
        reader.close()  # stop the reader now: nothing after hi is decoded
    if pos < piece.hi:  # the footer promised rows the pages do not hold
        raise changed(pos)
    return out
