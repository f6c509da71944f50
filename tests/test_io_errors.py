"""Every bad input gets a clear error of segmint's own hierarchy, never a crash."""
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive_validate
import segmint
from helpers import random_table
from segmint.errors import ParameterError
from segmint.io.columns import LayoutError, check_layout
from segmint.kernels.structure import first_bad_offset


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


# ---------------------------------------------------------------------------- hostile files
_CHILD_MEMORY = 4 * 2 ** 30  # address space of a child: segmint's imports take ~1.6 GB of it


def _run_child(code, *args, timeout=120):
    """Run ``code`` in a fresh interpreter with a time and address-space bound (a crash or a
    hang there fails one test instead of killing the run); returns (exit code, stdout, stderr)."""
    def bound():
        resource.setrlimit(resource.RLIMIT_AS, (_CHILD_MEMORY, _CHILD_MEMORY))
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout, preexec_fn=bound,
                           env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"})
    return child.returncode, child.stdout, child.stderr


_OPEN_EACH = '''
    import contextlib, io, json, sys
    import segmint
    from segmint import cli
    outcomes, info = {}, {}
    for path in sys.argv[1:]:
        try:
            with segmint.open(path) as src:
                for batch in src.batches():
                    for name in batch.column_names:
                        batch[name]
            outcomes[path] = "ok"
        except segmint.SegmintError as exc:
            outcomes[path] = f"{type(exc).__name__}: {exc}"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            info[path] = cli.main(["info", path])
    print(json.dumps([outcomes, info]))
'''


def _open_each_in_a_child(paths):
    """``segmint.open`` + every column of every batch, and ``segmint info``, on each path in a
    bounded child: ``({path: 'ok' or 'ErrorClass: message'}, {path: exit code of info})``."""
    code, out, err = _run_child(_OPEN_EACH, *paths)
    assert code == 0 and "Traceback" not in err, (code, err[-2000:])
    return json.loads(out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=0, max_size=300), st.sampled_from([np.int32, np.int64]),
       st.integers(-1, 400), st.integers(-60, 60), st.integers(-5, 20))
def test_offset_check_finds_the_same_position_as_the_naive_loop(lengths, dtype, damage_at, damage, slack):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(dtype)
    if 0 <= damage_at < len(offsets):
        offsets[damage_at] += damage
    data_size = max(int(offsets[-1]) + slack, 0)
    assert first_bad_offset(offsets, data_size) == naive_validate.first_bad_offset(offsets, data_size)


def test_offset_check_on_long_arrays_names_the_first_bad_block_position():
    offsets = np.arange(0, 3 * 10_000 + 1, 3, dtype=np.int64)
    assert first_bad_offset(offsets, int(offsets[-1])) == -1
    offsets[8_193] = offsets[8_192] - 1  # inside the third block of 4096
    assert first_bad_offset(offsets, int(offsets[-1])) == 8_193
    assert first_bad_offset(offsets[:8_193], int(offsets[-1])) == -1


def _strings_with_offsets(offsets, data=b"abcdefghij", large=False):
    kind, dtype = (pa.large_string(), np.int64) if large else (pa.string(), np.int32)
    return pa.Array.from_buffers(kind, len(offsets) - 1,
                                 [None, pa.py_buffer(np.asarray(offsets, dtype=dtype)), pa.py_buffer(data)])


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("offsets, problem", [
    # pyarrow's cheap validate() already refuses a bad first or last offset: damage the middle
    ([0, 2, 1, 5], "offset 2 is 1"), ([0, 12, 12, 10], "offset 1 is 12"), ([0, -3, 4], "offset 1 is -3"),
])
def test_damaged_string_offsets_are_refused_before_any_reader_follows_them(offsets, problem, large):
    with pytest.raises(LayoutError, match=problem):
        check_layout(_strings_with_offsets(offsets, large=large))
    good = _strings_with_offsets([0, 2, 2, 10], large=large)
    assert check_layout(good) is good


def test_a_valid_dictionary_index_outside_the_dictionary_is_refused():
    dictionary = pa.array(["a", "b"])
    for index in (2, -1, 2 ** 31 - 1):
        array = pa.DictionaryArray.from_arrays(pa.array([0, index, 1], type=pa.int32()), dictionary,
                                               safe=False)
        with pytest.raises(LayoutError, match=f"index {index}, outside its dictionary of 2"):
            check_layout(array)


