"""Attacks, adversarial training and evaluation on real third-party model classes and layouts (issue 11).

- A tiny, randomly initialised Hugging Face ``SegformerForSemanticSegmentation`` (no download): a
  ``SemanticSegmenterOutput`` whose ``.logits`` are at 1/4 of the input resolution, with dropout and
  stochastic depth that make train mode differ from eval mode.
- A torchvision-style model (DeepLabV3 / FCN with ``aux_loss=True``): ``backbone``, ``classifier``,
  ``aux_classifier`` registered in that order, both heads run in eval, output ``{"out", "aux"}``.
- An mmseg-style ``EncoderDecoder``: ``backbone``, ``decode_head`` (final ``conv_seg``) and an
  ``auxiliary_head`` registered last that only runs in train mode.

The two layouts are written here (torchvision and mmseg are not test dependencies); what matters to the
library is their module registration order and which heads run, which is what they reproduce.
"""
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastsegadv.attacks import ATTACKS, FeatureHook, extract_logits, objectives, rp_pgd
from fastsegadv.attacks.registry import SINGLE_STEP
from fastsegadv.evaluation import EvalConfig, evaluate_model
from fastsegadv.training.at_batch import adversarial_batch, adversarial_training_loss

EPS = 8 / 255
NUM_CLASSES = 5
H = W = 32
IGNORE_ROWS = slice(10, 13)  # an ignore stripe (label 255) across every image


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------

def make_segformer(seed: int = 3) -> nn.Module:
    """A tiny random SegFormer (2 encoder stages, 8/16 channels, one block each), 5 classes, in train mode
    with its BatchNorm statistics moved off their defaults. Input ``[B, 3, 32, 32]`` -> logits
    ``[B, 5, 8, 8]``. ``initializer_range=0.2`` (default 0.02) so the random logits are not all ~0
    (std ~0.4 instead of ~3e-4) and attacks have predictions to flip."""
    # transformers is a test dependency (pyproject [test]); imported here so the layout tests below run
    # without it
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    config = SegformerConfig(
        num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
        patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2],
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, classifier_dropout_prob=0.1,
        drop_path_rate=0.1, decoder_hidden_size=16, num_labels=NUM_CLASSES, initializer_range=0.2,
        semantic_loss_ignore_index=255,
    )
    model = SegformerForSemanticSegmentation(config).train()
    with torch.no_grad():  # non-default running statistics in decode_head.batch_norm
        for _ in range(2):
            model(torch.rand(4, 3, H, W))
    return model


