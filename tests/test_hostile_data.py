"""The data-file half of the corruption corpus (issue 12): damaged Arrow IPC and Parquet files.

The tests build the corpus from a fixed seed (no files are committed): one small table with
int, float, nullable, boolean, string, dictionary-string and timestamp columns, written as a
plain, lz4 and zstd IPC file, an IPC stream and a snappy Parquet file, then damaged by
truncation, bit flips and 8-byte overwrites in the footer, the metadata and the bodies, by
damaged string offsets and by dictionary indices out of range.

Every case runs in a child process with a time limit and an address-space limit, and goes
through what users do, each operation on its own: ``segmint.open``, ``num_rows``, every column
through ``batches()`` and ``batch[name]`` (values and ``to_pylist``), ``read()``, a ``RuleSet``
over string columns and one over numeric columns, and ``segmint info``. Each must end in
success (a value changed where no reader can tell) or a segmint error: never a signal, a hang,
a raw traceback, or an allocation beyond ``MEMORY_BUDGET`` (it would fail, and show).

One child runs many cases and prints a line before and after each, so a case that kills it
is named; the parent then starts a new child with the cases left.
"""
import json
import os
import random
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

SEED = 12
ROWS, CHUNK = 600, 200  # three record batches / row groups: cuts can fall between them
# The memory bound: address space a damaged file may add to a warmed-up child (segmint
# imported, kernels loaded, one intact file read). Importing numba, LLVM, scipy and pyarrow
# alone reserves about 1.6 GB, so the bound is set on top of what the child has then.
MEMORY_BUDGET = 1 * 2 ** 30
CHILD_TIMEOUT = 240  # seconds for one child (many cases); a hang shows as a timed-out case
# Fixed thread and arena counts keep the address space a child reserves independent of the
# machine (glibc reserves 64 MB per malloc arena, up to 8 per core; OpenBLAS buffers per thread)
CHILD_ENV = {"MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
             "SEGMINT_NUM_THREADS": "2"}

CHILD = textwrap.dedent('''
    import contextlib, io, json, resource, sys, traceback
    import numpy as np
    import segmint
    from segmint import cli

    TEXT = segmint.RuleSet([{"name": "text", "rule": "s = 'alpha' or starts_with(d, 'b') or contains(s, 'ps')"}])
    NUMBERS = segmint.RuleSet([{"name": "numbers", "rule": "i > 100 and f < 0.5 and (n > 0 or b)"}])

    def views(path):
        with segmint.open(path) as src:
            src.num_rows
            for batch in src.batches(batch_size=128):
                for name in batch.column_names:
                    view = batch[name]
                    view.to_pylist()
                    np.asarray(view.values).sum()

    def read(path):
        with segmint.open(path) as src:
            src.read()

    def info(path):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cli.main(["info", path])

    # each operation runs on its own, so an error in one does not hide a crash in the next
    OPERATIONS = {"views": views, "read": read, "info": info,
                  "text rules": lambda p: TEXT.evaluate(p, as_of="2026-10-01", id_column="i"),
                  "number rules": lambda p: NUMBERS.evaluate(p, as_of="2026-10-01")}

    def operations(path):
        """``ok``, ``segmint <Error> ...`` or ``raw <operation> <traceback>``."""
        errors = []
        for name, operation in OPERATIONS.items():
            try:
                operation(path)
            except segmint.SegmintError as exc:
                errors.append(type(exc).__name__)
            except BaseException as exc:
                return f"raw {name} " + json.dumps("".join(traceback.format_exception(exc))[-1500:])
        return "segmint " + " ".join(sorted(set(errors))) if errors else "ok"

    def address_space():
        with open("/proc/self/status") as status:
            line = next(l for l in status if l.startswith("VmSize:"))
        return int(line.split()[1]) * 1024

    # warm up on an intact file (kernels compiled or loaded, thread pools started), then bound
    # the address space a damaged file may add
    for path in sys.argv[2:]:
        assert operations(path) == "ok", (path, operations(path))
    limit = address_space() + int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for path in sys.stdin.read().split():
        print("start", path, flush=True)
        print("end", path, operations(path), flush=True)
''')


