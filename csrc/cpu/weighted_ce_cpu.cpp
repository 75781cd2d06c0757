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

#include "../weighting.h"
#include "fast_math.h"

namespace fastsegadv {
namespace {

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

// Class reductions of one block. buf: [C, P] logits as float; e: [C, P] exp(z - m) (output).
struct BlockReductions {
  std::vector<float> buf, e, m, m2, mn, S, Sz, S2, Q2, sig_y, zy;
  std::vector<int32_t> a, b2, bn, y;
  explicit BlockReductions(int64_t C, int64_t P)
      : buf(C * P), e(C * P), m(P), m2(P), mn(P), S(P), Sz(P), S2(P), Q2(P), sig_y(P), zy(P), a(P), b2(P), bn(P), y(P) {}
};

template <typename scalar_t>
void reduce_block(const scalar_t* z, const int64_t* labels, const Geometry& g, int64_t p0, int64_t n, int64_t flags,
                  int64_t ignore_index, BlockReductions& r) {
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
  float* __restrict__ m = r.m.data();
  int32_t* __restrict__ a = r.a.data();
  for (int64_t j = 0; j < n; ++j) {
    m[j] = buf[j];
    a[j] = 0;
  }
  // Unconditional stores of max / blended indices: a select-store compiles to VMASKMOVPS, which is
  // microcoded and slow on AMD Zen.
  for (int64_t c = 1; c < C; ++c) {
    const float* __restrict__ row = buf + c * P;
    const int32_t cc = static_cast<int32_t>(c);
    for (int64_t j = 0; j < n; ++j) {
      const float v = row[j], old = m[j];
      const int32_t gt = v > old;  // first maximum wins ties, as torch.argmax
      m[j] = __builtin_fmaxf(v, old);
      a[j] += gt * (cc - a[j]);
    }
  }
  if (needs_top2(flags)) {  // largest value at an index other than a
    float* m2 = r.m2.data();
    int32_t* b2 = r.b2.data();
    for (int64_t j = 0; j < n; ++j) {
      m2[j] = -std::numeric_limits<float>::max();
      b2[j] = a[j] == 0 ? 1 : 0;
    }
    for (int64_t c = 0; c < C; ++c) {
      const float* __restrict__ row = buf + c * P;
      const int32_t cc = static_cast<int32_t>(c);
      for (int64_t j = 0; j < n; ++j) {
        const float v = row[j], old = m2[j];
        const int32_t gt = (v > old) & (a[j] != cc);
        m2[j] = gt ? v : old;
        b2[j] += gt * (cc - b2[j]);
      }
    }
  }
  if (needs_min(flags)) {
    float* mn = r.mn.data();
    int32_t* bn = r.bn.data();
    for (int64_t j = 0; j < n; ++j) {
      mn[j] = buf[j];
      bn[j] = 0;
    }
    for (int64_t c = 1; c < C; ++c) {
      const float* __restrict__ row = buf + c * P;
      const int32_t cc = static_cast<int32_t>(c);
      for (int64_t j = 0; j < n; ++j) {
        const float v = row[j], old = mn[j];
        const int32_t lt = v < old;
        mn[j] = __builtin_fminf(v, old);
        bn[j] += lt * (cc - bn[j]);
      }
    }
  }
  float *__restrict__ S = r.S.data(), *__restrict__ Sz = r.Sz.data(), *__restrict__ S2 = r.S2.data();
  std::fill(S, S + n, 0.f);
  std::fill(Sz, Sz + n, 0.f);
  std::fill(S2, S2 + n, 0.f);
  const bool entropy = flags & FLAG_UNC_ENTROPY, cos_sm = flags & FLAG_COS_SOFTMAX;
  for (int64_t c = 0; c < C; ++c) {
    const float* __restrict__ row = buf + c * P;
    float* __restrict__ erow = r.e.data() + c * P;
    for (int64_t j = 0; j < n; ++j) {
      const float d = row[j] - m[j];
      const float ev = vexp(d);
      erow[j] = ev;
      S[j] += ev;
    }
    if (entropy)
      for (int64_t j = 0; j < n; ++j) Sz[j] += erow[j] * (row[j] - m[j]);
    if (cos_sm)
      for (int64_t j = 0; j < n; ++j) S2[j] += erow[j] * erow[j];
  }
  int32_t* y = r.y.data();
  for (int64_t j = 0; j < n; ++j) {
    const int64_t lab = labels[p0 + j];
    const bool valid = lab != ignore_index;
    TORCH_CHECK(!valid || (lab >= 0 && lab < C), "label ", lab, " is outside [0, ", C, ") and not the ignore_index");
    y[j] = valid ? static_cast<int32_t>(lab) : -1;
    r.zy[j] = valid ? buf[lab * P + j] : 0.f;
  }
  if (flags & FLAG_COS_SIGMOID) {
    float* Q2 = r.Q2.data();
    std::fill(Q2, Q2 + n, 0.f);
    for (int64_t c = 0; c < C; ++c) {
      const float* row = buf + c * P;
      for (int64_t j = 0; j < n; ++j) {
        const float s = 1.f / (1.f + vexp(-row[j]));
        Q2[j] += s * s;
      }
    }
    for (int64_t j = 0; j < n; ++j) r.sig_y[j] = y[j] >= 0 ? 1.f / (1.f + std::exp(-r.zy[j])) : 0.f;
  }
}

void check_inputs(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& state, int64_t flags,
                  at::ArrayRef<double> params) {
  TORCH_CHECK(logits.dim() == 4, "logits must be [B, C, H, W]");
  TORCH_CHECK(logits.size(1) >= 2, "the fused kernel needs C >= 2 classes");
  TORCH_CHECK(labels.dim() == 3 && labels.size(0) == logits.size(0) && labels.size(1) == logits.size(2) &&
                  labels.size(2) == logits.size(3),
              "labels must be [B, H, W] matching the logits");
  TORCH_CHECK(labels.scalar_type() == at::kLong, "labels must be int64");
  TORCH_CHECK(params.size() == NUM_PARAMS, "params must have ", NUM_PARAMS, " entries");
  if (flags & FLAG_REGIONS) {
    TORCH_CHECK(state.scalar_type() == at::kByte && state.sizes() == labels.sizes(),
                "region_state must be uint8 [B, H, W]");
  }
}

at::Tensor pixel_layout(const at::Tensor& logits) {
  // NCHW-contiguous or channels_last both flatten H*W with one pixel stride; anything else is copied.
  if (logits.is_contiguous() || logits.is_contiguous(at::MemoryFormat::ChannelsLast)) return logits;
  return logits.contiguous();
}

// The per-pixel stage of one block (weights, loss, new region state and the gradient coefficients of
// weighting.h), vectorised across the block's pixels, and the sweep that writes dL/dz for it.
struct PixelStage {
  std::vector<float> loss, alpha, beta, gy, ga, gb, invS, k, gbuf;
  std::vector<int32_t> ib;
  std::vector<uint8_t> state_in, state, correct;
  PixelStage(int64_t C, int64_t P, bool with_grad)
      : loss(P), alpha(P), beta(P), gy(P), ga(P), gb(P), invS(P), k(P, 1.f), gbuf(with_grad ? C * P : 0), ib(P),
        state_in(P, REGION_TRUE), state(P), correct(P) {}

