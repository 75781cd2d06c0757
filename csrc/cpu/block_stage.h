// The block machinery of the fused weighted cross-entropy on CPU, shared by the kernel on logits at
// label resolution (weighted_ce_cpu.cpp) and the one that interpolates low-resolution logits on the fly
// (upsample_weighted_ce_cpu.cpp): class reductions of a block of P pixels held planar in a float buffer
// [C, P], the per-pixel stage of weighting.h vectorised across the block, and the gradient rows.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "../weighting.h"
#include "fast_math.h"

namespace fastsegadv {
namespace cpu {

// Class reductions of one block. buf: [C, P] logits as float; e: [C, P] exp(z - m) (output).
struct BlockReductions {
  std::vector<float> buf, e, m, m2, mn, S, Sz, S2, Q2, sig_y, zy;
  std::vector<int32_t> a, b2, bn, y;
  explicit BlockReductions(int64_t C, int64_t P)
      : buf(C * P), e(C * P), m(P), m2(P), mn(P), S(P), Sz(P), S2(P), Q2(P), sig_y(P), zy(P), a(P), b2(P), bn(P), y(P) {}
};

// Class reductions of the block already in r.buf ([C, P], n pixels valid); labels of its pixels at
// labels[0 .. n).
inline void reduce_loaded(const int64_t* labels, int64_t C, int64_t P, int64_t n, int64_t flags, int64_t ignore_index,
                          BlockReductions& r) {
  float* __restrict__ buf = r.buf.data();
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
    const int64_t lab = labels[j];
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

// The per-pixel stage of one block (weights, loss, new region state and the gradient coefficients of
// weighting.h), vectorised across the block's pixels, and the sweep that writes dL/dz for it.
struct PixelStage {
  std::vector<float> loss, alpha, beta, gy, ga, gb, invS, k, gbuf;
  std::vector<int32_t> ib;
  std::vector<uint8_t> state_in, state, correct;
  PixelStage(int64_t C, int64_t P, bool with_grad)
      : loss(P), alpha(P), beta(P), gy(P), ga(P), gb(P), invS(P), k(P, 1.f), gbuf(with_grad ? C * P : 0), ib(P),
        state_in(P, REGION_TRUE), state(P), correct(P) {}

  // The block's inputs from [B, H, W] arrays at flat index i0: region state (st, nullable: all True) and
  // the upstream gradient of each pixel's loss (k_pix per pixel, or the scalar k_scalar).
  void load_inputs(const uint8_t* st, const float* k_pix, float k_scalar, int64_t i0, int64_t n) {
    if (st) std::copy(st + i0, st + i0 + n, state_in.begin());
    if (k_pix)
      std::copy(k_pix + i0, k_pix + i0 + n, k.begin());
    else
      std::fill(k.begin(), k.begin() + n, k_scalar);
  }

  // Outputs of the block to [B, H, W] arrays at flat index i0 (each nullable): new region state, per-pixel
  // loss, per-pixel argmax; and its statistics to acc[NUM_STATS] (nullable).
  void store_outputs(const BlockReductions& r, uint8_t* st_out, float* loss_out, double* acc, bool regions, int64_t i0,
                     int64_t n, int64_t* prediction_out = nullptr) const {
    if (st_out) std::copy(state.begin(), state.begin() + n, st_out + i0);
    if (loss_out) std::copy(loss.begin(), loss.begin() + n, loss_out + i0);
    if (prediction_out) std::copy(r.a.begin(), r.a.begin() + n, prediction_out + i0);
    if (acc) statistics(r, n, regions, acc);
  }

  // state_in and k (the upstream gradient of each pixel's loss) are filled by the caller (load_inputs). FLAGS: the
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

  // gbuf row c = dL/dz_c of the block's n pixels (P = the block stride of the buffers).
  // weight_grad: the weight itself has a gradient (non-detached uncertainty), else beta = g_a = g_b = 0
  float* gradient_row(const BlockReductions& r, int64_t P, int64_t n, int64_t c, bool weight_grad) {
    const float *__restrict__ m = r.m.data(), *__restrict__ ea = invS.data(), *__restrict__ al = alpha.data();
    const float *__restrict__ be = beta.data(), *__restrict__ vy = gy.data(), *__restrict__ va = ga.data();
    const float *__restrict__ vb = gb.data();
    const int32_t *__restrict__ iy = r.y.data(), *__restrict__ iaa = r.a.data(), *__restrict__ ibb = ib.data();
    const float* __restrict__ row = r.buf.data() + c * P;
    const float* __restrict__ erow = r.e.data() + c * P;
    float* __restrict__ gv = gbuf.data() + c * P;
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
    return gv;
  }
};

// What one pass over the blocks reads (both CPU kernels).
template <typename scalar_t>
struct PassInputs {
  const scalar_t* logits;        // [B, C, H, W], strides in Geometry
  const int64_t* labels;         // [B * HW]
  const uint8_t* region_state;   // [B * HW], nullptr without FLAG_REGIONS
  int64_t flags;                 // weighting.h flag bits
  const float* params;           // [NUM_PARAMS]
  int64_t ignore_index;
  const float* k_pixel;          // upstream gradient per pixel [B * HW], or nullptr ...
  float k_scalar;                // ... then this scalar
};

// What one pass writes; nullptr = not wanted.
template <typename out_t>
struct PassOutputs {
  uint8_t* region_state = nullptr;  // updated region state [B * HW]
  float* loss = nullptr;            // per-pixel loss [B * HW]
  double* block_stats = nullptr;    // per-block statistics [B * nblk, NUM_STATS]
  int64_t* prediction = nullptr;    // per-pixel argmax [B * HW] (the same-resolution forward only)
  out_t* grad = nullptr;            // k * d loss / dz: same strides as the logits (weighted_ce_cpu.cpp), or the
                                    // row buffer [B, H, C, w] of the upsampling kernel's first phase
};

// The op's fp32 [NUM_PARAMS] parameter tensor (CPU) as the floats the kernels use.
inline void float_params(const at::Tensor& params_t, float* params) {
  TORCH_CHECK(params_t.numel() == NUM_PARAMS, "params must have ", NUM_PARAMS, " entries");
  TORCH_CHECK(params_t.device().is_cpu(), "params must be on the CPU for a CPU kernel");
  const at::Tensor p = params_t.to(at::kFloat).contiguous();
  for (int i = 0; i < NUM_PARAMS; ++i) params[i] = p.data_ptr<float>()[i];
}

}  // namespace cpu
}  // namespace fastsegadv
