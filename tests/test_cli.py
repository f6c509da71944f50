"""The command line: demo, generate, info, and one-line errors with useful exit codes."""
import subprocess
import sys

import segmint
from segmint.cli import main


def test_generate_and_info(tmp_path, capsys):
    out = tmp_path / "c.arrow"
    assert main(["generate", "-n", "500", "-o", str(out), "--events", str(tmp_path / "e.parquet"), "--seed", "3"]) == 0
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
