// CPU kernels of fastsegadv::upsample_weighted_ce_forward / _backward: the fused weighted cross-entropy
// of logits given at a lower resolution [B, C, h, w], bilinearly upsampled to the labels' [H, W] on the
// fly (as F.interpolate(mode="bilinear", align_corners=...) does), without materialising the
// upsampled logits or their gradient.
//
// Phase 1, one task per (image, output row): for each block of P pixels of the row the interpolated
// logits go into the block buffer, the class reductions and the per-pixel stage of block_stage.h run,
// and each class's gradient row is folded into this output row's share of the low-res columns
// (rowbuf[b, H-row, c, w]: the transpose of the horizontal interpolation, summed in pixel order).
// Phase 2, one task per (image, low-res row): the rows of rowbuf that touch it are added in increasing
// order with their vertical weights (the transpose of the vertical interpolation). Every sum has a fixed
// order: deterministic, no atomics. Peak extra memory: rowbuf, B*C*H*w floats (1/s of the upsampled
// logits for a scale factor s).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
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

// Source indices and weights of one axis (PyTorch's area_pixel_compute_source_index, no explicit scale).
struct Axis {
  std::vector<int32_t> i0, i1;
  std::vector<float> l0, l1;
  Axis(int64_t in, int64_t out, bool align_corners) : i0(out), i1(out), l0(out), l1(out) {
    const float scale = align_corners ? (out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.f)
                                      : static_cast<float>(in) / static_cast<float>(out);
    for (int64_t d = 0; d < out; ++d) {
      float src = align_corners ? scale * d : scale * (d + 0.5f) - 0.5f;
      src = std::max(src, 0.f);
      const int32_t a = std::min<int32_t>(static_cast<int32_t>(src), static_cast<int32_t>(in - 1));
      i0[d] = a;
      i1[d] = a + (a < in - 1 ? 1 : 0);
      l1[d] = src - a;
      l0[d] = 1.f - l1[d];
    }
  }
};

struct Problem {
  int64_t B, C, h, w, H, W, P, nblk;  // nblk: blocks per output row
};


// Interpolate, reduce, weight and (with out.grad = the row buffer [B, H, C, w] fp32) write the transpose
// of the horizontal interpolation of each output row. out.block_stats: [B, H * nblk, NUM_STATS].
template <typename scalar_t>
void phase1(const PassInputs<scalar_t>& in, const PassOutputs<float>& out, const Problem& p, const Axis& ay,
            const Axis& ax) {
  const scalar_t* z = in.logits;
  float* rowbuf = out.grad;
  const int64_t flags = in.flags;
  const bool weight_grad = has_weight_grad(flags);
  at::parallel_for(0, p.B * p.H, 1, [&](int64_t begin, int64_t end) {
    const FlushDenormals ftz;
    BlockReductions r(p.C, p.P);
    PixelStage ps(p.C, p.P, rowbuf != nullptr);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / p.H, hh = task % p.H;
      const scalar_t* zb = z + b * p.C * p.h * p.w;
      const int64_t y0 = ay.i0[hh], y1 = ay.i1[hh];
      const float ly0 = ay.l0[hh], ly1 = ay.l1[hh];
      float* rb = rowbuf ? rowbuf + task * p.C * p.w : nullptr;  // [C, w] share of this output row
      if (rb) std::fill(rb, rb + p.C * p.w, 0.f);
      for (int64_t blk = 0; blk < p.nblk; ++blk) {
        const int64_t p0 = blk * p.P, n = std::min(p.P, p.W - p0);
        const int64_t i0 = task * p.W + p0;  // flat index of the first pixel in [B, H, W]
        const int32_t *__restrict__ x0 = ax.i0.data() + p0, *__restrict__ x1 = ax.i1.data() + p0;
        const float *__restrict__ lx0 = ax.l0.data() + p0, *__restrict__ lx1 = ax.l1.data() + p0;
        for (int64_t c = 0; c < p.C; ++c) {  // interpolate into the block buffer [C, P]
          const scalar_t* __restrict__ top = zb + (c * p.h + y0) * p.w;
          const scalar_t* __restrict__ bot = zb + (c * p.h + y1) * p.w;
          float* __restrict__ dst = r.buf.data() + c * p.P;
          for (int64_t j = 0; j < n; ++j) {
            dst[j] = ly0 * (lx0[j] * static_cast<float>(top[x0[j]]) + lx1[j] * static_cast<float>(top[x1[j]])) +
                     ly1 * (lx0[j] * static_cast<float>(bot[x0[j]]) + lx1[j] * static_cast<float>(bot[x1[j]]));
          }
        }
        reduce_loaded(in.labels + i0, p.C, p.P, n, flags, in.ignore_index, r);
        ps.load_inputs(in.region_state, in.k_pixel, in.k_scalar, i0, n);
        ps.compute(r, n, static_cast<int>(p.C), flags, in.params);
        ps.store_outputs(r, out.region_state, out.loss,
                         out.block_stats ? out.block_stats + (task * p.nblk + blk) * NUM_STATS : nullptr,
                         in.region_state != nullptr, i0, n);
        if (!rb) continue;
        for (int64_t c = 0; c < p.C; ++c) {  // transpose of the horizontal interpolation, in pixel order
          const float* __restrict__ gv = ps.gradient_row(r, p.P, n, c, weight_grad);
          float* __restrict__ dst = rb + c * p.w;
          for (int64_t j = 0; j < n; ++j) {
            dst[x0[j]] += lx0[j] * gv[j];
            dst[x1[j]] += lx1[j] * gv[j];
          }
        }
      }
    }
  });
}

