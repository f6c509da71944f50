"""Rule sets: named segments, evaluated over any source in one streaming pass.

A :class:`RuleSet` is data: parsing it takes microseconds per rule and evaluating it compiles
nothing (the kernels are compiled once per machine), so a service can load or swap rule sets
at run time.
"""
import json
import math
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .._documents import parse_document, read_text, short_repr
from .._memory import pool_array
from .._parallel import ordered_map
from .._time import as_of_microseconds as _as_of
from .._time import time_scale
from ..errors import DataError, ParameterError
from ..io import DEFAULT_BATCH_SIZE, ResultWriter
from ..io import open as open_source
from ..io.columns import read_only
from ..io.source import _decode
from ..kernels import rules as vm
from ..kernels.membership import to_bitmask
from .codegen import K_AS_OF_DAY_US, K_AS_OF_US, CodeGenerator
from .errors import RuleError, RuleSetError
from .parse import parse
from .pyeval import evaluate as py_evaluate
from .types import column_type, type_rules

MODES = ("waterfall", "multi")
MEMBERSHIPS = ("columns", "bitmask")
# what a saved rule set says it is (segmint.load dispatches on it) and the newest layout read
FORMAT = "segmint-rules"
VERSION = 1
_DOCUMENT_KEYS = ("format", "version", "name", "description", "mode", "default", "segments")
_EXACT_INT = 2 ** 53
# programs kept per rule set (one per distinct typing of the columns the rules read)
MAX_PROGRAMS = 64


@dataclass
class Segment:
    """One named segment: a rule and what the team knows about it."""
    name: str
    rule: str
    description: str = None
    owner: str = None
    purpose: str = None

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RuleResult:
    """What :meth:`RuleSet.evaluate` returns.

    Attributes
    ----------
    table : pyarrow.Table or None
        The per-customer result (None when written to ``out``).
    counts : pyarrow.Table
        Per segment: ``matched`` (rule true), ``unknown`` (rule null: left out because a value
        was missing), ``share`` of all rows. Waterfall counts only rows not taken by an earlier
        segment, and ends with the default segment.
    overlaps : pyarrow.Table or None
        Multi mode: rows in both segments, for every pair (a square table).
    rows : int
    """
    table: object
    counts: pa.Table
    overlaps: object = None
    rows: int = 0


class RuleBatch(NamedTuple):
    """One batch of :meth:`RuleSet.stream`.

    Attributes
    ----------
    batch : segmint.io.Batch
        The rows, with the columns the rules read and the ``columns`` asked for.
    codes : numpy.ndarray or None
        Waterfall: per row, the index of its segment in ``names`` (``len(names)`` for the
        default segment), the narrowest signed integer type that holds them. None in multi mode.
    members : numpy.ndarray or None
        Multi mode: memberships as ``(len(names), ceil(rows / 64))`` uint64 words, bit ``r %
        64`` of word ``r // 64`` of row ``s`` set when row ``r`` is in segment ``s`` (Arrow's
        boolean layout). None in waterfall mode.
    """
    batch: object
    codes: object
    members: object


