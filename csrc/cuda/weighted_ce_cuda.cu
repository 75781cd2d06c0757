// CUDA kernels of the fused weighted cross-entropy (fastsegadv::weighted_ce_forward / _backward).
//
// One thread per pixel, a loop over the C classes (loads coalesced along H*W for NCHW logits, as in
// PyTorch's SpatialSoftMax), fp32 registers whatever the input dtype; the per-pixel weight and gradient
// coefficients come from ../weighting.h, shared with the CPU kernel. Block b.x covers kThreads pixels
// of image b.y; per-block statistics are reduced in shared memory in a fixed order (no atomics) and
// summed over blocks by the caller: results are deterministic.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cfloat>

#include "../input_checks.h"
#include "../weighting.h"

namespace fastsegadv {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__device__ PixelReductions reduce_pixel(const scalar_t* __restrict__ z, int64_t sc, int C, int y, int64_t flags) {
  PixelReductions r;
  r.m = -FLT_MAX;
  r.a = 0;
  for (int c = 0; c < C; ++c) {
    const float v = static_cast<float>(z[c * sc]);
    if (v > r.m) {
      r.m = v;
      r.a = c;
    }
  }
  r.m2 = -FLT_MAX;
  r.b2 = r.a == 0 ? 1 : 0;
  r.mn = FLT_MAX;
  r.bn = 0;
  if (needs_top2(flags) || needs_min(flags)) {
    for (int c = 0; c < C; ++c) {
      const float v = static_cast<float>(z[c * sc]);
      if (c != r.a && v > r.m2) {
        r.m2 = v;
        r.b2 = c;
      }
      if (v < r.mn) {
        r.mn = v;
        r.bn = c;
      }
    }
  }
  r.S = r.Sz = r.S2 = r.Q2 = 0.f;
  for (int c = 0; c < C; ++c) {
    const float v = static_cast<float>(z[c * sc]);
    const float d = v - r.m;
    const float e = __expf(d);
    r.S += e;
    r.Sz += e * d;
    r.S2 += e * e;
    if (flags & FLAG_COS_SIGMOID) {
      const float s = 1.f / (1.f + __expf(-v));
      r.Q2 += s * s;
    }
  }
  r.zy = y >= 0 ? static_cast<float>(z[y * sc]) : 0.f;
  r.sig_y = 1.f / (1.f + __expf(-r.zy));
  return r;
}

template <typename scalar_t>
__global__ void forward_kernel(const scalar_t* __restrict__ z, const int64_t* __restrict__ labels,
                               uint8_t* __restrict__ state, float* __restrict__ loss, int64_t* __restrict__ prediction,
                               double* __restrict__ partial,
                               const float* __restrict__ params, int C, int64_t HW, int64_t sb, int64_t sc, int64_t sp,
                               int64_t ignore_index, int64_t flags) {
  __shared__ float red[NUM_STATS][kThreads];
  const int b = blockIdx.y;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  float st[NUM_STATS] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  if (p < HW) {
    const int64_t i = b * HW + p;
    const int64_t lab = labels[i];
    const bool valid = lab != ignore_index && lab >= 0 && lab < C;
    const int y = valid ? static_cast<int>(lab) : -1;
    const PixelReductions r = reduce_pixel(z + b * sb + p * sp, sc, C, y, flags);
    const uint8_t s = (flags & FLAG_REGIONS) ? state[i] : static_cast<uint8_t>(REGION_TRUE);
    const PixelTerms t = pixel_terms(r, valid, y, s, C, flags, params);
    if (flags & FLAG_REGIONS) state[i] = t.state;
    if (loss != nullptr) loss[i] = t.loss;
    if (prediction != nullptr) prediction[i] = r.a;
    st[STAT_LOSS] = t.loss;
    st[STAT_VALID] = valid;
    st[STAT_CORRECT] = t.correct;
    // a state outside {T, B, F} (the op does not read the tensor on the host to check) counts nowhere
    if ((flags & FLAG_REGIONS) && valid && t.state <= REGION_FALSE) st[STAT_TRUE + t.state] = 1.f;
  }
  for (int k = 0; k < NUM_STATS; ++k) red[k][threadIdx.x] = st[k];
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {  // fixed-order tree
    if (threadIdx.x < stride)
      for (int k = 0; k < NUM_STATS; ++k) red[k][threadIdx.x] += red[k][threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x < NUM_STATS)
    partial[(static_cast<int64_t>(b) * gridDim.x + blockIdx.x) * NUM_STATS + threadIdx.x] = red[threadIdx.x][0];
}

template <typename scalar_t>
__global__ void backward_kernel(const scalar_t* __restrict__ z, const int64_t* __restrict__ labels,
                                const uint8_t* __restrict__ state, const float* __restrict__ scale,
                                bool per_pixel_scale, scalar_t* __restrict__ grad, const float* __restrict__ params, int C, int64_t HW,
                                int64_t sb, int64_t sc, int64_t sp, int64_t ignore_index, int64_t flags) {
  const int b = blockIdx.y;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (p >= HW) return;
  const int64_t i = b * HW + p;
  const int64_t lab = labels[i];
  const bool valid = lab != ignore_index && lab >= 0 && lab < C;
  const int y = valid ? static_cast<int>(lab) : -1;
  const scalar_t* zp = z + b * sb + p * sp;
  scalar_t* gp = grad + b * sb + p * sp;
  const PixelReductions r = reduce_pixel(zp, sc, C, y, flags);
  const uint8_t s = (flags & FLAG_REGIONS) ? state[i] : static_cast<uint8_t>(REGION_TRUE);
  const PixelTerms t = pixel_terms(r, valid, y, s, C, flags, params);
  const float k = valid ? (per_pixel_scale ? scale[i] : scale[0]) : 0.f;
  const float inv_s = k / r.S;
  for (int c = 0; c < C; ++c) {
    const float d = static_cast<float>(zp[c * sc]) - r.m;
    float g = inv_s * __expf(d) * (t.alpha + t.beta * d);
    if (c == y) g += k * t.g_y;
    if (c == r.a) g += k * t.g_a;
    if (c == t.b) g += k * t.g_b;
    gp[c * sc] = static_cast<scalar_t>(g);
  }
}


// The kernels read the parameters from device memory (a CUDA-graph replay then sees the values of each
// step, not those of the recorded one): fp32 [NUM_PARAMS] on the logits' device.
at::Tensor device_params(const at::Tensor& params, const at::Tensor& logits) {
  TORCH_CHECK(params.numel() == NUM_PARAMS, "params must have ", NUM_PARAMS, " entries");
  return params.to(logits.device(), at::kFloat).contiguous();
}

// with_grad is not used on CUDA: the gradient comes from backward_kernel (an empty third output says so).
std::tuple<at::Tensor, at::Tensor, at::Tensor> weighted_ce_forward_cuda(
    const at::Tensor& logits_in, const at::Tensor& labels_in, at::Tensor& region_state, const at::Tensor& params_in,
    int64_t flags, int64_t ignore_index, bool per_pixel, bool /*with_grad*/, double /*grad_scale*/,
    const c10::optional<at::Tensor>& prediction) {
  check_fused_inputs(logits_in, labels_in, region_state, flags, params_in, /*upsample=*/false);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = pixel_layout(logits_in);
  const at::Tensor labels = labels_in.contiguous();
  int64_t* pred = prediction_out(prediction, labels);
  const int64_t B = logits.size(0), C = logits.size(1), HW = logits.size(2) * logits.size(3);
  if (flags & FLAG_REGIONS) {
    TORCH_CHECK(region_state.is_contiguous() && region_state.scalar_type() == at::kByte, "region_state: uint8, contiguous");
  }
  at::Tensor loss = per_pixel ? at::empty({B, logits.size(2), logits.size(3)}, logits.options().dtype(at::kFloat))
                              : at::empty({0}, logits.options().dtype(at::kFloat));
  const dim3 grid(static_cast<unsigned>((HW + kThreads - 1) / kThreads), static_cast<unsigned>(B));
  at::Tensor partial = at::empty({B, static_cast<int64_t>(grid.x), NUM_STATS}, logits.options().dtype(at::kDouble));
  const at::Tensor prm = device_params(params_in, logits);
  const float* p = prm.data_ptr<float>();
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (B > 0 && HW > 0) {  // a launch of zero blocks is an error
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "weighted_ce_forward_cuda", [&] {
    forward_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(
        logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(),
        (flags & FLAG_REGIONS) ? region_state.data_ptr<uint8_t>() : nullptr,
        per_pixel ? loss.data_ptr<float>() : nullptr, pred, partial.data_ptr<double>(), p, static_cast<int>(C), HW,
        logits.stride(0), logits.stride(1), logits.stride(3), ignore_index, flags);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {loss, partial.sum(1), at::empty({0}, logits.options().dtype(at::kFloat))};
}

at::Tensor weighted_ce_backward_cuda(const at::Tensor& grad_scale_in, const at::Tensor& logits_in,
                                     const at::Tensor& labels_in, const at::Tensor& region_state,
                                     const at::Tensor& params_in, int64_t flags, int64_t ignore_index) {
  check_fused_inputs(logits_in, labels_in, region_state, flags, params_in, /*upsample=*/false);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = pixel_layout(logits_in);
  const at::Tensor labels = labels_in.contiguous();
  const at::Tensor scale = grad_scale_in.to(at::kFloat).contiguous();
  const at::Tensor state = (flags & FLAG_REGIONS) ? region_state.contiguous() : region_state;
  const int64_t B = logits.size(0), C = logits.size(1), HW = logits.size(2) * logits.size(3);
  at::Tensor grad = at::empty_like(logits);
  const dim3 grid(static_cast<unsigned>((HW + kThreads - 1) / kThreads), static_cast<unsigned>(B));
  const at::Tensor prm = device_params(params_in, logits);
  const float* p = prm.data_ptr<float>();
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (B > 0 && HW > 0) {  // a launch of zero blocks is an error
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "weighted_ce_backward_cuda", [&] {
    backward_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(
        logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(),
        (flags & FLAG_REGIONS) ? state.data_ptr<uint8_t>() : nullptr, scale.data_ptr<float>(), scale.numel() != 1,
        grad.data_ptr<scalar_t>(), p, static_cast<int>(C), HW, logits.stride(0), logits.stride(1), logits.stride(3),
        ignore_index, flags & ~FLAG_UPDATE_STATE);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CUDA, m) {
  m.impl("weighted_ce_forward", &weighted_ce_forward_cuda);
  m.impl("weighted_ce_backward", &weighted_ce_backward_cuda);
}

}  // namespace fastsegadv
