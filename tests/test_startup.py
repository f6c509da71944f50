"""Start-up: what a fresh process imports, the quick BLAS probe, lazy modules, the cache check.

Timings are never asserted here (``scripts/startup_time.py`` measures them); these tests pin
what makes start-up fast: which libraries ``import segmint`` and the scoring path load, and
that ``segmint warmup --check`` tells a warm cache from a cold one without compiling.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import segmint
from segmint import _lazy
from segmint import _warmup

# Never loaded by ``import segmint``: optional libraries, and heavy parts of required ones that
# the start-up path (import, load, first score) does not call
NOT_AT_IMPORT = ("pandas", "polars", "matplotlib", "tqdm", "sklearn", "duckdb",
                 "pyarrow.compute", "pyarrow.parquet", "pyarrow.dataset", "pyarrow.csv", "pyarrow.fs",
                 "scipy.linalg", "scipy.stats", "scipy.optimize", "scipy.sparse", "segmint.report",
                 "segmint.explain", "segmint.monitor", "segmint.events", "segmint.serve")
# Still not loaded once a saved model has scored its first customer
NOT_ON_SCORING_PATH = ("pandas", "polars", "matplotlib", "tqdm", "sklearn", "pyarrow.compute",
                       "pyarrow.parquet", "pyarrow.dataset", "pyarrow.csv", "scipy.linalg", "scipy.stats")


def _run(code, env=None, check=True):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=300, env=None if env is None else dict(os.environ, **env))
    if check:
        assert out.returncode == 0, out.stderr
    return out


def _loaded(code, names, env=None):
    shown = repr(tuple(names))
    out = _run(textwrap.dedent(code) + f"\nimport sys\nprint([m for m in {shown} if m in sys.modules])\n", env=env)
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


# -- what a fresh process imports -----------------------------------------------------------------
def test_importing_segmint_loads_no_optional_library_and_no_heavy_part_of_a_required_one():
    assert _loaded("import segmint", NOT_AT_IMPORT) == []


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A small Segmenter with numeric transforms, a one-hot column and rules, saved."""
    table = segmint.make_customers(400, random_state=0)
    spec = [{"column": "recency_days", "impute": "median", "indicator": True},
            {"column": "monetary", "log1p": True}, {"column": "income_k", "impute": "median"},
            {"column": "region", "one_hot": True}]
    model = segmint.Segmenter(spec, clusterer=segmint.MiniBatchKMeans(n_clusters=3, random_state=0),
                              rules={"never_bought": "frequency = 0"}, id_column="customer_id")
    model.fit(table, as_of="2026-10-01")
    path = tmp_path_factory.mktemp("startup") / "model.seg"
    model.save(path)
    record = {k: v for k, v in table.slice(0, 1).to_pylist()[0].items()}
    return path, record, model.predict(table.slice(0, 1), as_of="2026-10-01")[0]


def _score_first_customer(path, record):
    """A fresh process's code: import, load, score one customer with the model's Scorer."""
    plain = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in record.items()}
    return f"""
        import datetime as dt, json, segmint
        record = json.loads({json.dumps(json.dumps(plain))})
        for name in ("signup_date", "first_order_date", "last_order_date"):
            record[name] = dt.date.fromisoformat(record[name])
        model = segmint.load({str(path)!r})
        print("segment", model.scorer().score_one(record, as_of="2026-10-01")[0])
    """


def test_loading_a_model_and_scoring_one_customer_loads_neither_pandas_nor_pyarrow_compute(saved_model):
    path, record, _ = saved_model
    assert _loaded(_score_first_customer(path, record), NOT_ON_SCORING_PATH) == []


def test_the_quick_blas_probe_scores_the_same_customer_the_same_way(saved_model):
    path, record, expected = saved_model
    code = _score_first_customer(path, record)
    quick = _run(code).stdout
    full = _run(code, env={"SEGMINT_QUICK_BLAS_PROBE": "0"}).stdout
    assert quick == full
    assert quick.split()[-1] == str(expected)


