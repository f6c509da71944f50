"""Hostile model and rule files: every one ends in a segmint error, within time and memory bounds.

The corpus is built by the tests from a fixed seed: a real fitted model file (rules, then
MiniBatchKMeans on synthetic customers) cut at many points, with bytes flipped, and with its
members replaced by zip bombs, lying or huge ``.npy`` headers, pickles, encrypted, unknown,
missing and duplicate members; and rule files that are alias bombs, nested too deep, hold
5,000-digit integers, are not UTF-8 or hold values of the wrong type.

Each case runs in a child process (cases batched per child, each announced before it runs so
that a crash is attributed to it) with an address-space limit of :data:`MEMORY_LIMIT` and a
time limit, through ``segmint.load``, ``segmint.RuleSet.load`` and the command line
(``segmint info``, ``segmint score``, ``segmint rules``). A case passes when it ends in a
``SegmintError`` (on the command line: exit status 1 and one line ``segmint: error: ...``);
a flipped byte may also leave the model loadable, but then bit for bit the same model (the
zip's CRC-32 guards every member; only metadata such as timestamps is unchecked).
"""
import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
from pyarrow import feather

import segmint
from segmint import MiniBatchKMeans, RuleSet, Segmenter
from segmint.pipeline.model_file import MANIFEST

SEED = 20261130
MEMORY_LIMIT = 1 << 30      # address space of each child: a bomb that inflated would hit it
CASE_SECONDS = 5.0          # each case, measured in the child
CHILD_TIMEOUT = 120         # a whole batch, measured by the parent (catches hangs)
AS_OF = "2026-10-01"
RULES = {"mode": "waterfall", "default": "everyone_else", "segments": [
    {"name": "vip", "rule": "monetary >= 2000 and frequency >= 8", "owner": "crm"},
    {"name": "lapsed", "rule": "days_since(last_order_date) > 300"}]}
FEATURES = [{"column": "recency_days", "impute": "median", "log1p": True},
            {"column": "frequency", "log1p": True}, "monetary"]

# The child: runs its batch of cases, one JSON line before and after each.
RUNNER = r'''
import contextlib, hashlib, io, json, resource, sys, time, traceback
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import segmint
from segmint.cli import main

def peak_mb():
    # VmHWM, not ru_maxrss: ru_maxrss keeps the parent's resident size from the fork (pytest's)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def fingerprint(m):
    c = m.clusterer_
    parts = [m.segment_names_, m.n_rows_fit_, m.rules_.to_dict() if m.rules_ else None,
             m.feature_spec_.to_dict() if m.feature_spec_ is not None else None,
             c.cluster_centers_.tobytes().hex() if c is not None else None, m.dtype.__name__
             if isinstance(m.dtype, type) else str(m.dtype),
             m.reference_.to_dict() if m.reference_ is not None else None]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

for case in json.load(open(sys.argv[1])):
    print(json.dumps({"start": case["id"]}), flush=True)
    t0 = time.perf_counter()
    out, message = None, ""
    try:
        if case["how"] == "load":
            out = "ok:" + fingerprint(segmint.load(case["path"]))
        elif case["how"] == "rules":
            segmint.RuleSet.load(case["path"])
            out = "ok"
        else:
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(case["argv"])
            out, message = f"exit{code}", err.getvalue()
    except segmint.SegmintError as exc:
        out, message = "segmint", f"{type(exc).__name__}: {exc}"
    except BaseException:
        out, message = "raw", traceback.format_exc()
    print(json.dumps({"id": case["id"], "outcome": out, "message": message[:3000],
                      "seconds": time.perf_counter() - t0,
                      "maxrss_mb": peak_mb()}), flush=True)
'''


# ------------------------------------------------------------------ building the corpus
def many_features(m, n=100_000):
    """Empty reference of ``n`` numeric features, the last one named as the one before it."""
    ref = m["reference"]
    ref["n_rows"] = 0
    ref["features"] = [{"name": f"f{min(i, n - 2)}", "edges": [], "counts": [0], "null_count": 0} for i in range(n)]
    ref["categories"] = []
    ref["segments"]["counts"] = [0] * len(ref["segments"]["counts"])


def many_segment_names(m, n=32_768):
    """Empty reference whose segments list ``n`` names, the last one repeated."""
    ref = m["reference"]
    ref["n_rows"] = 0
    for f in ref["features"] + ref["categories"]:
        f["counts"], f["null_count"] = [0] * len(f["counts"]), 0
    ref["segments"]["categories"] = [f"s{min(i, n - 2)}" for i in range(n)]
    ref["segments"]["counts"] = [0] * n


