// fastsegadv::label_counts on CPU: one parallel pass over the labels counting the valid pixels
// (label != ignore_index) and the labels that are neither ignore_index nor a class in [0, C). The loss
// checks the labels and gets N_v (the mean's normaliser) from it, without allocating a [B, H, W] mask
// (fresh pages cost more than the compares).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

namespace fastsegadv {
namespace {

template <typename label_t>
void count(const label_t* y, int64_t n, int64_t C, int64_t ignore, int64_t* out) {
  struct Acc {
    int64_t valid = 0, bad = 0;
  };
  constexpr int64_t kGrain = 1 << 16;
  const int64_t chunks = (n + kGrain - 1) / kGrain;
  std::vector<Acc> part(static_cast<size_t>(std::max<int64_t>(chunks, 1)));
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t valid = 0, bad = 0;
      const int64_t i1 = std::min(n, (c + 1) * kGrain);
      for (int64_t i = c * kGrain; i < i1; ++i) {
        const int64_t v = static_cast<int64_t>(y[i]);
        const bool is_valid = v != ignore;
        valid += is_valid;
        bad += is_valid & ((v < 0) | (v >= C));
      }
      part[c] = {valid, bad};
    }
  });
  out[0] = out[1] = 0;
  for (const Acc& a : part) {  // fixed order
    out[0] += a.valid;
    out[1] += a.bad;
  }
}

at::Tensor label_counts_cpu(const at::Tensor& labels_in, int64_t num_classes, int64_t ignore_index) {
  TORCH_CHECK(!labels_in.is_floating_point() && labels_in.scalar_type() != at::kBool, "labels must be integers");
  const at::Tensor labels = labels_in.contiguous();
  at::Tensor out = at::empty({2}, labels.options().dtype(at::kLong));
  AT_DISPATCH_INTEGRAL_TYPES(labels.scalar_type(), "label_counts_cpu", [&] {
    count<scalar_t>(labels.data_ptr<scalar_t>(), labels.numel(), num_classes, ignore_index, out.data_ptr<int64_t>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsegadv, CPU, m) { m.impl("label_counts", &label_counts_cpu); }

}  // namespace fastsegadv
