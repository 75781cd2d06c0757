import pytest
import torch

from fastsegadv.data import IGNORE_INDEX, NUM_CLASSES, make_digit_scenes
from fastsegadv.metrics import ConfusionMatrix
from fastsegadv.models import SHIPPED, TinyDeepLab, checkpoint_path, load_pretrained
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


def test_training_script_is_reproducible():
    a, meta_a = train(epochs=1, num_images=32, batch_size=16, progress=False, seed=5)
    b, _ = train(epochs=1, num_images=32, batch_size=16, progress=False, seed=5)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert len(meta_a["history"]) == 1
    c, _ = train(epochs=1, num_images=32, batch_size=16, progress=False, seed=5, adversarial=True)
    assert any(not torch.equal(v, w) for v, w in zip(a.state_dict().values(), c.state_dict().values()))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown shipped model"):
        load_pretrained("resnet")