def customers_table():
    return segmint.make_customers(3000, random_state=7)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def model_file(corpus_dir):
    """(path, bytes) of a real fitted model: rules first, then MiniBatchKMeans on the rest."""
    table = customers_table()
    model = Segmenter(FEATURES, clusterer=MiniBatchKMeans(n_clusters=4, batch_size=512, random_state=0),
                      rules=RuleSet.from_dict(RULES), id_column="customer_id").fit(table, as_of=AS_OF)
    path = corpus_dir / "model.seg"
    model.save(path)
    feather.write_feather(table, corpus_dir / "customers.arrow")
    return path, path.read_bytes()


def members_of(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {info.filename: (z.read(info), info) for info in z.infolist()}


def deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zero_bomb(prefix, size, fill=b"\0", crc=True):
    """A raw deflate stream of ``prefix`` then ``size`` bytes of ``fill``, made in milliseconds:
    one MiB compressed once, its flushed blocks repeated. Returns (stream, crc, total size)."""
    chunk = fill * (1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    n = size // len(chunk)
    checksum = zlib.crc32(prefix)
    for _ in range(n if crc else 0):  # a header that lies about the size needs no true CRC
        checksum = zlib.crc32(chunk, checksum)
    return head + block * n + c.flush(), checksum, len(prefix) + n * len(chunk)


def raw_zip(members, entries=None):
    """A zip written byte by byte, so that headers can lie: each member a dict with ``name``,
    ``data`` (the bytes stored), ``size`` (declared inflated size), ``crc``, ``method``, ``flags``."""
    out, central = bytearray(), bytearray()
    for m in members:
        name = m["name"].encode()
        offset = len(out)
        fields = (m.get("flags", 0), m.get("method", 8), 0, 0x21, m["crc"], len(m["data"]), m["size"], len(name))
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, *fields, 0) + name + m["data"]
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, *fields, 0, 0, 0, 0, 0, offset) + name
    count = len(members) if entries is None else entries
    out += central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central),
                                 len(out), 0)
    return bytes(out)


def member(name, content, **kw):
    """A member dict for :func:`raw_zip`, deflated and honest unless ``kw`` says otherwise."""
    return {"name": name, "data": deflate(content), "size": len(content), "crc": zlib.crc32(content), **kw}


def npy_header(descr, shape, fortran=False, version=1):
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    text = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<H" if version == 1 else "<I", len(text)) + text


