// CPU kernel of fastsegadv::linf_step: one pass for the ℓ∞ PGD update (001 Eq. 1)
//     v = x_adv + alpha * sign(g);  d = clamp(v - x, -eps, eps);  out = clamp(x + d, 0, 1)
// in the same order of operations as the eager update (so the results are bitwise identical to it).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../step_layout.h"

namespace fastsegadv {
namespace {

at::Tensor linf_step_cpu(const at::Tensor& x_adv_in, const at::Tensor& grad_in, const at::Tensor& x_in, double alpha,
                         double eps) {
  TORCH_CHECK(x_adv_in.sizes() == grad_in.sizes() && x_adv_in.sizes() == x_in.sizes(),
              "linf_step: x_adv, grad and x must have the same shape");
  TORCH_CHECK(x_adv_in.scalar_type() == x_in.scalar_type() && grad_in.scalar_type() == x_in.scalar_type(),
              "linf_step: x_adv, grad and x must have the same dtype");
  // x's layout (NCHW or channels_last) is kept: the three inputs are made dense in it and walked flat
  const auto fmt = step_memory_format(x_in);
  const at::Tensor x_adv = x_adv_in.contiguous(fmt), grad = grad_in.contiguous(fmt), x = x_in.contiguous(fmt);
  at::Tensor out = at::empty_like(x);
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "linf_step_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t *pa = x_adv.data_ptr<scalar_t>(), *pg = grad.data_ptr<scalar_t>(), *px = x.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    const opmath_t a = static_cast<opmath_t>(alpha), e = static_cast<opmath_t>(eps);
    at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const opmath_t g = static_cast<opmath_t>(pg[i]);
        const opmath_t s = static_cast<opmath_t>((g > 0) - (g < 0));  // sign, 0 at 0
        const scalar_t v = static_cast<scalar_t>(static_cast<opmath_t>(pa[i]) + static_cast<scalar_t>(a * s));
        const scalar_t d = static_cast<scalar_t>(static_cast<opmath_t>(v) - static_cast<opmath_t>(px[i]));
        const opmath_t dc = std::min(std::max(static_cast<opmath_t>(d), -e), e);
        const scalar_t y = static_cast<scalar_t>(static_cast<opmath_t>(px[i]) + static_cast<opmath_t>(static_cast<scalar_t>(dc)));
        po[i] = static_cast<scalar_t>(std::min(std::max(static_cast<opmath_t>(y), opmath_t(0)), opmath_t(1)));
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CPU, m) { m.impl("linf_step", &linf_step_cpu); }

}  // namespace fastsegadv