class RuleSet:
    """Named segments defined by rules over the columns of a customer table.

    Parameters
    ----------
    segments : list or dict
        A list of dicts (``name``, ``rule`` and optionally ``description``, ``owner``,
        ``purpose``), :class:`Segment` objects or ``(name, rule)`` pairs; or a dict from name to
        rule (or to such a dict without ``name``).
    mode : {'waterfall', 'multi'}
        waterfall: the first segment whose rule is true wins, others get ``default``; multi: a
        customer is in every segment whose rule is true.
    default : str
        Waterfall: the segment of customers no rule matched.
    name : str, optional
    description : str, optional
        What the rule set is for; saved with it.

    Examples
    --------
    >>> rs = RuleSet({"vip": "monetary >= 1000 and frequency >= 10",
    ...               "lapsed": "days_since(last_order_date) > 180"})
    >>> rs.names
    ['vip', 'lapsed']
    """

    def __init__(self, segments, *, mode="waterfall", default="unassigned", name=None, description=None):
        # every check here, so that what a RuleSet accepts, a saved model or rule file holding
        # it loads again (fit used to accept a blank name that load then refused)
        if not isinstance(mode, str) or mode not in MODES:
            raise RuleSetError(f"mode must be 'waterfall' or 'multi', got {_describe(mode)}")
        self.mode = mode
        self.default = _check_name(default, "the default segment")
        self.name = _check_text(name, "the rule set's name") if name is not None else None
        self.description = (_check_text(description, "the rule set's description")
                            if description is not None else None)
        self.segments = _segments(segments)
        for i, seg in enumerate(self.segments):
            _check_segment(seg, i)
        names = [s.name for s in self.segments]
        if not names:
            raise RuleSetError("a rule set needs at least one segment")
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)
        if dupes:
            raise RuleSetError(f"segment names must be unique; repeated: {', '.join(map(repr, dupes))}")
        if mode == "waterfall" and default in names:
            raise RuleSetError(f"the default segment {default!r} is also a rule's name")
        if mode == "waterfall" and len(names) >= 32_767:
            raise RuleSetError(f"a waterfall holds at most 32,766 segments, got {len(names):,}")
        self._asts = {}
        for seg in self.segments:
            try:
                self._asts[seg.name] = (parse(seg.rule), seg.rule)
            except RuleError as exc:
                raise exc.with_segment(seg.name) from None
        self._programs = {}
        self._read_columns = None  # names of the columns the rules read (see prepare)
        self._labels = None
        self._records = None  # one customer at a time: see matches()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data):
        """From a rule set document, as :meth:`to_dict` writes it or written by hand.

        Parameters
        ----------
        data : dict
            ``{"segments": [...], "mode": ..., "default": ..., "name": ..., "description": ...}``;
            ``"format"`` (``"segmint-rules"``) and ``"version"`` may be left out in hand-written
            documents.

        Raises
        ------
        RuleSetError
            Not a rule set document, another segmint document (``format``), a newer version,
            unknown keys, or segments the constructor refuses.
        """
        if not isinstance(data, dict) or "segments" not in data:
            if isinstance(data, dict) and data.get("format") not in (None, FORMAT):
                raise RuleSetError(_not_rules(data["format"]))
            raise RuleSetError("a rule set document needs a 'segments' list")
        unknown = set(data) - set(_DOCUMENT_KEYS)
        if unknown:
            raise RuleSetError(f"unknown keys in the rule set: {', '.join(sorted(map(_short, unknown)))} "
                               f"(allowed: {', '.join(_DOCUMENT_KEYS)})")
        if data.get("format") not in (None, FORMAT):
            raise RuleSetError(_not_rules(data["format"]))
        version = data.get("version", VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise RuleSetError(f"the rule set's version must be a whole number from 1, got {_describe(version)}")
        if version > VERSION:
            raise RuleSetError(f"the rule set is format version {_short(version)}, newer than this segmint reads "
                               f"(version {VERSION}): update segmint to load it")
        return cls(data["segments"], mode=data.get("mode", "waterfall"),
                   default=data.get("default", "unassigned"), name=data.get("name"),
                   description=data.get("description"))

    @classmethod
    def from_json(cls, path_or_text):
        """From a JSON file (or JSON text)."""
        return cls.from_dict(parse_document(_read_text(path_or_text), "json", "the rule set", RuleSetError))

    @classmethod
    def from_yaml(cls, path_or_text):
        """From a YAML file (or YAML text); needs PyYAML (``pip install segmint[yaml]``)."""
        return cls.from_dict(parse_document(_read_text(path_or_text), "yaml", "the rule set", RuleSetError))

    @classmethod
    def load(cls, path):
        """Read a rule set from a ``.json``, ``.yaml`` or ``.yml`` file (what :meth:`save` writes).

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        RuleSet
        """
        suffix = _suffix(path)
        if suffix == ".json":
            return cls.from_json(Path(path))
        if suffix in (".yaml", ".yml"):
            return cls.from_yaml(Path(path))
        raise RuleSetError(f"cannot tell the format of {str(path)!r}: name it .json, .yaml or .yml")

    def save(self, path):
        """Write the rule set to ``path`` as plain data: JSON for ``.json``, YAML for ``.yaml``/``.yml``.

        The file appears atomically (a temporary file beside it, then a rename) and is checked
        first as every segmint output is: not an input, a folder, ``.`` or a device.
        :meth:`load` (and :func:`segmint.load`) read it back.

        Parameters
        ----------
        path : str or path-like

        Raises
        ------
        ParameterError
            A suffix other than ``.json``, ``.yaml`` or ``.yml``.
        OutputError
            A path segmint does not write to.
        """
        from ..io.writers import write_text
        suffix = _suffix(path)
        if suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                from ..errors import MissingExtraError
                raise MissingExtraError("saving a rule set as YAML needs PyYAML: pip install "
                                        "'segmint[yaml]' (or name the file .json)") from None
            text = yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False)
        else:
            raise ParameterError(f"cannot tell which format to write to {_short(str(path))}: "
                                 "name it .json, .yaml or .yml")
        write_text(path, text)
        return path

    def to_dict(self):
        """The rule set as a plain-data document (what :meth:`save` writes, :meth:`from_dict` reads)."""
        out = {"format": FORMAT, "version": VERSION, "mode": self.mode,
               "segments": [s.to_dict() for s in self.segments]}
        if self.mode == "waterfall":
            out["default"] = self.default
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        return out

    @property
    def names(self):
        return [s.name for s in self.segments]

    def __repr__(self):
        return f"RuleSet({len(self.segments)} segments, mode={self.mode!r})"

    # -- compilation ---------------------------------------------------------------------------
    def prepare(self, schema):
        """Type-check against ``schema`` and compile (cached per schema). No Numba compile.

        The program depends only on the types of the columns the rules read, so the cache is
        keyed by those (a source's or a record's other columns do not multiply it), and
        bounded (:data:`MAX_PROGRAMS`)."""
        read = getattr(self, "_read_columns", None)  # (absent on a rule set pickled before it existed)
        if read is None:
            from .record import rule_columns
            read = self._read_columns = frozenset(rule_columns(self._asts))
        key = tuple((f.name, str(f.type)) for f in schema if f.name in read)
        program = self._programs.get(key)
        if program is None or getattr(program, "batch_code", None) is None:  # (pickled before it existed)
            # typed against the whole schema: a missing column's error names its nearest columns
            types = {f.name: column_type(f.type) for f in schema}
            # nanosecond timestamps and durations are read as whole microseconds (floored, in
            # int64, before anything converts them to float64): scale 1, see _run_batch
            scales = {f.name: (1.0 if _nanoseconds(f.type) else time_scale(f.type)) for f in schema}
            typed = type_rules(types, self._asts)
            program = CodeGenerator(typed, scales, self._asts).generate(self.mode)
            program.ns_columns = tuple(j for j, (name, _) in enumerate(program.num_columns)
                                       if _nanoseconds(schema.field(name).type))
            if len(self._programs) >= MAX_PROGRAMS:
                self._programs.clear()
            self._programs[key] = program
        return program

    # -- one customer ----------------------------------------------------------------------------
    def matches(self, record, *, as_of=None, schema=None):
        """Evaluate the rule set for one customer, with the batch engine's semantics.

        Parameters
        ----------
        record : mapping
            Column name -> scalar: None for null, int/float (numpy scalars too), bool, str,
            ``datetime.date`` / ``datetime.datetime`` for date and timestamp columns,
            ``datetime.timedelta`` for durations. Keys the rules do not read are ignored.
        as_of : datetime, date or ISO string, optional
            As in :meth:`evaluate`; default: now (UTC), at each call.
        schema : pyarrow.Schema, optional
            The columns' types. Without it they are told from the record's values (a None
            from how the rules use its column), but a column the rules use only as a time is
            typed from the rules, whatever the record holds
            (:func:`segmint.rules.record.time_columns`: date32 when compared only with date
            literals, else timestamp[us, tz=UTC], where a date is midnight UTC); the program
            prepared for each distinct signature of value types is kept, so repeated calls do
            not prepare again.

        Returns
        -------
        str or list of str
            Waterfall: the name of the customer's segment (``default`` when no rule is true);
            multi mode: the names of the segments whose rules are true, in rule order.

        Raises
        ------
        UnknownColumnError
            The record lacks a column the rules read (the nearest keys are named).
        UnsupportedTypeError
            A value of a type its column cannot hold (the column and the expected type are named).

        Examples
        --------
        >>> rs = RuleSet({"vip": "monetary >= 1000"}, default="others")
        >>> rs.matches({"monetary": 1200.0})
        'vip'
        """
        cache = self._records
        if cache is None:
            from .record import RecordCache
            cache = self._records = RecordCache(self)
        ev = cache.for_schema(schema) if schema is not None else cache.for_record(record)
        instant = cache.instant(as_of)
        if self.mode == "waterfall":
            return ev.names[ev._run(record, instant, _NO_MEMBER)]
        member = np.zeros(len(ev.names), dtype=np.uint8)
        ev._run(record, instant, member)
        names = ev.names
        return [names[i] for i in member.nonzero()[0].tolist()]

    def record_evaluator(self, schema, *, as_of=None):
        """The rule set prepared for one customer at a time against ``schema`` (for the Scorer).

        Parameters
        ----------
        schema : pyarrow.Schema
            The columns' types (every column the rules read).
        as_of : datetime, date or ISO string, optional
            A fixed evaluation instant; default: now (UTC), at each call.

        Returns
        -------
        segmint.rules.record.RecordEvaluator
            ``.columns``, ``.code(record)``, ``.codes_many(records)``, ``.members(record)``:
            everything compiled and prepared now, safe to call from many threads.
        """
        from .record import RecordEvaluator
        return RecordEvaluator(self, schema, as_of)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, source, *, as_of=None, id_column=None, out=None, memberships="columns",
                 batch_size=None):
        """Evaluate every segment for every row of ``source``.

        Parameters
        ----------
        source : anything :func:`segmint.open` accepts (streamed in batches)
        as_of : datetime, date or ISO string, optional
            The instant ``days_since`` and ``within_last`` count from. Naive datetimes are UTC;
            a date means its midnight UTC; default: now (UTC).
        id_column : str, optional
            A column copied into the result beside the segments (e.g. the customer id).
        out : path, optional
            Write the result there (Arrow IPC or Parquet by suffix, atomically) instead of
            returning it in memory.
        memberships : {'columns', 'bitmask'}
            Multi mode: one boolean column per segment, or one uint64 ``segments`` bitmask
            (bit i = segment i; at most 64 segments).
        batch_size : int, optional
            Rows per batch (see :func:`auto_batch_size` for the default).

        Returns
        -------
        RuleResult
        """
        if not isinstance(memberships, str) or memberships not in MEMBERSHIPS:
            raise ParameterError(f"memberships must be 'columns' or 'bitmask', got {_describe(memberships)}")
        if memberships == "bitmask" and len(self.segments) > 64:
            raise ParameterError(f"a bitmask holds at most 64 segments, this rule set has "
                                 f"{len(self.segments):,}; use memberships='columns'")
        src = open_source(source)
        if out is not None:  # before any work: never over an input, a foreign folder, "." ...
            from ..io.writers import check_table_output
            check_table_output(out, inputs=src.paths)
        if id_column is not None and id_column not in src.column_names:
            from ..errors import unknown_column
            raise unknown_column(id_column, src.column_names, src.label)
        batch_size = auto_batch_size(src, batch_size)
        writer = None
        pieces = []
        acc = self._counts_acc()
        if self.mode == "multi":  # the kernel adds each batch's overlaps (see _run_batch)
            acc["overlaps"] = np.zeros((len(self.segments),) * 2, dtype=np.int64)
        try:
            for batch, assign, bits in self._stream(src, as_of, True, batch_size, id_column, acc):
                result = self._result_batch(batch, assign, bits, id_column, memberships, src.schema)
                if out is not None:
                    if writer is None:
                        writer = ResultWriter(out, result.schema, inputs=src.paths)
                    writer.write(result)
                else:
                    pieces.append(result)
            if out is not None:
                if writer is None:
                    writer = ResultWriter(out, self._empty_result_schema(src, id_column, memberships),
                                          inputs=src.paths)
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        counts = self._counts_table(acc)
        table = None
        if out is None:
            schema = pieces[0].schema if pieces else self._empty_result_schema(src, id_column, memberships)
            table = pa.Table.from_batches(pieces, schema=schema)
        overlap_table = None
        overlaps = acc.get("overlaps")
        if overlaps is not None:
            overlap_table = pa.table({"segment": self.names,
                                      **{n: overlaps[:, i] for i, n in enumerate(self.names)}})
        return RuleResult(table, counts, overlap_table, acc["rows"])

    def counts(self, source, *, as_of=None, batch_size=None):
        """Segment sizes without materialising per-row results.

        Parameters
        ----------
        source : anything :func:`segmint.open` accepts (streamed in batches)
        as_of : datetime, date or ISO string, optional
            As in :meth:`evaluate`.
        batch_size : int, optional
            Rows per batch (see :func:`auto_batch_size` for the default).

        Returns
        -------
        pyarrow.Table
            ``segment``, ``matched``, ``unknown``, ``share`` (as :attr:`RuleResult.counts`).
        """
        src = open_source(source)
        acc = self._counts_acc()
        for _ in self._stream(src, as_of, False, auto_batch_size(src, batch_size), None, acc):
            pass
        return self._counts_table(acc)

    def stream(self, source, *, as_of=None, batch_size=DEFAULT_BATCH_SIZE, columns=()):
        """Evaluate batch by batch, yielding each batch with its rule results, in source order.

        For callers that do more with each batch than :meth:`evaluate` does (the
        :class:`~segmint.Segmenter` clusters the rows of some segments): nothing is gathered,
        so memory stays one batch (times the worker threads) whatever the source's size.

        Parameters
        ----------
        source : anything :func:`segmint.open` accepts (streamed in batches)
        as_of : datetime, date or ISO string, optional
            As in :meth:`evaluate`.
        batch_size : int
            Rows per batch.
        columns : sequence of str
            Columns to read along with the ones the rules need.

        Yields
        ------
        RuleBatch
            ``(batch, codes, members)``: waterfall mode fills ``codes`` (each row's segment
            index), multi mode ``members`` (packed memberships).
        """
        if isinstance(columns, str):
            raise ParameterError(f"columns must be a list of column names, got the string {_short(columns)}")
        columns = list(columns)
        src = open_source(source)
        unknown = [c for c in columns if c not in src.column_names]
        if unknown:
            from ..errors import unknown_column
            raise unknown_column(unknown[0], src.column_names, src.label)
        waterfall = self.mode == "waterfall"
        for batch, assign, bits in self._stream(src, as_of, True, batch_size, None, self._counts_acc(),
                                                extra=columns):
            yield RuleBatch(batch, assign if waterfall else None, None if waterfall else bits)

    def _counts_acc(self):
        k = len(self.segments)
        # everything one evaluation accumulates lives here, not on self: a RuleSet may be
        # evaluated from several threads at once
        return {"matched": np.zeros(k, np.int64), "unknown": np.zeros(k, np.int64), "default": 0, "rows": 0}

    def _stream(self, src, as_of, keep, batch_size, id_column, acc, extra=()):
        """``(batch, assign, bits)`` per batch (see :func:`_run_batch`); ``extra`` columns are
        read along (for callers that need more of each batch, such as the Segmenter)."""
        program = self.prepare(src.schema)
        consts = program.consts.copy()
        consts[K_AS_OF_US], consts[K_AS_OF_DAY_US] = _as_of(as_of)
        names = [n for n, _ in program.num_columns] + program.bool_columns + program.str_columns
        read = list(dict.fromkeys(names + ([id_column] if id_column else []) + list(extra)))
        luts = _LutCache(program)
        planes = _Planes(program, consts)
        k = len(self.segments)
        waterfall = self.mode == "waterfall"

        pairs = "overlaps" in acc

        def work(group):
            return [(batch, _run_batch(program, code, consts, tables, masks, planes, batch, k, waterfall, keep,
                                       pairs)) for batch, tables, masks, code in group]

        def prepared():
            # Lookup tables grow with the dictionaries: built here, in order. A task for the
            # pool is a group of consecutive batches of about batch_size rows: a table's own
            # chunks (zero-copy, often smaller) would otherwise each be a hand-over to a thread
            # and back, which on 262,144-row chunks cost more than a fifth of the evaluation.
            group, rows = [], 0
            for batch in src.batches(columns=read, batch_size=batch_size):
                group.append((batch, *luts.for_batch(batch)))
                rows += batch.num_rows
                if rows >= batch_size:
                    yield group
                    group, rows = [], 0
            if group:
                yield group

        for results in ordered_map(work, prepared()):
            for batch, (assign, bits, matched, unknown, overlaps) in results:
                acc["matched"] += matched
                acc["unknown"] += unknown
                if overlaps is not None:
                    acc["overlaps"] += overlaps
                if waterfall:
                    acc["default"] += batch.num_rows - int(matched.sum())
                acc["rows"] += batch.num_rows
                yield batch, assign, bits

    def _counts_table(self, acc):
        rows = max(acc["rows"], 1)
        names = list(self.names)
        matched = acc["matched"].tolist()
        unknown = acc["unknown"].tolist()
        if self.mode == "waterfall":
            names.append(self.default)
            matched.append(acc["default"])
            unknown.append(0)
        return pa.table({"segment": names, "matched": pa.array(matched, pa.int64()),
                         "unknown": pa.array(unknown, pa.int64()),
                         "share": pa.array([m / rows for m in matched], pa.float64())})

    def _result_batch(self, batch, assign, bits, id_column, memberships, schema):
        arrays, names = [], []
        if id_column is not None:
            # the source's own type, as on no rows (_empty_result_schema): strings are read
            # dictionary-encoded for the rules, so a string id column came out as a dictionary
            # on >= 1 row and as a string on 0 rows (parts of one dataset disagreed)
            arrays.append(_as_type(batch.record_batch.column(id_column), schema.field(id_column).type))
            names.append(id_column)
        if self.mode == "waterfall":
            if self._labels is None:
                self._labels = pa.array(self.names + [self.default], pa.string())
            # the kernel wrote the default label's index itself; indices are known in range
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(assign), self._labels, safe=False))
            # (assign is int8/int16/int32 by the number of segments: see _label_dtype)
            names.append("segment")
        elif memberships == "bitmask":
            mask = np.empty(batch.num_rows, dtype=np.uint64)
            to_bitmask(bits, batch.num_rows, mask)
            arrays.append(pa.array(mask))
            names.append("segments")
        else:
            n = batch.num_rows
            for s, name in enumerate(self.names):  # zero-copy: the packed words are Arrow's bitmap
                arrays.append(pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(bits[s])]))
                names.append(name)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _empty_result_schema(self, src, id_column, memberships):
        fields = [src.schema.field(id_column)] if id_column else []
        if self.mode == "waterfall":
            index = pa.from_numpy_dtype(_label_dtype(len(self.segments)))
            fields.append(pa.field("segment", pa.dictionary(index, pa.string())))
        elif memberships == "bitmask":
            fields.append(pa.field("segments", pa.uint64()))
        else:
            fields.extend(pa.field(n, pa.bool_()) for n in self.names)
        return pa.schema(fields)