  // state_in and k (the upstream gradient of each pixel's loss) are filled by the caller. FLAGS: the
  // flags as a compile-time constant (the flag tests fold away and the loop vectorises), or -1 for the
  // generic loop that reads them at run time.
  template <int64_t FLAGS>
  void compute_with(const BlockReductions& r, int64_t n, int C, int64_t run_flags, const float* params_in) {
    const int64_t flags = FLAGS >= 0 ? FLAGS : run_flags;
    float params[NUM_PARAMS];
    for (int q = 0; q < NUM_PARAMS; ++q) params[q] = params_in[q];
    const uint8_t* __restrict__ sin = state_in.data();
    const float* __restrict__ kk = k.data();
    const float *__restrict__ m = r.m.data(), *__restrict__ m2 = r.m2.data(), *__restrict__ mn = r.mn.data();
    const float *__restrict__ S = r.S.data(), *__restrict__ Sz = r.Sz.data(), *__restrict__ S2 = r.S2.data();
    const float *__restrict__ Q2 = r.Q2.data(), *__restrict__ sig_y = r.sig_y.data(), *__restrict__ zy = r.zy.data();
    const int32_t *__restrict__ a = r.a.data(), *__restrict__ b2 = r.b2.data(), *__restrict__ bn = r.bn.data();
    const int32_t* __restrict__ y = r.y.data();
    float *__restrict__ o_loss = loss.data(), *__restrict__ o_alpha = alpha.data(), *__restrict__ o_beta = beta.data();
    float *__restrict__ o_gy = gy.data(), *__restrict__ o_ga = ga.data(), *__restrict__ o_gb = gb.data();
    float* __restrict__ o_invS = invS.data();
    int32_t* __restrict__ o_b = ib.data();
    uint8_t *__restrict__ o_state = state.data(), *__restrict__ o_correct = correct.data();
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      PixelReductions p;
      p.m = m[j];
      p.a = a[j];
      p.m2 = m2[j];
      p.b2 = b2[j];
      p.mn = mn[j];
      p.bn = bn[j];
      p.S = S[j];
      p.Sz = Sz[j];
      p.S2 = S2[j];
      p.Q2 = Q2[j];
      p.sig_y = sig_y[j];
      p.zy = zy[j];
      const bool valid = y[j] >= 0;
      const PixelTerms t = pixel_terms(p, valid, y[j], sin[j], C, flags, params);
      const float kj = kk[j];
      o_loss[j] = t.loss;
      o_state[j] = t.state;
      o_correct[j] = t.correct;
      o_invS[j] = kj / S[j];  // k * p_c = invS * e_c; alpha = g_y = 0 on ignored pixels
      o_alpha[j] = t.alpha;
      o_beta[j] = t.beta;
      o_gy[j] = kj * t.g_y;
      o_ga[j] = kj * t.g_a;
      o_gb[j] = kj * t.g_b;
      o_b[j] = t.b;
    }
  }

