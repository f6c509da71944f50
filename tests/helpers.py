"""Shared test data: random tables with every supported column kind, nulls and odd sizes."""
import datetime as dt

import numpy as np
import pyarrow as pa


def random_table(n, seed=0, null_rate=0.2, chunks=1):
    """A table of ``n`` rows with one column of each kind, nulls, and ``chunks`` chunks per column.

    Chunk boundaries differ between columns so batching has to respect all of them.
    """
    rng = np.random.default_rng(seed)

    def mask():
        return rng.random(n) < null_rate if null_rate else None

    words = np.array(["NY", "CA", "TX", "it's", "", "Zürich", "a b"], dtype=object)
    columns = {
        "i8": pa.array(rng.integers(-128, 128, n).astype(np.int8), mask=mask()),
        "i64": pa.array(rng.integers(-10**12, 10**12, n), mask=mask()),
        "u32": pa.array(rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)),
        "f32": pa.array(rng.normal(size=n).astype(np.float32), mask=mask()),
        "f64": pa.array(np.where(rng.random(n) < 0.05, np.nan, rng.normal(size=n))),
        "flag": pa.array(rng.random(n) < 0.5, mask=mask()),
        "region": pa.array(words[rng.integers(0, len(words), n)].tolist(), mask=mask(), type=pa.string()),
        "channel": pa.array(words[rng.integers(0, 3, n)].tolist(), type=pa.string()).dictionary_encode(),
        "day": pa.array(rng.integers(0, 20000, n).astype(np.int32), mask=mask()).cast(pa.date32()),
        "ts": pa.array(rng.integers(0, 2 * 10**12, n), mask=mask()).cast(pa.timestamp("ms", tz="UTC")),
        "wait": pa.array(rng.integers(0, 10**6, n)).cast(pa.duration("s")),
    }
    table = pa.table(columns)
    if chunks > 1 and n > 0:
        arrays = []
        for j, name in enumerate(table.column_names):
            col = table.column(name).combine_chunks()
            cuts = np.sort(np.random.default_rng(seed + j).integers(0, n + 1, chunks - 1))
            bounds = [0, *cuts.tolist(), n]
            arrays.append(pa.chunked_array([col.slice(a, b - a) for a, b in zip(bounds[:-1], bounds[1:])],
                                           type=col.type))
        table = pa.Table.from_arrays(arrays, names=table.column_names)
    return table


def reference_values(array):
    """What a column view should hold, computed with pyarrow alone (the slow twin)."""
    t = array.type
    if pa.types.is_dictionary(t):
        array = array.dictionary_decode()
        t = array.type
    if pa.types.is_date32(t):
        return array.cast(pa.int32()).to_pylist()
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date64(t):
        return array.cast(pa.int64()).to_pylist()
    return array.to_pylist()


def view_values(view):
    """Python values of a ColumnView, None for nulls; NaN kept as NaN."""
    return view.to_pylist()


def same(a, b):
    """Equality of two value lists where NaN equals NaN."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y):
            continue
        if x != y:
            return False
    return True


AS_OF = dt.date(2026, 10, 1)
