// Masked per-class sums of features (RP-PGD prototypes, 003 Eq. 5), CUDA. Block (c, b) reduces channel c
// of image b: each thread accumulates kClassChunk class bins in registers over a strided set of pixels,
// then the block reduces the bins in shared memory with a fixed-order tree (deterministic, no atomics).
// Backward: one thread per feature element gathers dL/dsums[b, label, c] where the mask is set.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

namespace fastsegadv {
namespace {

constexpr int kThreads = 256;
constexpr int kClassChunk = 8;

// value_of(p) = feature (sums) or 1 (counts, when row == nullptr)
template <typename scalar_t>
__global__ void class_sums_kernel(const scalar_t* __restrict__ f, const int64_t* __restrict__ labels,
                                  const bool* __restrict__ mask, float* __restrict__ out, int64_t D, int64_t HW,
                                  int64_t K, bool counts) {
  __shared__ float red[kClassChunk][kThreads];
  const int64_t c = blockIdx.x, b = blockIdx.y;
  const scalar_t* row = counts ? nullptr : f + (b * D + c) * HW;
  const int64_t* lb = labels + b * HW;
  const bool* mb = mask + b * HW;
  for (int64_t k0 = 0; k0 < K; k0 += kClassChunk) {
    float acc[kClassChunk];
#pragma unroll
    for (int j = 0; j < kClassChunk; ++j) acc[j] = 0.f;
    for (int64_t p = threadIdx.x; p < HW; p += kThreads) {
      if (!mb[p]) continue;
      const int64_t k = lb[p] - k0;
      const float v = counts ? 1.f : static_cast<float>(row[p]);
#pragma unroll
      for (int j = 0; j < kClassChunk; ++j) acc[j] += (k == j) ? v : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kClassChunk; ++j) red[j][threadIdx.x] = acc[j];
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
      if (threadIdx.x < stride)
        for (int j = 0; j < kClassChunk; ++j) red[j][threadIdx.x] += red[j][threadIdx.x + stride];
      __syncthreads();
    }
    if (threadIdx.x < kClassChunk && k0 + threadIdx.x < K) {
      const int64_t k = k0 + threadIdx.x;
      if (counts) out[b * K + k] = red[threadIdx.x][0];
      else out[(b * K + k) * D + c] = red[threadIdx.x][0];
    }
    __syncthreads();
  }
}

template <typename scalar_t>
__global__ void gather_kernel(const float* __restrict__ gs, const int64_t* __restrict__ labels,
                              const bool* __restrict__ mask, scalar_t* __restrict__ out, int64_t D, int64_t HW,
                              int64_t K, int64_t total) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= total) return;
  const int64_t p = idx % HW, c = (idx / HW) % D, b = idx / (HW * D);
  const int64_t i = b * HW + p;
  const int64_t k = labels[i];  // a label outside [0, K) (the ignore_index) has no class sum: no read
  out[idx] = static_cast<scalar_t>(mask[i] && k >= 0 && k < K ? gs[(b * K + k) * D + c] : 0.f);
}

std::tuple<at::Tensor, at::Tensor> masked_class_sums_cuda(const at::Tensor& features, const at::Tensor& labels_in,
                                                          const at::Tensor& mask_in, int64_t K) {
  TORCH_CHECK(features.dim() == 4 && labels_in.dim() == 3 && mask_in.scalar_type() == at::kBool,
              "features [B, d, h, w], labels int64 [B, h, w], mask bool [B, h, w]");
  const c10::cuda::CUDAGuard guard(features.device());
  const at::Tensor f = features.contiguous();
  const at::Tensor labels = labels_in.contiguous();
  const at::Tensor mask = mask_in.contiguous();
  const int64_t B = f.size(0), D = f.size(1), HW = f.size(2) * f.size(3);
  at::Tensor sums = at::zeros({B, K, D}, f.options().dtype(at::kFloat));
  at::Tensor counts = at::zeros({B, K}, f.options().dtype(at::kFloat));
  if (B == 0) return {sums, counts};  // a launch of zero blocks is an error; the sums are 0
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "masked_class_sums_cuda", [&] {
    if (D > 0) {
      class_sums_kernel<scalar_t><<<dim3(D, B), kThreads, 0, stream>>>(
          f.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), mask.data_ptr<bool>(), sums.data_ptr<float>(), D, HW,
          K, false);
    }
    class_sums_kernel<scalar_t><<<dim3(1, B), kThreads, 0, stream>>>(
        f.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), mask.data_ptr<bool>(), counts.data_ptr<float>(), D, HW, K,
        true);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {sums, counts};
}

at::Tensor masked_class_sums_backward_cuda(const at::Tensor& grad_sums, const at::Tensor& features,
                                           const at::Tensor& labels_in, const at::Tensor& mask_in) {
  const c10::cuda::CUDAGuard guard(features.device());
  const at::Tensor gs = grad_sums.to(at::kFloat).contiguous();
  const at::Tensor labels = labels_in.contiguous();
  const at::Tensor mask = mask_in.contiguous();
  const int64_t B = features.size(0), D = features.size(1), HW = features.size(2) * features.size(3);
  const int64_t K = gs.size(1), total = B * D * HW;
  at::Tensor grad = at::empty({B, D, features.size(2), features.size(3)}, features.options());
  if (total == 0) return grad;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "masked_class_sums_backward_cuda", [&] {
    gather_kernel<scalar_t><<<static_cast<unsigned>((total + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        gs.data_ptr<float>(), labels.data_ptr<int64_t>(), mask.data_ptr<bool>(), grad.data_ptr<scalar_t>(), D, HW, K,
        total);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CUDA, m) {
  m.impl("masked_class_sums", &masked_class_sums_cuda);
  m.impl("masked_class_sums_backward", &masked_class_sums_backward_cuda);
}

}  // namespace fastsegadv
