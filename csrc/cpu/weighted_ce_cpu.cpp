// CPU kernels of the fused weighted cross-entropy (fastsegadv::weighted_ce_forward / _backward).
//
// Work unit: one image b and a block of P consecutive pixels. The block's logits [C, P] are read
// once into a float buffer (fp16/bf16 converted, NCHW or NHWC), every class reduction runs as a loop
// over classes with an inner loop over the P pixels (contiguous, auto-vectorised), the per-pixel
// weight comes from weighting.h, and the gradient is written in one more sweep of the buffer.
// Blocks are independent (at::parallel_for); per-block statistics are summed in a fixed order.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <vector>

#include "../input_checks.h"
#include "block_stage.h"

namespace fastsegadv {
namespace {

using cpu::BlockReductions;
using cpu::PassInputs;
using cpu::PassOutputs;
using cpu::PixelStage;
using cpu::reduce_loaded;

// Ask for transparent huge pages on a large, not yet touched output buffer: its first touch then
// faults ~20 times per 40 MB instead of ~10 000 (THP "madvise" mode). Advisory; no-op elsewhere.
void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = begin + t.numel() * t.element_size();
  const uintptr_t a = (begin + kHuge - 1) & ~(kHuge - 1), e = end & ~(kHuge - 1);
  if (e > a + kHuge) madvise(reinterpret_cast<void*>(a), e - a, MADV_HUGEPAGE);
#else
  (void)t;
#endif
}

struct Geometry {
  int64_t B, C, HW;
  int64_t sb, sc, sp;  // strides of image, class and pixel (NCHW: C*HW, HW, 1; NHWC: HW*C, 1, C)
  int64_t P, nblk;     // pixels per block, blocks per image
};

Geometry geometry(const at::Tensor& z) {
  Geometry g;
  g.B = z.size(0);
  g.C = z.size(1);
  g.HW = z.size(2) * z.size(3);
  g.sb = z.stride(0);
  g.sc = z.stride(1);
  g.sp = z.stride(3);
  g.P = std::max<int64_t>(16, std::min<int64_t>(256, 8192 / g.C));
  g.nblk = (g.HW + g.P - 1) / g.P;
  return g;
}

// Read the block's logits [C, n] (fp16/bf16 converted, NCHW or NHWC) into r.buf, planar.
template <typename scalar_t>
void load_block(const scalar_t* z, const Geometry& g, int64_t p0, int64_t n, BlockReductions& r) {
  const int64_t C = g.C, P = g.P;
  float* __restrict__ buf = r.buf.data();
  // load [C, n] as float, planar
  if (g.sp == 1) {
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t* __restrict__ src = z + c * g.sc + p0;
      float* __restrict__ dst = buf + c * P;
      for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<float>(src[j]);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const scalar_t* src = z + (p0 + j) * g.sp;
      for (int64_t c = 0; c < C; ++c) buf[c * P + j] = static_cast<float>(src[c * g.sc]);
    }
  }
}


// Write the block's gradient rows into the output (same strides as the logits), image b, pixels p0 .. p0 + n.
template <typename out_t>
void write_block(PixelStage& ps, const BlockReductions& r, const Geometry& g, int64_t n, out_t* out, int64_t b,
                 int64_t p0, bool weight_grad) {
  for (int64_t c = 0; c < g.C; ++c) {
    const float* __restrict__ gv = ps.gradient_row(r, g.P, n, c, weight_grad);
    if (g.sp == 1) {
      out_t* __restrict__ dst = out + b * g.sb + c * g.sc + p0;
      for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<out_t>(gv[j]);
    }
  }
  if (g.sp != 1) {  // channels_last: each pixel's C gradients are contiguous
    for (int64_t j = 0; j < n; ++j) {
      out_t* dst = out + b * g.sb + (p0 + j) * g.sp;
      for (int64_t c = 0; c < g.C; ++c) dst[c * g.sc] = static_cast<out_t>(ps.gbuf[c * g.P + j]);
    }
  }
}

