"""The saved-model format: a zip of plain data, so loading a model can never run code.

A ``.seg`` file is a zip archive holding

- ``segmint-model.json``: ``{"format": "segmint-model", "version": 2,
  "segmint_version": ..., "params": {...}, "features": <FeatureSpec.to_dict()> or null,
  "rules": <RuleSet.to_dict()> or null, "cluster_within": [...], "segment_names": [...],
  "clusterer": null or {"type": "MiniBatchKMeans" | "KMeans", "params": {...},
  "n_features_in": d, "inertia": float, "centers": "centers.npy"}, "n_rows_fit": int,
  "reference": <ReferenceStatistics.to_dict()> or null,
  "input_schema": [{"name": ..., "type": ...}, ...] (optional)}``;
- ``centers.npy``: the cluster centers, ``(k, d)`` float32 or float64, read with
  ``allow_pickle=False``.

Version 2 added ``"reference"`` (the training data's reference statistics, for drift checks);
a version-1 file still loads, as a model without them (``reference_`` None). The optional
``"input_schema"`` (the Arrow types of the columns the model reads, for scoring one record at a
time: :mod:`segmint.serve`) may be absent, as in files written before segmint saved it
(``input_schema_`` None).

Readers refuse files of a newer format version, and check every shape and type before
building the model. A model file may come from anyone: :func:`read_state` reads nothing beyond
fixed bounds (see its docstring) and ends every problem in a :class:`ModelFormatError` naming
the file and the field; :func:`write_state` applies the same bounds, so what it writes loads
again. Floats in JSON round-trip exactly (Python writes the shortest repr that
reads back to the same double), and the centers are stored bit for bit, so a loaded model
predicts bit-identically.

This module converts between files and :class:`SegmenterState` (the fitted state as plain
data: parameters, the fitted FeatureSpec, RuleSet and clusterer, names); the Segmenter builds
itself from a state (:meth:`Segmenter._from_state`) and hands its state here to save. So
``segmenter`` imports this module, never the reverse.
"""
import io
import json
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .._documents import parse_document
from .._documents import short_repr as _short
from ..cluster import KMeans, MiniBatchKMeans
from ..errors import CorruptFileError, OutputError, ParameterError, SegmintError, SourceNotFoundError
from ..io.writers import atomic_file
from ..rules import RuleSet
from .features import FeatureSpec

FORMAT = "segmint-model"
VERSION = 2
MANIFEST = "segmint-model.json"
_CLUSTERERS = {"KMeans": KMeans, "MiniBatchKMeans": MiniBatchKMeans}


class ModelFormatError(CorruptFileError):
    """A model file that cannot be read: damaged, truncated, wrong shapes, or too new."""


class UnsavableParameterError(ParameterError, TypeError):
    """A parameter of the model that a model file cannot hold as plain data (e.g. a numpy
    random Generator as ``random_state``); a TypeError too, as the wrong kind of value."""


@dataclass
class SegmenterState:
    """A fitted Segmenter as data: what a model file holds, once its document is checked.

    Attributes
    ----------
    params : dict
        The Segmenter's own parameters: ``id_column``, ``fit_rows``, ``dtype`` (a name),
        ``random_state``.
    features : FeatureSpec or None
        Fitted.
    rules : RuleSet or None
    clusterer : KMeans or MiniBatchKMeans or None
        With ``cluster_centers_``, ``n_features_in_`` and ``inertia_`` set.
    cluster_within : list of str
        The rule segments clustered (empty without rules or clusterer).
    segment_names : list of str
        The name of every segment id.
    n_rows_fit : int
        Rows the clusterer was fitted on.
    reference : segmint.monitor.reference.ReferenceStatistics or None
        The training data's reference statistics (None in a version-1 file).
    """

    params: dict
    features: object
    rules: object
    clusterer: object
    cluster_within: list
    segment_names: list
    n_rows_fit: int
    reference: object = None
    input_schema: object = None