def model_cases(data):
    """{case id: (bytes of the file, expected message regex or None)} for the model corpus."""
    parts = members_of(data)
    manifest, centers_npy = parts[MANIFEST][0], parts["centers.npy"][0]
    doc = json.loads(manifest)
    centers = np.load(io.BytesIO(centers_npy))
    k, d = centers.shape
    rng = np.random.default_rng(SEED)
    cases = {}

    def with_members(*ms, **kw):
        return raw_zip(list(ms), **kw)

    honest_m = member(MANIFEST, manifest)
    honest_c = member("centers.npy", centers_npy)

    def with_doc(change):
        new = json.loads(manifest)
        change(new)
        return with_members(member(MANIFEST, json.dumps(new).encode()), honest_c)

    def with_text(text):
        return with_members(member(MANIFEST, text if isinstance(text, bytes) else text.encode()), honest_c)

    def with_centers(content, **kw):
        return with_members(honest_m, member("centers.npy", content, **kw))

    # truncations at many points, and the zip's last bytes
    for cut in sorted({0, 1, 4, 22, len(data) - 1, len(data) - 22, *rng.integers(1, len(data), 40).tolist()}):
        cases[f"truncated at {cut}"] = (data[:cut], None)
    # flipped bytes anywhere (a flip may hit unchecked metadata: then the model must be the same)
    for pos in sorted(rng.choice(len(data), 60, replace=False).tolist()):
        flipped = bytearray(data)
        flipped[pos] ^= int(rng.integers(1, 256))
        cases[f"byte {pos} flipped"] = (bytes(flipped), "may load")

    # zip bombs: a description or centers that inflate far beyond the limits
    stream, crc, size = zero_bomb(manifest[:-1], 80 << 20, b" ")
    cases["manifest bomb 80 MiB"] = (with_members({"name": MANIFEST, "data": stream, "size": size, "crc": crc},
                                                  honest_c), "declares .* bytes once inflated")
    stream, crc, size = zero_bomb(manifest[:-1], 8 << 20, b" ")
    cases["manifest bomb 8 MiB, ratio"] = (with_members({"name": MANIFEST, "data": stream, "size": size,
                                                         "crc": crc}, honest_c), "zip bomb")
    stream, crc, size = zero_bomb(npy_header("<f8", (k, d)), 300 << 20)
    cases["centers bomb 300 MiB"] = (with_members(honest_m, {"name": "centers.npy", "data": stream,
                                                             "size": size, "crc": crc}), "once inflated")
    stream, crc, size = zero_bomb(npy_header("<f8", (1 << 20, d)), 3 << 30, crc=False)
    cases["centers bomb 3 GiB declared small"] = (with_members(honest_m, {"name": "centers.npy", "data": stream,
                                                                          "size": 4096, "crc": crc}), None)
    cases["manifest declared small, inflates more"] = (
        with_members({**member(MANIFEST, manifest), "size": 100}, honest_c), None)
    cases["manifest declared larger than it is"] = (
        with_members({**member(MANIFEST, manifest), "size": len(manifest) + 50}, honest_c), None)

    # npy headers that lie or ask for too much
    body = centers_npy[len(centers_npy) - centers.nbytes:]
    for label, header in {
        "npy shape 10^6 x 10^6": npy_header("<f8", (10 ** 6, 10 ** 6)),
        "npy shape 2^62 x 2": npy_header("<f8", (2 ** 62, 2)),
        "npy shape negative": npy_header("<f8", (-1, d)),
        "npy shape 3-d": npy_header("<f8", (k, d, 1)),
        "npy shape 0 x d": npy_header("<f8", (0, d)),
        "npy shape more rows than names": npy_header("<f8", (k + 50, d)),
        "npy object dtype": npy_header("|O", (k, d)),
        "npy int64": npy_header("<i8", (k, d)),
        "npy big-endian": npy_header(">f8", (k, d)),
        "npy complex": npy_header("<c16", (k, d)),
        "npy float16": npy_header("<f2", (k, d)),
        "npy structured": npy_header([("a", "<f8")], (k, d)),
        "npy fortran order": npy_header("<f8", (k, d), fortran=True),
        "npy version 3": npy_header("<f8", (k, d), version=3),
        "npy shape (k, d) data short": npy_header("<f8", (k, d)),
    }.items():
        content = header + (body[:-8] if "short" in label else body)
        cases[label] = (with_centers(content), "centers")
    cases["npy huge header length"] = (with_centers(b"\x93NUMPY\x01\x00\xff\xff" + b" " * 70000), "centers")
    cases["npy garbage"] = (with_centers(b"\x93NUMPY\x01\x00" + os.urandom(200)), "centers")
    cases["npy empty"] = (with_centers(b""), "centers")
    cases["npy is a pickle"] = (with_centers(b"\x80\x04\x95" + b"cos\nsystem\n(S'true'\ntR." + body), "centers")
    buf = io.BytesIO()
    np.savez(buf, centers=centers)
    cases["npy is an npz"] = (with_centers(buf.getvalue()), "centers")
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}] * k, dtype=object), allow_pickle=True)
    cases["npy object array with pickle"] = (with_centers(buf.getvalue()), "not plain numeric data")

    # the zip itself
    cases["encrypted manifest"] = (with_members({**honest_m, "flags": 1}, honest_c), "encrypted")
    cases["encrypted centers"] = (with_members(honest_m, {**honest_c, "flags": 1}), "encrypted")
    cases["unknown member"] = (with_members(honest_m, honest_c, member("evil.py", b"import os")), "unknown member")
    cases["path member"] = (with_members(honest_m, honest_c, member("../centers.npy", b"x")), "unknown member")
    cases["duplicate manifest"] = (with_members(honest_m, honest_c, honest_m), "twice")
    cases["duplicate centers"] = (with_members(honest_m, honest_c, honest_c), "twice")
    cases["missing centers"] = (with_members(honest_m), "missing")
    cases["missing manifest"] = (with_members(honest_c), "no segmint-model.json")
    cases["bzip2 member"] = (with_members({**honest_m, "method": 12}, honest_c), "compression method")
    cases["stored member"] = (with_members({**honest_m, "method": 0, "data": manifest}, honest_c), "may load")
    cases["directory lists 65535 members"] = (with_members(honest_m, honest_c, entries=65535), "members")

    # the description: damaged text, bombs, wrong types
    cases["manifest nested 100k deep"] = (with_text("[" * 100_000 + "]" * 100_000), "too deep")
    cases["manifest nested 70 deep"] = (with_text(manifest[:-1] + b', "x": ' + b"[" * 70 + b"]" * 70 + b"}"),
                                        "levels")
    cases["manifest in utf-16"] = (with_text(manifest.decode().encode("utf-16")), "UTF-8")
    cases["manifest in latin-1"] = (with_text(manifest.replace(b'"crm"', b'"cr\xe9"')), "UTF-8")
    cases["manifest is a list"] = (with_text("[1, 2]"), "not a segmint")
    cases["manifest empty"] = (with_text(""), "JSON")
    cases["inertia 10**400"] = (with_text(re.sub(rb'"inertia": [^,}]+', b'"inertia": 1' + b"0" * 400,
                                                 manifest)), "401 digits")
    cases["inertia 1e400"] = (with_text(re.sub(rb'"inertia": [^,}]+', b'"inertia": 1e400', manifest)), "inertia")
    cases["n_rows_fit 5000 digits"] = (with_text(re.sub(rb'"n_rows_fit": \d+', b'"n_rows_fit": ' + b"9" * 5000,
                                                        manifest)), "5,000 digits")
    bad_values = {
        "centers is a list": lambda m: m["clusterer"].update(centers=[]),
        "inertia is a string": lambda m: m["clusterer"].update(inertia="low"),
        "inertia is a bool": lambda m: m["clusterer"].update(inertia=True),
        "n_features_in huge": lambda m: m["clusterer"].update(n_features_in=10 ** 30),
        "n_features_in a list": lambda m: m["clusterer"].update(n_features_in=[d]),
        "n_clusters a list": lambda m: m["clusterer"]["params"].update(n_clusters=[k]),
        "clusterer params a list": lambda m: m["clusterer"].update(params=[1]),
        "clusterer a string": lambda m: m.update(clusterer="KMeans"),
        "clusterer type a list": lambda m: m["clusterer"].update(type=["KMeans"]),
        "segment_names a dict": lambda m: m.update(segment_names={"a": 1}),
        "segment_names blank": lambda m: m.update(segment_names=[""] * len(doc["segment_names"])),
        "cluster_within a string": lambda m: m.update(cluster_within="everyone_else"),
        "fit_rows 1e400": lambda m: m["params"].update(fit_rows=float("inf")),
        "fit_rows a string": lambda m: m["params"].update(fit_rows="all"),
        "dtype a dict": lambda m: m["params"].update(dtype={"names": ["a"], "formats": ["f8"]}),
        "dtype object": lambda m: m["params"].update(dtype="object"),
        "id_column a list": lambda m: m["params"].update(id_column=["a"]),
        "random_state a string": lambda m: m["params"].update(random_state="x"),
        "version huge": lambda m: m.update(version=10 ** 30),
        "version a string": lambda m: m.update(version="1"),
        "params a list": lambda m: m.update(params=[]),
        "rules a list": lambda m: m.update(rules=[1, 2]),
        "rules mode a list": lambda m: m["rules"].update(mode=["x"]),
        "rule name blank": lambda m: m["rules"]["segments"][0].update(name=" "),
        "rule name a list": lambda m: m["rules"]["segments"][0].update(name=["vip"]),
        "rule name a bool": lambda m: m["rules"]["segments"][0].update(name=True),
        "rule owner a dict": lambda m: m["rules"]["segments"][0].update(owner={"a": 1}),
        "rule with 5000-digit number": lambda m: m["rules"]["segments"][0].update(rule="frequency > " + "9" * 5000),
        "rule with 400-digit number": lambda m: m["rules"]["segments"][0].update(rule="frequency > " + "9" * 400),
        "rule a number": lambda m: m["rules"]["segments"][0].update(rule=5),
        "features a string": lambda m: m.update(features="recency_days"),
        "features columns a dict": lambda m: m["features"].update(columns={}),
        "features fitted a list": lambda m: m["features"].update(fitted=[1]),
    }
    for label, change in bad_values.items():
        cases[label] = (with_doc(change), None)
    # the reference statistics (format version 2): each refused naming the field
    bad_reference = {
        "reference missing": (lambda m: m.pop("reference"), "'reference'"),
        "reference a string": (lambda m: m.update(reference="deciles"), "reference"),
        "reference of a newer version": (lambda m: m["reference"].update(version=99), "newer"),
        "reference edge NaN": (lambda m: m["reference"]["features"][0]["edges"].__setitem__(0, float("nan")),
                               r"features\[0\]\.edges\[0\]"),
        "reference edges unsorted": (lambda m: m["reference"]["features"][0]["edges"].reverse(),
                                     "strictly increasing"),
        "reference counts do not add up": (lambda m: m["reference"]["features"][1]["counts"].__setitem__(0, 10 ** 6),
                                           "add up"),
        "reference count beyond 2^53": (lambda m: m["reference"].update(n_rows=2 ** 60), r"2\^53"),
        "reference count negative": (lambda m: m["reference"]["segments"]["counts"].__setitem__(0, -1),
                                     r"segments\.counts\[0\]"),
        "reference feature not in the spec": (lambda m: m["reference"]["features"][0].update(name="income_k"),
                                              r"reference\.features"),
        "reference feature left out": (lambda m: m["reference"]["features"].pop(), r"reference\.features"),
        "reference category not in the spec": (
            lambda m: m["reference"]["categories"].append({"name": "region", "categories": ["north"],
                                                           "counts": [m["reference"]["n_rows"]], "null_count": 0}),
            r"reference\.categories"),
        "reference segments renamed": (lambda m: m["reference"]["segments"]["categories"].__setitem__(0, "vip2"),
                                       r"reference\.segments"),
        "reference segments null": (lambda m: m["reference"].update(segments=None), r"reference\.segments"),
        "reference segments a list": (lambda m: m["reference"].update(segments=[1]), "segments"),
        "reference 10,000 edges": (lambda m: m["reference"]["features"][0].update(
            edges=list(range(10_000)), counts=[0] * 10_000 + [m["reference"]["n_rows"]]), "at most"),
        "reference unknown field": (lambda m: m["reference"].update(extra=1), "unknown field"),
        # a repeated name found in one pass (a count per name took 11 s and over a minute)
        "reference 100,000 features, the last one repeated": (many_features, "'f99998' is described twice"),
        "reference 32,768 segment names, the last one repeated": (many_segment_names, "'s32766' twice"),
    }
    for label, (change, expect) in bad_reference.items():
        cases[label] = (with_doc(change), expect)
    return cases