# The largest batch :func:`auto_batch_size` picks (see there).
MAX_AUTO_BATCH = 1 << 20


def auto_batch_size(src, batch_size=None):
    """Rows per batch for :meth:`RuleSet.evaluate` and :meth:`RuleSet.counts`: ``batch_size``
    when given, else about a quarter of the rows per thread, between segmint's default batch
    (131,072 rows, also the batch when the source does not know its rows) and
    :data:`MAX_AUTO_BATCH`.

    Why larger than the default: the VM works in 4,096-row sub-blocks whatever the batch, and a
    batch runs whole on one pool thread, so a larger batch only saves per-batch costs (Python
    set-up, the hand-over to the pool, Arrow output pieces). Measured on 10M customers x 10 rules,
    2 threads, alone (2026-12-01): counts 37.6 -> 28.5 ms, membership columns 51.2 -> 34.9 ms from
    131,072 to 2^20 rows a batch, nothing more at 2^22. Why not one batch per thread: the
    threads would wait on the last, longest batch; four a thread keep them busy. Memory holds a
    few batches of the columns the rules read. Results never depend on the batch size (tested).
    An in-memory table is read as its own chunks (zero-copy), which may be smaller: consecutive
    chunks then go to a thread together, about this many rows at a time.
    """
    if batch_size is not None:
        return batch_size
    rows = src.num_rows
    if not rows:
        return DEFAULT_BATCH_SIZE
    from .._parallel import get_num_threads
    share = -(-int(rows) // (4 * get_num_threads()))
    return int(min(MAX_AUTO_BATCH, max(DEFAULT_BATCH_SIZE, share)))


def _as_type(array, arrow_type):
    """``array`` as ``arrow_type`` (the source's declared type of a column read dictionary-encoded)."""
    if array.type == arrow_type:
        return array
    if pa.types.is_dictionary(array.type) and not pa.types.is_dictionary(arrow_type):
        array = _decode(array)
    return array if array.type == arrow_type else array.cast(arrow_type)


class _LutCache:
    """Lookup tables of string predicates, grown as dictionaries grow (append-only per pass)."""

    def __init__(self, program):
        self.program = program
        self.values = [[] for _ in program.luts]     # results for dictionary entries seen so far
        self.null_value = [None] * len(program.luts)
        self._last = (None, None)

    def for_batch(self, batch):
        """``(tables, masks, code)`` for this batch: tables of up to 64 entries become bit masks."""
        program = self.program
        if not program.luts:
            return _NO_TABLES, _NO_MASKS, program.batch_code
        # the same as the last batch's while no dictionary grew (they are append-only within a
        # pass) and no column's nulls came or went: the usual case, worked out once
        views = [batch[name] for name in program.str_columns]
        key = tuple((len(v.dictionary), v.null_count == 0) for v in views)
        if key == self._last[0]:
            return self._last[1]
        parts, masks, total = [], [], 0
        code = program.batch_code.copy()
        strings_of = {}
        for lut_id, (node, col, text, segments, _stack) in enumerate(program.luts):
            view = views[col]
            strings = strings_of.get(col)
            if strings is None:
                strings = strings_of[col] = view.dictionary.to_pylist()
            name = program.str_columns[col]
            known = self.values[lut_id]
            for s in strings[len(known):]:
                known.append(_three(py_evaluate(node, {name: s}, segments)))
            if self.null_value[lut_id] is None:
                self.null_value[lut_id] = _three(py_evaluate(node, {name: None}, segments))
            table = known[:len(strings)] + [self.null_value[lut_id]]
            row = program.lut_patch[lut_id]
            if len(table) <= 64:
                true_bits = sum(1 << i for i, v in enumerate(table) if v == 2)
                null_bits = sum(1 << i for i, v in enumerate(table) if v == 1)
                if view.null_count == 0:  # no row reads the null entry: often no null bit is left,
                    null_bits &= ~(1 << len(strings))  # and the VM then skips their pass
                code[row, 0] = vm.LUT64
                code[row, 3] = len(masks) // 2
                masks.extend((true_bits, null_bits))
            else:
                code[row, 3] = total
                parts.append(np.asarray(table, dtype=np.uint8))
                total += len(table)
        tables = np.concatenate(parts) if parts else _NO_TABLES
        result = tables, (np.asarray(masks, dtype=np.uint64) if masks else _NO_MASKS), code
        self._last = (key, result)
        return result


_NO_TABLES = np.zeros(1, dtype=np.uint8)
_NO_MEMBER = np.zeros(0, dtype=np.uint8)
_NO_MASKS = np.zeros(2, dtype=np.uint64)


def _three(value):
    return 1 if value is None else (2 if value else 0)


_workspace = threading.local()


def _buffer(name, shape, dtype):
    """A per-thread scratch array, reused across batches.

    Fresh large arrays cost a page fault per 4 KiB on first touch, which on some machines
    (virtual machines especially) costs more than the evaluation itself.
    """
    store = getattr(_workspace, "arrays", None)
    if store is None:
        store = _workspace.arrays = {}
    size = math.prod(shape)
    buf = store.get((name, np.dtype(dtype)))
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), dtype=dtype)
        store[(name, np.dtype(dtype))] = buf
    return buf[:size].reshape(shape)


