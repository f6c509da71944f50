"""kernels.hashing.labels_digest against a slow Python twin (exact uint64 arithmetic)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from segmint.kernels.hashing import labels_digest

M64 = (1 << 64) - 1


def _mix(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _slow(labels):
    a, b = [0xCBF29CE484222325] * 4, [0] * 4
    for i, v in enumerate(labels.tolist()):
        v &= 0xFFFFFFFF
        a[i % 4] = ((a[i % 4] ^ v) * 0x100000001B3) & M64
        b[i % 4] = (b[i % 4] * 0x9E3779B97F4A7C15 + v + 1) & M64
    ha = hb = len(labels)
    for j in (3, 2, 1, 0):
        ha = _mix((a[j] + ha) & M64)
        hb = _mix((b[j] + hb) & M64)
    return ha, hb


def _fast(labels):
    out = np.empty(2, dtype=np.uint64)
    labels_digest(np.ascontiguousarray(labels, dtype=np.int32), out)
    return int(out[0]), int(out[1])


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 65_537])
def test_matches_the_slow_twin(n):
    labels = np.random.default_rng(n).integers(-1, 1 << 20, size=n).astype(np.int32)
    assert _fast(labels) == _slow(labels)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2**31, 2**31 - 1), max_size=50), st.data())
def test_one_changed_label_always_changes_the_digest(values, data):
    labels = np.array(values, dtype=np.int32)
    assert _fast(labels) == _slow(labels)
    if len(values):
        i = data.draw(st.integers(0, len(values) - 1))
        new = data.draw(st.integers(-2**31, 2**31 - 1).filter(lambda v: v != values[i]))
        changed = labels.copy()
        changed[i] = new
        assert _fast(changed) != _fast(labels)


def test_length_and_order_count():
    assert _fast(np.zeros(3, np.int32)) != _fast(np.zeros(4, np.int32))
    assert _fast(np.array([1, 2], np.int32)) != _fast(np.array([2, 1], np.int32))
