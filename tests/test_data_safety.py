"""segmint never deletes or replaces what it did not write, and never writes over its input.

Every writing command (CLI and API) is pointed at outputs that are, contain or lie inside an
input (also through symlinks, hard links and '..'), at '.', '' and the current folder, and at
non-empty folders segmint did not write. Each must be refused with an error naming the path,
and hashes of every file under the test folder prove that nothing was deleted or changed.
"""
import hashlib
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmint
from segmint.cli import main
from segmint.io.outputs import MARKER


def _tree(root):
    """``{relative path: sha256 or 'dir' or 'link->target'}`` of everything under ``root``."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "link->" + os.readlink(path)
            elif os.path.isdir(path):
                found[rel] = "dir"
            else:
                with open(path, "rb") as f:
                    found[rel] = hashlib.sha256(f.read()).hexdigest()
    return found


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small 'data lake': customers (file and Parquet folder), events, features, a model, a
    rule file, a windows file, RFM boundaries, and a user's unrelated file."""
    root = tmp_path_factory.mktemp("template") / "lake"
    root.mkdir()
    segmint.write_customers(root / "in.arrow", 400, random_state=1, events_path=root / "ev.parquet")
    table = segmint.open(root / "in.arrow").read()
    (root / "folder").mkdir()
    segmint.write_table(table, str(root / "folder") + "/", rows_per_file=150)
    (root / "folder" / MARKER).unlink()  # a dataset some other tool wrote
    feats = segmint.aggregate(root / "ev.parquet", amount="amount", event_type="event_type",
                              qualifying="purchase", as_of="2026-10-01")
    segmint.write_table(feats.table, root / "feats.parquet")
    model = segmint.Segmenter(["frequency", "monetary"], clusterer=segmint.MiniBatchKMeans(n_clusters=2, random_state=0))
    model.fit(root / "in.arrow").save(root / "model.seg")
    (root / "rules.json").write_text(json.dumps({"segments": [{"name": "buyers", "rule": "frequency > 0"}]}))
    (root / "windows.json").write_text(json.dumps({"n90": {"agg": "count", "last": "90d"}}))
    (root / "bounds.json").write_text(json.dumps(segmint.RFMScorer().fit(feats.table).to_dict()))
    (root / "notes.txt").write_text("a user's file that must survive\n")
    return root


@pytest.fixture
def lake(template, tmp_path, monkeypatch):
    root = tmp_path / "lake"
    shutil.copytree(template, root)
    monkeypatch.chdir(tmp_path)
    return root


def _refused(argv, capsys, root, *names):
    """Run the CLI, expect exit 1 with one error line naming each of ``names``; nothing changed."""
    before = _tree(root.parent)
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segmint: error:"), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert "Traceback" not in err
    assert _tree(root.parent) == before
    return lines[0]


# -- the CLI: outputs against inputs -----------------------------------------------------------
COMMANDS = {  # command -> (argv before -o with {lake}, the input to aim at)
    "score": (["score", "{lake}/model.seg", "{lake}/in.arrow"], "in.arrow"),
    "score-model": (["score", "{lake}/model.seg", "{lake}/in.arrow"], "model.seg"),
    "score-folder": (["score", "{lake}/model.seg", "{lake}/folder"], "folder"),
    "rules": (["rules", "{lake}/rules.json", "{lake}/in.arrow"], "in.arrow"),
    "rules-file": (["rules", "{lake}/rules.json", "{lake}/in.arrow"], "rules.json"),
    "aggregate": (["aggregate", "{lake}/ev.parquet", "--amount", "amount"], "ev.parquet"),
    "aggregate-windows": (["aggregate", "{lake}/ev.parquet", "--windows", "{lake}/windows.json"], "windows.json"),
    "rfm": (["rfm", "{lake}/feats.parquet"], "feats.parquet"),
    "rfm-boundaries": (["rfm", "{lake}/feats.parquet", "--boundaries", "{lake}/bounds.json"], "bounds.json"),
    "fit": (["fit", "{lake}/in.arrow", "--features", "frequency,monetary"], "in.arrow"),
    "fit-rules": (["fit", "{lake}/in.arrow", "--features", "frequency", "--rules", "{lake}/rules.json"], "rules.json"),
}