def rule_cases():
    """{case id: (file name, bytes or a special, expected message regex or None)}."""
    good = {"segments": [{"name": "vip", "rule": "monetary > 100"}]}
    laughs = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
    cases = {
        "alias bomb in a name": ("laughs.yaml", laughs + "segments:\n  - {name: *i, rule: x > 1}\n", "expands"),
        "alias bomb in an owner": ("laughs2.yaml", laughs + "segments:\n  - {name: a, rule: x > 1, owner: *i}\n",
                                   "expands"),
        "small alias in a name": ("alias.yaml", "segments:\n  - {name: a, rule: x > 1, owner: &x [1, 2]}\n  - {name: *x, rule: x > 1}\n",
                                  "must be a string"),
        "recursive alias": ("recursive.yaml", "segments: &s\n  - {name: a, rule: x > 1}\n  - *s\n", "recursive"),
        "yaml nested 100k deep": ("deep.yaml", "segments: " + "[" * 100_000 + "]" * 100_000, "deep|depth"),
        "json nested 100k deep": ("deep.json", '{"segments": ' + "[" * 100_000 + "]" * 100_000 + "}", "deep"),
        "yaml 5000-digit integer": ("int.yaml", "mode: " + "1" * 5000 + "\nsegments: []\n", "5,000 digits"),
        "json 5000-digit integer": ("int.json", '{"segments": [], "mode": ' + "1" * 5000 + "}", "5,000 digits"),
        "rule with 5000-digit number": ("num.json", json.dumps({"segments": [
            {"name": "a", "rule": "monetary > " + "7" * 5000}]}), r"5,000 digits[\s\S]*\^"),
        "latin-1 file": ("latin1.yaml", "segments:\n  - {name: café, rule: x > 1}\n".encode("latin-1"), "UTF-8"),
        "utf-16 file": ("utf16.yaml", "segments:\n  - {name: café, rule: x > 1}\n".encode("utf-16"), "UTF-8"),
        "utf-16-le json": ("utf16.json", json.dumps(good).encode("utf-16-le"), "UTF-8"),
        "mode a list": ("mode.yaml", "mode: [x]\nsegments:\n  - {name: a, rule: x > 1}\n", "mode must be"),
        "default blank": ("default.yaml", "default: ''\nsegments:\n  - {name: a, rule: x > 1}\n", "blank"),
        "name yes": ("yes.yaml", "segments:\n  - {name: yes, rule: x > 1}\n", "boolean"),
        "name a map": ("map.yaml", "segments:\n  - {name: {a: 1}, rule: x > 1}\n", "must be a string"),
        "name a number": ("num.yaml", "segments:\n  12: x > 1\n", "must be a string"),
        "name blank": ("blank.yaml", "segments:\n  - {name: '  ', rule: x > 1}\n", "blank"),
        "name with a bell": ("bell.json", json.dumps({"segments": [{"name": "a\u0007", "rule": "x > 1"}]}),
                             "control character"),
        "description a list": ("desc.yaml", "segments:\n  - {name: a, rule: x > 1, description: [1]}\n",
                               "description must be a string"),
        "purpose a bool": ("purpose.yaml", "segments:\n  - {name: a, rule: x > 1, purpose: no}\n",
                           "purpose must be a string"),
        "rule a list": ("rule.yaml", "segments:\n  - {name: a, rule: [x]}\n", "rule must be a string"),
        "segments a number": ("segs.yaml", "segments: 5\n", "segments must be"),
        "unknown key a date": ("date.yaml", "2026-01-01: x\nsegments:\n  - {name: a, rule: x > 1}\n", "unknown"),
        "bad date": ("baddate.yaml", "segments:\n  - {name: a, rule: x > 1, owner: 2026-13-45}\n", "YAML"),
        "70 MB file": ("big.json", "sparse", "segmint reads documents of at most 16,777,216"),
        "a folder": ("folder.yaml", "folder", "folder"),
        "a fifo": ("fifo.yaml", "fifo", "regular file"),
        "link to /dev/zero": ("zero.yaml", "/dev/zero", "regular file"),
    }
    return cases


