"""segmint.dask.score and segmint.dask.warmup on a real LocalCluster (2 worker processes).

The reference is local segmint on the same data: the dataset written by the cluster, read back
in part-name order, must equal ``Segmenter.score`` / ``RuleSet.evaluate`` (Arrow
``Table.equals``), whatever the chunking of a Parquet input or the partitions of a dask
DataFrame. The outputs follow segmint's rules: nothing over an input or over a folder segmint
did not write, nothing at all when a task fails.
"""
import importlib
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed", reason="segmint.dask needs the dask extra")
dask = pytest.importorskip("dask", reason="segmint.dask needs the dask extra")
dd = pytest.importorskip("dask.dataframe", reason="dask DataFrame inputs need dask[dataframe]")

import segmint  # noqa: E402
import segmint.dask as sd  # noqa: E402
from segmint import KMeans, RuleSet, Segmenter  # noqa: E402
from segmint import FeatureError  # noqa: E402
from segmint.errors import DataError, OutputError, UnknownColumnError  # noqa: E402
from segmint.io import outputs  # noqa: E402

AS_OF = "2026-10-01"
ALIGN = 65_536
N = 2 * ALIGN + 5_003  # three chunks of 65,536 rows, the last short
COLUMNS = ["customer_id", "recency_days", "frequency", "monetary", "sessions_30d", "email_opt_in",
           "region", "last_order_date"]
SPEC = [{"column": "recency_days", "impute": "median", "log1p": True, "indicator": True},
        {"column": "frequency", "log1p": True},
        {"column": "monetary", "log1p": True, "scale": "robust"},
        "sessions_30d",
        {"column": "region", "one_hot": True}]
RULES = [("no_consent", "not email_opt_in"), ("lapsed", "days_since(last_order_date) > 365"),
         ("never_bought", "frequency = 0")]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def customers():
    table = segmint.make_customers(N, random_state=3).select(COLUMNS)
    # a few nulls where the features impute them and the rules meet them
    recency = pc.if_else(pa.array(np.arange(N) % 97 == 0), pa.scalar(None, pa.int32()), table["recency_days"])
    return table.set_column(1, "recency_days", recency)


@pytest.fixture(scope="module")
def folder(customers, tmp_path_factory):
    """Two Parquet files with odd row groups, so that chunks cut across groups and files."""
    path = tmp_path_factory.mktemp("in") / "customers"
    path.mkdir()
    cut = 70_001
    pq.write_table(customers.slice(0, cut), path / "a.parquet", row_group_size=30_011)
    pq.write_table(customers.slice(cut), path / "b.parquet", row_group_size=17_777)
    return path


@pytest.fixture(scope="module")
def segmenter(customers):
    model = Segmenter(SPEC, clusterer=KMeans(n_clusters=4, random_state=0, max_iter=20),
                      rules=RuleSet(RULES, default="active"), id_column="customer_id")
    return model.fit(customers.slice(0, 20_000), as_of=AS_OF)


@pytest.fixture(scope="module")
def rules():
    return RuleSet(RULES, default="active")


def read_back(path):
    """The dataset's parts in name order, as one table (what a reader of the output gets)."""
    names = sorted(n for n in os.listdir(path) if n.endswith(".parquet"))
    return pa.concat_tables([pq.read_table(os.path.join(path, n)) for n in names])


def local_dataset(model_score, tmp_path):
    """Local segmint's result written as a dataset and read back the same way."""
    out = tmp_path / "local"
    model_score(out=str(out) + "/")
    return read_back(out)


# -- warm-up ----------------------------------------------------------------------------------------
def light_warmup(verbose=False, n_jobs=None):
    """One kernel and its record, as segmint.warmup() leaves them for every kernel (the whole
    warm-up compiles for about a minute on a cold cache: too long for this suite)."""
    assert n_jobs == 1, "a worker warms up in its own process only"
    from segmint import _warmup
    from segmint.kernels.reduce import weighted_sum
    weighted_sum(np.ones(3), np.ones(0), 0, 3, np.zeros(1))
    _warmup._write_manifest()
    return 0.0


def use_light_warmup():  # on a worker
    segmint._real_warmup = segmint.warmup
    segmint.warmup = light_warmup


def use_real_warmup():  # on a worker
    segmint.warmup = segmint._real_warmup


