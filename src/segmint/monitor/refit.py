"""Refresh a Segmenter on new data and keep its segment ids and names: :func:`refit`.

A refit fits the same specification (features, rules, clusterer) on new data, then tells which
new cluster is which old one, so that "segment 3 = Weekend bargain hunters" survives it:

1. **Feature statistics** are kept (``statistics="frozen"``, the default) or fitted again
   (``"refit"``). Frozen is the default because old and new centers then live in one feature
   space: the matching and the center shifts compare like with like, and a shift means the
   customers moved, not the scaling. Feature drift itself is :func:`segmint.drift`'s to report.
   With ``"refit"`` the old centers are mapped into the new space (the old spec's inverse to
   input units, the new spec forward on numeric columns, one-hot columns as they are, by name).
2. **Warm start.** The clusterer (same parameters; ``n_clusters`` may change) is started from
   the old centers (fewer clusters: the old ones holding most rows; more: the old centers plus
   rows drawn by k-means++ seeding) and from its usual init, both fitted on a deterministic
   stratified sample of at most :data:`START_ROWS` rows of the fit matrix (all of them when
   fewer; MiniBatchKMeans with at most 2 passes over it); the start of lower inertia there (a
   warm start alone can stay stuck when clusters split or merge) is fitted once on the whole
   matrix (``init=`` its centers, ``n_init=1``). A refit so costs about one fit from a good
   start.
3. **Matching.** ``scipy.optimize.linear_sum_assignment`` proposes pairs (old x new,
   rectangular when ``n_clusters`` changes) on a cost of the Euclidean distance between old and
   new centers (over the largest one) minus a small term for the members they share (so that
   equal distances, as when the new customers sit on one point, go to the pair that shares
   them). With ``O[i, j]`` the rows of the new data that the old model puts in cluster ``i``
   and the new model in ``j``, a pair ``(i, j)`` stands when ``O[i, j]`` is at least half of
   column ``j`` (the new cluster's customers mostly come from old ``i``), or at least half of
   row ``i`` **and** row ``i`` still holds at least half of old ``i``'s share at the last fit
   (its reference statistics; for a model without them the row test alone). So a cluster that
   is gone does not pass its name to a new one that took in the few rows still nearest to it.
   Otherwise old ``i`` is ``vanished`` and new ``j`` is ``new``.
4. **Ids and names.** A matched new cluster takes the old cluster's name. With an unchanged
   number of clusters it also takes the old id (new clusters take the ids left free); otherwise
   ids are compact ``0..k-1``, matched clusters ordered by their old id, new ones after. New
   clusters get a fresh name ``segment_<id>`` used by neither model (``_2``, ``_3``, ... when
   taken). Rule segments keep their names (and their place after the clusters).

The report, :class:`Refit`, has one row per segment: ``matched``, ``changed`` (matched, but its
center moved more than :data:`MAX_SHIFT` standard deviations on some feature), ``vanished`` or
``new``, and findings in plain words (splits and merges included).
"""
import json
import math

import numpy as np
import pyarrow as pa

from .._estimator import check_positive_int, check_random_state
from ..cluster import MiniBatchKMeans
from ..errors import ParameterError, SourceConsumedError, closest_names
from ..io import DEFAULT_BATCH_SIZE
from ..io import open as open_source
from ..io.writers import write_text

#: A matched cluster whose center moved more than this many standard deviations (of the new fit
#: matrix's feature) on some feature is reported ``changed``: half a standard deviation is a
#: visible change in a segment's profile, well above the wobble of refitting unchanged data.
MAX_SHIFT = 0.5

#: An old cluster sending at least this share of its customers to each of two or more new ones
#: has split; a new cluster taking at least this share from each of two or more old ones merged.
SPLIT_SHARE = 0.2

STATISTICS = ("frozen", "refit")

# MiniBatchKMeans fits the two starts with at most this many passes over the sample: 2 passes
# are 128 steps of 1,024 rows, about where its early stopping ends a fresh fit of customer
# data (~110 steps); each pass more costs a gather of another 65,536 rows per start.
_START_PASSES = 2

#: The two starts (previous centers, usual init) are compared on a deterministic sample of at
#: most this many rows of the fit matrix (all of them when fewer); only the winner is then fitted
#: on the whole matrix, so a refit costs about one fit from a good start.
START_ROWS = 65_536

