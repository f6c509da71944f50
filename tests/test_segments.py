"""segments= in its four forms (column, Segmenter, RuleSet, table of (id, segment)) gives each row
the segment a slow, obvious twin gives it; Segmenter.stream equals Segmenter.score."""
import os

import numpy as np
import pyarrow as pa
import pytest

import segmint
from segmint.errors import DataError, ParameterError, UnknownColumnError, UnsupportedTypeError
from segmint.explain.segments import MAX_SEGMENTS, cli_segments, resolve_segments


def _codes(seg_source, batch_size=997, columns=()):
    return np.concatenate([b.codes for b in seg_source.stream(columns=columns, batch_size=batch_size)]
                          or [np.zeros(0, np.int32)])


def _twin(values, names):
    """Each value's index in names, -1 for None."""
    index = {n: i for i, n in enumerate(names)}
    return np.array([-1 if v is None else index[str(v)] for v in values], dtype=np.int32)


@pytest.mark.parametrize("dictionary", [False, True])
@pytest.mark.parametrize("batch_size", [1, 7, 997, 100_000])
def test_a_string_column_gives_sorted_names_and_minus_one_for_nulls(dictionary, batch_size):
    rng = np.random.default_rng(3)
    values = [None if rng.random() < 0.1 else f"s{rng.integers(0, 6)}" for _ in range(2_003)]
    column = pa.array(values, pa.string())
    if dictionary:
        column = column.dictionary_encode()
    t = pa.table({"seg": column, "x": np.arange(len(values), dtype=np.float64)})
    s = resolve_segments(t, "seg")
    assert s.kind == "column" and s.names == sorted({v for v in values if v is not None})
    np.testing.assert_array_equal(_codes(s, batch_size), _twin(values, s.names))


def test_an_integer_column_names_its_values_in_numeric_order():
    values = [10, 2, None, 2, -1, 10, 100]
    s = resolve_segments(pa.table({"seg": pa.array(values, pa.int16())}), "seg")
    assert s.names == ["-1", "2", "10", "100"]
    np.testing.assert_array_equal(_codes(s, 3), _twin(values, s.names))


def test_a_float_column_is_not_a_segment_column():
    with pytest.raises(UnsupportedTypeError, match="'x'.*string, integer or boolean"):
        resolve_segments(pa.table({"x": [0.5, 1.5]}), "x")


def test_an_id_column_by_mistake_is_refused_with_a_question():
    t = pa.table({"customer_id": np.arange(MAX_SEGMENTS + 5)})
    with pytest.raises(DataError, match="customer_id.*is it a segment column"):
        resolve_segments(t, "customer_id")


def test_an_unknown_segment_column_names_the_nearest():
    t = segmint.make_customers(50, random_state=0)
    with pytest.raises(UnknownColumnError, match="did you mean 'region'"):
        resolve_segments(t, "regoin")


@pytest.mark.parametrize("string_ids", [False, True])
def test_a_table_of_segments_is_joined_on_the_id(string_ids):
    rng = np.random.default_rng(5)
    ids = rng.permutation(5_000) * 7 + 11
    data = pa.table({"customer_id": ids, "x": rng.random(5_000)})
    kept = rng.permutation(5_000)[:4_000]  # a fifth of the customers have no segment
    labels = np.array(["b", "a", "c"])[rng.integers(0, 3, 4_000)]
    table = pa.table({"customer_id": ids[kept], "segment": labels})
    if string_ids:
        data = data.set_column(0, "customer_id", pa.array([f"c{v}" for v in ids]))
        table = table.set_column(0, "customer_id", pa.array([f"c{v}" for v in ids[kept]]))
    s = resolve_segments(data, table, id_column="customer_id")
    assert s.kind == "table" and s.names == ["a", "b", "c"]
    given = dict(zip(table["customer_id"].to_pylist(), labels.tolist()))
    twin = _twin([given.get(v) for v in data["customer_id"].to_pylist()], s.names)
    np.testing.assert_array_equal(_codes(s, 613), twin)