def test_warmup_runs_on_every_worker_and_a_second_call_loads_from_the_cache(client):
    client.run(use_light_warmup)
    try:
        first = sd.warmup(client)
        second = sd.warmup()  # the current client by default
    finally:
        client.run(use_real_warmup)
    workers = sorted(client.scheduler_info()["workers"])
    assert sorted(first) == sorted(second) == workers
    for report in first.values():
        assert report.action in ("compiled", "loaded")
        assert report.numba_cache_dir == os.environ["NUMBA_CACHE_DIR"]  # the tests' own cache
        assert report.cache.startswith(report.numba_cache_dir)
    for report in second.values():
        assert report.action == "loaded", report.before
        assert "load from the cache" in report.before


# -- equal to local segmint ---------------------------------------------------------------------------
@pytest.mark.parametrize("rows_per_chunk", [ALIGN, 4 * ALIGN])
def test_a_segmenter_with_rules_scores_a_parquet_folder_as_local_segmint_does(client, folder, segmenter,
                                                                              tmp_path, rows_per_chunk):
    out = tmp_path / "scored"
    result = sd.score(segmenter, folder, out, as_of=AS_OF, rows_per_chunk=rows_per_chunk)
    chunks = -(-N // rows_per_chunk)
    assert result == (str(out), N, chunks)
    assert sorted(os.listdir(out)) == [outputs.MARKER] + [f"part-{i:05d}.parquet" for i in range(chunks)]
    back = read_back(out)
    assert back.equals(local_dataset(lambda out: segmenter.score(folder, out=out, as_of=AS_OF), tmp_path))
    # and the rows are local segmint's in memory, value for value
    local = segmenter.score(folder, as_of=AS_OF)
    assert back.select(["customer_id", "segment_id", "distance"]).equals(
        local.select(["customer_id", "segment_id", "distance"]))
    for name in ("segment", "rule"):
        assert back[name].to_pylist() == local[name].to_pylist()


@pytest.mark.parametrize(("mode", "memberships"), [("waterfall", "columns"), ("multi", "columns"),
                                                   ("multi", "bitmask")])  # memberships: multi mode only
def test_a_rule_set_alone_scores_a_parquet_folder_as_local_segmint_does(client, folder, tmp_path, mode,
                                                                        memberships):
    rules = RuleSet(RULES, mode=mode) if mode == "multi" else RuleSet(RULES, default="active")
    out = tmp_path / "rules"
    result = sd.score(rules, folder, out, as_of=AS_OF, id_column="customer_id", memberships=memberships, rows_per_chunk=ALIGN,
                      columns=["region"])
    assert result.rows == N and result.parts == 3
    local = rules.evaluate(folder, as_of=AS_OF, id_column="customer_id", memberships=memberships).table
    back = read_back(out)
    assert back.column_names == local.column_names + ["region"]
    assert back.drop_columns(["region"]).equals(local_dataset(lambda out: rules.evaluate(
        folder, as_of=AS_OF, id_column="customer_id", memberships=memberships, out=out), tmp_path))
    assert back.drop_columns(["region"]).to_pylist() == local.to_pylist()
    assert back["region"].to_pylist() == pq.read_table(folder, columns=["region"])["region"].to_pylist()


@pytest.mark.parametrize("partitions", [1, 3, 40])
def test_a_dask_dataframe_is_scored_per_partition_as_local_segmint_scores_it(client, customers, segmenter,
                                                                            tmp_path, partitions):
    frame = customers.slice(0, 9_000).to_pandas()
    # datetime64[us], not dates (which dask would turn into strings); without NaT: local
    # segmint's rules refuse the int64 minimum pandas leaves under a null timestamp (reported)
    frame["last_order_date"] = frame["last_order_date"].astype("datetime64[us]").fillna(pd.Timestamp("2020-01-01"))
    ddf = dd.from_pandas(frame, npartitions=partitions)
    out = tmp_path / "scored"
    result = sd.score(segmenter, ddf, out, as_of=AS_OF)
    assert result == (str(out), 9_000, ddf.npartitions)
    table = pa.Table.from_pandas(frame, schema=pa.Schema.from_pandas(ddf._meta, preserve_index=False),
                                 preserve_index=False)
    assert read_back(out).equals(local_dataset(lambda out: segmenter.score(table, out=out, as_of=AS_OF),
                                               tmp_path))


def test_an_empty_parquet_file_gives_a_dataset_of_one_empty_part(client, customers, segmenter, tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(customers.slice(0, 0), path)
    out = tmp_path / "scored"
    assert sd.score(segmenter, path, out, as_of=AS_OF) == (str(out), 0, 1)
    assert read_back(out).equals(local_dataset(lambda out: segmenter.score(path, out=out, as_of=AS_OF),
                                               tmp_path))


def test_a_rerun_replaces_the_dataset_segmint_wrote(client, folder, rules, tmp_path):
    out = tmp_path / "scored"
    sd.score(rules, folder, out, as_of=AS_OF, rows_per_chunk=4 * ALIGN)
    assert sd.score(rules, folder, out, as_of=AS_OF, rows_per_chunk=ALIGN).parts == 3
    assert sorted(os.listdir(out)) == [outputs.MARKER] + [f"part-{i:05d}.parquet" for i in range(3)]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


# -- refusals ----------------------------------------------------------------------------------------
def test_an_output_over_a_folder_or_file_segmint_did_not_write_is_refused_before_any_work(client, folder,
                                                                                        rules, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="segmint did not write"):
        sd.score(rules, folder, foreign, as_of=AS_OF)
    assert os.listdir(foreign) == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    with pytest.raises(OutputError, match="is a file"):
        sd.score(rules, folder, a_file, as_of=AS_OF)
    assert a_file.read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["file", "mine"]


def test_an_output_over_or_inside_an_input_is_refused(client, folder, rules, tmp_path):
    before = sorted(os.listdir(folder))
    for out in (folder, folder / "scored", folder / "a.parquet"):
        with pytest.raises(OutputError, match="never writes over its own input"):
            sd.score(rules, folder, out, as_of=AS_OF)
    with pytest.raises(OutputError, match="never writes over its own input"):
        sd.score(rules, [folder / "a.parquet", folder / "b.parquet"], folder, as_of=AS_OF)
    assert sorted(os.listdir(folder)) == before


def test_a_failing_chunk_leaves_nothing_and_names_the_rows(client, customers, segmenter, tmp_path):
    path = tmp_path / "bad"
    path.mkdir()
    monetary = customers["monetary"].to_numpy().copy()
    monetary[ALIGN + 10] = np.inf  # in the second chunk only
    bad = customers.set_column(COLUMNS.index("monetary"), "monetary", pa.array(monetary))
    pq.write_table(bad, path / "part.parquet", row_group_size=50_000)
    with pytest.raises(FeatureError, match=r"rows 65,536\.\.131,071.*monetary"):
        sd.score(segmenter, path, tmp_path / "scored", as_of=AS_OF, rows_per_chunk=ALIGN)
    assert sorted(os.listdir(tmp_path)) == ["bad"]  # no output, no temporary folder beside it


def test_an_unknown_column_is_refused_on_the_client_naming_the_nearest(client, folder, rules, tmp_path):
    with pytest.raises(UnknownColumnError, match="customer_id"):
        sd.score(rules, folder, tmp_path / "scored", id_column="customer_idd")
    assert os.listdir(tmp_path) == []


def test_a_retried_task_leaves_one_whole_part_with_the_same_rows(folder, rules, tmp_path):
    # what the scheduler does when a worker is lost: the same task runs again, into the same folder
    import importlib

    from segmint.dask.chunks import parquet_chunks

    score_module = importlib.import_module("segmint.dask.scoring")  # the module, not sd.score

    chunk = parquet_chunks(folder, ALIGN).chunks[1]
    shipped, _ = score_module._ship(rules)
    options = score_module._Options(score_module._fixed_as_of(AS_OF), "customer_id", "columns", 10_000, (),
                                    None)
    read = score_module._columns_read(rules, pq.read_schema(folder / "a.parquet"), options)
    first = score_module._score_chunk(chunk, shipped, read, options, str(tmp_path), "part-00001.parquet")
    written = pq.read_table(tmp_path / "part-00001.parquet")
    second = score_module._score_chunk(chunk, shipped, read, options, str(tmp_path), "part-00001.parquet")
    assert first == second and first[0] == ALIGN
    assert os.listdir(tmp_path) == ["part-00001.parquet"]  # no temporary left beside it
    assert pq.read_table(tmp_path / "part-00001.parquet").equals(written)
    expected = rules.evaluate(pq.read_table(folder).slice(ALIGN, ALIGN), as_of=AS_OF, id_column="customer_id")
    assert written.to_pylist() == expected.table.to_pylist()


def test_segmint_dask_without_the_extra_names_it():
    code = ("import sys; sys.modules['distributed'] = None\n"
            "try:\n    import segmint.dask\nexcept ImportError as e:\n"
            "    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MissingExtraError") and "segmint[dask]" in out.stdout


def test_relative_input_and_output_paths_are_the_clients(client, folder, rules, tmp_path, monkeypatch):
    # review finding: workers resolved relative paths against their own working folder
    monkeypatch.chdir(os.path.dirname(folder))
    result = sd.score(rules, os.path.basename(folder), os.path.relpath(tmp_path / "out", os.getcwd()),
                      as_of=AS_OF, rows_per_chunk=ALIGN)
    assert result.rows == N and os.path.isabs(result.path)
    local = rules.evaluate(folder, as_of=AS_OF).table
    assert read_back(tmp_path / "out").to_pylist() == local.to_pylist()


def test_rules_on_constants_keep_every_row(client, folder, tmp_path):
    # review finding: a chunk read with no column lost its row count (0 rows scored)
    everyone = RuleSet([("all", "1 = 1")], default="none")
    result = sd.score(everyone, folder, tmp_path / "out", rows_per_chunk=ALIGN)
    assert result.rows == N
    assert read_back(tmp_path / "out")["segment"].to_pylist() == ["all"] * N


# -- review fixes (issue 17, second review) --------------------------------------------------------
def frame_of(customers, rows):
    """The customers as pandas, as the DataFrame tests use them (see the partitions test)."""
    frame = customers.slice(0, rows).to_pandas()
    frame["last_order_date"] = frame["last_order_date"].astype("datetime64[us]").fillna(pd.Timestamp("2020-01-01"))
    return frame


def test_columns_the_model_does_not_read_are_never_converted(client, customers, segmenter, tmp_path):
    # review finding: whole partitions went through Arrow with meta's types, so a column the
    # model does not read could fail the score: here an object column of junk (without dask's
    # string conversion, meta types it null) beside a categorical
    frame = frame_of(customers, 3_000)
    frame["tier"] = pd.Categorical(np.array(["gold", "silver", "bronze"], dtype=object)[np.arange(3_000) % 3])
    frame["notes"] = pd.Series([{"a": 1}, b"\x00\xff", 3.5, "x", None, [1, 2]] * 500, dtype=object)
    with dask.config.set({"dataframe.convert-string": False}):  # object columns stay objects
        ddf = dd.from_pandas(frame, npartitions=3)
    out = tmp_path / "scored"
    assert sd.score(segmenter, ddf, out, as_of=AS_OF, columns=["region"]).rows == 3_000
    kept = frame.drop(columns=["tier", "notes"])
    local = pa.Table.from_pandas(kept, schema=pa.Schema.from_pandas(ddf._meta[kept.columns], preserve_index=False),
                                 preserve_index=False)
    back = read_back(out)
    assert back.drop_columns(["region"]).equals(
        local_dataset(lambda out: segmenter.score(local, out=out, as_of=AS_OF), tmp_path))
    assert back["region"].to_pylist() == frame["region"].tolist()


def test_a_dask_dataframe_read_from_parquet_scores_as_local_segmint_scores_the_files(client, folder, segmenter,
                                                                                    tmp_path):
    # review finding: a dictionary column read by dd.read_parquet is a categorical whose meta
    # holds no category (Arrow dictionary<null>): converting with meta's type failed
    ddf = dd.read_parquet(folder)
    assert pa.Schema.from_pandas(ddf._meta, preserve_index=False).field("region").type.value_type == pa.null()
    out = tmp_path / "scored"
    assert sd.score(segmenter, ddf, out, as_of=AS_OF, columns=["region"]).rows == N
    back = read_back(out)
    local = segmenter.score(folder, as_of=AS_OF)
    assert back.select(local.column_names).to_pylist() == local.to_pylist()
    assert back["region"].to_pylist() == pq.read_table(folder, columns=["region"])["region"].to_pylist()


def test_a_column_the_model_reads_that_arrow_cannot_convert_is_a_data_error_naming_it(client, customers,
                                                                                       segmenter, tmp_path):
    frame = frame_of(customers, 3_000)
    frequency = frame["frequency"].astype(object)
    frequency.iloc[2_500] = "7 orders"  # in the last partition only: the first ones type it int64
    frame["frequency"] = frequency
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(frame, npartitions=3)
    with pytest.raises(DataError, match=r"partition 2 of 3: column 'frequency' \(dtype object\) cannot be converted"):
        sd.score(segmenter, ddf, tmp_path / "scored", as_of=AS_OF)
    frequency.iloc[0] = "7 orders"  # in the first partition: found on the client, before the tasks
    frame["frequency"] = frequency
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(frame, npartitions=3)
    with pytest.raises(DataError, match=r"partition 0 of 3: column 'frequency' \(dtype object\) cannot be converted"):
        sd.score(segmenter, ddf, tmp_path / "scored", as_of=AS_OF)
    assert os.listdir(tmp_path) == []


def test_a_rule_set_with_a_string_id_column_scores_chunks_of_one_row_as_local_segmint(client, customers,
                                                                                      tmp_path):
    # review finding: RuleSet.evaluate typed a string id column string on 0 rows (the schema the
    # client expects) and dictionary<string> on rows (every part's): sd.score always failed
    table = customers.slice(0, ALIGN + 1)
    table = table.set_column(0, "customer_id", pc.cast(table["customer_id"], pa.string()))
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(table.slice(0, ALIGN), folder / "a.parquet")
    pq.write_table(table.slice(0, 0), folder / "b.parquet")  # an empty file
    pq.write_table(table.slice(ALIGN), folder / "c.parquet")  # the last chunk: one row
    rules = RuleSet(RULES, default="active")
    result = sd.score(rules, folder, tmp_path / "out", as_of=AS_OF, id_column="customer_id", rows_per_chunk=ALIGN)
    assert result.rows == ALIGN + 1 and result.parts == 2
    back = read_back(tmp_path / "out")
    assert back.schema.field("customer_id").type == pa.string()
    assert back.equals(local_dataset(lambda out: rules.evaluate(folder, as_of=AS_OF, id_column="customer_id",
                                                                out=out), tmp_path))
    # no rows at all: the one empty part has the same schema
    empty = sd.score(rules, folder / "b.parquet", tmp_path / "none", as_of=AS_OF, id_column="customer_id")
    assert empty.rows == 0 and read_back(tmp_path / "none").schema.equals(back.schema)


def test_an_output_over_or_inside_a_dask_dataframe_s_parquet_input_is_refused(client, folder, rules, tmp_path):
    # review finding: the rule was checked for Parquet paths only, not for dd.read_parquet(path)
    before = sorted(os.listdir(folder))
    frame = dd.read_parquet(folder)
    for data in (frame, frame[frame.frequency > 0][["customer_id", "frequency", "email_opt_in",
                                                    "last_order_date"]]):  # the reader deep in the expression
        for out in (folder, folder / "scored", folder / "a.parquet", folder.parent):
            with pytest.raises(OutputError, match="never writes over its own input"):
                sd.score(rules, data, out, as_of=AS_OF)
    files = dd.read_parquet([str(folder / "a.parquet"), str(folder / "b.parquet")])
    with pytest.raises(OutputError, match="never writes over its own input"):
        sd.score(rules, files, folder, as_of=AS_OF)
    with pytest.raises(OutputError, match="never writes over its own input"):
        sd.score(rules, dd.read_parquet(str(folder / "*.parquet")), folder / "scored", as_of=AS_OF)
    assert sorted(os.listdir(folder)) == before
    # elsewhere it scores, as local segmint scores the folder
    sd.score(rules, frame, tmp_path / "scored", as_of=AS_OF)
    assert read_back(tmp_path / "scored").to_pylist() == rules.evaluate(folder, as_of=AS_OF).table.to_pylist()


def test_every_worker_killed_mid_score_does_not_change_the_output(client, folder, segmenter, tmp_path,
                                                                 monkeypatch):
    # review finding: the model was scattered; with every worker that held it dead, the tasks
    # needing it failed. It is now a task's result, which the scheduler computes again.
    scoring = importlib.import_module("segmint.dask.scoring")  # the module, not sd.score
    original = scoring._gather
    pids = list(client.run(os.getpid).values())

    def kill_then_gather(client, futures):
        distributed.wait(futures[:1])  # scoring has started: the model is on a worker
        for pid in pids:  # every worker: the model's holders, and the parts' results
            os.kill(pid, signal.SIGKILL)
        return original(client, futures)

    monkeypatch.setattr(scoring, "_gather", kill_then_gather)
    result = sd.score(segmenter, folder, tmp_path / "scored", as_of=AS_OF, rows_per_chunk=ALIGN)
    assert result.rows == N and result.parts == 3
    assert read_back(tmp_path / "scored").equals(
        local_dataset(lambda out: segmenter.score(folder, out=out, as_of=AS_OF), tmp_path))
    client.wait_for_workers(2, timeout=60)
    assert not set(pids) & set(client.run(os.getpid).values())  # they did die (their nannies restarted them)


def _rules_case(case, tmp_path):
    """(a dask DataFrame, what local segmint reads for the same data, a RuleSet, columns=)."""
    n = 600
    if case == "pandas categorical of numbers, from Parquet":  # meta: dask's placeholder category
        df = pd.DataFrame({"k": pd.Categorical(np.arange(n) % 3), "frequency": np.arange(n) % 5})
        (tmp_path / "in").mkdir()
        df.iloc[:300].to_parquet(tmp_path / "in" / "a.parquet")
        df.iloc[300:].to_parquet(tmp_path / "in" / "b.parquet")
        return dd.read_parquet(tmp_path / "in"), str(tmp_path / "in"), RuleSet({"one": "k = 1"}, default="o"), ["k"]
    if case == "dictionary growing past 127 values, from Parquet":  # int8 codes in the first file
        (tmp_path / "in").mkdir()
        for name, values in (("a", 3), ("b", 300)):
            pq.write_table(pa.table({"c": pa.array([f"v{i % values}" for i in range(300)]).dictionary_encode(),
                                     "frequency": pa.array(np.arange(300) % 5)}), tmp_path / "in" / f"{name}.parquet")
        return dd.read_parquet(tmp_path / "in"), str(tmp_path / "in"), RuleSet({"v1": "c = 'v1'"}, default="o"), ["c"]
    # an object column of ints in one partition and floats in the next: local types it double
    mixed = pd.Series([1] * 300 + [2.5] * 300, dtype=object)
    df = pd.DataFrame({"mixed": mixed, "frequency": np.arange(n) % 5})
    with dask.config.set({"dataframe.convert-string": False}):
        frame = dd.from_pandas(df, npartitions=2, sort=False)
    return frame, df, RuleSet({"big": "mixed > 2"}, default="small"), ["mixed"]


@pytest.mark.parametrize("case", ["pandas categorical of numbers, from Parquet",
                                  "dictionary growing past 127 values, from Parquet",
                                  "object column of ints then floats"])
def test_columns_meta_cannot_type_are_typed_from_all_partitions_as_local_types_them(client, tmp_path, case):
    # review findings: dask's placeholder categories were typed as strings; the first partition's
    # type was imposed on the others (int8 codes overflowed; 2.5 became 2 in an int64 column)
    frame, local_input, rules, columns = _rules_case(case, tmp_path)
    sd.score(rules, frame, tmp_path / "scored", as_of=AS_OF, columns=columns)
    got = read_back(tmp_path / "scored")
    want = rules.evaluate(local_input, as_of=AS_OF).table
    assert got["segment"].to_pylist() == want["segment"].to_pylist()
    local_column = segmint.open(local_input).schema.field(columns[0]).type
    got_column = got.schema.field(columns[0]).type
    if pa.types.is_dictionary(local_column):  # dictionary indices: int32, as a Parquet read gives
        assert got_column.value_type == local_column.value_type
    else:
        assert got_column == local_column
    values = (pa.table(local_input) if isinstance(local_input, pd.DataFrame) else pq.read_table(local_input))
    assert got[columns[0]].to_pylist() == values[columns[0]].to_pylist()