# The Arrow types an input schema may name (plain names, never Arrow's binary schema format:
# a model file is untrusted). Dictionary-encoded columns are saved as their value type.
_SCHEMA_TYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "halffloat", "float", "double", "string", "large_string", "date32[day]", "date64[ms]")
_TIME_UNITS = ("s", "ms", "us", "ns")


def schema_to_data(schema):
    """A pyarrow schema as plain data (``[{"name", "type"[, "unit", "tz"]}]``).

    Column by column: a column of a type outside :data:`_SCHEMA_TYPES`, timestamps and
    durations (a decimal, a list...) is left out alone, and only its type is then inferred
    when the loaded model scores records; the other columns keep theirs (a float32 column's
    rounding, above all)."""
    import pyarrow as pa
    out = []
    for field in schema:
        t = field.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_timestamp(t):
            out.append({"name": field.name, "type": "timestamp", "unit": t.unit, "tz": t.tz})
        elif pa.types.is_duration(t):
            out.append({"name": field.name, "type": "duration", "unit": t.unit})
        elif str(t) in _SCHEMA_TYPES:
            out.append({"name": field.name, "type": str(t)})
    return out


def schema_from_data(data, where="input_schema"):
    """The pyarrow schema :func:`schema_to_data` wrote; a ModelFormatError-free check: raises
    ValueError naming the entry (the caller adds the file)."""
    import pyarrow as pa
    if not isinstance(data, list):
        raise ValueError(f"{where} must be a list of columns, got {_short(data)}")
    fields, seen = [], set()
    for i, entry in enumerate(data):
        ok = isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("type"), str)
        if not ok or entry["name"] in seen:
            raise ValueError(f"{where}[{i}] must be a {{'name', 'type'}} object of a new column, got {_short(entry)}")
        seen.add(entry["name"])
        kind = entry["type"]
        if kind == "timestamp":
            unit, tz = entry.get("unit"), entry.get("tz")
            if unit not in _TIME_UNITS or not (tz is None or (isinstance(tz, str) and 0 < len(tz) <= 64)):
                raise ValueError(f"{where}[{i}]: a timestamp needs a unit of {_TIME_UNITS} and a time zone "
                                 f"name or null, got {_short(entry)}")
            try:
                t = pa.timestamp(unit, tz=tz)
            except (ValueError, TypeError, pa.ArrowException):
                raise ValueError(f"{where}[{i}]: unknown time zone {_short(tz)}") from None
        elif kind == "duration":
            if entry.get("unit") not in _TIME_UNITS:
                raise ValueError(f"{where}[{i}]: a duration needs a unit of {_TIME_UNITS}, got {_short(entry)}")
            t = pa.duration(entry["unit"])
        elif kind in _SCHEMA_TYPES:
            t = pa.type_for_alias(kind.split("[")[0])
        else:
            raise ValueError(f"{where}[{i}]: unknown type {_short(kind)} (known: {', '.join(_SCHEMA_TYPES)}, "
                             "timestamp, duration)")
        fields.append(pa.field(entry["name"], t))
    return pa.schema(fields)


