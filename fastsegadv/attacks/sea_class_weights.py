"""Fixed per-dataset class weights of SEA's class-balanced masked cross-entropy ("mask-ce-bal").

Source: F. Croce, N. D. Singh, M. Hein, "Towards Reliable Evaluation and Fast Training of Robust Semantic
Segmentation Models", ECCV 2024; released code https://github.com/nmndeep/Robust-Segmentation at commit
f8ff8e6be040daf53cce745b6be94083f98e2a5a (the arrays are unchanged since they were added in 5a1d308 "SEA/PIRAT
init"). The numbers below are copied digit for digit from ``semseg/utils/utils.py`` (blob cea5a090d0a7):
``VOC_WTS`` (lines 170-192, 21 values) and ``ADE_WTS`` (lines 16-168, 151 values). The repository stores
them as literals; it contains no code that computes them (they appear to be precomputed normalised inverse
class frequencies, but how they were obtained is not documented there).

How the released code uses them:

- Selection (``tools/infer.py`` lines 296-301): ``torch.tensor(ADE_WTS)`` if the EVAL config's dataset name,
  lower-cased, is ``"ade20k"``, otherwise ``torch.tensor(VOC_WTS)`` (float32). Any non-ADE20K name thus gets
  the VOC array, but ``get_data`` (lines 158-192, called at line 284, before the selection) raises
  ``ValueError("Unknown dataset.")`` for any name other than pascalvoc / pascalaug / ade20k. With a class count
  other than the array length, ``F.cross_entropy`` would raise an error. The same tensor is passed to every
  attack of the ensemble (lines 146, 353; ``semseg/attacker.py`` lines 666, 725, 347, 462), but only mask-ce-bal
  uses it.
- No normalisation at run time: the arrays are used as stored. VOC_WTS sums to exactly 1.0, ADE_WTS to
  1.0000037 (rounding of the 5-significant-digit literals).
- Per-pixel weighting (``semseg/attacker.py`` ``masked_cross_entropy_balanced``, lines 155-173, registered as
  ``"mask-ce-bal"`` at line 255): ``F.cross_entropy(logits, y, reduction="none", ignore_index=-1,
  weight=weights)``, i.e. pixel i gets ``w[y_i] * CE_i`` (weight of its ground-truth class, not renormalised
  because reduction is "none"), times the detached mask ``(argmax logits == y) & (y != -1)`` of correctly
  classified pixels.
- Reduction: the attack calls it with reduction "none"; ``pixel_to_img_loss`` (lines 237-240) multiplies by
  ``(y != -1)`` and takes the mean over all H*W pixels of each image (divided by H*W, not by the number of
  correct pixels nor by the sum of weights); the per-image values are summed over the batch before the
  gradient (lines 347-350 and 462-469). The APGD step-size / best-iterate bookkeeping uses the unweighted
  ``track_loss="ce-avg"`` (``tools/infer.py`` line 347), so the weights only shape the gradient.

Label conventions of the released code: Pascal VOC has 21 classes (0 = background, boundary label 255 is mapped
to 0 in ``semseg/datasets/pascal_voc.py`` line 116; ignore index -1). ADE20K is used with 151 classes
(``configs/ade20k_*.yaml`` ``N_CLS: 151``; ``semseg/datasets/ade.py`` offset 0, so the raw annotation value is
the label and 0, 'other', is a class the models predict; README: "the models are trained including the
background class for both VOC and ADE20K"). Hence ``ADE20K_CLASS_WEIGHTS[k]`` is the weight of raw ADE20K label
k, k = 0..150. For the 150-class convention (raw 0 ignored, raw k -> class k - 1) the matching weights are
``ADE20K_CLASS_WEIGHTS[1:]`` (not renormalised; they sum to 1 - 2.5511e-05).
"""

from __future__ import annotations

# Index = class label: 0 = background, 1..20 = the VOC object classes (semseg/utils/utils.py lines 170-192).
VOC_CLASS_WEIGHTS: tuple[float, ...] = (
    0.0007, 0.0531, 0.1394, 0.0500, 0.0814, 0.0575, 0.0256,
    0.0312, 0.0198, 0.0626, 0.0382, 0.0457, 0.0212, 0.0404,
    0.0421, 0.0089, 0.0915, 0.0585, 0.0366, 0.0279, 0.0677,
)

