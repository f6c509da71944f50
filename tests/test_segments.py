"""segments= in its four forms (column, Segmenter, RuleSet, table of (id, segment)) gives each row
the segment a slow, obvious twin gives it; Segmenter.stream equals Segmenter.score."""
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
    with pytest.raises(UnsupportedTypeError, match="'x'.*string or integer"):
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