def _argv(command, lake, out):
    head, target = COMMANDS[command]
    return [a.format(lake=lake) for a in head] + ["-o", out], target


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_output_equal_to_an_input_is_refused(command, lake, capsys):
    argv, target = _argv(command, lake, "")
    argv[-1] = str(lake / target)
    if target == "folder":
        argv[-1] += "/"
    _refused(argv, capsys, lake, repr(argv[-1].rstrip("/")) if target == "folder" else repr(argv[-1]))


@pytest.mark.parametrize("command", ["score", "rules", "aggregate", "rfm", "fit"])
@pytest.mark.parametrize("how", ["folder", "folder/", "symlink", "hardlink", "dotdot", "cwd-relative"])
def test_an_output_containing_or_aliasing_an_input_is_refused(command, how, lake, capsys):
    argv, target = _argv(command, lake, "")
    if how.startswith("folder"):
        out = str(lake) + ("/" if how.endswith("/") else "")
    elif how == "symlink":
        out = str(lake.parent / f"link{os.path.splitext(target)[1]}")
        os.symlink(lake / target, out)
    elif how == "hardlink":
        out = str(lake.parent / f"hard{os.path.splitext(target)[1]}")
        os.link(lake / target, out)
    elif how == "dotdot":
        (lake / "sub").mkdir()
        out = f"{lake}/sub/../{target}"
    else:
        out = f"lake/{target}"
    argv[-1] = out
    _refused(argv, capsys, lake, repr(out.rstrip("/")) if how == "folder/" else repr(out))


@pytest.mark.parametrize("command", ["score-folder"])
def test_an_output_inside_an_input_folder_is_refused(command, lake, capsys):
    argv, _ = _argv(command, lake, str(lake / "folder" / "scores.parquet"))
    line = _refused(argv, capsys, lake, "scores.parquet")
    assert "inside the input folder" in line


@pytest.mark.parametrize("out", [".", "", "{cwd}", "{cwd}/", "/", "~", ".."])
def test_dot_empty_cwd_root_and_home_are_refused_up_front(out, lake, capsys, monkeypatch):
    monkeypatch.chdir(lake)
    out = out.format(cwd=os.getcwd()).replace("~", os.path.expanduser("~"))
    _refused(["generate", "-n", "100000000", "-o", out], capsys, lake)  # refused before any row
    _refused(["score", str(lake / "model.seg"), str(lake / "in.arrow"), "-o", out], capsys, lake)


@pytest.mark.parametrize("argv", [
    ["generate", "-n", "10", "-o", "{lake}/x.arrow", "--events", "{lake}/x.arrow"],
    ["generate", "-n", "10", "-o", "{lake}/new/", "--events", "{lake}/new/e.parquet"],
    ["rfm", "{lake}/feats.parquet", "-o", "{lake}/r.parquet", "--save-boundaries", "{lake}/feats.parquet"],
    ["rfm", "{lake}/feats.parquet", "-o", "{lake}/r.json.parquet", "--save-boundaries", "{lake}/r.json.parquet"],
])
def test_outputs_that_overlap_each_other_or_an_input_are_refused(argv, lake, capsys):
    _refused([a.format(lake=lake) for a in argv], capsys, lake)


@pytest.mark.parametrize("command", ["generate", "score", "rules", "aggregate", "rfm"])
def test_a_non_empty_folder_segmint_did_not_write_is_refused(command, lake, capsys):
    foreign = lake.parent / "reports"
    foreign.mkdir()
    (foreign / "q3.csv").write_text("keep me")
    (foreign / "part-00000.parquet").write_text("not ours either")
    argv = ["generate", "-n", "10", "-o", f"{foreign}/"] if command == "generate" else _argv(command, lake, f"{foreign}/")[0]
    line = _refused(argv, capsys, lake, repr(str(foreign)))
    assert "did not write" in line and "new or empty" in line


