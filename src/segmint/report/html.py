"""One self-contained HTML page about a segmentation: sizes, descriptions, traits, checks, k.

The page needs no network and no JavaScript: the CSS is inline, the plots are PNGs embedded as
``data:`` URIs, and every string that came from the user (segment, feature and category names,
the title, descriptions and findings that quote them) passes through :func:`html.escape`.

Its size depends on aggregates only, never on the number of customers: a few tables with one
row per segment (or per k) and one cell per (segment, feature), and three plots whose pixel size
is capped (:data:`segmint.report.plots.MAX_INCHES`). :func:`size_bound` states the bound.
"""
import base64
import datetime
import html
import math

from ..errors import ParameterError
from ..io.outputs import check_output
from ..io.writers import write_text

# The size bound (bytes): a fixed part (CSS, header, the three plots: their PNGs measure
# 0.1-0.4 MB even at their capped size), plus per segment (its rows in the summary, traits and
# validation tables, its description and findings, its share of the plots), per
# (segment, feature) cell of the means table, and per row of the sweep table.
BOUND_FIXED = 2_000_000
BOUND_PER_SEGMENT = 8_000
BOUND_PER_CELL = 200
BOUND_PER_K = 1_000
TOP_TRAITS = 3

VERDICTS = ("measurable", "substantial", "accessible", "distinct")
# columns shown as percentages, as counts, and as plain figures
_PERCENT = {"share", "revenue_share", "reachable_share", "null_share", "unknown_share",
            "overlap_share"}
