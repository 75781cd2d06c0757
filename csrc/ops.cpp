// Schemas of fastsegadv's torch ops (kernels: cpu/*.cpp, cuda/*.cu; fake tensors: fastsegadv/_ops.py).
#include <Python.h>
#include <torch/library.h>

extern "C" {
// An importable module so `import fastsegadv._C` loads the library and runs the registrations below.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(fastsegadv, m) {
  // Fused weighted cross-entropy, forward: per-pixel loss [B,H,W] fp32 (if per_pixel, else empty),
  // per-image statistics [B, 6] fp64 (loss sum, valid, correct, true, boundary, false) and, if with_grad
  // and the kernel supports it (CPU), d(sum of per-pixel losses)/dlogits in fp32 from the same pass
  // (else empty: the caller uses weighted_ce_backward), multiplied by grad_scale (e.g. 1/N_v for a mean).
  // Updates the RP-PGD region state in place. params: fp32 [6] (w_correct, w_wrong, lambda_T, lambda_B,
  // lambda_F, tau) on the logits' device (or the CPU), read by the kernels, so a CUDA-graph replay sees new values.
  // prediction (optional, int64 [B,H,W] like the labels): receives each pixel's argmax from the same pass.
  m.def(
      "weighted_ce_forward(Tensor logits, Tensor labels, Tensor(a!) region_state, Tensor params, int flags, "
      "int ignore_index, bool per_pixel, bool with_grad, float grad_scale, Tensor(b!)? prediction=None) "
      "-> (Tensor, Tensor, Tensor)");
  // Backward: dL/dlogits (logits' dtype and memory format) for an upstream scale that is a scalar
  // (mean: g/N_v, sum: g) or per pixel [B,H,W] (reduction none). Recomputes from the logits.
  m.def(
      "weighted_ce_backward(Tensor grad_scale, Tensor logits, Tensor labels, Tensor region_state, Tensor params, "
      "int flags, int ignore_index) -> Tensor");
  // Masked per-class feature sums (RP-PGD prototypes, 003 Eq. 5): sums [B, K, d] fp32 and counts [B, K]
  // fp32 over the pixels where mask is true; the backward gathers dL/dsums back to the pixels.
  m.def("masked_class_sums(Tensor features, Tensor labels, Tensor mask, int num_classes) -> (Tensor, Tensor)");
  m.def("masked_class_sums_backward(Tensor grad_sums, Tensor features, Tensor labels, Tensor mask) -> Tensor");
  // Label check and count in one pass: int64 [2] = (pixels with label != ignore_index, of those the labels
  // outside [0, num_classes)). CPU kernel; elsewhere fastsegadv/_ops.py computes it with torch ops.
  m.def("label_counts(Tensor labels, int num_classes, int ignore_index) -> Tensor");
  // ℓ∞ PGD update in one pass: clamp(x + clamp(x_adv + alpha * sign(grad) - x, -eps, eps), 0, 1).
  m.def("linf_step(Tensor x_adv, Tensor grad, Tensor x, float alpha, float eps) -> Tensor");
  // The weighted cross-entropy of low-resolution logits [B, C, h, w] bilinearly upsampled on the fly to
  // the labels' [B, H, W] (F.interpolate semantics, align_corners as given); same outputs as
  // weighted_ce_forward / _backward, with the gradient w.r.t. the low-resolution logits.
  m.def(
      "upsample_weighted_ce_forward(Tensor logits, Tensor labels, Tensor(a!) region_state, Tensor params, "
      "int flags, int ignore_index, bool align_corners, bool per_pixel, bool with_grad, float grad_scale) "
      "-> (Tensor, Tensor, Tensor)");
  m.def(
      "upsample_weighted_ce_backward(Tensor grad_scale, Tensor logits, Tensor labels, Tensor region_state, "
      "Tensor params, int flags, int ignore_index, bool align_corners) -> Tensor");
}