# ---------------------------------------------------------------------------- the files
def corpus_table():
    """The table every corpus file holds; the same bits for every run."""
    rng = np.random.default_rng(SEED)
    words = ["alpha", "beta", "gamma", "delta", "épsilon", ""]
    nullable = rng.normal(size=ROWS)
    return pa.table({
        "i": pa.array(np.arange(ROWS, dtype=np.int64)),
        "f": pa.array(rng.random(ROWS)),
        "n": pa.array(nullable, mask=rng.random(ROWS) < 0.2),
        "b": pa.array(rng.random(ROWS) < 0.5, mask=rng.random(ROWS) < 0.1),
        "s": pa.array([words[k] for k in rng.integers(0, len(words), ROWS)],
                      mask=rng.random(ROWS) < 0.1),
        "d": pa.array([words[k] for k in rng.integers(0, len(words), ROWS)]).dictionary_encode(),
        "t": pa.array(rng.integers(0, 2 * 10 ** 9, ROWS) * 1000, type=pa.timestamp("ms", tz="UTC")),
    })


def write_formats(folder):
    """The five encodings of the table: name -> path."""
    table = corpus_table()
    paths = {}
    for name, compression in (("plain", None), ("lz4", "lz4"), ("zstd", "zstd")):
        paths[name] = folder / f"{name}.arrow"
        options = ipc.IpcWriteOptions(compression=compression)
        with ipc.new_file(str(paths[name]), table.schema, options=options) as w:
            w.write_table(table, max_chunksize=CHUNK)
    paths["stream"] = folder / "stream.arrows"
    with ipc.new_stream(str(paths["stream"]), table.schema) as w:
        w.write_table(table, max_chunksize=CHUNK)
    paths["parquet"] = folder / "snappy.parquet"
    pq.write_table(table, str(paths["parquet"]), row_group_size=CHUNK, compression="snappy")
    return paths


def ipc_regions(data, stream):
    """``[(start, end, kind)]`` of the metadata, bodies and footer of an IPC file or stream."""
    start = 0 if stream else 8
    reader = pa.BufferReader(pa.py_buffer(data[start:]))
    messages = ipc.MessageReader.open_stream(reader)
    regions, pos = [], start
    while True:
        try:
            message = messages.read_next_message()
        except StopIteration:
            break
        end = start + reader.tell()
        body = message.body.size if message.body is not None else 0
        regions.append((pos, end - body, "metadata"))
        if body:
            regions.append((end - body, end, "body"))
        pos = end
    if not stream:
        footer_len = struct.unpack("<i", data[-10:-6])[0]
        regions.append((len(data) - 10 - footer_len, len(data) - 10, "footer"))
    return regions


def parquet_regions(data):
    footer_len = struct.unpack("<i", data[-8:-4])[0]
    return [(4, len(data) - 8 - footer_len, "body"), (len(data) - 8 - footer_len, len(data) - 8, "footer")]


def random_cases(name, data, regions, rng, per_region=12, cuts=14):
    """Truncations, single bit flips and 8-byte random overwrites, named for where they hit."""
    cases = {}
    boundaries = sorted({end for _, end, _ in regions if end < len(data)})
    points = sorted(set(boundaries) | set(rng.sample(range(1, len(data)), cuts)))
    for at in points:
        cases[f"{name}-cut-{at}"] = data[:at]
    for start, end, kind in regions:
        if end - start < 8:
            continue
        for k in range(per_region):
            at = rng.randrange(start, end - 1)
            damaged = bytearray(data)
            if k % 2:
                damaged[at] ^= 1 << rng.randrange(8)
                what = "flip"
            else:
                at = min(at, end - 8)
                damaged[at:at + 8] = rng.randbytes(8)
                what = "overwrite"
            cases[f"{name}-{kind}-{what}-{at}"] = bytes(damaged)
    return cases


