"""Issue 22, items 6, 7, 12 and 17: a report folder never passes for complete when it mixes two runs
(manifest written last, removed first); one writer per output folder (a second train or evaluate
stops at once, naming the holder); an output that is a file or cannot be written is refused before any
work; written files respect the umask."""
import os
import subprocess
import sys

import pytest

from fastsegadv import atomic_io
from fastsegadv.datasets import DigitScenes
from fastsegadv.evaluation import EvalConfig, evaluate_model, write_report
from fastsegadv.evaluation import report as report_module
from fastsegadv.evaluation.report import IncompleteReport, verify_report
from fastsegadv.models import load_pretrained
from fastsegadv.output_lock import LOCK_NAME, OutputBusy, output_lock

EVALUATE = [sys.executable, "-m", "fastsegadv", "evaluate", "--models", "standard", "--attacks", "pgd@1",
            "--num-images", "2", "--no-progress", "--no-curves"]


@pytest.fixture(scope="module")
def results():
    cfg = EvalConfig(attacks=["pgd@1"], batch_size=2, progress=False, curves=False)
    ds = DigitScenes("test", num_images=2, seed=0)
    return [evaluate_model(load_pretrained("standard"), ds, cfg, num_classes=11, name="standard")]


def test_a_report_killed_while_writing_is_marked_incomplete(results, tmp_path, monkeypatch):
    write_report(results, tmp_path, title="first")
    first = verify_report(tmp_path)
    assert set(first["files"]) >= {"robustness.md", "robustness.json", "per_image.csv"}
    assert first["run_id"] in (tmp_path / "robustness.md").read_text()
    real = atomic_io.write_text
    calls = []

    def killed_after_two(path, text):
        calls.append(path)
        if len(calls) > 2:
            raise KeyboardInterrupt  # the kill, after robustness.md and .csv of the new run
        real(path, text)

    monkeypatch.setattr(report_module.atomic_io, "write_text", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        write_report(results, tmp_path, title="second")
    monkeypatch.undo()
    with pytest.raises(IncompleteReport, match="no complete report"):
        verify_report(tmp_path)
    # a file rewritten by another run after the manifest is caught too
    write_report(results, tmp_path, title="third")
    (tmp_path / "robustness.csv").write_text("model\nother run\n")
    with pytest.raises(IncompleteReport, match="mixes two runs"):
        verify_report(tmp_path)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with output_lock(tmp_path):
        assert f"pid {os.getpid()}" in (tmp_path / LOCK_NAME).read_text()
        proc = subprocess.run(EVALUATE + ["--output", str(tmp_path)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"is being written by pid {os.getpid()}" in proc.stderr
        assert not (tmp_path / "robustness.md").exists()
        with pytest.raises(OutputBusy):  # in the same process: another open file description
            with output_lock(tmp_path):
                pass
    with output_lock(tmp_path):  # released when the holder ends
        pass


def test_the_lock_of_a_killed_process_is_released(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from fastsegadv.output_lock import output_lock\n"
        f"with output_lock({str(tmp_path)!r}):\n    print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(OutputBusy):
        with output_lock(tmp_path):
            pass
    holder.kill()
    holder.wait()
    with output_lock(tmp_path):
        pass


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_an_output_that_is_a_file_or_unwritable_is_refused_before_any_work(tmp_path, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cmd = EVALUATE if command == "evaluate" else [sys.executable, "-m", "fastsegadv", "train", "--epochs", "1",
                                                  "--num-images", "8", "--batch-size", "8", "--no-progress"]
    proc = subprocess.run(cmd + ["--output", str(afile)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "is an existing file" in proc.stderr and "Traceback" not in proc.stderr
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        proc = subprocess.run(cmd + ["--output", str(locked / "out")], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "cannot be created" in proc.stderr


def test_written_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_io.write_text(tmp_path / "a.md", "x")
        assert (tmp_path / "a.md").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_io.write_text(tmp_path / "b.md", "x")
        assert (tmp_path / "b.md").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
