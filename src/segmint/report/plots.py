"""Plots of a profile, a k sweep and a drift: segment sizes, standardized differences, sweep
curves, the migration heatmap.

matplotlib is an optional extra (``pip install "segmint[plot]"``), imported inside the functions
that draw, never by ``import segmint``. Figures are built as ``matplotlib.figure.Figure`` on an
Agg canvas, not through pyplot: pyplot keeps every figure in a global registry until it is
closed (the usual leak of plotting in a loop) and would switch the user's interactive backend,
whereas a bare Figure is freed like any object and renders without a display. A Jupyter
notebook still shows the returned Figure.

Every figure has a size fixed by what it shows (the number of segments, features or k values),
capped, so its PNG stays bounded whatever the input: see :data:`MAX_INCHES`.
"""
import math

from ..errors import MissingExtraError, ParameterError
from ..io.writers import atomic_file

DPI = 100
# the largest side of any figure, in inches (at DPI: pixels / 100): bounds the PNG's size
MAX_INCHES = 24.0
LABEL_CHARS = 28  # longer segment and feature names end in an ellipsis on the axes
MIN_FONT = 4.0  # points: the smallest label; past it, labels are thinned out
CLIP = 2.0  # the heatmap's colour scale: standardized differences beyond +-2 look alike
ANNOTATE_CELLS = 400  # values printed in the heatmap's cells up to this many cells
# colours readable by the colour-blind (Okabe-Ito)
BLUE, ORANGE, GREY = "#0072B2", "#E69F00", "#999999"
NO_VALUE = "#dddddd"  # the heatmap's cells without a value (all null, or a constant column)
# the migration heatmap: at most this many segments drawn on each axis (the largest; the others
# pooled into one row and column), and shares printed in its cells up to this many segments
MAX_MIGRATION_SEGMENTS = 30
ANNOTATE_SEGMENTS = 12


def _matplotlib():
    """``(Figure, FigureCanvasAgg, colormaps)``, or a one-line error naming the extra."""
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError('plotting needs matplotlib: pip install "segmint[plot]" '
                                f"(import failed: {exc})") from None
    return Figure, FigureCanvasAgg, colormaps


def _figure(width, height):
    Figure, FigureCanvasAgg, _ = _matplotlib()
    # constrained layout makes room for the tick labels, titles and colour bar at any size
    # without changing the figure's size (bbox_inches="tight" would: the pixel size is promised)
    # whole pixels, so the PNG is exactly figsize x dpi (a fraction would be rounded by the renderer)
    width, height = (round(min(v, MAX_INCHES) * DPI) / DPI for v in (width, height))
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself: savefig and print_png need a canvas
    return fig


