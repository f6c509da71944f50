"""Atomic writers: a destination is either complete or untouched."""
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import segmint
from segmint.io import ResultWriter, write_table
from segmint.io.outputs import MARKER


def _table(n=100, offset=0):
    return pa.table({"customer_id": np.arange(offset, offset + n, dtype=np.int64),
                     "segment": pa.array(np.arange(n) % 3, type=pa.int32())})


@pytest.mark.parametrize("name", ["out.arrow", "out.feather", "out.parquet", "out/"])
def test_round_trip(tmp_path, name):
    path = f"{tmp_path}/{name}"
    table = _table(1000)
    assert write_table(table.to_batches(max_chunksize=300), path, rows_per_file=400) == 1000
    back = segmint.open(path).read()
    assert back.equals(table)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left


def test_dataset_is_split_into_parts_and_marked_as_segmints(tmp_path):
    write_table(_table(1000), str(tmp_path / "ds") + "/", rows_per_file=300)
    parts = [f"part-{i:05d}.parquet" for i in range(4)]
    assert sorted(os.listdir(tmp_path / "ds")) == [MARKER] + parts
    marker = json.loads((tmp_path / "ds" / MARKER).read_text())
    assert marker["parts"] == parts and marker["format"] == "segmint-parquet-dataset"
    assert segmint.open(tmp_path / "ds").read().equals(_table(1000))  # the reader skips the marker


@pytest.mark.parametrize("name", ["out.arrow", "out.parquet", "out/"])
def test_failure_midway_leaves_the_old_output(tmp_path, name):
    path = f"{tmp_path}/{name}"
    write_table(_table(10), path)

    def batches():
        yield _table(50).to_batches()[0]
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        write_table(batches(), path)
    assert segmint.open(path).read().equals(_table(10))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_no_destination_until_closed(tmp_path):
    path = tmp_path / "out.parquet"
    writer = ResultWriter(path, _table().schema)
    writer.write(_table())
    assert not path.exists()
    writer.close()
    assert pq.read_table(path).num_rows == 100
    with pytest.raises(segmint.OutputError, match="closed"):
        writer.write(_table())


def test_schema_mismatch_is_an_error_and_nothing_is_written(tmp_path):
    path = tmp_path / "out.arrow"
    with pytest.raises(segmint.DataError, match="schema"):
        with ResultWriter(path, _table().schema) as out:
            out.write(pa.table({"other": [1]}))
    assert not path.exists()
    assert not list(tmp_path.iterdir())


def test_bad_destinations(tmp_path):
    schema = _table().schema
    with pytest.raises(segmint.OutputError, match="does not exist"):
        ResultWriter(tmp_path / "missing" / "out.arrow", schema)
    with pytest.raises(segmint.OutputError, match="suffix"):
        ResultWriter(tmp_path / "out.csv", schema)
    with pytest.raises(segmint.OutputError, match="unknown output format"):
        ResultWriter(tmp_path / "out.arrow", schema, format="orc")
    (tmp_path / "exists.arrow").write_bytes(b"x")
    with pytest.raises(segmint.OutputError, match="exists"):
        ResultWriter(tmp_path / "exists.arrow", schema, overwrite=False)
    (tmp_path / "folder.arrow").mkdir()
    with pytest.raises(segmint.OutputError, match="is a folder"):
        ResultWriter(tmp_path / "folder.arrow", schema)
    with pytest.raises(segmint.DataError, match="no batches"):
        write_table(iter([]), tmp_path / "x.arrow")


def test_ipc_output_is_memory_mappable(tmp_path):
    write_table(_table(), tmp_path / "o.arrow")
    assert segmint.open(tmp_path / "o.arrow").zero_copy
    write_table(_table(), tmp_path / "z.arrow", compression="zstd")
    assert not segmint.open(tmp_path / "z.arrow").zero_copy


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", True])
def test_rows_per_file_must_be_a_positive_whole_number(tmp_path, bad):
    with pytest.raises(segmint.errors.ParameterError, match="rows_per_file"):
        write_table(_table(), f"{tmp_path}/ds/", rows_per_file=bad)
    assert not list(tmp_path.iterdir())


def test_the_commit_registry_says_what_was_written(tmp_path):
    from segmint.io import outputs
    outputs.forget_commits()
    write_table(_table(), tmp_path / "a.arrow")
    assert outputs.was_written(tmp_path / "a.arrow")

    def batches():
        yield _table().to_batches()[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_table(batches(), tmp_path / "b.arrow")
    assert not outputs.was_written(tmp_path / "b.arrow") and not (tmp_path / "b.arrow").exists()
    (tmp_path / "c.arrow").write_bytes(b"old")  # an existing file that no writer committed
    assert not outputs.was_written(tmp_path / "c.arrow")


def test_a_failed_swap_puts_the_previous_dataset_back(tmp_path, monkeypatch):
    path = f"{tmp_path}/ds/"
    write_table(_table(10), path)
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in str(src):  # the new dataset moving in
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(segmint.OutputError, match="No space left"):
        write_table(_table(20), path)
    monkeypatch.undo()
    assert segmint.open(path).read().equals(_table(10))
    assert os.listdir(tmp_path) == ["ds"]


def test_an_existing_empty_folder_becomes_the_dataset(tmp_path):
    (tmp_path / "ds").mkdir()
    write_table(_table(), tmp_path / "ds")
    assert segmint.open(tmp_path / "ds").read().equals(_table())
