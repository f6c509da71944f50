"""Benchmark options and shared data.

``--size small`` (default: CI smoke runs, seconds), ``medium`` (1M customers) or ``large``
(10M customers: the figures the issues quote). Data are generated once per session into a
temporary folder; compilation and data generation happen outside the timed region.
"""
import os
import tempfile

import pytest

SIZES = {"small": 100_000, "medium": 1_000_000, "large": 10_000_000}


def pytest_addoption(parser):
    parser.addoption("--size", choices=sorted(SIZES), default="small",
                     help="benchmark data size: small (CI), medium (1M rows), large (10M rows)")


@pytest.fixture(scope="session")
def n_customers(request):
    return SIZES[request.config.getoption("--size")]


@pytest.fixture(scope="session")
def bench_dir():
    with tempfile.TemporaryDirectory(prefix="segmint-bench-") as folder:
        yield folder


@pytest.fixture(scope="session")
def customers_files(bench_dir, n_customers):
    """The synthetic customer base as an uncompressed IPC file and a Parquet file."""
    import segmint

    ipc_path = os.path.join(bench_dir, "customers.arrow")
    parquet_path = os.path.join(bench_dir, "customers.parquet")
    segmint.write_customers(ipc_path, n_customers, seed=0)
    segmint.write_customers(parquet_path, n_customers, seed=0)
    return {"ipc": ipc_path, "parquet": parquet_path}


def record(benchmark, **info):
    """Put quality figures and sizes beside the time (pytest-benchmark's extra_info)."""
    benchmark.extra_info.update(info)