def write_rule_cases(folder):
    paths = {}
    for label, (name, content, _) in rule_cases().items():
        path = folder / name
        if content == "sparse":
            with open(path, "wb") as fh:
                fh.truncate(70 << 20)  # a sparse file: no disk used
        elif content == "folder":
            path.mkdir()
        elif content == "fifo":
            os.mkfifo(path)
        elif content == "/dev/zero":
            path.symlink_to("/dev/zero")
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        paths[label] = str(path)
    return paths


# ------------------------------------------------------------------ running cases in children
def run_batch(folder, cases):
    """Run ``cases`` (dicts with id, how, path or argv) in one bounded child; {id: result}."""
    batch = folder / f"batch-{len(list(folder.glob('batch-*')))}.json"
    batch.write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(batch), str(MEMORY_LIMIT)],
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=folder)
    results, started = {}, None
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        if "start" in record:
            started = record["start"]
        else:
            results[record["id"]] = record
            started = None
    assert started is None and proc.returncode == 0, (
        f"the child died (status {proc.returncode}) during case {started!r}:\n{proc.stderr[-3000:]}")
    assert sorted(results) == sorted(c["id"] for c in cases)
    return results


def check(result, expect, original=None):
    """A result is a segmint error matching ``expect``, or (``expect == 'may load'``) the same model."""
    outcome, message = result["outcome"], result["message"]
    assert result["seconds"] < CASE_SECONDS, f"{result['id']}: took {result['seconds']:.1f} s"
    if outcome.startswith("ok"):
        assert expect == "may load", f"{result['id']}: loaded, but must be refused"
        assert outcome == original, f"{result['id']}: loaded a different model (an undetected change)"
        return
    assert outcome == "segmint", f"{result['id']}: not a segmint error:\n{message}"
    if expect not in (None, "may load"):
        assert re.search(expect, message), f"{result['id']}: {message!r} does not match {expect!r}"


