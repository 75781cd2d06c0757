// Per-pixel weight formulas of the fused weighted cross-entropy (DESIGN.md §3), shared by the CPU
// (cpu/weighted_ce_cpu.cpp) and CUDA (cuda/weighted_ce_cuda.cu) kernels. Mirrors
// fastsegadv/reference/weighted.py (the eager reference) and fastsegadv/contract.py (flags, params, stats).
//
// After the class reductions of one pixel (max m and argmax a, optional second max / min, S = sum
// exp(z - m), Sz = sum exp(z - m)(z - m), S2 = sum exp(2(z - m)), Q2 = sum sigmoid(z)^2), the
// pixel's loss w*CE and the coefficients of its gradient
//     dL/dz_c = scale * [ p_c * (alpha + beta * (z_c - m)) + [c=y] g_y + [c=a] g_a + [c=b] g_b ]
// come from `pixel_terms` below.
#pragma once

#include <cmath>
#include <cstdint>

#include "cpu/fast_math.h"  // host-side vexp (fsa_exp below)

#if defined(__CUDACC__)
#define FSA_HD __host__ __device__ __forceinline__
#else
#define FSA_HD inline __attribute__((always_inline))  // inlined into the vectorised pixel loop
#endif

namespace fastsegadv {

// Weight-term flags: fastsegadv/contract.py (Flag) is the one Python source; tests/test_contract.py checks
// this header against it, as it does the params (Param) and stats (Stat) enums below.
enum : int64_t {
  FLAG_SEGPGD = 1 << 0,        // w *= correct ? params[P_W_CORRECT] : params[P_W_WRONG]
  FLAG_REGIONS = 1 << 1,       // w *= params[P_LAMBDA_T + state]
  FLAG_UPDATE_STATE = 1 << 2,  // T -> B where wrong, in the same pass
  FLAG_COS_SOFTMAX = 1 << 3,   // w *= p_y / ||p||_2
  FLAG_COS_SIGMOID = 1 << 4,   // w *= s_y / ||s||_2, s = sigmoid(z)
  FLAG_COS_TARGETED = 1 << 5,  // use 1 - cos
  FLAG_UNC_MARGIN = 1 << 6,    // w *= exp(1 - (p1 - p2))
  FLAG_UNC_MAXMIN = 1 << 7,    // w *= exp(1 - (p1 - pmin))
  FLAG_UNC_MEANMARGIN = 1 << 8,// w *= exp(1 - (C p1 - 1)/(C - 1))
  FLAG_UNC_ENTROPY = 1 << 9,   // w *= exp(H / log C)
  FLAG_UNC_DETACH = 1 << 10,   // no gradient through exp(U)
  FLAG_ZERO_OUT = 1 << 11,     // w = 0 where wrong and p1 >= params[P_TAU]
};

enum : int {
  P_W_CORRECT = 0,
  P_W_WRONG = 1,
  P_LAMBDA_T = 2,  // + state (0 T, 1 B, 2 F)
  P_TAU = 5,
  NUM_PARAMS = 6,
};

enum : int { REGION_TRUE = 0, REGION_BOUNDARY = 1, REGION_FALSE = 2 };

// Per-image statistics written per pixel block: loss sum, valid, correct, T, B, F counts.
enum : int { STAT_LOSS = 0, STAT_VALID, STAT_CORRECT, STAT_TRUE, STAT_BOUNDARY, STAT_FALSE, NUM_STATS };

struct PixelReductions {
  float m;      // max logit
  int a;        // argmax (first maximum)
  float m2;     // second largest logit (FLAG_UNC_MARGIN)
  int b2;       // its index
  float mn;     // min logit (FLAG_UNC_MAXMIN)
  int bn;       // its index
  float S;      // sum exp(z - m)
  float Sz;     // sum exp(z - m) * (z - m)   (FLAG_UNC_ENTROPY)
  float S2;     // sum exp(2 (z - m))         (FLAG_COS_SOFTMAX)
  float Q2;     // sum sigmoid(z)^2            (FLAG_COS_SIGMOID)
  float sig_y;  // sigmoid(z_y)                (FLAG_COS_SIGMOID)
  float zy;     // z_y
};

struct PixelTerms {
  float loss;     // w * CE (0 if not valid)
  float alpha, beta, g_y, g_a, g_b;
  int b;          // index of the third delta term (second max or min), -1 if none
  bool correct;
  uint8_t state;  // region state after the update
};

// log(x) for the finite x >= 1 the kernels need (log of sum exp(z - max)). On the host: Cephes' logf
// polynomial on the mantissa (relative error ~1e-7), inline so the per-pixel stage does not call libm;
// on the device: logf.
FSA_HD float fsa_log(float x) {
#if defined(__CUDA_ARCH__)
  return logf(x);
#else
  const int32_t bits = __builtin_bit_cast(int32_t, x);
  const int32_t mbits = (bits & 0x007fffff) | 0x3f800000;  // mantissa in [1, 2)
  const float m1 = __builtin_bit_cast(float, mbits);
  const bool high = m1 > 1.41421356f;  // fold the mantissa into [sqrt(1/2), sqrt(2))
  const float m = high ? 0.5f * m1 : m1;
  const int32_t e = ((bits >> 23) & 0xff) - 127 + static_cast<int32_t>(high);
  const float f = m - 1.0f, z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = f * z * y;
  const float fe = static_cast<float>(e);
  y += fe * -2.12194440e-4f;
  y += -0.5f * z;
  return f + y + fe * 0.693359375f;
#endif
}

FSA_HD bool needs_top2(int64_t f) { return f & FLAG_UNC_MARGIN; }
FSA_HD bool needs_min(int64_t f) { return f & FLAG_UNC_MAXMIN; }
FSA_HD bool has_weight_grad(int64_t f) {
  return (f & (FLAG_UNC_MARGIN | FLAG_UNC_MAXMIN | FLAG_UNC_MEANMARGIN | FLAG_UNC_ENTROPY)) && !(f & FLAG_UNC_DETACH);
}
FSA_HD bool needs_prediction(int64_t f) { return f & (FLAG_SEGPGD | FLAG_REGIONS | FLAG_ZERO_OUT); }

// exp for the per-pixel stage: on the host the vectorisable polynomial of cpu/fast_math.h, on the device
// expf.
FSA_HD float fsa_exp(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return vexp(x);
#endif
}

// valid: label != ignore_index. y: the label (only read when valid). state: current region state.
// Branch-free in the pixel (selects, no early return, no libm calls on the host) so that the CPU kernel's
// loop over a block's pixels vectorises; the flag tests are the same for every pixel.
FSA_HD PixelTerms pixel_terms(const PixelReductions& r, bool valid, int y, uint8_t state, int C, int64_t flags,
                              const float* params) {
  PixelTerms t;
  // bitwise, no negation of `correct`: a short-circuit or a re-tested flag becomes a branch that GCC's
  // vectoriser rejects
  t.correct = valid & (r.a == y);
  const bool wrong = valid & (r.a != y);
  t.b = -1;
  const float logS = fsa_log(r.S);
  const float ce = (r.m + logS) - r.zy;  // logsumexp - z_y
  const float p1 = 1.f / r.S;            // top probability
  float w = valid ? 1.f : 0.f;
  // parameters read unconditionally: a load from a data-dependent address would be a gather
  const float w_correct = params[P_W_CORRECT], w_wrong = params[P_W_WRONG];
  const float lam_t = params[P_LAMBDA_T], lam_b = params[P_LAMBDA_T + 1], lam_f = params[P_LAMBDA_T + 2];
  const float tau = params[P_TAU];
  if (flags & FLAG_SEGPGD) {  // a 0/1 blend (exact): GCC turns the select back into a table load
    const float c = t.correct ? 1.f : 0.f;
    w *= c * w_correct + (1.f - c) * w_wrong;
  }
  t.state = state;
  if (flags & FLAG_REGIONS) {
    const bool to_boundary = wrong & (state == REGION_TRUE);
    t.state = ((flags & FLAG_UPDATE_STATE) && to_boundary) ? static_cast<uint8_t>(REGION_BOUNDARY) : state;
    const float in_t = t.state == REGION_TRUE ? 1.f : 0.f, in_b = t.state == REGION_BOUNDARY ? 1.f : 0.f;
    const float in_f = t.state == REGION_FALSE ? 1.f : 0.f;
    w *= in_t * lam_t + in_b * lam_b + in_f * lam_f;  // a 0/1 blend, exact
  }
  if (flags & FLAG_COS_SOFTMAX) {
    const float cosv = fsa_exp(r.zy - r.m) / fmaxf(sqrtf(r.S2), 1e-30f);
    w *= (flags & FLAG_COS_TARGETED) ? 1.f - cosv : cosv;
  } else if (flags & FLAG_COS_SIGMOID) {
    const float cosv = r.sig_y / fmaxf(sqrtf(r.Q2), 1e-12f);
    w *= (flags & FLAG_COS_TARGETED) ? 1.f - cosv : cosv;
  }
  if (flags & FLAG_ZERO_OUT) {  // via int: GCC turns a select between 0/1 constants into a table load
    const int32_t keep = 1 - static_cast<int32_t>(wrong & (p1 >= tau));
    w *= static_cast<float>(keep);
  }
  // uncertainty exp(U) and, unless detached, its derivative dU/dz_c
  float U = 0.f, dA = 0.f, dB = 0.f, dGa = 0.f, dGb = 0.f;
  const bool unc = flags & (FLAG_UNC_MARGIN | FLAG_UNC_MAXMIN | FLAG_UNC_MEANMARGIN | FLAG_UNC_ENTROPY);
  if (flags & FLAG_UNC_ENTROPY) {
    const float H = logS - r.Sz / r.S;
    const float inv_logC = 1.f / fsa_log((float)C);
    U = H * inv_logC;
    // dU/dz_c = -p_c (log p_c + H) / log C,  log p_c = (z_c - m) - log S
    dA = -(H - logS) * inv_logC;
    dB = -inv_logC;
  } else if (flags & (FLAG_UNC_MARGIN | FLAG_UNC_MAXMIN)) {
    const bool margin = flags & FLAG_UNC_MARGIN;
    const float p2 = fsa_exp((margin ? r.m2 : r.mn) - r.m) * p1;
    U = 1.f - (p1 - p2);
    // dU/dz_c = -[p1 (d_ac - p_c) - p2 (d_bc - p_c)]
    dA = p1 - p2;
    dGa = -p1;
    dGb = p2;
    t.b = margin ? r.b2 : r.bn;
  } else if (flags & FLAG_UNC_MEANMARGIN) {
    const float k = (float)C / (float)(C - 1);
    U = 1.f - (C * p1 - 1.f) / (float)(C - 1);
    dA = k * p1;  // dU/dz_c = -k p1 (d_ac - p_c)
    dGa = -k * p1;
  }
  if (unc) w *= fsa_exp(U);
  t.loss = w * ce;  // w = 0 on ignored pixels (and ce finite there: z_y reads as 0)
  t.alpha = w;
  t.beta = 0.f;
  t.g_y = -w;
  t.g_a = 0.f;
  t.g_b = 0.f;
  if (unc && !(flags & FLAG_UNC_DETACH)) {
    const float k = t.loss;  // d(exp U)/dz = exp(U) dU/dz; the other factors are constants
    t.alpha += k * dA;
    t.beta = k * dB;
    t.g_a = k * dGa;
    t.g_b = k * dGb;
  }
  return t;
}

}  // namespace fastsegadv
