"""Scoring on a Dask cluster: a fitted Segmenter or a RuleSet over data beyond one machine,
written as one Parquet dataset that appears atomically.

How the work splits: one task per unit of input (a chunk of fixed global rows of a Parquet
dataset, cut from the footers by :mod:`segmint.dask.chunks`, or a partition of a dask
DataFrame). Each task reads its rows, scores them with the local code
(:meth:`segmint.Segmenter.score` or :meth:`segmint.RuleSet.evaluate`: scoring is row by row, so
a row's result does not depend on which rows share its task) and writes one part file,
``part-<unit index>.parquet``, into a hidden temporary folder beside the output. The part is
written under a temporary name and renamed, so a task that the scheduler runs twice (a worker
lost) leaves one whole part with the same rows. When every task succeeded, the client checks
that the parts have one schema, writes the dataset's marker (as every segmint dataset has)
and renames the folder to ``output`` (:func:`segmint.io.writers.commit`: never over a folder
or file segmint did not write). When a task fails, the temporary folder is removed and
nothing appears at ``output``. Read back in part-name order, the dataset holds local
segmint's result row for row.

The model travels as plain data, never pickled: a Segmenter as the bytes of its saved model
file, a RuleSet as its document (:meth:`~segmint.RuleSet.to_dict`). It is the result of a task
of its own that every scoring task depends on (not scattered data): the scheduler holds that
task, so when every worker holding the model dies it is computed again, as any lost result.
A worker loads it as ``segmint.load`` would (with the same checks; a worker of another segmint
version refuses a newer file instead of scoring wrongly) once per process, and keeps it for the
following tasks.

A dask DataFrame is converted to Arrow partition by partition, only in the columns the model
reads and the output keeps (its id column, ``columns``): other columns, whatever they hold,
are never converted (nor read, for a DataFrame read from Parquet). Each column gets one Arrow
type for every partition: its ``meta``'s, or where ``meta`` has none (an object column, a
categorical of unknown categories) the type of its first values (see
:func:`segmint.dask._inputs.frame_schema`).
"""
import datetime as dt
import hashlib
import os
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa

from .._lazy import lazy_import
from .._time import as_of_microseconds
from ..errors import DataError, OutputError, ParameterError, SegmintError
from ..io import DEFAULT_BATCH_SIZE
from ..io import writers as _writers
from . import chunks as _chunks
from ._inputs import FrameInput, frame_schema, partition_table, resolve_client, table_input

pq = lazy_import("pyarrow.parquet")


class ScoreResult(NamedTuple):
    """What :func:`score` wrote.

    Attributes
    ----------
    path : str
        The output folder (a Parquet dataset: ``part-*.parquet`` and segmint's marker file).
    rows : int
        Rows written (one per input row).
    parts : int
        Part files (one per chunk or partition of the columns read; at least one, empty when
        the input is).
    """

    path: str
    rows: int
    parts: int


class _Shipped(NamedTuple):
    """A model as plain data for the workers: ``kind`` 'segmenter' (saved file bytes) or
    'ruleset' (its document), and the digest that names it in a worker's cache."""

    kind: str
    payload: object
    digest: str


class _Options(NamedTuple):
    """How every task scores, fixed on the client (``as_of`` resolved once: tasks run at
    different times, and a rule on dates must see one instant)."""

    as_of: object
    id_column: object
    memberships: str
    batch_size: int
    columns: tuple
    compression: object


