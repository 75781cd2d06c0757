import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "fastsegadv", *args], capture_output=True, text=True, timeout=600)


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0 and "demo" in out.stdout and "train-reference" in out.stdout
    out = run("demo", "--help")
    assert out.returncode == 0 and "--budgets" in out.stdout


def test_demo_small_run_writes_reports(tmp_path):
    out = run("demo", "--models", "standard", "--attacks", "PGD", "SegPGD", "--budgets", "1", "2",
              "--num-images", "8", "--output", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "| model | Clean | PGD1 | PGD2 | SegPGD1 | SegPGD2 |" in out.stdout
    rows = json.loads((tmp_path / "demo.json").read_text())
    assert rows[0]["model"] == "standard" and 0 <= rows[0]["PGD2"] <= rows[0]["Clean"] <= 100
    assert (tmp_path / "demo.csv").read_text().startswith("model,Clean,PGD1")
    assert (tmp_path / "demo.md").read_text().startswith("| model |")


def test_bad_arguments_are_reported():
    out = run("demo", "--attacks", "NoSuchAttack")
    assert out.returncode != 0 and "invalid choice" in out.stderr
