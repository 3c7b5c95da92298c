/*
 * The host communicator's arithmetic (host_reduce.h): the element-wise
 * reduction of the ranks' values for every cgr_dtype and op, float16 and
 * bfloat16 through float32 as a GPU rounds them.
 */
#include "runtime/host/host_reduce.h"

#include <string.h>

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {
    /* Zero or subnormal: mantissa units of 2^-24, exact in a float. */
    float value = (float)mantissa * (1.0f / 16777216.0f);
    return sign ? -value : value;
  }
  uint32_t bits = exponent == 31
                      ? sign | 0x7f800000u | (mantissa << 13)
                      : sign | ((exponent + 112) << 23) | (mantissa << 13);
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

/* Round to nearest, ties to even, as a GPU's __float2half_rn. */
static uint16_t float_to_half(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  uint32_t sign = (bits >> 16) & 0x8000;
  uint32_t magnitude = bits & 0x7fffffff;
  if (magnitude > 0x7f800000) /* NaN stays NaN (quiet) */
    return (uint16_t)(sign | 0x7e00 | ((magnitude >> 13) & 0x3ff));
  if (magnitude >= 0x477ff000) /* 65520 and over round to infinity */
    return (uint16_t)(sign | 0x7c00);
  if (magnitude < 0x38800000) { /* under 2^-14: a subnormal or zero */
    if (magnitude < 0x33000000) /* under 2^-25: rounds to zero */
      return (uint16_t)sign;
    uint32_t exponent = magnitude >> 23;
    uint32_t mantissa = (magnitude & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - exponent; /* units of 2^-24 */
    uint32_t q = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (q & 1)))
      ++q;
    return (uint16_t)(sign | q);
  }
  uint32_t q = (magnitude >> 13) - (112u << 10);
  uint32_t rest = magnitude & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (q & 1)))
    ++q; /* a carry into the exponent is the right rounding */
  return (uint16_t)(sign | q);
}

static float bfloat16_to_float(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

static uint16_t float_to_bfloat16(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffff) > 0x7f800000)
    return (uint16_t)((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return (uint16_t)(bits >> 16);
}

/* The pairwise order of host_reduce.h, per type: after the pass of stride
 * s, v[r] for r a multiple of 2s holds ranks r to r + 2s - 1. Integer sums
 * and products are computed in the unsigned type W, so they wrap. */
#define DEFINE_REDUCE(suffix, T, W)                                            \
  static T combine_##suffix(T a, T b, cgr_reduce_op op) {                      \
    switch (op) {                                                              \
    case CGR_REDUCE_SUM:                                                       \
      return (T)((W)a + (W)b);                                                 \
    case CGR_REDUCE_PROD:                                                      \
      return (T)((W)a * (W)b);                                                 \
    case CGR_REDUCE_MAX:                                                       \
      return b > a ? b : a;                                                    \
    default:                                                                   \
      return b < a ? b : a;                                                    \
    }                                                                          \
  }                                                                            \
  static void reduce_##suffix(void *out, const void *const *in, int ranks,     \
                              size_t count, cgr_reduce_op op) {                \
    T v[CGR_GROUP_MAX_RANKS] = {0};                                            \
    for (size_t i = 0; i < count; ++i) {                                       \
      for (int r = 0; r < ranks; ++r)                                          \
        memcpy(&v[r], (const unsigned char *)in[r] + i * sizeof(T),            \
               sizeof(T));                                                     \
      for (int stride = 1; stride < ranks; stride *= 2)                        \
        for (int r = 0; r + stride < ranks; r += 2 * stride)                   \
          v[r] = combine_##suffix(v[r], v[r + stride], op);                    \
      memcpy((unsigned char *)out + i * sizeof(T), &v[0], sizeof(T));          \
    }                                                                          \
  }

DEFINE_REDUCE(int8, int8_t, uint8_t)
DEFINE_REDUCE(uint8, uint8_t, uint8_t)
DEFINE_REDUCE(int32, int32_t, uint32_t)
DEFINE_REDUCE(uint32, uint32_t, uint32_t)
DEFINE_REDUCE(int64, int64_t, uint64_t)
DEFINE_REDUCE(uint64, uint64_t, uint64_t)
DEFINE_REDUCE(float32, float, float)
DEFINE_REDUCE(float64, double, double)

/* float16 and bfloat16: widened to float32, reduced as float32 is, rounded
 * once at the end. */
static void reduce_half(void *out, const void *const *in, int ranks,
                        size_t count, cgr_reduce_op op, int bfloat) {
  float v[CGR_GROUP_MAX_RANKS] = {0};
  for (size_t i = 0; i < count; ++i) {
    for (int r = 0; r < ranks; ++r) {
      uint16_t h;
      memcpy(&h, (const unsigned char *)in[r] + i * sizeof h, sizeof h);
      v[r] = bfloat ? bfloat16_to_float(h) : half_to_float(h);
    }
    for (int stride = 1; stride < ranks; stride *= 2)
      for (int r = 0; r + stride < ranks; r += 2 * stride)
        v[r] = combine_float32(v[r], v[r + stride], op);
    uint16_t h = bfloat ? float_to_bfloat16(v[0]) : float_to_half(v[0]);
    memcpy((unsigned char *)out + i * sizeof h, &h, sizeof h);
  }
}

void cgr__host_reduce(void *out, const void *const *in, int ranks, size_t count,
                      cgr_dtype dtype, cgr_reduce_op op) {
  switch (dtype) {
  case CGR_DTYPE_INT8:
    reduce_int8(out, in, ranks, count, op);
    break;
  case CGR_DTYPE_UINT8:
    reduce_uint8(out, in, ranks, count, op);
    break;
  case CGR_DTYPE_INT32:
    reduce_int32(out, in, ranks, count, op);
    break;
  case CGR_DTYPE_UINT32:
    reduce_uint32(out, in, ranks, count, op);
    break;
  case CGR_DTYPE_INT64:
    reduce_int64(out, in, ranks, count, op);
    break;
  case CGR_DTYPE_UINT64:
    reduce_uint64(out, in, ranks, count, op);
    break;
  case CGR_DTYPE_FLOAT16:
    reduce_half(out, in, ranks, count, op, 0);
    break;
  case CGR_DTYPE_BFLOAT16:
    reduce_half(out, in, ranks, count, op, 1);
    break;
  case CGR_DTYPE_FLOAT32:
    reduce_float32(out, in, ranks, count, op);
    break;
  default:
    reduce_float64(out, in, ranks, count, op);
    break;
  }
}
