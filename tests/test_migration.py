"""The migration matrix (segmint.monitor.migration) against a pandas crosstab twin, its kernels
against a plain-Python twin, and its refusals and words."""
import json
import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint.monitor.migration import DEPARTED, NEW, NONE, Migration, migration
from segmint.errors import (DataError, OutputError, ParameterError, UnknownColumnError,
                            UnsupportedTypeError)
from segmint.kernels import join as kj


# -- the twins -------------------------------------------------------------------------------------
def crosstab_twin(previous, current, id_column="id", segments="segment"):
    """{(from, to): count} by a pandas outer merge and crosstab (nulls as NONE)."""
    def labels(table):
        column = table.column(segments)
        return pd.Series(column.cast(_plain(column.type)).to_pylist(), dtype=object)

    p = pd.DataFrame({"id": pd.Series(previous.column(id_column).to_pylist(), dtype=object),
                      "from": labels(previous)})
    c = pd.DataFrame({"id": pd.Series(current.column(id_column).to_pylist(), dtype=object),
                      "to": labels(current)})
    p["from"] = p["from"].map(lambda v: NONE if v is None or v != v else str(v))
    c["to"] = c["to"].map(lambda v: NONE if v is None or v != v else str(v))
    merged = p.merge(c, on="id", how="outer")
    merged["from"] = merged["from"].astype(object).fillna(NEW)
    merged["to"] = merged["to"].astype(object).fillna(DEPARTED)
    if merged.empty:
        return {}
    table = pd.crosstab(merged["from"], merged["to"])
    return {(f, t): int(table.loc[f, t]) for f in table.index for t in table.columns if table.loc[f, t]}


def _plain(kind):
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def naive_join(prev_keys, prev_codes, cur_keys, cur_codes, n_from, n_to):
    """The kernels' work as a dict loop: the matrix, or the first repeated row of a side."""
    matrix = np.zeros((n_from + 1, n_to + 1), np.int64)
    sides = []
    for side, keys, codes in (("previous", prev_keys, prev_codes), ("current", cur_keys, cur_codes)):
        seen = {}
        for i, (k, c) in enumerate(zip(keys.tolist(), codes.tolist())):
            if k in seen:
                return None, (side, i)
            seen[k] = c
        sides.append(seen)
    prev, cur = sides
    for k in set(prev) | set(cur):
        matrix[prev.get(k, n_from), cur.get(k, n_to)] += 1
    return matrix, None


def as_counts(result):
    return {(r["from_segment"], r["to_segment"]): r["count"] for r in result.table.to_pylist()}


# -- random snapshots --------------------------------------------------------------------------------
def snapshots(n=500, seed=0, id_type=pa.int64(), segment_kind="string", sparse=False, null_share=0.0):
    """Two snapshots of about ``n`` customers: unsorted ids, ~10% departed, ~10% new, segments
    present in only one snapshot, optionally null segments."""
    rng = np.random.default_rng(seed)
    universe = rng.choice(1 << 62, size=int(n * 1.2), replace=False) if sparse else \
        rng.permutation(int(n * 1.2)) * 3 + 5
    prev_ids = universe[:n]
    cur_ids = rng.permutation(universe[int(n * 0.2):])  # the first 20% departed, the last 20% new
    prev_seg = rng.choice(["a", "b", "c", "gone"], prev_ids.size)
    cur_seg = rng.choice(["a", "b", "c", "fresh", "new", "departed"], cur_ids.size)

    def column(labels):
        labels = labels.astype(object)
        if null_share:
            labels[rng.random(labels.size) < null_share] = None
        if segment_kind == "int":
            codes = {"a": 3, "b": 11, "c": 2, "gone": -4, "fresh": 40, "new": 7, "departed": 8}
            return pa.array([None if v is None else codes[v] for v in labels], pa.int16())
        arr = pa.array(labels, pa.string())
        return arr.dictionary_encode() if segment_kind == "dictionary" else arr

    def ids(values):
        if pa.types.is_string(id_type) or pa.types.is_large_string(id_type):
            return pa.array([f"cust-{v}" for v in values], id_type)
        return pa.array(values, id_type)

    return (pa.table({"id": ids(prev_ids), "segment": column(prev_seg)}),
            pa.table({"id": ids(cur_ids), "segment": column(cur_seg)}))


@pytest.mark.parametrize("id_type", [pa.int64(), pa.int32(), pa.uint64(), pa.string(), pa.large_string()],
                         ids=str)
@pytest.mark.parametrize("segment_kind", ["string", "dictionary", "int"])
def test_the_matrix_matches_a_pandas_crosstab_on_random_snapshots(id_type, segment_kind):
    previous, current = snapshots(700, seed=3, id_type=id_type, segment_kind=segment_kind, null_share=0.05)
    result = migration(previous, current, id_column="id")
    assert as_counts(result) == crosstab_twin(previous, current)
    assert result.matrix.sum() == len(set(previous["id"].to_pylist()) | set(current["id"].to_pylist()))
    assert result.matrix[-1, -1] == 0
    assert result.matrix.dtype == np.int64
    assert result.matrix.shape == (len(result.from_names), len(result.to_names))
    assert result.from_names[-1] == NEW and result.to_names[-1] == DEPARTED


