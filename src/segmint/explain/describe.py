"""The words of a profile: each segment's traits, ranked, and its one-line description.

A *trait* is what sets a segment apart from the whole base:

- a numeric feature whose standardized difference ``(mean_seg - mean_all) / std_all`` is at least
  :data:`MIN_STD_DIFF` in size (strength: ``|std_diff|``);
- a category whose share in the segment is at least :data:`MIN_CATEGORY_SHARE` and whose lift over
  the base is at least :data:`MIN_LIFT` (strength: ``ln(lift)``, so a lift of e counts as one
  standard deviation).

Traits are ranked by strength; ties go to the earlier feature (features in their order, then the
category columns, then categories by share). The same profile always gives the same words: no
randomness, no dictionary order, no locale.
"""
import math
import unicodedata

MIN_STD_DIFF = 0.25
MIN_LIFT = 1.5
MIN_CATEGORY_SHARE = 0.10
N_TRAITS = 3

# Well-known feature names and their words: (word when higher than the base, when lower, unit).
# A unit only where the name says it (``_days``): a bare ``recency``, ``tenure`` or ``frequency``
# may count days, weeks, months or orders per year, so their numbers go without a unit.
KNOWN_WORDS = {
    "recency_days": ("lapsed", "recent", "days"),
    "recency": ("lapsed", "recent", ""),
    "frequency": ("frequent", "infrequent", ""),
    "monetary": ("high spend", "low spend", ""),
    "avg_order_value": ("large baskets", "small baskets", ""),
    "tenure_days": ("long-standing", "new", "days a customer"),
    "tenure": ("long-standing", "new", ""),
}

# From this magnitude on, numbers read in scientific notation (3 significant digits)
SCIENTIFIC_FROM = 1e15


def format_number(x):
    """``x`` in plain words: thousands separators, 3 significant digits, no trailing zeros;
    scientific notation from 1e15 on; "inf"/"-inf" for infinities, "n/a" for no value.

    >>> format_number(1298.7), format_number(12.345), format_number(0.04567), format_number(3e20)
    ('1,300', '12.3', '0.0457', '3.00e+20')
    """
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if abs(x) >= SCIENTIFIC_FROM:
        return f"{x:.2e}"
    digits = 3 - 1 - math.floor(math.log10(abs(x)))
    rounded = round(x, digits)
    if digits <= 0:
        return f"{int(rounded):,}"
    text = f"{rounded:,.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_share(x):
    """A share as a percentage: one decimal below 20% ("14.6%"), whole percents from 20% on.

    The choice is made on the rounded figure, so shares that print alike read alike:

    >>> format_share(0.0996), format_share(0.1), format_share(0.146), format_share(0.1996)
    ('10.0%', '10.0%', '14.6%', '20%')
    """
    if x is None or not math.isfinite(x):
        return "n/a"
    text = f"{x:.1%}"
    return text if abs(float(text[:-1])) < 20 else f"{x:.0%}"


def numeric_trait_text(feature, mean_seg, mean_all, std_diff, boolean=False):
    """``"high monetary (1,300 vs 180)"`` or a known name's own words (``"recent (12 days vs 120)"``
    for ``recency_days``, ``"frequent (12 vs 3)"`` for ``frequency``: units only for ``_days`` names);
    a boolean feature's mean is a share: ``"email opt in 99% (vs 67%)"``."""
    if boolean:
        return f"{_words(feature)} {format_share(mean_seg)} (vs {format_share(mean_all)})"
    high, low, unit = KNOWN_WORDS.get(feature, (f"high {_words(feature)}", f"low {_words(feature)}", ""))
    word = high if std_diff > 0 else low
    unit = f" {unit}" if unit else ""
    return f"{word} ({format_number(mean_seg)}{unit} vs {format_number(mean_all)})"


def category_trait_text(column, category, share_seg, share_all):
    """``"north region (34% vs 12%)"``."""
    return f"{_one_line(category)} {_words(column)} ({format_share(share_seg)} vs {format_share(share_all)})"


def _words(name):
    return _one_line(str(name).replace("_", " ")).strip()


def _one_line(text):
    """``text`` on one line: control characters (newline, tab, escape) and line separators become
    spaces, so a segment or category name cannot break a description, a terminal or a Markdown
    table."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def rank_traits(features, std_diff, means_seg, means_all, categories, top=None, booleans=()):
    """The traits of one segment, strongest first.

    Parameters
    ----------
    features : list of str
    std_diff, means_seg, means_all : (n_features,) float64
    categories : list of (column, category, share_seg, share_all, lift), in column order and,
        within a column, by share (highest first)
    top : int, optional
        Keep this many.
    booleans : collection of str
        The features that are booleans (their means are shares, and read as such).

    Returns
    -------
    list of (feature, category or None, std_diff or lift, text)
    """
    found = []  # (-strength, position, trait)
    for j, name in enumerate(features):
        sd = float(std_diff[j])
        if math.isfinite(sd) and abs(sd) >= MIN_STD_DIFF:
            text = numeric_trait_text(name, float(means_seg[j]), float(means_all[j]), sd, name in booleans)
            found.append((-abs(sd), len(found), (name, None, sd, text)))
    for column, category, share_seg, share_all, lift in categories:
        if math.isfinite(lift) and lift >= MIN_LIFT and share_seg >= MIN_CATEGORY_SHARE:
            text = category_trait_text(column, category, share_seg, share_all)
            found.append((-math.log(lift), len(found), (column, category, float(lift), text)))
    found.sort(key=lambda t: (t[0], t[1]))
    traits = [t[2] for t in found]
    return traits if top is None else traits[:top]


def describe(traits, share, revenue_share=None, count=None):
    """The one-line description of a segment from its ranked traits.

    ``"recent (12 days vs 120), frequent (12 vs 3), high spend (1,300 vs 180); 14.6% of
    customers, 38% of revenue"``: the first :data:`N_TRAITS` traits, then the sizes.

    Parameters
    ----------
    traits : list from :func:`rank_traits`
    share : float, the segment's share of the customers
    revenue_share : float, optional
    count : int, optional; a segment of 0 customers reads "no customers"
    """
    if count == 0:
        return "no customers"
    words = ", ".join(t[3] for t in traits[:N_TRAITS]) or "close to the average customer"
    sizes = f"{format_share(share)} of customers"
    if revenue_share is not None and math.isfinite(revenue_share):
        sizes += f", {format_share(revenue_share)} of revenue"
    return f"{words}; {sizes}"
