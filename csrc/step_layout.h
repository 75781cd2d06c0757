// Layout rule of fastsegadv::linf_step (CPU and CUDA): the output keeps x's layout. channels_last when x
// is a dense channels_last 4-D tensor (and not also NCHW-contiguous), else NCHW; the three inputs are
// made dense in that layout and walked flat. The fake kernel (fastsegadv/_ops.py) applies the same rule.
#pragma once

#include <ATen/ATen.h>

namespace fastsegadv {

inline at::MemoryFormat step_memory_format(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)
             ? at::MemoryFormat::ChannelsLast
             : at::MemoryFormat::Contiguous;
}

}  // namespace fastsegadv