def test_sparse_ids_go_through_the_hash_and_match_the_crosstab():
    previous, current = snapshots(2000, seed=5, sparse=True)
    result = migration(previous, current, id_column="id")
    assert as_counts(result) == crosstab_twin(previous, current)


def test_dictionary_string_ids_are_matched_by_their_text():
    previous, current = snapshots(300, seed=8, id_type=pa.string())
    previous = previous.set_column(0, "id", previous["id"].combine_chunks().dictionary_encode())
    assert as_counts(migration(previous, current, id_column="id")) == crosstab_twin(previous, current)


def test_dictionary_integer_ids_and_segments_and_nulls_in_a_dictionary_are_read_by_value():
    previous = pa.table({"id": pa.array([5, 6, 7]).dictionary_encode(),
                         "segment": pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int8()),
                                                                   pa.array(["b", None, "a"]))})
    current = pa.table({"id": pa.array([7, 5, 9], pa.int16()),
                        "segment": pa.array([10, 2, 10]).dictionary_encode()})
    result = migration(previous, current, id_column="id")
    # integer names first in numeric order, then text, (none) last: one order for both axes
    assert result.from_names == ["2", "10", "a", "b", NONE, NEW]
    assert result.to_names == ["2", "10", "a", "b", NONE, DEPARTED]
    assert as_counts(result) == {("a", "10"): 1, ("b", "2"): 1, (NONE, DEPARTED): 1, (NEW, "10"): 1}


def test_integer_segments_are_named_by_their_decimal_text_in_numeric_order():
    previous, current = snapshots(300, seed=2, segment_kind="int")
    result = migration(previous, current, id_column="id")
    union = ["-4", "2", "3", "7", "8", "11", "40"]
    assert result.from_names == union + [NEW]
    assert result.to_names == union + [DEPARTED]


def test_segments_named_new_or_departed_stay_apart_from_the_new_and_departed_labels():
    previous = pa.table({"id": [1, 2], "segment": ["new", "departed"]})
    current = pa.table({"id": [2, 3], "segment": ["new", "departed"]})
    result = migration(previous, current, id_column="id")
    assert as_counts(result) == {("departed", "new"): 1, ("new", DEPARTED): 1, (NEW, "departed"): 1}


def test_null_segments_count_as_their_own_group_listed_last():
    previous = pa.table({"id": [1, 2, 3], "segment": ["b", None, "a"]})
    current = pa.table({"id": [1, 2, 3], "segment": [None, None, "a"]})
    result = migration(previous, current, id_column="id")
    assert result.from_names == ["a", "b", NONE, NEW]
    assert result.to_names == ["a", "b", NONE, DEPARTED]  # b has no one now: a zero column
    assert result.matrix[:, 1].sum() == 0
    assert as_counts(result) == {("a", "a"): 1, ("b", NONE): 1, (NONE, NONE): 1}


def test_a_sorted_dictionary_with_null_rows_keeps_its_codes_and_counts_the_nulls():
    segment = pa.DictionaryArray.from_arrays(pa.array([1, None, 0, 1], pa.int32()), pa.array(["a", "b"]))
    previous = pa.table({"id": [4, 3, 2, 1], "segment": segment})
    result = migration(previous, previous, id_column="id")
    assert result.from_names == ["a", "b", NONE, NEW]
    assert as_counts(result) == {("a", "a"): 1, ("b", "b"): 2, (NONE, NONE): 1}
    assert segment.indices.to_pylist() == [1, None, 0, 1]  # the input is left as it was


def test_pandas_and_parquet_snapshots_are_read_like_arrow_tables(tmp_path):
    previous, current = snapshots(200, seed=4)
    path = tmp_path / "previous.parquet"
    pq.write_table(previous, path)
    result = migration(str(path), current.to_pandas(), id_column="id")
    assert as_counts(result) == crosstab_twin(previous, current)
    assert result.inputs and all(os.path.samefile(p, path) for p in result.inputs)


# -- shares, sizes, edges ---------------------------------------------------------------------------
def test_share_of_from_is_the_count_over_the_whole_from_segment_departed_included():
    previous, current = snapshots(400, seed=6, null_share=0.1)
    result = migration(previous, current, id_column="id")
    rows = result.table.to_pylist()
    totals = {}
    for r in rows:
        totals[r["from_segment"]] = totals.get(r["from_segment"], 0) + r["count"]
    for r in rows:
        assert r["share_of_from"] == pytest.approx(r["count"] / totals[r["from_segment"]], rel=1e-15)
    assert result.table.schema.field("count").type == pa.int64()
    assert result.table.schema.field("share_of_from").type == pa.float64()


