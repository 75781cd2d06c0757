"""benchmarks/ensemble_vs_sea.py (issue 13's study) on a tiny run: its rows, passes, files and --append."""
import json

from benchmarks.ensemble_vs_sea import main


def test_study_rows_passes_and_files(tmp_path):
    args = ["--models", "pgd_at", "--eps", "8", "--images", "2", "--batch-size", "2", "--out", str(tmp_path)]
    assert main(args + ["--presets", "sea@3", "ensemble@3"]) == 0
    rows = json.loads((tmp_path / "ensemble_vs_sea.json").read_text())["rows"]
    by_preset = {r["preset"]: r for r in rows}
    assert by_preset["sea@3"]["passes_per_image"] == 9  # three losses x 3 iterations (stages of 0, 0 and 3)
    assert by_preset["ensemble@3"]["passes_per_image"] == 3
    sea = by_preset["sea@3"]
    assert sea["worst_miou"] <= min(m["miou"] for m in sea["members"].values()) + 1e-9
    assert all(r["seconds_per_image"] > 0 for r in rows)
    for name in ("ensemble_vs_sea.md", "ensemble_vs_sea.png"):
        assert (tmp_path / name).stat().st_size > 0
    # --append runs only what is missing and keeps the earlier rows
    assert main(args + ["--presets", "sea@3", "ensemble@4", "--append"]) == 0
    again = json.loads((tmp_path / "ensemble_vs_sea.json").read_text())["rows"]
    assert [r["preset"] for r in again] == ["ensemble@3", "ensemble@4", "sea@3"]
    assert {k: v for k, v in again[2].items()} == sea