def _run_batch(program, code, consts, lut_array, lut_masks, planes, batch, k, waterfall, keep, pairs=False):
    """Load one batch's columns and run the program over it (runs on a worker thread).

    Comparisons of columns with constants are computed first, a pass per column over all of
    its comparisons (``planes``, a :class:`_Planes`), in the column's own type when it is an
    int32 or int64 (:func:`_integer_thresholds`), else in float64; the program reads them.
    Loading is one kernel call (:func:`segmint.kernels.rules.load_batch`), handed the columns'
    memory as addresses (the arrays stay referenced here until it returns), the program another.

    Returns ``(assign, bits, matched, unknown, overlaps)``: ``assign`` the waterfall labels
    (kept only), ``bits`` the multi-mode memberships as ``(k, ceil(n / 64))`` uint64 words,
    Arrow's boolean layout (kept only), per-segment counts of matched and unknown rows, and
    with ``pairs`` (multi mode, kept) the rows in both segments i and j as ``(k, k)`` int64.
    """
    n = batch.num_rows
    words = (n + 63) // 64
    cn = len(program.num_columns)
    col_valid = _buffer("col_valid", (cn, words), np.uint64)
    # float64 copies only of the columns arithmetic reads; comparisons read columns as stored
    col_v = _buffer("col_v", (cn, n if program.value_columns else 0), np.float64)
    plane_bits = _buffer("planes", (planes.count, words), np.uint64)
    num = _buffer("num", (cn, 10), np.int64)
    alive = []  # every array whose address the kernel gets
    ns_columns = program.ns_columns
    dtypes = []
    for j, (name, scale) in enumerate(program.num_columns):
        view = batch[name]
        values = view.values
        if ns_columns and j in ns_columns:
            # timestamp[ns] / duration[ns]: the microsecond each value falls in (floored, exact,
            # in int64), then read as a [us] column is. (Under a null lies anything: pandas'
            # NaT, int64's minimum, floors without overflow.)
            values = np.floor_divide(values, 1000, out=np.empty(n, np.int64))
        if values.dtype.kind in "iu" and values.dtype.itemsize == 8 and n:
            # not np.abs: it leaves int64's minimum negative
            big = ((values > _EXACT_INT) | (values < -_EXACT_INT)) if values.dtype.kind == "i" else values > _EXACT_INT
            if big.any() and view.validity is not None:
                # only valid values count: under a null lies anything (pandas' NaT is int64's minimum)
                big &= view.is_valid()
            if big.any():
                raise DataError(f"column {name!r} holds integers beyond 2**53, which rules compare "
                                "as float64 and could get wrong; compare such ids as strings")
        # the kernels read a column as its bytes and its type code: one compiled variant each
        # for every column type
        values = np.ascontiguousarray(values)
        validity = view.validity if view.validity is not None else _NO_BITS
        alive.append((values, validity))
        lo, hi = planes.ranges[j]
        dtypes.append(values.dtype)
        num[j] = (_address(values), values.nbytes, vm.KINDS[values.dtype], _address(validity), validity.nbytes,
                  view.validity_offset, lo, hi, values.dtype in _NATIVE_INTEGERS and scale == 1.0,
                  j in program.value_columns)
    iks, icodes = planes.integers(tuple(dtypes))
    cb = len(program.bool_columns)
    col_t = _buffer("col_t", (cb, words), np.uint64)
    col_f = _buffer("col_f", (cb, words), np.uint64)
    bools = _buffer("bools", (cb, 6), np.int64)
    for j, name in enumerate(program.bool_columns):
        view = batch[name]
        validity = view.validity if view.validity is not None else _NO_BITS
        alive.append((view.values, validity))
        bools[j] = (_address(view.values), view.values.nbytes, view.values_offset, _address(validity), validity.nbytes,
                    view.validity_offset)
    col_i = _string_codes(program, batch, n)
    # results that leave this function are fresh arrays; counting alone writes none
    if waterfall and keep:
        # the labels, in the narrowest integer that holds them, written by the kernel into
        # memory from Arrow's pool (which recycles freed memory: fresh pages from the OS cost
        # a fault each)
        dtype = _label_dtype(k)
        assign = pool_array(n, dtype)
        labels = assign.view(np.uint8)
    else:
        assign = np.empty(0, dtype=_label_dtype(k))
        labels = _NO_LABELS
    kept = keep and not waterfall
    bits = pool_array((k, words), np.uint64) if kept else np.empty((0, 0), dtype=np.uint64)
    matched = np.zeros(k, dtype=np.int64)
    unknown = np.zeros(k, dtype=np.int64)
    overlaps = np.zeros((k, k) if kept and pairs else (0, 0), dtype=np.int64)
    vm.load_batch(num, planes.scales, _buffer("tails", (cn, vm.TAIL_BYTES), np.uint8), planes.ks, planes.codes,
                  iks, icodes, bools, plane_bits, col_v, col_valid, col_t, col_f, n)
    del alive  # (the column memory load_batch read by address)
    vm.run_program(code, consts, lut_array, lut_masks, plane_bits, col_v, col_valid, col_t, col_f, read_only(col_i),
                   n, program.n_num, program.n_bool, labels, assign.dtype.itemsize, k, bits, matched, unknown,
                   overlaps)
    return assign, bits, matched, unknown, (overlaps if kept and pairs else None)


