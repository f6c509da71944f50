"""Proofs that column views are zero-copy where the format allows it."""
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

import segmint
from helpers import random_table


def _address(array):
    return array.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.int64])
def test_mapped_views_point_into_the_mapping(tmp_path, dtype):
    n = 10_001
    values = np.arange(n).astype(dtype)
    table = pa.table({"x": values, "y": pa.array(values, mask=values % 3 == 0),
                      "s": pa.array(["a", "b", "c"] * (n // 3) + ["a"] * (n % 3)).dictionary_encode(),
                      "b": pa.array(values % 2 == 0),
                      "t": pa.array(values.astype(np.int64)).cast(pa.timestamp("ms"))})
    path = tmp_path / "x.arrow"
    with ipc.new_file(path, table.schema) as w:
        w.write_table(table, max_chunksize=4096)
    src = segmint.open(path)
    assert src.zero_copy
    base, size = src.mapped_range()
    for batch in src.batches(batch_size=1000):
        for name in ("x", "y", "s", "b", "t"):
            view = batch[name]
            arrays = [view.values] + ([view.validity] if view.validity is not None else [])
            for arr in arrays:
                if arr.size == 0:
                    continue
                start = _address(arr)
                assert base <= start and start + arr.nbytes <= base + size, name
                assert not arr.flags.writeable  # the mapping is read-only
                assert not arr.flags.owndata
        np.testing.assert_array_equal(batch["x"].values, values[batch.start:batch.start + batch.num_rows])


def test_numpy_dict_source_does_not_copy():
    x = np.random.default_rng(0).normal(size=1000)
    view = next(segmint.open({"x": x}).batches())["x"]
    assert _address(view.values) == _address(x)


def test_sliced_table_views_share_the_parent_buffers():
    table = random_table(1000, seed=5, null_rate=0.3).combine_chunks()
    sliced = table.slice(37, 500)
    batch = next(segmint.open(sliced).batches())
    parent = table.column("f32").chunk(0)
    data_buf = parent.buffers()[1]
    view = batch["f32"]
    assert _address(view.values) == data_buf.address + 37 * 4
    assert view.validity is not None and view.validity_offset == 37 % 8
    assert _address(view.validity) == parent.buffers()[0].address + 37 // 8


def test_checking_string_offsets_and_dictionary_indices_copies_nothing(tmp_path):
    # the layout checks read the offsets and indices where they are mapped and hand the same
    # buffers on: numeric views, dictionary codes and the strings themselves stay in the mapping
    n = 20_000
    table = pa.table({"x": np.arange(n, dtype=np.float64),
                      "s": pa.array([f"customer-{i % 977}" for i in range(n)]),
                      "d": pa.array([f"city-{i % 13}" for i in range(n)]).dictionary_encode()})
    path = tmp_path / "strings.arrow"
    with ipc.new_file(path, table.schema) as w:
        w.write_table(table, max_chunksize=5000)
    src = segmint.open(path)
    base, size = src.mapped_range()
    for batch in src.batches():
        for name in ("x", "s", "d"):
            column = batch.record_batch.column(name)
            buffers = column.indices.buffers() if name == "d" else column.buffers()
            for buf in buffers:
                if buf is not None:
                    assert base <= buf.address and buf.address + buf.size <= base + size, name
        for name in ("x", "d"):
            start = _address(batch[name].values)
            assert base <= start < base + size, name
