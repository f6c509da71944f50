"""Validity bitmaps and packed booleans with offsets: property tests against pyarrow."""
import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint.io import unpack_bits
from segmint.io.columns import view_of

values = st.lists(st.one_of(st.none(), st.booleans()), max_size=200)


@settings(max_examples=200, deadline=None)
@given(values, st.integers(0, 64), st.integers(0, 200))
def test_bool_views_with_offsets(items, start, length):
    array = pa.array(items, type=pa.bool_()).slice(start, length)
    view = view_of("b", array)
    assert view.to_pylist() == array.to_pylist()
    assert view.null_count == array.null_count
    np.testing.assert_array_equal(view.is_valid(), np.asarray(array.is_valid()))
    if view.validity is not None:
        assert view.validity_offset == array.offset % 8
        assert view.validity.size == (array.offset % 8 + len(array) + 7) // 8


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-2**31, 2**31 - 1)), max_size=300),
       st.integers(0, 80), st.integers(0, 300))
def test_numeric_views_with_offsets(items, start, length):
    array = pa.array(items, type=pa.int32()).slice(start, length)
    view = view_of("x", array)
    assert view.to_pylist() == array.to_pylist()


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=40), st.data())
def test_unpack_bits_matches_bit_arithmetic(raw, data):
    bitmap = np.frombuffer(raw, dtype=np.uint8)
    total = bitmap.size * 8
    offset = data.draw(st.integers(0, total))
    length = data.draw(st.integers(0, total - offset))
    expected = [(int(bitmap[(offset + i) // 8]) >> ((offset + i) % 8)) & 1 == 1 for i in range(length)]
    assert unpack_bits(bitmap, offset, length).tolist() == expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "ü"])), max_size=30),
                min_size=1, max_size=6), st.integers(1, 20))
def test_chunked_strings_get_consistent_codes(chunks, batch_size):
    """Chunks with different dictionaries: one dictionary per pass, codes mean one string."""
    arrays = [pa.array(c, type=pa.string()).dictionary_encode() for c in chunks]
    table = pa.table({"s": pa.chunked_array(arrays, type=pa.dictionary(pa.int32(), pa.string()))})
    seen = []
    dictionaries = []
    for batch in segmint.open(table).batches(batch_size=batch_size):
        view = batch["s"]
        seen.extend(view.to_pylist())
        dictionaries.append(view.dictionary.to_pylist())
    assert seen == [x for c in chunks for x in c]
    for earlier, later in zip(dictionaries, dictionaries[1:]):  # codes are stable: append-only
        assert later[:len(earlier)] == earlier