def shorten(text, limit=LABEL_CHARS):
    """``text`` on one line (runs of white space as one space, other control characters as
    U+FFFD), cut to ``limit`` characters, ending in an ellipsis when it was longer."""
    import unicodedata

    text = " ".join(str(text).split())
    text = "".join("\ufffd" if unicodedata.category(c).startswith("C") else c for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _font(n, inches, base=10.0):
    """A font size (points) for ``n`` labels sharing ``inches`` of an axis: ``base`` when they
    have room, smaller when the figure reached its cap (at least :data:`MIN_FONT` points)."""
    return max(MIN_FONT, min(base, 72.0 * 0.7 * inches / max(n, 1)))


def _name_ticks(ax, axis, names, inches, base=10.0, **style):
    """Label ``axis`` with the (shortened) names; when even :data:`MIN_FONT` points cannot fit
    them all (hundreds of segments), every second, third, ... name, so none overlap."""
    font = _font(len(names), inches, base)
    step = max(1, math.ceil(len(names) * MIN_FONT / (72.0 * 0.7 * max(inches, 0.1))))
    ticks = list(range(0, len(names), step))
    labels = [shorten(names[i]) for i in ticks]
    # the names are the user's: parse_math=False keeps "$" and "\\" as text (mathtext could raise)
    setter = ax.set_yticks if axis == "y" else ax.set_xticks
    setter(ticks, labels, fontsize=font, parse_math=False, **style)
    return font


def plot_sizes(profile):
    """Horizontal bars: each segment's share of customers, and of revenue when profiled.

    Parameters
    ----------
    profile : segmint.Profile

    Returns
    -------
    matplotlib.figure.Figure
        Width 8 in, height growing with the number of segments (capped at :data:`MAX_INCHES`),
        :data:`DPI` dots per inch.
    """
    names, shares, revenue = _sizes(profile)
    n = len(names)
    fig = _figure(8.0, 1.4 + 0.32 * n * (1.6 if revenue is not None else 1.0))
    ax = fig.add_subplot()
    rows = list(range(n))
    font = _name_ticks(ax, "y", names, fig.get_size_inches()[1] - 1.2)
    values = font > 5.5  # the value beside each bar, when there is room for it
    if revenue is None:
        ax.barh(rows, shares, color=BLUE, label="customers")
        if values:
            _bar_labels(ax, rows, shares, font)
    else:
        h = 0.4
        ax.barh([r - h / 2 for r in rows], shares, height=h, color=BLUE, label="customers")
        ax.barh([r + h / 2 for r in rows], revenue, height=h, color=ORANGE, label="revenue")
        if values:
            _bar_labels(ax, [r - h / 2 for r in rows], shares, font * 0.85)
            _bar_labels(ax, [r + h / 2 for r in rows], revenue, font * 0.85)
        # above the bars, right: never over a bar, whatever their lengths
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=9, frameon=False)
    ax.set_ylim(n - 0.5, -0.5)  # first segment on top, as in the tables
    values = [v for v in list(shares) + list(revenue if revenue is not None else []) if v == v]
    top, bottom = max(values + [0.0]), min(values + [0.0])  # refunds: a negative revenue share
    span = max(top - bottom, 1e-9)
    # room for the value labels on each side that has bars (right of positive, left of negative)
    ax.set_xlim(bottom - (0.12 * span if bottom < 0 else 0.0), top + 0.18 * span)
    if bottom < 0:
        ax.axvline(0, color="#333333", linewidth=0.8)
    ax.xaxis.set_major_formatter(_percent())
    ax.set_xlabel("share", fontsize=9)
    ax.set_title("Segment sizes" + (": customers and revenue" if revenue is not None else ""),
                 fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _remember_inputs(fig, profile)


def _remember_inputs(fig, result):
    """Keep on the figure the files its result was read from: :func:`save_png` refuses them."""
    fig.segmint_inputs = tuple(str(p) for p in (getattr(result, "inputs", None) or ()))
    return fig


def _sizes(profile):
    """Segment names, customer shares and revenue shares (None when the profile has no revenue)."""
    summary = profile.summary
    segments = summary.column("segment").to_pylist()
    keep = [i for i, s in enumerate(segments) if s is not None]  # the last row is the whole base
    share = summary.column("share").to_pylist()
    shares = [_value(share[i]) for i in keep]
    revenue = None
    if "revenue_share" in summary.column_names:
        revenue_share = summary.column("revenue_share").to_pylist()
        values = [revenue_share[i] for i in keep]
        if any(v is not None for v in values):
            revenue = [_value(v) for v in values]
    return [segments[i] for i in keep], shares, revenue


def _value(v):
    return float("nan") if v is None else float(v)


def _bar_labels(ax, rows, values, font):
    for r, v in zip(rows, values):
        if v == v:  # beyond the bar's end: right of a positive bar, left of a negative one
            text = f" {v:.1%}" if v >= 0 else f"{v:.1%} "
            ax.text(v, r, text, va="center", ha="left" if v >= 0 else "right", fontsize=font, color="#333333")


def _percent():
    from matplotlib.ticker import PercentFormatter
    return PercentFormatter(xmax=1.0, decimals=0)


def _compact(value, _position=None):
    """Axis numbers as 1.2M, 350k, 0.25: an offset like "1e5" above an axis collides with its title."""
    size = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def plot_differences(profile):
    """Heatmap of the standardized differences, segments x features.

    Each cell is ``(mean in the segment - mean of the base) / std of the base``; the diverging
    colour scale is centred at 0 and clipped at +-2 (beyond it, cells look alike). Values are
    printed in the cells when there are at most :data:`ANNOTATE_CELLS` of them; a feature without
    a value (all null, or a constant column) is grey, which the legend says.

    Parameters
    ----------
    profile : segmint.Profile

    Returns
    -------
    matplotlib.figure.Figure
        Size growing with the segments (rows) and features (columns), capped at
        :data:`MAX_INCHES`; :data:`DPI` dots per inch.
    """
    import numpy as np

    diff = np.asarray(profile.std_diff, dtype=np.float64)
    names, features = list(profile.segments), list(profile.features)
    if diff.ndim != 2 or diff.shape != (len(names), len(features)):
        raise ParameterError(f"profile.std_diff has shape {diff.shape}; expected "
                             f"({len(names)} segments, {len(features)} features)")
    n_seg, n_feat = diff.shape
    label_w = 0.075 * max([len(shorten(s)) for s in names] or [1]) + 0.4
    # at least 7.5 in wide: the title and the colour bar's label need it with few features
    fig = _figure(max(7.5, label_w + 1.9 + 0.5 * max(n_feat, 1)), 1.9 + 0.36 * max(n_seg, 1)
                  + 0.06 * max([len(shorten(f)) for f in features] or [1]))
    ax = fig.add_subplot()
    _, _, colormaps = _matplotlib()
    cmap = colormaps["RdBu_r"].with_extremes(bad=NO_VALUE)
    masked = np.ma.masked_invalid(diff)
    if n_seg and n_feat:
        image = ax.imshow(np.clip(masked, -CLIP, CLIP), cmap=cmap, vmin=-CLIP, vmax=CLIP,
                          aspect="auto", interpolation="nearest")
        bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.01, shrink=0.9, aspect=30)
        bar.set_label("(mean in segment - mean of all) / std of all", fontsize=8)
        bar.ax.tick_params(labelsize=8)
        bar.set_ticks([-2, -1, 0, 1, 2], labels=["\u2264-2", "-1", "0", "1", "\u22652"])
    else:
        ax.text(0.5, 0.5, "no numeric feature to compare", ha="center", va="center",
                transform=ax.transAxes, fontsize=10, color=GREY)
    width, height = fig.get_size_inches()
    _name_ticks(ax, "y", names, height - 2.5)
    _name_ticks(ax, "x", features, width - 4.0, rotation=45 if n_feat > 4 else 0,
                ha="right" if n_feat > 4 else "center", rotation_mode="anchor")
    ax.tick_params(length=0)
    if 0 < diff.size <= ANNOTATE_CELLS:
        font = min(_font(n_seg, height - 2.5, 8.5), _font(n_feat, (width - 4.0) / 1.6, 8.5))
        for i in range(n_seg):
            for j in range(n_feat):
                v = diff[i, j]
                if v == v:
                    # white text on the dark ends of the scale, dark text on the pale middle
                    ax.text(j, i, cell_text(v), ha="center", va="center", fontsize=font,
                            color="white" if abs(v) > 1.2 else "#222222")
    if n_seg and n_feat and not np.isfinite(diff).all():
        from matplotlib.patches import Patch
        # above the cells, right: a grey cell is a feature without a value, not a zero
        ax.legend(handles=[Patch(facecolor=NO_VALUE, edgecolor="#bbbbbb", label="grey: no value")],
                  loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title("Standardized differences from all customers", fontsize=11, loc="left")
    return _remember_inputs(fig, profile)


def migration_heatmap(migration):
    """Heatmap of a migration matrix as row shares: previous segment (rows) x current segment.

    Each row is one previous segment (and the last, ``(new)``, the customers only in the
    current snapshot); each column one current segment (and the last, ``(departed)``, the
    customers only in the previous one). A cell is the share of its row's customers that went
    to its column, so every row with customers adds up to 1; a row without customers (a
    segment absent from the previous snapshot, or no new customers) is grey. The diagonal,
    "stayed in their segment", is outlined. The colour scale is sequential from 0 to 100%.
    Shares are printed in the cells when at most :data:`ANNOTATE_SEGMENTS` segments are drawn.

    With more than :data:`MAX_MIGRATION_SEGMENTS` segments, the largest (previous plus current
    customers; ties: the migration's order) are drawn in the migration's order and the others
    are pooled into one ``(N other segments)`` row and column, so rows still add up to 1; the
    title says so (and :func:`migration_view` gives the same numbers).

    Parameters
    ----------
    migration : segmint.monitor.migration.Migration
        What :func:`segmint.monitor.migration.migration` returned (or ``Drift.migration``).

    Returns
    -------
    matplotlib.figure.Figure
        Size growing with the segments drawn, capped at :data:`MAX_INCHES`; :data:`DPI` dots
        per inch.
    """
    import numpy as np

    counts, from_names, to_names, pooled = migration_view(migration)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)
    n_rows, n_cols = shares.shape
    label_w = 0.075 * max(len(shorten(s)) for s in from_names) + 0.6
    label_h = 0.065 * max(len(shorten(s)) for s in to_names) + 0.6
    fig = _figure(max(7.5, label_w + 1.6 + 0.5 * n_cols), max(4.0, label_h + 1.4 + 0.42 * n_rows))
    ax = fig.add_subplot()
    _, _, colormaps = _matplotlib()
    cmap = colormaps["Blues"].with_extremes(bad=NO_VALUE)
    image = ax.imshow(np.ma.masked_invalid(shares), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto",
                      interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.01, shrink=0.9, aspect=30)
    bar.set_label("share of the previous segment's customers", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    bar.ax.yaxis.set_major_formatter(_percent())
    width, height = fig.get_size_inches()
    _name_ticks(ax, "y", from_names, height - label_h - 1.0)
    _name_ticks(ax, "x", to_names, width - label_w - 1.4, rotation=45 if n_cols > 4 else 0,
                ha="right" if n_cols > 4 else "center", rotation_mode="anchor")
    ax.tick_params(length=0)
    ax.set_ylabel("previous segment", fontsize=9)
    ax.set_xlabel("current segment", fontsize=9)
    # the diagonal: "stayed in their segment" (both axes list the same segments in one order)
    from matplotlib.patches import Rectangle
    for i in range(n_rows - (2 if pooled else 1)):  # not the pooled cell: moves among the others
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#E69F00", linewidth=1.2))
    if n_rows - 1 <= ANNOTATE_SEGMENTS:
        font = min(_font(n_rows, height - label_h - 1.0, 8.5), _font(n_cols, (width - label_w - 1.4) / 1.6, 8.5))
        for i in range(n_rows):
            for j in range(n_cols):
                if counts[i, j]:
                    v = shares[i, j]
                    # white on the dark end of the scale, dark on the pale one
                    ax.text(j, i, share_text(v), ha="center", va="center", fontsize=font,
                            color="white" if v > 0.55 else "#222222")
    title = "Who moved where"  # short: a left-aligned title longer than the cells would be clipped
    notes = []
    if pooled:
        notes.append(f"the {n_rows - 2:,} largest segments drawn; {pooled:,} smaller ones pooled")
    if np.isnan(shares).any():  # said in words: a legend box would collide with the title
        notes.append("grey: no customers in that row")
    if notes:
        title += "\n" + "; ".join(notes)
    ax.set_title(title, fontsize=11 if not notes else 10, loc="left")
    return _remember_inputs(fig, migration)


def migration_view(migration, limit=MAX_MIGRATION_SEGMENTS):
    """The counts :func:`migration_heatmap` draws, the largest segments and the rest pooled.

    Parameters
    ----------
    migration : segmint.monitor.migration.Migration
    limit : int
        Segments kept on each axis.

    Returns
    -------
    counts : numpy.ndarray of int64, shape (rows, rows)
        ``migration.matrix`` when it has at most ``limit`` segments; else the rows and
        columns of the ``limit`` largest segments (previous plus current customers: row sum
        plus column sum; ties: the migration's order) in the migration's order, then one row
        and column summing the others, then ``(new)`` / ``(departed)``. Every row's total is
        its customers' total (pooling adds rows and columns, never drops customers).
    from_names, to_names : list of str
        The labels of the rows and columns; the pooled ones ``"(N other segments)"``.
    pooled : int
        Segments pooled (0 when none).
    """
    import numpy as np

    matrix = np.asarray(migration.matrix, dtype=np.int64)
    from_names, to_names = list(migration.from_names), list(migration.to_names)
    n = matrix.shape[0] - 1  # segments: both axes list the same ones, then (new) / (departed)
    if n <= limit:
        return matrix, from_names, to_names, 0
    size = matrix[:-1].sum(axis=1) + matrix[:, :-1].sum(axis=0)
    keep = np.sort(np.argsort(-size, kind="stable")[:limit])
    rest = np.setdiff1d(np.arange(n), keep)
    groups = [[int(i)] for i in keep] + [rest.tolist(), [n]]
    counts = np.array([[matrix[np.ix_(rows, cols)].sum() for cols in groups] for rows in groups], dtype=np.int64)
    other = f"({rest.size:,} other segments)"
    return (counts, [from_names[i] for i in keep] + [other, from_names[-1]],
            [to_names[i] for i in keep] + [other, to_names[-1]], int(rest.size))


def share_text(value):
    """A migration cell's share: "38%", "<1%" for a share below 0.5%, "100%"."""
    return "<1%" if value < 0.005 else f"{value:.0%}"


def cell_text(value):
    """A heatmap cell's number: one decimal with its sign, and "0.0" rather than "-0.0"."""
    return "0.0" if abs(value) < 0.05 else f"{value:+.1f}"


def plot_sweep(sweep):
    """Inertia, Calinski-Harabasz, Davies-Bouldin and silhouette against k, in small multiples.

    Lines join the medians over the seeds (``sweep.summary``); dots are the seeds
    (``sweep.table``); the silhouette carries its bootstrap 95% interval as a band. The suggested
    k is marked in every panel, or the title says "no clear elbow".

    Parameters
    ----------
    sweep : segmint.Sweep

    Returns
    -------
    matplotlib.figure.Figure
        11 x 7.5 in at :data:`DPI` dots per inch.
    """
    summary = sweep.summary
    ks = [int(k) for k in summary.column("k").to_pylist()]
    fig = _figure(11.0, 7.5)
    panels = [("inertia", "inertia (lower is tighter)", "lower"),
              ("calinski_harabasz", "Calinski-Harabasz (higher is better)", "higher"),
              ("davies_bouldin", "Davies-Bouldin (lower is better)", "lower"),
              ("silhouette", "silhouette{}, with 95% interval (higher is better)", "higher")]
    from .html import silhouette_sampled
    sampled = ", sampled" if silhouette_sampled(sweep) else ", all rows"
    panels[3] = panels[3][0], panels[3][1].format(sampled), panels[3][2]
    axes = fig.subplots(2, 2, sharex=True)
    suggested = sweep.suggested_k
    seeds = sweep.table if hasattr(sweep, "table") else None
    for ax, (column, label, _) in zip(axes.flat, panels):
        if column not in summary.column_names:
            ax.set_visible(False)
            continue
        values = [_value(v) for v in summary.column(column).to_pylist()]
        if column == "silhouette" and {"silhouette_low", "silhouette_high"} <= set(summary.column_names):
            low = [_value(v) for v in summary.column("silhouette_low").to_pylist()]
            high = [_value(v) for v in summary.column("silhouette_high").to_pylist()]
            ax.fill_between(ks, low, high, color=BLUE, alpha=0.18, linewidth=0, label="95% interval")
        if seeds is not None and column in seeds.column_names and seeds.num_rows > len(ks):
            ax.plot(seeds.column("k").to_pylist(), [_value(v) for v in seeds.column(column).to_pylist()],
                    "o", color=GREY, markersize=2.5, alpha=0.7, label="seeds")
        ax.plot(ks, values, "-o", color=BLUE, markersize=4, linewidth=1.6, label="median over seeds")
        if suggested is not None:
            ax.axvline(suggested, color=ORANGE, linestyle="--", linewidth=1.4)
        ax.set_title(label, fontsize=10, loc="left")
        ax.tick_params(labelsize=8)
        ax.grid(True, color="#eeeeee", linewidth=0.8)
        ax.spines[["top", "right"]].set_visible(False)
        ax.yaxis.set_major_formatter(_compact)
    for ax in axes[1]:
        ax.set_xlabel("k (number of segments)", fontsize=9)
        if ks:
            step = max(1, math.ceil(len(ks) / 16))
            ax.set_xticks(ks[::step])
    if suggested is not None:
        headline = f"Choosing k: suggested k = {suggested} (dashed line)"
    else:
        headline = "Choosing k: no clear elbow"
    message = (getattr(sweep, "elbow", None) or {}).get("message")
    if message:
        headline += "\n" + shorten(message, 140)
    fig.suptitle(headline, fontsize=11.5, x=0.01, ha="left", parse_math=False)
    return _remember_inputs(fig, sweep)


def png_bytes(fig):
    """The figure as PNG bytes, at its own size and dpi (``figsize x dpi`` pixels)."""
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # a name in a script the font lacks is drawn as boxes, one warning per glyph; the
        # report's tables show it in the browser's fonts
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.savefig(buffer, format="png", dpi=fig.dpi)
    return buffer.getvalue()


def save_png(fig, path, *, inputs=()):
    """Write the figure to ``path`` as a PNG, atomically (never over one of ``inputs``, nor over
    a file the plotted profile or sweep was read from).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        What :func:`plot_sizes`, :func:`plot_differences`, :func:`plot_sweep` or
        :func:`migration_heatmap` returned.
    path : str or os.PathLike
    inputs : iterable of paths, optional
        Files the job read: the output may not be one of them.

    Returns
    -------
    path
    """
    inputs = list(inputs) + list(getattr(fig, "segmint_inputs", ()))
    data = png_bytes(fig)
    with atomic_file(path, inputs=inputs) as f:
        f.write(data)
    return path