@pytest.fixture(scope="module")
def model_corpus(corpus_dir, model_file):
    """Every model case written to disk, and its expectation."""
    _, data = model_file
    folder = corpus_dir / "models"
    folder.mkdir()
    expected, paths = {}, {}
    for i, (label, (content, expect)) in enumerate(model_cases(data).items()):
        path = folder / f"case{i:03d}.seg"
        path.write_bytes(content)
        expected[label], paths[label] = expect, str(path)
    for label, make in {"empty file": lambda p: p.write_bytes(b""), "a folder": lambda p: p.mkdir(),
                        "a fifo": os.mkfifo, "link to /dev/zero": lambda p: p.symlink_to("/dev/zero")}.items():
        path = folder / f"{label.replace(' ', '_').replace('/', '_')}.seg"
        make(path)
        expected[label], paths[label] = {"empty file": "empty", "a folder": "folder"}.get(label, "regular file"), str(path)
    return paths, expected


def test_every_damaged_or_hostile_model_file_ends_in_a_segmint_error(corpus_dir, model_file, model_corpus):
    paths, expected = model_corpus
    cases = [{"id": "original", "how": "load", "path": str(model_file[0])}]
    cases += [{"id": label, "how": "load", "path": path} for label, path in paths.items()]
    results = run_batch(corpus_dir, cases)
    original = results.pop("original")["outcome"]
    assert original.startswith("ok:")
    for label, result in results.items():
        check(result, expected[label], original)
    # the bounds held: no case grew the child anywhere near a bomb's size
    assert max(r["maxrss_mb"] for r in results.values()) < 700
    # and the corpus is what it claims: bombs, lying headers, every kind of damage
    assert len(results) > 150
    refused = [label for label, r in results.items() if r["outcome"] == "segmint"]
    assert all(label in refused for label in expected if expected[label] not in (None, "may load")
               or label.startswith("truncated"))


