"""Every bad input gets a clear error of segmint's own hierarchy, never a crash."""
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import segmint
from helpers import random_table


def test_missing_file_suggests_near_names(tmp_path):
    (tmp_path / "customers.arrow").write_bytes(b"")
    with pytest.raises(segmint.SourceNotFoundError, match="customers.arrow") as info:
        segmint.open(tmp_path / "customer.arrow")
    assert isinstance(info.value, FileNotFoundError)
    assert "did you mean" in str(info.value)


def test_truncated_ipc_file(tmp_path):
    path = tmp_path / "t.arrow"
    with ipc.new_file(path, random_table(500).schema) as w:
        w.write_table(random_table(500))
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 3, 10):
        (tmp_path / "cut.arrow").write_bytes(data[:cut])
        with pytest.raises(segmint.CorruptFileError, match="truncated"):
            segmint.open(tmp_path / "cut.arrow")


def test_truncated_and_corrupt_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(random_table(500), path)
    data = path.read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(segmint.CorruptFileError, match="truncated"):
        segmint.open(tmp_path / "cut.parquet")
    # the footer intact but its length field pointing nowhere
    bad = bytearray(data)
    bad[-8:-4] = (10**8).to_bytes(4, "little")
    (tmp_path / "bad.parquet").write_bytes(bytes(bad))
    with pytest.raises(segmint.CorruptFileError):
        segmint.open(tmp_path / "bad.parquet")


def test_corrupt_record_batch_header_is_caught_when_read(tmp_path):
    """A damaged message header is an error. (Damaged body bytes are not detectable: Arrow IPC
    bodies carry no checksum, compressed or not, so no reader can tell.)"""
    table = pa.table({"x": np.arange(100_000, dtype=np.int64)})
    path = tmp_path / "t.arrow"
    with ipc.new_file(path, table.schema) as w:
        w.write_table(table)
    data = bytearray(path.read_bytes())
    markers = [i for i in range(8, 4096) if data[i:i + 4] == b"\xff\xff\xff\xff"]
    batch_message = markers[1]  # the first marker opens the schema, the second the record batch
    data[batch_message + 4: batch_message + 40] = b"\x7f" * 36
    (tmp_path / "bad.arrow").write_bytes(bytes(data))
    with pytest.raises(segmint.CorruptFileError, match="cannot read"):
        src = segmint.open(tmp_path / "bad.arrow")
        for batch in src.batches():
            batch["x"]


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"hello, this is a CSV file\n1,2,3\n", "neither"),
    (b"FEA1" + b"\x00" * 100, "Feather v1"),
])
def test_not_a_known_format(tmp_path, content, match):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(segmint.CorruptFileError, match=match):
        segmint.open(path)


def test_empty_directory(tmp_path):
    with pytest.raises(segmint.CorruptFileError, match="no .parquet files"):
        segmint.open(tmp_path)


def test_dataset_files_with_different_schemas(tmp_path):
    pq.write_table(pa.table({"a": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"a": ["x"]}), tmp_path / "b.parquet")
    with pytest.raises(segmint.CorruptFileError, match="same columns and types"):
        segmint.open(tmp_path)


def test_unknown_column_names_the_closest():
    src = segmint.open(pa.table({"monetary": [1.0], "frequency": [2], "recency_days": [3]}))
    with pytest.raises(segmint.UnknownColumnError, match="did you mean 'monetary'") as info:
        src.select(["monetery"])
    assert isinstance(info.value, KeyError)
    with pytest.raises(segmint.UnknownColumnError, match="'frequency'"):
        next(src.batches(columns=["frequncy"]))
    with pytest.raises(segmint.UnknownColumnError, match="columns are"):
        src.column("zzzzzz")
    batch = next(src.batches())
    with pytest.raises(segmint.UnknownColumnError):
        batch["recency"]


def test_unsupported_type_names_column_and_type():
    table = pa.table({"ok": [1, 2], "tags": pa.array([[1], [2, 3]]), "half": pa.array(np.ones(2, np.float16))})
    src = segmint.open(table)  # opening is fine: the column may never be used
    with pytest.raises(segmint.UnsupportedTypeError, match="'tags' has type list<item: int64>"):
        src.select(["tags"])
    with pytest.raises(segmint.UnsupportedTypeError, match="'half' has type halffloat"):
        next(src.batches(columns=["ok", "half"]))
    assert next(src.batches(columns=["ok"]))["ok"].to_pylist() == [1, 2]
    with pytest.raises(TypeError):  # also a builtin TypeError
        src.select(["tags"])


def test_duplicate_column_names():
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(segmint.DuplicateColumnError, match="'a'"):
        segmint.open(table)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame([[1, 2]], columns=["x", "x"])
    with pytest.raises(segmint.DuplicateColumnError):
        segmint.open(df)
    src = segmint.open(pa.table({"a": [1], "b": [2]}))
    with pytest.raises(segmint.DuplicateColumnError):
        src.select(["a", "a"])


def test_duplicate_names_in_a_file(tmp_path):
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with ipc.new_file(tmp_path / "d.arrow", table.schema) as w:
        w.write_table(table)
    with pytest.raises(segmint.DuplicateColumnError):
        segmint.open(tmp_path / "d.arrow")


def test_bad_batch_size():
    src = segmint.open(pa.table({"a": [1]}))
    with pytest.raises(ValueError, match="batch_size"):
        next(src.batches(batch_size=0))


def test_errors_share_one_base():
    for cls in (segmint.SourceNotFoundError, segmint.CorruptFileError, segmint.UnsupportedTypeError,
                segmint.UnknownColumnError, segmint.DuplicateColumnError, segmint.OutputError):
        assert issubclass(cls, segmint.SegmintError)
