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
    assert "Generated 3,000 synthetic customers" in result.stdout
    assert "champions" in result.stdout and "memory-mapped" in result.stdout
    assert "Rules (waterfall" in result.stdout and "everyone_else" in result.stdout


def test_usage_error_exit_code_2():
    result = subprocess.run([sys.executable, "-m", "segmint.cli", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
