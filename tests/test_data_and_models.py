import pytest
import torch

from fastsegadv.data import IGNORE_INDEX, NUM_CLASSES, make_digit_scenes
from fastsegadv.metrics import ConfusionMatrix
from fastsegadv.models import (
    SHIPPED,
    TinyDeepLab,
    TinyUPerNet,
    checkpoint_path,
    load_model,
    load_pretrained,
    save_model,
)
from fastsegadv.train_reference import train


def test_digit_scenes_are_deterministic_and_well_formed():
    x, y = make_digit_scenes("test", num_images=6, seed=3)
    x2, y2 = make_digit_scenes("test", num_images=6, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (6, 3, 64, 64) and y.shape == (6, 64, 64) and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1
    values = set(y.unique().tolist())
    assert values <= set(range(NUM_CLASSES)) | {IGNORE_INDEX}
    assert 0 in values and IGNORE_INDEX in values and len(values - {0, IGNORE_INDEX}) >= 2
    x3, _ = make_digit_scenes("train", num_images=6, seed=3)
    assert not torch.equal(x, x3)
    with pytest.raises(ValueError, match="split"):
        make_digit_scenes("val")


def test_model_shapes():
    m = TinyDeepLab(num_classes=7, width=8)
    assert m(torch.rand(2, 3, 37, 45)).shape == (2, 7, 37, 45)


def test_upernet_shapes_and_feature_layer():
    m = TinyUPerNet(num_classes=7, width=8)
    assert m(torch.rand(2, 3, 37, 45)).shape == (2, 7, 37, 45)
    convs = [name for name, mod in m.named_modules() if isinstance(mod, torch.nn.Conv2d)]
    assert convs[-1] == "classifier"  # RP-PGD's feature layer is the classifier's input


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_checkpoint_loads_and_segments(name):
    path = checkpoint_path(name)
    assert path.stat().st_size < 4 * 2**20
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["num_classes"] == NUM_CLASSES
    model = load_pretrained(name)
    assert not model.training
    x, y = make_digit_scenes("test", num_images=32, seed=0)
    cm = ConfusionMatrix(NUM_CLASSES)
    with torch.no_grad():
        cm.update(model(x).argmax(1), y)
    assert cm.miou() > 0.5, f"{name}: clean mIoU {cm.miou():.3f}"


@pytest.mark.parametrize("arch,width", [("tiny_deeplab", 32), ("tiny_upernet", 8)])
def test_training_script_is_reproducible(arch, width):
    a, meta_a = train(epochs=1, num_images=32, batch_size=16, progress=False, seed=5, arch=arch, width=width)
    b, _ = train(epochs=1, num_images=32, batch_size=16, progress=False, seed=5, arch=arch, width=width)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert len(meta_a["history"]) == 1
    c, _ = train(epochs=1, num_images=32, batch_size=16, progress=False, seed=5, adversarial=True)
    assert any(not torch.equal(v, w) for v, w in zip(a.state_dict().values(), c.state_dict().values()))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown shipped model"):
        load_pretrained("resnet")


@pytest.mark.parametrize("factory", [lambda: TinyDeepLab(5, width=8, norm="group", aux_head=True),
                                     lambda: TinyUPerNet(5, width=8)])
def test_model_file_round_trip(factory, tmp_path):
    torch.manual_seed(0)
    model = factory().eval()
    save_model(model, tmp_path / "m.pt", note="x")
    loaded = load_model(str(tmp_path / "m.pt"))
    assert type(loaded) is type(model) and not loaded.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for u, v in zip(a.values() if isinstance(a, dict) else [a], b.values() if isinstance(b, dict) else [b]):
        assert torch.equal(u, v)
    with pytest.raises(TypeError, match="architectures"):
        save_model(torch.nn.Conv2d(3, 5, 1), tmp_path / "n.pt")
