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

}  // namespace fastsegadv