def _address(a):
    """Where an array's first element is (load_batch gets columns by address)."""
    return a.__array_interface__["data"][0]


def _string_codes(program, batch, n):
    """``(string columns, n)`` int32 lookup-table indices: a column's codes, null rows at its
    null entry. One string column without nulls is its own codes, not copied (the VM reads
    them through a read-only view either way, so one compiled variant serves both)."""
    names = program.str_columns
    if len(names) == 1:
        view = batch[names[0]]
        if view.null_count == 0 and view.values.dtype == np.int32 and view.values.flags.c_contiguous:
            return view.values.reshape(1, n)
    col_i = _buffer("col_i", (len(names), n), np.int32)
    for j, name in enumerate(names):
        view = batch[name]
        vbits = read_only(view.validity) if view.validity is not None else _NO_BITS
        vm.load_codes(read_only(view.values), vbits, view.validity_offset, len(view.dictionary), col_i[j])
    return col_i


class _Planes:
    """One evaluation's comparisons of columns with constants (``program.planes``, grouped by
    column): the constants (``as_of`` fixed), each column's rows, and the integer thresholds
    per column and dtype, worked out once rather than per batch."""

    def __init__(self, program, consts):
        planes = program.planes
        self.count = len(planes)
        self.ks = consts[planes[:, 1]]
        self.codes = np.ascontiguousarray(planes[:, 2])
        bounds = np.searchsorted(planes[:, 0], np.arange(len(program.num_columns) + 1)).tolist()
        self.ranges = list(zip(bounds[:-1], bounds[1:]))
        self.scales = np.array([scale for _, scale in program.num_columns], dtype=np.float64)
        self._integers = {}

    def integers(self, dtypes):
        """``(iks, icodes)``: every plane's integer threshold and code for
        :func:`segmint.kernels.rules.integer_planes`, for batches whose numeric columns have these
        dtypes (zeros for planes of columns compared in float64), worked out once per dtypes."""
        found = self._integers.get(dtypes)
        if found is None:  # (two threads may both work it out: the same answer)
            iks = np.zeros(self.count, np.int64)  # int64 for every column type: the kernel narrows
            icodes = np.zeros(self.count, np.int64)
            for j, dtype in enumerate(dtypes):
                lo, hi = self.ranges[j]
                if hi > lo and dtype in _NATIVE_INTEGERS and self.scales[j] == 1.0:
                    iks[lo:hi], icodes[lo:hi] = _integer_thresholds(self.ks[lo:hi], self.codes[lo:hi], dtype)
            found = self._integers[dtypes] = (iks, icodes)
        return found