def test_every_hostile_rule_file_ends_in_a_segmint_error(corpus_dir):
    folder = corpus_dir / "rules"
    folder.mkdir()
    paths = write_rule_cases(folder)
    specs = rule_cases()
    results = run_batch(corpus_dir, [{"id": label, "how": "rules", "path": path} for label, path in paths.items()])
    for label, result in results.items():
        check(result, specs[label][2])


def test_the_command_line_prints_one_line_for_hostile_files(corpus_dir, model_file, model_corpus):
    """``segmint info``, ``segmint score`` and ``segmint rules`` on a sample of the corpus:
    exit status 1 and one line ``segmint: error: ...``, never a traceback."""
    paths, _ = model_corpus
    data = str(corpus_dir / "customers.arrow")
    rule_folder = corpus_dir / "cli-rules"
    rule_folder.mkdir()
    rules = write_rule_cases(rule_folder)
    picked = ["manifest bomb 80 MiB", "centers bomb 300 MiB", "npy shape 10^6 x 10^6", "encrypted centers",
              "inertia 10**400", "centers is a list", "manifest nested 100k deep", "unknown member",
              "duplicate centers", "rule name blank", "truncated at 22", "empty file", "link to /dev/zero"]
    cases = []
    for label in picked:
        if label != "link to /dev/zero":  # `info` on a device is item 4 of the issue: test_cli's
            cases.append({"id": f"info {label}", "how": "cli", "argv": ["info", paths[label]]})
        out = str(corpus_dir / f"out-{len(cases)}.arrow")
        cases.append({"id": f"score {label}", "how": "cli", "argv": ["score", paths[label], data, "-o", out]})
    for label in ["alias bomb in a name", "yaml nested 100k deep", "json 5000-digit integer", "latin-1 file",
                  "utf-16 file", "mode a list", "name yes", "rule with 5000-digit number", "link to /dev/zero",
                  "a fifo"]:
        cases.append({"id": f"rules {label}", "how": "cli", "argv": ["rules", rules[label], data]})
    results = run_batch(corpus_dir, cases)
    for label, result in results.items():
        assert result["outcome"] == "exit1", f"{label}: {result['outcome']}\n{result['message']}"
        lines = result["message"].strip().splitlines()
        assert lines[0].startswith("segmint: error: "), f"{label}: {result['message']}"
        # one line (a rule error adds the rule and a caret under it)
        assert len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^"), f"{label}: {result['message']}"
        assert "Traceback" not in result["message"]
        assert result["seconds"] < CASE_SECONDS


def test_the_installed_command_refuses_a_zip_bomb_in_one_line(corpus_dir, model_corpus):
    """End to end through the installed entry point, in its own bounded process."""
    paths, _ = model_corpus
    exe = os.path.join(os.path.dirname(sys.executable), "segmint")
    if not os.path.exists(exe):
        pytest.skip("the segmint command is not installed beside this Python")

    def bound():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    for argv in (["info", paths["manifest bomb 80 MiB"]],
                 ["score", paths["centers bomb 300 MiB"], str(corpus_dir / "customers.arrow"), "-o",
                  str(corpus_dir / "scores.arrow")]):
        proc = subprocess.run([exe, *argv], capture_output=True, text=True, timeout=60, preexec_fn=bound)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert re.fullmatch(r"segmint: error: .*declares [\d,]+ bytes once inflated; the limit is [\d,]+\n",
                            proc.stderr), proc.stderr
    assert not (corpus_dir / "scores.arrow").exists()


