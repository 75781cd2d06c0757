"""The models users attack and train, as they are (issue 21): transformers' UperNet with a ConvNeXt
backbone (the architecture of the strongest robust models), segmentation-models-pytorch's Unet, FPN,
DeepLabV3+, UPerNet and Segformer over timm-style encoders (ResNet-50, ConvNeXt-T, MiT-b0), and a
SegFormer behind ``SlidingWindow``. Small configs, random weights, nothing downloads.

For each: every registered attack (SEA's APGD included), the AT step and the harness run without a
wrapper, RP-PGD's default feature layer is the final classifier, and the model is left as it was.
segmentation-models-pytorch needs torchvision and timm, which do not install beside CI's CPU torch
2.13 build; those cases skip there and run in ``make gpu-twin`` (torch 2.11, torchvision 0.26).
"""
import pytest
import torch
import torch.nn as nn

from fastsegadv.attacks import ATTACKS, FeatureHook, extract_logits
from fastsegadv.evaluation import EvalConfig, evaluate_model
from fastsegadv.models import SlidingWindow
from fastsegadv.training.at_batch import adversarial_batch, adversarial_training_loss

from .test_third_party_models import EPS, assert_untouched, attack_kwargs, l2_bound, make_segformer, snapshot

NUM_CLASSES = 5
SIZE = 64


def upernet_convnext() -> tuple[nn.Module, str]:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    backbone = transformers.ConvNextConfig(num_channels=3, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                                           out_features=["stage1", "stage2", "stage3", "stage4"],
                                           drop_path_rate=0.1)
    config = transformers.UperNetConfig(backbone_config=backbone, hidden_size=16, auxiliary_in_channels=32,
                                        auxiliary_channels=8, num_labels=NUM_CLASSES, use_auxiliary_head=True,
                                        auxiliary_num_convs=1, loss_ignore_index=255, initializer_range=0.2)
    return transformers.UperNetForSemanticSegmentation(config), "decode_head.classifier"


def smp_model(arch: str, encoder: str) -> tuple[nn.Module, str]:
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    model = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, classes=NUM_CLASSES)
    return model, "segmentation_head.0"


MODELS = {
    "upernet_convnext": upernet_convnext,
    "smp_unet_resnet50": lambda: smp_model("Unet", "resnet50"),
    "smp_fpn_resnet50": lambda: smp_model("FPN", "resnet50"),
    "smp_deeplabv3plus_resnet50": lambda: smp_model("DeepLabV3Plus", "resnet50"),
    "smp_upernet_convnext_tiny": lambda: smp_model("UPerNet", "tu-convnext_tiny"),
    "smp_segformer_mit_b0": lambda: smp_model("Segformer", "mit_b0"),
    "segformer_sliding_window": lambda: (SlidingWindow(make_segformer(), crop=32, stride=24, chunk=3),
                                         "model.decode_head.classifier"),
}


@pytest.fixture(scope="module", params=list(MODELS))
def user_model(request):
    model, classifier = MODELS[request.param]()
    return request.param, model.eval(), classifier


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, SIZE, SIZE, generator=g)
    y = torch.randint(0, NUM_CLASSES, (2, SIZE, SIZE), generator=g)
    y[:, 20:24] = 255
    return x, y


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack(user_model, batch, name):
    label, model, _ = user_model
    x, y = batch
    before = snapshot(model)
    kwargs = attack_kwargs(name)
    if name == "rp_pgd" and isinstance(model, SlidingWindow):
        # no layer holds the whole image's features behind a sliding window: a clear error, or beta=1
        with pytest.raises(ValueError, match="runs its input in pieces"):
            ATTACKS[name](model, x, y, seed=0, **kwargs)
        assert_untouched(model, before)
        kwargs["beta"] = 1.0
    adv = ATTACKS[name](model, x, y, seed=0, **kwargs)
    assert_untouched(model, before)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    delta = (adv - x).flatten(1)
    bound = l2_bound(name)
    if bound is None:
        assert (delta.abs().amax(1) <= EPS + 1e-6).all()
    else:
        assert (delta.norm(dim=1) <= bound + 1e-4).all()


def test_rp_pgd_finds_the_final_classifier(user_model, batch):
    _, model, classifier = user_model
    x, _ = batch
    with FeatureHook(model) as hook:
        out = model(x)
        assert hook.resolve(extract_logits(out)) == classifier


def test_adversarial_training_step(user_model, batch):
    _, model, _ = user_model
    x, y = batch
    x4, y4 = torch.cat([x, x.flip(-1)]), torch.cat([y, y.flip(-1)])
    model.train()
    try:
        before = snapshot(model)
        x_at, y_at, n_clean = adversarial_batch(model, x4, y4, attack="pgd@1", eps=EPS, alpha=2 / 255, seed=0)
        assert_untouched(model, before)
        assert torch.equal(x_at[:n_clean], x4[:n_clean]) and (x_at - x4).abs().max() <= EPS + 1e-6
        loss = adversarial_training_loss(model(x_at), y_at, n_clean=n_clean)
        loss.backward()
        assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_harness(user_model, batch):
    label, model, _ = user_model
    x, y = batch
    cfg = EvalConfig(attacks=["pgd@1", "sea_apgd@3"], batch_size=2, progress=False, curves=False)
    r = evaluate_model(model, list(zip(x, y)), cfg, num_classes=NUM_CLASSES, name=label)
    row = r.row()
    members = [row[a.spec.label] for a in r.attacks]
    # the greedy mIoU worst case never exceeds the clean model or any member; per image, the pixel-accuracy
    # worst case never exceeds the clean image (its dataset mIoU may: mIoU is not monotone in it)
    assert row["Worst-case (mIoU)"] <= min([row["Clean"], *members]) + 1e-9
    for rec in r.per_image:
        assert min(rec[f"{a.spec.label}_acc"] for a in r.attacks) >= 0
        worst = rec["clean_acc"] if rec["worst_attack"] == "Clean" else rec[f"{rec['worst_attack']}_acc"]
        assert worst <= rec["clean_acc"] + 1e-12
