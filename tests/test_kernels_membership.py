"""Bit-packed membership kernels (pair counts, bitmasks, popcount) against their slow twins."""
import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.kernels.membership import pair_counts, to_bitmask
from segmint.kernels.simd import popcount


@numba.njit
def _popcounts(words, out):
    for i in range(words.size):
        out[i] = popcount(words[i])


def _words(member):
    """The slow twin of packing: row r of segment s is bit r % 64 of word r // 64."""
    k, n = member.shape
    words = np.zeros((k, (n + 63) // 64), dtype=np.uint64)
    for s in range(k):
        for r in range(n):
            if member[s, r]:
                words[s, r // 64] |= np.uint64(1) << np.uint64(r % 64)
    return words


def test_popcount_of_edge_and_random_words():
    rng = np.random.default_rng(0)
    words = np.concatenate([np.array([0, 1, 2**63, 2**64 - 1, 0x5555555555555555], dtype=np.uint64),
                            rng.integers(0, 2**64, size=500, dtype=np.uint64, endpoint=False)])
    out = np.empty(words.size, dtype=np.int64)
    _popcounts(words, out)
    assert out.tolist() == [bin(int(w)).count("1") for w in words]


memberships = st.tuples(st.integers(1, 12), st.integers(0, 300), st.integers(0, 2**32 - 1)).map(
    lambda a: (np.random.default_rng(a[2]).random((a[0], a[1])) < np.random.default_rng(a[2] + 1).random())
    .astype(np.uint8))


@settings(max_examples=150, deadline=None)
@given(memberships)
def test_pairs_and_bitmask_match_the_slow_twins(member):
    # (the VM writes memberships as words itself: tests/test_rules_bits.py checks them)
    k, n = member.shape
    bits = _words(member)
    out = np.full((k, k), 5, dtype=np.int64)  # INOUT: counts are added
    pair_counts(bits, out)
    m64 = member.astype(np.int64)
    assert np.array_equal(out - 5, m64 @ m64.T)
    mask = np.full(n, 99, dtype=np.uint64)
    to_bitmask(bits, n, mask)
    assert mask.tolist() == [sum(int(member[s, r]) << s for s in range(k)) for r in range(n)]


def test_bitmask_uses_all_64_bits():
    member = np.zeros((64, 130), dtype=np.uint8)
    member[63, 129] = member[0, 0] = member[31, 64] = 1
    mask = np.zeros(130, dtype=np.uint64)
    to_bitmask(_words(member), 130, mask)
    assert mask[129] == np.uint64(1) << np.uint64(63) and mask[0] == 1 and mask[64] == 1 << 31
    assert np.count_nonzero(mask) == 3
