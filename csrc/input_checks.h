// The checks every fused weighted-CE op (CPU and CUDA, plain and upsampling) makes before any work, and
// the one rule for the logits' memory layout; host code only.
#pragma once

#include <ATen/ATen.h>

#include "weighting.h"

namespace fastsegadv {

// NCHW-contiguous or channels_last logits both flatten H*W with one pixel stride; anything else is copied.
inline at::Tensor pixel_layout(const at::Tensor& logits) {
  if (logits.is_contiguous() || logits.is_contiguous(at::MemoryFormat::ChannelsLast)) return logits;
  return logits.contiguous();
}

// logits [B, C >= 2, h, w]; labels int64 [B, H, W] on the logits' device, at the logits' resolution unless
// `upsample`; params [NUM_PARAMS]; with FLAG_REGIONS a uint8 region state shaped like the labels, on their device.
inline void check_fused_inputs(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& state,
                               int64_t flags, const at::Tensor& params, bool upsample) {
  TORCH_CHECK(logits.dim() == 4 && logits.size(1) >= 2, "logits must be [B, C >= 2, h, w]");
  TORCH_CHECK(labels.dim() == 3 && labels.size(0) == logits.size(0), "labels must be [B, H, W] with the logits' B");
  TORCH_CHECK(upsample || (labels.size(1) == logits.size(2) && labels.size(2) == logits.size(3)),
              "labels must be [B, H, W] matching the logits");
  TORCH_CHECK(labels.scalar_type() == at::kLong, "labels must be int64");
  TORCH_CHECK(labels.device() == logits.device(), "labels must be on the logits' device");
  TORCH_CHECK(params.numel() == NUM_PARAMS, "params must have ", NUM_PARAMS, " entries");
  if (flags & FLAG_REGIONS) {
    TORCH_CHECK(state.scalar_type() == at::kByte && state.sizes() == labels.sizes(),
                "region_state must be uint8 [B, H, W]");
    TORCH_CHECK(state.device() == logits.device(), "region_state must be on the logits' device");
  }
}

// The optional prediction output of the forward ops: int64 [B, H, W] like the labels, on their device,
// contiguous (written in place: the per-pixel argmax of the logits, first maximum on ties).
inline int64_t* prediction_out(const c10::optional<at::Tensor>& prediction, const at::Tensor& labels) {
  if (!prediction.has_value() || !prediction->defined()) return nullptr;
  const at::Tensor& p = *prediction;
  TORCH_CHECK(p.scalar_type() == at::kLong && p.sizes() == labels.sizes() && p.device() == labels.device()
              && p.is_contiguous(), "prediction must be a contiguous int64 tensor shaped and placed like the labels");
  return p.data_ptr<int64_t>();
}

}  // namespace fastsegadv