def write_state(path, state):
    """Write ``state`` (a :class:`SegmenterState`) to ``path`` atomically (temporary file, rename)."""
    from .. import __version__
    path = os.fspath(path)
    clusterer = state.clusterer
    params = state.params
    doc = {
        "format": FORMAT, "version": VERSION, "segmint_version": __version__,
        # _plain: a numpy integer fit_rows made json.dumps fail
        "params": {"id_column": params["id_column"], "fit_rows": _plain(params["fit_rows"]),
                   "dtype": np.dtype(params["dtype"]).name, "random_state": _plain(params["random_state"])},
        "features": state.features.to_dict() if state.features is not None else None,
        "rules": state.rules.to_dict() if state.rules is not None else None,
        "cluster_within": list(state.cluster_within),
        "segment_names": list(state.segment_names),
        "n_rows_fit": int(state.n_rows_fit),
        "clusterer": None,
        "reference": state.reference.to_dict() if state.reference is not None else None,
    }
    input_schema = schema_to_data(state.input_schema) if state.input_schema is not None else None
    if input_schema is not None:  # optional: absent in older files, which still load
        doc["input_schema"] = input_schema
    arrays = {}
    if clusterer is not None:
        doc["clusterer"] = {"type": type(clusterer).__name__,
                            "params": {k: _plain(v) for k, v in clusterer.get_params().items()},
                            "n_features_in": int(clusterer.n_features_in_),
                            "inertia": _finite_or_none(getattr(clusterer, "inertia_", None)),
                            "centers": "centers.npy"}
        arrays["centers.npy"] = np.ascontiguousarray(clusterer.cluster_centers_)
    members = {MANIFEST: json.dumps(doc, indent=1, allow_nan=True).encode("utf-8")}
    for name, array in arrays.items():
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        members[name] = buf.getvalue()
    # what is saved must load: the bounds read_state() applies are checked here, before writing
    if clusterer is not None and not 1 <= doc["clusterer"]["n_features_in"] <= MAX_FEATURES:
        raise OutputError(f"cannot save the model to {path}: {doc['clusterer']['n_features_in']:,} "
                          f"features, beyond the {MAX_FEATURES:,} segmint loads")
    for name, data in members.items():
        limit = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_CENTERS_BYTES
        if len(data) > limit:
            raise OutputError(f"cannot save the model to {path}: its {name} would be {len(data):,} "
                              f"bytes, beyond the {limit:,} segmint loads")
    with atomic_file(path) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data, compress_type=_compression(data))


def read_state(path):
    """Read the :class:`SegmenterState` of a model saved by :meth:`Segmenter.save`.

    A model file may come from anyone, so everything is checked before it is used, and
    nothing is inflated or allocated beyond a bound: the file must be a regular file of at
    most :data:`MAX_FILE_BYTES`; the zip may hold only ``segmint-model.json`` and
    ``centers.npy``, once each, neither encrypted, stored or deflated, of at most
    :data:`MAX_MANIFEST_BYTES` and :data:`MAX_CENTERS_BYTES` once inflated (and, beyond 1 MiB,
    at most :data:`MAX_RATIO` times their compressed size); the centers' ``.npy`` header is
    read first and its dtype and shape checked against the description before the array is
    read.

    Raises
    ------
    FileNotFoundError (SourceNotFoundError)
    ModelFormatError (a CorruptFileError)
        Not a segmint model, truncated or damaged, a newer format version, wrong shapes or
        types, or beyond one of the bounds above. The message names the file and the field.
    """
    path = os.fspath(path)
    _check_regular_file(path)
    try:
        with open(path, "rb") as fh:
            _check_directory_end(fh, path)
            with zipfile.ZipFile(fh) as z:
                members = _members(z, path)
                if MANIFEST not in members:
                    raise ModelFormatError(f"{path} is not a segmint model (no {MANIFEST} inside)")
                text = _read_member(z, members[MANIFEST])
                doc = parse_document(text, "json", f"{path}: the model description", ModelFormatError)
                if not (isinstance(doc, dict) and doc.get("format") == FORMAT):
                    raise ModelFormatError(f"{path}: not a segmint Segmenter model")
                arrays = {}
                if CENTERS in members:
                    arrays[CENTERS] = _read_centers(z, members[CENTERS], path, doc)
    except zipfile.BadZipFile as exc:
        raise ModelFormatError(f"{path} is not a readable segmint model (truncated or not a zip "
                               f"file: {exc})") from None
    except (EOFError, zipfile.LargeZipFile, OSError, zlib.error, NotImplementedError,
            RuntimeError) as exc:
        # zlib.error: damaged compressed bytes (the CRC check comes only after inflating);
        # NotImplementedError: a compression method zipfile cannot read; RuntimeError: what
        # zipfile raises for an encrypted member (refused earlier, kept as a last line)
        if isinstance(exc, FileNotFoundError):
            raise
        raise ModelFormatError(f"{path} could not be read: {exc}") from None
    return _state(doc, arrays, path)