def test_a_folder_segmint_wrote_is_replaced_on_a_rerun_and_refused_with_a_user_file(lake, capsys):
    out = lake.parent / "scores"
    argv = ["score", str(lake / "model.seg"), str(lake / "in.arrow"), "-o", f"{out}/"]
    for _ in range(2):
        assert main(argv) == 0
        assert segmint.open(out).num_rows == 400
        assert sorted(os.listdir(out)) == [MARKER, "part-00000.parquet"]
    (out / "my_notes.txt").write_text("mine")
    line = _refused(argv, capsys, lake, repr(str(out)), "my_notes.txt")
    assert "1 file segmint did not write" in line
    assert (out / "my_notes.txt").read_text() == "mine"


def test_the_demo_refuses_a_folder_with_a_users_files_of_its_names(lake, capsys):
    folder = lake.parent / "mine"
    folder.mkdir()
    (folder / "model.seg").write_text("my model")
    _refused(["demo", "-n", "500", "--dir", str(folder)], capsys, lake, "model.seg")
    assert (folder / "model.seg").read_text() == "my model"


# -- the library writers ----------------------------------------------------------------------
def _table(n=10):
    return pa.table({"customer_id": np.arange(n), "segment": np.arange(n) % 3})


def _api_refused(func, root, *names):
    before = _tree(root.parent)
    with pytest.raises(segmint.OutputError) as info:
        func()
    for name in names:
        assert name in str(info.value)
    assert _tree(root.parent) == before
    return str(info.value)


@pytest.mark.parametrize("out", ["in.arrow", ".", "folder", "folder/x.parquet", "ev.parquet"])
def test_write_table_and_result_writer_refuse_an_input(out, lake):
    inputs = [lake / "in.arrow", lake / "folder", lake / "ev.parquet"]
    path = str(lake / out) + ("/" if out in (".", "folder") else "")
    _api_refused(lambda: segmint.write_table(_table(), path, inputs=inputs), lake)
    _api_refused(lambda: segmint.ResultWriter(path, _table().schema, inputs=inputs), lake)


def test_ruleset_evaluate_and_segmenter_score_refuse_their_input_before_any_work(lake, monkeypatch):
    rules = segmint.RuleSet.load(lake / "rules.json")
    model = segmint.load(lake / "model.seg")

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(segmint.RuleSet, "_stream", no_work)
    monkeypatch.setattr(segmint.Segmenter, "_score_batch", no_work)
    for out in [lake / "in.arrow", str(lake) + "/", lake / "folder" / "s.parquet"]:
        source = lake / "folder" if "folder" in str(out) else lake / "in.arrow"
        _api_refused(lambda: rules.evaluate(source, out=out), lake)
        _api_refused(lambda: model.score(source, out=out), lake)


def test_write_customers_refuses_foreign_folders_and_one_path_for_both_outputs(lake):
    _api_refused(lambda: segmint.write_customers(str(lake) + "/", 10), lake, "did not write")
    _api_refused(lambda: segmint.write_customers(lake / "c.arrow", 10, events_path=lake / "c.arrow"), lake, "overlap")
    _api_refused(lambda: segmint.write_customers("", 10), lake, "empty")


@pytest.mark.parametrize("out", ["", ".", "lake", "lake/folder"])
def test_model_save_refuses_folders_and_the_current_folder(out, lake):
    model = segmint.load(lake / "model.seg")
    _api_refused(lambda: model.save(out), lake)


def test_write_text_refuses_its_input_and_devices(lake):
    from segmint.io.writers import write_text
    _api_refused(lambda: write_text(lake / "bounds.json", "{}", inputs=[lake / "bounds.json"]), lake, "input")
    if os.path.exists("/dev/null"):
        with pytest.raises(segmint.OutputError, match="not a regular file"):
            write_text("/dev/null", "{}")


def test_a_file_added_to_a_dataset_during_the_job_is_never_removed(lake):
    out = lake.parent / "scores"
    segmint.write_table(_table(), f"{out}/")
    writer = segmint.ResultWriter(f"{out}/", _table().schema)
    writer.write(_table(5))
    (out / "late.txt").write_text("written while the job ran")
    before = _tree(out)
    with pytest.raises(segmint.OutputError, match="late.txt"):
        writer.close()
    assert _tree(out) == before
    assert not [p for p in os.listdir(lake.parent) if p.startswith(".")]  # temporary removed


