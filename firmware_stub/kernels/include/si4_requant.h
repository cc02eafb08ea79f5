/*
 * si4_requant.h - fixed-point requantization helpers shared by the kernels.
 *
 * These reproduce, bit for bit, the arithmetic TensorFlow Lite Micro uses:
 * gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT
 * (third_party/gemmlowp/fixedpoint/fixedpoint.h) and TFLite's default,
 * double-rounding MultiplyByQuantizedMultiplier
 * (tensorflow/lite/kernels/internal/common.cc, the branch compiled when
 * TFLITE_SINGLE_ROUNDING is not defined, which is how TFLM ships).
 *
 * A real multiplier M is represented as (multiplier, shift) with
 * M = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) (or 0).
 * shift > 0 is a left shift applied before the high multiply, shift <= 0 a
 * rounding right shift applied after it.
 *
 * Implementation-defined behaviour relied upon (true for GCC and Clang on
 * every target we build for, and for the compilers TFLM itself is built with):
 * right shift of a negative int32_t is arithmetic, and converting an
 * out-of-range uint32_t to int32_t wraps modulo 2^32.
 */
#ifndef SI4_REQUANT_H
#define SI4_REQUANT_H

#include <stdint.h>

/* round(a * b / 2^31) with ties toward +infinity (the nudge is 2^30 for a
 * non-negative product, 1 - 2^30 for a negative one, then the division
 * truncates), saturating the single overflow case a == b == INT32_MIN to
 * INT32_MAX: gemmlowp's SaturatingRoundingDoublingHighMul, ARM's SQRDMULH.
 * The product needs 64 bits; |a * b| <= 2^62, so adding the nudge cannot
 * overflow. */
static inline int32_t si4_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    {
        const int64_t product = (int64_t)a * (int64_t)b;
        const int64_t nudge = product >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
        /* C99 division truncates toward zero, as gemmlowp's does. */
        return (int32_t)((product + nudge) / ((int64_t)1 << 31));
    }
}

/* x / 2^exponent rounded to nearest, ties away from zero (gemmlowp's
 * RoundingDivideByPOT). exponent in [0, 31]. */
static inline int32_t si4_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^(shift - 31) with TFLM's double rounding:
 * RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^left, multiplier), right).
 * TFLM computes x * (1 << left_shift) in int32 and lets it wrap (the function
 * is marked no-sanitize); the shift is done in uint32 here to get the same
 * bits without undefined behaviour. */
static inline int32_t si4_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return si4_rounding_divide_by_pot(si4_saturating_rounding_doubling_high_mul(shifted, multiplier),
                                      right_shift);
}

/* Requantize an int32 accumulator to int8: scale, add the output zero point,
 * clamp to the fused activation range (TFLM's integer conv/fc epilogue). The
 * zero point is added with wrap-around, as TFLM's int32 `acc += output_offset`
 * behaves in practice, so even absurd multipliers stay free of UB. */
static inline int8_t si4_requantize_s8(int32_t acc,
                                       int32_t multiplier,
                                       int32_t shift,
                                       int32_t output_offset,
                                       int32_t activation_min,
                                       int32_t activation_max)
{
    const int32_t scaled = si4_multiply_by_quantized_multiplier(acc, multiplier, shift);
    int32_t result = (int32_t)((uint32_t)scaled + (uint32_t)output_offset);
    if (result < activation_min) {
        result = activation_min;
    }
    if (result > activation_max) {
        result = activation_max;
    }
    return (int8_t)result;
}

#endif /* SI4_REQUANT_H */
