"""segmint.dask.profile against local segmint.profile on a real LocalCluster, field by field."""
import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed", reason="segmint.dask needs the dask extra")
dd = pytest.importorskip("dask.dataframe", reason="dask DataFrame input needs dask[dataframe]")

import segmint  # noqa: E402
from segmint.errors import DataError, ParameterError  # noqa: E402
from segmint.explain.profile import profile as local_profile  # noqa: E402
from test_profile import assert_same_profile, layout_customers, write_layout  # noqa: E402

sd_profile = pytest.importorskip("segmint.dask.profiling")

CHUNK = 65_536
AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
KW = dict(id_column="customer_id", revenue="money", reachable="opt_in")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def customers():
    """Two chunks of 65,536 rows (the last short); a city first seen in the last chunk."""
    return layout_customers(CHUNK + 5_003, seed=3)


@pytest.fixture(scope="module")
def folder(customers, tmp_path_factory):
    """The customers in files and row groups that fit no chunk edge."""
    return write_layout(customers, tmp_path_factory.mktemp("data") / "customers", [50_001, 60_000], 9_999)


def test_a_segment_column_profile_equals_local_for_any_chunking_and_file_list(client, folder):
    want = local_profile(folder, segments="segment", **KW)
    assert want.categories == ["city"] and "brest" in str(want.table.column("category").to_pylist())
    for rows_per_chunk in (CHUNK, 2 * CHUNK):
        got = sd_profile.profile(folder, segments="segment", client=client, rows_per_chunk=rows_per_chunk, **KW)
        assert_same_profile(got, want)
    files = sorted(str(p) for p in Path(folder).glob("*.parquet"))
    got = sd_profile.profile(files, segments="segment", client=client, rows_per_chunk=CHUNK, **KW)
    assert_same_profile(got, want, inputs=False)


def test_a_segmenter_and_rule_sets_profile_equal_local(client, customers, folder):
    model = segmint.Segmenter(features=["visits", "big"], clusterer=segmint.KMeans(n_clusters=3, random_state=0),
                              id_column="customer_id")
    model.fit(customers.slice(0, 5_000))
    water = segmint.RuleSet({"rich": "money > 80", "loyal": "visits >= 30"}, default="rest")
    multi = segmint.RuleSet({"rich": "money > 80", "loyal": "visits >= 30", "odd": "score < 0"}, mode="multi")
    for segments in (model, water, multi):
        want = local_profile(folder, segments=segments, as_of=AS_OF, **KW)
        got = sd_profile.profile(folder, segments=segments, as_of=AS_OF, client=client, rows_per_chunk=CHUNK, **KW)
        assert_same_profile(got, want)
    assert got.counts.sum() > got.n_rows - got.n_unassigned  # multi: rows in several segments


def test_a_table_of_segments_is_joined_on_the_workers(client, customers, folder, tmp_path):
    ids = customers.column("customer_id").to_numpy()[::3]
    table = tmp_path / "segments.parquet"
    pq.write_table(pa.table({"customer_id": ids, "segment": pa.array(np.where(ids % 2, "odd", "even"))}), table)
    want = local_profile(folder, segments=str(table), **KW)
    got = sd_profile.profile(folder, segments=str(table), client=client, rows_per_chunk=CHUNK, **KW)
    assert_same_profile(got, want)
    assert got.n_unassigned == customers.num_rows - len(ids)


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_dask_dataframe_profile_equals_local_on_its_rows(client, customers, partitions):
    frame = customers.drop(["opt_in"]).to_pandas()  # (a nullable boolean is an object column in pandas)
    frame["visits"] = frame["visits"].astype("int32")
    want = local_profile(frame, segments="segment", id_column="customer_id", revenue="money")
    got = sd_profile.profile(dd.from_pandas(frame, npartitions=partitions), segments="segment",
                             id_column="customer_id", revenue="money", client=client, rows_per_chunk=CHUNK)
    assert_same_profile(got, want)


