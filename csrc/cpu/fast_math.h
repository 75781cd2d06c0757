// A branch-free expf that GCC auto-vectorises inside loops over pixels (Cephes polynomial, relative
// error ~1e-7 on [-87.3, 88.3]; inputs below are clamped, so exp(x < -87.3) = 1.2e-38 instead of 0,
// which changes no sum of exp(z - max) >= 1). Written with integer rounding and fmin/fmax only, built
// with -ffinite-math-only -fno-trapping-math (setup.py): floorf, or a select around an FP product,
// stops the vectoriser.
#pragma once

#include <cstdint>

namespace fastsegadv {

__attribute__((always_inline)) inline float vexp(float x) {
  x = __builtin_fmaxf(x, -87.3f);  // MAXPS/MINPS under -ffinite-math-only (setup.py)
  x = __builtin_fminf(x, 88.3f);
  const float t = x * 1.44269504088896341f;
  const int32_t i = static_cast<int32_t>(t + (t >= 0.f ? 0.5f : -0.5f));  // round to nearest
  const float fx = static_cast<float>(i);
  float r = x - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const float scale = __builtin_bit_cast(float, (i + 127) << 23);
  return y * scale;
}

}  // namespace fastsegadv