def test_sizes_count_each_segment_in_both_snapshots_and_say_how_it_changed():
    previous, current = snapshots(400, seed=7)
    result = migration(previous, current, id_column="id")
    sizes = {r["segment"]: r for r in result.sizes.to_pylist()}
    prev_counts = pd.Series(previous["segment"].to_pylist()).value_counts().to_dict()
    cur_counts = pd.Series(current["segment"].to_pylist()).value_counts().to_dict()
    assert set(sizes) == set(prev_counts) | set(cur_counts)
    for name, r in sizes.items():
        assert r["previous_count"] == prev_counts.get(name, 0)
        assert r["current_count"] == cur_counts.get(name, 0)
        assert r["previous_share"] == pytest.approx(prev_counts.get(name, 0) / previous.num_rows)
        assert r["current_share"] == pytest.approx(cur_counts.get(name, 0) / current.num_rows)
        assert r["change"] == pytest.approx(r["current_share"] - r["previous_share"])
        assert r["count_change"] == cur_counts.get(name, 0) - prev_counts.get(name, 0)
    assert sizes["gone"]["status"] == "vanished"
    assert sizes["fresh"]["status"] == "new"
    for n in "abc":
        r = sizes[n]
        moved = abs(round(r["change"] * 100, 1)) >= 0.5  # as shown: 0.1 points
        expected = ("about the same" if not moved else "share grew" if r["change"] > 0 else "share shrank")
        assert r["status"] == expected
    assert result.sizes.schema.field("count_change").type == pa.int64()


def test_status_compares_shares_so_a_segment_with_more_customers_can_still_shrink():
    previous = pa.table({"id": np.arange(100), "segment": ["a"] * 50 + ["b"] * 50})
    current = pa.table({"id": np.arange(300), "segment": ["a"] * 60 + ["b"] * 240})
    sizes = {r["segment"]: r for r in migration(previous, current, id_column="id").sizes.to_pylist()}
    assert sizes["a"]["count_change"] == 10 and sizes["a"]["status"] == "share shrank"
    assert sizes["b"]["count_change"] == 190 and sizes["b"]["status"] == "share grew"


def test_both_axes_list_the_union_of_segments_in_one_order_so_the_diagonal_is_stayed():
    previous = pa.table({"id": [1, 2, 3, 4], "segment": ["c", "a", "b", "a"]})
    current = pa.table({"id": [4, 3, 2, 5], "segment": ["a", "d", "a", "d"]})
    result = migration(previous, current, id_column="id")
    assert result.from_names[:-1] == result.to_names[:-1] == ["a", "b", "c", "d"]
    m = result.matrix
    assert m.shape == (5, 5)
    assert np.trace(m[:-1, :-1]) == 2  # ids 2 and 4 stayed in a
    assert m[3].sum() == 0 and m[:, 1].sum() == 0 and m[:, 2].sum() == 0  # d not before; b, c not now
    assert as_counts(result) == crosstab_twin(previous, current)


def test_integer_segments_are_in_numeric_order_on_both_axes_with_the_diagonal_aligned():
    previous = pa.table({"id": [1, 2, 3], "segment": pa.array([10, 2, 9], pa.int32())})
    current = pa.table({"id": [1, 2, 3], "segment": pa.array([10, 2, 100], pa.int64())})
    result = migration(previous, current, id_column="id")
    assert result.from_names == ["2", "9", "10", "100", NEW]
    assert result.to_names == ["2", "9", "10", "100", DEPARTED]
    assert np.trace(result.matrix[:-1, :-1]) == 2


@pytest.mark.parametrize("which", ["previous", "current", "both"])
def test_empty_snapshots_give_all_new_all_departed_or_nothing(which):
    previous, current = snapshots(50, seed=1)
    if which in ("previous", "both"):
        previous = previous.slice(0, 0)
    if which in ("current", "both"):
        current = current.slice(0, 0)
    result = migration(previous, current, id_column="id")
    assert as_counts(result) == crosstab_twin(previous, current)
    assert result.matrix.sum() == previous.num_rows + current.num_rows
    assert str(result) and result.to_markdown() and json.loads(result.to_json())


def test_one_customer_in_each_snapshot():
    one = pa.table({"id": pa.array([42], pa.int32()), "segment": ["a"]})
    other = pa.table({"id": pa.array([43], pa.int32()), "segment": ["b"]})
    assert as_counts(migration(one, one, id_column="id")) == {("a", "a"): 1}
    assert as_counts(migration(one, other, id_column="id")) == {("a", DEPARTED): 1, (NEW, "b"): 1}


