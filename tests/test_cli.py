"""The command line: demo, generate, info, and one-line errors with useful exit codes."""
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

import segmint
from segmint.cli import main


def test_generate_and_info(tmp_path, capsys):
    out = tmp_path / "c.arrow"
    assert main(["generate", "-n", "500", "-o", str(out), "--events", str(tmp_path / "e.parquet"), "--random-state", "3"]) == 0
    assert "wrote 500 customers" in capsys.readouterr().out
    assert segmint.open(out).num_rows == 500
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "500 rows x 26 columns" in text and "zero-copy" in text and "region" in text


def test_errors_are_one_line_with_exit_code_1(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.arrow")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("segmint: error: no such file") and err.count("\n") == 1
    assert main(["generate", "-n", "5", "-o", str(tmp_path / "x.csv")]) == 1
    assert "suffix" in capsys.readouterr().err


def test_demo_runs_in_a_fresh_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "segmint.cli", "demo", "-n", "3000", "--dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Generated 3,000 synthetic customers" in result.stdout and "memory-mapped" in result.stdout
    assert "no_consent" in result.stdout and "never_bought" in result.stdout and "segment_0" in result.stdout
    assert "Champions" in result.stdout and "Timings: generate" in result.stdout
    assert "MiniBatchKMeans: inertia " in result.stdout and "predict of all 3,000 customers" in result.stdout
    scores = segmint.open(tmp_path / "segments.parquet").read()
    assert scores.num_rows == 3000 and scores.column_names == ["customer_id", "segment_id", "segment", "distance", "rule"]


def test_usage_error_exit_code_2():
    result = subprocess.run([sys.executable, "-m", "segmint.cli", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2


def test_fit_score_info_rules_aggregate_rfm(tmp_path, capsys):
    data, events = tmp_path / "c.arrow", tmp_path / "e.parquet"
    assert main(["generate", "-n", "4000", "-o", str(data), "--events", str(events)]) == 0
    rules = tmp_path / "rules.json"
    rules.write_text('{"segments": [{"name": "no_consent", "rule": "not email_opt_in"}]}')
    model = tmp_path / "m.seg"
    assert main(["--quiet", "fit", str(data), "-o", str(model), "--features", "frequency,monetary,tenure_days",
                 "-k", "3", "--rules", str(rules), "--id-column", "customer_id", "--rename", "0=Loyal"]) == 0
    assert "fitted 4 segments" in capsys.readouterr().out
    assert main(["info", str(model)]) == 0
    text = capsys.readouterr().out
    assert "segmint model, 4 segments" in text and "0=Loyal" in text and "no_consent: not email_opt_in" in text
    assert "reference statistics: 4,000 rows, 3 numeric and 0 categorical features" in text
    out = tmp_path / "s.parquet"
    assert main(["--threads", "1", "score", str(model), str(data), "-o", str(out)]) == 0
    assert "scored 4,000 customers" in capsys.readouterr().out
    direct = segmint.load(model).score(data)
    assert segmint.open(out).read().to_pydict() == direct.to_pydict()
    assert main(["rules", str(rules), str(data), "-o", str(tmp_path / "r.arrow"), "--id-column", "customer_id"]) == 0
    assert "no_consent" in capsys.readouterr().out
    feats = tmp_path / "f.parquet"
    assert main(["aggregate", str(events), "-o", str(feats), "--amount", "amount", "--event-type", "event_type",
                 "--qualifying", "purchase", "--as-of", "2026-10-01"]) == 0
    assert "customers in" in capsys.readouterr().out
    assert main(["aggregate", str(events), "-o", str(tmp_path / "b.parquet"), "--amount", "amount", "--event-type",
                 "event_type", "--qualifying", "purchase", "--as-of", "2026-10-01", "--btyd", "W"]) == 0
    assert segmint.open(tmp_path / "b.parquet").column_names == ["customer_id", "frequency", "recency", "T", "monetary_value"]
    capsys.readouterr()
    assert main(["rfm", str(feats), "-o", str(tmp_path / "rfm.parquet"), "--save-boundaries", str(tmp_path / "b.json")]) == 0
    assert "Champions" in capsys.readouterr().out
    assert main(["rfm", str(feats), "-o", str(tmp_path / "rfm2.parquet"), "--boundaries", str(tmp_path / "b.json")]) == 0
    assert segmint.open(tmp_path / "rfm.parquet").read().equals(segmint.open(tmp_path / "rfm2.parquet").read())


def test_cli_errors_name_the_problem(tmp_path, capsys):
    data = tmp_path / "c.arrow"
    assert main(["generate", "-n", "300", "-o", str(data)]) == 0
    capsys.readouterr()
    assert main(["fit", str(data), "-o", str(tmp_path / "m.seg"), "--features", "frequncy"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("segmint: error:")]
    assert len(errors) == 1 and "'frequncy'" in errors[0] and "did you mean 'frequency'" in errors[0]
    assert "Traceback" not in err
    bad = tmp_path / "bad.seg"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["score", str(bad), str(data), "-o", str(tmp_path / "s.arrow")]) == 1
    assert "segmint: error:" in capsys.readouterr().err
    assert not (tmp_path / "s.arrow").exists()
    assert main(["fit", str(data), "-o", str(tmp_path / "m.seg"), "--features", "frequency", "--rename", "7"]) == 1
    assert "ID=NAME" in capsys.readouterr().err


def test_ctrl_c_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    data = tmp_path / "c.arrow"
    assert main(["generate", "-n", "5000", "-o", str(data)]) == 0
    model = tmp_path / "m.seg"
    assert main(["fit", str(data), "-o", str(model), "--features", "frequency,monetary", "-k", "2"]) == 0
    from segmint.pipeline import Segmenter
    real = Segmenter._score_batch
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "_score_batch", interrupted)
    out = tmp_path / "s.parquet"
    with segmint.threads(1):
        assert main(["score", str(model), str(data), "-o", str(out), "--batch-size", "1000"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- errors by type --------------------------------------------------------------------------
def test_a_users_error_is_one_line_and_a_bug_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    import segmint.cli as cli

    def permission_denied(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked.arrow"))

    monkeypatch.setitem(cli.COMMANDS, "info", permission_denied)
    assert main(["info", "x"]) == 1
    err = capsys.readouterr().err
    assert err == f"segmint: error: [Errno 13] Permission denied: '{tmp_path / 'locked.arrow'}'\n"

    def bug(args):
        raise ValueError("an internal invariant broke")  # not a SegmintError: segmint's bug

    monkeypatch.setitem(cli.COMMANDS, "info", bug)
    with pytest.raises(ValueError, match="invariant"):
        main(["info", "x"])


@pytest.mark.parametrize("argv, words", [
    (["generate", "-n", "5", "-o", "{tmp}/c.arrow", "--as-of", "2026-13-45"], ["'2026-13-45'", "ISO date"]),
    (["generate", "-n", "5", "-o", "{tmp}/c.arrow", "--random-state", "-1"], ["random_state", ">= 0"]),
    (["--threads", "100000", "generate", "-n", "5", "-o", "{tmp}/c.arrow"], ["threads", "1024"]),
    (["rules", "{tmp}/r.json", "{tmp}/d.arrow", "--as-of", "2026-13-45"], ["'2026-13-45'", "as_of"]),
    (["fit", "{tmp}/d.arrow", "-o", "{tmp}/m.seg", "--features", "frequency", "--rename", "=x"], ["ID=NAME"]),
    (["fit", "{tmp}/d.arrow", "-o", "{tmp}/m.seg", "--features", "frequency", "--rename", "9" * 5000 + "=x"],
     ["--rename", "segments"]),
    (["generate", "-n", "5", "-o", "{tmp}/missing/c.arrow"], ["does not exist"]),
])
def test_bad_arguments_are_segmint_errors_named_in_one_line(argv, words, tmp_path, capsys):
    segmint.write_customers(tmp_path / "d.arrow", 50)
    (tmp_path / "r.json").write_text('{"segments": [{"name": "a", "rule": "days_since(last_order_date) > 3"}]}')
    assert main([a.format(tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("segmint: error:") and err.count("\n") == 1 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "c.arrow").exists() and not (tmp_path / "m.seg").exists()


def test_a_bad_thread_count_in_the_environment_is_a_segmint_error(monkeypatch):
    from segmint import _parallel
    monkeypatch.setenv("SEGMINT_NUM_THREADS", "lots")
    monkeypatch.setattr(_parallel, "_threads", None)
    with pytest.raises(segmint.errors.ParameterError, match="SEGMINT_NUM_THREADS.*'lots'"):
        segmint.get_num_threads()


def test_the_demo_reuses_its_own_folder_but_not_a_users(tmp_path):
    folder = tmp_path / "demo"
    for expected in (0, 0):
        result = subprocess.run(_segmint("demo", "-n", "2000", "--dir", str(folder)), capture_output=True,
                                text=True, timeout=300, preexec_fn=_bounded)
        assert result.returncode == expected, result.stderr
    assert sorted(os.listdir(folder)) == ["_segmint_demo.json", "customers.arrow", "model.seg", "segments.parquet"]
    (folder / "notes.txt").write_text("mine")
    result = subprocess.run(_segmint("demo", "-n", "2000", "--dir", str(folder)), capture_output=True,
                            text=True, timeout=300, preexec_fn=_bounded)
    assert result.returncode == 1 and "notes.txt" in result.stderr and "Traceback" not in result.stderr
    assert (folder / "notes.txt").read_text() == "mine"


# -- Ctrl-C, for real: a SIGINT sent to a running segmint process ------------------------------
MEMORY_BOUND = 4 << 30  # address space of each child; generate and score stay well below


def _bounded():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))


def _segmint(*args):
    script = os.path.join(os.path.dirname(sys.executable), "segmint")
    return [script, *args] if os.path.exists(script) else [sys.executable, "-m", "segmint.cli", *args]


def _started_importing(proc, folder):
    """segmint's own import has begun: numpy (imported by segmint, after its start-up guard)
    is mapped into the process."""
    try:
        with open(f"/proc/{proc.pid}/maps") as f:
            return "_multiarray_umath" in f.read()
    except OSError:
        return False


def _working(proc, folder):
    """The writer's temporary exists: the job is under way."""
    return any(".tmp-" in name for name in os.listdir(folder))


def _committed(name):
    return lambda proc, folder: os.path.exists(folder / name)


def _interrupt(argv, folder, when, timeout=120):
    """Start segmint, wait for ``when(proc, folder)``, send SIGINT; ``(returncode, stderr)``."""
    proc = subprocess.Popen(_segmint(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_bounded)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not when(proc, folder) and time.monotonic() < deadline:
        time.sleep(0.0005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def _check_interrupted(code, err, folder, outputs):
    """Exit 130, one line without a traceback, and each output complete or absent as it says;
    no temporary left. Returns the names reported written."""
    assert code == 130, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segmint: interrupted"), err
    said = lines[0].split(";")[0]
    written = set()
    for name, rows in outputs.items():
        path = folder / name
        if f"{path} was written" in said or f"{path} were" in said or f"{path} and" in said:
            written.add(name)
            assert segmint.open(path).num_rows == rows
        else:
            assert f"nothing was written to" in lines[0] or "nothing was written" in lines[0]
            assert not path.exists(), (name, lines[0])
    assert not [p for p in os.listdir(folder) if p.startswith(".")], os.listdir(folder)
    return written


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interrupt")
    segmint.write_customers(folder / "in.arrow", 2_000_000, random_state=5)
    segmint.write_customers(folder / "small.arrow", 2_000, random_state=5)
    model = segmint.Segmenter(["frequency", "monetary"], clusterer=segmint.MiniBatchKMeans(n_clusters=3, random_state=0))
    model.fit(folder / "small.arrow").save(folder / "model.seg")
    return folder


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="watches /proc/PID/maps")


@needs_proc
@pytest.mark.parametrize("when", [_started_importing, _working], ids=["while-starting", "mid-work"])
def test_ctrl_c_while_generating_exits_130_and_writes_nothing(when, tmp_path):
    code, err = _interrupt(["generate", "-n", "2000000", "-o", str(tmp_path / "g.arrow")], tmp_path, when)
    assert _check_interrupted(code, err, tmp_path, {"g.arrow": 2_000_000}) == set()


def test_ctrl_c_while_scoring_and_just_after_the_commit(big, tmp_path):
    argv = ["score", str(big / "model.seg"), str(big / "in.arrow"), "-o"]
    code, err = _interrupt(argv + [str(tmp_path / "mid.parquet")], tmp_path, _working)
    assert _check_interrupted(code, err, tmp_path, {"mid.parquet": 2_000_000}) == set()
    for attempt in range(4):  # the window after the commit is short: the job may end first
        name = f"done{attempt}.arrow"
        code, err = _interrupt(argv + [str(tmp_path / name)], tmp_path, _committed(name))
        if code == 0:
            assert segmint.open(tmp_path / name).num_rows == 2_000_000
            continue
        assert _check_interrupted(code, err, tmp_path, {name: 2_000_000}) == {name}
        assert f"interrupted after {tmp_path / name} was written" in err
        break
    else:
        pytest.fail("every run ended before the SIGINT: no after-commit case was exercised")


def test_ctrl_c_between_two_outputs_says_which_one_was_written(tmp_path):
    argv = ["generate", "-n", "200000", "-o", str(tmp_path / "c.arrow"), "--events", str(tmp_path / "e.arrow")]
    code, err = _interrupt(argv, tmp_path, _committed("c.arrow"))
    if code == 0:
        pytest.skip("the job ended before the SIGINT")
    events = segmint.open(tmp_path / "e.arrow").num_rows if (tmp_path / "e.arrow").exists() else 0
    written = _check_interrupted(code, err, tmp_path, {"c.arrow": 200_000, "e.arrow": events})
    assert "c.arrow" in written


@needs_proc
def test_ctrl_c_pressed_three_times_still_removes_the_temporary(tmp_path):
    proc = subprocess.Popen(_segmint("generate", "-n", "2000000", "-o", str(tmp_path / "g.arrow")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_bounded)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not _working(proc, tmp_path) and time.monotonic() < deadline:
        time.sleep(0.0005)
    for _ in range(3):  # the second and third come while the first unwinds
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
    _, err = proc.communicate(timeout=120)
    assert _check_interrupted(proc.returncode, err, tmp_path, {"g.arrow": 2_000_000}) == set()


# -- issue 13: one name per concept, explicit dispatch ---------------------------------------
def test_every_subcommand_has_exactly_one_entry_in_the_dispatch_table():
    import argparse

    import segmint.cli as cli
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)
    assert all(callable(f) for f in cli.COMMANDS.values())


def test_the_concept_table_flags_reach_the_python_api(tmp_path, capsys):
    data, events = tmp_path / "c.arrow", tmp_path / "e.arrow"
    assert main(["generate", "-n", "1500", "-o", str(data), "--events", str(events), "--random-state", "4"]) == 0
    model = tmp_path / "m.seg"
    assert main(["-q", "fit", str(data), "-o", str(model), "--features", "frequency,monetary", "--n-clusters", "3",
                 "--clusterer", "kmeans", "--random-state", "2", "--batch-size", "500"]) == 0
    fitted = segmint.load(model)
    assert type(fitted.clusterer_).__name__ == "KMeans" and fitted.clusterer_.n_clusters == 3
    assert fitted.clusterer_.random_state == 2
    assert main(["-q", "fit", str(data), "-o", str(tmp_path / "mb.seg"), "--features", "frequency", "-k", "2"]) == 0
    assert type(segmint.load(tmp_path / "mb.seg").clusterer_).__name__ == "MiniBatchKMeans"
    # batch sizes change memory, never results
    for size in ("7", "131072"):
        out = tmp_path / f"s{size}.parquet"
        assert main(["score", str(model), str(data), "-o", str(out), "--batch-size", size]) == 0
        assert main(["aggregate", str(events), "-o", str(tmp_path / f"a{size}.parquet"), "--id-column",
                     "customer_id", "--as-of", "2026-10-01", "--batch-size", size]) == 0
        rules = tmp_path / "r.json"
        rules.write_text('{"segments": [{"name": "big", "rule": "monetary > 100"}]}')
        assert main(["rules", str(rules), str(data), "-o", str(tmp_path / f"r{size}.arrow"),
                     "--batch-size", size]) == 0
    for kind in ("s", "a", "r"):
        suffix = "arrow" if kind == "r" else "parquet"
        assert segmint.open(tmp_path / f"{kind}7.{suffix}").read().equals(
            segmint.open(tmp_path / f"{kind}131072.{suffix}").read()), kind
    # the generator's random state is the same one as the Python API's
    again = tmp_path / "again.arrow"
    assert main(["generate", "-n", "1500", "-o", str(again), "--random-state", "4"]) == 0
    assert segmint.open(again).read().equals(segmint.make_customers(1500, random_state=4))


@pytest.mark.parametrize("argv", [
    ["generate", "-n", "5", "-o", "x.arrow", "--seed", "1"],
    ["aggregate", "e.arrow", "-o", "f.arrow", "--customer", "id"],
    ["fit", "d.arrow", "-o", "m.seg", "--features", "a", "--clusters", "3"],
    ["fit", "d.arrow", "-o", "m.seg", "--features", "a", "--algorithm", "lloyd"],
    ["fit", "d.arrow", "-o", "m.seg", "--features", "a", "--clusterer", "lloyd"],
    ["score", "m.seg", "d.arrow", "-o", "s.arrow", "--batch-size", "0"],
])
def test_old_and_wrong_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
