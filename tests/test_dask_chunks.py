"""segmint.dask.chunks: a chunk reads exactly its rows, and only up to them (no cluster needed)."""
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("distributed", reason="segmint.dask needs the dask extra")
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from segmint.dask.chunks import ALIGN, parquet_chunks, read_chunk  # noqa: E402
from segmint.errors import CorruptFileError  # noqa: E402


def _table(n, seed=0):
    rng = np.random.default_rng(seed)
    return pa.table({"a": rng.integers(-10**12, 10**12, n), "x": rng.normal(size=n).astype(np.float32),
                     "s": pa.array([f"v{v}" for v in rng.integers(0, 40, n)])})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two files, row groups of odd sizes and small pages: chunk bounds fall inside pages, row
    groups and files."""
    path = tmp_path_factory.mktemp("chunks")
    table = _table(400_003)
    pq.write_table(table.slice(0, 250_001), path / "part-0.parquet", row_group_size=150_001,
                   data_page_size=8_192)
    pq.write_table(table.slice(250_001), path / "part-1.parquet", row_group_size=70_000, data_page_size=8_192)
    return str(path), table


@pytest.mark.parametrize("rows_per_chunk", [ALIGN, 3 * ALIGN])
def test_every_chunk_reads_exactly_its_rows(folder, rows_per_chunk):
    path, table = folder
    ds = parquet_chunks(path, rows_per_chunk)
    assert sum(c.rows for c in ds.chunks) == table.num_rows
    for chunk in ds.chunks:
        got = read_chunk(chunk, ["x", "a", "s"])
        assert got.num_rows == chunk.rows
        assert got.equals(table.slice(chunk.start, chunk.rows).select(["x", "a", "s"]))


def test_strings_read_dictionary_encoded_hold_the_same_values(folder):
    path, table = folder
    chunk = parquet_chunks(path, ALIGN).chunks[3]  # rows 196,608..262,143: across both files
    assert len({p.path for p in chunk.pieces}) == 2
    got = read_chunk(chunk, ["s"], strings=["s"])
    assert pa.types.is_dictionary(got.schema.field("s").type)
    assert got.column("s").cast(pa.string()).equals(table.column("s").slice(chunk.start, chunk.rows))


def _corrupt_the_last_page(path, column=0):
    """Overwrite the payload end of the last data page of the first row group's column chunk."""
    meta = pq.ParquetFile(path).metadata.row_group(0).column(column)
    end = meta.data_page_offset + meta.total_compressed_size
    with open(path, "r+b") as f:
        f.seek(end - 48)
        f.write(b"\xff" * 48)


def test_a_piece_is_read_up_to_its_last_row_only(tmp_path):
    # the row group holds 4 chunks and its last page is damaged: the first chunk does not
    # reach it (the old reader decoded the whole row group for every chunk); the last one does
    path = str(tmp_path / "one-group.parquet")
    # compressible values: garbage in a compressed page cannot pass for data
    values = pa.table({"a": np.arange(4 * ALIGN, dtype=np.int64) // 3 % 1_000})
    pq.write_table(values, path, row_group_size=4 * ALIGN, compression="snappy", use_dictionary=False,
                   data_page_size=16_384)
    whole = pq.read_table(path)
    _corrupt_the_last_page(path)
    with pytest.raises((OSError, pa.ArrowException)):  # the damage is real: pyarrow refuses the whole row group
        pq.read_table(path)
    chunks = parquet_chunks(path, ALIGN).chunks
    assert len(chunks) == 4 and all(len(c.pieces) == 1 and c.pieces[0].row_group == 0 for c in chunks)
    for chunk in chunks[:3]:
        assert read_chunk(chunk, ["a"]).equals(whole.slice(chunk.start, chunk.rows))
    with pytest.raises(CorruptFileError, match="cannot read"):
        read_chunk(chunks[3], ["a"])


def test_a_file_changed_since_the_chunks_were_cut_is_a_corrupt_file_error(folder, tmp_path):
    path, table = folder
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    ds = parquet_chunks(str(copy), ALIGN)
    # fewer rows: 100,000 in row groups of 70,000 and 30,000 (there were 70,000, 70,000, 10,002)
    pq.write_table(table.slice(250_001, 100_000), copy / "part-1.parquet", row_group_size=70_000)
    with pytest.raises(CorruptFileError, match="row group 1 holds 30000 rows, 70000 expected: the file changed"):
        read_chunk(ds.chunks[5], ["a"])
    with pytest.raises(CorruptFileError, match="has 2 row groups, row group 2 expected"):
        read_chunk(ds.chunks[-1], ["a"])
    # another type for a column: the pieces of a chunk no longer agree
    spanning = ds.chunks[3]
    other = table.slice(250_001).set_column(1, "x", table.column("x").slice(250_001).cast(pa.float64()))
    pq.write_table(other, copy / "part-1.parquet", row_group_size=70_000)
    with pytest.raises(CorruptFileError, match="schemas changed since the job started"):
        read_chunk(spanning, ["x"])
    # a truncated file: its footer no longer fits
    with open(copy / "part-1.parquet", "r+b") as f:
        f.truncate(os.path.getsize(copy / "part-1.parquet") - 100)
    with pytest.raises(CorruptFileError, match="truncated or damaged"):
        read_chunk(ds.chunks[-1], ["a"])


def test_a_chunk_read_with_no_column_keeps_its_rows(folder):
    path, _ = folder
    chunk = parquet_chunks(path, ALIGN).chunks[-1]
    assert read_chunk(chunk, []).num_rows == chunk.rows
