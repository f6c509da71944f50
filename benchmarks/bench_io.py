"""Data layer: opening, batch iteration (memory-mapped IPC and Parquet), generation."""
import pyarrow.ipc as ipc
import pytest

import segmint
from segmint.datasets import NUMERIC_FEATURES
from conftest import record

FEATURES = list(NUMERIC_FEATURES) + ["region"]


def _scan(src, batch_size):
    rows = 0
    for batch in src.batches(columns=FEATURES, batch_size=batch_size):
        for name in FEATURES:
            batch[name]
        rows += batch.num_rows
    return rows


def test_open_mapped_ipc(benchmark, customers_files, n_customers):
    def run():
        src = segmint.open(customers_files["ipc"])
        return src.num_rows

    rows = benchmark(run)
    assert rows == n_customers
    record(benchmark, rows=rows)


@pytest.mark.parametrize("batch_size", [65_536, 1_048_576])
def test_iterate_mapped_ipc(benchmark, customers_files, n_customers, batch_size):
    src = segmint.open(customers_files["ipc"])
    rows = benchmark(_scan, src, batch_size)
    assert rows == n_customers
    record(benchmark, rows=rows, columns=len(FEATURES), zero_copy=src.zero_copy)


def test_iterate_parquet(benchmark, customers_files, n_customers):
    src = segmint.open(customers_files["parquet"])
    rows = benchmark.pedantic(_scan, args=(src, 131_072), rounds=3, iterations=1)
    assert rows == n_customers
    record(benchmark, rows=rows, columns=len(FEATURES))


def test_peer_pyarrow_read_all_mapped(benchmark, customers_files, n_customers):
    """Reference: pyarrow reading the same columns of the mapped file into a Table."""
    import pyarrow as pa

    def run():
        with pa.memory_map(customers_files["ipc"]) as mm:
            return ipc.open_file(mm).read_all().select(FEATURES).num_rows

    assert benchmark(run) == n_customers


def test_generate_customers(benchmark, bench_dir, n_customers):
    import os
    path = os.path.join(bench_dir, "gen.arrow")
    written = benchmark.pedantic(segmint.write_customers, args=(path, n_customers), kwargs={"seed": 1},
                                 rounds=1, iterations=1)
    assert written["customers"] == n_customers
    record(benchmark, rows=n_customers, bytes=os.path.getsize(path))