# Index = raw ADE20K annotation value 0..150 (0 = 'other'); 151 values (semseg/utils/utils.py lines 16-168).
ADE20K_CLASS_WEIGHTS: tuple[float, ...] = (
    2.5511e-05, 3.6983e-05, 4.7570e-05, 6.6522e-05, 1.1128e-04, 1.0635e-04, 1.6683e-04, 1.7398e-04,
    2.2595e-04, 2.6104e-04, 3.4525e-04, 3.2680e-04, 4.6724e-04, 2.7333e-04, 3.8664e-04, 5.1101e-04,
    4.6147e-04, 2.8707e-04, 4.8777e-04, 5.6734e-04, 5.2263e-04, 5.7571e-04, 7.9284e-04, 7.1656e-04,
    9.8619e-04, 7.3393e-04, 6.0752e-04, 6.0696e-04, 1.0648e-03, 1.5916e-03, 7.4704e-04, 1.3956e-03,
    1.0427e-03, 1.6245e-03, 1.3812e-03, 1.2803e-03, 1.5659e-03, 2.3384e-03, 2.6498e-03, 2.1948e-03,
    1.9984e-03, 2.1434e-03, 2.2654e-03, 2.3339e-03, 2.6016e-03, 2.9368e-03, 2.4439e-03, 2.5844e-03,
    2.3346e-03, 1.0170e-03, 2.7078e-03, 3.7222e-03, 3.0739e-03, 3.0697e-03, 5.0181e-03, 4.7774e-03,
    2.0477e-03, 3.1477e-03, 2.8421e-03, 3.7206e-03, 2.5296e-03, 2.1699e-03, 2.8066e-03, 2.8080e-03,
    5.5795e-03, 4.0186e-03, 4.8758e-03, 3.5471e-03, 3.1513e-03, 3.0316e-03, 3.9002e-03, 5.0847e-03,
    4.8401e-03, 5.9311e-03, 5.3158e-03, 5.0188e-03, 4.0362e-03, 4.4585e-03, 5.2076e-03, 4.4833e-03,
    5.5491e-03, 5.7523e-03, 5.5545e-03, 8.7588e-03, 5.0301e-03, 5.4497e-03, 7.6726e-03, 5.1451e-03,
    7.9943e-03, 4.4696e-03, 7.4416e-03, 6.7389e-03, 7.8750e-03, 5.5496e-03, 1.2515e-02, 5.1635e-03,
    8.1806e-03, 9.9495e-03, 1.0522e-02, 6.0337e-03, 1.1848e-02, 1.0531e-02, 6.0837e-03, 8.0876e-03,
    1.1750e-02, 8.2409e-03, 6.8528e-03, 8.1382e-03, 8.7929e-03, 7.6437e-03, 5.7786e-03, 1.3009e-02,
    1.8844e-02, 1.0949e-02, 4.2059e-03, 5.7906e-03, 1.2998e-02, 1.4171e-02, 7.0287e-03, 9.0963e-03,
    1.0115e-02, 1.0510e-02, 1.3813e-02, 1.2319e-02, 1.4154e-02, 1.5693e-02, 1.5035e-02, 1.1120e-02,
    1.6888e-02, 7.3436e-03, 1.4521e-02, 9.3029e-03, 1.4782e-02, 1.1918e-02, 1.7509e-02, 2.0762e-02,
    1.4547e-02, 2.0312e-02, 1.0543e-02, 1.8876e-02, 3.6659e-02, 2.0046e-02, 2.2035e-02, 1.4011e-02,
    1.5645e-02, 1.1985e-02, 1.0001e-02, 2.7073e-02, 2.1668e-02, 1.8419e-02, 2.1877e-02,
)

SEA_CLASS_WEIGHTS = {"voc": VOC_CLASS_WEIGHTS, "ade20k": ADE20K_CLASS_WEIGHTS}


def dataset_class_weights(name: str, num_classes: int) -> tuple[float, ...]:
    """SEA's weights of dataset ``name`` (``"voc"`` or ``"ade20k"``) for a model with ``num_classes``
    outputs: VOC's 21 as published; ADE20K's 151 for the released 151-class convention, or its last 150
    for the 150-class one (raw label 0 ignored, raw k -> class k - 1, as ``fastsegadv.datasets.ade20k``)."""
    if name not in SEA_CLASS_WEIGHTS:
        raise ValueError(f"SEA's class weights exist for {sorted(SEA_CLASS_WEIGHTS)}, not {name!r}")
    weights = SEA_CLASS_WEIGHTS[name]
    if name == "ade20k" and num_classes == len(weights) - 1:
        weights = weights[1:]
    if num_classes != len(weights):
        raise ValueError(f"SEA's {name} weights are for {len(weights)} classes; the model has {num_classes}")
    return weights
