/*
 * si4_softmax_s8.c - SOFTMAX, int8 in, int8 out (scale 1/256, zero point -128).
 *
 * Bit-exact with the path TFLM's SOFTMAX kernel takes for int8 -> int8
 * (micro/kernels/softmax.cc -> reference_ops::Softmax<int8_t, int8_t> in
 * kernels/internal/reference/softmax.h), which uses gemmlowp fixed point:
 *   d      = x - max(row), skipped (output -128) when d < diff_min
 *   s      = SaturatingRoundingDoublingHighMul(d << input_left_shift,
 *                                              input_multiplier)   Q5.26
 *   e      = exp_on_negative_values(s)                              Q0.31
 *   sum    = sum of e rescaled to Q12.19
 *   1/sum  = GetReciprocal(sum): Q0.31 of 1/(sum normalised to [1, 2)) and
 *            num_bits_over_unit
 *   out    = RoundingDivideByPOT(e * (1/sum), num_bits_over_unit + 31 - 8)
 *            - 128, clamped to int8.
 * The fixed-point helpers below restate gemmlowp's fixedpoint.h for int32
 * raw values with the Q formats written out (kScaledDiffIntegerBits = 5,
 * kAccumulationIntegerBits = 12).
 */
#include "si4_nn.h"

#include "si4_requant.h"

#define SI4_SOFTMAX_SCALED_DIFF_INTEGER_BITS 5
#define SI4_SOFTMAX_ACCUMULATION_INTEGER_BITS 12

/* Wrapping int32 add and subtract: gemmlowp's plain Add/Sub (never overflow
 * on the values that occur here; wrapping keeps this free of UB regardless). */