CENTERS = "centers.npy"
MAX_MANIFEST_BYTES = 16 << 20     # the JSON description, inflated (rule sets of 30,000 segments fit)
MAX_CENTERS_BYTES = 256 << 20     # 65,536 clusters x 512 float64 features
MAX_FILE_BYTES = MAX_MANIFEST_BYTES + MAX_CENTERS_BYTES + (1 << 20)  # both stored, and the zip's own bytes
MAX_RATIO = 200                   # inflated / compressed, for members beyond 1 MiB
MAX_FEATURES = 1 << 20
_MEMBERS = (MANIFEST, CENTERS)
_CD_END = struct.Struct("<4s4H2LH")  # the zip's end-of-central-directory record


def _compression(data):
    """Deflate, unless ``data`` compresses so well that read_state() would take it for a bomb
    (a large, highly regular member): then it is stored as is."""
    if len(data) <= (1 << 20):
        return zipfile.ZIP_DEFLATED
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    compressed = len(c.compress(data)) + len(c.flush())
    return zipfile.ZIP_DEFLATED if len(data) <= MAX_RATIO * compressed else zipfile.ZIP_STORED


def _check_regular_file(path):
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SourceNotFoundError(f"no model file at {path}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ModelFormatError(f"{path} is a folder, not a segmint model file")
    if not stat.S_ISREG(info.st_mode):
        raise ModelFormatError(f"{path} is not a regular file (a device, pipe or socket), so not a "
                               "segmint model")
    if info.st_size == 0:
        raise ModelFormatError(f"{path} is empty, not a segmint model (truncated?)")
    if info.st_size > MAX_FILE_BYTES:
        raise ModelFormatError(f"{path} is {info.st_size:,} bytes; a segmint model file is at most "
                               f"{MAX_FILE_BYTES:,}")


def _check_directory_end(fh, path):
    """Refuse a zip whose directory lists more members than a model has, before zipfile reads
    it: a directory of millions of entries costs gigabytes of ZipInfo objects."""
    size = fh.seek(0, os.SEEK_END)
    tail_size = min(size, _CD_END.size + 65_535)  # the record, then a comment of up to 64 KiB
    fh.seek(size - tail_size)
    tail = fh.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    fh.seek(0)
    if at < 0 or len(tail) - at < _CD_END.size:
        return  # not a zip (or a damaged one): zipfile says so
    if tail[max(0, at - 20):at].startswith(b"PK\x06\x07"):
        # a zip64 locator: its record would override the counts checked below
        raise ModelFormatError(f"{path}: a zip64 archive; segmint models are plain zip files")
    _, _, _, on_disk, total, cd_size, _, _ = _CD_END.unpack_from(tail, at)
    if total > 16 or on_disk > 16 or cd_size > (1 << 20):
        raise ModelFormatError(f"{path}: the zip lists {total:,} members in a {cd_size:,}-byte "
                               f"directory; a segmint model holds {MANIFEST} and {CENTERS} only")


def _members(z, path):
    """``{name: ZipInfo}`` of the model's members, each checked before anything is inflated."""
    members = {}
    for info in z.infolist():
        name = info.filename
        if name not in _MEMBERS:
            raise ModelFormatError(f"{path}: unknown member {_short(name)} in the model file (a "
                                   f"segmint model holds {MANIFEST} and {CENTERS} only)")
        if name in members:
            raise ModelFormatError(f"{path}: the member {name} appears twice (a damaged or edited file)")
        if info.flag_bits & 0x1:
            raise ModelFormatError(f"{path}: the member {name} is encrypted; segmint models are not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFormatError(f"{path}: the member {name} uses compression method "
                                   f"{info.compress_type}; segmint writes deflate (8) or stored (0)")
        limit = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_CENTERS_BYTES
        if info.file_size > limit:
            raise ModelFormatError(f"{path}: the member {name} declares {info.file_size:,} bytes once "
                                   f"inflated; the limit is {limit:,}")
        if info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ModelFormatError(f"{path}: the member {name} would inflate {info.compress_size:,} "
                                   f"bytes to {info.file_size:,} (more than {MAX_RATIO} times): a zip "
                                   "bomb, not a model")
        members[name] = info
    return members


def _read_member(z, info):
    """All of a member, reading no more than its declared size (the read checks the CRC)."""
    with z.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) != info.file_size:  # zipfile stops at the declared size; a shorter one is damage
        raise zipfile.BadZipFile(f"{info.filename} holds {len(data):,} bytes, not the "
                                 f"{info.file_size:,} its header declares")
    return data