# Rows of the fit matrix the k-means++ seeding of added clusters looks at.
_SEED_ROWS = 20_000

_SCHEMA = pa.schema([
    pa.field("segment", pa.string(), nullable=False),
    pa.field("previous_id", pa.int16()),
    pa.field("id", pa.int16()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("shift", pa.float64()),
    pa.field("feature", pa.string()),
    pa.field("share_previous", pa.float64()),
    pa.field("share_current", pa.float64()),
    pa.field("overlap", pa.float64()),
])


class Refit:
    """What a refit did to each segment (``Segmenter.refit(...).refit_``).

    Attributes
    ----------
    table : pyarrow.Table
        One row per segment of the new model (in id order), then the vanished ones:
        ``segment`` (name), ``previous_id`` (id in the previous model, null for ``new``), ``id``
        (in the new model, null for ``vanished``), ``status`` (``"matched"``, ``"changed"``,
        ``"vanished"``, ``"new"``), ``shift`` (largest per-feature center shift in standard
        deviations of the new fit matrix's features, estimated on the sample of at most
        :data:`START_ROWS` rows the starts were compared on; a feature constant there counts
        no shift; null without a pair of centers; rule segments have none),
        ``feature`` (the feature of that shift), ``share_previous`` and ``share_current``
        (the segment's share of the new data under the previous and the new model),
        ``overlap`` (share of the previous model's members of the segment that the new one
        keeps in it).
    findings : list of str
        Plain words, most important first: vanished and new segments (and a new one taking a
        vanished one's id), customers a kept segment lost to or took from others (splits and
        merges), changed centers, which start was kept, then a summary (last).
    statistics : str
        ``"frozen"`` or ``"refit"``.
    n_rows : int
        Rows of the new data.
    warm_start : bool or None
        Whether the start from the previous centers won (None without a clusterer): both starts
        are fitted on a sample of at most :data:`START_ROWS` rows of the fit matrix, the one of
        lower inertia there (the previous centers on a tie) starts the fit on the whole matrix.
    inertia : tuple of float or None
        ``(warm, usual)``: the inertia of the two starts' fits on that sample.
    inputs : tuple of str
        Paths read (``to_json`` never writes over them).
    """

    def __init__(self, table, findings, statistics, n_rows, warm_start, inertia=None, inputs=()):
        self.table = table
        self.findings = list(findings)
        self.statistics = statistics
        self.n_rows = int(n_rows)
        self.warm_start = warm_start
        self.inertia = inertia
        self.inputs = tuple(inputs)

    def to_dict(self):
        """Plain JSON-able data: ``{"format": "segmint-refit", "statistics", "max_shift",
        "n_rows", "warm_start", "start_inertia": [warm, usual] or null, "segments": [rows of
        table], "findings"}`` (non-finite numbers as null)."""
        rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                for r in self.table.to_pylist()]
        return {"format": "segmint-refit", "statistics": self.statistics, "max_shift": MAX_SHIFT,
                "n_rows": self.n_rows, "warm_start": self.warm_start,
                "start_inertia": ([v if math.isfinite(v) else None for v in self.inertia]
                                  if self.inertia is not None else None),
                "segments": rows,
                "findings": list(self.findings)}

    def to_json(self, path=None):
        """The :meth:`to_dict` document as JSON text; written atomically to ``path`` when given
        (never over the data read). Returns the text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if path is not None:
            write_text(path, text, inputs=self.inputs)
        return text

    def to_markdown(self):
        """Findings and the per-segment table as Markdown."""
        lines = ["## Refit", "", f"Feature statistics: {self.statistics}; {self.n_rows:,} customers.", ""]
        lines += [f"- {_md(f)}" for f in self.findings]
        lines += ["", "| segment | previous id | id | status | shift | feature | previous share | "
                  "current share | overlap |", "|---|---:|---:|---|---:|---|---:|---:|---:|"]
        for r in self.table.to_pylist():
            lines.append(f"| {_md(r['segment'])} | {_or(r['previous_id'])} | {_or(r['id'])} | {r['status']} | "
                         f"{_or(r['shift'], '{:.2f}')} | {_md(r['feature'] or '')} | "
                         f"{_or(r['share_previous'], '{:.1%}')} | {_or(r['share_current'], '{:.1%}')} | "
                         f"{_or(r['overlap'], '{:.0%}')} |")
        return "\n".join(lines) + "\n"

    def __str__(self):
        rows = self.table.to_pylist()
        width = max([len(r["segment"]) for r in rows] + [7])
        lines = [f"Refit on {self.n_rows:,} customers (feature statistics {self.statistics})"]
        lines += [f"  {f}" for f in self.findings] + [""]
        lines.append(f"  {'segment':<{width}}  {'prev':>4}  {'id':>4}  {'status':<8}  {'shift':>6}  "
                     f"{'previous':>8}  {'current':>8}  {'overlap':>7}")
        for r in rows:
            lines.append(f"  {r['segment']:<{width}}  {_or(r['previous_id']):>4}  {_or(r['id']):>4}  "
                         f"{r['status']:<8}  {_or(r['shift'], '{:.2f}'):>6}  "
                         f"{_or(r['share_previous'], '{:.1%}'):>8}  {_or(r['share_current'], '{:.1%}'):>8}  "
                         f"{_or(r['overlap'], '{:.0%}'):>7}")
        return "\n".join(lines)

    def __repr__(self):
        counts = {s: 0 for s in ("matched", "changed", "vanished", "new")}
        for s in self.table.column("status").to_pylist():
            counts[s] += 1
        return "Refit(" + ", ".join(f"{v} {k}" for k, v in counts.items()) + f", statistics={self.statistics!r})"


def _or(value, fmt="{}"):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _md(text):
    return str(text).replace("|", "\\|")


# -- the refit --------------------------------------------------------------------------------
def refit(model, source, *, statistics="frozen", n_clusters=None, as_of=None, batch_size=DEFAULT_BATCH_SIZE,
          random_state=None):
    """A new Segmenter fitted on ``source`` keeping ``model``'s segment ids and names where its
    clusters are still there (see the module docstring); ``model`` is left untouched.

    Parameters
    ----------
    model : Segmenter
        Fitted (or loaded; a model without reference statistics works too).
    source : anything :func:`segmint.open` accepts that can be read twice
    statistics : {"frozen", "refit"}
        Keep the fitted feature statistics (default) or fit them again.
    n_clusters : int, optional
        Clusters of the new model (default: the model's).
    as_of : datetime, date or ISO string, optional
        For rules using dates.
    batch_size : int
        Rows per batch.
    random_state : int, optional
        Seed of the new Segmenter and clusterer (default: the model's).

    Returns
    -------
    Segmenter
        The new model, with ``refit_`` (a :class:`Refit`) and ``reference_`` of ``source``.
    """
    from ..pipeline.features import FeatureSpec
    from ..rules import RuleSet

    model._check_fitted()
    if statistics not in STATISTICS:
        near = closest_names(str(statistics), STATISTICS)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ParameterError(f"statistics must be 'frozen' (keep the fitted feature statistics) or "
                             f"'refit' (fit them again), got {statistics!r}{hint}")
    check_positive_int("batch_size", batch_size)
    old_c = model.clusterer_
    if n_clusters is not None:
        if old_c is None:
            raise ParameterError("n_clusters= needs a model with a clusterer; this one has rules only")
        n_clusters = check_positive_int("n_clusters", n_clusters)
    if random_state is not None:
        check_random_state(random_state)
    old_spec = model.feature_spec_
    spec = None
    if old_spec is not None:
        spec = (FeatureSpec.from_dict(old_spec.to_dict()) if statistics == "frozen"
                else FeatureSpec(old_spec.features, sample_size=old_spec.sample_size))
    rules = RuleSet.from_dict(model.rules_.to_dict()) if model.rules_ is not None else None
    k_old = model.n_clusters_
    k_new = n_clusters if n_clusters is not None else k_old
    params, clusterer = None, None
    if old_c is not None:
        params = old_c.get_params()
        params["n_clusters"] = k_new
        if random_state is not None:
            params["random_state"] = random_state
        if not isinstance(params["init"], str) and not callable(params["init"]):
            params["init"] = "k-means++"  # given centers (of another k, perhaps): the usual seeding
        clusterer = type(old_c)(**params)
    new = type(model)(spec, clusterer=clusterer, rules=rules,
                      cluster_within=list(model.within_) if (rules is not None and clusterer is not None) else None,
                      id_column=model.id_column, fit_rows=model.fit_rows, dtype=model.dtype,
                      random_state=model.random_state if random_state is None else random_state)
    src = open_source(source)
    if src.one_shot:
        raise SourceConsumedError(
            f"{src.label} can be read only once, but a refit reads it more than once (the rows to "
            "cluster, then the segment counts); pass a Table, a DataFrame or a file (write the "
            "stream with segmint.write_table first)")
    info = {}

    def fit_clusterer(X):
        mapped = _map_centers(old_spec, new.feature_spec_, old_c.cluster_centers_, statistics)
        info["mapped"] = mapped
        # Both starts on a bounded sample, then one fit on the whole matrix from the winner:
        # fitting both on every row cost two to three fresh fits (the usual init alone can take
        # a hundred iterations), while the winner's centers are already close on all of X.
        seed = params["random_state"]
        S = _start_sample(X, seed)
        # the unit of the shifts: the sample is plenty for a standard deviation
        info["std"] = S.std(axis=0, dtype=np.float64)
        start = _start_centers(S, mapped, k_new, seed)
        trial = dict(params)
        if isinstance(old_c, MiniBatchKMeans):
            # its cost is in steps, not rows: on the sample it would still take a full fit's
            # steps (and prefetch a round of up to a million rows); a start needs fewer
            trial["max_iter"] = min(params["max_iter"], _START_PASSES)
        warm = type(old_c)(**{**trial, "init": start.astype(X.dtype), "n_init": 1}).fit(S)
        cold = type(old_c)(**trial).fit(S)
        info["warm"] = bool(warm.inertia_ <= cold.inertia_)
        info["inertia"] = (float(warm.inertia_), float(cold.inertia_))
        best = warm if info["warm"] else cold
        if S is not X or trial != params:  # (a capped MiniBatchKMeans: its own budget on X)
            best = type(old_c)(**{**params, "init": np.ascontiguousarray(best.cluster_centers_, dtype=X.dtype),
                                  "n_init": 1}).fit(X)
        # saved with the clusterer's own parameters: the start centers were this refit's only
        best.set_params(init=params["init"], n_init=params["n_init"], max_iter=params["max_iter"])
        if statistics == "frozen":  # X is in the old space too: the old labels of its rows
            info["old_labels"] = _nearest(X, old_c.cluster_centers_)
        return best

    old_pieces = []

    def old_labels(batch, mask):
        """The old model's cluster of each row of X, from the old features of the same batch
        (statistics refitted: X is in the new space), so no pass of its own is needed."""
        X = old_spec.transform_batch(batch, dtype=np.dtype(model.dtype))
        old_pieces.append(_nearest(X if mask is None else np.ascontiguousarray(X[mask]), old_c.cluster_centers_))

    new._fit(src, as_of, batch_size, fit_spec=statistics == "refit",
             fit_clusterer=fit_clusterer if old_c is not None else None,
             per_batch=old_labels if (old_c is not None and statistics == "refit") else None)
    if old_pieces:
        info["old_labels"] = np.concatenate(old_pieces)
    counts = np.asarray(new.reference_.segments.counts, dtype=np.int64)
    labels = getattr(new.clusterer_, "labels_", None) if old_c is not None else None
    full = old_c is not None and new.n_rows_fit_ == int(counts[:k_new].sum())
    if old_c is None:  # rules only: the same rules give the same segments
        O = np.diag(counts)
    elif "old_labels" in info and full and labels is not None:
        # every row in scope was in X: the crosstab of its labels, the rule segments as they are
        O = np.zeros((len(model.segment_names_), len(new.segment_names_)), dtype=np.int64)
        O[:k_old, :k_new] = np.bincount(info["old_labels"].astype(np.int64) * k_new + labels,
                                        minlength=k_old * k_new).reshape(k_old, k_new)
        for r in range(len(counts) - k_new):
            O[k_old + r, k_new + r] = counts[k_new + r]
    else:
        O = _crosstab(model, new, src, as_of, batch_size)
    # the model's own file (a loaded model) is an input too: to_json never writes over it
    inputs = tuple(src.paths) + tuple(p for p in [getattr(model, "_model_path", None)] if p is not None)
    return _finish(model, new, O, info, statistics, inputs)


def _nearest(X, centers):
    from ..cluster._matrix import Features
    from ..cluster._passes import assign_pass
    labels, _, _, _ = assign_pass(Features(X), np.ascontiguousarray(centers, dtype=X.dtype),
                                  want_labels=True, want_distances=False, want_inertia=False)
    return labels


def _map_centers(old_spec, new_spec, centers, statistics):
    """The old centers in the new feature space (float64): as they are when frozen; else the old
    spec's inverse to input units, the new spec forward on numeric columns, other columns by name
    (0 for one-hot categories the old spec did not keep)."""
    if statistics == "frozen":
        return np.asarray(centers, dtype=np.float64)
    raw = old_spec.inverse_transform(centers)
    old_index = {n: i for i, n in enumerate(old_spec.feature_names_out_)}
    names = new_spec.feature_names_out_
    out = np.zeros((raw.shape[0], len(names)))
    for j, name in enumerate(names):
        if name in old_index:
            out[:, j] = raw[:, old_index[name]]
    for p in new_spec._fitted.plans:
        if p.kind != "numeric":
            continue
        x = raw[:, old_index[p.column]]
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.log1p(np.maximum(x, -1.0)) if p.feature.log1p else x
        if p.use_clip:
            y = np.clip(y, p.clip_lo, p.clip_hi)
        out[:, p.first] = (y - p.center) / p.scale
    return out


def _start_sample(X, seed):
    """At most :data:`START_ROWS` rows of ``X`` (X itself when it has no more), in row order: a
    stratified draw from the seed, one random row from each of ``START_ROWS`` equal runs of
    rows, so the same rows for the same data and seed, spread over the whole matrix, in O(m)
    (a draw without replacement shuffles all n row numbers)."""
    n = X.shape[0]
    if n <= START_ROWS:
        return X
    rng = np.random.default_rng([int(check_random_state(seed).integers(0, 2**63 - 1)), 0x57A27])
    bounds = (np.arange(START_ROWS + 1, dtype=np.int64) * n) // START_ROWS
    rows = bounds[:-1] + (rng.random(START_ROWS) * (bounds[1:] - bounds[:-1])).astype(np.int64)
    return np.ascontiguousarray(X[rows])


def _start_centers(X, mapped, k, seed):
    """Warm-start centers: the mapped old ones; for fewer clusters the ones holding most rows of
    X, for more the old ones plus rows of X drawn by k-means++ seeding (D^2 sampling)."""
    k_old = mapped.shape[0]
    if k == k_old:
        return mapped
    if k < k_old:
        held = np.bincount(_nearest(X, mapped), minlength=k_old)
        keep = np.sort(np.argsort(-held, kind="stable")[:k])
        return mapped[keep]
    rng = np.random.default_rng([int(check_random_state(seed).integers(0, 2**63 - 1)), 0x4EF17])
    rows = X if X.shape[0] <= _SEED_ROWS else X[np.sort(rng.choice(X.shape[0], _SEED_ROWS, replace=False))]
    rows = rows.astype(np.float64)
    centers = list(mapped)
    d2 = np.min(((rows[:, None, :] - mapped[None, :, :]) ** 2).sum(axis=2), axis=1)
    for _ in range(k - k_old):
        total = d2.sum()
        i = int(rng.choice(len(rows), p=d2 / total)) if total > 0 else int(rng.integers(len(rows)))
        centers.append(rows[i])
        d2 = np.minimum(d2, ((rows - rows[i]) ** 2).sum(axis=1))
    return np.asarray(centers)


def _crosstab(old, new, src, as_of, batch_size):
    """Rows of ``src`` per (old segment id, new segment id): both models score each batch of one
    pass (the same rules give the same rule codes)."""
    from .._parallel import ordered_map
    n_old, n_new = len(old.segment_names_), len(new.segment_names_)
    to_old = old._rule_to_segment(old.n_clusters_) if old.rules_ is not None else None
    to_new = new._rule_to_segment(new.n_clusters_) if new.rules_ is not None else None

    def work(item):
        a = old._assign_batch(item, to_old)[0].astype(np.int64)
        b = new._assign_batch(item, to_new)[0].astype(np.int64)
        return np.bincount(a * n_new + b, minlength=n_old * n_new)

    total = np.zeros(n_old * n_new, dtype=np.int64)
    columns = old.feature_spec_.input_columns if old.feature_spec_ is not None else []
    for part in ordered_map(work, new._score_items(src, as_of, batch_size, columns)):
        total += part
    return total.reshape(n_old, n_new)


# Weight of the overlap term in the matching cost (distances are scaled to at most 1): it only
# decides between pairs whose distances are within a few percent of each other.
_OVERLAP_WEIGHT = 0.01


def _fit_shares(old):
    """Each old segment's share of the rows at its last fit (its reference statistics), or None
    for a model without them."""
    ref = getattr(old, "reference_", None)
    if ref is None or ref.segments is None or not ref.n_rows:
        return None
    return [c / ref.n_rows for c in ref.segments.counts]


def _stands(c, row, col, n, fit_share):
    """Whether a proposed pair (old i, new j) stands, ``c`` = O[i, j] (rows of the new data the
    old model puts in i and the new one in j), ``row``/``col`` the sums of row i / column j, ``n``
    all rows: the new cluster's customers mostly come from old i (``c`` at least half of column
    j); or old i's customers mostly go to j (``c`` at least half of row i) **and** old i still
    holds at least half of its share at the last fit (``fit_share``; without it, the row test
    alone). The second condition keeps a cluster that is gone from passing its name to a new
    one that merely took in the few rows still nearest to the old center."""
    if c <= 0:
        return False
    if 2 * c >= col:
        return True
    if 2 * c < row:
        return False
    return fit_share is None or 2 * (row / n if n else 0.0) >= fit_share


def _finish(old, new, O, info, statistics, inputs):
    """Match, renumber and rename the new model's clusters; attach the :class:`Refit`."""
    from scipy.optimize import linear_sum_assignment

    from .reference import CategoryReference, ReferenceStatistics

    k_old, k_new = old.n_clusters_, new.n_clusters_
    n_rules = len(new.segment_names_) - k_new
    pairs = {}  # new cluster -> old cluster
    shifts = {}
    if k_old and k_new:
        centers = new.clusterer_.cluster_centers_.astype(np.float64)
        mapped = info["mapped"]
        distance = np.sqrt(((mapped[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
        Oc = O[:k_old, :k_new].astype(np.float64)
        row, col = Oc.sum(axis=1), Oc.sum(axis=0)
        # Distance proposes the pairs; shared customers break ties (identical or equidistant
        # centers, as when every new customer is one point): cost = distance over the largest
        # one, minus a small Jaccard overlap of the members, too small to outweigh a real gap.
        with np.errstate(divide="ignore", invalid="ignore"):
            union = row[:, None] + col[None, :] - Oc
            jaccard = np.where(union > 0, Oc / np.where(union > 0, union, 1.0), 0.0)
        top = float(distance.max())
        cost = (distance / top if top > 0 else distance) - _OVERLAP_WEIGHT * jaccard
        rows, cols = linear_sum_assignment(cost)
        fit_share = _fit_shares(old)
        n_now = float(Oc.sum())
        for i, j in zip(rows.tolist(), cols.tolist()):
            if _stands(Oc[i, j], row[i], col[j], n_now, fit_share[i] if fit_share is not None else None):
                pairs[j] = i
        std = info["std"]
        names = new.feature_spec_.feature_names_out_
        for j, i in pairs.items():
            diff = np.abs(centers[j] - mapped[i])
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(std > 0, diff / np.where(std > 0, std, 1.0), 0.0)
            f = int(np.argmax(z))
            shifts[j] = (float(z[f]), names[f])
    # ids: the old ones when k is unchanged, else compact (matched by old id, then new ones)
    unmatched = [j for j in range(k_new) if j not in pairs]
    ids = np.empty(k_new, dtype=np.int64)
    if k_new == k_old:
        free = [i for i in range(k_old) if i not in pairs.values()]
        for j, i in pairs.items():
            ids[j] = i
        for j, i in zip(unmatched, free):
            ids[j] = i
    else:
        order = sorted(pairs, key=lambda j: pairs[j]) + unmatched
        for t, j in enumerate(order):
            ids[j] = t
    final_names = [None] * k_new
    taken = set(old.segment_names_)
    for j, i in pairs.items():
        final_names[ids[j]] = old.segment_names_[i]
    for j in sorted(unmatched, key=lambda j: ids[j]):
        base = name = f"segment_{ids[j]}"
        n = 1
        while name in taken or name in final_names:
            n += 1
            name = f"{base}_{n}"
        final_names[ids[j]] = name
        taken.add(name)
    final_names += list(old.segment_names_[k_old:])  # rule segments keep their names

    # renumber the clusterer's clusters and everything indexed by them
    if k_new:
        c = new.clusterer_
        inverse = np.argsort(ids)  # final id -> fitted cluster
        c.cluster_centers_ = np.ascontiguousarray(c.cluster_centers_[inverse])
        if getattr(c, "labels_", None) is not None:
            c.labels_ = ids[c.labels_].astype(c.labels_.dtype)
        counts = getattr(c, "_counts", None)
        if isinstance(counts, np.ndarray) and counts.shape == (k_new,):
            c._counts = counts[inverse]
    perm = np.concatenate([ids, np.arange(k_new, k_new + n_rules)]).astype(np.int64)
    O_final = np.zeros_like(O)
    O_final[:, perm] = O
    new.segment_names_ = final_names
    ref = new.reference_
    seg_counts = np.zeros(len(final_names), dtype=np.int64)
    seg_counts[perm] = np.asarray(ref.segments.counts, dtype=np.int64)
    new.reference_ = ReferenceStatistics(
        ref.n_rows, ref.features.values(), ref.categories.values(),
        CategoryReference("segment", tuple(final_names), tuple(int(x) for x in seg_counts), 0))
    partner = {int(ids[j]): i for j, i in pairs.items()}
    shift_of = {int(ids[j]): s for j, s in shifts.items()}
    for r in range(n_rules):
        partner[k_new + r] = k_old + r
    new.refit_ = _report(old, new, O_final, partner, shift_of, info, statistics, inputs)
    return new


def _report(old, new, O, partner, shift_of, info, statistics, inputs):
    """The :class:`Refit` of a renumbered refit (``O``: rows of the new data per (old id, new id))."""
    k_old, k_new = old.n_clusters_, new.n_clusters_
    n = int(O.sum())
    old_names, new_names = old.segment_names_, new.segment_names_
    row_sum, col_sum = O.sum(axis=1), O.sum(axis=0)

    def share(x):
        return float(x) / n if n else 0.0

    rows = []
    for t, name in enumerate(new_names):
        i = partner.get(t)
        if i is None:
            rows.append(dict(segment=name, previous_id=None, id=t, status="new", shift=None, feature=None,
                             share_previous=None, share_current=share(col_sum[t]), overlap=None))
            continue
        shift, feature = shift_of.get(t, (None, None))
        status = "changed" if shift is not None and shift > MAX_SHIFT else "matched"
        rows.append(dict(segment=name, previous_id=i, id=t, status=status, shift=shift, feature=feature,
                         share_previous=share(row_sum[i]), share_current=share(col_sum[t]),
                         overlap=float(O[i, t]) / row_sum[i] if row_sum[i] else None))
    matched_old = set(partner.values())
    vanished = [i for i in range(k_old) if i not in matched_old]
    for i in vanished:
        rows.append(dict(segment=old_names[i], previous_id=i, id=None, status="vanished", shift=None,
                         feature=None, share_previous=share(row_sum[i]), share_current=None, overlap=None))
    table = pa.Table.from_pylist(rows, schema=_SCHEMA)

    findings = []
    fit_share = _fit_shares(old)

    def spread(counts, names, total, skip=None):
        """(name, share) parts, largest first (at least 1%, at most 4: more end in "others")."""
        order = np.argsort(-counts, kind="stable")
        parts = [(names[x], counts[x] / total) for x in order.tolist()
                 if x != skip and total and counts[x] / total >= 0.01]
        if len(parts) > 4:
            rest = 1.0 - sum(p for _, p in parts[:3])
            parts = parts[:3] + [("others", rest)]
        return parts

    for i in vanished:
        if fit_share is not None:
            was = f"{fit_share[i]:.1%} of customers at the last fit"
            now = (f"; the previous model puts {share(row_sum[i]):.1%} of the new customers in it"
                   if row_sum[i] else "; the previous model puts none of the new customers in it")
        else:  # no reference statistics: the share at the last fit is unknown
            was = f"{share(row_sum[i]):.1%} of the new customers under the previous model"
            now = ""
        parts = spread(O[i, :k_new], new_names, row_sum[i])
        where = ", ".join(f"{p:.0%} to {nm}" for nm, p in parts)
        findings.append(f"{old_names[i]} vanished ({was}){now}" + (f", and they went {where}" if where else ""))
    for r in rows:
        if r["status"] == "new":
            t = r["id"]
            parts = spread(O[:k_old, t], old_names, col_sum[t])
            where = ", ".join(f"{nm} ({p:.0%})" for nm, p in parts)
            findings.append(f"{r['segment']} is new ({r['share_current']:.1%} of customers)"
                            + (f"; the previous model had its customers in {where}" if where else ""))
            if t < len(old_names) and old_names[t] != r["segment"]:
                # whoever keys on ids: the id now means another segment
                findings.append(f"id {t} now holds {r['segment']}, was {old_names[t]}")
    kept = {i: t for t, i in partner.items() if t < k_new}  # old cluster -> its new cluster
    for i, t in sorted(kept.items()):  # splits: a kept segment's customers now in others too
        if not row_sum[i]:
            continue
        lost = [(new_names[u], O[i, u] / row_sum[i]) for u in range(k_new)
                if u != t and O[i, u] >= SPLIT_SHARE * row_sum[i]]
        if lost and (len(lost) >= 2 or O[i, t] >= SPLIT_SHARE * row_sum[i]):
            lost.sort(key=lambda x: -x[1])
            findings.append(f"{lost[0][1]:.0%} of {old_names[i]}'s customers are now in {lost[0][0]}"
                            + "".join(f", {p:.0%} in {nm}" for nm, p in lost[1:])
                            + f" ({O[i, t] / row_sum[i]:.0%} stayed in {new_names[t]})")
    for t in range(k_new):  # merges: a kept segment taking in others' customers (never a new one)
        i = partner.get(t)
        if i is None or not col_sum[t]:
            continue
        came = [(old_names[h], O[h, t] / col_sum[t]) for h in range(k_old)
                if h != i and O[h, t] >= SPLIT_SHARE * col_sum[t]]
        if came and (len(came) >= 2 or O[i, t] >= SPLIT_SHARE * col_sum[t]):
            came.sort(key=lambda x: -x[1])
            findings.append(f"{came[0][1]:.0%} of {new_names[t]}'s customers were in {came[0][0]}"
                            + "".join(f", {p:.0%} in {nm}" for nm, p in came[1:])
                            + f" under the previous model ({O[i, t] / col_sum[t]:.0%} in {old_names[i]})")
    for r in rows:
        if r["status"] == "changed":
            findings.append(f"{r['segment']} changed: its center moved {r['shift']:.2f} standard deviations "
                            f"on {r['feature']}")
    if "warm" in info:
        warm, cold = info["inertia"]
        if warm == cold:
            findings.append(f"the warm start from the previous centers fitted as well as a fresh start "
                            f"(inertia {warm:.6g})")
        else:
            findings.append(("the warm start from the previous centers fitted better than a fresh start"
                             if info["warm"] else
                             "a fresh start fitted better than the warm start from the previous centers")
                            + f" (inertia {min(warm, cold):.6g} against {max(warm, cold):.6g})")
    counts = {s: 0 for s in ("matched", "changed", "vanished", "new")}
    for r in rows:
        counts[r["status"]] += 1
    summary = f"{counts['matched'] + counts['changed']} of {len(old_names)} segments kept their names"
    extra = [f"{counts[s]} {s}" for s in ("changed", "vanished", "new") if counts[s]]
    findings.append(summary + (f" ({', '.join(extra)})" if extra else ""))
    return Refit(table, findings, statistics, n, info.get("warm"), info.get("inertia"), inputs)


__all__ = ["Refit", "refit", "MAX_SHIFT", "SPLIT_SHARE", "START_ROWS", "STATISTICS"]
