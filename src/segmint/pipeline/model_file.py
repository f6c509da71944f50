"""The saved-model format: a zip of plain data, so loading a model can never run code.

A ``.seg`` file is a zip archive holding

- ``segmint-model.json``: ``{"format": "segmint.Segmenter", "version": 1,
  "segmint_version": ..., "params": {...}, "features": <FeatureSpec.to_dict()> or null,
  "rules": <RuleSet.to_dict()> or null, "cluster_within": [...], "segment_names": [...],
  "clusterer": null or {"type": "MiniBatchKMeans" | "KMeans", "params": {...},
  "n_features_in": d, "inertia": float, "centers": "centers.npy"}, "n_rows_fit": int}``;
- ``centers.npy``: the cluster centers, ``(k, d)`` float32 or float64, read with
  ``allow_pickle=False``.

Readers refuse files of a newer format version, and check every shape and type before
building the model. Floats in JSON round-trip exactly (Python writes the shortest repr that
reads back to the same double), and the centers are stored bit for bit, so a loaded model
predicts bit-identically.
"""
import io
import json
import os
import zipfile
import zlib

import numpy as np

from ..cluster import KMeans, MiniBatchKMeans
from ..errors import CorruptFileError, DataError, SourceNotFoundError
from ..io.writers import atomic_file
from ..rules import RuleSet
from .features import FeatureSpec

FORMAT = "segmint.Segmenter"
VERSION = 1
MANIFEST = "segmint-model.json"
_CLUSTERERS = {"KMeans": KMeans, "MiniBatchKMeans": MiniBatchKMeans}


class ModelFormatError(CorruptFileError):
    """A model file that cannot be read: damaged, truncated, wrong shapes, or too new."""


def save(model, path):
    """Write ``model`` (a fitted Segmenter) to ``path`` atomically (temporary file, rename)."""
    from .. import __version__
    path = os.fspath(path)
    clusterer = model.clusterer_
    doc = {
        "format": FORMAT, "version": VERSION, "segmint_version": __version__,
        # _plain: a numpy integer fit_rows made json.dumps fail
        "params": {"id_column": model.id_column, "fit_rows": _plain(model.fit_rows),
                   "dtype": np.dtype(model.dtype).name, "random_state": _plain(model.random_state)},
        "features": model.feature_spec_.to_dict() if model.feature_spec_ is not None else None,
        "rules": model.rules_.to_dict() if model.rules_ is not None else None,
        "cluster_within": list(model.within_),
        "segment_names": list(model.segment_names_),
        "n_rows_fit": int(model.n_rows_fit_),
        "clusterer": None,
    }
    arrays = {}
    if clusterer is not None:
        doc["clusterer"] = {"type": type(clusterer).__name__,
                            "params": {k: _plain(v) for k, v in clusterer.get_params().items()},
                            "n_features_in": int(clusterer.n_features_in_),
                            "inertia": _finite_or_none(getattr(clusterer, "inertia_", None)),
                            "centers": "centers.npy"}
        arrays["centers.npy"] = np.ascontiguousarray(clusterer.cluster_centers_)
    with atomic_file(path) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(MANIFEST, json.dumps(doc, indent=1, allow_nan=True))
            for name, array in arrays.items():
                buf = io.BytesIO()
                np.save(buf, array, allow_pickle=False)
                z.writestr(name, buf.getvalue())


def load(path):
    """Read a model saved by :meth:`Segmenter.save`.

    Raises
    ------
    FileNotFoundError (SourceNotFoundError)
    ModelFormatError (a CorruptFileError)
        Not a segmint model, truncated or damaged, a newer format version, wrong shapes.
    """
    from .segmenter import Segmenter
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SourceNotFoundError(f"no model file at {path}")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if MANIFEST not in names:
                raise ModelFormatError(f"{path} is not a segmint model (no {MANIFEST} inside)")
            doc = json.loads(z.read(MANIFEST).decode("utf-8"))
            arrays = {n: _read_npy(z, n, path) for n in names if n.endswith(".npy")}
    except zipfile.BadZipFile as exc:
        raise ModelFormatError(f"{path} is not a readable segmint model (truncated or not a zip "
                               f"file: {exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: the model description is damaged ({exc})") from None
    except (EOFError, zipfile.LargeZipFile, OSError, zlib.error, NotImplementedError) as exc:
        # zlib.error: damaged compressed bytes (the CRC check comes only after inflating);
        # NotImplementedError: a member compressed with a method zipfile cannot read
        if isinstance(exc, FileNotFoundError):
            raise
        raise ModelFormatError(f"{path} could not be read: {exc}") from None
    return _build(Segmenter, doc, arrays, path)


