"""One self-contained HTML page about a segmentation: sizes, descriptions, traits, checks, k,
and drift (who moved where, segment shares and features against the reference).

The page needs no network and no JavaScript: the CSS is inline, the plots are PNGs embedded as
``data:`` URIs, and every string that came from the user (segment, feature and category names,
the title, descriptions and findings that quote them) passes through :func:`html.escape`.

Its size depends on aggregates only, never on the number of customers: a few tables with one
row per segment (or per k, or per drifted feature) and one cell per (segment, feature), and up
to four plots whose pixel size is capped (:data:`segmint.report.plots.MAX_INCHES`; the migration
heatmap draws at most :data:`segmint.report.plots.MAX_MIGRATION_SEGMENTS` segments per axis).
:func:`size_bound` states the bound.
"""
import base64
import datetime
import html
import math

from ..errors import OutputError, ParameterError
from ..io.outputs import check_output
from ..io.writers import write_text

# The size bound (bytes): a fixed part (CSS, header, the three plots: their PNGs measure
# 0.1-0.4 MB even at their capped size), plus per segment (its rows in the summary, traits and
# validation tables, its description and findings, its share of the plots), per
# (segment, feature) cell of the means table, and per row of the sweep table.
# User strings are cut (NAME_CHARS for names, TEXT_CHARS for sentences that quote them, the
# fuller text up to TITLE_CHARS in a title= tooltip), each also to a number of bytes once escaped,
# so a name takes at most NAME_BYTES + TITLE_BYTES (+ markup) wherever it appears. The bound
# counts the worst case: a segment's name appears up to 10 times (its rows, "nearest", merge
# suggestions), with its description, 3 traits and up to FINDINGS_PER_SEGMENT findings of
# TEXT_BYTES + TITLE_BYTES each; a feature's name up to twice. Real reports take far less: the
# plots (0.1-0.4 MB each) dominate.
BOUND_FIXED = 2_000_000
BOUND_PER_SEGMENT = 100_000
BOUND_PER_FEATURE = 8_000
BOUND_PER_CELL = 200
BOUND_PER_K = 1_000
TOP_TRAITS = 3
NAME_CHARS = 200  # a segment, feature or category name longer than this ends in an ellipsis
TEXT_CHARS = 600  # a description, trait or finding longer than this too
TITLE_CHARS = 1_000  # the tooltip of a cut name holds at most this much of it
NAME_BYTES, TEXT_BYTES, TITLE_BYTES = 1_200, 2_400, 2_000  # the same, in bytes of escaped HTML
FINDINGS_PER_SEGMENT = 8  # findings listed; more are counted
MAX_SWEEP_FEATURES = 50  # the sweep's features named in the page; more are counted
# The drift section: a fixed part (the migration heatmap's PNG, at most 30 x 30 segments drawn:
# 0.1-0.3 MB; the notes), then per segment of the drift (its rows in the share and size tables,
# up to FINDINGS_PER_SEGMENT findings) and per feature (its row of the PSI table and a finding).
BOUND_DRIFT_FIXED = 1_500_000
BOUND_DRIFT_PER_FEATURE = 2 * BOUND_PER_FEATURE

VERDICTS = ("measurable", "substantial", "accessible", "distinct")
# columns shown as percentages, as counts, and as plain figures
_PERCENT = {"share", "revenue_share", "reachable_share", "null_share", "unknown_share",
            "overlap_share", "share_reference", "share_current", "previous_share", "current_share",
            "null_share_reference", "null_share_current"}
_COUNT = {"count", "k", "seed", "count_reference", "count_current", "previous_count", "current_count",
          "count_change", "bins"}  # exact integers; every other figure: 3 significant digits
# cell and row classes (an f-string's expression part may not hold a backslash)
_BASE, _CHOSEN, _TEXT, _NAME = ' class="base"', ' class="chosen"', ' class="text"', ' class="name"'

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1d1d1f; background: #ffffff; margin: 0 auto; max-width: 1200px; padding: 24px 32px;
       line-height: 1.45; }
