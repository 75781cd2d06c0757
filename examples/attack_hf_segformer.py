"""Attack a Hugging Face SegFormer as it is: no wrapper for its output object or its 1/4-resolution logits.

``SegformerForSemanticSegmentation`` returns an output object whose ``.logits`` are at a quarter of the
input resolution; fastsegadv's attacks read it directly and upsample inside the fused loss. The model here
is randomly initialised from a config (nothing downloads). A SegFormer expects normalised inputs (its
processor's mean and std) while attacks work on images in [0, 1]: wrap it once in ``NormalizedModel`` and use
the wrapped model everywhere (labels, attack, evaluation), so that the attack and the measurement see the
same function.

    python examples/attack_hf_segformer.py [--size 128 256] [--steps 10]
"""
from __future__ import annotations

import argparse

import torch
from transformers import SegformerConfig, SegformerForSemanticSegmentation

import fastsegadv as fsa


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=[128, 256], metavar=("H", "W"))
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    config = SegformerConfig(num_labels=args.classes, hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2],
                             num_attention_heads=[1, 2, 5, 8], decoder_hidden_size=256, initializer_range=0.2)
    segformer = SegformerForSemanticSegmentation(config).eval()  # MiT-b0 widths, random weights
    model = fsa.attacks.NormalizedModel(segformer, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    images = torch.rand(2, 3, *args.size)
    with torch.no_grad():  # labels: the model's own clean prediction, so the clean mIoU is 100
        labels = fsa.attacks.logits_at(model(images), args.size).argmax(1)
    before = {k: v.clone() for k, v in segformer.state_dict().items()}

    adv = fsa.attacks.segpgd(model, images, labels, eps=4 / 255, alpha=1 / 255, steps=args.steps, seed=0)
    with torch.no_grad():
        clean_pred = fsa.attacks.logits_at(model(images), args.size).argmax(1)
        adv_pred = fsa.attacks.logits_at(model(adv), args.size).argmax(1)
    assert fsa.metrics.confusion_matrix(clean_pred, labels, args.classes).miou() == 1.0
    miou = fsa.metrics.confusion_matrix(adv_pred, labels, args.classes).miou()
    assert all(torch.equal(before[k], v) for k, v in segformer.state_dict().items()), "the model changed"
    print(f"SegFormer (MiT-b0 widths, random weights), {list(images.shape)} images, logits at 1/4: "
          f"SegPGD{args.steps} at 4/255 leaves {100 * miou:.1f} % mIoU of the clean prediction; "
          f"max |delta| = {255 * (adv - images).abs().max():.2f}/255; the model is unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
