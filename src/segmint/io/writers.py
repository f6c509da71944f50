"""Writing results (customer id, segment, scores) to Arrow IPC or Parquet, atomically.

Everything is written to a hidden temporary file (or folder) beside the destination, flushed
to disk, then renamed over the destination. An interrupted job (an exception, Ctrl-C, a
killed process) therefore never leaves a truncated file under the destination's name: at
worst a ``.NAME.tmp-*`` file that says what it is. Exceptions inside a ``with ResultWriter``
block remove the temporary file.

Before any of that, every writer applies the output-path rules of :mod:`segmint.io.outputs`:
no writing over an input (pass ``inputs=``), into the current or home folder, or over a
folder segmint did not write. A Parquet dataset folder gets a marker file listing its parts,
so that a rerun may replace it and nothing else.
"""
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from .._lazy import lazy_import
from ..errors import DataError, OutputError, ParameterError
from . import outputs

pq = lazy_import("pyarrow.parquet")  # on first use: see segmint._lazy

FORMATS = ("ipc", "parquet", "parquet-dataset")
_SUFFIXES = {".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc", ".parquet": "parquet", ".pq": "parquet"}
DEFAULT_ROWS_PER_FILE = 4_000_000


def resolve_format(path, format=None):
    """The output format for ``path``: explicit, or from the suffix (.arrow .feather .ipc .parquet)."""
    if format is not None:
        fmt = {"arrow": "ipc", "feather": "ipc"}.get(format, format)
        if fmt not in FORMATS:
            raise OutputError(f"unknown output format {format!r}; use one of {', '.join(FORMATS)}")
        return fmt
    if Path(path).is_dir() and not Path(path).suffix:
        return "parquet-dataset"
    path = str(path)
    if path.endswith(("/", os.sep)):
        return "parquet-dataset"
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise OutputError(f"cannot tell the format of {path!r} from its suffix; name it .arrow, "
                          ".feather or .parquet, end it with '/' for a Parquet dataset folder, "
                          "or pass format=")
    return fmt


def check_table_output(path, *, inputs=(), format=None, overwrite=True):
    """Check a table output before any work; returns its format (see :func:`resolve_format`).

    Parameters
    ----------
    path : str or os.PathLike
        The destination of :func:`write_table` or :class:`ResultWriter`.
    inputs : iterable of paths, optional
        What the same call reads (e.g. ``Source.paths``): the output may not be, contain or
        lie inside any of them.
    format, overwrite : see :class:`ResultWriter`

    Raises
    ------
    OutputError
        Naming the path and the reason (see :func:`segmint.io.outputs.check_output`).
    """
    outputs.check_location(path)  # before the suffix: "" and "." would read as a folder
    fmt = resolve_format(path, format)
    outputs.check_output(path, inputs=inputs, folder=fmt == "parquet-dataset", overwrite=overwrite)
    return fmt