  // The weightings the attacks use get a specialised loop; products and the rarer modes the generic one.
  void compute(const BlockReductions& r, int64_t n, int C, int64_t flags, const float* params) {
    constexpr int64_t REG = FLAG_REGIONS, UPD = FLAG_UPDATE_STATE, COS = FLAG_COS_SOFTMAX, ENT = FLAG_UNC_ENTROPY;
    constexpr int64_t MAR = FLAG_UNC_MARGIN, DET = FLAG_UNC_DETACH;
    switch (flags) {
      case 0: return compute_with<0>(r, n, C, flags, params);
      case FLAG_SEGPGD: return compute_with<FLAG_SEGPGD>(r, n, C, flags, params);
      case REG: return compute_with<REG>(r, n, C, flags, params);
      case REG | UPD: return compute_with<REG | UPD>(r, n, C, flags, params);
      case COS: return compute_with<COS>(r, n, C, flags, params);
      case COS | FLAG_COS_TARGETED: return compute_with<COS | FLAG_COS_TARGETED>(r, n, C, flags, params);
      case ENT: return compute_with<ENT>(r, n, C, flags, params);
      case ENT | DET: return compute_with<ENT | DET>(r, n, C, flags, params);
      case MAR: return compute_with<MAR>(r, n, C, flags, params);
      case MAR | DET: return compute_with<MAR | DET>(r, n, C, flags, params);
      case FLAG_ZERO_OUT: return compute_with<FLAG_ZERO_OUT>(r, n, C, flags, params);
      default: return compute_with<-1>(r, n, C, flags, params);
    }
  }