def test_null_slots_pointing_outside_the_dictionary_are_pointed_at_zero_and_keep_their_nulls():
    valid = np.array([1, 0, 1, 0], dtype=bool)
    indices = pa.Array.from_buffers(pa.int16(), 4, [pa.py_buffer(np.packbits(valid, bitorder="little")),
                                                    pa.py_buffer(np.array([1, 999, 0, -7], np.int16))])
    array = pa.DictionaryArray.from_arrays(indices, pa.array(["a", "b"]), safe=False)
    fixed = check_layout(array)
    assert fixed.to_pylist() == ["b", None, "a", None]
    assert fixed.indices.fill_null(0).to_pylist() == [1, 0, 0, 0]
    assert fixed.dictionary.equals(array.dictionary)


def _column_buffer_offset(path, column, which):
    """File position of buffer ``which`` of ``column`` in the first batch of an uncompressed IPC file."""
    with pa.memory_map(str(path)) as mm:
        base = mm.read_buffer(mm.size()).address
        mm.seek(0)
        array = ipc.open_file(mm).get_batch(0).column(column)
        if which == "indices":
            return array.indices.buffers()[1].address - base
        if which == "dictionary offsets":
            return array.dictionary.buffers()[1].address - base
        return array.buffers()[1].address - base


def test_damaged_offsets_and_indices_in_a_file_end_in_a_corrupt_file_error_naming_file_and_column(tmp_path):
    table = pa.table({"x": np.arange(100.0), "s": [f"v{i % 7}" for i in range(100)],
                      "d": pa.array([f"w{i % 5}" for i in range(100)]).dictionary_encode()})
    path = tmp_path / "good.arrow"
    with ipc.new_file(str(path), table.schema) as w:
        w.write_table(table)
    damages = {"backwards": ("s", "offsets", 4 * 50, 3), "beyond": ("s", "offsets", 4 * 50, 10 ** 6),
               "index": ("d", "indices", 4 * 9, 5), "dictionary": ("d", "dictionary offsets", 4 * 2, 10 ** 6)}
    paths = []
    for name, (column, which, at, value) in damages.items():
        data = bytearray(path.read_bytes())
        struct.pack_into("<i", data, _column_buffer_offset(path, column, which) + at, value)
        paths.append(tmp_path / f"{name}.arrow")
        paths[-1].write_bytes(bytes(data))
    outcomes, _ = _open_each_in_a_child([path] + paths)
    assert outcomes[str(path)] == "ok"
    for p, (column, *_) in zip(paths, damages.values()):
        assert outcomes[str(p)].startswith("CorruptFileError"), outcomes[str(p)]
        assert str(p) in outcomes[str(p)] and f"column {column!r}" in outcomes[str(p)]


def test_devices_fifos_sockets_and_fifos_inside_a_dataset_are_refused_by_open_and_info(tmp_path):
    fifo = tmp_path / "pipe.arrow"
    os.mkfifo(fifo)
    sock_path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    dataset = tmp_path / "lake"
    dataset.mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), dataset / "part-0.parquet")
    os.mkfifo(dataset / "part-1.parquet")
    try:
        outcomes, info = _open_each_in_a_child(["/dev/zero", fifo, sock_path, dataset])
    finally:
        sock.close()
    assert set(info.values()) == {1}, info  # `segmint info` says so in one line, and returns
    assert "character device, not a regular file" in outcomes["/dev/zero"]
    assert "FIFO (named pipe), not a regular file" in outcomes[str(fifo)]
    assert "socket, not a regular file" in outcomes[str(sock_path)]
    assert "part-1.parquet" in outcomes[str(dataset)] and "FIFO" in outcomes[str(dataset)]
    assert all(o.startswith("CorruptFileError") for o in outcomes.values()), outcomes


def _stream_bytes(table, chunk):
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as w:
        w.write_table(table, max_chunksize=chunk)
    return sink.getvalue().to_pybytes()


def _message_ends(data):
    """Positions where each message of a stream ends (schema, dictionaries, batches)."""
    reader = pa.BufferReader(pa.py_buffer(data))
    messages = ipc.MessageReader.open_stream(reader)
    ends = []
    while True:
        try:
            messages.read_next_message()
        except StopIteration:
            return ends
        ends.append(reader.tell())