def _read_npy(z, name, path):
    try:
        # read_array reads the .npy format only: np.load would also open an .npz archive
        # named .npy, returning an NpzFile that later failed with an AttributeError
        return np.lib.format.read_array(io.BytesIO(z.read(name)), allow_pickle=False)
    except ValueError as exc:
        raise ModelFormatError(f"{path}: array {name} is not plain numeric data ({exc})") from None


def _build(Segmenter, doc, arrays, path):
    def need(cond, what):
        if not cond:
            raise ModelFormatError(f"{path}: {what}")

    need(isinstance(doc, dict) and doc.get("format") == FORMAT, "not a segmint Segmenter model")
    version = doc.get("version")
    need(isinstance(version, int) and not isinstance(version, bool) and version >= 1,
         f"the format version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise ModelFormatError(f"{path} was written by a newer segmint (model format version "
                               f"{version}, segmint_version {doc.get('segmint_version')}); this "
                               f"segmint reads format version {VERSION}: upgrade segmint to load it")
    for key in ("params", "features", "rules", "cluster_within", "segment_names", "clusterer"):
        need(key in doc, f"the model description has no {key!r}")
    params = doc["params"]
    need(isinstance(params, dict), "'params' must be an object")
    try:
        spec = FeatureSpec.from_dict(doc["features"]) if doc["features"] is not None else None
        rules = RuleSet.from_dict(doc["rules"]) if doc["rules"] is not None else None
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFormatError(f"{path}: {exc}") from None
    clusterer = None
    c = doc["clusterer"]
    if c is not None:
        need(isinstance(c, dict) and c.get("type") in _CLUSTERERS,
             f"unknown clusterer type {c.get('type') if isinstance(c, dict) else c!r}")
        centers = arrays.get(c.get("centers", ""))
        need(centers is not None, f"the centers array {c.get('centers')!r} is missing")
        need(centers.ndim == 2 and centers.dtype in (np.float32, np.float64) and centers.shape[0] >= 1,
             f"centers must be a (k, d) float32/float64 array, got {centers.dtype} {centers.shape}")
        # NaN or infinite centers would silently send every customer to one segment
        need(bool(np.isfinite(centers).all()), "centers hold NaN or infinite values")
        need(spec is not None, "a clusterer needs the feature spec")
        d = spec.n_features_out_
        need(centers.shape[1] == d and c.get("n_features_in") == d,
             f"centers have {centers.shape[1]} features but the feature spec makes {d}")
        try:
            clusterer = _CLUSTERERS[c["type"]](**c.get("params", {}))
        except TypeError as exc:
            raise ModelFormatError(f"{path}: clusterer parameters: {exc}") from None
        clusterer.cluster_centers_ = centers
        clusterer.n_features_in_ = d
        inertia = c.get("inertia")
        clusterer.inertia_ = float(inertia) if isinstance(inertia, (int, float)) else float("nan")
    try:
        model = Segmenter(spec, clusterer=clusterer, rules=rules,
                          cluster_within=list(doc["cluster_within"]) if (rules and clusterer) else None,
                          id_column=params.get("id_column"), fit_rows=params.get("fit_rows"),
                          dtype=np.dtype(params.get("dtype", "float32")),
                          random_state=params.get("random_state", 0))
        spec_, rules_, clusterer_, within = model._validate()
    except (ValueError, TypeError, DataError) as exc:  # DataError: e.g. an unknown cluster_within
        raise ModelFormatError(f"{path}: {exc}") from None
    if clusterer is not None:  # fitted on a matrix of the model's dtype: anything else was edited
        need(clusterer.cluster_centers_.dtype == np.dtype(model.dtype),
             f"centers are {clusterer.cluster_centers_.dtype} but the model's dtype is {np.dtype(model.dtype)}")
    model.feature_spec_, model.rules_, model.clusterer_, model.within_ = spec, rules_, clusterer, within
    n_rows_fit = doc.get("n_rows_fit", 0)
    need(isinstance(n_rows_fit, int) and not isinstance(n_rows_fit, bool) and n_rows_fit >= 0,
         f"n_rows_fit must be a count of rows, got {n_rows_fit!r}")
    model.n_rows_fit_ = n_rows_fit
    model.n_clusters_ = int(clusterer.cluster_centers_.shape[0]) if clusterer is not None else 0
    model._name_segments()
    names = doc["segment_names"]
    # the same rules as Segmenter.rename: one non-empty, unique name per segment id
    need(isinstance(names, list) and len(names) == len(model.segment_names_)
         and all(isinstance(n, str) and n.strip() for n in names) and len(set(names)) == len(names),
         f"segment_names must list {len(model.segment_names_)} unique non-empty names (one per "
         f"cluster center and rule segment), got {names!r}")
    model.segment_names_ = list(names)
    return model


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
    raise TypeError(f"parameter value {value!r} of type {type(value).__name__} cannot be saved "
                    "as plain data; pass numbers or strings")