def test_a_table_of_segments_needs_the_id_column_and_unique_ids():
    data = pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(ParameterError, match="id_column="):
        resolve_segments(data, pa.table({"id": [1], "segment": ["a"]}))
    with pytest.raises(DataError, match="more than one segment.*id=2"):
        resolve_segments(data, pa.table({"id": [1, 2, 2], "segment": ["a", "b", "a"]}), id_column="id")
    with pytest.raises(DataError, match="int64.*string"):
        resolve_segments(data, pa.table({"id": ["1"], "segment": ["a"]}), id_column="id")
    with pytest.raises(DataError, match="one segment column"):
        resolve_segments(data, pa.table({"id": [1], "p": ["a"], "q": ["b"]}), id_column="id")


def test_a_segmenter_streams_what_it_scores():
    t = segmint.make_customers(3_000, random_state=2)
    rules = segmint.RuleSet({"big": "monetary > 2000"})
    model = segmint.Segmenter([{"column": "recency_days", "impute": "median"}, "frequency"],
                              clusterer=segmint.MiniBatchKMeans(4, random_state=0), rules=rules).fit(t)
    s = resolve_segments(t, model)
    assert s.kind == "segmenter" and s.names == model.segment_names_
    batches = list(s.stream(columns=["region"], batch_size=701))
    assert all("region" in b.batch.column_names for b in batches)
    scored = model.score(t)
    np.testing.assert_array_equal(np.concatenate([b.codes for b in batches]),
                                  scored["segment_id"].to_numpy())
    distance = np.concatenate([b.distance for b in batches])
    expected = scored["distance"].to_numpy(zero_copy_only=False).astype(np.float64)
    np.testing.assert_array_equal(np.isnan(distance), np.isnan(expected))  # NaN where the rule took
    np.testing.assert_allclose(distance[~np.isnan(distance)], expected[~np.isnan(expected)], rtol=0)


def test_rule_sets_give_codes_in_waterfall_mode_and_memberships_in_multi_mode():
    t = segmint.make_customers(1_000, random_state=4)
    waterfall = segmint.RuleSet({"rich": "monetary > 1000", "young": "age < 30"}, default="rest")
    s = resolve_segments(t, waterfall)
    assert s.names == ["rich", "young", "rest"] and not s.multi
    expected = waterfall.evaluate(t).table["segment"].to_pylist()
    np.testing.assert_array_equal(_codes(s, 333), _twin(expected, s.names))
    multi = segmint.RuleSet({"rich": "monetary > 1000", "young": "age < 30"}, mode="multi")
    m = resolve_segments(t, multi)
    assert m.multi and m.names == ["rich", "young"]
    first = next(m.stream(batch_size=128))
    assert first.codes is None and first.members.shape == (2, 2)
    bits = np.unpackbits(first.members.view(np.uint8), axis=1, bitorder="little")[:, :128]
    table = multi.evaluate(t.slice(0, 128)).table
    np.testing.assert_array_equal(bits[0].astype(bool), table["rich"].to_numpy(zero_copy_only=False))


def test_an_unfitted_segmenter_is_refused():
    with pytest.raises(segmint.NotFittedError):
        resolve_segments(pa.table({"x": [1.0]}), segmint.Segmenter(["x"], clusterer=segmint.KMeans(2)))


def test_the_command_line_prefers_a_column_then_reads_a_file(tmp_path):
    t = segmint.make_customers(500, random_state=1)
    assert cli_segments("region", t.column_names) == "region"
    rules = segmint.RuleSet({"rich": "monetary > 1000"})
    path = rules.save(str(tmp_path / "rules.json"))
    assert isinstance(cli_segments(str(path), t.column_names), segmint.RuleSet)
    model = segmint.Segmenter(["frequency"], clusterer=segmint.KMeans(2, random_state=0)).fit(t)
    model.save(str(tmp_path / "m.seg"))
    assert isinstance(cli_segments(str(tmp_path / "m.seg"), t.column_names), segmint.Segmenter)
    segmint.write_table(pa.table({"customer_id": [1], "segment": ["a"]}), str(tmp_path / "s.parquet"))
    assert cli_segments(str(tmp_path / "s.parquet"), t.column_names) == str(tmp_path / "s.parquet")
    with pytest.raises(UnknownColumnError, match="did you mean 'region'"):
        cli_segments("regio", t.column_names)