// One pass over the blocks (forward and backward share it).
template <typename scalar_t, typename out_t>
void run_blocks(const PassInputs<scalar_t>& in, const PassOutputs<out_t>& out, const Geometry& g) {
  at::parallel_for(0, g.B * g.nblk, 1, [&](int64_t begin, int64_t end) {
    const FlushDenormals ftz;
    BlockReductions r(g.C, g.P);
    PixelStage ps(g.C, g.P, out.grad != nullptr);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / g.nblk, p0 = (task % g.nblk) * g.P, n = std::min(g.P, g.HW - p0);
      const int64_t i0 = b * g.HW + p0;
      load_block(in.logits + b * g.sb, g, p0, n, r);
      reduce_loaded(in.labels + i0, g.C, g.P, n, in.flags, in.ignore_index, r);
      ps.load_inputs(in.region_state, in.k_pixel, in.k_scalar, i0, n);
      ps.compute(r, n, static_cast<int>(g.C), in.flags, in.params);
      ps.store_outputs(r, out.region_state, out.loss, out.block_stats ? out.block_stats + task * NUM_STATS : nullptr,
                       in.region_state != nullptr, i0, n, out.prediction);
      if (out.grad) write_block(ps, r, g, n, out.grad, b, p0, has_weight_grad(in.flags));
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> weighted_ce_forward_cpu(
    const at::Tensor& logits_in, const at::Tensor& labels_in, at::Tensor& region_state, const at::Tensor& params_d,
    int64_t flags, int64_t ignore_index, bool per_pixel, bool with_grad, double grad_scale,
    const c10::optional<at::Tensor>& prediction) {
  check_fused_inputs(logits_in, labels_in, region_state, flags, params_d, /*upsample=*/false);
  const at::Tensor logits = pixel_layout(logits_in);
  const at::Tensor labels = labels_in.contiguous();
  int64_t* pred = prediction_out(prediction, labels);
  TORCH_CHECK(!(flags & FLAG_REGIONS) || region_state.is_contiguous(), "region_state must be contiguous");
  const Geometry g = geometry(logits);
  float params[NUM_PARAMS];
  cpu::float_params(params_d, params);
  const auto f32 = logits.options().dtype(at::kFloat);
  at::Tensor loss = per_pixel ? at::empty({g.B, logits.size(2), logits.size(3)}, f32) : at::empty({0}, f32);
  // grad_scale * d(sum_i loss_i)/dz in fp32, same memory format as the logits
  at::Tensor grad = with_grad ? at::empty_like(logits, f32) : at::empty({0}, f32);
  if (with_grad) advise_huge_pages(grad);
  at::Tensor partial = at::zeros({g.B, g.nblk, NUM_STATS}, logits.options().dtype(at::kDouble));
  uint8_t* st = (flags & FLAG_REGIONS) ? region_state.data_ptr<uint8_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "weighted_ce_forward_cpu", [&] {
    const PassInputs<scalar_t> in{logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), st, flags, params,
                                  ignore_index, /*k_pixel=*/nullptr, static_cast<float>(grad_scale)};
    PassOutputs<float> out;
    out.region_state = (flags & FLAG_UPDATE_STATE) ? st : nullptr;
    out.loss = per_pixel ? loss.data_ptr<float>() : nullptr;
    out.block_stats = partial.data_ptr<double>();
    out.grad = with_grad ? grad.data_ptr<float>() : nullptr;
    out.prediction = pred;
    run_blocks(in, out, g);
  });
  return {loss, partial.sum(1), grad};  // stats [B, NUM_STATS]: a fixed-order sum over blocks
}

at::Tensor weighted_ce_backward_cpu(const at::Tensor& grad_scale_in, const at::Tensor& logits_in,
                                    const at::Tensor& labels_in, const at::Tensor& region_state,
                                    const at::Tensor& params_d, int64_t flags, int64_t ignore_index) {
  check_fused_inputs(logits_in, labels_in, region_state, flags, params_d, /*upsample=*/false);
  const at::Tensor logits = pixel_layout(logits_in);
  const at::Tensor labels = labels_in.contiguous();
  const at::Tensor state = (flags & FLAG_REGIONS) ? region_state.contiguous() : region_state;
  const at::Tensor grad_scale = grad_scale_in.to(at::kFloat).contiguous();
  const bool scalar_scale = grad_scale.numel() == 1;
  TORCH_CHECK(scalar_scale || grad_scale.sizes() == labels.sizes(), "grad_scale must be a scalar or [B, H, W]");
  const Geometry g = geometry(logits);
  flags &= ~FLAG_UPDATE_STATE;  // the forward already updated the state
  float params[NUM_PARAMS];
  cpu::float_params(params_d, params);
  at::Tensor grad = at::empty_like(logits);  // same memory format as the logits
  advise_huge_pages(grad);
  const uint8_t* st = (flags & FLAG_REGIONS) ? state.data_ptr<uint8_t>() : nullptr;
  const float* gsc = grad_scale.data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "weighted_ce_backward_cpu", [&] {
    const PassInputs<scalar_t> in{logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), st, flags, params,
                                  ignore_index, scalar_scale ? nullptr : gsc, scalar_scale ? gsc[0] : 0.f};
    PassOutputs<scalar_t> out;
    out.grad = grad.data_ptr<scalar_t>();
    run_blocks(in, out, g);
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CPU, m) {
  m.impl("weighted_ce_forward", &weighted_ce_forward_cpu);
  m.impl("weighted_ce_backward", &weighted_ce_backward_cpu);
}

}  // namespace fastsegadv