def test_a_column_other_than_segment_can_hold_the_segments():
    previous = pa.table({"cid": [1, 2], "tier": ["x", "y"]})
    current = pa.table({"cid": [2, 1], "tier": ["x", "x"]})
    result = migration(previous, current, id_column="cid", segments="tier")
    assert as_counts(result) == {("x", "x"): 1, ("y", "x"): 1}


def test_the_result_does_not_depend_on_the_thread_count(monkeypatch):
    monkeypatch.setattr("segmint.monitor.migration.CHUNK_SLOTS", 64)  # many chunks on small data
    previous, current = snapshots(3000, seed=9, null_share=0.02)
    with segmint.threads(1):
        one = migration(previous, current, id_column="id")
    with segmint.threads(2):
        two = migration(previous, current, id_column="id")
    assert np.array_equal(one.matrix, two.matrix)
    assert one.table.equals(two.table) and one.sizes.equals(two.sizes)
    assert one.to_dict() == two.to_dict()


# -- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("side", ["previous", "current"])
def test_a_repeated_id_is_refused_naming_the_id_and_the_snapshot(side, sparse):
    base = 1 << 60 if sparse else 0
    clean = pa.table({"id": [base + 5, base + 9, base + 1], "segment": ["a", "b", "a"]})
    doubled = pa.table({"id": [base + 5, base + 7, base + 9, base + 7], "segment": ["a", "b", "a", "a"]})
    args = (doubled, clean) if side == "previous" else (clean, doubled)
    with pytest.raises(DataError, match=rf"the {side} snapshot holds id={base + 7} more than once"):
        migration(*args, id_column="id")


def test_a_repeated_string_id_is_refused_naming_it():
    previous = pa.table({"id": ["x", "y"], "segment": ["a", "b"]})
    current = pa.table({"id": ["y", "z", "z"], "segment": ["a", "b", "b"]})
    with pytest.raises(DataError, match=r"the current snapshot holds id='z' more than once"):
        migration(previous, current, id_column="id")


def test_null_ids_are_refused_with_their_count():
    previous = pa.table({"id": pa.array([1, None, None, 4]), "segment": ["a"] * 4})
    with pytest.raises(DataError, match=r"the previous snapshot has 2 null ids in column 'id'"):
        migration(previous, previous.slice(0, 1), id_column="id")


@pytest.mark.parametrize("other_type", [pa.uint64(), pa.uint32()], ids=str)
def test_uint64_ids_beyond_2_63_are_matched_with_unsigned_ids_by_their_bits(other_type):
    big = pa.table({"id": pa.array([1, 2**63 + 5, 2**64 - 1, 7], pa.uint64()), "segment": ["a", "b", "c", "a"]})
    if other_type == pa.uint64():
        other = pa.table({"id": pa.array([2**64 - 1, 2**63 + 5, 3], pa.uint64()), "segment": ["a", "b", "c"]})
    else:
        other = pa.table({"id": pa.array([7, 1, 3], other_type), "segment": ["a", "b", "c"]})
    result = migration(big, other, id_column="id")
    assert as_counts(result) == crosstab_twin(big, other)
    assert result.matrix.sum() == len(set(big["id"].to_pylist()) | set(other["id"].to_pylist()))


def test_uint64_ids_beyond_2_63_beside_signed_ids_are_refused_and_within_it_are_matched():
    big = pa.table({"id": pa.array([1, 2**63 + 5], pa.uint64()), "segment": ["a", "b"]})
    signed = pa.table({"id": pa.array([1, -9223372036854775803], pa.int64()), "segment": ["a", "b"]})
    with pytest.raises(DataError, match=r"the previous snapshot holds id=9223372036854775813 \(uint64"):
        migration(big, signed, id_column="id")
    with pytest.raises(DataError, match=r"the current snapshot holds id=9223372036854775813.*other "
                                        r"snapshot's ids are int64"):
        migration(signed, big, id_column="id")
    small = pa.table({"id": pa.array([1, 2**63 - 1], pa.uint64()), "segment": ["a", "b"]})
    assert as_counts(migration(small, signed, id_column="id")) == crosstab_twin(small, signed)


def test_integer_ids_are_not_matched_with_string_ids():
    previous = pa.table({"id": [1, 2], "segment": ["a", "b"]})
    current = pa.table({"id": ["1", "2"], "segment": ["a", "b"]})
    with pytest.raises(DataError, match=r"id column 'id' is int64 in the previous snapshot but string"):
        migration(previous, current, id_column="id")


@pytest.mark.parametrize("label", [NEW, DEPARTED, NONE])
def test_a_segment_named_like_a_reserved_label_is_refused(label):
    previous = pa.table({"id": [1, 2], "segment": ["a", label]})
    with pytest.raises(DataError, match=r"reserves"):
        migration(previous, previous, id_column="id")