# ------------------------------------------------------------------ properties of the readers
def test_a_saved_model_loads_again_after_the_checks(model_file):
    """The bounds refuse nothing segmint writes: a real model round-trips."""
    path, data = model_file
    model = segmint.load(path)
    assert model.segment_names_[-2:] == ["vip", "lapsed"]
    parts = members_of(data)
    assert sorted(parts) == ["centers.npy", MANIFEST]
    np.testing.assert_array_equal(model.clusterer_.cluster_centers_, np.load(io.BytesIO(parts["centers.npy"][0])))


def test_a_utf8_bom_and_shared_yaml_anchors_are_accepted(tmp_path):
    """What real files hold still loads: a BOM (Windows editors), and anchors shared by
    segments (``<<: *defaults``), whose expansion is small."""
    text = ("description: shared\ndefaults: &d {owner: crm, purpose: retention}\n" 
            "segments:\n  - {<<: *d, name: vip, rule: monetary > 100}\n"
            "  - {<<: *d, name: lapsed, rule: frequency < 2}\n")
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    with pytest.raises(segmint.SegmintError, match="unknown keys in the rule set: .defaults."):
        RuleSet.load(path)  # the anchor parsed; the rule set refuses its own unknown key
    text = text.replace("defaults: &d {owner: crm, purpose: retention}\n", "").replace(
        "{<<: *d, name: vip", "{owner: &o crm, name: vip").replace("{<<: *d, name: lapsed", "{owner: *o, name: lapsed")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    rules = RuleSet.load(path)
    assert rules.names == ["vip", "lapsed"] and [s.owner for s in rules.segments] == ["crm", "crm"]
    json_path = tmp_path / "rules.json"
    json_path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"segments": [{"name": "a", "rule": "x > 1"}]}).encode())
    assert RuleSet.load(json_path).names == ["a"]


@pytest.mark.parametrize("depth,ok", [(60, True), (70, False)])
def test_nesting_is_bounded_the_same_in_json_and_yaml(depth, ok):
    from segmint._documents import parse_document
    from segmint.errors import DataError
    nested = "[" * depth + "]" * depth
    for fmt in ("json", "yaml"):
        if ok:
            assert parse_document(nested, fmt, "the doc", DataError) is not None
        else:
            with pytest.raises(DataError, match="64 levels"):
                parse_document(nested, fmt, "the doc", DataError)


def test_alias_expansion_is_counted_not_only_aliases():
    """Few aliases can still expand exponentially: the bound is on the expanded size."""
    from segmint._documents import MAX_NODES, parse_document
    from segmint.errors import DataError
    levels = ["l0: &l0 [x, x]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 40)]
    with pytest.raises(DataError, match=f"more than {MAX_NODES:,} values"):
        parse_document("\n".join(levels), "yaml", "the doc", DataError)  # 78 aliases, 2^40 values
    small = "\n".join(levels[:10])  # 2^10 values: fine
    assert len(parse_document(small, "yaml", "the doc", DataError)["l9"]) == 2


def test_what_is_saved_loads_again_or_is_refused_before_writing(model_file, tmp_path, monkeypatch):
    """save() applies load()'s bounds: a model beyond them is refused and nothing is written;
    a large, highly regular member is stored rather than deflated past the bomb ratio."""
    from segmint.pipeline import model_file as mf
    model = segmint.load(model_file[0])
    monkeypatch.setattr(mf, "MAX_MANIFEST_BYTES", 1000)
    with pytest.raises(segmint.errors.OutputError, match="segmint-model.json would be [\\d,]+ bytes, beyond the 1,000"):
        model.save(tmp_path / "big.seg")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    assert mf._compression(bytes(4 << 20)) == zipfile.ZIP_STORED  # 1000:1 would look like a bomb
    assert mf._compression(np.random.default_rng(0).bytes(4 << 20)) == zipfile.ZIP_DEFLATED
    assert mf._compression(b"{}" * 1000) == zipfile.ZIP_DEFLATED  # small: always deflated