_COUNT = {"count", "k", "seed"}
_BASE, _CHOSEN = ' class="base"', ' class="chosen"'  # row classes (no backslash in f-string parts)

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
td.name { text-align: left; font-weight: 600; min-width: 8em; max-width: 22em; overflow-wrap: anywhere; }
tr.base td { background: #fafafa; font-style: italic; }
tr.chosen td { background: #fff4dc; }
span.pass, span.fail, span.unchecked { padding: 1px 7px; border-radius: 8px; font-size: 0.85em;
                                       white-space: nowrap; }
span.pass { background: #d9f2e3; color: #0b5d2a; }
span.fail { background: #fbdcdc; color: #8a1111; font-weight: 600; }
span.unchecked { background: #eeeeee; color: #555555; }
ul.findings li { margin: 3px 0; }
img.plot { max-width: 100%; height: auto; border: 1px solid #eee; margin: 8px 0; }
footer { margin-top: 40px; color: #666; font-size: 0.85em; border-top: 1px solid #ddd;
         padding-top: 8px; }
"""


def size_bound(n_segments, n_features, n_ks=0):
    """The most bytes a report on ``n_segments`` x ``n_features`` (and a sweep of ``n_ks`` k
    values) may take, whatever the number of customers.

    Parameters
    ----------
    n_segments, n_features, n_ks : int

    Returns
    -------
    int
    """
    return (BOUND_FIXED + BOUND_PER_SEGMENT * n_segments + BOUND_PER_CELL * n_segments * n_features
            + BOUND_PER_K * n_ks)


def write_report(path, profile, *, validation=None, sweep=None, title=None, inputs=()):
    """Write one self-contained HTML report of a segmentation to ``path``, atomically.

    The page holds a header (customers, segments, features, the date), the segment summary with
    each segment's description, the sizes plot, the top traits per segment, the heatmap of
    standardized differences and the feature means; with ``validation``, the verdicts per
    segment, the findings and merge suggestions; with ``sweep``, the curves against k, the
    summary per k and the suggested k. It opens offline and needs no JavaScript; its size is
    at most :func:`size_bound` bytes, whatever the number of customers.

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
    title : str, optional
        The page's title; default "Segment report".
    inputs : iterable of paths, optional
        The files the job read: the report may not be written over one of them.

    Returns
    -------
    path

    Raises
    ------
    MissingExtraError
        matplotlib is not installed (``pip install "segmint[plot]"``).
    OutputError
        ``path`` is refused (an input, a folder, ...) or cannot be written.
    """
    if title is not None and not isinstance(title, str):
        raise ParameterError(f"title= must be a string; got {type(title).__name__}")
    check_output(path, inputs=inputs)  # refuse a bad destination before drawing anything
    write_text(path, render(profile, validation=validation, sweep=sweep, title=title), inputs=inputs)
    return path


def render(profile, *, validation=None, sweep=None, title=None):
    """The report's HTML text (what :func:`write_report` writes)."""
    from . import plots

    title = title or "Segment report"
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
    parts.append(_footer(profile))
    parts.append("</body>\n</html>\n")
    return "".join(parts)


# -- pieces ------------------------------------------------------------------------------------
def _e(value):
    """Escaped text of a user value (quotes too: it may land in an attribute)."""
    return html.escape(str(value), quote=True)


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
                    f"{'all customers' if base else _e(segment)}</td>{cells}"
                    f"<td class=\"text\">{_e(descriptions[i] or '')}</td></tr>")
    return _table(rows)


def _traits_table(profile):
    rows = ["<tr><th class=\"text\">segment</th><th class=\"text\">top traits (standardized difference, "
            "or lift of a category)</th></tr>"]
    for name in profile.segments:
        traits = profile.traits(name, top=TOP_TRAITS)
        items = []
        for feature, category, value, text in traits:
            figure = f"lift {value:.2f}" if category is not None else f"{value:+.2f} sd"
            items.append(f"{_e(text)} <span class=\"unchecked\">{_e(figure)}</span>")
        cell = "<br>".join(items) if items else "nothing stands out"
        rows.append(f"<tr><td class=\"name\">{_e(name)}</td><td class=\"text\">{cell}</td></tr>")
    return _table(rows)


def _means_table(profile):
    import numpy as np

    means = np.asarray(profile.means, dtype=np.float64)
    labels = (list(profile.segments) + [None])[:means.shape[0]]
    if len(profile.features) > len(labels):
        # more features than segments: one row per feature, so that the table stays as wide as
        # the number of segments (16 features across would not fit a page)
        rows = ["<tr><th class=\"text\">feature</th>"
                + "".join(f"<th>{'all customers' if n is None else _e(n)}</th>" for n in labels) + "</tr>"]
        for j, feature in enumerate(profile.features):
            cells = "".join(f"<td>{_figure(v)}</td>" for v in means[:, j])
            rows.append(f"<tr><td class=\"name\">{_e(feature)}</td>{cells}</tr>")
        return _table(rows)
    rows = ["<tr><th class=\"text\">segment</th>" + "".join(f"<th>{_e(f)}</th>" for f in profile.features)
            + "</tr>"]
    for i, name in enumerate(labels):
        cells = "".join(f"<td>{_figure(v)}</td>" for v in means[i])
        rows.append(f"<tr{_BASE if name is None else ''}><td class=\"name\">"
                    f"{'all customers' if name is None else _e(name)}</td>{cells}</tr>")
    return _table(rows)


def _validation(validation):
    table = validation.table
    # the verdicts first, beside the names: the figures behind them follow (they scroll)
    first = [c for c in ("segment", "count", "share") + VERDICTS + ("stability",) if c in table.column_names]
    names = first + [c for c in table.column_names if c not in first]
    rows = ["<tr>" + "".join(f"<th class=\"text\">{_e(c)}</th>" if c in ("segment", "nearest") or c in VERDICTS
                             or c == "stability" else f"<th>{_e(c.replace('_', ' '))}</th>" for c in names)
            + "</tr>"]
    columns = {c: table.column(c).to_pylist() for c in names}
    for i in range(table.num_rows):
        cells = []
        for c in names:
            v = columns[c][i]
            if c == "segment":
                cells.append(f"<td class=\"name\">{_e(v)}</td>")
            elif c in VERDICTS or c == "stability":
                cells.append(f"<td class=\"text\">{_verdict(v)}</td>")
            elif isinstance(v, str):
                cells.append(f"<td class=\"text\">{_e(v)}</td>")
            else:
                cells.append(f"<td>{_number(c, v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    out = [_table(rows)]
    findings = list(getattr(validation, "findings", []) or [])
    if findings:
        out.append("<h3>Findings</h3>\n<ul class=\"findings\">"
                   + "".join(f"<li>{_e(f)}</li>" for f in findings) + "</ul>\n")
    else:
        out.append("<p>No check failed.</p>\n")
    merges = list(getattr(validation, "merge_suggestions", []) or [])
    if merges:
        out.append("<h3>Segments to consider merging</h3>\n<ul class=\"findings\">"
                   + "".join(f"<li>{_e(a)} and {_e(b)} (separation {_figure(s)})</li>" for a, b, s in merges)
                   + "</ul>\n")
    return "".join(out)


def _verdict(value):
    if value is None:
        return "<span class=\"unchecked\">not checked</span>"
    kind = {"pass": "pass", "fail": "fail", "highly stable": "pass", "valid": "pass",
            "doubtful": "fail", "not trustworthy": "fail"}.get(value, "unchecked")
    return f"<span class=\"{kind}\">{_e(value)}</span>"


def _sweep(sweep, plots):
    suggested = sweep.suggested_k
    message = (getattr(sweep, "elbow", None) or {}).get("message") or ""
    headline = f"Suggested k = {suggested}." if suggested is not None else "No clear elbow."
    out = [f"<p><strong>{_e(headline)}</strong> {_e(message)}</p>\n",
           _image(plots.plot_sweep(sweep), "Inertia, Calinski-Harabasz, Davies-Bouldin and silhouette against k")]
    summary = sweep.summary
    names = summary.column_names
    columns = {c: summary.column(c).to_pylist() for c in names}
    rows = ["<tr>" + "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in names) + "</tr>"]
    for i in range(summary.num_rows):
        chosen = suggested is not None and columns.get("k", [None] * summary.num_rows)[i] == suggested
        rows.append(f"<tr{_CHOSEN if chosen else ''}>"
                    + "".join(f"<td>{_number(c, columns[c][i])}</td>" for c in names) + "</tr>")
    out.append(_table(rows))
    out.append("<p class=\"note\">Medians over the seeds. The silhouette is exact on a sample stratified "
               "by segment, with a bootstrap 95% interval; the simplified silhouette, inertia, "
               "Calinski-Harabasz and Davies-Bouldin use every row. Stability is the mean adjusted Rand "
               "index between the seeds' labelings.</p>\n")
    return "".join(out)


def _footer(profile):
    quantiles = getattr(profile, "quantiles", "") or ""
    return ("<footer>\n<p>Standardized difference: (mean in the segment - mean of all customers) / "
            "standard deviation of all customers. Lift: a category's share in the segment over its share "
            f"in the base. {_e(quantiles)}</p>\n<p>Made by segmint from aggregates only: no customer row "
            "is in this file.</p>\n</footer>\n")


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
        return _e(value)
    if column in _COUNT and float(value).is_integer():
        return f"{int(value):,}"
    if column in _PERCENT:
        return _percent(value)
    return _figure(value)


def _percent(value):
    if value != value:
        return "&ndash;"
    return f"{100 * value:.1f}%" if abs(value) >= 0.001 or value == 0 else f"{100 * value:.2g}%"


def _figure(value):
    """A number in 4 significant digits, with thousands separators when large."""
    value = float(value)
    if not math.isfinite(value):
        return "&ndash;" if value != value else ("&infin;" if value > 0 else "-&infin;")
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.4g}"