def test_a_column_of_more_distinct_values_than_segments_can_have_is_refused():
    table = pa.table({"id": np.arange(1500), "segment": np.arange(1500)})
    with pytest.raises(DataError, match=r"segment column 'segment' of the previous snapshot has 1,500 distinct"):
        migration(table, table, id_column="id")


def test_unknown_columns_and_unsupported_types_are_named():
    table = pa.table({"id": [1, 2], "segment": ["a", "b"], "score": [0.5, 0.2], "flag": [True, False]})
    with pytest.raises(UnknownColumnError, match=r"'segmnt'.*did you mean 'segment'"):
        migration(table, table, id_column="id", segments="segmnt")
    with pytest.raises(UnknownColumnError, match=r"'customer'"):
        migration(table, table, id_column="customer")
    with pytest.raises(UnsupportedTypeError, match=r"segment column 'score' of the previous snapshot is double"):
        migration(table, table, id_column="id", segments="score")
    with pytest.raises(UnsupportedTypeError, match=r"id column 'score' of the previous snapshot is double"):
        migration(table, table, id_column="score")


# -- words and documents -----------------------------------------------------------------------------
def test_findings_say_in_plain_words_which_segment_shrank_and_where_its_customers_went():
    ids = np.arange(1000)
    prev = np.array(["segment_0"] * 887 + ["segment_4"] * 113)
    cur = prev.copy()
    cur[887:887 + 43] = "segment_1"    # 43 of 113 (38.1%) move to segment_1
    cur[887 + 43:887 + 43 + 9] = "segment_0"  # 9 more leave for segment_0, 61 stay
    cur[:18] = "segment_4"             # and 18 arrive: 61 + 18 = 79 of 1,000 = 7.9%
    result = migration(pa.table({"id": ids, "segment": prev}),
                       pa.table({"id": ids[::-1], "segment": cur[::-1]}), id_column="id")
    assert "segment_4 shrank from 11.3% to 7.9%; 38.1% of its customers moved to segment_1" in result.findings
    assert any(f.startswith("segment_1 is new: 4.3% of customers (43)") for f in result.findings)
    assert result.findings[0].startswith("1,000 customers before, 1,000 now: 0 new, 0 departed")
    # segment_0 lost 18 and gained 9 (0.9%): a finding; its 18 went to segment_4
    assert "segment_0 shrank from 88.7% to 87.8%; 2.0% of its customers moved to segment_4" in result.findings
    assert len(result.findings) == 4


def test_findings_name_departed_and_new_customers_as_destinations_and_sources():
    previous = pa.table({"id": np.arange(100), "segment": ["a"] * 50 + ["b"] * 50})
    current = pa.table({"id": np.arange(30, 160), "segment": ["a"] * 20 + ["b"] * 110})
    result = migration(previous, current, id_column="id")
    text = "\n".join(result.findings)
    assert "a shrank from 50.0% to 15.4%; 60.0% of its customers departed" in text
    assert "b grew from 50.0% to 84.6%; 54.5% of its customers are new" in text


def test_to_json_writes_the_document_atomically_and_never_over_a_snapshot(tmp_path):
    previous, current = snapshots(200, seed=11)
    prev_path = tmp_path / "previous.parquet"
    pq.write_table(previous, prev_path)
    result = migration(str(prev_path), current, id_column="id")
    out = tmp_path / "migration.json"
    text = result.to_json(out)
    assert out.read_text(encoding="utf-8") == text
    doc = json.loads(text)
    assert doc["format"] == "segmint-migration"
    assert doc["matrix"] == result.matrix.tolist()
    assert doc["from_names"] == result.from_names and doc["to_names"] == result.to_names
    assert doc["labels"] == {"new": NEW, "departed": DEPARTED, "none": NONE}
    assert doc["findings"] == result.findings
    assert doc["sizes"] == result.sizes.to_pylist()
    with pytest.raises(OutputError):
        result.to_json(prev_path)
    assert pq.read_table(prev_path).equals(previous)


def test_markdown_and_text_show_the_findings_sizes_and_matrix():
    previous, current = snapshots(200, seed=12)
    result = migration(previous, current, id_column="id")
    md = result.to_markdown()
    assert all(f.replace("|", "\\|") in md for f in result.findings)
    assert "| from \\ to | " + " | ".join(result.to_names) + " |" in md
    assert md.count("\n| ") >= len(result.from_names) + len(result.sizes)
    text = str(result)
    assert text.startswith("Segment migration") and all(f in text for f in result.findings)
    assert isinstance(result, Migration) and "segments" in repr(result)


