"""String customer ids numbered from Arrow's buffers (``kernels/string_ids.py``, ``_StringIds``)
against obvious slow twins: Python dicts for the numbering, ``sorted`` of the UTF-8 bytes for
the order, and ``aggregate`` over integer ids for the whole pipeline. Collisions are forced by
degrading the hash (``_HASH_MASK``): only the byte comparison then tells strings apart."""
import datetime as dt
import importlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmint
from segmint.errors import DataError
from segmint.kernels import aggregate as agg
from segmint.kernels import string_ids as sk

A = importlib.import_module("segmint.events.aggregate")  # the module (segmint.events.aggregate is the function)
AS_OF = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
# fewer hash bits: everything collides (0), a few top bits (several partitions, each a
# chain of equal hashes), only low bits (one partition, long probes)
DEGRADED = [0, 0xF000000000000003, 0x7]
SPECIALS = ["", "a", "ab", "ab\x00", "a\x00", "\x00", "é", "日本語", "abcdefgh", "abcdefghi",
            "abcdefgh\x00", "abcdefghijklmnop", "abcdefghijklmnopq", "abcdefghijklmnoq", "x" * 100,
            "x" * 99 + "y", "ü" * 9, "\U0001F600", "C0000001", "C0000002"]


def _hash_reference(b):
    """hash_bytes, written out plainly."""
    mask = (1 << 64) - 1

    def mix(x):
        z = (x + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    h = 0x6A09E667F3BCC908 ^ ((len(b) * 0x9E3779B97F4A7C15) & mask)
    for i in range(0, len(b), 8):
        h = mix(h ^ int.from_bytes(b[i:i + 8], "little"))
    return mix(h) if not b else h


def _strings(rng, n, vocab_size=None, null_rate=0.1):
    vocab = SPECIALS + [f"cust-{v:07d}" for v in rng.integers(0, 10**7, size=vocab_size or max(3, n // 3))]
    vocab += ["".join(chr(int(c)) for c in rng.integers(1, 0x800, size=rng.integers(0, 30))) for _ in range(20)]
    picks = rng.integers(0, len(vocab), size=n)
    return [None if rng.random() < null_rate else vocab[i] for i in picks]


def _numbered(values, arrow_type=pa.string(), threads=2, pieces=None):
    ids = A._StringIds(threads)
    arr = pa.array(values, arrow_type)
    col = ids.codes(pieces(arr) if pieces else [arr], len(values))
    valid = np.ones(len(values), bool) if col.bits is None else np.unpackbits(
        col.bits, count=len(values), bitorder="little").astype(bool)
    return ids, col.values.copy(), valid


def _check_numbering(values, codes, valid):
    """Codes are a bijection between the distinct non-null strings and numbers; nulls invalid."""
    assert list(valid) == [v is not None for v in values]
    seen = {}
    for v, c, ok in zip(values, codes, valid):
        if not ok:
            continue
        assert seen.setdefault(v, c) == c  # one string, one number
    assert len(set(seen.values())) == len(seen)  # two strings, two numbers


@pytest.mark.parametrize("b", [s.encode() for s in SPECIALS] + [bytes(range(256)), b"\xff" * 17])
def test_hash_bytes_matches_its_definition(b):
    data = np.frombuffer(b"..." + b + b"..", dtype=np.uint8)
    assert int(sk.hash_bytes(data, 3, 3 + len(b))) == _hash_reference(b)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 257, 5003, 70_001])
@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string()])
def test_numbering_is_one_number_per_distinct_string(n, arrow_type):
    values = _strings(np.random.default_rng(n), n)
    ids, codes, valid = _numbered(values, arrow_type)
    _check_numbering(values, codes, valid)
    distinct = {v for v in values if v is not None}
    assert ids.n_distinct == len(distinct)
    # dense: number = slot * N_PART + partition, slots of each partition 0, 1, ... in order
    for p in range(agg.N_PART):
        slots = sorted({int(c) >> agg.P_BITS for c, ok in zip(codes, valid) if ok and c & (agg.N_PART - 1) == p})
        assert slots == list(range(len(slots)))