def test_a_segment_column_whose_first_batches_are_null_gives_minus_one_there(tmp_path):
    path = str(tmp_path / "n.arrow")
    first = pa.record_batch({"seg": pa.array([None, None], pa.string()), "x": [1.0, 2.0]})
    second = pa.record_batch({"seg": pa.array(["b", None, "a"]), "x": [3.0, 4.0, 5.0]})
    segmint.write_table(pa.Table.from_batches([first, second]), path)
    s = resolve_segments(path, "seg")
    assert s.names == ["a", "b"]
    np.testing.assert_array_equal(_codes(s, 2), [-1, -1, 1, -1, 0])
    everything_null = pa.table({"seg": pa.array([None] * 5, pa.string()), "x": np.arange(5.0)})
    s = resolve_segments(everything_null, "seg")
    assert s.names == [] and (_codes(s, 2) == -1).all()


def test_dictionary_indices_under_null_slots_are_never_read():
    indices = pa.array([0, 99, 1], pa.int32())  # 99 sits under a null: any value is valid there
    validity = pa.array([True, False, True]).buffers()[1]
    seg = pa.DictionaryArray.from_buffers(pa.dictionary(pa.int32(), pa.string()), 3,
                                          [validity, indices.buffers()[1]], dictionary=pa.array(["a", "b"]))
    s = resolve_segments(pa.table({"seg": seg}), "seg")
    np.testing.assert_array_equal(_codes(s), [0, -1, 1])


def test_boolean_and_integer_dictionary_columns_are_segment_columns():
    t = pa.table({"b": [True, None, False], "d": pa.array([5, 7, 5]).dictionary_encode()})
    s = resolve_segments(t, "b")
    assert s.names == ["False", "True"]
    np.testing.assert_array_equal(_codes(s), [1, -1, 0])
    s = resolve_segments(t, "d")
    assert s.names == ["5", "7"]
    np.testing.assert_array_equal(_codes(s), [0, 1, 0])


def test_uint64_segments_beyond_int64_are_refused_not_wrapped():
    big = pa.array([1, 2**63 + 5], pa.uint64())
    with pytest.raises(DataError, match="int64 range"):
        resolve_segments(pa.table({"seg": big}), "seg")
    with pytest.raises(DataError, match="int64 range"):
        resolve_segments(pa.table({"id": [1, 2]}), pa.table({"id": [1, 2], "segment": big}), id_column="id")


def test_a_segment_column_of_a_stream_read_once_is_refused_up_front():
    t = pa.table({"seg": ["a", "b"], "x": [1.0, 2.0]})
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches())
    with pytest.raises(DataError, match="read only once.*table of \\(id, segment\\)"):
        resolve_segments(reader, "seg")


@pytest.mark.parametrize("labels", [np.array([2, 0, 2, 1]), ["b", "a", "b", None],
                                    pa.array(["b", "a", "b", None]).dictionary_encode()])
def test_per_row_labels_beside_the_source_are_segments(labels):
    t = pa.table({"x": np.arange(4.0)})
    s = resolve_segments(t, labels)
    assert s.kind == "labels"
    values = labels.to_pylist() if isinstance(labels, pa.Array) else list(labels)
    values = [None if v is None else str(v) for v in values]
    np.testing.assert_array_equal(_codes(s, 3), _twin(values, s.names))


def test_per_row_labels_of_the_wrong_length_are_refused():
    with pytest.raises(DataError, match="3 labels but.*4 rows"):
        resolve_segments(pa.table({"x": np.arange(4.0)}), np.array([0, 1, 0]))
    with pytest.raises(ParameterError, match="1-D"):
        resolve_segments(pa.table({"x": np.arange(4.0)}), np.zeros((4, 2), dtype=int))


def test_the_files_read_are_known_so_that_outputs_never_go_over_them(tmp_path):
    data, table = str(tmp_path / "d.arrow"), str(tmp_path / "s.parquet")
    segmint.write_table(pa.table({"id": [1, 2], "x": [1.0, 2.0]}), data)
    segmint.write_table(pa.table({"id": [1, 2], "segment": ["a", "b"]}), table)
    s = resolve_segments(data, table, id_column="id")
    assert {os.path.realpath(p) for p in s.paths} == {os.path.realpath(data), os.path.realpath(table)}


def test_segmenter_stream_takes_no_columns_as_none():
    t = segmint.make_customers(300, random_state=0)
    model = segmint.Segmenter(["frequency"], clusterer=segmint.KMeans(2, random_state=0)).fit(t)
    assert sum(len(b.segment_id) for b in model.stream(t, columns=None)) == 300