def make_batch(seed: int = 2, n: int = 2):
    """Images ``[n, 3, 32, 32]`` in [0, 1] and random labels ``[n, 32, 32]`` with an ignore stripe."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, H, W, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (n, H, W), generator=g)
    labels[:, IGNORE_ROWS] = 255
    return images, labels


@torch.no_grad()
def full_res_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]``: the model's logits (any output type) upsampled to the images' resolution."""
    logits = extract_logits(model(images))
    return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def predicted_labels(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]``: the model's own clean prediction (eval mode) with the ignore stripe, so clean pixel
    accuracy is 1 and anything an attack flips shows."""
    was_training = model.training
    model.eval()
    labels = full_res_logits(model, images).argmax(1)
    model.train(was_training)
    labels[:, IGNORE_ROWS] = 255
    return labels


def forward_hooks(model: nn.Module) -> dict:
    """``{module name: [hook ids]}`` of the forward hooks on the model (Hugging Face v5 models carry their
    own output-capturing hooks, so "no hooks" is not the test; "the same hooks as before" is)."""
    return {n: list(m._forward_hooks) for n, m in model.named_modules() if m._forward_hooks}


def snapshot(model: nn.Module) -> dict:
    """Everything an attack must leave as it was: every module's training flag, every parameter's values
    and requires_grad, every buffer, the forward hooks."""
    return {
        "hooks": forward_hooks(model),
        "modes": {n: m.training for n, m in model.named_modules()},
        "flags": {n: p.requires_grad for n, p in model.named_parameters()},
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "buffers": {n: b.detach().clone() for n, b in model.named_buffers()},
    }


def assert_untouched(model: nn.Module, before: dict) -> None:
    """The model is as :func:`snapshot` found it, and no weight gradient was accumulated."""
    after = snapshot(model)
    assert after["hooks"] == before["hooks"], "forward hooks added or removed"
    assert after["modes"] == before["modes"], "module training flags changed"
    assert after["flags"] == before["flags"], "parameter requires_grad flags changed"
    for kind in ("params", "buffers"):
        assert after[kind].keys() == before[kind].keys()
        for name, value in before[kind].items():
            assert torch.equal(after[kind][name], value), f"{kind[:-1]} {name} changed"
    assert all(p.grad is None for p in model.parameters()), "the attack left weight gradients behind"


def attack_kwargs(name: str) -> dict:
    """Small-budget arguments for every registered attack (2 iterations where there are iterations)."""
    if name in SINGLE_STEP:
        return {"eps": EPS}
    if name == "bim_l2":  # its own ℓ2 radius and step
        return {"eps": 1.0, "alpha": 0.25, "steps": 2}
    if name in ("cw_l2", "deepfool"):  # minimal-perturbation attacks: bounded here so the test can check it
        return {"steps": 2, "max_norm": 1.0}
    if name == "apgd":  # sets its own step size
        return {"eps": EPS, "steps": 2}
    if name in ("sea", "sea_apgd", "tsallis_pgd"):  # own step size; one iteration per radius stage at least
        return {"eps": EPS, "steps": 3}
    if name == "pixel_subset_ifgsm":
        return {"eps": EPS, "alpha": 2 / 255, "steps": 2, "num_pixels": 100}
    return {"eps": EPS, "alpha": 2 / 255, "steps": 2}


def l2_bound(name: str) -> float | None:
    """The ℓ2 radius of the ℓ2 attacks above; None for the ℓ∞ attacks (bounded by EPS)."""
    return {"bim_l2": 1.0, "cw_l2": 1.0, "deepfool": 1.0}.get(name)


def spy_prototype_features(monkeypatch, classifier: nn.Module) -> list:
    """Record, for every call of RP-PGD's prototype loss, whether the features it got are the very tensor
    ``classifier`` received as input in the forward just run (a forward hook, left on the throw-away
    model, keeps the inputs; register it before taking a :func:`snapshot`)."""
    inputs, calls = [], []
    classifier.register_forward_hook(lambda module, args, output: inputs.append(args[0]))
    real = objectives.prototype_loss

    def spy(features, *args, **kwargs):
        calls.append(bool(inputs) and features is inputs[-1])
        return real(features, *args, **kwargs)

    monkeypatch.setattr(objectives, "prototype_loss", spy)
    return calls


# --------------------------------------------------------------------------------------------------------
# Hugging Face SegFormer
# --------------------------------------------------------------------------------------------------------

@pytest.fixture
def segformer():
    return make_segformer()


@pytest.fixture
def seg_batch():
    return make_batch()


def test_segformer_fixture_is_what_the_other_tests_assume(segformer, seg_batch):
    """The premises of the SegFormer tests: the output is a ``SemanticSegmenterOutput`` (a Mapping with only
    ``logits`` set) whose logits are ``[B, 5, 8, 8]`` (1/4 of 32x32); a positional call equals the
    ``pixel_values=`` call (attacks call ``model(x)``); ``extract_logits`` finds ``.logits``; and train mode
    is stochastic (dropout / drop path) while eval mode is not, so restoring modes is observable."""
    x, _ = seg_batch  # [2, 3, 32, 32]
    model = segformer.eval()
    with torch.no_grad():
        out = model(x)
        keyword = model(pixel_values=x)
    assert type(out).__name__ == "SemanticSegmenterOutput"
    assert out.logits.shape == (2, NUM_CLASSES, H // 4, W // 4)
    assert torch.equal(out.logits, keyword.logits)
    assert extract_logits(out) is out.logits
    assert out.logits.std() > 0.05, "random logits are degenerate; the attack tests would test nothing"
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x).logits, model(x).logits), "train mode should be stochastic (dropout)"


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_on_segformer(name, mode, segformer, seg_batch):
    """Every registered attack on SegFormer: adversarial images ``[2, 3, 32, 32]`` in [0, 1] within the
    budget (ℓ∞ EPS, or the ℓ2 radius of the ℓ2 attacks), deterministic for a seed when the model was in
    train mode (the attack runs in eval mode, dropout off; in train mode two runs differ), and the model
    exactly as before:
    every module's training flag (train or eval before the attack), parameters and their requires_grad
    (one is frozen, as in fine-tuning), BatchNorm buffers, no weight gradients."""
    x, y = seg_batch  # [2, 3, 32, 32], [2, 32, 32]
    model = segformer.train(mode == "train")
    if mode == "train":
        next(model.parameters()).requires_grad_(False)  # a frozen layer: its flag must stay off
    before = snapshot(model)
    kwargs = attack_kwargs(name)
    adv = ATTACKS[name](model, x, y, seed=0, **kwargs)
    assert_untouched(model, before)
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - x).flatten(1)  # [2, 3072]
    bound = l2_bound(name)
    if bound is None:
        assert (delta.abs().amax(1) <= EPS + 1e-6).all()
    else:
        assert (delta.norm(dim=1) <= bound + 1e-4).all()
    if name not in ("cw_l2", "deepfool"):  # these keep the clean image when no iterate misclassifies more
        assert (adv != x).any(), "the attack did nothing"
    if mode == "train":  # dropout and drop path are live in train mode: a second run only matches in eval
        again = ATTACKS[name](model, x, y, seed=0, **kwargs)
        assert torch.equal(adv, again), "not deterministic for a seed: did the attack run in train mode?"
        assert_untouched(model, before)


def test_feature_hook_resolves_segformer_classifier(segformer, seg_batch):
    """``FeatureHook(model)`` with no layer watches every Conv2d of SegFormer (patch embeddings, sequence
    reduction, depth-wise convs, linear_fuse, classifier) and, given the logits of that forward, picks the
    one that produced them: ``decode_head.classifier``; its features are the classifier's input
    ``[2, 16, 8, 8]`` (decoder_hidden_size channels at 1/4 resolution); the hooks go away on exit."""
    x, _ = seg_batch
    model = segformer.eval()
    hooks = forward_hooks(model)
    with FeatureHook(model) as h:
        out = model(x.clone().requires_grad_())
        name = h.resolve(out.logits)
        assert name == "decode_head.classifier"
        assert h.module is model.decode_head.classifier
        assert h.features.shape == (2, 16, H // 4, W // 4)
        # after resolve only the classifier is watched: one hook more than the model's own, there
        now = forward_hooks(model)
        assert len(now.pop("decode_head.classifier")) == 1 and now == hooks
        h.features = None
        with torch.no_grad():  # a later forward is captured by that hook
            model(x)
        assert h.features.shape == (2, 16, H // 4, W // 4)
    assert forward_hooks(model) == hooks, "FeatureHook left hooks on the model"


def test_rp_pgd_default_feature_layer_on_segformer(monkeypatch, segformer, seg_batch):
    """RP-PGD with ``feature_layer=None`` on SegFormer (many Conv2d's in the encoder, Hugging Face's own
    output-capturing hooks on the model, logits in a ``SemanticSegmenterOutput``): the prototype term reads
    the input of ``decode_head.classifier`` at every step, and the attack is a
    valid ℓ∞ perturbation that leaves the model untouched."""
    x, y = seg_batch
    model = segformer.eval()
    calls = spy_prototype_features(monkeypatch, model.decode_head.classifier)
    before = snapshot(model)
    adv = rp_pgd(model, x, y, eps=EPS, alpha=2 / 255, steps=3, seed=0)  # beta=0.75: prototype term on
    assert calls == [True] * 3, "the prototype features were not the classifier's input"
    assert adv.shape == x.shape and (adv - x).abs().max() <= EPS + 1e-6 and (adv != x).any()
    assert_untouched(model, before)


def test_pgd_weakens_segformer(segformer, seg_batch):
    """Strength on a real model: against its own clean prediction as labels (clean pixel accuracy 1),
    PGD (eps 8/255, 5 steps of 2/255) raises the cross-entropy over the valid pixels and flips a clear
    share of them (about a third on this tiny random model; asserted: at least 5%)."""
    x, _ = seg_batch
    model = segformer.eval()
    y = predicted_labels(model, x)  # [2, 32, 32]
    adv = ATTACKS["pgd"](model, x, y, eps=EPS, alpha=2 / 255, steps=5, seed=0)
    clean, attacked = full_res_logits(model, x), full_res_logits(model, adv)  # [2, 5, 32, 32]
    valid = y != 255
    ce_clean = F.cross_entropy(clean, y, ignore_index=255).item()
    ce_adv = F.cross_entropy(attacked, y, ignore_index=255).item()
    acc_clean = (clean.argmax(1) == y)[valid].float().mean().item()
    acc_adv = (attacked.argmax(1) == y)[valid].float().mean().item()
    assert acc_clean == 1.0
    assert ce_adv > ce_clean + 0.01, (ce_clean, ce_adv)
    assert acc_adv < 0.95, acc_adv


def test_adversarial_training_step_on_segformer(segformer, seg_batch):
    """One step of 001 Algorithm 2 on SegFormer in train mode (dropout and drop path live): the attacked
    half is found in eval mode (so it is the same for a seed despite the dropout), the model's flags and
    statistics are as before the attack and no weight gradient leaked from it; then the AT loss on the
    ``SemanticSegmenterOutput`` is finite, backward reaches every trainable weight and the step moves
    the weights."""
    x, y = make_batch(n=4)  # [4, 3, 32, 32], [4, 32, 32]
    model = segformer.train()
    before = snapshot(model)
    x_at, y_at, n_clean = adversarial_batch(model, x, y, attack="pgd@2", eps=EPS, alpha=2 / 255, seed=0)
    assert_untouched(model, before)
    assert n_clean == 2 and x_at.shape == x.shape and torch.equal(y_at, y)
    assert torch.equal(x_at[:2], x[:2]) and not torch.equal(x_at[2:], x[2:])
    assert (x_at - x).abs().max() <= EPS + 1e-6
    again, _, _ = adversarial_batch(model, x, y, attack="pgd@2", eps=EPS, alpha=2 / 255, seed=0)
    assert torch.equal(x_at, again)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    out = model(x_at)  # SemanticSegmenterOutput, logits [4, 5, 8, 8]
    loss = adversarial_training_loss(out, y_at, n_clean=n_clean)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    assert model.training and all(m.training for m in model.modules())
    assert not torch.equal(model.decode_head.classifier.weight, before["params"]["decode_head.classifier.weight"])


def test_evaluation_harness_on_segformer(segformer):
    """``evaluate_model`` on SegFormer over 4 images ``[3, 32, 32]`` labelled with the model's own clean
    prediction (plus an ignore stripe), attacks PGD2 and SegPGD2: a table with finite mIoUs, clean 100%,
    each attack at or below clean and clearly below it, the worst case no better than any attack, and the
    cost columns counting SegFormer's forwards (2 attack iterations + 1 evaluation forward per image)."""
    images, _ = make_batch(seed=5, n=4)
    labels = predicted_labels(segformer, images)
    dataset = list(zip(images, labels))  # map-style (image [3, H, W], label [H, W])
    cfg = EvalConfig(attacks=["pgd@2", "segpgd@2"], batch_size=2, progress=False)
    result = evaluate_model(segformer, dataset, cfg, num_classes=NUM_CLASSES, name="segformer")
    row = result.row()
    assert list(row)[:4] == ["model", "Clean", "PGD2", "SegPGD2"]
    values = {k: v for k, v in row.items() if k != "model"}
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values()), row
    assert row["Clean"] == pytest.approx(100.0)
    for label in ("PGD2", "SegPGD2"):
        assert row[label] <= row["Clean"] + 1e-6
        assert row[label] < row["Clean"] - 5, row
    assert row["Worst-case"] <= min(row["PGD2"], row["SegPGD2"]) + 1e-6
    details = {d["attack"]: d for d in result.details()}
    assert details["PGD2"]["forwards_per_image"] == 3 and details["PGD2"]["backwards_per_image"] == 2


