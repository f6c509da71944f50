"""Judge segments: measurable, substantial, accessible, distinct, and stable.

:func:`validate` reads the source once (plus a rules-only pass for a rule set's unknown counts)
and gives each segment a verdict on the four marketing checks, each with the figure behind it
and a threshold the user can set:

- **substantial**: ``count >= min_count`` and ``share >= min_share`` (share of all rows);
- **measurable**: the share of missing values (null or NaN) among the values of the columns that
  define the segment (a Segmenter's input columns, a rule set's columns, else ``features``) is
  ``<= max_null_share``; for a rule set also ``unknown_share <= max_null_share``, where
  ``unknown_share = unknown / (matched + unknown)``: of the customers the segment's rule could
  have taken, the share left out because the rule was unknown (null);
- **accessible**: with ``reachable=`` (a boolean or 0/1 consent column), the share of the
  segment's customers whose value is true (null counts as not reachable) is
  ``>= min_reachable_share``; else "not checked";
- **distinct**: the separation of segments s and t is Cohen's d of the two segments projected on
  the line joining their centroids: with ``u = (c_s - c_t) / ||c_s - c_t||`` and
  ``sigma_s(u)**2 = u' S_s u`` (``S_s`` the segment's population covariance matrix),
  ``separation = ||c_s - c_t|| / sqrt((sigma_s(u)**2 + sigma_t(u)**2) / 2)``. 1.0 means the
  centroids are one standard deviation apart along that line (heavy overlap); features in which
  the segments agree do not change it, so it does not shrink as features are added. For a
  Segmenter this is in the model's feature space (its transformed features), else in the features
  divided by the whole base's standard deviation (constant features dropped). Missing values are
  left out pair by pair (each covariance from the rows where both features are present). A
  segment whose nearest segment is closer than ``min_separation`` fails and the pair is a merge
  suggestion. Segments that do not vary along the line (sigma 0) are infinitely separated (null
  in the table). Segments made by cutting the data (k-means clusters, threshold rules) are apart
  along the line by construction: the two halves of one normal distribution measure about 2.65,
  so for clusters the stability check is the one that tells real groups from cuts of one. For a
  multi-mode rule set, a segment more than :data:`MAX_OVERLAP_SHARE` of whose customers are
  also in one other segment fails too (``overlap_share``).

Stability (Hennig's clusterboot, 2007) is reported on its own, for the clusters of a Segmenter:
a seeded sample of ``sample_size`` clustered rows in the model's feature space; ``n_bootstrap``
times a bootstrap sample is drawn, a clone of the model's clusterer is refitted on it (seed
``random_state + b``) and each original cluster C, restricted to the distinct points drawn, is
compared with its most similar new cluster by the Jaccard index; ``jaccard`` is the mean over
the bootstraps in which C appears. Bands: < 0.6 "not trustworthy", < 0.75 "doubtful", < 0.85
"valid", else "highly stable"; ``jaccard < min_jaccard`` is a finding. Rule segments are
deterministic: "not checked".
"""
import json
import math
import numbers

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, UnsupportedTypeError, unknown_column
from ..io import DEFAULT_BATCH_SIZE
from ..io.columns import BOOLEAN, NUMERIC, column_kind
from ..kernels.membership import pair_counts
from .segments import RNG_SALT, resolve_segments

# A multi-mode rule set's segment sharing more than this share of its customers with one other
# segment is not distinct (a module constant, not a parameter: the contract lists the parameters).
MAX_OVERLAP_SHARE = 0.5

# The separation needs each segment's covariance matrix of the features (three k x d x d float64
# arrays): beyond this it is not computed (a note says so) rather than exhausting memory.
MAX_COVARIANCE_BYTES = 2**30

# Hennig's bands for the mean bootstrap Jaccard, highest first.
STABILITY_BANDS = ((0.85, "highly stable"), (0.75, "valid"), (0.6, "doubtful"))

PASS, FAIL, NOT_CHECKED = "pass", "fail", "not checked"
CHECKS = ("measurable", "substantial", "accessible", "distinct")
FORMAT = "segmint-validation"
TABLE_SCHEMA = pa.schema(
    [("segment", pa.string()), ("count", pa.int64()), ("share", pa.float64()),
     *((name, pa.float64()) for name in ("null_share", "separation")), ("nearest", pa.string()),
     *((name, pa.float64()) for name in ("jaccard", "reachable_share", "unknown_share", "overlap_share")),
     *((name, pa.string()) for name in (*CHECKS, "stability"))])


def stability_band(jaccard):
    """Hennig's word for a mean bootstrap Jaccard (``"not checked"`` for None or NaN)."""
    if jaccard is None or not math.isfinite(jaccard):
        return NOT_CHECKED
    for low, word in STABILITY_BANDS:
        if jaccard >= low:
            return word
    return "not trustworthy"