# -- the kernels against their twin --------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_the_join_kernels_match_a_dict_loop_in_any_chunks(seed):
    rng = np.random.default_rng(seed)
    span = int(rng.integers(1, 60))
    n, m = int(rng.integers(0, span + 1)), int(rng.integers(0, span + 1))
    prev_keys = rng.choice(span, n, replace=False).astype(np.int64)
    cur_keys = rng.choice(span, m, replace=False).astype(np.int64)
    if seed % 3 == 1 and m > 1:
        cur_keys[-1] = cur_keys[0]  # a repeated id in current
    if seed % 3 == 2 and n > 1:
        prev_keys[1] = prev_keys[0]  # and in previous
    n_from, n_to = 3, 4
    prev_codes = rng.integers(0, n_from, n).astype(np.int32)
    cur_codes = rng.integers(0, n_to, m).astype(np.int32)
    expected, repeated = naive_join(prev_keys, prev_codes, cur_keys, cur_codes, n_from, n_to)
    base = int(rng.integers(-5, 5))
    slots = np.zeros(span, np.int32), np.zeros(span, np.int32)
    rows = (kj.scatter_codes(prev_keys + base, base, prev_codes, slots[0]),
            kj.scatter_codes(cur_keys + base, base, cur_codes, slots[1]))
    if repeated is not None:
        assert rows[("previous", "current").index(repeated[0])] == repeated[1]
        return
    assert rows == (-1, -1)
    whole = np.zeros((n_from + 1, n_to + 1), np.int64)
    kj.crosstab_slots(slots[0], slots[1], 0, span, whole)
    assert np.array_equal(whole, expected)
    cut = int(rng.integers(0, span + 1))
    parts = [np.zeros_like(whole), np.zeros_like(whole)]
    kj.crosstab_slots(slots[0], slots[1], 0, cut, parts[0])
    kj.crosstab_slots(slots[0], slots[1], cut, span, parts[1])
    assert np.array_equal(parts[0] + parts[1], expected)


@pytest.mark.parametrize("p_bits", [1, 3])
def test_hash_partitions_number_each_distinct_id_once_within_its_partition(p_bits):
    rng = np.random.default_rng(p_bits)
    x = rng.integers(-2**63, 2**63 - 1, 300, dtype=np.int64)
    ids = np.concatenate([x, x[::3], rng.integers(-5, 5, 40)]).astype(np.int64)
    shift = 64 - p_bits
    counts = np.zeros(1 << p_bits, np.int64)
    kj.partition_count(ids, shift, counts)
    starts = np.concatenate([[0], np.cumsum(counts)])
    part_ids, part_rows = np.empty_like(ids), np.empty_like(ids)
    kj.partition_scatter(ids, shift, starts[:-1].copy(), part_ids, part_rows)
    assert np.array_equal(part_ids, ids[part_rows]) and sorted(part_rows.tolist()) == list(range(ids.size))
    out = np.full(ids.size, -1, np.int64)
    cap = 1024
    for lo in range(counts.size):  # one partition per call: as any chunking would
        assert kj.number_partitions(part_ids, part_rows, starts, lo, lo + 1, 128,
                                    np.empty(cap, np.int64), np.empty(cap, np.int32), out) == -1
    # the twin: per partition, distinct ids numbered from the partition's start in order of appearance
    expected = {}
    for p in range(counts.size):
        seen = list(dict.fromkeys(part_ids[starts[p]:starts[p + 1]].tolist()))
        expected.update({v: starts[p] + k for k, v in enumerate(seen)})
    assert out.tolist() == [expected[v] for v in ids.tolist()]


def test_sparse_ids_are_numbered_the_same_for_any_thread_count(monkeypatch):
    monkeypatch.setattr("segmint.monitor.migration.PARTITIONS_PER_CHUNK", 1)
    previous, current = snapshots(20_000, seed=13, sparse=True)
    with segmint.threads(1):
        one = migration(previous, current, id_column="id")
    with segmint.threads(2):
        two = migration(previous, current, id_column="id")
    assert np.array_equal(one.matrix, two.matrix)
    assert as_counts(one) == crosstab_twin(previous, current)


# -- hypothesis -----------------------------------------------------------------------------------------
@st.composite
def small_snapshots(draw):
    ids = st.lists(st.integers(-50, 50) | st.integers(-2**62, 2**62), unique=True, max_size=25)
    segs = st.sampled_from(["a", "b", "c", "d", None])
    prev_ids, cur_ids = draw(ids), draw(ids)
    prev = pa.table({"id": pa.array(prev_ids, pa.int64()),
                     "segment": pa.array([draw(segs) for _ in prev_ids], pa.string())})
    cur = pa.table({"id": pa.array(cur_ids, pa.int64()),
                    "segment": pa.array([draw(segs) for _ in cur_ids], pa.string())})
    return prev, cur


@settings(max_examples=150, deadline=None)
@given(small_snapshots())
def test_any_small_pair_of_snapshots_matches_the_crosstab(pair):
    previous, current = pair
    result = migration(previous, current, id_column="id")
    assert as_counts(result) == crosstab_twin(previous, current)
    assert result.previous_rows == previous.num_rows and result.current_rows == current.num_rows
    assert result.sizes["previous_count"].to_numpy().sum() == previous.num_rows
    assert result.sizes["current_count"].to_numpy().sum() == current.num_rows