def _integer_thresholds(ks, codes, dtype):
    """Comparisons ``float64(x) c k`` of an integer column as comparisons in its own type.

    Returns ``(thresholds of dtype, codes)`` for :func:`segmint.kernels.rules.integer_planes`:
    ``x >= k`` is ``x >= ceil(k)``, ``x > k`` is ``x >= floor(k) + 1``, ``x <= k`` is
    ``x <= floor(k)``, ``x < k`` is ``x <= ceil(k) - 1``, ``x = k`` needs a whole ``k``; a
    threshold beyond the type's range, or a NaN ``k`` (only ``!=`` is true), makes the
    comparison true (``ALL``) or false (``NONE``) for every valid row. The float64 answers are
    exact for these columns (integers beyond 2**53 are refused), so the two agree everywhere.
    """
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    out_k = np.zeros(len(ks), dtype)
    out_c = np.zeros(len(ks), np.int64)
    for p, (k, c) in enumerate(zip(ks.tolist(), codes.tolist())):
        t = 0
        if math.isnan(k):
            code = vm.ALL if c == vm.NE else vm.NONE
        elif c in (vm.EQ, vm.NE):
            if math.isfinite(k) and k.is_integer() and lo <= k <= hi:
                code, t = c, int(k)
            else:
                code = vm.ALL if c == vm.NE else vm.NONE
        elif math.isinf(k):  # (ceil and floor refuse infinities)
            code = vm.ALL if (k > 0) == (c in (vm.LT, vm.LE)) else vm.NONE
        elif c in (vm.GE, vm.GT):
            t = math.ceil(k) if c == vm.GE else math.floor(k) + 1
            code = vm.ALL if t <= lo else (vm.NONE if t > hi else vm.GE)
        else:
            t = math.floor(k) if c == vm.LE else math.ceil(k) - 1
            code = vm.ALL if t >= hi else (vm.NONE if t < lo else vm.LE)
        out_c[p] = code
        out_k[p] = t if code in (vm.EQ, vm.NE, vm.LE, vm.GE) else 0
    return out_k, out_c