# -- the quick BLAS probe -------------------------------------------------------------------------
PROBE_CHILD = """
    import sys
    import numpy as np
    from segmint.kernels.reduce import weighted_sum
    acc = np.zeros(1)
    weighted_sum(np.ones(3), np.ones(0), 0, 3, acc)   # the first kernel call: Numba loads its registries
    import numba.np.arraymath as arraymath, numba.np.linalg as linalg
    print(acc[0], arraymath._HAVE_BLAS, "scipy.linalg" in sys.modules,
          linalg.ensure_blas.__module__, linalg.ensure_blas.__qualname__,
          arraymath.ensure_blas is linalg.ensure_blas,
          any(type(h).__name__ == "_QuickBlasProbe" for h in sys.meta_path))
"""


def test_the_first_kernel_call_answers_numbas_blas_question_without_importing_scipy_linalg():
    total, have_blas, imported, module, name, same, hook_left = _run(PROBE_CHILD).stdout.split()
    assert total == "3.0"
    assert have_blas == "True"  # numba's own answer where scipy is installed
    assert imported == "False"
    # numba's own check is back for anything compiled later (a kernel calling BLAS)
    assert (module, name, same, hook_left) == ("numba.np.linalg", "ensure_blas", "True", "False")


def test_the_quick_blas_probe_says_no_blas_when_scipy_has_no_cython_blas_so_numba_falls_back(tmp_path):
    # a scipy that imports but lacks linalg/cython_blas*: numba's own check would fail to import
    # it, so the probe must answer "no BLAS" too, or np.correlate would compile to BLAS calls
    fake = tmp_path / "scipy"
    (fake / "linalg").mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "1.11.0"\n')
    (fake / "linalg" / "__init__.py").write_text("")
    out = _run("""
        import sys
        import numba
        import numpy as np
        from segmint.kernels.reduce import weighted_sum
        weighted_sum(np.ones(3), np.ones(0), 0, 3, np.zeros(1))
        import numba.np.arraymath as arraymath
        correlate = numba.njit(lambda a, b: np.correlate(a, b))
        print(arraymath._HAVE_BLAS, sys.modules["scipy"].__file__.startswith(%r), correlate(np.ones(3), np.ones(2)).tolist())
    """ % str(tmp_path), env={"PYTHONPATH": str(tmp_path)}).stdout.strip().split(maxsplit=2)
    assert out == ["False", "True", "[2.0, 2.0]"]


def test_the_quick_blas_probe_says_no_blas_when_cython_blas_is_blocked():
    from segmint.kernels import settings

    assert settings._cython_blas_installed()  # this environment's scipy has it
    saved = sys.modules.get("scipy.linalg.cython_blas", "absent")
    sys.modules["scipy.linalg.cython_blas"] = None
    try:
        assert not settings._cython_blas_installed()
    finally:
        if saved == "absent":
            del sys.modules["scipy.linalg.cython_blas"]
        else:
            sys.modules["scipy.linalg.cython_blas"] = saved


def test_the_quick_blas_probe_can_be_switched_off():
    out = _run(PROBE_CHILD, env={"SEGMINT_QUICK_BLAS_PROBE": "off"}).stdout.split()
    assert out[1:3] == ["True", "True"]  # numba's check ran, importing scipy.linalg


# -- lazy modules ---------------------------------------------------------------------------------
def test_a_lazy_module_imports_on_first_attribute_read_and_forwards_writes(monkeypatch):
    fresh = _lazy.LazyModule("json.decoder")
    assert "not loaded yet" in repr(fresh)
    assert fresh.JSONDecodeError is json.JSONDecodeError
    assert "loaded" in repr(fresh) and "not loaded" not in repr(fresh)
    monkeypatch.setattr(fresh, "scanstring", "patched")
    assert sys.modules["json.decoder"].scanstring == "patched" and fresh.scanstring == "patched"
    assert "JSONDecoder" in dir(fresh)


def test_a_lazy_module_forwards_deletes_so_monkeypatch_can_undo_a_new_attribute():
    lazy = _lazy.LazyModule("json.decoder")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lazy, "segmint_added", 1, raising=False)
        assert sys.modules["json.decoder"].segmint_added == 1
    assert not hasattr(sys.modules["json.decoder"], "segmint_added")
    with pytest.raises(AttributeError):
        del lazy.segmint_added