def score(model, data, output, *, columns=None, as_of=None, client=None, rows_per_chunk=_chunks.CHUNK_ROWS,
          id_column=None, memberships="columns", batch_size=DEFAULT_BATCH_SIZE, compression=None,
          overwrite=True):
    """Score every row of ``data`` on the cluster and write the result as a Parquet dataset.

    Parameters
    ----------
    model : Segmenter or RuleSet
        A fitted :class:`segmint.Segmenter` (its :meth:`~segmint.Segmenter.score` result) or a
        :class:`segmint.RuleSet` (its :meth:`~segmint.RuleSet.evaluate` result table).
    data : str, Path, list of them, or dask DataFrame
        A Parquet file, folder or list of files (cut into chunks from the footers; workers
        read the files themselves, so the paths must be readable on every worker), or a dask
        DataFrame (one part per partition of the columns the model reads and the output keeps:
        only those are computed and converted to Arrow; dask may combine the partitions of a
        Parquet read when it reads fewer columns).
    output : str or Path
        The dataset folder to write. Its parent must exist and be shared by the client and the
        workers (the workers write the parts, the client renames the folder). Refused before
        any work when it is, holds or lies in an input (for a dask DataFrame: the Parquet
        files and folders its ``read_parquet`` calls read), or exists and is not empty nor a
        dataset segmint wrote.
    columns : list of str, optional
        Input columns copied into the result after the scores (e.g. a region to split the
        results by); none by default.
    as_of : datetime, date or ISO string, optional
        For rules on dates; default: now (UTC), taken once on the client.
    client : distributed.Client, optional
        Default: the current client.
    rows_per_chunk : int, default ``segmint.dask.CHUNK_ROWS``
        Parquet input: rows per task (a positive multiple of 65,536).
    id_column : str, optional
        RuleSet only: a column copied beside the segments (a Segmenter has its own).
    memberships : {'columns', 'bitmask'}
        RuleSet only, multi mode: as :meth:`segmint.RuleSet.evaluate`.
    batch_size : int
        Rows per batch within a task.
    compression : str, optional
        Parquet compression (default pyarrow's, 'snappy').
    overwrite : bool, default True
        Replace a dataset segmint wrote at ``output``; False refuses any existing ``output``.

    Returns
    -------
    ScoreResult
        ``(path, rows, parts)``.

    Raises
    ------
    OutputError
        ``output`` refused (nothing was computed), or it could not be written.
    SegmintError
        Bad input, naming the column, chunk or partition (e.g. a
        :class:`~segmint.FeatureError` for infinite values in the rows of one chunk); nothing
        is left at ``output`` nor beside it.
    """
    client = resolve_client(client)
    shipped, local = _ship(model)
    if local == "ruleset":
        from ..rules.ruleset import MEMBERSHIPS
        if not isinstance(memberships, str) or memberships not in MEMBERSHIPS:
            raise ParameterError(f"memberships must be 'columns' or 'bitmask', got {memberships!r}")
    elif id_column is not None or memberships != "columns":
        raise ParameterError("id_column and memberships are RuleSet options; a Segmenter writes its own "
                             "id column (Segmenter(id_column=...))")
    columns = _column_list(columns)
    inp = table_input(data, rows_per_chunk)
    # before any work: never over an input, a folder segmint did not write, ".", ... (a dask
    # DataFrame's inputs are the Parquet paths in its expression; one built from pandas has none)
    _writers.check_table_output(output, inputs=inp.paths, format="parquet-dataset", overwrite=overwrite)
    # absolute: workers write into the temporary folder beside it from their own working folders
    output = Path(os.path.abspath(output))
    options = _Options(_fixed_as_of(as_of), id_column, memberships, _batch_size(batch_size), columns,
                       compression)
    schema = inp.schema
    if isinstance(inp, FrameInput):  # the columns meta leaves untyped (object...) typed from the data
        schema = frame_schema(inp, _columns_named(model, options), client)
    read = _columns_read(model, schema, options)
    # the local code on no rows: checks columns, types and rules here, before any task, with
    # local segmint's errors; and gives the schema every part must have
    empty = _score_table(model, schema.empty_table().select(read), options)
    if isinstance(inp, FrameInput):
        # the partitions of the columns read, not the frame's: dask may combine the partitions
        # of a Parquet read when it reads fewer columns
        units = inp.partitions(read)
    else:
        units = inp.dataset.chunks
    names = [_part_name(i, len(units)) for i in range(max(len(units), 1))]

    tmp = _writers.temporary_path(output)
    futures = []
    try:
        tmp.mkdir()
        if not units:  # an empty input: one empty part, as a local dataset output has
            _write_part(empty, str(tmp), names[0], compression)
            results = [(0, empty.schema)]
        else:
            model_ref = _model_future(client, shipped)  # held until the parts are checked
            futures = _submit(client, inp, units, model_ref, schema, read, options, str(tmp), names)
            results = _gather(client, futures)
        for index, (rows, part_schema) in enumerate(results):
            if not part_schema.equals(empty.schema, check_metadata=False):
                raise DataError(f"{_unit_label(inp, units, index)} scored to the schema\n{part_schema}\nnot\n"
                                f"{empty.schema}\nas the other parts: a column typed differently there")
        _drop_strays(tmp, names)  # temporaries of attempts a lost worker left half-written
        _check_parts(tmp, names)
        _writers.commit(tmp, output, parts=names, overwrite=overwrite)
    except BaseException:
        if futures:
            client.cancel(futures)
        _remove_eventually(tmp)
        raise
    return ScoreResult(str(output), sum(rows for rows, _ in results), len(names))


# -- on the client --------------------------------------------------------------------------------
def _ship(model):
    """``(_Shipped, kind)``: the model as plain data for the workers."""
    from ..pipeline.segmenter import Segmenter
    from ..rules import RuleSet

    if isinstance(model, RuleSet):
        import json
        doc = model.to_dict()
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()
        return _Shipped("ruleset", doc, digest), "ruleset"
    if isinstance(model, Segmenter):
        model._check_fitted()
        with tempfile.TemporaryDirectory(prefix="segmint-ship-") as folder:
            path = os.path.join(folder, "model.seg")
            model.save(path)
            with open(path, "rb") as f:
                payload = f.read()
        return _Shipped("segmenter", payload, hashlib.sha256(payload).hexdigest()), "segmenter"
    raise ParameterError(f"segmint.dask.score scores a fitted Segmenter or a RuleSet, got {type(model).__name__}")