@pytest.mark.parametrize("hmask", DEGRADED)
def test_numbering_survives_forced_collisions(hmask, monkeypatch):
    monkeypatch.setattr(A, "_HASH_MASK", np.uint64(hmask))
    values = _strings(np.random.default_rng(5), 3001, vocab_size=400)
    _, codes, valid = _numbered(values)
    _check_numbering(values, codes, valid)


def test_the_forced_collisions_really_collide(monkeypatch):
    """Guards the test above: with the hash degraded, distinct strings do share hashes (and a
    numbering that trusted hashes would merge them)."""
    monkeypatch.setattr(A, "_HASH_MASK", np.uint64(0x7))
    arr = pa.array(["a", "b", "c", "d", "e", "f", "g", "h", "i"])
    offsets, data, bits, off = A._string_buffers(arr)
    hashes = np.empty(9, np.uint64)
    sk.hash_strings(offsets, data, bits, off, 0, 9, A._HASH_MASK, hashes, np.empty(9, np.int16),
                    np.zeros(agg.N_PART, np.int64), np.empty(9, np.int64))
    assert len(set(hashes.tolist())) < 9


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_numbers_do_not_depend_on_threads(threads):
    values = _strings(np.random.default_rng(11), 150_001, vocab_size=20_000)
    assert np.array_equal(_numbered(values, threads=threads)[1], _numbered(values, threads=1)[1])


def test_numbering_across_batches_keeps_numbers():
    rng = np.random.default_rng(2)
    values = _strings(rng, 9000)
    ids = A._StringIds(2)
    codes = []
    for lo in range(0, 9000, 1234):  # batches, each its own array, numbered one after the other
        col = ids.codes([pa.array(values[lo:lo + 1234])], len(values[lo:lo + 1234]))
        codes.append(col.values.copy())
    codes = np.concatenate(codes)
    _check_numbering(values, codes, np.array([v is not None for v in values]))


@pytest.mark.parametrize("layout", ["sliced", "chunks", "dictionary", "dictionary-chunks", "view"])
def test_numbering_of_every_layout(layout):
    values = _strings(np.random.default_rng(4), 4001)
    if layout == "sliced":
        arr = pa.array(["zz", None, "q"] + values + ["tail"]).slice(3, len(values))
        pieces = [arr]
    elif layout == "chunks":
        arr = pa.chunked_array([pa.array(values[:5]), pa.array(values[5:5], pa.string()), pa.array(values[5:2000]),
                                pa.array(values[2000:], pa.large_string()).cast(pa.string())])
        pieces = arr.chunks
    elif layout == "dictionary":
        pieces = [pa.array(values).dictionary_encode().slice(0, len(values))]
    elif layout == "dictionary-chunks":
        # own dictionaries, one with a repeated value, a null value and an unused one
        a = pa.array(values[:1500]).dictionary_encode()
        d = pa.concat_arrays([a.dictionary, pa.array(["never used", None]), a.dictionary[:1]])
        ind = np.asarray(a.indices.fill_null(len(a.dictionary) + 1)).astype(np.int32)
        ind[(ind == 0) & (np.arange(ind.size) % 2 == 0)] = len(d) - 1
        pieces = [pa.DictionaryArray.from_arrays(pa.array(ind), d),
                  pa.array(values[1500:]).dictionary_encode().slice(0)]
    else:
        pieces = [pa.array(values).cast(pa.string_view())]
    ids = A._StringIds(2)
    col = ids.codes(pieces, len(values))
    valid = np.ones(len(values), bool) if col.bits is None else np.unpackbits(
        col.bits, count=len(values), bitorder="little").astype(bool)
    _check_numbering(values, col.values, valid)


