"""Round trips through every input kind: what the views hold equals what pyarrow reads."""
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import segmint
from helpers import random_table, reference_values, same

SIZES = [0, 1, 2, 7, 1000, 4099]
BATCH_SIZES = [1, 3, 1000, 1 << 17]


def _write_ipc(table, path, compression=None, chunk=None):
    with ipc.new_file(path, table.schema, options=ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(table, max_chunksize=chunk)
    return path


def _write_stream(table, path):
    with ipc.new_stream(path, table.schema) as w:
        w.write_table(table, max_chunksize=333)
    return path


def _write_dataset(table, folder):
    folder.mkdir()
    n = table.num_rows
    cuts = [0, n // 3, n // 3, 2 * n // 3, n]  # one empty file too
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        pq.write_table(table.slice(a, b - a), folder / f"part-{i}.parquet", row_group_size=250)
    (folder / "_SUCCESS").write_text("")  # marker files are ignored
    return folder


def _sources(table, tmp_path):
    """Every way in, each paired with the reference table it should read back as."""
    yield "table", table
    yield "record batch", table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)
    yield "reader", pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=500))
    yield "ipc", _write_ipc(table, tmp_path / "t.arrow", chunk=600)
    yield "ipc-lz4", _write_ipc(table, tmp_path / "t-lz4.arrow", "lz4", chunk=700)
    yield "ipc-zstd", _write_ipc(table, tmp_path / "t-zstd.feather", "zstd")
    yield "stream", _write_stream(table, tmp_path / "t.arrows")
    yield "parquet", (pq.write_table(table, tmp_path / "t.parquet", row_group_size=512), tmp_path / "t.parquet")[1]
    yield "parquet dir", _write_dataset(table, tmp_path / "ds")


def _check_source(src, table, batch_size):
    assert src.column_names == table.column_names
    if not src.one_shot:
        assert src.num_rows == table.num_rows
    seen = {name: [] for name in table.column_names}
    start = 0
    for batch in src.batches(batch_size=batch_size):
        assert 0 < batch.num_rows <= batch_size
        assert batch.start == start
        start += batch.num_rows
        for name in table.column_names:
            view = batch[name]
            assert len(view) == batch.num_rows
            seen[name].extend(view.to_pylist())
            if view.kind == "dictionary":
                assert view.values.dtype == np.int32
            if view.validity is not None:
                assert 0 <= view.validity_offset < 8
    assert start == table.num_rows
    for name in table.column_names:
        expected = reference_values(table.column(name).combine_chunks()) if table.num_rows else []
        assert same(seen[name], expected), name


@pytest.mark.parametrize("n", SIZES)
def test_every_input_kind_reads_back(tmp_path, n):
    table = random_table(n, seed=n, chunks=3)
    for kind, data in _sources(table, tmp_path):
        for batch_size in ([7, 1 << 17] if kind != "reader" else [7]):
            src = segmint.open(data)
            _check_source(src, table, batch_size)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_batch_sizes_on_mapped_file(tmp_path, batch_size):
    table = random_table(2501, seed=3)
    src = segmint.open(_write_ipc(table, tmp_path / "x.arrow", chunk=1000))
    _check_source(src, table, batch_size)


@pytest.mark.parametrize("batch_size", [1, 3, 400, 667, 1000, 1500, 4000])
def test_balanced_batches_cut_chunks_evenly(tmp_path, batch_size):
    # chunks of 1000, 1000, 501 rows: each cut into round(rows / batch_size) pieces (at least
    # one), sizes within one row of each other, none beyond 1.5 x batch_size, rows in order
    table = random_table(2501, seed=4)
    src = segmint.open(_write_ipc(table, tmp_path / "x.arrow", chunk=1000))
    sizes, start = [], 0
    seen = {name: [] for name in table.column_names}
    for batch in src.batches(batch_size=batch_size, balanced=True):
        assert batch.start == start
        for name in table.column_names:
            seen[name].extend(batch[name].to_pylist())
        sizes.append(batch.num_rows)
        start += batch.num_rows
    assert start == 2501
    for name in table.column_names:
        assert same(seen[name], reference_values(table.column(name).combine_chunks())), name
    expected = []
    for rows in (1000, 1000, 501):
        count = max(1, int(np.floor(rows / batch_size + 0.5)))
        expected += sorted([rows // count + 1] * (rows % count) + [rows // count] * (count - rows % count))
    assert sorted(sizes) == sorted(expected)
    assert max(sizes) <= max(1.5 * batch_size, 1)
    plain = [b.num_rows for b in src.batches(batch_size=batch_size)]
    assert max(plain) <= batch_size and sum(plain) == 2501


@pytest.mark.parametrize("kind", ["table", "parquet"])
def test_balanced_batches_keep_a_short_remainder_with_its_chunk(tmp_path, kind):
    # in memory, a chunk of 1.35 batches is one batch, not a batch and a 0.35 remainder, and
    # one of 2.6 three equal ones (Parquet is read as without balanced=)
    table = pa.concat_tables([random_table(1350, seed=5), random_table(2600, seed=6)])
    if kind == "parquet":
        pq.write_table(table, tmp_path / "x.parquet", row_group_size=1350)
        data = tmp_path / "x.parquet"
    else:
        data = table
    src = segmint.open(data)
    sizes = [b.num_rows for b in src.batches(batch_size=1000, balanced=True)]
    plain = [b.num_rows for b in src.batches(batch_size=1000)]
    assert sum(sizes) == sum(plain) == 3950 and max(plain) <= 1000
    assert plain[:2] == [1000, 350]
    if kind == "table":
        assert sizes == [1350, 866, 867, 867]
        with pytest.raises(segmint.errors.ParameterError, match="balanced must be True or False"):
            next(src.batches(batch_size=1000, balanced="yes"))
    else:  # a decoding source reads batch_size rows at a time: its memory stays one batch
        assert sizes == plain


def test_pandas_and_polars(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.5, None, 3.0], "s": pd.Categorical(["x", None, "y"]), "b": [True, False, True]})
    src = segmint.open(df)
    assert src.kind == "table"
    batch = next(src.batches())
    assert batch["a"].to_pylist() == [1.5, None, 3.0]
    assert batch["s"].to_pylist() == ["x", None, "y"]
    assert batch["b"].to_pylist() == [True, False, True]
    pl = pytest.importorskip("polars")
    pdf = pl.DataFrame({"a": [1, None, 3], "s": ["x", "y", None]})
    batch = next(segmint.open(pdf).batches())
    assert batch["a"].to_pylist() == [1, None, 3]
    assert batch["s"].to_pylist() == ["x", "y", None]


