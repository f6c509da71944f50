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
                 "scipy.linalg", "scipy.stats", "scipy.optimize", "scipy.sparse", "segmint.report")
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
    """A fresh process's code: import, load, score one customer (the Scorer when there is one)."""
    plain = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in record.items()}
    return f"""
        import datetime as dt, json, segmint
        record = json.loads({json.dumps(json.dumps(plain))})
        for name in ("signup_date", "first_order_date", "last_order_date"):
            record[name] = dt.date.fromisoformat(record[name])
        model = segmint.load({str(path)!r})
        if hasattr(model, "scorer"):
            segment = model.scorer().score_one(record, as_of="2026-10-01")[0]
        else:
            segment = None
        print("segment", segment)
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
    assert quick.split()[-1] in ("None", str(expected))


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


def test_lazy_import_returns_a_module_already_imported_as_it_is():
    assert _lazy.lazy_import("json") is json
    assert isinstance(_lazy.lazy_import("segmint_no_such_module_yet"), _lazy.LazyModule)


def test_a_lazy_module_that_does_not_exist_fails_at_first_use_naming_it():
    missing = _lazy.LazyModule("segmint_no_such_module_yet")
    with pytest.raises(ModuleNotFoundError, match="segmint_no_such_module_yet"):
        missing.anything


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


def test_is_cached_tells_a_loaded_signature_from_one_never_compiled():
    import numba
    import numpy as np

    from segmint.kernels.reduce import weighted_sum

    args = (np.ones(3), np.ones(0), 0, 3, np.zeros(1))
    weighted_sum(*args)
    assert _warmup.is_cached(weighted_sum, tuple(numba.typeof(a) for a in args))
    never = (numba.typeof(np.ones(3, np.int8)), numba.typeof(np.ones(0, np.int8)), numba.int64, numba.int64,
             numba.typeof(np.zeros(1)))
    assert not _warmup.is_cached(weighted_sum, never)


def test_cache_status_with_caching_switched_off_says_so():
    out = _run(STATUS.replace('"|".join(s.missing)', "s.reason"), env={"SEGMINT_NUMBA_CACHE": "0"}).stdout
    assert out.splitlines()[0] == "False 0 0"
    assert "caching is off" in out


def test_the_start_up_script_reports_each_phase_and_what_the_process_loaded():
    script = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "startup_time.py")
    out = subprocess.run([sys.executable, script, "--runs", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for phase in ("import", "load", "first score", "total"):
        assert f"  {phase}" in out.stdout and "median" in out.stdout
    assert "pandas" not in out.stdout.split("heavy libraries imported:")[1]