def test_a_dictionary_index_outside_its_dictionary_is_refused():
    bad = pa.DictionaryArray.from_buffers(pa.dictionary(pa.int32(), pa.string()), 3,
                                          [None, pa.py_buffer(np.array([0, 5, 1], np.int32))],
                                          dictionary=pa.array(["a", "b"]))
    with pytest.raises(DataError, match="dictionary index 5"):
        A._StringIds(1).codes([bad], 3)


@pytest.mark.parametrize("n,nulls", [(0, 0), (1, 0), (9, 3), (1000, 100)])
def test_dictionary_codes_matches_gather(n, nulls):
    rng = np.random.default_rng(n)
    mapping = rng.integers(-1, 50, 20).astype(np.int64)
    indices = rng.integers(0, 20, n).astype(np.int32)
    valid = np.ones(n, bool)
    valid[rng.choice(n, nulls, replace=False)] = False
    bits = np.packbits(valid, bitorder="little") if nulls else np.zeros(0, np.uint8)
    codes = np.empty(n, np.int64)
    got = sk.dictionary_codes(indices, bits, 0, mapping, codes)
    expect = np.where(valid, mapping[indices], -1)
    assert np.array_equal(codes, expect) and got == int((expect < 0).sum())


def _sorted_strings(values, hmask=None):
    ids = A._StringIds(2)
    arr = pa.array(values)
    col = ids.codes([arr], len(values))
    keys = np.unique(col.values[col.values >= 0])
    order, out = ids.sorted_ids(keys, "customer_id")
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), st.sampled_from(SPECIALS),
                          st.builds(lambda a, b: a + b, st.sampled_from(["abcdefgh", "abcdefghij", "zz"]),
                                    st.text(alphabet="ab\x00é", max_size=12))),
                max_size=60))
def test_sorted_ids_sort_like_bytes(values):
    out = _sorted_strings(values)
    assert out.type == pa.string()
    assert out.to_pylist() == sorted(set(values), key=lambda s: s.encode())


@pytest.mark.parametrize("prefix", ["", "C", "customer-00000-"])
def test_sorted_ids_long_runs_of_equal_words(prefix):
    """Runs of more than 16 strings equal in their 8 bytes after the common prefix go through
    the merge sort; shorter runs through the insertion sort."""
    rng = np.random.default_rng(len(prefix))
    values = [prefix + "SAMEWORD" + "".join(rng.choice(list("ab\x00c"), rng.integers(0, 6))) for _ in range(500)]
    values += [prefix + "SAMEWORX" + str(i) for i in range(9)] + [prefix + "Z", prefix]
    assert _sorted_strings(values).to_pylist() == sorted(set(values), key=lambda s: s.encode())


# -- the whole pipeline: string ids give what their integer ranks give -------------------------

def _log(n, seed, n_customers):
    rng = np.random.default_rng(seed)
    names = sorted({f"c{v}" for v in rng.integers(0, 10**6, n_customers)} | {"", "é", "日本", "a\x00"},
                   key=lambda s: s.encode())
    who = rng.integers(0, len(names), n)
    ts = int(AS_OF.timestamp() * 1e6) - rng.integers(-3, 300, n) * 86_400_000_000 // 2
    kinds = rng.choice(["purchase", "view"], n)
    null_id = rng.random(n) < 0.04
    table = pa.table({
        "ts": pa.array(ts, mask=rng.random(n) < 0.02).cast(pa.timestamp("us", tz="UTC")),
        "event_type": pa.array(kinds).dictionary_encode(),
        "amount": pa.array(np.round(rng.gamma(2, 20, n), 2), mask=rng.random(n) < 0.1)})
    strings = pa.array([names[w] for w in who], pa.string(), mask=null_id)
    ranks = pa.array(who.astype(np.int64), mask=null_id)  # sorted names: rank order = byte order
    return table, strings, ranks, names


def _run(table, btyd=False, **kw):
    args = dict(amount="amount", event_type="event_type", qualifying="purchase", as_of=AS_OF)
    if btyd:
        return segmint.btyd_summary(table, **args, **kw)
    return segmint.aggregate(table, windows={"n": {"last": "30d"}, "s": {"agg": "sum", "last": "60d"}},
                             **args, **kw)