def mapped_positions(path, column):
    """Per record batch, the file positions of ``column``'s offsets (or dictionary indices),
    its dictionary's offsets and its data buffer (uncompressed IPC: buffers are mapped views)."""
    with pa.memory_map(str(path)) as mm:
        mm.seek(0)
        base = mm.read_buffer(mm.size()).address
        mm.seek(0)
        found = []
        reader = ipc.open_file(mm) if str(path).endswith(".arrow") else ipc.open_stream(mm)
        batches = [reader.get_batch(i) for i in range(reader.num_record_batches)] \
            if hasattr(reader, "get_batch") else list(reader)
        for batch in batches:
            array = batch.column(column)
            if pa.types.is_dictionary(array.type):
                found.append({"indices": array.indices.buffers()[1].address - base,
                              "offsets": array.dictionary.buffers()[1].address - base,
                              "length": len(array), "dictionary": len(array.dictionary)})
            else:
                found.append({"offsets": array.buffers()[1].address - base, "length": len(array)})
        return found


def structural_cases(name, path):
    """Damaged string offsets and dictionary indices at the exact positions of the buffers."""
    data = bytes(path.read_bytes())
    cases = {}

    def put(label, position, fmt, value):
        damaged = bytearray(data)
        struct.pack_into(fmt, damaged, position, value)
        cases[f"{name}-{label}"] = bytes(damaged)

    for b, where in enumerate(mapped_positions(path, "s")):
        off, n = where["offsets"], where["length"]
        put(f"offsets-backwards-{b}", off + 4 * (n // 2), "<i", 0)
        put(f"offsets-negative-{b}", off + 4 * (n // 3), "<i", -(2 ** 31))
        put(f"offsets-beyond-{b}", off + 4 * (n // 2), "<i", 2 ** 31 - 1)
        put(f"offsets-first-{b}", off, "<i", 5000)
        put(f"offsets-last-{b}", off + 4 * n, "<i", 10 ** 6)
    for b, where in enumerate(mapped_positions(path, "d")):
        put(f"index-high-{b}", where["indices"] + 4 * (b + 7), "<i", 10 ** 6)
        put(f"index-negative-{b}", where["indices"] + 4 * (b + 3), "<i", -1)
        put(f"index-at-length-{b}", where["indices"], "<i", where["dictionary"])
        put(f"dictionary-offsets-{b}", where["offsets"] + 8, "<i", 2 ** 30)
    return cases


def compressed_bomb_cases(name, data, regions):
    """lz4/zstd bodies declaring absurd uncompressed sizes (each buffer starts with its int64
    uncompressed length; the first buffer of a body starts at the body's start)."""
    cases = {}
    bodies = [(s, e) for s, e, kind in regions if kind == "body"]
    for k, (start, _) in enumerate(bodies):
        for size in (2 ** 62, 2 ** 40, 2 ** 31 + 8, -2):
            damaged = bytearray(data)
            struct.pack_into("<q", damaged, start, size)
            cases[f"{name}-bomb-{k}-{size}"] = bytes(damaged)
    return cases


def build_corpus(folder):
    """Write every case under ``folder``; returns the list of paths, sorted by name."""
    rng = random.Random(SEED)
    paths = write_formats(folder)
    cases = {}
    for name, path in paths.items():
        data = path.read_bytes()
        if name == "parquet":
            regions = parquet_regions(data)
        else:
            regions = ipc_regions(data, stream=name == "stream")
        cases.update(random_cases(name, data, regions, rng))
        if name in ("plain", "stream"):
            cases.update(structural_cases(name, path))
        if name in ("lz4", "zstd"):
            cases.update(compressed_bomb_cases(name, data, regions))
    written = []
    for case, data in sorted(cases.items()):  # sorted: a failure names the same case every run
        target = folder / (case + (".parquet" if case.startswith("parquet") else ".arrow"))
        target.write_bytes(data)
        written.append(str(target))
    return written


def run_cases(paths, intact, memory_budget=MEMORY_BUDGET, timeout=CHILD_TIMEOUT):
    """Run the cases in child processes; returns ``{path: outcome}``.

    ``intact`` are undamaged files each child reads first, before its memory is bounded.

    An outcome is ``ok``, ``segmint <ErrorClass>``, ``raw <traceback>`` or, for the case a
    child was running when it died, ``signal N`` / ``exit N`` / ``timeout``.
    """
    outcomes, left = {}, list(paths)
    while left:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(memory_budget), *map(str, intact)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env={**os.environ, **CHILD_ENV})
        try:
            out, err = child.communicate("\n".join(left), timeout=timeout)
            status = f"signal {-child.returncode}" if child.returncode < 0 else f"exit {child.returncode}"
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
            status = "timeout"
        running = None
        for line in out.splitlines():
            word, _, rest = line.partition(" ")
            if word == "start":
                running = rest
            elif word == "end":
                path, _, outcome = rest.partition(" ")
                outcomes[path] = outcome
                running = None
        if child.returncode == 0 and running is None and all(p in outcomes for p in left):
            break
        if running is None:  # died before its first case: nothing to blame a case for
            raise AssertionError(f"the corpus child failed outside any case ({status}):\n{err[-3000:]}")
        outcomes[running] = f"{status} {json.dumps(err[-1500:])}"
        left = [p for p in left if p not in outcomes]
    return outcomes


# ---------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return build_corpus(folder)


@pytest.fixture(scope="module")
def outcomes(corpus):
    folder = os.path.dirname(corpus[0])
    intact = [os.path.join(folder, name) for name in ("plain.arrow", "lz4.arrow", "zstd.arrow",
                                                      "stream.arrows", "snappy.parquet")]
    return run_cases(corpus, intact)


def test_the_corpus_is_large_and_covers_every_format_and_damage(corpus):
    names = [os.path.basename(p) for p in corpus]
    assert len(names) >= 300
    for fmt in ("plain", "lz4", "zstd", "stream", "parquet"):
        for damage in ("-cut-", "-body-", "-metadata-" if fmt != "parquet" else "-footer-"):
            assert any(n.startswith(fmt) and damage in n for n in names), (fmt, damage)
    for damage in ("offsets-backwards", "index-high", "dictionary-offsets", "-bomb-"):
        assert any(damage in n for n in names), damage


def test_every_damaged_file_ends_in_success_or_a_segmint_error(outcomes):
    bad = {os.path.basename(p): o for p, o in outcomes.items()
           if not (o == "ok" or o.startswith("segmint "))}
    summary = "\n".join(f"{p}: {o[:600]}" for p, o in sorted(bad.items()))
    assert not bad, f"{len(bad)} of {len(outcomes)} cases crashed or raised raw errors:\n{summary}"


def test_damaged_structure_is_always_detected(outcomes):
    # offsets and indices that point outside their buffers are structure, never a value change
    structural = {os.path.basename(p): o for p, o in outcomes.items()
                  if any(k in p for k in ("offsets-", "index-", "-bomb-"))}
    assert structural
    undetected = {p: o for p, o in structural.items() if not o.startswith("segmint ")}
    assert not undetected, undetected


def test_truncated_files_are_refused_at_every_cut(outcomes):
    cuts = {os.path.basename(p): o for p, o in outcomes.items() if "-cut-" in p}
    assert cuts
    accepted = {p: o for p, o in cuts.items() if o == "ok"}
    assert not accepted, f"truncated files read as complete: {sorted(accepted)}"


def test_the_intact_files_read_back_in_the_child(tmp_path):
    paths = write_formats(tmp_path)
    outcomes = run_cases([str(p) for p in paths.values()], intact=[paths["plain"]])
    assert all(o == "ok" for o in outcomes.values()), outcomes
