// CUDA kernel of fastsegadv::linf_step (see cpu/attack_step_cpu.cpp): one elementwise pass for the ℓ∞
// PGD update, same order of operations as the eager update.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../step_layout.h"

namespace fastsegadv {
namespace {

template <typename scalar_t>
__global__ void linf_step_kernel(const scalar_t* __restrict__ pa, const scalar_t* __restrict__ pg,
                                 const scalar_t* __restrict__ px, scalar_t* __restrict__ po, int64_t n,
                                 at::opmath_type<scalar_t> a, at::opmath_type<scalar_t> e) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const opmath_t g = static_cast<opmath_t>(pg[i]);
    const opmath_t s = static_cast<opmath_t>((g > 0) - (g < 0));
    const scalar_t v = static_cast<scalar_t>(static_cast<opmath_t>(pa[i]) + static_cast<scalar_t>(a * s));
    const scalar_t d = static_cast<scalar_t>(static_cast<opmath_t>(v) - static_cast<opmath_t>(px[i]));
    const opmath_t dc = fmin(fmax(static_cast<opmath_t>(d), -e), e);
    const scalar_t y = static_cast<scalar_t>(static_cast<opmath_t>(px[i]) + static_cast<opmath_t>(static_cast<scalar_t>(dc)));
    po[i] = static_cast<scalar_t>(fmin(fmax(static_cast<opmath_t>(y), opmath_t(0)), opmath_t(1)));
  }
}

at::Tensor linf_step_cuda(const at::Tensor& x_adv_in, const at::Tensor& grad_in, const at::Tensor& x_in, double alpha,
                          double eps) {
  TORCH_CHECK(x_adv_in.sizes() == grad_in.sizes() && x_adv_in.sizes() == x_in.sizes(),
              "linf_step: x_adv, grad and x must have the same shape");
  c10::cuda::CUDAGuard guard(x_in.device());
  // x's layout (NCHW or channels_last) is kept: the three inputs are made dense in it and walked flat
  const auto fmt = step_memory_format(x_in);
  const at::Tensor x_adv = x_adv_in.contiguous(fmt), grad = grad_in.contiguous(fmt), x = x_in.contiguous(fmt);
  at::Tensor out = at::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return out;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "linf_step_cuda", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    linf_step_kernel<scalar_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x_adv.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n,
        static_cast<opmath_t>(alpha), static_cast<opmath_t>(eps));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CUDA, m) { m.impl("linf_step", &linf_step_cuda); }

}  // namespace fastsegadv
