"""``fastsegadv train`` / ``fastsegadv evaluate``: flags, config files (YAML and JSON), --help, and bad
input reported as one clear error with nothing half-written."""
import json

import pytest
import torch

from fastsegadv.attacks.sea_class_weights import dataset_class_weights
from fastsegadv.cli import main
from fastsegadv.commands import evaluate as evaluate_cmd
from fastsegadv.commands import train as train_cmd
from fastsegadv.commands.evaluate import DATASET_CLASS_WEIGHTS
from fastsegadv.datasets import KINDS

TINY_TRAIN = ["--epochs", "1", "--num-images", "16", "--val-images", "8", "--image-size", "32", "--width", "8",
              "--batch-size", "8", "--attack", "pgd@1", "--no-progress"]


def test_train_then_evaluate_from_flags(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, "--output", str(run)]) == 0
    for name in ("model.pt", "last.pt", "metrics.json", "config.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "metrics.json").read_text())[0]["epoch"] == 1
    rep = tmp_path / "rep"
    assert main(["evaluate", "--models", f"mine={run / 'model.pt'}", "--attacks", "pgd@1", "segpgd@1",
                 "--num-images", "4", "--image-size", "32", "--output", str(rep), "--no-progress"]) == 0
    table = (rep / "robustness.md").read_text()
    assert "| mine |" in table and "PGD1" in table and "SegPGD1" in table
    assert "wrote" in capsys.readouterr().out


def test_train_with_an_aux_head(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, "--aux-head", "--aux-weight", "aux=0.4", "--output", str(run)]) == 0
    ck = torch.load(run / "model.pt", weights_only=True)
    assert ck["aux_head"] and any(k.startswith("aux.") for k in ck["state_dict"])
    assert main(["train", *TINY_TRAIN, "--aux-weight", "aux=0.4", "--output", str(tmp_path / "bad")]) != 0


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_config_file_and_flags_override_it(tmp_path, fmt):
    cfg = {"attacks": ["pgd@1"], "num_images": 4, "image_size": 32, "models": ["standard"], "eps": 2.0,
           "no_progress": True}
    path = tmp_path / f"eval.{fmt}"
    if fmt == "yaml":
        import yaml

        path.write_text(yaml.safe_dump(cfg))
    else:
        path.write_text(json.dumps(cfg))
    rep = tmp_path / "rep"
    assert main(["evaluate", "--config", str(path), "--eps", "4", "--output", str(rep)]) == 0
    data = json.loads((rep / "robustness.json").read_text())
    assert data["config"]["eps_255"] == pytest.approx(4.0)  # the flag wins over the file
    assert data["config"]["attacks"] == ["pgd@1"] and data["config"]["num_images"] == 4


def test_config_typo_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text("epochz: 3\n")
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "unknown option 'epochz'" in err and "did you mean 'epochs'" in err
    assert not (tmp_path / "run").exists()


def test_config_bad_choice(tmp_path, capsys):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"optimizer": "adam"}))
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    assert "optimizer = 'adam' is not one of" in capsys.readouterr().err


def test_unknown_attack_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--attacks", "pgd@1", "segpdg@10", "--output", str(tmp_path / "rep")]) == 2
    assert "unknown attack 'segpdg'" in capsys.readouterr().err
    assert main(["train", *TINY_TRAIN, "--attack", "cospdg@3", "--output", str(tmp_path / "run")]) == 2
    assert "unknown attack 'cospdg'" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists() and not (tmp_path / "run" / "model.pt").exists()


def test_missing_dataset_directory_is_a_clear_error(tmp_path, capsys):
    code = main(["evaluate", "--dataset", "cityscapes", "--data-root", str(tmp_path / "nowhere"),
                 "--output", str(tmp_path / "rep")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()


def test_missing_model_file_fails_before_any_attack(tmp_path, capsys):
    assert main(["evaluate", "--models", str(tmp_path / "none.pt"), "--output", str(tmp_path / "rep")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("module", [train_cmd, evaluate_cmd])
def test_help_explains_every_option(module):
    parser = module.build_parser()
    for action in parser._actions:
        assert action.help, action.dest
    text = parser.format_help()
    assert "--config" in text and "--output" in text


def test_quick_tier_writes_one_report_per_eps(tmp_path):
    """``--tier quick``: PGD, SegPGD, CosPGD and APGD at 20 iterations at eps 4 and 8, one report folder each,
    with passes (forward/backward) and seconds per image for every attack."""
    rep = tmp_path / "rep"
    assert main(["evaluate", "--tier", "quick", "--models", "standard", "--num-images", "2", "--image-size", "32",
                 "--no-curves", "--no-progress", "--output", str(rep)]) == 0
    for eps in (4, 8):
        data = json.loads((rep / f"eps_{eps}" / "robustness.json").read_text())
        assert data["config"]["eps_255"] == pytest.approx(eps)
        assert data["config"]["attacks"] == ["pgd@20", "segpgd@20", "cospgd@20", "apgd@20"]
        details = (rep / f"eps_{eps}" / "details.csv").read_text()
        assert "backwards_per_image" in details and "seconds_per_image" in details


def test_known_datasets_get_seas_published_class_weights():
    assert set(DATASET_CLASS_WEIGHTS) <= set(KINDS) and DATASET_CLASS_WEIGHTS["voc_sbd"] == "voc"
    classes = {"voc": 21, "voc_sbd": 21, "ade20k": 150}  # the readers' class counts
    for kind, name in DATASET_CLASS_WEIGHTS.items():
        assert len(dataset_class_weights(name, classes[kind])) == classes[kind]
