"""Where a decreasing curve (inertia against k) bends: Kneedle and the largest distance to the chord.

Both methods look at the curve normalised to the unit square (``x`` from the smallest to the
largest k, ``y`` from the lowest to the highest value), so units do not matter:

- **Kneedle** (Satopaa, Albrecht, Irwin and Raghavan, 2011, offline, sensitivity ``S = 1``):
  the curve is flipped into a concave increasing one, ``y' = 1 - y``, and the difference curve
  ``D = y' - x`` is taken; every local maximum of ``D`` gets the threshold
  ``D_max - S * mean(diff(x))``; it is a knee when ``D`` falls below that threshold after it
  and before ``D`` rises to another local maximum. Of several knees, the one with the largest
  ``D`` is kept (ties: the smaller k). No knee is declared when none qualifies: on a nearly
  straight curve ``D`` stays close to 0 and never falls that far.
- **Chord**: the point farthest from the straight line through the first and last points.
  It is significant when that distance is at least :data:`MIN_CHORD_DISTANCE` (in the unit
  square: 0.05, i.e. 5% of the diagonal's scale); below, the curve is nearly straight.

Both answer None, "no clear elbow", for fewer than three points, a curve that does not fall
(the last value not below the first) or one that falls unevenly: when its rises add up to more
than :data:`MAX_RISE` (20%) of its total fall, the bend may be noise (inertia of k-means fits
falls with k; with the median over seeds a rise means the fits disagree).

A normalised curve always bends somewhere: the inertia of data without any clusters (one
Gaussian, uniform noise) falls like ``k^(-2/d)``, which in the unit square looks like an elbow
(at d = 2, Kneedle finds one near k = 4). So :func:`find_elbow` takes the inertia of the same
k on a structureless reference of the same spread (``reference=``, the gap statistic's idea,
see :func:`segmint.explain.sweep.reference_inertia`) and keeps an elbow only when the data's
inertia falls from the first k to the elbow at least :data:`MIN_EXCESS` times more than the
reference's does: clusters make the inertia drop fast until their number is reached, which
structureless data of any shape cannot. Of the two ways to judge a bend, a reference sample
was chosen over fitting the power law ``k^(-2/d)`` because ``d`` is not known: correlated or
unequally scaled features behave like fewer dimensions and fall faster than their count says,
while a sample drawn along the data's principal axes with the data's variances shares that
shape (and the power law holds only for large k).
"""
import numpy as np

MIN_CHORD_DISTANCE = 0.05
MIN_EXCESS = 1.5
MAX_RISE = 0.2
SENSITIVITY = 1.0