def test_copying_or_pickling_a_lazy_module_gives_a_proxy_of_the_same_module_without_importing_it():
    import copy
    import pickle

    lazy = _lazy.LazyModule("segmint_no_such_module_yet")  # would fail if anything imported it
    for twin in (copy.copy(lazy), copy.deepcopy(lazy), pickle.loads(pickle.dumps(lazy))):
        assert isinstance(twin, _lazy.LazyModule) and twin is not lazy
        assert repr(twin) == "<lazy module 'segmint_no_such_module_yet' (not loaded yet)>"
    bare = object.__new__(_lazy.LazyModule)  # as copy and pickle build one: no recursion
    assert not hasattr(bare, "_name") and not hasattr(bare, "_module")


def test_lazy_import_returns_a_module_already_imported_as_it_is():
    assert _lazy.lazy_import("json") is json
    assert isinstance(_lazy.lazy_import("segmint_no_such_module_yet"), _lazy.LazyModule)


def test_a_lazy_module_that_does_not_exist_fails_at_first_use_naming_it():
    missing = _lazy.LazyModule("segmint_no_such_module_yet")
    with pytest.raises(ModuleNotFoundError, match="segmint_no_such_module_yet"):
        missing.anything


def test_every_kernel_module_is_an_attribute_of_segmint_kernels_after_import_segmint():
    out = _run("""
        import pkgutil, sys
        import segmint
        names = sorted(i.name for i in pkgutil.iter_modules(segmint.kernels.__path__))
        before = [n for n in names if f"segmint.kernels.{n}" not in sys.modules]
        assert before, "nothing left to import lazily: the test would prove nothing"
        for n in names:
            assert getattr(segmint.kernels, n) is sys.modules[f"segmint.kernels.{n}"], n
        assert set(names) <= set(dir(segmint.kernels))
        assert not hasattr(segmint.kernels, "no_such_kernel_module")
        print(segmint.kernels.distance.__name__, len(before))
    """).stdout.split()
    assert out[0] == "segmint.kernels.distance" and int(out[1]) > 0


def test_code_behind_lazy_pyarrow_compute_still_works_in_a_fresh_process():
    out = _run("""
        import segmint, sys
        assert "pyarrow.compute" not in sys.modules
        table = segmint.make_customers(50, random_state=1)
        profile = segmint.profile(table, segments="region")
        print(profile.n_rows, "pyarrow.compute" in sys.modules)
    """).stdout.split()
    assert out == ["50", "True"]


# -- the cache check ------------------------------------------------------------------------------
def test_cache_status_of_an_empty_cache_folder_is_cold_and_says_to_warm_up(tmp_path):
    out = _run("""
        import segmint
        s = segmint.cache_status()
        print(s.warm, s.expected, s.path.startswith(%r))
        print(s.reason)
    """ % str(tmp_path), env={"NUMBA_CACHE_DIR": str(tmp_path)}).stdout.splitlines()
    assert out[0] == "False 0 True"
    assert "segmint warmup" in out[1]


WARM_ONE = """
    import numpy as np
    from segmint import _warmup
    from segmint.kernels.reduce import weighted_sum
    weighted_sum(np.ones(3), np.ones(0), 0, 3, np.zeros(1))
    print(_warmup._write_manifest())
"""
STATUS = """
    import segmint
    s = segmint.cache_status()
    print(s.warm, s.expected, len(s.missing))
    print("|".join(s.missing))
"""


