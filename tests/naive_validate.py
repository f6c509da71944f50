"""Slow, obviously correct twins of the kernels in ``segmint.kernels.structure``."""


def first_bad_offset(offsets, data_size):
    """Index of the first offset that is negative, below its predecessor or past ``data_size``."""
    offsets = [int(o) for o in offsets]
    for i, o in enumerate(offsets):
        if o < 0 or o > data_size or (i > 0 and o < offsets[i - 1]):
            return i
    return -1