class ResultWriter:
    """Stream record batches into one output, committed atomically by :meth:`close`.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (``.arrow``/``.feather``/``.ipc`` or ``.parquet``) or folder (Parquet
        dataset: a trailing ``/`` or ``format='parquet-dataset'``). Its parent folder must exist.
    schema : pyarrow.Schema
    format : {'ipc', 'parquet', 'parquet-dataset'}, optional
        Defaults from the suffix.
    compression : str, optional
        IPC: None (default; the file can be memory-mapped zero-copy), 'lz4' or 'zstd'.
        Parquet: pyarrow's default ('snappy') unless given.
    overwrite : bool, default True
        Replace an existing destination (atomically, for a file). False raises instead.
    rows_per_file : int, optional
        Parquet dataset only: rows per part file.
    inputs : iterable of paths, optional
        Files and folders the job reads (``Source.paths``): an output that is, contains or lies
        inside one of them is refused here, before any work.

    Notes
    -----
    An existing file is replaced atomically. An existing folder is replaced only when it is
    empty or holds nothing but a dataset segmint wrote (its marker file and the parts the marker
    lists); only those files are removed. Everything else raises :class:`OutputError`.

    Examples
    --------
    >>> with ResultWriter("segments.parquet", schema) as out:   # doctest: +SKIP
    ...     for batch in scored_batches:
    ...         out.write(batch)
    """

    def __init__(self, path, schema, *, format=None, compression=None, overwrite=True,
                 rows_per_file=None, inputs=()):
        self._done = True  # until the temporary exists: __del__ has nothing to clean
        self.format = check_table_output(path, inputs=inputs, format=format, overwrite=overwrite)
        self.path = Path(path)
        self.schema = schema
        self.compression = compression
        self._overwrite = overwrite
        self.rows_per_file = _rows_per_file(rows_per_file)
        self.rows_written = 0
        parent = self.path.parent
        if not parent.is_dir():
            raise OutputError(f"cannot write {str(self.path)!r}: folder {str(parent)!r} does not exist")
        self._tmp = temporary_path(self.path)
        self._writer = None
        self._part = 0
        self._rows_in_part = 0
        self._done = False
        try:
            if self.format == "parquet-dataset":
                self._tmp.mkdir()
            self._writer = self._new_writer()
        except BaseException:
            self._remove_tmp()
            raise

    def _new_writer(self):
        try:
            if self.format == "ipc":
                options = ipc.IpcWriteOptions(compression=self.compression)
                return ipc.new_file(str(self._tmp), self.schema, options=options)
            target = self._tmp if self.format == "parquet" else self._tmp / f"part-{self._part:05d}.parquet"
            kwargs = {} if self.compression is None else {"compression": self.compression}
            return pq.ParquetWriter(str(target), self.schema, **kwargs)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise OutputError(f"cannot write {str(self.path)!r}: {exc}") from None

    def write(self, table):
        """Append a pyarrow RecordBatch or Table (its schema must be the writer's)."""
        if self._done:
            raise OutputError(f"the writer of {str(self.path)!r} is already closed")
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if not isinstance(table, pa.Table):
            raise ParameterError(f"write takes a pyarrow RecordBatch or Table, got {type(table).__name__}")
        if not table.schema.equals(self.schema, check_metadata=False):
            raise DataError(f"cannot write to {str(self.path)!r}: the table's schema\n{table.schema}\n"
                            f"differs from the writer's\n{self.schema}")
        try:
            if self.format == "parquet-dataset":
                self._write_parts(table)
            else:
                self._writer.write_table(table)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise OutputError(f"cannot write {str(self.path)!r}: {exc}") from None
        self.rows_written += table.num_rows

    def _write_parts(self, table):
        offset = 0
        while offset < table.num_rows:
            if self._rows_in_part >= self.rows_per_file:
                self._writer.close()
                self._part += 1
                self._rows_in_part = 0
                self._writer = self._new_writer()
            take = min(self.rows_per_file - self._rows_in_part, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take))
            self._rows_in_part += take
            offset += take

    def close(self):
        """Finish the output and move it to its destination atomically."""
        if self._done:
            return
        self._done = True  # committed or dropped below, whatever happens
        parts = ([f"part-{i:05d}.parquet" for i in range(self._part + 1)]
                 if self.format == "parquet-dataset" else None)
        commit(self._tmp, self.path, parts=parts, overwrite=self._overwrite, finish=self._writer.close)

    def abort(self):
        """Drop everything written; the destination is left as it was."""
        if self._done:
            return
        self._done = True
        try:
            if self._writer is not None:
                self._writer.close()
        except Exception:  # the output is dropped anyway
            pass
        self._remove_tmp()

    def _remove_tmp(self):
        remove_temporary(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        if getattr(self, "_done", True) is False:
            self.abort()


def write_table(table, path, *, format=None, compression=None, overwrite=True, rows_per_file=None,
                inputs=()):
    """Write a pyarrow Table, RecordBatch or iterable of RecordBatches to ``path`` atomically.

    Returns the number of rows written. See :class:`ResultWriter` for the parameters; the
    output is checked (``inputs=`` included) before the first batch is taken.
    """
    check_table_output(path, inputs=inputs, format=format, overwrite=overwrite)
    if isinstance(table, (pa.Table, pa.RecordBatch)):
        schema, pieces = table.schema, [table]
    else:
        iterator = iter(table)
        first = next(iterator, None)
        if first is None:
            raise DataError("write_table got no batches, so there is no schema to write")
        schema = first.schema
        pieces = _chain(first, iterator)
    with ResultWriter(path, schema, format=format, compression=compression, overwrite=overwrite,
                      rows_per_file=rows_per_file, inputs=inputs) as out:
        for piece in pieces:
            out.write(piece)
    return out.rows_written


def temporary_path(path):
    """A new hidden name beside ``path`` for its temporary file or folder (not created):
    ``.NAME.tmp-PID-RANDOM``, which says what it is if a killed job leaves it behind."""
    path = Path(path)
    return path.parent / f".{_stem(path)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def commit(tmp, path, *, parts=None, overwrite=True, finish=None):
    """Move the finished temporary ``tmp`` to ``path`` atomically, or remove it.

    Parameters
    ----------
    tmp : pathlib.Path
        A file, or (with ``parts``) a folder holding exactly the part files ``parts``.
    path : pathlib.Path
        The destination, checked before the work began (:func:`check_table_output`).
    parts : list of str, optional
        A Parquet dataset folder's part file names: its marker file listing them is written
        first. An existing destination folder is replaced only while it is empty or holds
        nothing but a dataset segmint wrote, and only its listed files are removed.
    overwrite : bool
        False: a destination that appeared during the job is left as it is (an error).
    finish : callable, optional
        Called first (closing the writer of ``tmp``); a failure there drops ``tmp`` too.

    Raises
    ------
    OutputError
        The destination cannot be replaced, or a file system error; ``tmp`` is removed then,
        unless the rename (the commit) happened and only what came after failed.
    """
    try:
        if finish is not None:
            finish()
        if parts is not None:
            (tmp / outputs.MARKER).write_bytes(outputs.marker_bytes(parts))
        _fsync_tree(tmp)
        if not overwrite and os.path.lexists(path):  # it appeared during the job
            raise OutputError(f"{str(path)!r} appeared while it was being written; with "
                              "overwrite=False it is left as it is and nothing was written")
        outputs.commit_started(path, tmp)
        if parts is not None:
            _replace_folder(tmp, path)
        else:
            if path.is_dir():  # it may have appeared since the check
                raise OutputError(f"{str(path)!r} is a folder; it cannot be replaced by a file")
            os.replace(tmp, path)
        outputs.commit_done(path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        if os.path.lexists(tmp):  # the rename, which commits, did not happen
            outputs.commit_abandoned(path)
            remove_temporary(tmp)
            if isinstance(exc, OSError) and not isinstance(exc, OutputError):
                raise OutputError(f"cannot write {str(path)!r}: {exc}") from exc
        else:  # committed; only what came after failed (or Ctrl-C came just then)
            outputs.commit_done(path)
        raise


def _replace_folder(tmp, path):
    """Rename the finished temporary folder to the destination; an existing destination must
    (still) be empty or a dataset segmint wrote, and only its listed files are removed."""
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    if not path.is_dir() or path.is_symlink():
        raise OutputError(f"{str(path)!r} is not a folder segmint wrote; nothing was replaced")
    names = outputs.dataset_parts(path)  # checked again: the job may have run for hours
    if not names:
        os.rename(tmp, path)  # POSIX renames over an empty folder, atomically; a
        return                # file that appeared since makes it fail instead
    old = path.parent / f".{_stem(path)}.old-{uuid.uuid4().hex[:8]}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        if not os.path.lexists(path):
            os.rename(old, path)  # put the previous dataset back
        raise
    outputs.remove_dataset(old, names)


def remove_temporary(tmp):
    """Remove a temporary file or folder (and what it holds) if it is there."""
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.lexists(tmp):
        os.unlink(tmp)


def _rows_per_file(value):
    if value is None:
        return DEFAULT_ROWS_PER_FILE
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(f"rows_per_file must be a positive whole number, got {value!r}")
    return int(value)


def _stem(path):
    """The destination's name as hidden temporaries carry it, cut so that their names stay
    within the 255 bytes a folder entry may have."""
    return path.name[:120]


def _chain(first, rest):
    yield first
    yield from rest


def _fsync_tree(path):
    paths = [p for p in Path(path).rglob("*") if p.is_file()] if Path(path).is_dir() else [Path(path)]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync folders
        pass
    finally:
        os.close(fd)


class atomic_file:
    """``with atomic_file(path) as f: f.write(...)``: a binary file that appears at ``path``
    only when the block completes (hidden temporary file beside it, fsync, rename); an
    exception or Ctrl-C inside the block removes the temporary file and leaves ``path`` as it was.

    ``path`` is checked first (:func:`segmint.io.outputs.check_output`): not ``""``, ``.``, a
    folder, a device, nor any of ``inputs`` (the files the caller read).
    """

    def __init__(self, path, *, inputs=()):
        self.path = outputs.check_output(path, inputs=inputs)
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"cannot write {self.path}: folder {folder} does not exist")
        self.tmp = folder / f".{_stem(self.path)}.tmp-{uuid.uuid4().hex[:8]}"

    def __enter__(self):
        self.file = open(self.tmp, "wb")
        return self.file

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                if self.path.is_dir():  # it may have appeared since the check
                    raise OutputError(f"{str(self.path)!r} is a folder; it cannot be replaced by a file")
                outputs.commit_started(self.path, self.tmp)
                os.replace(self.tmp, self.path)
                outputs.commit_done(self.path)
                _fsync_dir(self.path.parent)
        finally:
            if os.path.lexists(self.tmp):
                outputs.commit_abandoned(self.path)
                self.tmp.unlink()
        return False


def write_text(path, text, *, inputs=()):
    """Write ``text`` (UTF-8) to ``path`` atomically (checked as :class:`atomic_file` does)."""
    with atomic_file(path, inputs=inputs) as f:
        f.write(text.encode("utf-8"))