static int32_t si4_add_wrap(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int32_t si4_sub_wrap(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent:
 * x * 2^exponent saturated to the int32 range. */
static int32_t si4_saturating_left_shift(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: gemmlowp's Taylor expansion
 * around -1/8 (exp_on_interval_between_negative_one_quarter_and_0_excl). */
static int32_t si4_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
    const int32_t x = si4_add_wrap(a, (int32_t)1 << 28); /* a + 1/8 */
    const int32_t x2 = si4_saturating_rounding_doubling_high_mul(x, x);
    const int32_t x3 = si4_saturating_rounding_doubling_high_mul(x2, x);
    const int32_t x4 = si4_saturating_rounding_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = si4_rounding_divide_by_pot(x4, 2);
    const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 = si4_rounding_divide_by_pot(
        si4_add_wrap(si4_saturating_rounding_doubling_high_mul(si4_add_wrap(x4_over_4, x3), constant_1_over_3),
                     x2),
        1);
    return si4_add_wrap(constant_term,
                        si4_saturating_rounding_doubling_high_mul(
                            constant_term, si4_add_wrap(x, x4_over_24_plus_x3_over_6_plus_x2_over_2)));
}

/* exp(a) for a <= 0, a in Q5.26, result Q0.31 (gemmlowp exp_on_negative_values
 * with 5 integer bits): exp of a mod 1/4 from the series, then one
 * multiplication by exp(-2^k) for every set bit k of the remainder. */
static int32_t si4_exp_on_negative_values_q5_26(int32_t a)
{
    static const int32_t exp_of_minus_power_of_two[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1) */
        290630308,  /* exp(-2) */
        39332535,   /* exp(-4) */
        720401,     /* exp(-8) */
        242,        /* exp(-16) */
    };
    const int32_t fractional_bits = 31 - SI4_SOFTMAX_SCALED_DIFF_INTEGER_BITS;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_one_quarter = si4_sub_wrap(a & (one_quarter - 1), one_quarter);
    const int32_t remainder = si4_sub_wrap(a_mod_quarter_minus_one_quarter, a);
    int32_t result = si4_exp_on_interval_between_negative_one_quarter_and_0_excl(
        si4_saturating_left_shift(a_mod_quarter_minus_one_quarter, SI4_SOFTMAX_SCALED_DIFF_INTEGER_BITS));
    int32_t k;
    for (k = 0; k < 7; ++k) {
        /* bit for 2^(k - 2) in Q5.26 */
        if (remainder & ((int32_t)1 << (fractional_bits - 2 + k))) {
            result = si4_saturating_rounding_doubling_high_mul(result, exp_of_minus_power_of_two[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: gemmlowp's
 * one_over_one_plus_x_for_x_in_0_1, Newton-Raphson in Q2.29. */
static int32_t si4_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    const int32_t one_q2_29 = (int32_t)1 << 29;
    /* RoundingHalfSum(a, 1.0): (a + INT32_MAX +/- 1) / 2 in 64 bits */
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = si4_add_wrap(constant_48_over_17,
                             si4_saturating_rounding_doubling_high_mul(half_denominator, constant_neg_32_over_17));
    int32_t iteration;
    for (iteration = 0; iteration < 3; ++iteration) {
        const int32_t half_denominator_times_x = si4_saturating_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = si4_sub_wrap(one_q2_29, half_denominator_times_x);
        /* Q2.29 * Q2.29 = Q4.27, back to Q2.29 */
        x = si4_add_wrap(x, si4_saturating_left_shift(
                                si4_saturating_rounding_doubling_high_mul(x, one_minus_half_denominator_times_x), 2));
    }
    /* x / 2 as Q1.30, rescaled to Q0.31 */
    return si4_saturating_left_shift(x, 1);
}

static int32_t si4_count_leading_zeros(uint32_t value)
{
    int32_t count = 0;
    if (value == 0) {
        return 32;
    }
    while ((value & 0x80000000u) == 0) {
        value <<= 1;
        ++count;
    }
    return count;
}

/* TFLite GetReciprocal for a positive Q(x_integer_digits) value. */
static int32_t si4_get_reciprocal(int32_t x, int32_t x_integer_digits, int32_t *num_bits_over_unit)
{
    const int32_t headroom_plus_one = si4_count_leading_zeros((uint32_t)x);
    const int32_t shifted_sum_minus_one =
        (int32_t)(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    return si4_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}

/* input_diff * 2^input_left_shift as Q5.26 (TFLM's
 * MultiplyByQuantizedMultiplierGreaterThanOne). diff >= diff_min guarantees
 * the shifted value fits in int32. */
static int32_t si4_softmax_scaled_diff(int32_t input_diff, const si4_softmax_params *params)
{
    const int32_t shifted = (int32_t)((uint32_t)input_diff << params->input_left_shift);
    return si4_saturating_rounding_doubling_high_mul(shifted, params->input_multiplier);
}

void si4_softmax_s8(const si4_softmax_params *params, const int8_t *input, int8_t *output)
{
    const int32_t row_size = params->row_size;
    int32_t row;
    for (row = 0; row < params->rows; ++row) {
        const int8_t *input_row = input + row * row_size;
        int8_t *output_row = output + row * row_size;
        int32_t max_in_row = INT8_MIN;
        int32_t sum_of_exps = 0; /* Q12.19 */
        int32_t num_bits_over_unit;
        int32_t reciprocal;
        int32_t exponent;
        int32_t c;
        for (c = 0; c < row_size; ++c) {
            if (input_row[c] > max_in_row) {
                max_in_row = input_row[c];
            }
        }
        for (c = 0; c < row_size; ++c) {
            const int32_t input_diff = (int32_t)input_row[c] - max_in_row;
            if (input_diff >= params->diff_min) {
                const int32_t exp_q0_31 = si4_exp_on_negative_values_q5_26(si4_softmax_scaled_diff(input_diff, params));
                sum_of_exps = si4_add_wrap(
                    sum_of_exps, si4_rounding_divide_by_pot(exp_q0_31, SI4_SOFTMAX_ACCUMULATION_INTEGER_BITS));
            }
        }
        reciprocal = si4_get_reciprocal(sum_of_exps, SI4_SOFTMAX_ACCUMULATION_INTEGER_BITS, &num_bits_over_unit);
        exponent = num_bits_over_unit + 31 - 8;
        for (c = 0; c < row_size; ++c) {
            const int32_t input_diff = (int32_t)input_row[c] - max_in_row;
            int32_t result = INT8_MIN;
            if (input_diff >= params->diff_min) {
                const int32_t exp_q0_31 = si4_exp_on_negative_values_q5_26(si4_softmax_scaled_diff(input_diff, params));
                const int32_t unsaturated =
                    si4_rounding_divide_by_pot(si4_saturating_rounding_doubling_high_mul(reciprocal, exp_q0_31), exponent);
                result = unsaturated - 128;
                if (result < INT8_MIN) {
                    result = INT8_MIN;
                }
                if (result > INT8_MAX) {
                    result = INT8_MAX;
                }
            }
            output_row[c] = (int8_t)result;
        }
    }
}