def test_a_marker_naming_files_outside_its_folder_is_not_trusted(lake):
    out = lake.parent / "scores"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"format": "segmint-parquet-dataset", "version": 1,
                                          "parts": ["../lake/in.arrow", "part-00000.parquet"]}))
    (out / "part-00000.parquet").write_text("x")
    _api_refused(lambda: segmint.write_table(_table(), f"{out}/"), lake, "did not write")


NAMES = st.sampled_from(["part-00000.parquet", "part-00001.parquet", "a.csv", "notes.txt", MARKER, "sub"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(present=st.sets(NAMES, max_size=4), listed=st.sets(NAMES, max_size=3), marked=st.booleans())
def test_a_folder_is_replaced_only_when_it_holds_nothing_but_what_segmint_wrote(tmp_path, present, listed, marked):
    root = tmp_path / f"case{len(os.listdir(tmp_path))}"
    out = root / "out"
    out.mkdir(parents=True)
    for name in present - {MARKER}:
        if name == "sub":
            (out / name).mkdir()
            (out / name / "deep.txt").write_text("deep")
        else:
            (out / name).write_text(name)
    if marked:
        (out / MARKER).write_text(json.dumps({"format": "segmint-parquet-dataset", "version": 1,
                                              "parts": sorted(listed)}))
    before = _tree(root)
    names = set(os.listdir(out))
    ours = not names or (marked and all(n.endswith(".parquet") for n in listed) and MARKER not in listed
                         and names <= listed | {MARKER} and "sub" not in names)
    try:
        segmint.write_table(_table(), f"{out}/")
    except segmint.OutputError as exc:
        assert not ours, exc
        assert _tree(root) == before and repr(str(out)) in str(exc)
    else:
        assert ours, names
        assert sorted(os.listdir(out)) == [MARKER, "part-00000.parquet"]
        assert segmint.open(out).read().num_rows == 10
    assert not [p for p in os.listdir(root) if p.startswith(".")]


# -- found by review: '..' after a symlink, symlinked parts, long names, a destination that appears

def _rules_file(folder):
    path = folder / "rules.json"
    path.write_text(json.dumps({"segments": [{"name": "buyers", "rule": "frequency > 0"}]}))
    return path


def test_dotdot_after_a_symlink_is_resolved_as_the_system_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    segmint.write_customers("data/", 300, random_state=0)
    (tmp_path / "empty").mkdir()
    (tmp_path / "w").mkdir()
    os.symlink(tmp_path / "empty", tmp_path / "w" / "lnk")  # w/lnk/.. is tmp_path, not w
    rules = _rules_file(tmp_path)
    before = _tree(tmp_path)
    assert main(["-q", "rules", str(rules), "w/lnk/../data", "-o", "data/"]) == 1
    assert main(["-q", "rules", str(rules), "w/lnk/../data", "-o", "w/lnk/../data/out.parquet"]) == 1
    assert _tree(tmp_path) == before


def test_a_part_symlinked_from_an_input_folder_is_an_input_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    segmint.write_customers("victim/", 300, random_state=0)
    (tmp_path / "in").mkdir()
    os.symlink("../victim/part-00000.parquet", tmp_path / "in" / "a.parquet")
    rules = _rules_file(tmp_path)
    before = _tree(tmp_path)
    assert main(["-q", "rules", str(rules), "in", "-o", "victim/"]) == 1
    assert _tree(tmp_path) == before


def test_a_long_output_name_gets_short_temporaries(tmp_path):
    out = tmp_path / ("m" * 240 + ".parquet")
    segmint.write_table(pa.table({"a": [1, 2]}), out)
    assert segmint.open(out).read().column("a").to_pylist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    with pytest.raises(segmint.OutputError, match="longer than 255 bytes"):
        segmint.write_table(pa.table({"a": [1]}), tmp_path / ("m" * 250 + ".parquet"))


def test_overwrite_false_holds_when_the_destination_appears_during_the_job(tmp_path):
    out = tmp_path / "race.arrow"
    writer = segmint.ResultWriter(out, pa.schema([("a", pa.int64())]), overwrite=False)
    writer.write(pa.table({"a": [1]}))
    out.write_bytes(b"someone else's file")
    with pytest.raises(segmint.OutputError, match="appeared while it was being written"):
        writer.close()
    assert out.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.arrow"]