@pytest.mark.parametrize("layout", ["string", "large_string", "dictionary", "chunked", "sliced", "view"])
@pytest.mark.parametrize("n,batch_size", [(0, 10), (1, 10), (13, 4), (5000, 997), (30_011, 1 << 22)])
@pytest.mark.parametrize("btyd", [False, True])
def test_string_ids_give_what_their_integer_ranks_give(layout, n, batch_size, btyd):
    table, strings, ranks, names = _log(n, n, max(1, n // 5))
    if layout == "large_string":
        strings = strings.cast(pa.large_string())
    elif layout == "dictionary":
        strings = strings.dictionary_encode()
    elif layout == "view":
        strings = strings.cast(pa.string_view())
    with_ids = table.append_column("customer_id", strings)
    with_ranks = table.append_column("customer_id", ranks)
    if layout == "chunked":  # uneven chunks, the ids' chunks unlike the other columns'
        cut = [0, n // 3, n // 3, n // 2 + 1, n]
        with_ids = with_ids.set_column(3, "customer_id", pa.chunked_array(
            [strings[a:b] for a, b in zip(cut[:-1], cut[1:])], pa.string()))
    if layout == "sliced" and n > 4:
        with_ids, with_ranks = with_ids.slice(2, n - 3), with_ranks.slice(2, n - 3)
    got = _run(with_ids, btyd, batch_size=batch_size)
    expect = _run(with_ranks, btyd, batch_size=batch_size)
    assert (got.null_id, got.null_timestamp, got.after_as_of, got.n_events) == \
        (expect.null_id, expect.null_timestamp, expect.after_as_of, expect.n_events)
    want_ids = pa.array([names[r] for r in expect.table["customer_id"].to_pylist()], pa.string())
    assert got.table["customer_id"].combine_chunks().equals(want_ids)
    assert got.table.drop_columns(["customer_id"]).equals(expect.table.drop_columns(["customer_id"]))


@pytest.mark.parametrize("hmask", DEGRADED)
def test_aggregate_with_forced_collisions(hmask, monkeypatch):
    table, strings, ranks, names = _log(4000, 7, 700)
    expect = _run(table.append_column("customer_id", strings))
    monkeypatch.setattr(A, "_HASH_MASK", np.uint64(hmask))
    got = _run(table.append_column("customer_id", strings), batch_size=1500)
    assert got.table.equals(expect.table)


def test_aggregate_string_ids_from_files(tmp_path):
    import pyarrow.parquet as pq
    table, strings, _, _ = _log(20_000, 3, 3000)
    t = table.append_column("customer_id", strings)
    expect = _run(t)
    pq.write_table(t, tmp_path / "e.parquet", row_group_size=3001)
    with pa.ipc.new_file(tmp_path / "e.arrow", t.schema) as w:
        w.write_table(t, max_chunksize=4999)
    for source in (tmp_path / "e.parquet", tmp_path / "e.arrow", t.to_reader(max_chunksize=777)):
        assert _run(source).table.equals(expect.table)


def test_invalid_utf8_ids_are_refused():
    bad = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(np.array([0, 1, 3], np.int32)),
                                                 pa.py_buffer(b"a\xff\xfe")])
    t = pa.table({"customer_id": bad, "ts": pa.array([0, 0], pa.timestamp("us", tz="UTC"))})
    with pytest.raises(DataError, match="UTF-8"):
        segmint.aggregate(t, as_of=AS_OF)


def test_sorted_ids_of_many_strings_on_two_threads():
    """Over 65,536 strings the words are sorted in two halves and merged; runs of equal
    words (``x0000000``..: 10 strings each) cross the halves."""
    rng = np.random.default_rng(8)
    values = [f"{'x' if i % 3 else 'y'}{i // 10:07d}{i % 10}" for i in rng.permutation(80_000)]
    with segmint.threads(2):
        assert _sorted_strings(values).to_pylist() == sorted(values, key=lambda s: s.encode())