// Transpose of the vertical interpolation: grad[b, c, i, :] = sum over output rows hh touching low row i,
// in increasing hh, of their vertical weight times rowbuf[b, hh, c, :].
template <typename out_t>
void phase2(const float* rowbuf, const Problem& p, const Axis& ay, out_t* grad) {
  std::vector<std::vector<std::pair<int64_t, float>>> rows(p.h);  // low row -> (output row, weight)
  for (int64_t hh = 0; hh < p.H; ++hh) {
    rows[ay.i0[hh]].emplace_back(hh, ay.l0[hh]);
    rows[ay.i1[hh]].emplace_back(hh, ay.l1[hh]);
  }
  at::parallel_for(0, p.B * p.h, 1, [&](int64_t begin, int64_t end) {
    const FlushDenormals ftz;
    std::vector<float> acc(p.w);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / p.h, i = task % p.h;
      for (int64_t c = 0; c < p.C; ++c) {
        std::fill(acc.begin(), acc.end(), 0.f);
        for (const auto& [hh, wgt] : rows[i]) {
          const float* __restrict__ src = rowbuf + ((b * p.H + hh) * p.C + c) * p.w;
          for (int64_t x = 0; x < p.w; ++x) acc[x] += wgt * src[x];
        }
        out_t* dst = grad + ((b * p.C + c) * p.h + i) * p.w;
        for (int64_t x = 0; x < p.w; ++x) dst[x] = static_cast<out_t>(acc[x]);
      }
    }
  });
}