def test_integer_segments_one_row_and_empty_inputs_equal_local(client, tmp_path):
    rng = np.random.default_rng(5)
    n = CHUNK + 17
    x = rng.normal(0, 1, n)
    x[rng.random(n) < 0.05] = np.nan  # NaN and nulls: both left out of the moments
    t = pa.table({"seg": pa.array(rng.integers(-2, 3, n), mask=rng.random(n) < 0.05),
                  "x": pa.array(x, mask=rng.random(n) < 0.1),
                  "name": pa.array(rng.choice(["u", "v"], n).astype(object))})
    for rows in (n, 1, 0):
        path = tmp_path / f"t{rows}.parquet"
        pq.write_table(t.slice(0, rows), path)
        want = local_profile(str(path), segments="seg")
        got = sd_profile.profile(str(path), segments="seg", client=client, rows_per_chunk=CHUNK)
        assert_same_profile(got, want)
        assert got.n_rows == rows


def test_a_string_column_dropped_only_when_chunks_are_put_together_is_left_out_as_local(client, tmp_path):
    # 600 distinct values in each chunk, 1,200 together: no chunk alone passes the limit
    n = 2 * CHUNK
    emails = np.array([f"c{(i // CHUNK) * 600 + i % 600}@x.org" for i in range(n)], dtype=object)
    t = pa.table({"seg": pa.array(np.where(np.arange(n) % 3 == 0, "a", "b")), "email": pa.array(emails),
                  "region": pa.array(np.where(np.arange(n) % 5 == 0, "north", "south"))})
    path = tmp_path / "emails.parquet"
    pq.write_table(t, path, row_group_size=10_000)
    want = local_profile(str(path), segments="seg")
    assert want.categories == ["region"] and "1,200 when dropped" in want.notes[0]
    got = sd_profile.profile(str(path), segments="seg", client=client, rows_per_chunk=CHUNK)
    assert_same_profile(got, want)
    with pytest.raises(DataError, match="categories= column 'email' has more than 1,000"):
        sd_profile.profile(str(path), segments="seg", categories=["email"], client=client, rows_per_chunk=CHUNK)


def test_bad_arguments_are_refused_before_any_task(client, folder, customers):
    with pytest.raises(ParameterError, match="per-row labels"):
        sd_profile.profile(folder, segments=np.zeros(customers.num_rows, int), client=client)
    with pytest.raises(ParameterError, match="multiple of 65,536"):
        sd_profile.profile(folder, segments="segment", client=client, rows_per_chunk=1000)
    with pytest.raises(segmint.errors.UnknownColumnError, match="segment"):
        sd_profile.profile(folder, segments="segmnt", client=client)
    with pytest.raises(ParameterError):
        sd_profile.profile(folder, segments="segment", top=0, client=client)


def test_a_read_parquet_frame_profile_equals_local_on_the_files(client, folder):
    kw = dict(segments="segment", id_column="customer_id", revenue="money")
    want = local_profile(folder, **kw)
    got = sd_profile.profile(dd.read_parquet(folder), client=client, rows_per_chunk=CHUNK, **kw)
    assert_same_profile(got, want, inputs=False)
    assert folder in got.inputs  # the folder it read: never written over (nor anything in it)


def test_many_small_files_read_through_dask_for_few_columns_keep_every_row(client, tmp_path):
    # dask fuses the partitions of a Parquet read of few columns when it computes on the frame:
    # chunk slices must pair with the partitions they were measured on (a review finding in
    # sd.aggregate, where 80% of the rows vanished)
    table = layout_customers(4_000, seed=5)
    rng = np.random.default_rng(5)
    for j in range(20):  # columns the profile never reads: what makes dask fuse the read
        table = table.append_column(f"x{j}", pa.array(rng.normal(size=table.num_rows)))
    (tmp_path / "in").mkdir()
    for i in range(20):
        pq.write_table(table.slice(i * 200, 200), tmp_path / "in" / f"p{i:02d}.parquet")
    for kw in (dict(segments="segment", features=["money"], categories=[]),
               dict(segments="segment", features=["visits"], categories=[])):
        want = local_profile(str(tmp_path / "in"), **kw)
        got = sd_profile.profile(dd.read_parquet(tmp_path / "in"), client=client, rows_per_chunk=CHUNK, **kw)
        assert_same_profile(got, want, inputs=False)
    kw = dict(segments="segment", features=["money"], categories=[], id_column="customer_id")
    want = local_profile(str(tmp_path / "in"), **kw)
    got = sd_profile.profile(dd.read_parquet(tmp_path / "in"), client=client, rows_per_chunk=CHUNK, **kw)
    assert_same_profile(got, want, inputs=False)
