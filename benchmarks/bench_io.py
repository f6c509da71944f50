"""Data layer: opening, batch iteration (memory-mapped IPC and Parquet), generation.

Peers: pyarrow itself, doing the same reads through its own API (memory map + IPC reader,
``ParquetFile.iter_batches``), its CPU pool set to segmint's thread count. Quality figure: rows
seen, which must equal the row count.
"""
import os

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import segmint
from segmint.datasets import NUMERIC_FEATURES
from conftest import compare, pyarrow_threads, record

FEATURES = list(NUMERIC_FEATURES) + ["region"]
ROWS_SEEN = "rows seen"


def _scan(src, batch_size):
    rows = 0
    for batch in src.batches(columns=FEATURES, batch_size=batch_size):
        for name in FEATURES:
            batch[name]
        rows += batch.num_rows
    return rows


def _scan_arrow_batches(batches):
    rows = 0
    for b in batches:
        for name in FEATURES:
            b.column(name)
        rows += b.num_rows
    return rows


def test_open_mapped_ipc(benchmark, customers_files, n_customers):
    compare(benchmark, "open[ipc]")

    def run():
        src = segmint.open(customers_files["ipc"])
        return src.num_rows

    rows = benchmark(run)
    assert rows == n_customers
    record(benchmark, quality=("num_rows", rows, "equal"), rows=rows)


def test_peer_pyarrow_open_mapped(benchmark, customers_files, n_customers):
    compare(benchmark, "open[ipc]", impl="pyarrow", threads=pyarrow_threads())

    def num_rows():
        with pa.memory_map(customers_files["ipc"]) as mm:
            reader = ipc.open_file(mm)
            # the footer has no total; the batch headers do, without touching column data
            return sum(reader.get_record_batch(i).num_rows for i in range(reader.num_record_batches))

    rows = benchmark(num_rows)
    assert rows == n_customers
    record(benchmark, quality=("num_rows", rows, "equal"), rows=rows)


@pytest.mark.parametrize("batch_size", [65_536, 1_048_576])
def test_iterate_mapped_ipc(benchmark, customers_files, n_customers, batch_size):
    compare(benchmark, f"scan[ipc,batch={batch_size}]")
    src = segmint.open(customers_files["ipc"])
    rows = benchmark(_scan, src, batch_size)
    assert rows == n_customers
    record(benchmark, quality=(ROWS_SEEN, rows, "equal"), rows=rows, columns=len(FEATURES),
           zero_copy=src.zero_copy)


@pytest.mark.parametrize("batch_size", [65_536, 1_048_576])
def test_peer_pyarrow_iterate_mapped(benchmark, customers_files, n_customers, batch_size):
    """pyarrow reading the same columns of the mapped file, then slicing them into batches."""
    compare(benchmark, f"scan[ipc,batch={batch_size}]", impl="pyarrow", threads=pyarrow_threads())

    def run():
        with pa.memory_map(customers_files["ipc"]) as mm:
            table = ipc.open_file(mm).read_all().select(FEATURES)
            return _scan_arrow_batches(table.to_batches(max_chunksize=batch_size))

    rows = benchmark(run)
    assert rows == n_customers
    record(benchmark, quality=(ROWS_SEEN, rows, "equal"), rows=rows, columns=len(FEATURES))


def test_iterate_parquet(benchmark, customers_files, n_customers):
    compare(benchmark, "scan[parquet,batch=131072]")
    src = segmint.open(customers_files["parquet"])
    rows = benchmark.pedantic(_scan, args=(src, 131_072), rounds=3, iterations=1)
    assert rows == n_customers
    record(benchmark, quality=(ROWS_SEEN, rows, "equal"), rows=rows, columns=len(FEATURES))


def test_peer_pyarrow_iterate_parquet(benchmark, customers_files, n_customers):
    compare(benchmark, "scan[parquet,batch=131072]", impl="pyarrow", threads=pyarrow_threads())

    def run():
        # strings read dictionary-encoded, as segmint reads them
        pf = pq.ParquetFile(customers_files["parquet"], read_dictionary=["region"])
        return _scan_arrow_batches(pf.iter_batches(batch_size=131_072, columns=FEATURES))

    rows = benchmark.pedantic(run, rounds=3, iterations=1)
    assert rows == n_customers
    record(benchmark, quality=(ROWS_SEEN, rows, "equal"), rows=rows, columns=len(FEATURES))


def test_generate_customers(benchmark, bench_dir, n_customers):
    compare(benchmark, "generate[ipc]")
    path = os.path.join(bench_dir, "gen.arrow")
    written = benchmark.pedantic(segmint.write_customers, args=(path, n_customers), kwargs={"random_state": 1},
                                 rounds=1, iterations=1)
    assert written["customers"] == n_customers
    record(benchmark, quality=("customers written", written["customers"], "equal"),
           rows=n_customers, bytes=os.path.getsize(path))