def _column_list(columns):
    if columns is None:
        return ()
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise ParameterError(f"columns must be a list of column names, got {columns!r}")
    return tuple(dict.fromkeys(columns))


def _batch_size(batch_size):
    from .._estimator import check_positive_int
    return check_positive_int("batch_size", batch_size)


def _fixed_as_of(as_of):
    """``as_of`` as one UTC datetime (checked as local segmint checks it): every task, whenever
    it runs, evaluates date rules at the same instant."""
    micros, _ = as_of_microseconds(as_of)
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=micros)


def _model_inputs(model, options):
    """``(the model's rule set or None, the columns it reads besides its rules')``: a RuleSet's
    id column; a Segmenter's feature inputs (when it clusters) and its id column."""
    from ..rules import RuleSet

    if isinstance(model, RuleSet):
        return model, [options.id_column] if options.id_column else []
    names = list(model.feature_spec_.input_columns) if model.clusterer_ is not None else []
    if model.id_column is not None:
        names.append(model.id_column)
    return model.rules_, names


def _columns_named(model, options):
    """The names of the input columns the model reads and the output keeps, unchecked (before
    their types are known: see :func:`_columns_read` for the checked list)."""
    from ..rules.record import rule_columns

    rules, names = _model_inputs(model, options)
    if rules is not None:
        names += rule_columns(rules._asts)
    return list(dict.fromkeys(names + list(options.columns)))


def _columns_read(model, schema, options):
    """The input columns the tasks read: what the model needs, then ``columns``; an unknown
    name is an error naming the nearest ones."""
    from ..errors import unknown_column

    rules, needed = _model_inputs(model, options)
    if rules is not None:
        program = rules.prepare(schema)  # a rule's type errors name the rule and the column
        needed += [n for n, _ in program.num_columns] + program.bool_columns + program.str_columns
    for name in list(needed) + list(options.columns):
        if name not in schema.names:
            raise unknown_column(name, schema.names, "the input")
    return list(dict.fromkeys(needed + list(options.columns)))


def _part_name(index, count):
    # zero-padded to one width, so that name order is row order (as the local writer's parts)
    return f"part-{index:0{max(5, len(str(count - 1)))}d}.parquet"


def _unit_label(inp, units, index):
    if isinstance(inp, FrameInput):
        return f"{inp.label}, partition {index} of {len(units)}"
    chunk = inp.dataset.chunks[index]
    return f"{chunk.label}, rows {chunk.start:,}..{chunk.start + chunk.rows - 1:,}"


def _model_future(client, shipped):
    """The model as the result of a task (keyed by its digest: one per model however many
    scores run): the scheduler can compute it again when the workers holding it are lost,
    which it cannot do for scattered data. The tasks depend on it, so each worker fetches it
    once (a few KB to a few hundred KB), not once per task."""
    return client.submit(_model_data, shipped, key=f"segmint-model-{shipped.digest}", pure=True)


def _submit(client, inp, units, model_ref, schema, read, options, folder, names):
    """One task per unit (a chunk or a partition of the columns read), in unit order."""
    if isinstance(inp, FrameInput):
        import dask
        read_schema = pa.schema([schema.field(name) for name in read])
        score_partition = dask.delayed(_score_partition, pure=False)
        tasks = [score_partition(part, model_ref, _unit_label(inp, units, i), read_schema, options, folder, names[i])
                 for i, part in enumerate(units)]
        return client.compute(tasks)
    return [client.submit(_score_chunk, chunk, model_ref, read, options, folder, names[chunk.index],
                          pure=False)
            for chunk in units]


def _gather(client, futures):
    """Each task's ``(rows, schema)`` in unit order; the first failure is raised as soon as it
    is known (the other tasks are cancelled by the caller)."""
    import distributed

    for future in distributed.as_completed(futures):
        if future.status == "error":
            raise future.exception().with_traceback(future.traceback())
        if future.status == "cancelled":
            raise OutputError("a scoring task was cancelled (the cluster shut down?); nothing was written")
    return client.gather(futures)


def _drop_strays(folder, names):
    keep = set(names)
    for name in os.listdir(folder):
        if name not in keep:
            _writers.remove_temporary(os.path.join(folder, name))