def test_dict_and_2d_numpy():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    src = segmint.open(x)
    assert src.column_names == ["x0", "x1", "x2"]
    np.testing.assert_array_equal(src.column("x1").to_numpy(), x[:, 1])
    masked = np.ma.masked_array([1, 2, 3], mask=[False, True, False])
    src = segmint.open({"m": masked, "s": ["a", "b", "a"], "l": [1, 2, 3]})
    batch = next(src.batches())
    assert batch["m"].to_pylist() == [1, None, 3]
    assert batch["s"].to_pylist() == ["a", "b", "a"]
    with pytest.raises(segmint.DataError, match="2-D"):
        segmint.open(np.zeros(3))
    with pytest.raises(segmint.DataError, match="rows"):
        segmint.open({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(segmint.DataError, match="cannot read an object of type"):
        segmint.open(42)


def test_column_kinds_and_units(tmp_path):
    table = pa.table({
        "d64": pa.array([0, 86_400_000, None], type=pa.date64()),
        "ts": pa.array([1, 2, None], type=pa.timestamp("us", tz="Europe/Paris")),
        "dur": pa.array([5, None, 7], type=pa.duration("ns")),
        "d32": pa.array([1, 2, None], type=pa.int32()).cast(pa.date32()),
        "big": pa.array(["u", "v", "u"], type=pa.large_string()),
        "view": pa.array(["u", None, "w"], type=pa.string_view()),
        "idict": pa.array([10, 20, 10]).dictionary_encode(),
        "u64": pa.array([2**64 - 1, 0, 1], type=pa.uint64()),
    })
    batch = next(segmint.open(table).batches())
    assert (batch["d64"].unit, batch["d64"].values.dtype) == ("ms", np.int64)
    assert (batch["ts"].unit, batch["ts"].tz) == ("us", "Europe/Paris")
    assert batch["dur"].unit == "ns" and batch["dur"].to_pylist() == [5, None, 7]
    assert batch["d32"].unit == "D" and batch["d32"].values.dtype == np.int64
    assert batch["d32"].to_pylist() == [1, 2, None]
    assert batch["big"].kind == "dictionary" and batch["big"].to_pylist() == ["u", "v", "u"]
    assert batch["view"].to_pylist() == ["u", None, "w"]
    assert batch["idict"].kind == "numeric" and batch["idict"].to_pylist() == [10, 20, 10]
    assert batch["u64"].values.dtype == np.uint64 and batch["u64"].to_pylist()[0] == 2**64 - 1


def test_dictionary_with_null_value_entry():
    arr = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 1], type=pa.int32()), pa.array(["a", None, "c"]))
    view = next(segmint.open(pa.table({"s": arr})).batches())["s"]
    assert view.to_pylist() == ["a", None, "c", None]
    assert view.null_count == 2


def test_num_rows_from_metadata_only(tmp_path, monkeypatch):
    table = random_table(1234, seed=1)
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=100)
    src = segmint.open(tmp_path / "t.parquet")
    # counting rows must not read any row group
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda *a, **k: pytest.fail("data was read"))
    assert src.num_rows == 1234
    ipc_src = segmint.open(_write_ipc(table, tmp_path / "t.arrow", chunk=100))
    monkeypatch.setattr(ipc.RecordBatchFileReader, "get_batch", lambda *a, **k: pytest.fail("data was read"))
    assert ipc_src.num_rows == 1234


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_projection_keeps_the_order_asked_for(tmp_path, compression):
    table = random_table(40, seed=6)
    path = _write_ipc(table, tmp_path / "t.arrow", compression)
    for src in (segmint.open(path), segmint.open(table)):
        batch = next(src.batches(columns=["region", "i8", "f32"]))
        assert batch.column_names == ["region", "i8", "f32"]
        assert src.read(["ts", "i8"]).column_names == ["ts", "i8"]


