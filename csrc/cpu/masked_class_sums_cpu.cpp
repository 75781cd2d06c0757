// Masked per-class sums of features (RP-PGD prototypes, 003 Eq. 5), CPU:
//   sums[b, k, c] = sum_{p : mask[b,p], labels[b,p] = k} features[b, c, p],  counts[b, k] = |{p : ...}|
// One task per (image, channel) walks the pixels in order and accumulates a K-bin histogram in double:
// a fixed-order segmented reduction (deterministic, no atomics). Backward: a gather,
//   dL/dfeatures[b, c, p] = mask[b,p] ? dL/dsums[b, labels[b,p], c] : 0.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

namespace fastsegadv {
namespace {

void check(const at::Tensor& features, const at::Tensor& labels, const at::Tensor& mask, int64_t K) {
  TORCH_CHECK(features.dim() == 4, "features must be [B, d, h, w]");
  TORCH_CHECK(labels.scalar_type() == at::kLong && labels.dim() == 3, "labels must be int64 [B, h, w]");
  TORCH_CHECK(mask.scalar_type() == at::kBool && mask.sizes() == labels.sizes(), "mask must be bool [B, h, w]");
  TORCH_CHECK(labels.size(0) == features.size(0) && labels.size(1) == features.size(2) &&
                  labels.size(2) == features.size(3),
              "labels must be [B, h, w] like the features");
  TORCH_CHECK(K >= 1, "num_classes must be >= 1");
}

std::tuple<at::Tensor, at::Tensor> masked_class_sums_cpu(const at::Tensor& features_in, const at::Tensor& labels_in,
                                                         const at::Tensor& mask_in, int64_t K) {
  check(features_in, labels_in, mask_in, K);
  const at::Tensor f = features_in.contiguous();
  const at::Tensor labels = labels_in.contiguous();
  const at::Tensor mask = mask_in.contiguous();
  const int64_t B = f.size(0), D = f.size(1), HW = f.size(2) * f.size(3);
  at::Tensor sums = at::zeros({B, K, D}, f.options().dtype(at::kFloat));
  at::Tensor counts = at::zeros({B, K}, f.options().dtype(at::kFloat));
  const int64_t* lab = labels.data_ptr<int64_t>();
  const bool* msk = mask.data_ptr<bool>();
  float* s = sums.data_ptr<float>();
  float* cnt = counts.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < HW; ++p) {
      const int64_t i = b * HW + p;
      if (msk[i]) {
        TORCH_CHECK(lab[i] >= 0 && lab[i] < K, "label ", lab[i], " outside [0, ", K, ") inside the mask");
        cnt[b * K + lab[i]] += 1.f;
      }
    }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "masked_class_sums_cpu", [&] {
    const scalar_t* fp = f.data_ptr<scalar_t>();
    at::parallel_for(0, B * D, 1, [&](int64_t begin, int64_t end) {
      std::vector<double> acc(K);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / D, c = task % D;
        std::fill(acc.begin(), acc.end(), 0.0);
        const scalar_t* row = fp + (b * D + c) * HW;
        const int64_t* lb = lab + b * HW;
        const bool* mb = msk + b * HW;
        for (int64_t p = 0; p < HW; ++p)
          if (mb[p]) acc[lb[p]] += static_cast<double>(row[p]);
        for (int64_t k = 0; k < K; ++k) s[(b * K + k) * D + c] = static_cast<float>(acc[k]);
      }
    });
  });
  return {sums, counts};
}

at::Tensor masked_class_sums_backward_cpu(const at::Tensor& grad_sums_in, const at::Tensor& features,
                                          const at::Tensor& labels_in, const at::Tensor& mask_in) {
  const int64_t K = grad_sums_in.size(1);
  check(features, labels_in, mask_in, K);
  const at::Tensor gs = grad_sums_in.to(at::kFloat).contiguous();
  const at::Tensor labels = labels_in.contiguous();
  const at::Tensor mask = mask_in.contiguous();
  const int64_t B = features.size(0), D = features.size(1), HW = features.size(2) * features.size(3);
  at::Tensor grad = at::empty({B, D, features.size(2), features.size(3)}, features.options());
  const int64_t* lab = labels.data_ptr<int64_t>();
  const bool* msk = mask.data_ptr<bool>();
  const float* g = gs.data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "masked_class_sums_backward_cpu", [&] {
    scalar_t* out = grad.data_ptr<scalar_t>();
    at::parallel_for(0, B * D, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / D, c = task % D;
        scalar_t* row = out + (b * D + c) * HW;
        for (int64_t p = 0; p < HW; ++p) {
          const int64_t i = b * HW + p;
          row[p] = static_cast<scalar_t>(msk[i] ? g[(b * K + lab[i]) * D + c] : 0.f);
        }
      }
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CPU, m) {
  m.impl("masked_class_sums", &masked_class_sums_cpu);
  m.impl("masked_class_sums_backward", &masked_class_sums_backward_cpu);
}

}  // namespace fastsegadv