def _normalised(ks, values):
    """``(x, y)`` in the unit square, or a reason why the curve has no clear elbow."""
    x = np.asarray(ks, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.size < 3:
        return None, f"{x.size} value{'s' if x.size != 1 else ''} of k: an elbow needs at least three"
    if not np.all(np.isfinite(y)):
        return None, "the curve has missing values"
    fall = y[0] - y[-1]
    if not fall > 0:
        return None, "the curve does not fall from the first k to the last"
    rises = float(np.sum(np.clip(np.diff(y), 0, None)))
    if rises > MAX_RISE * fall:
        return None, (f"the curve is too uneven (its rises are {rises / fall:.0%} of its fall, "
                      f"more than {MAX_RISE:.0%})")
    x = (x - x[0]) / (x[-1] - x[0])
    y = (y - y.min()) / (y.max() - y.min())
    return (x, y), None


def kneedle(ks, values):
    """The knee of a decreasing convex curve by Kneedle, or None.

    Parameters
    ----------
    ks : sequence of int, increasing
    values : sequence of float, one per k (e.g. the median inertia)

    Returns
    -------
    int or None
        The k of the knee; None when the curve has no clear knee (see the module docstring).
    """
    curve, _ = _normalised(ks, values)
    if curve is None:
        return None
    x, y = curve
    diff = (1.0 - y) - x
    threshold_step = SENSITIVITY * float(np.mean(np.diff(x)))
    maxima = [i for i in range(1, len(diff) - 1) if diff[i] >= diff[i - 1] and diff[i] > diff[i + 1]]
    knees = []
    for n, i in enumerate(maxima):
        threshold = diff[i] - threshold_step
        stop = maxima[n + 1] if n + 1 < len(maxima) else len(diff)
        # a knee when the difference falls below the threshold before the next local maximum
        if np.any(diff[i + 1:stop] < threshold):
            knees.append(i)
    if not knees:
        return None
    best = max(knees, key=lambda i: (diff[i], -i))
    return int(ks[best])


def chord(ks, values):
    """The k farthest from the chord between the first and last points, and that distance.

    Parameters
    ----------
    ks : sequence of int, increasing
    values : sequence of float

    Returns
    -------
    (int or None, float)
        The k (None when the curve has no clear elbow or the distance is below
        :data:`MIN_CHORD_DISTANCE`) and the largest distance in the unit square (NaN when not
        computed).
    """
    curve, _ = _normalised(ks, values)
    if curve is None:
        return None, float("nan")
    x, y = curve
    # the chord runs from (0, y0) to (1, y_last): in the unit square of a falling curve, (0, 1)
    # to (1, 0) unless the extremes are inside; the distance of each point to that line
    x0, y0, x1, y1 = x[0], y[0], x[-1], y[-1]
    dist = np.abs((y1 - y0) * x - (x1 - x0) * y + x1 * y0 - y1 * x0) / np.hypot(x1 - x0, y1 - y0)
    i = int(np.argmax(dist))  # ties: the smaller k
    far = float(dist[i])
    return (int(ks[i]) if far >= MIN_CHORD_DISTANCE else None), far


def find_elbow(ks, values, reference=None):
    """Both methods and the suggestion, with the words that explain it.

    The suggestion is Kneedle's k when the chord agrees within 1, else the chord's k when it
    is significant, else None; and None when ``reference`` is given and the curve falls from
    the first k to that k less than :data:`MIN_EXCESS` times as much (as a ratio) as the
    reference does (see the module docstring).

    Parameters
    ----------
    ks : sequence of int, increasing
    values : sequence of float
    reference : sequence of float, optional
        The same curve on structureless data of the same spread (one value per k).

    Returns
    -------
    (int or None, dict)
        The suggested k and ``{"kneedle": k or None, "chord": k or None, "message": str}``.
    """
    k, elbow = _find_elbow([int(k) for k in ks], values)
    if k is None or reference is None:
        return k, elbow
    ks = [int(k) for k in ks]
    i = ks.index(k)
    ref = np.asarray(reference, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if ref.shape != y.shape or not np.all(np.isfinite(ref)) or not np.all(ref > 0):
        return k, elbow  # no usable reference: judged on the curve alone
    fall = y[0] / y[i] if y[i] > 0 else np.inf
    ref_fall = ref[0] / ref[i]
    if fall >= MIN_EXCESS * ref_fall:
        return k, elbow
    message = (f"no clear elbow: the bend at k = {k} is what data without clusters shows; the inertia falls "
               f"{fall:.2f}x from k = {ks[0]} to k = {k}, structureless data of the same spread {ref_fall:.2f}x "
               f"(an elbow needs {MIN_EXCESS:g} times that)")
    return None, dict(elbow, message=message)


def _find_elbow(ks, values):
    """:func:`find_elbow` on the curve alone."""
    _, reason = _normalised(ks, values)
    if reason is not None:
        return None, {"kneedle": None, "chord": None, "message": f"no clear elbow: {reason}"}
    knee = kneedle(ks, values)
    far_k, far = chord(ks, values)
    if knee is not None and far_k is not None and abs(knee - far_k) <= 1:
        message = f"k = {knee}: Kneedle and the largest distance to the chord (k = {far_k}) agree"
        return knee, {"kneedle": knee, "chord": far_k, "message": message}
    if far_k is not None:
        why = ("Kneedle finds no knee" if knee is None else f"Kneedle says k = {knee}, which differs by more "
               "than 1")
        message = f"k = {far_k}: the point farthest from the chord ({far:.2f}); {why}"
        return far_k, {"kneedle": knee, "chord": far_k, "message": message}
    message = (f"no clear elbow: the curve is nearly straight (largest distance to the chord {far:.3f} < "
               f"{MIN_CHORD_DISTANCE})")
    if knee is not None:
        message += f"; Kneedle's k = {knee} is not confirmed"
    return None, {"kneedle": knee, "chord": None, "message": message}