def _read_centers(z, info, path, doc):
    """The centers array, after its ``.npy`` header was checked against the description.

    The header is read first: its dtype must be little-endian float32/float64 (no objects,
    no pickle), its shape ``(k, d)`` with ``d`` the description's ``n_features_in`` and ``k``
    no more than its segment names, in C order, and header plus data must fill the member
    exactly (a header that lies about the data is refused before any allocation).
    """
    def bad(what):
        return ModelFormatError(f"{path}: the centers array {CENTERS}: {what}")

    c = doc.get("clusterer")
    if not isinstance(c, dict):
        raise ModelFormatError(f"{path}: the file holds {CENTERS} but 'clusterer' is "
                               f"{_short(c)}, not an object naming it")
    if c.get("centers") != CENTERS:
        raise ModelFormatError(f"{path}: clusterer.centers must name the member {CENTERS!r}, got "
                               f"{_short(c.get('centers'))}")
    d = c.get("n_features_in")
    if type(d) is not int or not 1 <= d <= MAX_FEATURES:
        raise ModelFormatError(f"{path}: clusterer.n_features_in must be a number of features from 1 "
                               f"to {MAX_FEATURES:,}, got {_short(d)}")
    names = doc.get("segment_names")
    if not isinstance(names, list):
        raise ModelFormatError(f"{path}: segment_names must be a list of names, got {_short(names)}")
    max_k = len(names)  # every cluster has a name: a bound known before the array is read
    with z.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as exc:  # a damaged magic string or header
            raise bad(f"not a readable .npy array ({exc})") from None
        if version not in ((1, 0), (2, 0)):
            raise bad(f"npy format version {version[0]}.{version[1]} (segmint writes 1.0)")
        header_size = f.tell()
        if dtype.hasobject or dtype.kind != "f" or dtype.itemsize not in (4, 8) \
                or dtype.byteorder not in ("<", "=", "|"):
            raise bad(f"not plain numeric data: centers must be little-endian float32 or float64, got "
                      f"dtype {_short(str(dtype))}")
        if fortran:
            raise bad("stored in Fortran order; segmint writes C order")
        if len(shape) != 2 or not all(type(n) is int for n in shape):
            raise bad(f"centers must be a (k, d) array, got shape {_short(shape)}")
        k, width = shape
        if width != d or not 1 <= k <= max_k:
            raise bad(f"centers declare shape {_short(shape)} but the model has n_features_in={d} and "
                      f"{max_k} segment names (so at most {max_k} clusters)")
        nbytes = k * d * dtype.itemsize
        if nbytes > MAX_CENTERS_BYTES or header_size + nbytes != info.file_size:
            raise bad(f"the header declares {nbytes:,} bytes of data but the member holds "
                      f"{info.file_size - header_size:,}")
        centers = np.empty((k, d), dtype=np.dtype(dtype).newbyteorder("<"))
        view = memoryview(centers).cast("B")
        got = 0
        while got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
        if got != nbytes or f.read(1):  # reading to the end also makes zipfile check the CRC
            raise bad(f"holds {got:,} bytes of data, not the {nbytes:,} its header declares")
    return centers