def test_projection_and_select(tmp_path):
    table = random_table(50, seed=2)
    path = _write_ipc(table, tmp_path / "t.arrow", "zstd")
    src = segmint.open(path, columns=["f32", "region"])
    assert src.column_names == ["f32", "region"]
    batch = next(src.batches())
    assert batch.column_names == ["f32", "region"]
    assert same(batch["f32"].to_pylist(), table.column("f32").to_pylist())
    assert segmint.open(src) is src
    assert src.read().column_names == ["f32", "region"]
    # no columns at all still counts rows in batches
    assert sum(b.num_rows for b in segmint.open(path).batches(columns=[], batch_size=16)) == 50


def test_reader_is_one_shot():
    table = random_table(10)
    src = segmint.open(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
    assert src.num_rows is None
    assert sum(b.num_rows for b in src.batches()) == 10
    with pytest.raises(segmint.SourceConsumedError, match="already read once"):
        next(src.batches())


def test_context_manager_closes_mapping(tmp_path):
    path = _write_ipc(random_table(10), tmp_path / "t.arrow")
    with segmint.open(path) as src:
        values = src.column("i64").to_numpy()
    assert values.shape == (10,)


def test_feather_v2_written_by_pyarrow_is_zero_copy(tmp_path):
    table = random_table(100, seed=4)
    feather.write_feather(table, tmp_path / "t.feather", compression="uncompressed")
    src = segmint.open(tmp_path / "t.feather")
    assert src.kind == "ipc" and src.zero_copy
    feather.write_feather(table, tmp_path / "z.feather", compression="zstd")
    assert not segmint.open(tmp_path / "z.feather").zero_copy


def test_repr_and_info():
    src = segmint.open(random_table(5))
    assert "5 rows x 11 columns" in repr(src)
    batch = next(src.batches())
    assert "rows 0..4" in repr(batch)


def test_dictionary_unifier_keeps_codes_stable_and_unique():
    # the unifier's slow twin: a Python dict from string to first-seen code
    from segmint.io.columns import DictionaryUnifier
    rng = np.random.default_rng(0)
    for _ in range(200):
        unifier, seen = DictionaryUnifier(), {}
        for _ in range(4):
            values = [f"s{v}" for v in rng.integers(0, 30, rng.integers(0, 20))]
            arr = pa.array(values, pa.string()).dictionary_encode()
            if rng.random() < 0.3 and len(arr.dictionary) > 1:  # a dictionary repeating a string
                arr = pa.DictionaryArray.from_arrays(arr.indices, pa.concat_arrays([arr.dictionary, arr.dictionary[:1]]))
            indices, dictionary = unifier.unify(arr)
            strings = dictionary.to_pylist()
            assert len(strings) == len(set(strings))
            assert [strings[i] for i in indices.to_pylist()] == values
            for v in values:
                assert seen.setdefault(v, strings.index(v)) == strings.index(v)


@pytest.mark.parametrize("n", [0, 5, 1000])
def test_read_gives_the_declared_types_for_every_file_kind(tmp_path, n):
    # Parquet strings stream dictionary-encoded; read() must still give the source's schema
    table = random_table(n, seed=3)
    folder = tmp_path / "kinds"
    folder.mkdir()
    paths = {"ipc": _write_ipc(table, folder / "t.arrow", chunk=300),
             "ipc-lz4": _write_ipc(table, folder / "t-lz4.arrow", "lz4", chunk=300),
             "stream": _write_stream(table, folder / "t.arrows")}
    pq.write_table(table, folder / "t.parquet", row_group_size=256)
    paths["parquet"] = folder / "t.parquet"
    for kind, path in paths.items():
        src = segmint.open(path)
        read = src.read()
        assert read.schema.equals(src.schema), kind
        assert read.num_rows == n, kind
        for name in ("region", "channel", "i64", "flag"):
            assert same(read.column(name).to_pylist(), table.column(name).to_pylist()), (kind, name)


def test_a_dictionary_column_with_out_of_range_indices_in_null_slots_reads_its_values(tmp_path):
    # Arrow leaves null slots undefined: a writer may leave any index there
    valid = np.array([True, False, True, False] * 250)
    raw = np.where(valid, np.arange(1000) % 3, 10 ** 6).astype(np.int32)
    indices = pa.Array.from_buffers(pa.int32(), 1000, [pa.py_buffer(np.packbits(valid, bitorder="little")),
                                                       pa.py_buffer(raw)])
    column = pa.DictionaryArray.from_arrays(indices, pa.array(["a", "b", "c"]), safe=False)
    path = _write_ipc(pa.table({"d": column}), tmp_path / "nullslots.arrow")
    expected = [["a", "b", "c"][i % 3] if v else None for i, v in enumerate(valid)]
    assert segmint.open(path).column("d").chunks[0].to_pylist() == expected
    codes = segmint.open(path).column("d").chunks[0].values
    assert codes.min() >= 0 and codes.max() < 3