# --------------------------------------------------------------------------------------------------------
# torchvision layout: backbone, classifier, aux_classifier (registered last, runs in eval)
# --------------------------------------------------------------------------------------------------------


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def fcn_head(cin: int, channels: int, num_classes: int) -> nn.Sequential:
    """torchvision's ``FCNHead``, flat: conv-BN-ReLU-dropout-conv, so the final conv is ``<head>.4`` (as in
    torchvision's FCN and DeepLabV3 heads)."""
    return nn.Sequential(
        nn.Conv2d(cin, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Conv2d(channels, num_classes, 1),
    )


class TorchvisionStyleBackbone(nn.Module):
    """Like torchvision's ``IntermediateLayerGetter``: ``{"aux": layer3-like [B, 8, H/4, W/4],
    "out": layer4-like [B, 16, H/4, W/4]}``."""

    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(conv_bn_relu(3, 8, 2), conv_bn_relu(8, 8, 2))
        self.layer2 = conv_bn_relu(8, 16)

    def forward(self, x):
        aux = self.layer1(x)
        return OrderedDict(aux=aux, out=self.layer2(aux))


class TorchvisionStyleSegmenter(nn.Module):
    """The layout of torchvision's ``deeplabv3_*`` / ``fcn_*`` with ``aux_loss=True``: submodules registered
    as ``backbone``, ``classifier``, ``aux_classifier`` (an FCNHead: conv-BN-ReLU-dropout-conv), both heads
    run in eval, forward -> ``{"out": [B, 5, H, W], "aux": [B, 5, H, W]}`` (upsampled bilinearly)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.backbone = TorchvisionStyleBackbone()
        self.classifier = fcn_head(16, 12, num_classes)
        self.aux_classifier = fcn_head(8, 6, num_classes)

    def forward(self, x):
        size = x.shape[-2:]
        features = self.backbone(x)
        out = OrderedDict()
        out["out"] = F.interpolate(self.classifier(features["out"]), size=size, mode="bilinear", align_corners=False)
        out["aux"] = F.interpolate(
            self.aux_classifier(features["aux"]), size=size, mode="bilinear", align_corners=False
        )
        return out


@pytest.fixture
def torchvision_model():
    torch.manual_seed(4)
    return TorchvisionStyleSegmenter().eval()


def test_feature_hook_picks_main_classifier_not_aux_torchvision(torchvision_model):
    """Both heads run and ``aux_classifier`` is registered (and runs) last, yet the Conv2d that produced
    ``out`` is ``classifier.4`` (the main head's final 1x1 conv); its features are ``[2, 12, 8, 8]``, not
    the aux head's ``[2, 6, 8, 8]``."""
    model = torchvision_model
    assert [n for n, _ in model.named_children()] == ["backbone", "classifier", "aux_classifier"]
    x, _ = make_batch()
    with FeatureHook(model) as h:
        out = model(x.clone().requires_grad_())
        assert set(out) == {"out", "aux"}
        assert h.resolve(extract_logits(out)) == "classifier.4"
        assert h.module is model.classifier[-1]
        assert h.features.shape == (2, 12, H // 4, W // 4)


def test_rp_pgd_on_torchvision_layout_uses_main_classifier_features(monkeypatch, torchvision_model):
    """RP-PGD (default beta=0.75, feature_layer=None) on the torchvision layout: every prototype-loss call
    gets the input of the main classifier's final conv (not the aux head's), the result is within the ℓ∞
    budget and differs from the images, and the model (eval mode before) is untouched."""
    model = torchvision_model
    x, y = make_batch()
    calls = spy_prototype_features(monkeypatch, model.classifier[-1])
    before = snapshot(model)
    adv = rp_pgd(model, x, y, eps=EPS, alpha=2 / 255, steps=2, seed=0)
    assert calls == [True, True]
    assert adv.shape == x.shape and 0 <= adv.min() and adv.max() <= 1
    assert (adv - x).abs().max() <= EPS + 1e-6 and (adv != x).any()
    assert_untouched(model, before)


# --------------------------------------------------------------------------------------------------------
# mmseg layout: backbone, decode_head (conv_seg), auxiliary_head registered last and run only in training
# --------------------------------------------------------------------------------------------------------


class MMSegStyleHead(nn.Module):
    """mmseg's ``BaseDecodeHead`` shape: convs, dropout, then the classifier ``conv_seg``."""

    def __init__(self, cin: int, channels: int, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.convs = conv_bn_relu(cin, channels)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        return self.conv_seg(self.dropout(self.convs(x)))


class MMSegStyleEncoderDecoder(nn.Module):
    """The layout of mmseg's ``EncoderDecoder``: ``backbone``, ``decode_head``, ``auxiliary_head`` registered
    last. Eval forward (mmseg's ``encode_decode`` without the resize): decode_head logits only,
    ``[B, 5, H/4, W/4]``; the auxiliary head does not run. Train forward: ``(logits, aux_logits)``."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.backbone = nn.Sequential(conv_bn_relu(3, 8, 2), conv_bn_relu(8, 16, 2))
        self.decode_head = MMSegStyleHead(16, 12, num_classes)
        self.auxiliary_head = MMSegStyleHead(16, 6, num_classes)

    def forward(self, x):
        feats = self.backbone(x)  # [B, 16, H/4, W/4]
        logits = self.decode_head(feats)
        if self.training:
            return logits, self.auxiliary_head(feats)
        return logits


@pytest.fixture
def mmseg_model():
    torch.manual_seed(5)
    return MMSegStyleEncoderDecoder().eval()


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_feature_hook_resolves_mmseg_conv_seg(mode, mmseg_model):
    """In eval (aux head idle) and in train (aux head runs after the decode head), the Conv2d that produced
    the main logits ``[2, 5, 8, 8]`` is ``decode_head.conv_seg``, never ``auxiliary_head.conv_seg``."""
    model = mmseg_model.train(mode == "train")
    x, _ = make_batch()
    with FeatureHook(model) as h:
        out = model(x.clone().requires_grad_())
        assert isinstance(out, tuple) == (mode == "train")
        assert extract_logits(out).shape == (2, NUM_CLASSES, H // 4, W // 4)
        assert h.resolve(extract_logits(out)) == "decode_head.conv_seg"
        assert h.features.shape == (2, 12, H // 4, W // 4)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_rp_pgd_default_feature_layer_on_mmseg_layout(mode, monkeypatch, mmseg_model):
    """RP-PGD with the default ``feature_layer`` on the mmseg layout, the model in eval or train mode before
    (the attack runs in eval, where ``auxiliary_head`` never runs; this used to die with ``AttributeError:
    'NoneType' object has no attribute 'dim'``): the prototype features are ``decode_head.conv_seg``'s
    input at every step, the result is a valid ℓ∞ perturbation and the model is untouched."""
    model = mmseg_model.train(mode == "train")
    x, y = make_batch()
    calls = spy_prototype_features(monkeypatch, model.decode_head.conv_seg)
    before = snapshot(model)
    adv = rp_pgd(model, x, y, eps=EPS, alpha=2 / 255, steps=2, seed=0)
    assert calls == [True, True]
    assert adv.shape == x.shape and 0 <= adv.min() and adv.max() <= 1
    assert (adv - x).abs().max() <= EPS + 1e-6 and (adv != x).any()
    assert_untouched(model, before)


def test_rp_pgd_on_mmseg_layout_with_train_mode_forward(mmseg_model):
    """``eval_mode=False`` runs the train-mode forward, where the auxiliary head (registered last) also
    runs and the output is a tuple: the default feature layer is still the decode head's, and the
    BatchNorm statistics the train-mode forwards touched are restored."""
    model = mmseg_model.train()
    x, y = make_batch()
    before = snapshot(model)
    adv = rp_pgd(model, x, y, eps=EPS, alpha=2 / 255, steps=2, seed=0, eval_mode=False)
    assert adv.shape == x.shape and (adv - x).abs().max() <= EPS + 1e-6 and (adv != x).any()
    assert_untouched(model, before)


@pytest.mark.parametrize("layer", ["auxiliary_head.conv_seg", "no_such_head.conv_seg"])
def test_rp_pgd_feature_layer_that_does_not_run_is_a_clear_error(layer, mmseg_model):
    """A ``feature_layer`` that does not run in the (eval) forward, ``auxiliary_head.conv_seg``, or is not a
    submodule at all, is a ValueError naming ``feature_layer`` (not an AttributeError deep in the
    prototype loss), and the model is left as it was."""
    model = mmseg_model.train()
    x, y = make_batch()
    before = snapshot(model)
    with pytest.raises(ValueError, match="feature_layer"):
        rp_pgd(model, x, y, eps=EPS, alpha=2 / 255, steps=2, seed=0, feature_layer=layer)
    assert_untouched(model, before)  # including: no hook left behind