def _nanoseconds(arrow_type):
    """Whether a column is a timestamp or duration stored in nanoseconds (the rules read it in
    whole microseconds, floored)."""
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    return (pa.types.is_timestamp(t) or pa.types.is_duration(t)) and t.unit == "ns"


def _label_dtype(k):
    """Index type for ``k`` segments plus the default."""
    return np.dtype(np.int8 if k < 127 else (np.int16 if k < 32_767 else np.int32))


_NO_BITS = np.zeros(0, dtype=np.uint8)
_NO_BITS.flags.writeable = False
# integer columns compared in their own type (integer_planes); others are widened to float64
_NATIVE_INTEGERS = (np.dtype(np.int32), np.dtype(np.int64))
_NO_LABELS = np.zeros(0, dtype=np.uint8)


def _segments(spec):
    if isinstance(spec, dict):
        items = []
        for name, value in spec.items():
            _check_name(name, f"segment #{len(items) + 1}")  # YAML keys may be numbers or booleans
            if isinstance(value, str):
                items.append(Segment(name, value))
            elif isinstance(value, dict):
                items.append(_segment_from_dict({"name": name, **value}, len(items)))
            else:
                raise RuleSetError(f"segment {_short(name)}: expected a rule string or a dict, got "
                                   f"{_describe(value)}")
        return items
    if isinstance(spec, (list, tuple)):
        items = []
        for entry in spec:
            if isinstance(entry, Segment):
                items.append(entry)
            elif isinstance(entry, dict):
                items.append(_segment_from_dict(entry, len(items)))
            elif isinstance(entry, (list, tuple)) and len(entry) == 2:
                items.append(Segment(entry[0], entry[1]))
            else:
                raise RuleSetError(f"cannot read segment #{len(items) + 1} ({_describe(entry)}): give a "
                                   "dict with 'name' and 'rule', a Segment or a (name, rule) pair")
        return items
    raise RuleSetError(f"segments must be a list or a dict, got {_describe(spec)}")