# -- hash flooding ---------------------------------------------------------------------------------------
_M64 = (1 << 64) - 1


def _unxorshift(y, s):
    x = y
    for _ in range(64 // s + 1):
        x = y ^ (x >> s)
    return x


def _unmix(z):
    """The id whose splitmix64 hash (the join's, public) is ``z``: what an adversary computes."""
    z = _unxorshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 1 << 64)) & _M64
    z = _unxorshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & _M64
    z = _unxorshift(z, 30)
    z = (z - 0x9E3779B97F4A7C15) & _M64
    return z - (1 << 64) if z >= 1 << 63 else z


def adversarial_ids(n):
    """Ids whose hashes are ``i << 24``: one partition (top bits 0) and one table slot (low bits
    0) for all of them, so unbounded linear probing would be quadratic."""
    return np.array([_unmix(i << 24) for i in range(1, n + 1)], np.int64)


def test_the_inverse_hash_of_the_test_is_the_kernels_hash():
    ids = adversarial_ids(5)
    assert [int(np.uint64(kj._mix(v))) for v in ids.tolist()] == [i << 24 for i in range(1, 6)]


def test_ids_chosen_to_collide_in_the_hash_finish_fast_and_match_the_crosstab():
    ids = adversarial_ids(40_000)
    rng = np.random.default_rng(21)
    prev_ids, cur_ids = ids[:30_000], rng.permutation(ids[10_000:])
    previous = pa.table({"id": prev_ids, "segment": rng.choice(["a", "b", "c"], prev_ids.size)})
    current = pa.table({"id": cur_ids, "segment": rng.choice(["a", "b", "d"], cur_ids.size)})
    migration(previous.slice(0, 50), current.slice(0, 50), id_column="id")  # compiled outside the clock
    start = time.perf_counter()
    result = migration(previous, current, id_column="id")
    elapsed = time.perf_counter() - start
    assert elapsed < 0.3, f"{elapsed:.2f} s for 40k adversarial ids"
    assert as_counts(result) == crosstab_twin(previous, current)
    with pytest.raises(DataError, match=rf"the current snapshot holds id={int(cur_ids[5])} more than once"):
        migration(previous, pa.concat_tables([current, current.slice(5, 1)]), id_column="id")


def test_a_probe_past_the_bound_stops_the_kernel_and_names_its_partition():
    ids = np.concatenate([np.arange(10, dtype=np.int64), adversarial_ids(40)])
    part_rows = np.arange(ids.size, dtype=np.int64)
    starts = np.array([0, 10, ids.size], np.int64)  # two partitions: 10 plain ids, 40 colliding ones
    out = np.full(ids.size, -1, np.int64)
    keys, numbers = np.empty(128, np.int64), np.empty(128, np.int32)
    assert kj.number_partitions(ids, part_rows, starts, 0, 2, 8, keys, numbers, out) == 1
    assert out[:10].tolist() == list(range(10))  # the first partition was numbered
    out[:] = -1
    assert kj.number_partitions(ids, part_rows, starts, 0, 2, 64, keys, numbers, out) == -1
    assert out.tolist() == list(range(ids.size))


def test_each_partition_sizes_its_own_table_so_many_small_partitions_stay_cheap():
    # one large partition and many small ones: each small one resets only its own slots,
    # and a table of 16 slots is enough scratch for partitions of up to 8 ids
    ids = np.arange(1000, dtype=np.int64) * 7919
    starts = np.arange(0, 1001, 8, dtype=np.int64)
    starts = np.append(starts, 1000) if starts[-1] != 1000 else starts
    out = np.full(ids.size, -1, np.int64)
    assert kj.number_partitions(ids, np.arange(1000, dtype=np.int64), starts, 0, starts.size - 1, 128,
                                np.empty(16, np.int64), np.empty(16, np.int32), out) == -1
    assert out.tolist() == list(range(1000))


# -- arguments, words -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, name", [({"id_column": None}, "id_column"),
                                          ({"id_column": "id", "segments": 1}, "segments"),
                                          ({"id_column": ["id"]}, "id_column"),
                                          ({"id_column": "id", "segments": ["segment"]}, "segments"),
                                          ({"id_column": ""}, "id_column")])
def test_an_argument_that_is_not_a_column_name_is_refused_naming_the_argument(kwargs, name):
    table = pa.table({"id": [1, 2], "segment": ["a", "b"]})
    with pytest.raises(ParameterError, match=rf"^{name} must be the name of a column"):
        migration(table, table, **kwargs)