def test_cache_status_is_warm_after_a_warm_up_and_cold_once_a_compiled_kernel_is_removed(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    manifest = _run(WARM_ONE, env=env).stdout.strip()
    recorded = json.loads(open(manifest, encoding="utf-8").read())
    assert recorded["format"] == "segmint-warmup"
    assert list(recorded["kernels"]) == ["reduce.weighted_sum"]
    assert _run(STATUS, env=env).stdout.splitlines()[0] == "True 1 0"

    check = subprocess.run([sys.executable, "-m", "segmint.cli", "warmup", "--check"], capture_output=True,
                           text=True, timeout=300, env=dict(os.environ, **env))
    assert check.returncode == 0, check.stderr
    assert "warm" in check.stdout and str(tmp_path) in check.stdout and "NUMBA_CACHE_DIR" in check.stdout

    data = [f for f in os.listdir(os.path.dirname(manifest)) if f.startswith("reduce.weighted_sum") and f.endswith(".nbc")]
    assert data
    for name in data:
        os.unlink(os.path.join(os.path.dirname(manifest), name))
    first, missing = _run(STATUS, env=env).stdout.splitlines()
    assert first == "False 1 1"
    assert missing.startswith("reduce.weighted_sum(") and "float64" in missing

    check = subprocess.run([sys.executable, "-m", "segmint.cli", "warmup", "--check"], capture_output=True,
                           text=True, timeout=300, env=dict(os.environ, **env))
    assert check.returncode == 1
    assert "cold" in check.stdout and "reduce.weighted_sum" in check.stdout


IS_CACHED = """
    import numba
    import numpy as np
    from segmint import _warmup
    from segmint.kernels.reduce import weighted_sum
    args = (np.ones(3), np.ones(0), 0, 3, np.zeros(1))
    warmed = tuple(numba.typeof(a) for a in args)
    never = (numba.typeof(np.ones(3, np.int8)), numba.typeof(np.ones(0, np.int8)), numba.int64, numba.int64,
             numba.typeof(np.zeros(1)))
    print(len(weighted_sum.overloads), _warmup.is_cached(weighted_sum, warmed), _warmup.is_cached(weighted_sum, never))
"""


def test_is_cached_in_a_fresh_process_reads_the_cache_a_warm_up_left_without_compiling(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    assert _run(IS_CACHED, env=env).stdout.split() == ["0", "False", "False"]  # empty cache
    _run(WARM_ONE, env=env)
    # 0 overloads: the answer came from the cache index, not from this process's compilations
    assert _run(IS_CACHED, env=env).stdout.split() == ["0", "True", "False"]


def _damage_index(manifest):
    folder = os.path.dirname(manifest)
    (index,) = [f for f in os.listdir(folder) if f.startswith("reduce.weighted_sum") and f.endswith(".nbi")]
    with open(os.path.join(folder, index), "r+b") as f:
        f.truncate(20)
    return os.path.join(folder, index)


def test_a_damaged_cache_index_makes_the_check_say_cold_naming_the_file_not_crash(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    index = _damage_index(_run(WARM_ONE, env=env).stdout.strip())
    first, missing = _run(STATUS, env=env).stdout.splitlines()
    assert first == "False 1 1"
    assert missing.startswith("reduce.weighted_sum (unreadable cache index") and index in missing
    check = subprocess.run([sys.executable, "-m", "segmint.cli", "warmup", "--check"], capture_output=True,
                           text=True, timeout=300, env=dict(os.environ, **env))
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert f"unreadable cache index {index}" in check.stdout and "delete it and run 'segmint warmup'" in check.stdout
    assert _run(IS_CACHED, env=env).stdout.split() == ["0", "False", "False"]


def _edit_manifest(manifest, edit):
    with open(manifest, encoding="utf-8") as f:
        recorded = json.load(f)
    edit(recorded)
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(recorded, f)


def test_a_warm_up_by_another_segmint_version_counts_as_cold(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    manifest = _run(WARM_ONE, env=env).stdout.strip()
    recorded = json.load(open(manifest, encoding="utf-8"))
    assert recorded["segmint"] == segmint.__version__ and "reduce.weighted_sum" in recorded["cached_kernels"]
    _edit_manifest(manifest, lambda m: m.update(segmint="0.0.1"))
    out = _run(STATUS.replace('"|".join(s.missing)', "s.reason"), env=env).stdout.splitlines()
    assert out[0] == "False 1 0"
    assert "segmint 0.0.1" in out[1] and segmint.__version__ in out[1] and "segmint warmup" in out[1]


def test_a_kernel_the_warm_up_did_not_know_counts_as_cold_even_with_every_recorded_signature_cached(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    manifest = _run(WARM_ONE, env=env).stdout.strip()
    dropped = []

    def forget_one_kernel(recorded):  # as a record of a segmint before that kernel was added
        dropped.append(next(n for n in recorded["cached_kernels"] if n != "reduce.weighted_sum"))
        recorded["cached_kernels"].remove(dropped[0])

    _edit_manifest(manifest, forget_one_kernel)
    first, missing = _run(STATUS, env=env).stdout.splitlines()
    assert first == "False 1 1"
    assert missing == f"{dropped[0]} (not warmed up)"


def test_cache_status_with_caching_switched_off_says_so():
    out = _run(STATUS.replace('"|".join(s.missing)', "s.reason"), env={"SEGMINT_NUMBA_CACHE": "0"}).stdout
    assert out.splitlines()[0] == "False 0 0"
    assert "caching is off" in out


# -- a cold warm-up in two processes --------------------------------------------------------------
PARTS_MODULE = """
import os
import numpy as np


def sums():
    from segmint.kernels.reduce import weighted_sum
    weighted_sum(np.ones(3), np.ones(0), 0, 3, np.zeros(1))


def gather():
    from segmint.kernels.gather import gather_rows
    gather_rows(np.ones((4, 2)), False, np.arange(2), 0, 2, np.empty((2, 2)))


def fails():
    raise RuntimeError("a part that fails")


def pid():
    with open(os.environ["PARTS_PID_FILE"], "a") as f:
        f.write(f"{os.getpid()}\\n")
"""
IN_TWO = """
    import os
    import numba
    import numpy as np
    from segmint import _warmup
    from segmint.kernels.reduce import weighted_sum
    from segmint.kernels.gather import gather_rows
    ok = _warmup._wait_children(_warmup._start_children(%s))
    sums = tuple(numba.typeof(a) for a in (np.ones(3), np.ones(0), 0, 3, np.zeros(1)))
    gather = tuple(numba.typeof(a) for a in (np.ones((4, 2)), False, np.arange(2), 0, 2, np.empty((2, 2))))
    # nothing compiled here: what is cached came from the children
    print(ok, len(weighted_sum.overloads), len(gather_rows.overloads),
          _warmup.is_cached(weighted_sum, sums), _warmup.is_cached(gather_rows, gather))
"""


def _parts_env(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "warm_parts.py").write_text(PARTS_MODULE)
    path = os.pathsep.join([str(tmp_path / "mods"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": path,
            "PARTS_PID_FILE": str(tmp_path / "pids")}


def test_two_processes_fill_the_cache_at_once_and_this_process_loads_what_they_compiled(tmp_path):
    env = _parts_env(tmp_path)
    shares = (("warm_parts:sums", "warm_parts:pid"), ("warm_parts:gather", "warm_parts:pid"))
    out = _run(IN_TWO % (shares,), env=env).stdout.split()
    assert out == ["2", "0", "0", "True", "True"]
    pids = (tmp_path / "pids").read_text().split()
    assert len(set(pids)) == 2  # two processes, not one after the other in this one


def test_a_share_that_fails_costs_only_its_head_start(tmp_path):
    env = _parts_env(tmp_path)
    shares = (("warm_parts:fails", "warm_parts:sums"), ("warm_parts:gather",))
    # the failing child stopped before compiling its kernel: the caller's own pass will
    assert _run(IN_TWO % (shares,), env=env).stdout.split() == ["1", "0", "0", "False", "True"]


def test_warmup_runs_its_parts_in_this_process_and_spawns_only_on_a_cold_cache(monkeypatch):
    ran, spawned = [], []
    parts = ("json:dumps", "json:loads", "json:load")  # any callables: the order is what counts
    monkeypatch.setattr(_warmup, "PARTS", parts)
    monkeypatch.setattr(_warmup, "_run_parts", lambda parts: ran.append(tuple(parts)))
    monkeypatch.setattr(_warmup, "_start_children", lambda shares: spawned.append(tuple(shares)) or [])
    monkeypatch.setattr(_warmup, "_write_manifest", lambda: None)
    monkeypatch.setattr(_warmup, "SHARES", (("json:dumps",), ("json:loads", "json:load")))
    cold = segmint.cache_status()._replace(warm=False)
    monkeypatch.setattr(_warmup, "cache_status", lambda: cold)
    segmint.warmup(n_jobs=1)
    assert spawned == [] and ran == [parts]
    ran.clear()
    segmint.warmup(n_jobs=2)
    # this process compiles the first share while a child compiles the second, then runs (loads)
    # the child's parts but its last while the child finishes, then the parts it has not run yet
    assert spawned == [(("json:loads", "json:load"),)]
    assert ran == [("json:dumps",), ("json:loads",), ("json:load",)]
    monkeypatch.setattr(_warmup, "cache_status", lambda: cold._replace(warm=True))
    segmint.warmup(n_jobs=2)
    assert len(spawned) == 1 and ran[-1] == parts  # warm: loading is quicker than processes
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(segmint.errors.ParameterError, match="n_jobs"):
            segmint.warmup(n_jobs=bad)


def test_a_failing_share_in_this_process_stops_the_children_and_raises(monkeypatch):
    children = []

    def start(shares):
        children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
        return children

    def run(parts):
        raise RuntimeError("a part that fails here")

    monkeypatch.setattr(_warmup, "_start_children", start)
    monkeypatch.setattr(_warmup, "_run_parts", run)
    monkeypatch.setattr(_warmup, "cache_status", lambda: segmint.cache_status()._replace(warm=False))
    with pytest.raises(RuntimeError, match="fails here"):
        segmint.warmup(n_jobs=2)
    assert children and children[0].poll() is not None  # not left compiling on its own


def test_the_two_shares_hold_every_part_once():
    assert sorted(p for share in _warmup.SHARES for p in share) == sorted(_warmup.PARTS)


# -- the warmup command -----------------------------------------------------------------------------
def test_warmup_with_caching_off_stops_before_compiling_and_says_why():
    out = subprocess.run([sys.executable, "-m", "segmint.cli", "warmup"], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, SEGMINT_NUMBA_CACHE="0"))
    assert out.returncode == 1
    assert "caching is off" in out.stderr and "kernels ready" not in out.stdout


def test_warmup_jobs_on_the_command_line_reach_the_warm_up_and_a_bad_count_is_refused(monkeypatch, capsys):
    from segmint import cli

    asked = []
    from segmint.cli import warmup as command
    monkeypatch.setattr(_warmup, "warmup", lambda n_jobs=None: asked.append(n_jobs) or 0.0)
    monkeypatch.setattr(command, "_bytecode", lambda force: "bytecode: not written by this test")
    cli.main(["--quiet", "warmup", "--jobs", "1"])
    assert asked == [1]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["warmup", "--jobs", "0"])
    assert exit_.value.code == 2 and "--jobs" in capsys.readouterr().err


def test_warmup_names_the_cache_by_where_it_is_not_by_what_was_asked(monkeypatch, tmp_path):
    from segmint import kernels
    from segmint.cli import warmup

    package = os.path.join(kernels.__path__[0], "__pycache__")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert warmup._where(package).endswith("(next to the package)")
    assert "user cache" in warmup._where(str(tmp_path / "numba"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "asked"))
    assert warmup._where(str(tmp_path / "asked" / "kernels_x")).endswith("(NUMBA_CACHE_DIR)")
    assert "user cache" in warmup._where(str(tmp_path / "fallback"))  # NUMBA_CACHE_DIR was not writable


def test_warmup_warns_when_only_the_owner_can_write_to_the_cache_folder(tmp_path):
    from segmint.cli import warmup

    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(0o755)
    warning = warmup._owner_only_warning(str(folder))
    assert warning and "\n" not in warning and str(folder) in warning and "compiles every kernel" in warning
    folder.chmod(0o775)
    assert warmup._owner_only_warning(str(folder)) is None
    assert warmup._owner_only_warning(str(tmp_path / "absent")) is None


def _pyc_flags(pyc):
    with open(pyc, "rb") as f:
        return int.from_bytes(f.read(8)[4:8], "little")


def test_warmup_bytecode_is_timestamped_beside_the_path_python_imports_and_honours_dont_write(
        monkeypatch, tmp_path):
    import importlib.util

    from segmint.cli import warmup

    real, package = tmp_path / "real", tmp_path / "package"
    real.mkdir()
    package.mkdir()
    (real / "mod.py").write_text("X = 1\n")
    (package / "plain.py").write_text("Y = 2\n")
    os.symlink(real / "mod.py", package / "link.py")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # py_compile's default would be checked-hash
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert "not written" in warmup._bytecode(roots=[str(package), str(real)])
    assert not (package / "__pycache__").exists()
    assert warmup._bytecode(force=True, roots=[str(package), str(real)]) == "bytecode: 2 modules"
    for source in (package / "plain.py", package / "link.py"):
        pyc = importlib.util.cache_from_source(str(source))
        assert os.path.exists(pyc) and _pyc_flags(pyc) == 0  # 0: timestamp-based
    assert not (real / "__pycache__").exists()  # the link's target was compiled once, as the link


def test_the_start_up_script_reports_each_phase_and_what_the_process_loaded():
    script = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "startup_time.py")
    out = subprocess.run([sys.executable, script, "--runs", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for phase in ("import", "load", "first score", "total"):
        assert f"  {phase}" in out.stdout and "median" in out.stdout
    assert "pandas" not in out.stdout.split("heavy libraries imported:")[1]