def _check_parts(folder, names):
    """Every part the tasks reported is in the folder as the client sees it (a worker writing
    to its own disk, not the client's, would otherwise commit a dataset with parts missing)."""
    missing = [name for name in names if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise OutputError(f"{len(missing)} of the {len(names)} parts the workers wrote are not in "
                          f"{str(folder)!r} as this machine sees it (e.g. {missing[0]}): the output "
                          "must be on a file system the client and every worker share; nothing was written")


def _remove_eventually(tmp, seconds=5.0):
    """Remove the temporary folder; a cancelled task still running may write one more file in
    it meanwhile (a task cannot be stopped), so try again for a few seconds."""
    deadline = time.monotonic() + seconds
    while True:
        _writers.remove_temporary(tmp)
        if not os.path.lexists(tmp) or time.monotonic() > deadline:
            return
        time.sleep(0.05)


# -- on a worker ----------------------------------------------------------------------------------
_models = OrderedDict()  # digest -> loaded model, a few per worker process
_models_lock = threading.Lock()
_MODELS_KEPT = 4


def _model_data(shipped):
    """Task: the model's plain data, as given (the task the scheduler recomputes if lost)."""
    return shipped


def _load(shipped):
    """The model of ``shipped``, loaded once per worker process (with ``segmint.load``'s checks)."""
    with _models_lock:
        model = _models.get(shipped.digest)
        if model is not None:
            _models.move_to_end(shipped.digest)
            return model
    if shipped.kind == "ruleset":
        from ..rules import RuleSet
        model = RuleSet.from_dict(shipped.payload)
    else:
        from ..pipeline.segmenter import Segmenter
        with tempfile.TemporaryDirectory(prefix="segmint-model-") as folder:
            path = os.path.join(folder, "model.seg")
            with open(path, "wb") as f:
                f.write(shipped.payload)
            model = Segmenter.load(path)
    with _models_lock:
        _models[shipped.digest] = model
        while len(_models) > _MODELS_KEPT:
            _models.popitem(last=False)
    return model


def _score_chunk(chunk, shipped, read, options, folder, name):
    """Task: score one Parquet chunk and write its part; returns ``(rows, schema)``."""
    where = (f"{chunk.label}, the chunk of rows {chunk.start:,}..{chunk.start + chunk.rows - 1:,} "
             "(rows counted from its start below)")
    try:
        # strings as plain strings (not dictionary-encoded): the columns keep the types the
        # footers declare, so every part has the schema of the local result
        table = _chunks.read_chunk(chunk, read)
        return _score_and_write(_load(shipped), table, options, folder, name)
    except SegmintError as exc:
        raise _located(exc, where) from None


def _score_partition(frame, shipped, where, schema, options, folder, name):
    """Task: score one dask DataFrame partition (pandas, only the columns of ``schema``, in
    its order) and write its part; errors start with ``where`` (the partition)."""
    try:
        return _score_and_write(_load(shipped), _partition_table(frame, schema), options, folder, name)
    except SegmintError as exc:
        raise _located(exc, where) from None


def _partition_table(frame, schema):
    """``frame`` as an Arrow table of ``schema``'s types (every partition gets the same); a
    column that does not convert is a :class:`DataError` naming it and its dtype."""
    if not len(schema):  # no column to read (rules on constants): the rows still count
        return pa.table({"_": pa.nulls(len(frame))}).select([])
    return partition_table(frame, schema, None)  # _score_partition names the partition


def _score_and_write(model, table, options, folder, name):
    result = _score_table(model, table, options)
    _write_part(result, folder, name, options.compression)
    return result.num_rows, result.schema


def _score_table(model, table, options):
    """The local result of ``model`` on ``table``, with the ``columns`` asked for after it."""
    from ..rules import RuleSet

    if isinstance(model, RuleSet):
        result = model.evaluate(table, as_of=options.as_of, id_column=options.id_column,
                                memberships=options.memberships, batch_size=options.batch_size).table
    else:
        result = model.score(table, as_of=options.as_of, batch_size=options.batch_size)
    for column in options.columns:
        if column in result.column_names:
            raise ParameterError(f"columns: {column!r} is already a column of the result; copy another "
                                 "column or rename it")
        result = result.append_column(table.schema.field(column), table.column(column))
    return result


def _write_part(table, folder, name, compression):
    """Write ``folder/name`` whole or not at all: a second attempt of the same task (a worker
    lost) replaces it with the same rows."""
    target = os.path.join(folder, name)
    tmp = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        kwargs = {} if compression is None else {"compression": compression}
        with pq.ParquetWriter(tmp, table.schema, **kwargs) as writer:
            writer.write_table(table)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _located(exc, where):
    """``exc`` with the chunk or partition it happened in, of the same segmint type when it can
    be built from a message (so ``except FeatureError`` still works on the client)."""
    try:
        located = type(exc)(f"{where}: {exc}")
    except Exception:  # noqa: BLE001 - an error type with another constructor: keep it as it is
        return exc
    return located if str(located).startswith(where) else exc
