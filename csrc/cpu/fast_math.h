// A branch-free expf that GCC/Clang auto-vectorise inside loops over pixels (Cephes polynomial,
// relative error ~1e-7 on [-87, 88]; returns 0 below -87.3, the range of exp(z - max) we need).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace fastsegadv {

inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

inline float vexp(float x) {
  const bool underflow = x < -87.3f;
  x = fminf(fmaxf(x, -87.3f), 88.3f);
  const float fx = floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const float scale = bits_to_float((static_cast<int32_t>(fx) + 127) << 23);
  return underflow ? 0.0f : y * scale;
}

}  // namespace fastsegadv
