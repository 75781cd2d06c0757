"""The 002 studies: ε sweep, transfer matrix (diagonal = white box), CRF study, and ``fastsegadv study``."""
from functools import partial

import pytest
import torch

from fastsegadv.attacks import fgsm, ifgsm
from fastsegadv.cli import main
from fastsegadv.data import make_digit_scenes
from fastsegadv.metrics import ConfusionMatrix
from fastsegadv.models import load_pretrained
from fastsegadv.models.crf import DenseCRF
from fastsegadv.models.multiscale import MultiScale, Rescaled
from fastsegadv.studies import crf_study, eps_sweep, sweep_tables, transfer_matrix


@pytest.fixture(scope="module")
def data():
    x, y = make_digit_scenes("test", num_images=4, seed=5)
    return load_pretrained("standard"), x, y


def test_eps_sweep_rows_and_ratio(data):
    model, x, y = data
    rows = eps_sweep({"m": model}, x, y, num_classes=11, attacks=("FGSM", "I-FGSM"), eps_list=(2, 8), progress=False)
    assert [(r["attack"], r["eps"]) for r in rows] == [("FGSM", 2), ("FGSM", 8), ("I-FGSM", 2), ("I-FGSM", 8)]
    for r in rows:
        assert r["iou_ratio"] == pytest.approx(r["miou"] / r["clean_miou"])
    with torch.no_grad():
        adv = ifgsm(model, x, y, eps=8 / 255, seed=0)  # 10 iterations of 1/255 (n = min(12, 10))
        assert rows[3]["miou"] == pytest.approx(ConfusionMatrix(11).update(model(adv).argmax(1), y).miou())
    fgsm_rows = [r for r in rows if r["attack"] == "FGSM"]
    assert fgsm_rows[1]["iou_ratio"] < fgsm_rows[0]["iou_ratio"]  # a larger ε hurts more
    table = sweep_tables(rows)["FGSM"]
    assert list(table[0]) == ["model", "Clean", "ε=2", "ε=8"]


def test_transfer_matrix_diagonal_is_white_box(data):
    model, x, y = data
    nets = {"50%": Rescaled(model, 0.5), "100%": model, "Multiscale": MultiScale(model)}
    atk = partial(fgsm, eps=8 / 255)
    res = transfer_matrix(nets, x, y, attack=atk, num_classes=11, progress=False)
    for name, net in nets.items():
        with torch.no_grad():
            white = ConfusionMatrix(11).update(net(atk(net, x, y, seed=0)).argmax(1), y).miou()
        assert res["miou"][name][name] == pytest.approx(white)
    assert res["iou_ratio"]["100%"]["50%"] == pytest.approx(res["miou"]["100%"]["50%"] / res["clean"]["100%"])


def test_crf_study_rows(data):
    model, x, y = data
    rows = crf_study(model, x[:2], y[:2], num_classes=11, crf=DenseCRF(iterations=2, window=3), eps_list=(8,),
                     progress=False)
    clean = [r for r in rows if r["attack"] == "clean"]
    assert [r["network"] for r in clean] == ["model", "model+CRF"] and all(r["iou_ratio"] == 1.0 for r in clean)
    assert {(r["network"], r["source"]) for r in rows if r["attack"] == "FGSM"} == {
        ("model", "white-box"), ("model+CRF", "white-box"), ("model+CRF", "model")}
    assert {r["targeted"] for r in rows if r["attack"] == "FGSM II"} == {True}
    assert all(0 < r["confidence"] <= 1 and 0 <= r["entropy"] <= 1 for r in rows)


def test_study_command_writes_the_report(tmp_path, capsys):
    out = tmp_path / "study"
    code = main(["study", "--models", "standard", "--num-images", "2", "--eps", "8", "--crf-eps", "8",
                 "--crf-iterations", "1", "--crf-window", "3", "--output", str(out), "--no-progress"])
    assert code == 0
    for name in ("study.md", "study.json", "eps_sweep.csv", "crf.csv", "transfer_FGSM.csv", "transfer_I-FGSM.csv",
                 "eps_sweep.png", "transfer.png", "crf_confidence.png"):
        assert (out / name).stat().st_size > 0, name
    text = (out / "study.md").read_text()
    assert "## Findings" in text and "holds here" in text
    printed = capsys.readouterr().out
    assert "multiscale processing" in printed and "wrote" in printed