  // acc[NUM_STATS] of this block, summed in a fixed order
  void statistics(const BlockReductions& r, int64_t n, bool regions, double* acc) const {
    double lsum[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
      for (int q = 0; q < 4; ++q) lsum[q] += loss[j + q];
    for (; j < n; ++j) lsum[0] += loss[j];
    int32_t nv = 0, nc = 0, nt = 0, nb = 0, nf = 0;
    for (j = 0; j < n; ++j) {
      const int32_t v = r.y[j] >= 0;
      nv += v;
      nc += correct[j];
      nt += v & (state[j] == REGION_TRUE);
      nb += v & (state[j] == REGION_BOUNDARY);
      nf += v & (state[j] == REGION_FALSE);
    }
    acc[STAT_LOSS] = (lsum[0] + lsum[1]) + (lsum[2] + lsum[3]);
    acc[STAT_VALID] = nv;
    acc[STAT_CORRECT] = nc;
    acc[STAT_TRUE] = regions ? nt : 0;
    acc[STAT_BOUNDARY] = regions ? nb : 0;
    acc[STAT_FALSE] = regions ? nf : 0;
  }

  // out: the gradient tensor's data (same strides as the logits), image b, pixels p0 .. p0 + n
  // weight_grad: the weight itself has a gradient (non-detached uncertainty), else beta = g_a = g_b = 0
  template <typename out_t>
  void write(const BlockReductions& r, const Geometry& g, int64_t n, out_t* out, int64_t b, int64_t p0,
             bool weight_grad) {
    const float *__restrict__ m = r.m.data(), *__restrict__ ea = invS.data(), *__restrict__ al = alpha.data();
    const float *__restrict__ be = beta.data(), *__restrict__ vy = gy.data(), *__restrict__ va = ga.data();
    const float *__restrict__ vb = gb.data();
    const int32_t *__restrict__ iy = r.y.data(), *__restrict__ iaa = r.a.data(), *__restrict__ ibb = ib.data();
    for (int64_t c = 0; c < g.C; ++c) {
      const float* __restrict__ row = r.buf.data() + c * g.P;
      const float* __restrict__ erow = r.e.data() + c * g.P;
      float* __restrict__ gv = gbuf.data() + c * g.P;
      const int32_t cc = static_cast<int32_t>(c);
      // unconditional loads and 0/1 products (no selects around loads): the loops vectorise
      if (weight_grad) {  // a non-detached uncertainty weight adds beta (z - m) and the a / b terms
        for (int64_t j = 0; j < n; ++j) {
          gv[j] = ea[j] * erow[j] * (al[j] + be[j] * (row[j] - m[j])) + vy[j] * static_cast<float>(iy[j] == cc) +
                  va[j] * static_cast<float>(iaa[j] == cc) + vb[j] * static_cast<float>(ibb[j] == cc);
        }
      } else {
        for (int64_t j = 0; j < n; ++j) gv[j] = ea[j] * erow[j] * al[j] + vy[j] * static_cast<float>(iy[j] == cc);
      }
      if (g.sp == 1) {
        out_t* __restrict__ dst = out + b * g.sb + c * g.sc + p0;
        for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<out_t>(gv[j]);
      }
    }
    if (g.sp != 1) {  // channels_last: each pixel's C gradients are contiguous
      for (int64_t j = 0; j < n; ++j) {
        out_t* dst = out + b * g.sb + (p0 + j) * g.sp;
        for (int64_t c = 0; c < g.C; ++c) dst[c * g.sc] = static_cast<out_t>(gbuf[c * g.P + j]);
      }
    }
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> weighted_ce_forward_cpu(
    const at::Tensor& logits_in, const at::Tensor& labels_in, at::Tensor& region_state, at::ArrayRef<double> params_d,
    int64_t flags, int64_t ignore_index, bool per_pixel, bool with_grad, double grad_scale) {
  check_inputs(logits_in, labels_in, region_state, flags, params_d);
  const float k_fwd = static_cast<float>(grad_scale);
  const at::Tensor logits = pixel_layout(logits_in);
  const at::Tensor labels = labels_in.contiguous();
  TORCH_CHECK(!(flags & FLAG_REGIONS) || region_state.is_contiguous(), "region_state must be contiguous");
  const Geometry g = geometry(logits);
  float params[NUM_PARAMS];
  for (int i = 0; i < NUM_PARAMS; ++i) params[i] = static_cast<float>(params_d[i]);
  at::Tensor loss = per_pixel ? at::empty({g.B, logits.size(2), logits.size(3)}, logits.options().dtype(at::kFloat))
                              : at::empty({0}, logits.options().dtype(at::kFloat));
  // grad_scale * d(sum_i loss_i)/dz in fp32, same memory format as the logits
  at::Tensor grad = with_grad ? at::empty_like(logits, logits.options().dtype(at::kFloat))
                              : at::empty({0}, logits.options().dtype(at::kFloat));
  if (with_grad) advise_huge_pages(grad);
  at::Tensor partial = at::zeros({g.B, g.nblk, NUM_STATS}, logits.options().dtype(at::kDouble));
  const int64_t* lab = labels.data_ptr<int64_t>();
  uint8_t* st = (flags & FLAG_REGIONS) ? region_state.data_ptr<uint8_t>() : nullptr;
  float* loss_ptr = per_pixel ? loss.data_ptr<float>() : nullptr;
  float* grad_ptr = with_grad ? grad.data_ptr<float>() : nullptr;
  double* part = partial.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "weighted_ce_forward_cpu", [&] {
    const scalar_t* z = logits.data_ptr<scalar_t>();
    at::parallel_for(0, g.B * g.nblk, 1, [&](int64_t begin, int64_t end) {
      BlockReductions r(g.C, g.P);
      PixelStage ps(g.C, g.P, with_grad);
      std::fill(ps.k.begin(), ps.k.end(), k_fwd);
      const bool update = st && (flags & FLAG_UPDATE_STATE);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / g.nblk, p0 = (task % g.nblk) * g.P, n = std::min(g.P, g.HW - p0);
        const int64_t i0 = b * g.HW + p0;
        reduce_block(z + b * g.sb, lab + b * g.HW, g, p0, n, flags, ignore_index, r);
        if (st) std::copy(st + i0, st + i0 + n, ps.state_in.begin());
        ps.compute(r, n, static_cast<int>(g.C), flags, params);
        if (update) std::copy(ps.state.begin(), ps.state.begin() + n, st + i0);
        if (loss_ptr) std::copy(ps.loss.begin(), ps.loss.begin() + n, loss_ptr + i0);
        ps.statistics(r, n, st != nullptr, part + task * NUM_STATS);
        if (grad_ptr) ps.write(r, g, n, grad_ptr, b, p0, has_weight_grad(flags));
      }
    });
  });
  return {loss, partial.sum(1), grad};  // stats [B, NUM_STATS]: a fixed-order sum over blocks
}

at::Tensor weighted_ce_backward_cpu(const at::Tensor& grad_scale_in, const at::Tensor& logits_in,
                                    const at::Tensor& labels_in, const at::Tensor& region_state,
                                    at::ArrayRef<double> params_d, int64_t flags, int64_t ignore_index) {
  check_inputs(logits_in, labels_in, region_state, flags, params_d);
  const at::Tensor logits = pixel_layout(logits_in);
  const at::Tensor labels = labels_in.contiguous();
  const at::Tensor state = (flags & FLAG_REGIONS) ? region_state.contiguous() : region_state;
  const at::Tensor grad_scale = grad_scale_in.to(at::kFloat).contiguous();
  const bool scalar_scale = grad_scale.numel() == 1;
  TORCH_CHECK(scalar_scale || grad_scale.sizes() == labels.sizes(), "grad_scale must be a scalar or [B, H, W]");
  const Geometry g = geometry(logits);
  flags &= ~FLAG_UPDATE_STATE;  // the forward already updated the state
  float params[NUM_PARAMS];
  for (int i = 0; i < NUM_PARAMS; ++i) params[i] = static_cast<float>(params_d[i]);
  at::Tensor grad = at::empty_like(logits);  // same memory format as the logits
  advise_huge_pages(grad);
  const int64_t* lab = labels.data_ptr<int64_t>();
  const uint8_t* st = (flags & FLAG_REGIONS) ? state.data_ptr<uint8_t>() : nullptr;
  const float* gsc = grad_scale.data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "weighted_ce_backward_cpu", [&] {
    const scalar_t* z = logits.data_ptr<scalar_t>();
    scalar_t* out = grad.data_ptr<scalar_t>();
    at::parallel_for(0, g.B * g.nblk, 1, [&](int64_t begin, int64_t end) {
      BlockReductions r(g.C, g.P);
      PixelStage ps(g.C, g.P, true);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / g.nblk, p0 = (task % g.nblk) * g.P, n = std::min(g.P, g.HW - p0);
        const int64_t i0 = b * g.HW + p0;
        reduce_block(z + b * g.sb, lab + b * g.HW, g, p0, n, flags, ignore_index, r);
        if (st) std::copy(st + i0, st + i0 + n, ps.state_in.begin());
        if (scalar_scale)
          std::fill(ps.k.begin(), ps.k.begin() + n, gsc[0]);
        else
          std::copy(gsc + i0, gsc + i0 + n, ps.k.begin());
        ps.compute(r, n, static_cast<int>(g.C), flags, params);
        ps.write(r, g, n, out, b, p0, has_weight_grad(flags));
      }
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CPU, m) {
  m.impl("weighted_ce_forward", &weighted_ce_forward_cpu);
  m.impl("weighted_ce_backward", &weighted_ce_backward_cpu);
}

}  // namespace fastsegadv