def _segment_from_dict(entry, index):
    allowed = {"name", "rule", "description", "owner", "purpose"}
    name = entry.get("name")
    where = f"segment {_short(name)}" if isinstance(name, str) else f"segment #{index + 1}"
    unknown = set(entry) - allowed
    if unknown:
        raise RuleSetError(f"{where}: unknown keys {', '.join(sorted(map(_short, unknown)))} "
                           f"(allowed: {', '.join(sorted(allowed))})")
    if "name" not in entry or "rule" not in entry:
        raise RuleSetError(f"{where} needs a 'name' and a 'rule'")
    return Segment(entry["name"], entry["rule"], entry.get("description"), entry.get("owner"),
                   entry.get("purpose"))


MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 10_000


def _check_segment(seg, index):
    """Refuse a segment whose fields are not text (a YAML ``yes`` is a boolean, ``*a`` a list)."""
    name = _check_name(seg.name, f"segment #{index + 1}")
    if not isinstance(seg.rule, str):
        raise RuleSetError(f"segment {name!r}: the rule must be a string, got {_describe(seg.rule)}")
    for field in ("description", "owner", "purpose"):
        value = getattr(seg, field)
        if value is not None:
            _check_text(value, f"segment {name!r}: {field}")


def _check_name(name, where):
    """A segment name: a non-blank string without control characters or surrounding spaces.

    Names become column names and labels in results and are printed on one line, and a model
    saved with a name must load again: so ``''``, ``'  '``, ``'a\n'`` and ``'a '`` (which
    prints like ``'a'``) are refused here, where the rule set is built.
    """
    if not isinstance(name, str):
        raise RuleSetError(f"{where}: a segment name must be a string, got {_describe(name)}"
                           + (" (YAML reads yes/no/on/off as booleans: quote the name)"
                              if isinstance(name, bool) else ""))
    if not name.strip():
        raise RuleSetError(f"{where}: a segment name must not be empty or blank, got {name!r}")
    if name != name.strip():
        raise RuleSetError(f"{where}: the segment name {_short(name)} starts or ends with spaces")
    if len(name) > MAX_NAME_LENGTH:
        raise RuleSetError(f"{where}: the segment name {_short(name)} is {len(name):,} characters "
                           f"long; the limit is {MAX_NAME_LENGTH}")
    bad = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise RuleSetError(f"{where}: the segment name {_short(name)} holds the control character "
                           f"{bad!r}")
    return name


def _check_text(value, where):
    """Free text (a description, an owner, a purpose, a rule set's name): a string of bounded length."""
    if not isinstance(value, str):
        raise RuleSetError(f"{where} must be a string, got {_describe(value)}")
    if len(value) > MAX_TEXT_LENGTH:
        raise RuleSetError(f"{where} is {len(value):,} characters long; the limit is {MAX_TEXT_LENGTH:,}")
    return value


def _describe(value):
    """A short description of a value of any type, safe for a huge or recursive one."""
    if isinstance(value, str):
        return _short(value)
    if isinstance(value, (list, tuple, dict, set)):
        return f"a {type(value).__name__} of {len(value):,} item{'' if len(value) == 1 else 's'}"
    if value is None or isinstance(value, (bool, int, float)):
        return _short(value)
    return f"a {type(value).__name__}"


def _short(value):
    """``repr`` of a string or scalar of a rule set, cut to 60 characters."""
    return short_repr(value, limit=60, max_bits=128)


def _suffix(path):
    """The lower-case suffix of a file path; a ParameterError for what is not a path."""
    import os
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"a rule set file path must be a string or path, got {_describe(path)}")
    return Path(path).suffix.lower()


def _not_rules(fmt):
    return (f"this document is a {_short(fmt)} document, not a rule set (format {FORMAT!r})"
            if isinstance(fmt, str) else f"the document's format must be {FORMAT!r}, got {_describe(fmt)}")


def _read_text(path_or_text):
    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str) and "\n" not in path_or_text
                                          and Path(path_or_text).suffix.lower() in (".json", ".yaml", ".yml")):
        path = str(path_or_text)
        if not Path(path).exists():
            from ..errors import SourceNotFoundError
            raise SourceNotFoundError(f"no such rule set file: {path!r}")
        # bounded, regular files only, UTF-8 only: see segmint._documents
        return read_text(path, f"the rule set {path!r}", RuleSetError)
    return path_or_text