# -- the result ----------------------------------------------------------------------------------
class Validation:
    """Verdicts per segment, made by :func:`validate`.

    Parameters
    ----------
    data : dict
        The :meth:`to_dict` document (so a saved validation loads again with
        ``Validation(json.load(f))``).

    Attributes
    ----------
    table : pyarrow.Table
        One row per segment: ``segment``, ``count``, ``share``, the figures ``null_share``,
        ``separation``, ``nearest``, ``jaccard``, ``reachable_share``, ``unknown_share``,
        ``overlap_share`` (null where not computed; a separation is also null when infinite:
        segments of identical rows each), the verdicts ``measurable``,
        ``substantial``, ``accessible``, ``distinct`` (``"pass"``, ``"fail"`` or
        ``"not checked"``) and ``stability`` (Hennig's band or ``"not checked"``).
    findings : list of str
        One sentence per failed check, with its figure and threshold.
    merge_suggestions : list of (str, str, float)
        Pairs of segments closer than ``min_separation``, closest first.
    segments : list of str
    n_rows : int
        Rows of the source.
    n_unassigned : int
        Rows in no segment.
    thresholds : dict
        The thresholds used, by parameter name.
    notes : list of str
        How figures were computed, and what was not checked and why.
    inputs : tuple of str
        The files the validation read (``to_json`` and ``write_report`` never write over them);
        empty for in-memory data and for a validation loaded from its document.
    """

    def __init__(self, data):
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ParameterError(f"data must be a validation document (a dict with format {FORMAT!r}, "
                                 "from Validation.to_dict)")
        try:
            self.table = pa.Table.from_pylist(list(data["segments"]), schema=TABLE_SCHEMA)
            self.findings = [str(f) for f in data["findings"]]
            self.merge_suggestions = [(str(a), str(b), float(s)) for a, b, s in data["merge_suggestions"]]
            self.n_rows = int(data["n_rows"])
            self.n_unassigned = int(data["n_unassigned"])
            self.thresholds = dict(data["thresholds"])
            self.notes = [str(n) for n in data.get("notes", [])]
            self.inputs = ()
        except KeyError as e:
            raise ParameterError(f"the validation document has no {e.args[0]!r}") from None
        except (TypeError, ValueError, pa.ArrowException) as e:
            raise ParameterError(f"the validation document does not hold a validation: {e}") from None
        self.segments = self.table.column("segment").to_pylist()

    def __repr__(self):
        return f"<Validation of {len(self.segments)} segments: {len(self.findings)} findings>"

    def to_dict(self):
        """Plain JSON-able data: what :class:`Validation` is built from."""
        rows = self.table.to_pylist()
        return {"format": FORMAT, "n_rows": self.n_rows, "n_unassigned": self.n_unassigned,
                "thresholds": self.thresholds, "segments": rows, "findings": self.findings,
                "merge_suggestions": [[a, b, s] for a, b, s in self.merge_suggestions],
                "notes": self.notes}

    def to_json(self, path=None):
        """The :meth:`to_dict` document as JSON text, or written atomically to ``path``."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if path is None:
            return text
        from ..io.writers import write_text
        write_text(path, text, inputs=self.inputs)
        return text

    def to_markdown(self):
        """A Markdown table of the verdicts, then the findings and merge suggestions."""
        header, rows = self._cells()
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines += ["", "**Findings**", ""]
        lines += [f"- {f}" for f in self.findings] or ["- none: every check passed"]
        if self.merge_suggestions:
            lines += ["", "**Merge suggestions**", ""]
            lines += [f"- {a} + {b} (separation {s:.2f})" for a, b, s in self.merge_suggestions]
        lines += ["", *[f"_{n}_" for n in self.notes]]
        return "\n".join(lines) + "\n"

    def __str__(self):
        header, rows = self._cells()
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        def line(cells):
            return "  ".join(c.rjust(w) if i in (1, 2, 3, 4, 6) else c.ljust(w)  # numbers right
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        k = len(self.segments)
        out = [f"validation of {k} segment{'s' if k != 1 else ''} over {self.n_rows:,} customers"
               + (f" ({self.n_unassigned:,} in no segment)" if self.n_unassigned else ""),
               line(header), line(["-" * w for w in widths])]
        out += [line(r) for r in rows]
        out.append("")
        out += [f"! {f}" for f in self.findings] or ["every check passed"]
        for a, b, s in self.merge_suggestions:
            out.append(f"  merge? {a} + {b} (separation {s:.2f})")
        return "\n".join(out)

    def _cells(self):
        header = ["segment", "count", "share", "nulls", "separation", "nearest", "jaccard",
                  "measurable", "substantial", "accessible", "distinct", "stability"]
        rows = []
        for r in self.table.to_pylist():
            rows.append([r["segment"], f"{r['count']:,}", _pct(r["share"]), _pct(r["null_share"]),
                         _num(r["separation"]), r["nearest"] or "-", _num(r["jaccard"]),
                         *(r[c] for c in CHECKS), r["stability"]])
        return header, rows


def _pct(x):
    return "-" if x is None or not math.isfinite(x) else f"{x:.1%}"


def _num(x):
    if x is None or math.isnan(x):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.2f}" if abs(x) < 1e4 else f"{x:.2e}"


def _threshold_pct(x):
    return f"{100 * x:g}%"


# -- streaming statistics ------------------------------------------------------------------------
class _Moments:
    """Per group and feature: count, mean and sum of squared deviations (M2), merged batch by
    batch with Chan's formula (no cancellation, unlike sums of squares)."""

    def __init__(self, k, d):
        self.n = np.zeros((k, d))
        self.mean = np.zeros((k, d))
        self.m2 = np.zeros((k, d))

    def add(self, groups, columns):
        """``groups`` int (m,) in 0..k-1; ``columns`` d float64 arrays (m,), NaN where missing."""
        k = self.n.shape[0]
        for j, x in enumerate(columns):
            with np.errstate(over="ignore", invalid="ignore"):  # values near 1e300: inf figures, no noise
                self._add_one(j, groups, x, k)

    def _add_one(self, j, groups, x, k):
        ok = np.isfinite(x)
        g = groups
        if not ok.all():
            g, x = groups[ok], x[ok]
        nb = np.bincount(g, minlength=k).astype(np.float64)
        if not nb.any():
            return
        mb = np.bincount(g, weights=x, minlength=k) / np.maximum(nb, 1)
        m2b = np.bincount(g, weights=np.square(x - mb[g]), minlength=k)
        na, ma = self.n[:, j], self.mean[:, j]
        n = na + nb
        w = nb / np.maximum(n, 1)  # Chan et al.: merge (na, ma, M2a) with (nb, mb, M2b)
        delta = mb - ma
        self.mean[:, j] = ma + delta * w
        self.m2[:, j] += m2b + delta ** 2 * na * w
        self.n[:, j] = n

    def variance(self):
        """Population variance (NaN where a group has no value)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.m2 / np.maximum(self.n, 1), np.nan)

    def means(self):
        return np.where(self.n > 0, self.mean, np.nan)


class _CoMoments:
    """Per group: the count, means and co-moments (sums of products of deviations) of every pair
    of features, over the rows where both are present (pairwise deletion of missing values).

    Arrays are (k, d, d), float64: ``n[g, i, j]`` rows with features i and j present,
    ``mean[g, i, j]`` the mean of feature i over those rows (so feature j's is ``mean[g, j, i]``),
    ``cm[g, i, j]`` the co-moment. The diagonal holds each feature's count, mean and sum of
    squared deviations. Each batch's co-moments are taken about its own means (little cancellation)
    and merged in batch order with Chan's formula for co-moments."""

    def __init__(self, k, d):
        self.n = np.zeros((k, d, d))
        self.mean = np.zeros((k, d, d))
        self.cm = np.zeros((k, d, d))

    def add(self, groups, X):
        """``groups`` int (m,) in 0..k-1; ``X`` float64 (m, d), NaN (or inf) where missing."""
        k = self.n.shape[0]
        sizes = np.bincount(groups, minlength=k)
        ends = np.cumsum(sizes)
        order = np.argsort(groups, kind="stable")  # rows of each group together, in source order
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # values near 1e300: inf figures
            for g in np.flatnonzero(sizes):
                rows = order[ends[g] - sizes[g]:ends[g]]
                self._add_group(g, X if len(rows) == len(X) else X[rows])

    def _add_group(self, g, X):
        ok = np.isfinite(X)
        if ok.all():  # the usual case: one product about the batch mean
            nb = float(len(X))
            mb = X.mean(axis=0)
            Xc = X - mb
            cmb = Xc.T @ Xc
            mb = np.broadcast_to(mb[:, None], cmb.shape)
        else:  # missing values: pairwise sums about a shift (the batch mean of each feature)
            M = ok.astype(np.float64)
            nb = M.T @ M
            present = M.sum(axis=0)
            shift = np.where(ok, X, 0.0).sum(axis=0) / np.maximum(present, 1)
            Xc = np.where(ok, X - shift, 0.0)
            S = Xc.T @ M  # S[i, j]: sum of feature i's deviations over rows with i and j present
            safe = np.maximum(nb, 1)
            mb = shift[:, None] + S / safe
            cmb = np.where(nb > 0, Xc.T @ Xc - S * S.T / safe, 0.0)
        na, ma = self.n[g], self.mean[g]
        n = na + nb
        w = nb / np.maximum(n, 1)  # Chan et al.: C = Ca + Cb + dx * dy * na * nb / n
        delta = mb - ma
        self.mean[g] = ma + delta * w
        self.cm[g] += cmb + delta * delta.T * na * w
        self.n[g] = n

    def means(self):
        """Each feature's mean per group, (k, d) (NaN where a group has no value)."""
        n = np.diagonal(self.n, axis1=1, axis2=2)
        return np.where(n > 0, np.diagonal(self.mean, axis1=1, axis2=2), np.nan)

    def covariance(self, g):
        """Group ``g``'s population covariance matrix, (d, d) (0 where a pair of features is
        never present together: such a pair adds nothing)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n[g] > 0, self.cm[g] / np.maximum(self.n[g], 1), 0.0)


def _pairs(codes, members, n, k):
    """(row index, segment) of every membership of a batch: one per assigned row, or one per
    (row, segment) of a multi-mode rule set."""
    if codes is not None:
        rows = np.flatnonzero(codes >= 0)
        return rows, codes[rows].astype(np.int64)
    bits = np.unpackbits(np.ascontiguousarray(members).view(np.uint8).reshape(k, -1),
                         axis=1, bitorder="little")[:, :n]
    seg, rows = np.nonzero(bits)
    return rows, seg.astype(np.int64)


def _float_column(view):
    """A numeric or boolean column as float64 with NaN where null."""
    x = view.to_numpy().astype(np.float64)
    if view.null_count:
        x[~view.is_valid()] = np.nan
    return x


def _missing(view):
    """True where a value is null (or NaN, for floats)."""
    miss = ~view.is_valid() if view.null_count else np.zeros(len(view), dtype=bool)
    if view.kind == NUMERIC and view.values.dtype.kind == "f":
        miss |= np.isnan(view.values)
    return miss


class _Sample:
    """A seeded uniform sample of at most ``size`` rows of a stream: each row gets a random key
    and the ``size`` smallest keys stay; the rows are kept in source order, so the sample (and
    everything drawn from it) is the same whatever the batch size."""

    def __init__(self, size, random_state):
        self.size = size
        self.rng = np.random.default_rng([random_state, RNG_SALT, 1])
        self.keys = np.zeros(0)
        self.X = None
        self.labels = np.zeros(0, dtype=np.int64)

    def add(self, X, labels, total_rows, chosen):
        keys = self.rng.random(total_rows)[chosen]  # a key for every row: batch-size independent
        keys = np.concatenate([self.keys, keys])
        X = X if self.X is None else np.concatenate([self.X, X])
        labels = np.concatenate([self.labels, labels])
        if len(keys) > self.size:
            keep = np.sort(np.argpartition(keys, self.size - 1)[:self.size])  # sorted: source order
            keys, X, labels = keys[keep], X[keep], labels[keep]
        self.keys, self.X, self.labels = keys, X, labels


# -- checks ----------------------------------------------------------------------------------------
def _check_fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 <= value <= 1):
        raise ParameterError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _check_count(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _columns_list(name, value):
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(c, str) for c in value):
        raise ParameterError(f"{name} must be a list of column names, got {value!r}")
    return list(dict.fromkeys(value))


def _ruleset_columns(ruleset, schema):
    program = ruleset.prepare(schema)
    return list(dict.fromkeys([n for n, _ in program.num_columns] + list(program.bool_columns)
                              + list(program.str_columns)))


# -- validate --------------------------------------------------------------------------------------
def validate(source, *, segments, features=None, id_column=None, reachable=None, min_count=1000,
             min_share=0.02, max_null_share=0.2, min_separation=1.0, min_jaccard=0.75, n_bootstrap=20,
             sample_size=50_000, min_reachable_share=0.5, random_state=0, as_of=None, profile=None,
             batch_size=DEFAULT_BATCH_SIZE):
    """Judge each segment: measurable, substantial, accessible, distinct, and stable.

    The checks and their formulas are in the module docstring (:mod:`segmint.explain.validate`).

    Parameters
    ----------
    source : anything :func:`segmint.open` accepts
    segments : str, Segmenter, RuleSet or a table
        A column of ``source``, a fitted Segmenter, a RuleSet, or a table of (id, segment)
        joined on ``id_column`` (see :func:`segmint.explain.segments.resolve_segments`).
    features : list of str, optional
        Numeric or boolean columns in which segments are compared (distinct) and, when the
        segments do not name their own columns, whose nulls are counted (measurable). Default:
        a rule set's numeric and boolean columns, else every numeric and boolean column except
        the id, segment and ``reachable`` columns. Not with a Segmenter, which is judged in its own features.
    id_column : str, optional
        The customer id column (required with a table of segments; never a feature).
    reachable : str, optional
        A boolean or 0/1 column: true when the customer may be contacted.
    min_count : int, default 1000
    min_share : float, default 0.02
        Substantial: at least this many customers and this share of all rows.
    max_null_share : float, default 0.2
        Measurable: at most this share of missing values (and of unknown rule results).
    min_separation : float, default 1.0
        Distinct: the nearest segment's separation is at least this.
    min_jaccard : float, default 0.75
        A cluster with a lower mean bootstrap Jaccard is a finding.
    n_bootstrap : int, default 20
        Refits of the stability check (0: stability not checked).
    sample_size : int, default 50,000
        Rows sampled for the stability check.
    min_reachable_share : float, default 0.5
        Accessible: at least this share of the segment is reachable.
    random_state : int, default 0
        Seeds the sample and the refits.
    as_of : datetime, date or ISO string, optional
        For rules using dates.
    profile : Profile, optional
        A profile of the same source and segments: its counts are used.
    batch_size : int
        Rows per batch of the pass (the results do not depend on it).

    Returns
    -------
    Validation
    """
    min_count = _check_count("min_count", min_count, 0)
    min_share = _check_fraction("min_share", min_share)
    max_null_share = _check_fraction("max_null_share", max_null_share)
    min_jaccard = _check_fraction("min_jaccard", min_jaccard)
    min_reachable_share = _check_fraction("min_reachable_share", min_reachable_share)
    if (isinstance(min_separation, bool) or not isinstance(min_separation, numbers.Real)
            or not math.isfinite(min_separation) or min_separation < 0):
        raise ParameterError(f"min_separation must be a finite number >= 0, got {min_separation!r}")
    min_separation = float(min_separation)
    n_bootstrap = _check_count("n_bootstrap", n_bootstrap, 0)
    sample_size = _check_count("sample_size", sample_size, 2)
    random_state = _check_count("random_state", random_state, 0)
    features = _columns_list("features", features)

    seg = resolve_segments(source, segments, id_column=id_column, as_of=as_of)
    src, names, k = seg.source, seg.names, len(seg.names)
    schema = src.schema
    cols = src.column_names
    for c in (features or []) + ([reachable] if reachable is not None else []):
        if c not in cols:
            raise unknown_column(c, cols, src.label)
    if reachable is not None and column_kind(schema.field(reachable).type) not in (BOOLEAN, NUMERIC):
        raise UnsupportedTypeError(f"reachable column {reachable!r} of {src.label} is "
                                   f"{schema.field(reachable).type}: it must be boolean or 0/1")
    notes = []

    # which columns define the segments (nulls), and where separation is measured
    model_space = seg.kind == "segmenter" and seg.segmenter.clusterer_ is not None
    if seg.kind == "segmenter":
        if features is not None:
            raise ParameterError("a Segmenter's segments are judged in its own feature space: "
                                 "leave features= out")
        defining = list(seg.segmenter.feature_spec_.input_columns) if model_space else \
            _ruleset_columns(seg.segmenter.rules_, schema)
        space = [] if model_space else [c for c in defining if column_kind(schema.field(c).type) in (NUMERIC, BOOLEAN)]
    else:
        excluded = {id_column, seg.column, reachable}  # who may be contacted is no trait
        numeric = [c for c in cols if c not in excluded
                   and column_kind(schema.field(c).type) in (NUMERIC, BOOLEAN)]
        if seg.kind == "ruleset":
            defining = _ruleset_columns(seg.ruleset, schema)
            default = [c for c in defining if c in numeric]
        else:
            defining = features if features is not None else numeric
            default = numeric
        space = features if features is not None else default
        for c in space:
            if column_kind(schema.field(c).type) not in (NUMERIC, BOOLEAN):
                raise UnsupportedTypeError(f"feature {c!r} of {src.label} is {schema.field(c).type}: "
                                           "segments are compared in numeric or boolean columns")

    if profile is not None:
        if list(getattr(profile, "segments", [])) != names:
            raise ParameterError(f"profile= describes segments {getattr(profile, 'segments', None)!r}, "
                                 f"not these segments {names!r}: profile the same segments")

    # one streaming pass
    read = list(dict.fromkeys(defining + space + ([reachable] if reachable else [])))
    counts = np.zeros(k, dtype=np.int64)
    missing = np.zeros(k, dtype=np.int64)
    reach = np.zeros(k, dtype=np.int64)
    n_rows = 0
    n_unassigned = 0
    d = seg.segmenter.feature_spec_.n_features_out_ if model_space else len(space)
    cov_bytes = 3 * k * d * d * 8  # _CoMoments' three (k, d, d) float64 arrays
    d_sep = d if cov_bytes <= MAX_COVARIANCE_BYTES else 0  # too many: separation not computed
    moments = _CoMoments(k, d_sep)  # per segment: centroid and covariance, for the separation
    base = _Moments(1, d_sep)  # the whole base's standard deviations, to standardize features
    overlaps = np.zeros((k, k), dtype=np.int64) if seg.multi else None
    n_clusters = seg.segmenter.n_clusters_ if model_space else 0
    stable = model_space and n_bootstrap > 0 and n_clusters > 1
    sample = _Sample(sample_size, random_state) if stable else None
    for batch, codes, members, _ in seg.stream(read, batch_size=batch_size):
        n = batch.num_rows
        n_rows += n
        rows, groups = _pairs(codes, members, n, k)
        counts += np.bincount(groups, minlength=k)
        if codes is not None:
            n_unassigned += int(np.count_nonzero(codes < 0))
        else:
            pair_counts(np.ascontiguousarray(members), overlaps)
            in_any = np.zeros(n, dtype=bool)
            in_any[rows] = True
            n_unassigned += int(n - np.count_nonzero(in_any))
        for c in defining:
            miss = _missing(batch[c])
            missing += np.bincount(groups[miss[rows]], minlength=k)
        if reachable is not None:
            x = _float_column(batch[reachable])
            yes = (x != 0) & ~np.isnan(x)  # null and NaN: not reachable
            reach += np.bincount(groups[yes[rows]], minlength=k)
        if model_space:
            X = seg.segmenter.feature_spec_.transform_batch(batch, dtype=np.float64)
            columns = list(np.ascontiguousarray(X.T))  # column access of (n, d) is strided
        elif d_sep:
            columns = [_float_column(batch[c]) for c in space]
            X = np.empty((d, n))
            for j, x in enumerate(columns):
                X[j] = x
            X = X.T  # (n, d) in column order: built without a transpose copy
        if d_sep:
            everyone = codes is not None and len(rows) == n  # rows is then 0..n-1: no gather
            moments.add(groups, X if everyone else X[rows])
            base.add(np.zeros(n, dtype=np.int64), columns)
        if stable:
            chosen = np.flatnonzero((codes >= 0) & (codes < n_clusters) & np.isfinite(X).all(axis=1))
            sample.add(X[chosen], codes[chosen].astype(np.int64), n, chosen)

    if profile is not None:
        given = np.asarray(getattr(profile, "counts", counts), dtype=np.int64)
        if given.shape == counts.shape:
            counts = given
    share = counts / n_rows if n_rows else np.zeros(k)

    # measurable
    cells = counts * len(defining)
    null_share = np.where(cells > 0, missing / np.maximum(cells, 1), np.nan) if defining else np.full(k, np.nan)
    unknown_share = np.full(k, np.nan)
    if seg.kind == "ruleset":
        rc = seg.ruleset.counts(src, as_of=as_of, batch_size=batch_size)
        matched = np.asarray(rc.column("matched").to_pylist(), dtype=np.float64)
        unknown = np.asarray(rc.column("unknown").to_pylist(), dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            unknown_share = np.where(matched + unknown > 0, unknown / (matched + unknown), 0.0)
    if not defining:
        notes.append("measurable not checked: no columns define the segments")

    # distinct
    separation, nearest = _separation(moments, base, counts, model_space)
    overlap_share = np.full(k, np.nan)
    overlap_with = [None] * k
    if overlaps is not None:
        for s in range(k):
            if overlaps[s, s]:
                others = overlaps[s].astype(np.float64)
                others[s] = -1
                t = int(np.argmax(others)) if k > 1 else s
                overlap_share[s] = max(others[t], 0) / overlaps[s, s] if k > 1 else 0.0
                overlap_with[s] = names[t] if k > 1 else None
    if d == 0:
        notes.append("separation not computed: no numeric feature to compare segments in")
    elif d_sep == 0:
        notes.append(f"separation not computed: comparing {k:,} segments in {d:,} features would hold "
                     f"{cov_bytes / 2**30:.1f} GiB of covariance matrices (more than "
                     f"{MAX_COVARIANCE_BYTES / 2**30:g} GiB): "
                     + ("use a model with fewer features" if model_space else "pass fewer features="))
    else:
        notes.append("separation = Cohen's d along the line joining two centroids (centroid distance / "
                     "root mean of the two segments' variances along that line; 1 = one standard "
                     "deviation apart), " + ("in the model's feature space" if model_space else
                                             "in features divided by the whole base's standard deviation"))

    # stability
    jaccard = np.full(k, np.nan)
    if stable and len(sample.labels) >= 2 * n_clusters:
        X = sample.X.astype(np.dtype(seg.segmenter.dtype))
        jaccard[:n_clusters] = clusterboot(X, sample.labels, seg.segmenter.clusterer_, n_bootstrap,
                                           random_state)
        notes.append(f"stability: Hennig's clusterboot, {n_bootstrap} refits on a sample of "
                     f"{len(sample.labels):,} clustered rows; mean Jaccard per cluster")
    elif stable:
        notes.append("stability not checked: too few clustered rows to sample")
    else:
        notes.append("stability not checked: " + ("rules are deterministic" if seg.kind in ("ruleset", "segmenter")
                                                  else "no clustering model to refit"
                                                  if n_bootstrap else "n_bootstrap=0"))

    # verdicts and findings
    findings, merges = [], {}
    verdicts = {c: [] for c in CHECKS}
    for s, name in enumerate(names):
        c, sh = int(counts[s]), float(share[s])
        too_small = []
        if c < min_count:
            too_small.append(f"< min_count {min_count:,}")
        if sh < min_share:
            too_small.append(f"< min_share {_threshold_pct(min_share)}")
        verdicts["substantial"].append(FAIL if too_small else PASS)
        if too_small:
            findings.append(f"{name} is too small to act on: {c:,} customers ({sh:.1%}) " + " and ".join(too_small))

        ns, us = null_share[s], unknown_share[s]
        if math.isnan(ns) and math.isnan(us):
            verdicts["measurable"].append(NOT_CHECKED)
        else:
            bad = False
            if not math.isnan(ns) and ns > max_null_share:
                bad = True
                findings.append(f"{name} is hard to measure: {ns:.1%} of its defining values are missing "
                                f"> max_null_share {_threshold_pct(max_null_share)}")
            if not math.isnan(us) and us > max_null_share:
                bad = True
                findings.append(f"{name} leaves out {us:.1%} of its possible customers because its rule "
                                f"was unknown (a value was null) > max_null_share {_threshold_pct(max_null_share)}")
            verdicts["measurable"].append(FAIL if bad else PASS)

        if reachable is None or c == 0:
            verdicts["accessible"].append(NOT_CHECKED)
        else:
            rs = reach[s] / c
            ok = rs >= min_reachable_share
            verdicts["accessible"].append(PASS if ok else FAIL)
            if not ok:
                findings.append(f"{name} is hard to reach: {rs:.1%} of its customers are reachable "
                                f"< min_reachable_share {_threshold_pct(min_reachable_share)}")

        sep = separation[s]
        checked, bad = False, False
        if not math.isnan(sep):
            checked = True
            if sep < min_separation:
                bad = True
                other = names[nearest[s]]
                findings.append(f"{name} is too close to {other}: separation {sep:.2f} < min_separation "
                                f"{min_separation:g} (consider merging them)")
                merges.setdefault(tuple(sorted((name, other))), float(sep))
        if not math.isnan(overlap_share[s]):
            checked = True
            if overlap_share[s] > MAX_OVERLAP_SHARE:
                bad = True
                findings.append(f"{name} overlaps {overlap_with[s]}: {overlap_share[s]:.1%} of its customers "
                                f"are in both > {_threshold_pct(MAX_OVERLAP_SHARE)}")
        verdicts["distinct"].append(FAIL if bad else PASS if checked else NOT_CHECKED)

        j = jaccard[s]
        if not math.isnan(j) and j < min_jaccard:
            findings.append(f"{name} is unstable: bootstrap Jaccard {j:.2f} < min_jaccard {min_jaccard:g} "
                            f"({stability_band(j)})")

    def figure(value):  # JSON-able: NaN (not computed) and inf (identical rows) become None
        value = float(value)
        return value if math.isfinite(value) else None

    rows = []
    for s, name in enumerate(names):
        rows.append({
            "segment": name, "count": int(counts[s]), "share": float(share[s]),
            "null_share": figure(null_share[s]), "separation": figure(separation[s]),
            "nearest": None if math.isnan(separation[s]) else names[nearest[s]],
            "jaccard": figure(jaccard[s]),
            "reachable_share": figure(reach[s] / counts[s]) if reachable is not None and counts[s] else None,
            "unknown_share": figure(unknown_share[s]), "overlap_share": figure(overlap_share[s]),
            **{c: verdicts[c][s] for c in CHECKS}, "stability": stability_band(jaccard[s])})
    merge_suggestions = sorted(([a, b, s] for (a, b), s in merges.items()), key=lambda m: (m[2], m[0], m[1]))
    thresholds = {"min_count": min_count, "min_share": min_share, "max_null_share": max_null_share,
                  "min_separation": min_separation, "min_jaccard": min_jaccard,
                  "min_reachable_share": min_reachable_share, "max_overlap_share": MAX_OVERLAP_SHARE}
    result = Validation({"format": FORMAT, "n_rows": n_rows, "n_unassigned": n_unassigned,
                         "thresholds": thresholds, "segments": rows, "findings": findings,
                         "merge_suggestions": merge_suggestions, "notes": notes})
    result.inputs = tuple(seg.paths)
    return result


def _separation(moments, base, counts, model_space):
    """Each segment's separation from its nearest segment, and that segment's index.

    The separation of s and t is Cohen's d along the line joining their centroids:
    ``||c_s - c_t||**2 / sqrt((q_st + q_ts) / 2)`` with ``q_st = (c_s - c_t)' S_s (c_s - c_t)``,
    which is ``||c_s - c_t|| / sqrt((sigma_s(u)**2 + sigma_t(u)**2) / 2)`` for the unit vector u.

    Returns ``(separation, nearest)``: float64 (k,) (NaN for an empty segment, or with fewer
    than two non-empty segments; inf where neither segment varies along the line) and int64 (k,)."""
    k, d = moments.n.shape[:2]
    separation = np.full(k, np.nan)
    nearest = np.zeros(k, dtype=np.int64)
    live = np.flatnonzero(counts > 0)
    m = len(live)
    if d == 0 or m < 2:
        return separation, nearest
    keep, scale = np.arange(d), np.ones(d)
    if not model_space:  # standardized units: divide by the base's std; constant features drop out
        std = np.sqrt(base.variance()[0])
        keep = np.flatnonzero(std > 0)
        scale = std[keep]
    means = moments.means()[live][:, keep] / scale
    q = np.zeros((m, m))  # q[s, t] = diff' S_s diff: the spread of s along the line to t, times dist2
    dist2 = np.zeros((m, m))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i, s in enumerate(live):  # one segment at a time: memory O(k d), not O(k^2 d)
            cov = moments.covariance(s)[np.ix_(keep, keep)] / np.outer(scale, scale)
            diff = means - means[i]
            diff[np.isnan(diff)] = 0.0  # a feature a segment never has: not compared
            q[i] = np.einsum("te,te->t", diff @ cov, diff)
            dist2[i] = np.einsum("te,te->t", diff, diff)
        q = np.maximum(q, 0.0)  # pairwise-deleted covariances may be slightly indefinite
        pooled = (q + q.T) / 2
        sep = np.where(pooled > 0, dist2 / np.sqrt(np.where(pooled > 0, pooled, 1.0)),
                       np.where(dist2 > 0, np.inf, 0.0))
    others = sep[~np.eye(m, dtype=bool)].reshape(m, m - 1)  # a segment is never its own nearest
    best = np.argmin(others, axis=1)
    separation[live] = others[np.arange(m), best]
    nearest[live] = live[best + (best >= np.arange(m))]  # back to indices with the diagonal
    return separation, nearest


# -- stability -------------------------------------------------------------------------------------
def best_jaccard(original, new, k_original, k_new):
    """For each original cluster, the Jaccard index with its most similar new cluster.

    Parameters
    ----------
    original, new : int arrays (m,)
        Two labelings of the same points (codes ``0..k-1``).
    k_original, k_new : int

    Returns
    -------
    numpy.ndarray of float64 (k_original,)
        NaN for an original cluster with no point here.
    """
    # one contingency table from the label pairs: no loop over rows
    table = np.bincount(original.astype(np.int64) * k_new + new.astype(np.int64),
                        minlength=k_original * k_new).reshape(k_original, k_new).astype(np.float64)
    a, b = table.sum(axis=1), table.sum(axis=0)
    union = a[:, None] + b[None, :] - table
    jac = np.divide(table, union, out=np.zeros_like(table), where=union > 0)
    best = jac.max(axis=1) if k_new else np.zeros(k_original)
    best[a == 0] = np.nan
    return best


def clusterboot(X, labels, clusterer, n_bootstrap, random_state):
    """Hennig's clusterboot: mean over bootstraps of each cluster's best Jaccard.

    Parameters
    ----------
    X : numpy.ndarray (m, d)
        The sampled rows in the model's feature space.
    labels : int array (m,)
        Their clusters in the model.
    clusterer : KMeans or MiniBatchKMeans
        The fitted model's clusterer: clones (same parameters, seed ``random_state + b``) are refitted.
    n_bootstrap : int
    random_state : int

    Returns
    -------
    numpy.ndarray of float64 (n_clusters,)
        NaN for a cluster absent from every bootstrap sample.
    """
    k = clusterer.cluster_centers_.shape[0]
    params = clusterer.get_params()
    rng = np.random.default_rng([random_state, RNG_SALT, 2])
    m = len(X)
    total, seen = np.zeros(k), np.zeros(k)
    for b in range(n_bootstrap):
        draw = rng.integers(0, m, size=m)
        model = type(clusterer)(**{**params, "random_state": random_state + b}).fit(X[draw])
        distinct = np.unique(draw)
        new = model.predict(X[distinct])
        jac = best_jaccard(labels[distinct], new, k, model.cluster_centers_.shape[0])
        ok = ~np.isnan(jac)
        total[ok] += jac[ok]
        seen[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, total / np.maximum(seen, 1), np.nan)