h1 { font-size: 1.6em; margin: 0 0 4px 0; }
h2 { font-size: 1.2em; margin: 32px 0 8px 0; border-bottom: 2px solid #0072B2; padding-bottom: 3px; }
p.meta { color: #555; margin: 0 0 16px 0; }
p.note { color: #555; font-size: 0.9em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9em; margin: 8px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; vertical-align: top; }
th { background: #f3f5f8; font-weight: 600; }
td.text, th.text { text-align: left; }
/* a long unbroken name wraps anywhere rather than widen the page (it is cut at 200 characters) */
td.text, th.name, li, p, h1 { overflow-wrap: anywhere; }
th.name { max-width: 16em; }
td.name { text-align: left; font-weight: 600; min-width: 8em; max-width: 22em; overflow-wrap: anywhere; }
tr.base td { background: #fafafa; font-style: italic; }
tr.chosen td { background: #fff4dc; }
span.pass, span.fail, span.warn, span.unchecked { padding: 1px 7px; border-radius: 8px;
                                                  font-size: 0.85em; white-space: nowrap; }
span.pass { background: #d9f2e3; color: #0b5d2a; }
span.fail { background: #fbdcdc; color: #8a1111; font-weight: 600; }
span.warn { background: #fff0c2; color: #6b4a00; }
span.unchecked { background: #eeeeee; color: #555555; }
ul.findings li { margin: 3px 0; }
img.plot { max-width: 100%; height: auto; border: 1px solid #eee; margin: 8px 0; }
footer { margin-top: 40px; color: #666; font-size: 0.85em; border-top: 1px solid #ddd;
         padding-top: 8px; }
"""


def size_bound(n_segments, n_features, n_ks=0, *, drift=None):
    """The most bytes a report on ``n_segments`` x ``n_features`` (and a sweep of ``n_ks`` k
    values, and a drift section) may take, whatever the number of customers.

    Parameters
    ----------
    n_segments, n_features, n_ks : int
    drift : segmint.monitor.compare.Drift, optional
        The drift the report shows: adds a fixed part and a part per segment and per feature of
        the drift (see :func:`drift_size`).

    Returns
    -------
    int
    """
    bound = (BOUND_FIXED + BOUND_PER_SEGMENT * n_segments + BOUND_PER_FEATURE * n_features
             + BOUND_PER_CELL * n_segments * n_features + BOUND_PER_K * n_ks)
    if drift is not None:
        d_segments, d_features = drift_size(drift)
        bound += BOUND_DRIFT_FIXED + BOUND_PER_SEGMENT * d_segments + BOUND_DRIFT_PER_FEATURE * d_features
    return bound


def drift_size(drift):
    """``(segments, features)`` of a drift: the most segments one of its views lists (the
    migration's axis, the share table) and the rows of its feature table."""
    migration, segments, features = _views(drift)
    n_segments = max(len(migration.from_names) if migration is not None else 0,
                     segments.num_rows if segments is not None else 0)
    return n_segments, (features.num_rows if features is not None else 0)


def write_report(path, profile, *, validation=None, sweep=None, drift=None, title=None, inputs=()):
    """Write one self-contained HTML report of a segmentation to ``path``, atomically.

    The page holds a header (customers, segments, features, the date), the segment summary with
    each segment's description, the sizes plot, the top traits per segment, the heatmap of
    standardized differences and the feature means; with ``validation``, the verdicts per
    segment, the findings and merge suggestions; with ``sweep``, the curves against k, the
    summary per k and the suggested k; with ``drift``, a "Drift" section: its findings, the
    migration heatmap (row shares, previous x current segment, the largest 30 segments) with
    the segment sizes of both snapshots, the segment shares at fit and now, and the feature
    PSI table (band and verdict). It opens offline and needs no JavaScript; its size is
    at most :func:`size_bound` bytes (checked before writing), whatever the number of customers
    and the length of the names: names are cut to 200 characters (the fuller name in a tooltip).
    Figures show 3 significant digits with thousands separators; counts are exact.

    Parameters
    ----------
    path : str or os.PathLike
        The HTML file to write (replaced atomically; never one of ``inputs``).
    profile : segmint.Profile
        What :func:`segmint.profile` returned.
    validation : segmint.Validation, optional
        What :func:`segmint.validate` returned.
    sweep : segmint.Sweep, optional
        What :func:`segmint.sweep_k` returned.
    drift : segmint.monitor.compare.Drift, optional
        What :func:`segmint.drift` returned; any of its views may be None (a section shows what
        there is: a drift of two snapshots has no feature table, one without ``previous=`` no
        migration).
    title : str, optional
        The page's title; default "Segment report".
    inputs : iterable of paths, optional
        Other files the job read: the report may not be written over one of them, nor over
        the files the profile, validation, sweep and drift were read from (their ``inputs``).

    Returns
    -------
    path

    Raises
    ------
    ParameterError
        ``profile``, ``validation``, ``sweep`` or ``drift`` is not what its function returns,
        or ``title`` is not a string.
    MissingExtraError
        matplotlib is not installed (``pip install "segmint[plot]"``).
    OutputError
        ``path`` is refused (an input, a folder, ...) or cannot be written; or the page would
        exceed :func:`size_bound` (a bug: names are cut so that it cannot).
    """
    _check_arguments(profile, validation, sweep, drift, title)
    # never over a file the results were computed from (the data, a model, a rule file, a snapshot)
    inputs = list(inputs) + [p for obj in (profile, validation, sweep, drift) if obj is not None
                             for p in (getattr(obj, "inputs", None) or ())]
    check_output(path, inputs=inputs)  # refuse a bad destination before drawing anything
    text = render(profile, validation=validation, sweep=sweep, drift=drift, title=title)
    n_ks = sweep.summary.num_rows if sweep is not None else 0
    bound = size_bound(len(profile.segments), len(profile.features), n_ks, drift=drift)
    size = len(text.encode("utf-8"))
    if size > bound:  # cannot happen with the cuts above; a promise checked, not assumed
        raise OutputError(f"the report on {len(profile.segments):,} segments x {len(profile.features):,} "
                          f"features would take {size:,} bytes, beyond its stated bound of {bound:,}; "
                          "this is a bug in segmint: please report it")
    write_text(path, text, inputs=inputs)
    return path


# what write_report reads of a drift (segmint.monitor.compare.Drift): checked by attribute, so
# that a drift of any segmint version that has them is shown
DRIFT_ATTRIBUTES = ("migration", "features", "segments", "segment_psi", "findings")


def _check_arguments(profile, validation, sweep, drift, title):
    """ParameterError naming the argument and the expected type (not an AttributeError later)."""
    from ..explain.profile import Profile
    from ..explain.sweep import Sweep
    from ..explain.validate import Validation

    for name, value, kind, made_by in (("profile", profile, Profile, "segmint.profile()"),
                                       ("validation", validation, Validation, "segmint.validate()"),
                                       ("sweep", sweep, Sweep, "segmint.sweep_k()")):
        if value is not None and not isinstance(value, kind):
            raise ParameterError(f"{name}= must be a segmint.{kind.__name__} (what {made_by} returns); "
                                 f"got {type(value).__name__}")
    missing = [a for a in DRIFT_ATTRIBUTES if not hasattr(drift, a)] if drift is not None else []
    if missing:
        raise ParameterError(f"drift= must be a segmint Drift (what segmint.drift() returns); got "
                             f"{type(drift).__name__}, without {', '.join(missing)}")
    if profile is None:
        raise ParameterError("profile= must be a segmint.Profile (what segmint.profile() returns); got None")
    if title is not None and not isinstance(title, str):
        raise ParameterError(f"title= must be a string; got {type(title).__name__}")


def render(profile, *, validation=None, sweep=None, drift=None, title=None):
    """The report's HTML text (what :func:`write_report` writes)."""
    from . import plots

    title = _cut(title or "Segment report", NAME_CHARS)
    parts = [f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
             f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
             _header(profile, title),
             "<h2>Segments</h2>\n", _summary_table(profile),
             _image(plots.plot_sizes(profile), "Share of customers (and of revenue) per segment"),
             "<h2>What sets each segment apart</h2>\n", _traits_table(profile)]
    if len(profile.features):
        parts += [_image(plots.plot_differences(profile),
                         "Standardized differences of each feature, segments by features"),
                  "<h3>Feature means</h3>\n", _means_table(profile)]
    if validation is not None:
        parts += ["<h2>Validation</h2>\n", _validation(validation)]
    if sweep is not None:
        parts += ["<h2>Choosing k</h2>\n", _sweep(sweep, plots)]
    if drift is not None:
        parts += ["<h2>Drift</h2>\n", _drift(drift, plots)]
    parts.append(_footer(profile))
    parts.append("</body>\n</html>\n")
    return "".join(parts)


# -- pieces ------------------------------------------------------------------------------------
def _e(value):
    """Escaped text of a user value (quotes too: it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def _cut(text, limit):
    """``text`` cut to ``limit`` characters, ending in an ellipsis when it was longer."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _escaped_prefix(text, max_chars, max_bytes):
    """The escaped HTML of ``text``'s longest prefix of at most ``max_chars`` characters and
    ``max_bytes`` UTF-8 bytes once escaped (``&`` takes 5, an emoji 4), and whether it was cut."""
    out, used = [], 0
    for i, char in enumerate(text):
        piece = html.escape(char, quote=True)
        size = len(piece.encode("utf-8", "surrogatepass"))
        if i >= max_chars or used + size > max_bytes:
            return "".join(out), True
        out.append(piece)
        used += size
    return "".join(out), False


def _name(value, limit=NAME_CHARS, budget=NAME_BYTES):
    """A user's name (or a sentence quoting names) as escaped HTML: cut to ``limit`` characters
    (and ``budget`` bytes), the fuller text (up to :data:`TITLE_CHARS`) in a tooltip, so that no
    name can stretch the page or its size."""
    text = str(value)
    shown, cut = _escaped_prefix(text, limit, budget)
    if not cut:
        return shown
    shown = _escaped_prefix(text, limit - 1, budget - 3)[0] + "\u2026"
    title, cut = _escaped_prefix(text, TITLE_CHARS, TITLE_BYTES - 3)
    if cut:
        title += "\u2026"
    return f"<span title=\"{title}\">{shown}</span>"


def _text(value):
    """A sentence that may quote names (a description, a trait, a finding)."""
    return _name(value, TEXT_CHARS, TEXT_BYTES)


def _header(profile, title):
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [f"{int(profile.n_rows):,} customers", f"{len(profile.segments):,} segments",
             f"{len(profile.features):,} numeric features"]
    if len(profile.categories):
        facts.append(f"{len(profile.categories):,} categorical")
    if getattr(profile, "n_unassigned", 0):
        facts.append(f"{int(profile.n_unassigned):,} customers without a segment")
    facts.append(f"generated {today}")
    return f"<header>\n<h1>{_e(title)}</h1>\n<p class=\"meta\">{_e(' · '.join(facts))}</p>\n</header>\n"


def _summary_table(profile):
    summary = profile.summary
    names = summary.column_names
    shown = [c for c in ("count", "share", "revenue", "revenue_share", "revenue_per_customer",
                         "reachable_share") if c in names and summary.column(c).null_count < summary.num_rows]
    heads = {"count": "customers", "share": "share", "revenue": "revenue", "revenue_share": "share of revenue",
             "revenue_per_customer": "revenue per customer", "reachable_share": "reachable"}
    rows = ["<tr><th class=\"text\">segment</th>" + "".join(f"<th>{heads[c]}</th>" for c in shown)
            + "<th class=\"text\">description</th></tr>"]
    columns = {c: summary.column(c).to_pylist() for c in shown + ["segment"]}
    descriptions = summary.column("description").to_pylist() if "description" in names else [None] * summary.num_rows
    for i in range(summary.num_rows):
        segment = columns["segment"][i]
        base = segment is None
        cells = "".join(f"<td>{_number(c, columns[c][i])}</td>" for c in shown)
        rows.append(f"<tr{_BASE if base else ''}><td class=\"name\">"
                    f"{'all customers' if base else _name(segment)}</td>{cells}"
                    f"<td class=\"text\">{_text(descriptions[i] or '')}</td></tr>")
    return _table(rows)


def _traits_table(profile):
    rows = ["<tr><th class=\"text\">segment</th><th class=\"text\">top traits (standardized difference, "
            "or lift of a category)</th></tr>"]
    for name in profile.segments:
        traits = profile.traits(name, top=TOP_TRAITS)
        items = []
        for feature, category, value, text in traits:
            figure = f"lift {_figure(value)}" if category is not None else f"{_signed(value)} sd"
            items.append(f"{_text(text)} <span class=\"unchecked\">{figure}</span>")
        cell = "<br>".join(items) if items else "nothing stands out"
        rows.append(f"<tr><td class=\"name\">{_name(name)}</td><td class=\"text\">{cell}</td></tr>")
    return _table(rows)


def _means_table(profile):
    import numpy as np

    means = np.asarray(profile.means, dtype=np.float64)
    labels = (list(profile.segments) + [None])[:means.shape[0]]
    if len(profile.features) > len(labels):
        # more features than segments: one row per feature, so that the table stays as wide as
        # the number of segments (16 features across would not fit a page)
        rows = ["<tr><th class=\"text\">feature</th>"
                + "".join(f"<th{_NAME}>{'all customers' if n is None else _name(n)}</th>" for n in labels) + "</tr>"]
        for j, feature in enumerate(profile.features):
            cells = "".join(f"<td>{_figure(v)}</td>" for v in means[:, j])
            rows.append(f"<tr><td class=\"name\">{_name(feature)}</td>{cells}</tr>")
        return _table(rows)
    rows = ["<tr><th class=\"text\">segment</th>" + "".join(f"<th{_NAME}>{_name(f)}</th>" for f in profile.features)
            + "</tr>"]
    for i, name in enumerate(labels):
        cells = "".join(f"<td>{_figure(v)}</td>" for v in means[i])
        rows.append(f"<tr{_BASE if name is None else ''}><td class=\"name\">"
                    f"{'all customers' if name is None else _name(name)}</td>{cells}</tr>")
    return _table(rows)


_UNCHECKED = (None, "not checked")
# the figures behind the verdicts, in a second table (the first one keeps the verdicts visible
# on a 1280 px screen), with their headers
_FIGURES = {"null_share": "missing values", "separation": "separation (from nearest)",
            "nearest": "nearest segment", "jaccard": "bootstrap Jaccard",
            "reachable_share": "reachable", "unknown_share": "left out (unknown rule)",
            "overlap_share": "overlap with other segments"}


def _validation(validation):
    table = validation.table
    columns = {c: table.column(c).to_pylist() for c in table.column_names}

    def shown(c):  # a column "not checked" (or empty) on every row says nothing: left out
        return c in columns and any(v not in _UNCHECKED for v in columns[c])

    verdicts = [c for c in VERDICTS + ("stability",) if shown(c)]
    sizes = [c for c in ("count", "share") if c in columns]
    rows = ["<tr><th class=\"text\">segment</th>" + "".join(f"<th>{_e(c)}</th>" for c in sizes)
            + "".join(f"<th class=\"text\">{_e(c)}</th>" for c in verdicts) + "</tr>"]
    for i in range(table.num_rows):
        rows.append(f"<tr><td class=\"name\">{_name(columns['segment'][i])}</td>"
                    + "".join(f"<td>{_number(c, columns[c][i])}</td>" for c in sizes)
                    + "".join(f"<td class=\"text\">{_verdict(columns[c][i])}</td>" for c in verdicts) + "</tr>")
    out = [_table(rows)]
    unchecked = [c for c in VERDICTS + ("stability",) if c in columns and not shown(c)]
    if unchecked:
        out.append(f"<p class=\"note\">Not checked for these segments: {_e(', '.join(unchecked))}.</p>\n")
    figures = [c for c in _FIGURES if shown(c)]
    if figures:
        rows = ["<tr><th class=\"text\">segment</th>"
                + "".join(f"<th{_TEXT if c == 'nearest' else ''}>{_FIGURES[c]}</th>" for c in figures)
                + "</tr>"]
        for i in range(table.num_rows):
            cells = "".join(f"<td{_TEXT}>{_number(c, columns[c][i])}</td>" if c == "nearest"
                            else f"<td>{_number(c, columns[c][i])}</td>" for c in figures)
            rows.append(f"<tr><td class=\"name\">{_name(columns['segment'][i])}</td>{cells}</tr>")
        out += ["<h3>The figures behind the verdicts</h3>\n", _table(rows)]
    n = max(table.num_rows, 1)
    findings = list(getattr(validation, "findings", []) or [])
    if findings:
        out.append("<h3>Findings</h3>\n" + _list(findings, FINDINGS_PER_SEGMENT * n + 10, "findings"))
    else:
        out.append("<p>No check failed.</p>\n")
    merges = [f"{_name(a)} and {_name(b)} (separation {_figure(s)})"
              for a, b, s in list(getattr(validation, "merge_suggestions", []) or [])]
    if merges:
        out.append("<h3>Segments to consider merging</h3>\n" + _list(merges, 2 * n, "suggestions", escaped=True))
    return "".join(out)


def _list(items, limit, what, escaped=False, where="the validation object"):
    """A bulleted list of at most ``limit`` items (the size bound), saying how many were left out."""
    shown = [item if escaped else _text(item) for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"&hellip; and {len(items) - limit:,} more {what} (in {where})")
    return "<ul class=\"findings\">" + "".join(f"<li>{item}</li>" for item in shown) + "</ul>\n"


def _verdict(value):
    if value is None:
        return "<span class=\"unchecked\">not checked</span>"
    kind = {"pass": "pass", "fail": "fail", "highly stable": "pass", "valid": "pass",
            "doubtful": "fail", "not trustworthy": "fail"}.get(value, "unchecked")
    return f"<span class=\"{kind}\">{_e(value)}</span>"


# the sweep's summary columns, with headers that say which way is better
_SWEEP_COLUMNS = [("k", "k"), ("inertia", "inertia (lower is tighter)"),
                  ("calinski_harabasz", "Calinski-Harabasz (higher is better)"),
                  ("davies_bouldin", "Davies-Bouldin (lower is better)"),
                  ("simplified_silhouette", "simplified silhouette (higher is better)"),
                  ("silhouette", "silhouette (higher is better)"),
                  ("silhouette_interval", "silhouette 95% interval"),
                  ("stability", "stability: ARI between seeds (near 1: the same segments every seed)")]


def silhouette_sampled(sweep):
    """Whether the sweep's exact silhouette was computed on a sample smaller than the data (the
    sweep's own flag when it has one; else from its sample size and number of rows; True when
    unknown, the cautious wording)."""
    flag = getattr(sweep, "silhouette_sampled", None)
    if flag is not None:
        return bool(flag)
    data = sweep.to_dict() if hasattr(sweep, "to_dict") else {}
    size, rows = data.get("sample_size"), data.get("n_rows", getattr(sweep, "n_rows", None))
    if size is None or rows is None:
        return True
    return size < rows


def _sweep(sweep, plots):
    suggested = sweep.suggested_k
    message = (getattr(sweep, "elbow", None) or {}).get("message") or ""
    headline = f"Suggested k = {suggested}." if suggested is not None else "No clear elbow."
    if message.lower().startswith("no clear elbow"):  # the message says it already: once is enough
        message = message[len("no clear elbow"):].lstrip(":;,. ")
        message = message[:1].upper() + message[1:]
    features = [str(f) for f in (getattr(sweep, "features", None) or [])]
    named = ", ".join(_name(f) for f in features[:MAX_SWEEP_FEATURES])
    if len(features) > MAX_SWEEP_FEATURES:
        named += f" and {len(features) - MAX_SWEEP_FEATURES:,} more"
    out = [f"<p><strong>{_e(headline)}</strong> {_text(message)}</p>\n"]
    if features:
        out.append(f"<p>Clustered on {len(features):,} feature{'s' if len(features) != 1 else ''}: {named}.</p>\n")
    out.append(_image(plots.plot_sweep(sweep), "Inertia, Calinski-Harabasz, Davies-Bouldin and silhouette against k"))
    summary = sweep.summary
    columns = {c: summary.column(c).to_pylist() for c in summary.column_names}
    if "silhouette_low" in columns and "silhouette_high" in columns:
        columns["silhouette_interval"] = [
            "&ndash;" if lo is None or hi is None else f"[{_figure(lo)}, {_figure(hi)}]"
            for lo, hi in zip(columns["silhouette_low"], columns["silhouette_high"])]
    shown = [(c, head) for c, head in _SWEEP_COLUMNS if c in columns and any(v is not None for v in columns[c])]
    rows = ["<tr>" + "".join(f"<th>{head}</th>" for _, head in shown) + "</tr>"]
    for i in range(summary.num_rows):
        chosen = suggested is not None and columns.get("k", [None] * summary.num_rows)[i] == suggested
        rows.append(f"<tr{_CHOSEN if chosen else ''}>"
                    + "".join(f"<td>{columns[c][i] if c == 'silhouette_interval' else _number(c, columns[c][i])}</td>"
                              for c, _ in shown) + "</tr>")
    out.append(_table(rows))
    if silhouette_sampled(sweep):
        silhouette = ("The silhouette is exact on a sample stratified by segment, with a bootstrap 95% "
                      "interval; the simplified silhouette, inertia, Calinski-Harabasz and Davies-Bouldin "
                      "use every row.")
    else:
        silhouette = ("Every metric, the exact silhouette included, uses every row; the silhouette's "
                      "95% interval comes from a bootstrap of its per-row values.")
    out.append(f"<p class=\"note\">Medians over the seeds. {silhouette} Stability is the mean adjusted Rand "
               "index (ARI) between the seeds' labelings: 1 means every seed found the same segments, "
               "near 0 no more agreement than chance; above about 0.9 the segments are stable.</p>\n")
    return "".join(out)


# -- drift ---------------------------------------------------------------------------------------
def _views(drift):
    """The drift's migration, segment share table and feature table, each None when absent (an
    empty table too: it has nothing to show)."""
    def table(value):
        return value if value is not None and value.num_rows else None
    return (getattr(drift, "migration", None), table(getattr(drift, "segments", None)),
            table(getattr(drift, "features", None)))


# the drift's tables: (column, header) in the order shown
_SIZES_COLUMNS = [("previous_count", "customers before"), ("previous_share", "share before"),
                  ("current_count", "customers now"), ("current_share", "share now"),
                  ("change", "change in share"), ("status", "status")]
_SHARES_COLUMNS = [("count_reference", "customers at fit"), ("share_reference", "share at fit"),
                   ("count_current", "customers now"), ("share_current", "share now"),
                   ("share_change", "change in share"), ("psi_term", "PSI term")]
_FEATURE_COLUMNS = [("kind", "kind"), ("psi", "PSI"), ("band", "band"), ("verdict", "verdict"),
                    ("statistic", "statistic"), ("threshold", "threshold"), ("bins", "bins"),
                    ("null_share_reference", "missing at fit"), ("null_share_current", "missing now")]
# the PSI's words (segmint.monitor.psi): the band by the usual rule of thumb, the verdict by the
# sample-size-aware test ("stable" was its word for "within noise" before issue 15)
_DRIFT_STYLE = {"stable": "pass", "moderate": "warn", "major": "fail", "drifted": "fail",
                "within noise": "pass"}


def _drift(drift, plots):
    migration, segments, features = _views(drift)
    n_segments, n_features = drift_size(drift)
    facts = []
    for attribute, words in (("n_current", "customers now"), ("n_previous", "in the previous snapshot"),
                             ("n_reference", "when the model was fitted (its reference statistics)")):
        value = getattr(drift, attribute, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            facts.append(f"{int(value):,} {words}")
    out = [f"<p class=\"meta\">{_e(' · '.join(facts))}</p>\n"] if facts else []
    findings = [str(f) for f in (getattr(drift, "findings", None) or [])]
    if findings:
        limit = FINDINGS_PER_SEGMENT * max(n_segments, 1) + 2 * n_features + 10
        out.append(_list(findings, limit, "findings", where="the drift object"))
    elif migration is not None or segments is not None or features is not None:
        out.append("<p>Nothing drifted: no finding.</p>\n")
    if migration is not None:
        _, _, _, pooled = plots.migration_view(migration)
        out += ["<h3>Who moved where</h3>\n",
                _image(plots.migration_heatmap(migration),
                       "Migration heatmap: share of each previous segment's customers by current segment"),
                "<p class=\"note\">Each row holds the customers of a previous segment (or the new customers), "
                "split by their current segment (or departed): a row adds up to 100%. The outlined diagonal "
                "is the customers who stayed in their segment."
                + (f" The {plots.MAX_MIGRATION_SEGMENTS:,} largest of {len(migration.from_names) - 1:,} segments "
                   f"are drawn; the other {pooled:,} share one row and one column. The table lists every "
                   "segment." if pooled else "") + "</p>\n"]
        # the migration's per-segment words that the drift's findings left out
        moves = [str(f) for f in (getattr(migration, "findings", None) or []) if str(f) not in findings]
        if moves:
            out.append(_list(moves, FINDINGS_PER_SEGMENT * max(n_segments, 1) + 10, "findings",
                             where="the drift's migration"))
        out += ["<h3>Segment sizes, previous snapshot and now</h3>\n",
                _drift_table(migration.sizes, "segment", _SIZES_COLUMNS)]
    segment_psi = getattr(drift, "segment_psi", None)
    if segments is not None or segment_psi is not None:
        out.append("<h3>Segment shares at fit and now</h3>\n")
        if segment_psi is not None:
            out.append(f"<p>The segment distribution against the reference: {_psi_words(segment_psi)}.</p>\n")
        if segments is not None:
            out.append(_drift_table(segments, "segment", _SHARES_COLUMNS))
    if features is not None:
        alpha = getattr(drift, "alpha", None)
        alpha = float(alpha) if isinstance(alpha, (int, float)) and 0 < alpha < 1 else None
        out += ["<h3>Feature drift: PSI against the reference</h3>\n",
                _drift_table(_by_psi(features), "feature", _FEATURE_COLUMNS),
                "<p class=\"note\">Largest PSI first. PSI = sum over bins of (share now - share at fit) "
                "&times; ln(share now / share at fit), over the reference's decile bins (a categorical "
                "feature: its categories; missing values: one more bin). Band: below 0.1 stable, 0.1 to "
                "0.25 moderate, above 0.25 major. Verdict: the statistic PSI &times; (1/n + 1/m)<sup>-1</sup> "
                "(n rows at fit, m now; this PSI on the counts plus one half, so that an empty bin of a "
                "small sample does not pass for drift) against its threshold, the chi-square quantile at 1 - alpha / k "
                + (f"(alpha {alpha:.3g}, k = {features.num_rows} features) " if alpha is not None else "")
                + "for bins - 1 degrees of freedom: above it, drifted; below it, within noise. The features "
                "are tested as one family (Bonferroni: each at alpha / k), so alpha is the chance that "
                "data with no drift get any feature called drifted; the segment shares are one more test. "
                "Too few rows for the chi-square approximation (Cochran's rule: an expected count below 1, "
                "or more than 20% below 5) give no verdict: too few rows. Fixed bands raise false alarms "
                "on small samples and miss drift on large ones; the verdict takes the sample sizes into "
                "account, but stays a test: some false alarms remain.</p>\n"]
    return "".join(out)


def _psi_words(result):
    """'PSI 0.0123, stable; within noise (statistic 45.6, threshold 12.6)' as HTML."""
    words = f"PSI {_figure(result.psi)}, {_styled(result.band)}"
    if getattr(result, "verdict", None) is not None:
        words += f"; {_styled(result.verdict)}"
        if result.statistic is not None and result.threshold is not None:
            words += f" (statistic {_figure(result.statistic)}, threshold {_figure(result.threshold)})"
    return words


def _styled(word):
    return f"<span class=\"{_DRIFT_STYLE.get(word, 'unchecked')}\">{_name(word)}</span>"


def _by_psi(features):
    """The feature table, largest PSI first (a missing PSI last; ties in the table's order)."""
    values = features.column("psi").to_pylist() if "psi" in features.column_names else []
    if not values:
        return features
    def key(i):
        v = values[i]
        return (0, -v) if v is not None and v == v else (1, 0.0)
    order = sorted(range(len(values)), key=key)
    return features.take(order)


def _drift_table(table, name_column, columns):
    """One row per segment or feature: its (escaped, cut) name, then ``columns`` it has."""
    shown = [(c, head) for c, head in columns if c in table.column_names]
    data = {c: table.column(c).to_pylist() for c, _ in shown}
    names = table.column(name_column).to_pylist() if name_column in table.column_names else [None] * table.num_rows
    rows = [f"<tr><th class=\"text\">{name_column}</th>"
            + "".join(f"<th{_TEXT if c in ('kind', 'band', 'verdict', 'status') else ''}>{head}</th>"
                      for c, head in shown) + "</tr>"]
    for i in range(table.num_rows):
        cells = "".join(_drift_cell(c, data[c][i]) for c, _ in shown)
        rows.append(f"<tr><td class=\"name\">{_name(names[i]) if names[i] is not None else '&ndash;'}</td>"
                    f"{cells}</tr>")
    return _table(rows)


def _drift_cell(column, value):
    if value is None:
        return "<td>&ndash;</td>"
    if column in ("band", "verdict"):
        return f"<td class=\"text\">{_styled(value)}</td>"
    if column in ("kind", "status"):
        return f"<td class=\"text\">{_name(value)}</td>"
    if column in ("change", "share_change"):  # a change of share: signed percentage points
        return f"<td>{_points(value)}</td>"
    if column == "count_change":
        return f"<td>{int(value):+,}</td>"
    return f"<td>{_number(column, value)}</td>"


def _points(value):
    """A change of share in percentage points: "+3.4 pts", "-0.2 pts", "0.0 pts"."""
    if value != value:
        return "&ndash;"
    points = 100 * value
    return "0.0 pts" if abs(points) < 0.05 else f"{points:+.1f} pts"


def _footer(profile):
    quantiles = getattr(profile, "quantiles", "") or ""
    return ("<footer>\n<p>Standardized difference: (mean in the segment - mean of all customers) / "
            "standard deviation of all customers. Lift: a category's share in the segment over its share "
            f"in the base. {_text(_sentence(quantiles))}Figures show 3 significant digits; counts are exact.</p>\n"
            "<p>Made by segmint from aggregates only: no customer row is in this file.</p>\n</footer>\n")


def _sentence(text):
    """``text`` ending in a full stop and a space ("" for no text)."""
    text = str(text).strip()
    return "" if not text else text + (" " if text.endswith((".", "!", "?")) else ". ")


def _image(fig, alt):
    from .plots import png_bytes
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    width, height = (int(round(v * fig.dpi)) for v in fig.get_size_inches())
    return (f"<div class=\"scroll\"><img class=\"plot\" alt=\"{_e(alt)}\" width=\"{width}\" height=\"{height}\" "
            f"src=\"data:image/png;base64,{data}\"></div>\n")


def _table(rows):
    return "<div class=\"scroll\"><table>\n" + "\n".join(rows) + "\n</table></div>\n"


def _number(column, value):
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _name(value)
    if column in _COUNT and float(value).is_integer():
        return f"{int(value):,}"
    if column in _PERCENT:
        return _percent(value)
    return _figure(value)


def _percent(value):
    if value != value:
        return "&ndash;"
    return f"{100 * value:.1f}%" if abs(value) >= 0.001 or value == 0 else f"{100 * value:.2g}%"


def figure_text(value):
    """A number as the report prints it: 3 significant digits, thousands separators always
    (3646 -> "3,650", 0.7548 -> "0.755", 1234567 -> "1,230,000"); "-" for a missing value."""
    value = float(value)
    if not math.isfinite(value):
        return "-" if value != value else ("\u221e" if value > 0 else "-\u221e")
    if value == 0:
        return "0"
    rounded = float(f"{value:.3g}")  # round first: 999.6 becomes 1,000 (4 digits before the point)
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def _figure(value):
    text = figure_text(value)
    return "&ndash;" if text == "-" else _e(text)


def _signed(value):
    text = _figure(value)
    return text if text.startswith(("-", "&")) or text == "0" else "+" + text