def _state(doc, arrays, path):
    """The :class:`SegmenterState` a checked model description and its arrays hold; every
    problem a ModelFormatError naming ``path`` and the field. (That the pieces fit together as
    one Segmenter is checked by :meth:`Segmenter._from_state`.)"""
    def need(cond, what):
        if not cond:
            raise ModelFormatError(f"{path}: {what}")

    need(isinstance(doc, dict) and doc.get("format") == FORMAT, "not a segmint Segmenter model")
    version = doc.get("version")
    need(isinstance(version, int) and not isinstance(version, bool) and version >= 1,
         f"the format version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise ModelFormatError(f"{path} was written by a newer segmint (model format version "
                               f"{version}, segmint_version {_short(doc.get('segmint_version'))}); this "
                               f"segmint reads format version {VERSION}: upgrade segmint to load it")
    for key in ("params", "features", "rules", "cluster_within", "segment_names", "clusterer"):
        need(key in doc, f"the model description has no {key!r}")
    params = doc["params"]
    need(isinstance(params, dict), "'params' must be an object")
    _check_params(params, need)
    spec = _section(FeatureSpec.from_dict, doc["features"], "features", path)
    rules = _section(RuleSet.from_dict, doc["rules"], "rules", path)
    clusterer = None
    c = doc["clusterer"]
    if c is not None:
        need(isinstance(c, dict), f"'clusterer' must be an object or null, got {_short(c)}")
        need(c.get("type") in _CLUSTERERS if isinstance(c.get("type"), str) else False,
             f"unknown clusterer type {_short(c.get('type'))} (known: {', '.join(_CLUSTERERS)})")
        cparams = c.get("params", {})
        need(isinstance(cparams, dict), f"clusterer.params must be an object, got {_short(cparams)}")
        centers = arrays.get(c.get("centers")) if isinstance(c.get("centers"), str) else None
        need(centers is not None, f"the centers array {_short(c.get('centers'))} is missing")
        need(centers.ndim == 2 and centers.dtype in (np.float32, np.float64) and centers.shape[0] >= 1,
             f"centers must be a (k, d) float32/float64 array, got {centers.dtype} {centers.shape}")
        # NaN or infinite centers would silently send every customer to one segment
        need(bool(np.isfinite(centers).all()), "centers hold NaN or infinite values")
        need(spec is not None, "a clusterer needs the feature spec")
        d = spec.n_features_out_
        need(centers.shape[1] == d and c.get("n_features_in") == d,
             f"centers have {centers.shape[1]} features but the feature spec makes {d}")
        try:
            clusterer = _CLUSTERERS[c["type"]](**cparams)
        except TypeError as exc:
            raise ModelFormatError(f"{path}: clusterer parameters: {exc}") from None
        n_clusters = clusterer.n_clusters
        need(type(n_clusters) is int and n_clusters >= 1,
             f"clusterer parameters: n_clusters must be a positive integer, got {_short(n_clusters)}")
        clusterer.cluster_centers_ = centers
        clusterer.n_features_in_ = d
        inertia = c.get("inertia")
        need(inertia is None or (type(inertia) in (int, float) and _finite(inertia)),
             f"clusterer.inertia must be a finite number or null, got {_short(inertia)}")
        clusterer.inertia_ = float(inertia) if inertia is not None else float("nan")
    within = doc["cluster_within"]
    need(isinstance(within, list) and all(isinstance(n, str) for n in within),
         f"cluster_within must be a list of segment names, got {_short(within)}")
    n_rows_fit = doc.get("n_rows_fit", 0)
    need(isinstance(n_rows_fit, int) and not isinstance(n_rows_fit, bool) and n_rows_fit >= 0,
         f"n_rows_fit must be a count of rows, got {n_rows_fit!r}")
    names = doc["segment_names"]
    # the same rules as Segmenter.rename: one non-empty, unique name per segment id (their
    # number is checked against the model by Segmenter._from_state)
    need(isinstance(names, list) and all(isinstance(n, str) and n.strip() for n in names)
         and len(set(names)) == len(names),
         f"segment_names must list unique non-empty names (one per cluster center and rule "
         f"segment), got {_short(names)}")
    reference = None
    if version >= 2:
        need("reference" in doc, "the model description has no 'reference' (null or the reference "
             "statistics; format version 2 has it)")
        from ..monitor.reference import ReferenceStatistics
        # that it fits the model (features, segment names) is checked by Segmenter._from_state,
        # after the names themselves: check_reference
        reference = _section(ReferenceStatistics.from_dict, doc["reference"], "reference", path)
    input_schema = None
    if doc.get("input_schema") is not None:
        try:
            input_schema = schema_from_data(doc["input_schema"])
        except ValueError as exc:
            raise ModelFormatError(f"{path}: {exc}") from None
    params = {"id_column": params.get("id_column"), "fit_rows": params.get("fit_rows"),
              "dtype": params.get("dtype", "float32"), "random_state": params.get("random_state", 0)}
    return SegmenterState(params=params, features=spec, rules=rules, clusterer=clusterer,
                          cluster_within=list(within), segment_names=list(names), n_rows_fit=n_rows_fit,
                          reference=reference, input_schema=input_schema)


def check_reference(reference, spec, segment_names):
    """Check that reference statistics fit the model: the numeric features are the spec's
    numeric input columns (in spec order), the categorical ones some of its one-hot columns (in
    spec order: one of many categories is left out), and the segments section, named
    ``"segment"``, lists exactly ``segment_names`` with no null rows.

    Raises
    ------
    ModelFormatError
        Naming the field (``reference.features``, ``reference.categories``, ``reference.segments``).
    """
    numeric = [f.column for f in spec.entries if f.kind == "numeric"] if spec is not None else []
    strings = [f.column for f in spec.entries if f.kind != "numeric"] if spec is not None else []
    got = list(reference.features)
    if got != numeric:
        raise ModelFormatError(f"reference.features describes {_short(got)}, but the feature spec's "
                               f"numeric columns are {_short(numeric)}")
    got = list(reference.categories)
    if [c for c in strings if c in got] != got:
        raise ModelFormatError(f"reference.categories describes {_short(got)}, which are not among "
                               f"the feature spec's one-hot columns {_short(strings)} (in that order)")
    seg = reference.segments
    if seg is None:
        raise ModelFormatError("reference.segments is null; a model's reference statistics count "
                               "the rows of every segment")
    if seg.name != "segment" or list(seg.categories) != list(segment_names) or seg.null_count:
        raise ModelFormatError(f"reference.segments must be named 'segment', list the model's "
                               f"segment names {_short(list(segment_names))} in id order and have "
                               f"null_count 0; got name {_short(seg.name)}, categories "
                               f"{_short(list(seg.categories))}, null_count {seg.null_count}")


def _section(from_dict, data, key, path):
    """``from_dict(data)`` (or None), any complaint about the data made a ModelFormatError
    naming the section."""
    if data is None:
        return None
    try:
        return from_dict(data)
    except (SegmintError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError) as exc:
        # not only SegmintError: a hostile description can reach a builtin error in code that
        # trusts its own saved output; whatever it is, the file is what is wrong
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ModelFormatError(f"{path}: {key}: {message}") from None


def _check_params(params, need):
    """The Segmenter's own parameters, by type (their ranges are checked by the Segmenter)."""
    id_column = params.get("id_column")
    need(id_column is None or isinstance(id_column, str),
         f"params.id_column must be a column name or null, got {_short(id_column)}")
    fit_rows = params.get("fit_rows")
    need(fit_rows is None or (type(fit_rows) is int and fit_rows >= 1),
         f"params.fit_rows must be a positive number of rows or null, got {_short(fit_rows)}")
    dtype = params.get("dtype", "float32")
    need(dtype in ("float32", "float64") if isinstance(dtype, str) else False,
         f"params.dtype must be 'float32' or 'float64', got {_short(dtype)}")
    seed = params.get("random_state", 0)
    need(seed is None or type(seed) is int,
         f"params.random_state must be an integer or null, got {_short(seed)}")


def _finite(value):
    try:
        return bool(np.isfinite(float(value)))
    except OverflowError:  # an integer beyond float64
        return False




def _finite_or_none(value):
    """A float JSON can hold (strict JSON has no NaN), or None."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _plain(value):
    """A JSON-able copy of a parameter value (numpy scalars become Python numbers)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise UnsavableParameterError(f"parameter value {value!r} of type {type(value).__name__} cannot be saved "
                    "as plain data; pass numbers or strings")