def test_markdown_escapes_line_breaks_and_pipes_in_segment_names():
    previous = pa.table({"id": [1, 2], "segment": ["two\nlines", "a|b"]})
    current = pa.table({"id": [1, 2], "segment": ["win\r\ndows", "a|b"]})
    md = migration(previous, current, id_column="id").to_markdown()
    assert "two<br>lines" in md and "win<br>dows" in md and "a\\|b" in md
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    # every row of the matrix and sizes tables is one line with its full set of cells
    assert all(line.endswith("|") for line in table_lines)
    assert not any(line.startswith(("lines", "dows")) for line in md.splitlines())


def test_customers_without_a_segment_in_both_snapshots_did_not_stay_in_their_segment():
    previous = pa.table({"id": np.arange(10), "segment": ["a"] * 4 + [None] * 6})
    current = pa.table({"id": np.arange(10), "segment": ["a"] * 4 + [None] * 6})
    result = migration(previous, current, id_column="id")
    assert "; 40.0% of the 10 in both stayed in their segment" in result.findings[0]


def test_the_unassigned_group_is_described_as_customers_with_no_segment_now():
    n = 8936
    previous = pa.table({"id": np.arange(n), "segment": pa.array(["a"] * (n - 100) + [None] * 100)})
    current = pa.table({"id": np.arange(n), "segment": pa.array(["a"] * (n - 420) + [None] * 420)})
    result = migration(previous, current, id_column="id")
    assert "420 customers (4.7%) have no segment now (was 1.1%)" in result.findings
    assert not any(f.startswith(NONE) for f in result.findings)
    fresh = migration(previous.slice(0, n - 100), previous.slice(0, 1).set_column(
        1, "segment", pa.array([None], pa.string())), id_column="id")
    assert "1 customer (100.0%) has no segment now" in fresh.findings


def test_the_largest_outflow_and_inflow_name_the_main_destination_and_source_with_their_share():
    previous = pa.table({"id": np.arange(100), "segment": ["a"] * 50 + ["b"] * 50})
    current = pa.table({"id": np.arange(30, 160), "segment": ["a"] * 20 + ["b"] * 110})
    result = migration(previous, current, id_column="id")
    assert result.largest_outflow("a") == (DEPARTED, pytest.approx(30 / 50))
    assert result.largest_inflow("b") == (NEW, pytest.approx(60 / 110))
    # nobody moved between a and b: a's 20 in both stayed, b's 50 too
    assert result.largest_outflow("b") is None and result.largest_inflow("a") is None
    assert result.largest_outflow("nope") is None and result.largest_inflow(NEW) is None


def test_weighted_findings_carry_each_segment_s_share_change_beside_the_same_words():
    ids = np.arange(1000)
    prev = np.array(["x"] * 600 + ["y"] * 400)
    cur = prev.copy()
    cur[:100] = "y"  # x: 60% -> 50%
    result = migration(pa.table({"id": ids, "segment": prev}), pa.table({"id": ids, "segment": cur}),
                       id_column="id")
    assert [text for _, text in result.weighted_findings] == result.findings
    weights = dict((text.split(" ")[0], w) for w, text in result.weighted_findings[1:])
    assert weights == {"x": pytest.approx(0.1), "y": pytest.approx(0.1)}
    assert result.weighted_findings[0][0] == 1.0


# -- words agree with the figures shown (points), plurals -------------------------------------------
def test_a_change_shown_as_half_a_point_is_named_and_a_smaller_one_is_about_the_same():
    # a: 50.0% -> 49.505% (-0.495 pts, shown -0.5 pts); b: the other way
    previous = pa.table({"id": np.arange(2000), "segment": ["a"] * 1000 + ["b"] * 1000})
    current = pa.table({"id": np.arange(2020), "segment": ["a"] * 1000 + ["b"] * 1020})
    result = migration(previous, current, id_column="id")
    sizes = {r["segment"]: r for r in result.sizes.to_pylist()}
    assert sizes["a"]["change"] == pytest.approx(-0.00495, abs=1e-5)
    assert (sizes["a"]["status"], sizes["b"]["status"]) == ("share shrank", "share grew")
    assert any(f.startswith("a shrank from 50.0% to 49.5%") for f in result.findings)
    assert "-0.5 pts  share shrank" in str(result) and "| -0.5 pts | share shrank |" in result.to_markdown()
    # +0.025 pts: shown 0.0 pts, about the same, no finding
    current = pa.table({"id": np.arange(2001), "segment": ["a"] * 1001 + ["b"] * 1000})
    result = migration(previous, current, id_column="id")
    assert {r["status"] for r in result.sizes.to_pylist()} == {"about the same"}
    assert len(result.findings) == 1 and "0.0 pts  about the same" in str(result)
    assert "%  " not in str(result).split("status")[1]  # share changes are points, not percent


def test_one_customer_is_one_customer_not_one_customers():
    result = migration(pa.table({"id": [1], "segment": ["a"]}), pa.table({"id": [1], "segment": ["a"]}),
                       id_column="id")
    assert result.findings[0].startswith("1 customer before, 1 now: 0 new, 0 departed")
