"""The synthetic customer base: deterministic, realistic, consistent with its event log."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import segmint
from segmint.datasets import NUMERIC_FEATURES, PERSONAS, customer_schema
from segmint.datasets.customers import BLOCK_SIZE, iter_customer_blocks

AS_OF = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def base():
    return segmint.make_customers(20_000, random_state=7, with_events=True)


def test_same_seed_same_data_and_threads_do_not_matter():
    a = segmint.make_customers(3000, random_state=1)
    with segmint.threads(1):
        b = pa.Table.from_batches([c for c, _ in iter_customer_blocks(3000, random_state=1)])
    assert a.equals(b)
    assert not a.equals(segmint.make_customers(3000, random_state=2))


def test_block_boundaries_and_ids():
    n = BLOCK_SIZE + 5
    with segmint.threads(2):
        blocks = list(iter_customer_blocks(n, random_state=3))
    assert [c.num_rows for c, _ in blocks] == [BLOCK_SIZE, 5]
    ids = np.concatenate([c.column("customer_id").to_numpy() for c, _ in blocks])
    assert np.array_equal(ids, 1_000_001 + np.arange(n))


@pytest.mark.parametrize("n", [0, 1, 2, 17])
def test_tiny_sizes(n):
    customers, events = segmint.make_customers(n, random_state=0, with_events=True)
    assert customers.num_rows == n
    assert customers.schema.equals(customer_schema(), check_metadata=False)
    assert pc.sum(customers.column("frequency")).as_py() in (None, events.filter(
        pc.equal(events.column("event_type"), "purchase")).num_rows)


def test_negative_size():
    with pytest.raises(ValueError):
        segmint.make_customers(-1)


def test_columns_are_realistic(base):
    customers, _ = base
    assert set(NUMERIC_FEATURES) <= set(customers.column_names)
    assert len(NUMERIC_FEATURES) == 16
    persona = customers.column("true_segment").to_numpy()
    shares = np.bincount(persona, minlength=len(PERSONAS)) / persona.size
    assert np.all(shares > 0.03)
    spend = customers.column("monetary").to_numpy()
    buyers = spend[spend > 0]
    assert np.mean(buyers) > 1.5 * np.median(buyers)  # skewed like real shops
    freq = customers.column("frequency").to_numpy()
    assert freq.max() > 20 * np.median(freq[freq > 0])  # heavy tail of frequent buyers
    age_nulls = customers.column("age").null_count / customers.num_rows
    assert 0.04 < age_nulls < 0.10
    prospects = persona == PERSONAS.index("window_shoppers")
    assert np.all(freq[prospects] == 0)
    assert customers.column("recency_days").null_count == prospects.sum()
    assert customers.schema.field("region").type == pa.dictionary(pa.int32(), pa.string())
    # the personas differ where they should: champions spend more than bargain hunters
    champions = spend[persona == 0].mean()
    bargain = spend[persona == PERSONAS.index("bargain_hunters")].mean()
    assert champions > 3 * bargain


def test_dates_fit_together(base):
    customers, _ = base
    day0 = (AS_OF - dt.date(1970, 1, 1)).days
    signup = customers.column("signup_date").cast(pa.int32()).to_numpy()
    first = customers.column("first_order_date").cast(pa.int32()).to_numpy(zero_copy_only=False)
    last = customers.column("last_order_date").cast(pa.int32()).to_numpy(zero_copy_only=False)
    recency = customers.column("recency_days").to_numpy(zero_copy_only=False)
    has = ~np.isnan(recency)
    assert np.all(signup[has] <= first[has])
    assert np.all(first[has] <= last[has])
    assert np.all(last[has] < day0)
    assert np.array_equal(day0 - last[has], recency[has])
    assert np.array_equal(day0 - signup, customers.column("tenure_days").to_numpy())


def test_event_log_matches_the_customers(base):
    customers, events = base
    pd = pytest.importorskip("pandas")
    ev = events.to_pandas()
    cu = customers.to_pandas().set_index("customer_id")
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    assert (ev["ts"] < as_of).all()
    purchases = ev[ev["event_type"] == "purchase"]
    assert purchases["amount"].notna().all() and ev.loc[ev["event_type"] != "purchase", "amount"].isna().all()
    g = purchases.groupby("customer_id")
    counts = g.size().reindex(cu.index, fill_value=0)
    assert (counts == cu["frequency"]).all()
    sums = g["amount"].sum().reindex(cu.index, fill_value=0.0)
    np.testing.assert_allclose(sums, cu["monetary"], rtol=1e-9, atol=1e-6)
    last_day = g["ts"].max().dt.tz_convert(None).dt.normalize()
    assert (last_day == pd.to_datetime(cu.loc[last_day.index, "last_order_date"])).all()
    first_day = g["ts"].min().dt.tz_convert(None).dt.normalize()
    assert (first_day == pd.to_datetime(cu.loc[first_day.index, "first_order_date"])).all()
    views = ev[(ev["event_type"] == "view") & (ev["ts"] >= as_of - pd.Timedelta(days=30))]
    per = views.groupby("customer_id").size().reindex(cu.index, fill_value=0)
    assert (per == cu["sessions_30d"]).all()
    opens = ev[ev["event_type"] == "email_open"].groupby("customer_id").size().reindex(cu.index, fill_value=0)
    assert (opens == cu["email_opens_90d"]).all()


def test_write_customers_streams_to_files(tmp_path):
    counts = segmint.write_customers(tmp_path / "c.arrow", 1000, random_state=4, events_path=tmp_path / "e.parquet")
    assert counts["customers"] == 1000 and counts["events"] > 1000
    src = segmint.open(tmp_path / "c.arrow")
    assert src.zero_copy and src.num_rows == 1000
    assert src.read().equals(segmint.make_customers(1000, random_state=4))
    assert segmint.open(tmp_path / "e.parquet").num_rows == counts["events"]
    segmint.write_customers(str(tmp_path / "ds") + "/", 1000, random_state=4)
    assert segmint.open(tmp_path / "ds").read().equals(segmint.make_customers(1000, random_state=4))


def test_as_of_is_recorded_and_used():
    t = segmint.make_customers(100, random_state=0, as_of="2025-01-15")
    assert t.schema.metadata[b"segmint.as_of"] == b"2025-01-15"
    last = t.column("last_order_date").drop_null()
    assert pc.max(last).as_py() < dt.date(2025, 1, 15)


@pytest.mark.parametrize("kwargs, words", [
    ({"n_customers": -1}, "n_customers"), ({"n_customers": 10**12}, "at most"),
    ({"n_customers": 10, "random_state": -1}, "random_state"), ({"n_customers": 10, "as_of": "2026-13-45"}, "ISO date"),
    ({"n_customers": "10"}, "whole number"),
])
def test_write_customers_checks_its_arguments_before_writing_anything(tmp_path, kwargs, words):
    with pytest.raises(segmint.errors.ParameterError, match=words):
        segmint.write_customers(tmp_path / "c.arrow", events_path=tmp_path / "e.arrow", **kwargs)
    assert not list(tmp_path.iterdir())


def test_write_customers_marks_a_dataset_folder_and_replaces_only_its_own(tmp_path):
    segmint.write_customers(f"{tmp_path}/c/", 100)
    segmint.write_customers(f"{tmp_path}/c/", 120)  # a rerun replaces what segmint wrote
    assert segmint.open(tmp_path / "c").num_rows == 120
    (tmp_path / "c" / "mine.txt").write_text("x")
    with pytest.raises(segmint.OutputError, match="mine.txt"):
        segmint.write_customers(f"{tmp_path}/c/", 100)
    assert segmint.open(tmp_path / "c").num_rows == 120


def test_customer_features_are_the_feature_spec_of_the_generated_customers():
    from segmint.datasets import CUSTOMER_FEATURES, customer_features
    X, names, truth = customer_features(3000, random_state=2)
    table = segmint.make_customers(3000, random_state=2)
    expected = segmint.FeatureSpec(CUSTOMER_FEATURES).fit_transform(table, dtype=np.float32)
    assert X.dtype == np.float32 and X.flags.c_contiguous and names == list(NUMERIC_FEATURES)
    np.testing.assert_array_equal(X, expected)
    assert np.array_equal(truth, table.column("true_segment").to_numpy())
    # what a user's pipeline would do: no nulls left, standardised columns
    assert np.isfinite(X).all()
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(X.std(axis=0), 1, atol=1e-3)


def test_write_customers_follows_segmints_thread_setting(tmp_path, monkeypatch):
    import inspect
    from segmint.datasets import customers as module
    assert "threads" not in inspect.signature(segmint.write_customers).parameters
    seen = []
    real = module.ThreadPoolExecutor
    monkeypatch.setattr(module, "ThreadPoolExecutor", lambda max_workers: seen.append(max_workers) or real(max_workers))
    monkeypatch.setattr(module, "BLOCK_SIZE", 100)  # several blocks, so a pool is used at all
    with segmint.threads(2):
        segmint.write_customers(tmp_path / "a.arrow", 450, random_state=1)
    with segmint.threads(1):
        segmint.write_customers(tmp_path / "b.arrow", 450, random_state=1)
    assert seen == [2]  # one thread: drawn inline, no pool
    assert segmint.open(tmp_path / "a.arrow").read().equals(segmint.open(tmp_path / "b.arrow").read())