Problem problem(const at::Tensor& logits, const at::Tensor& labels) {
  Problem p;
  p.B = logits.size(0);
  p.C = logits.size(1);
  p.h = logits.size(2);
  p.w = logits.size(3);
  p.H = labels.size(1);
  p.W = labels.size(2);
  p.P = std::max<int64_t>(16, std::min<int64_t>({256, 8192 / p.C, p.W}));
  p.nblk = (p.W + p.P - 1) / p.P;
  return p;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> upsample_weighted_ce_forward_cpu(
    const at::Tensor& logits_in, const at::Tensor& labels_in, at::Tensor& region_state, const at::Tensor& params_d,
    int64_t flags, int64_t ignore_index, bool align_corners, bool per_pixel, bool with_grad, double grad_scale) {
  check_fused_inputs(logits_in, labels_in, region_state, flags, params_d, /*upsample=*/true);
  const at::Tensor logits = logits_in.contiguous(), labels = labels_in.contiguous();
  const Problem p = problem(logits, labels);
  const Axis ay(p.h, p.H, align_corners), ax(p.w, p.W, align_corners);
  float params[NUM_PARAMS];
  cpu::float_params(params_d, params);
  const auto f32 = logits.options().dtype(at::kFloat);
  at::Tensor loss = per_pixel ? at::empty({p.B, p.H, p.W}, f32) : at::empty({0}, f32);
  at::Tensor partial = at::zeros({p.B, p.H * p.nblk, NUM_STATS}, logits.options().dtype(at::kDouble));
  at::Tensor rowbuf = with_grad ? at::empty({p.B, p.H, p.C, p.w}, f32) : at::empty({0}, f32);
  at::Tensor grad = with_grad ? at::empty({p.B, p.C, p.h, p.w}, f32) : at::empty({0}, f32);
  uint8_t* st = (flags & FLAG_REGIONS) ? region_state.data_ptr<uint8_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "upsample_weighted_ce_forward_cpu", [&] {
    const PassInputs<scalar_t> in{logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), st, flags, params,
                                  ignore_index, /*k_pixel=*/nullptr, static_cast<float>(grad_scale)};
    PassOutputs<float> out;
    out.region_state = (flags & FLAG_UPDATE_STATE) ? st : nullptr;
    out.loss = per_pixel ? loss.data_ptr<float>() : nullptr;
    out.block_stats = partial.data_ptr<double>();
    out.grad = with_grad ? rowbuf.data_ptr<float>() : nullptr;
    phase1(in, out, p, ay, ax);
  });
  if (with_grad) phase2<float>(rowbuf.data_ptr<float>(), p, ay, grad.data_ptr<float>());
  return {loss, partial.sum(1), grad};
}

at::Tensor upsample_weighted_ce_backward_cpu(const at::Tensor& grad_scale_in, const at::Tensor& logits_in,
                                             const at::Tensor& labels_in, const at::Tensor& region_state_in,
                                             const at::Tensor& params_d, int64_t flags, int64_t ignore_index,
                                             bool align_corners) {
  at::Tensor region_state = (flags & FLAG_REGIONS) ? region_state_in.contiguous() : region_state_in;
  check_fused_inputs(logits_in, labels_in, region_state, flags, params_d, /*upsample=*/true);
  const at::Tensor logits = logits_in.contiguous(), labels = labels_in.contiguous();
  const at::Tensor scale = grad_scale_in.to(at::kFloat).contiguous();
  const bool scalar = scale.numel() == 1;
  TORCH_CHECK(scalar || scale.sizes() == labels.sizes(), "grad_scale must be a scalar or [B, H, W]");
  const Problem p = problem(logits, labels);
  const Axis ay(p.h, p.H, align_corners), ax(p.w, p.W, align_corners);
  float params[NUM_PARAMS];
  cpu::float_params(params_d, params);
  flags &= ~FLAG_UPDATE_STATE;  // the forward already updated the state
  at::Tensor rowbuf = at::empty({p.B, p.H, p.C, p.w}, logits.options().dtype(at::kFloat));
  at::Tensor grad = at::empty({p.B, p.C, p.h, p.w}, logits.options());
  const uint8_t* st = (flags & FLAG_REGIONS) ? region_state.data_ptr<uint8_t>() : nullptr;
  const float* sp = scale.data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "upsample_weighted_ce_backward_cpu", [&] {
    const PassInputs<scalar_t> in{logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), st, flags, params,
                                  ignore_index, scalar ? nullptr : sp, scalar ? sp[0] : 0.f};
    PassOutputs<float> out;
    out.grad = rowbuf.data_ptr<float>();
    phase1(in, out, p, ay, ax);
    phase2<scalar_t>(rowbuf.data_ptr<float>(), p, ay, grad.data_ptr<scalar_t>());
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CPU, m) {
  m.impl("upsample_weighted_ce_forward", &upsample_weighted_ce_forward_cpu);
  m.impl("upsample_weighted_ce_backward", &upsample_weighted_ce_backward_cpu);
}

}  // namespace fastsegadv