def test_a_stream_cut_between_messages_is_reported_as_truncated(tmp_path):
    table = pa.table({"id": np.arange(3000), "s": pa.array([f"v{i % 4}" for i in range(3000)]).dictionary_encode()})
    data = _stream_bytes(table, 1000)
    assert data.endswith(b"\xff\xff\xff\xff\x00\x00\x00\x00")  # pyarrow always writes the marker
    ends = _message_ends(data)
    assert len(ends) == 5  # schema, dictionary, three batches
    for cut in ends:
        path = tmp_path / f"cut-{cut}.arrows"
        path.write_bytes(data[:cut])
        with pytest.raises(segmint.CorruptFileError, match="truncated"):
            segmint.open(path).num_rows
        with pytest.raises(segmint.CorruptFileError, match="truncated"):
            segmint.open(path).read()
    whole = tmp_path / "whole.arrows"
    whole.write_bytes(data)
    assert segmint.open(whole).num_rows == 3000


def test_a_stream_ending_with_the_legacy_four_byte_marker_is_complete(tmp_path):
    table = pa.table({"id": np.arange(10)})
    data = _stream_bytes(table, 4)
    path = tmp_path / "legacy-end.arrows"
    path.write_bytes(data[:-8] + b"\x00\x00\x00\x00")
    assert segmint.open(path).read().column("id").to_pylist() == list(range(10))


def test_a_column_name_that_is_not_utf8_is_a_corrupt_file_error(tmp_path):
    path = tmp_path / "names.arrow"
    with ipc.new_file(str(path), pa.schema([("zzzcolumn", pa.int64())])) as w:
        w.write_table(pa.table({"zzzcolumn": [1, 2]}))
    path.write_bytes(path.read_bytes().replace(b"zzzcolumn", b"zz\xff\xfeolumn"))
    with pytest.raises(segmint.CorruptFileError, match="names.arrow"):
        segmint.open(path)


def test_errors_raised_lazily_by_a_column_view_name_the_column_and_the_source(tmp_path, monkeypatch):
    import segmint.io.source as source_module

    def broken(*args, **kwargs):
        raise pa.ArrowInvalid("bad dictionary")
    monkeypatch.setattr(source_module, "view_of", broken)
    batch = next(segmint.open(pa.table({"a": [1]}), label="my table").batches())
    with pytest.raises(segmint.CorruptFileError, match="column 'a' of my table: bad dictionary"):
        batch["a"]


def test_a_string_that_is_not_utf8_is_refused_when_its_column_is_viewed():
    # rules and to_pylist decode the dictionary: its (distinct) strings are checked once
    bad = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(np.array([0, 1, 3, 3], np.int32)),
                                                 pa.py_buffer(b"a\xff\xfe")])
    batch = next(segmint.open({"s": bad, "x": [1, 2, 3]}, label="the upload").batches())
    assert batch["x"].to_pylist() == [1, 2, 3]
    with pytest.raises(segmint.DataError, match="column 's' of the upload: .*not valid UTF-8"):
        batch["s"]
    rules = segmint.RuleSet([{"name": "a", "rule": "s = 'a'"}])
    with pytest.raises(segmint.DataError, match="not valid UTF-8"):
        rules.evaluate({"s": bad})


@pytest.mark.parametrize("batch_size", [0, -5, 2.5, "10", True, None])
def test_batch_sizes_that_are_not_positive_integers_are_parameter_errors(batch_size):
    src = segmint.open(pa.table({"a": [1]}))
    with pytest.raises(ParameterError, match="batch_size must be a positive integer") as info:
        next(src.batches(batch_size=batch_size))
    assert isinstance(info.value, ValueError)


def test_a_parquet_footer_declaring_gigabytes_is_refused_before_it_is_read(tmp_path):
    # a sparse file: 2 GiB long on paper, a few bytes on disk; its footer claims 2 GiB - 12
    path = tmp_path / "sparse.parquet"
    size = 2 ** 31
    with open(path, "wb") as f:
        f.write(b"PAR1")
        f.seek(size - 8)
        f.write((size - 12).to_bytes(4, "little") + b"PAR1")
    with pytest.raises(segmint.CorruptFileError, match="declares a Parquet footer of 2,147,483,636 bytes"):
        segmint.open(path)
    folder = tmp_path / "lake"
    folder.mkdir()
    os.replace(path, folder / "part.parquet")
    with pytest.raises(segmint.CorruptFileError, match="Parquet footer"):
        segmint.open(folder)
