/*
 * si4_add_s8.c (DSP) - ADD for cores with the DSP extension. Same contract
 * and results, bit for bit, as kernels/src/si4_add_s8.c (TFLM's
 * reference_integer_ops::Add with broadcasting).
 *
 * The arithmetic cannot be done in SIMD lanes exactly (each input is
 * rescaled with a 32-bit multiplier), so the gain is in the scalar work:
 * every constant is derived once per call instead of once per element, and
 * each input's rescaling is one SMMULR plus the rounding shift:
 * |(v + offset) << left_shift| < 2^29 (left shift 20, |v + offset| <= 255),
 * so doubling it cannot overflow and
 *   floor((a * m + 2^30) / 2^31) = floor((2a * m + 2^31) / 2^32) = SMMULR(2a, m),
 * gemmlowp's high multiply without its saturation (which needs a = INT32_MIN);
 * |high| < 2^29, so RoundingDivideByPOT by r >= 1 is
 * (high + 2^(r-1) + (high < 0 ? -1 : 0)) >> r, ties away from zero. The
 * sum of the two is below 2^29 too, so the output's scaling is the same step
 * when its shift is a right shift; otherwise it goes through
 * si4_dsp_scale_apply (si4_multiply_by_quantized_multiplier, bit for bit).
 * Other input shifts (a left shift, a larger headroom) take the portable
 * arithmetic per element.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_requant.h"

/* One input's rescaling constants. */
typedef struct {
    int32_t offset;
    int32_t doubling_shift; /* left_shift + 1 */
    int32_t multiplier;
    int32_t round;          /* 2^(r-1), 0 for r = 0 */
    int32_t sign_mask;      /* -1 for r >= 1 (the tie correction), 0 for r = 0 */
    int32_t right_shift;
} si4_dsp_add_input;

static inline int32_t si4_dsp_add_smmulr(int32_t a, int32_t b)
{
    int32_t result;
    __asm__("smmulr %0, %1, %2" : "=r"(result) : "r"(a), "r"(b));
    return result;
}

static void si4_dsp_add_input_init(int32_t offset, int32_t multiplier, int32_t shift, int32_t left_shift,
                                   si4_dsp_add_input *input)
{
    const int32_t right_shift = -shift;
    input->offset = offset;
    input->doubling_shift = left_shift + 1;
    input->multiplier = multiplier;
    input->right_shift = right_shift;
    input->round = right_shift >= 1 ? (int32_t)((uint32_t)1 << (right_shift - 1)) : 0;
    input->sign_mask = right_shift >= 1 ? -1 : 0;
}

static inline int32_t si4_dsp_add_rescale(int32_t value, const si4_dsp_add_input *input)
{
    const int32_t high = si4_dsp_add_smmulr((int32_t)((uint32_t)(value + input->offset) << input->doubling_shift),
                                            input->multiplier);
    return (high + input->round + ((high >> 31) & input->sign_mask)) >> input->right_shift;
}

/* The output's clamp of an int32 value (si4_dsp_output_s8 without the offset). */
static inline int8_t si4_dsp_add_clamp(int32_t value, const si4_dsp_output *out)
{
    return (int8_t)si4_dsp_clamp(value, out->low, out->high);
}

void si4_add_s8(const si4_add_params *params, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    si4_dsp_add_input in1;
    si4_dsp_add_input in2;
    si4_dsp_scale out_scale;
    si4_dsp_output out;
    int32_t i0;
    int32_t i1;
    int32_t i2;
    int32_t i3;
    int32_t position = 0;
    /* The SMMULR rescaling needs a right shift (or none) of each input and 255 << left_shift < 2^29. */
    const int32_t fast = params->input1_shift <= 0 && params->input2_shift <= 0 && params->input1_shift >= -31 &&
                         params->input2_shift >= -31 && params->left_shift >= 0 && params->left_shift <= 20;
    si4_dsp_add_input_init(params->input1_offset, params->input1_multiplier, params->input1_shift, params->left_shift,
                           &in1);
    si4_dsp_add_input_init(params->input2_offset, params->input2_multiplier, params->input2_shift, params->left_shift,
                           &in2);
    /* The sum is below 2^29 in magnitude on the fast path, so the output's
     * scaling is the same SMMULR step when it shifts right (or not at all). */
    const int32_t fast_output = fast && params->output_shift <= 0 && params->output_shift >= -31;
    si4_dsp_add_input out_rescale;
    si4_dsp_add_input_init(params->output_offset, params->output_multiplier, params->output_shift, 0, &out_rescale);
    out_rescale.offset = 0;
    si4_dsp_scale_init(params->output_multiplier, params->output_shift, &out_scale);
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    for (i0 = 0; i0 < params->dim_0; ++i0) {
        for (i1 = 0; i1 < params->dim_1; ++i1) {
            for (i2 = 0; i2 < params->dim_2; ++i2) {
                const int8_t *row1 = input1 + i0 * params->input1_stride_0 + i1 * params->input1_stride_1 +
                                     i2 * params->input1_stride_2;
                const int8_t *row2 = input2 + i0 * params->input2_stride_0 + i1 * params->input2_stride_1 +
                                     i2 * params->input2_stride_2;
                const int32_t step1 = params->input1_stride_3;
                const int32_t step2 = params->input2_stride_3;
                if (fast_output) {
                    for (i3 = 0; i3 < params->dim_3; ++i3) {
                        const int32_t sum = si4_dsp_add_rescale(row1[i3 * step1], &in1) +
                                            si4_dsp_add_rescale(row2[i3 * step2], &in2);
                        output[position++] = si4_dsp_add_clamp(
                            (int32_t)((uint32_t)si4_dsp_add_rescale(sum, &out_rescale) + (uint32_t)params->output_offset),
                            &out);
                    }
                } else if (fast) {
                    for (i3 = 0; i3 < params->dim_3; ++i3) {
                        const int32_t sum = si4_dsp_add_rescale(row1[i3 * step1], &in1) +
                                            si4_dsp_add_rescale(row2[i3 * step2], &in2);
                        output[position++] = si4_dsp_output_s8(si4_dsp_scale_apply(sum, &out_scale), &out);
                    }
                } else {
                    for (i3 = 0; i3 < params->dim_3; ++i3) {
                        const int32_t shifted1 = (row1[i3 * step1] + params->input1_offset) * ((int32_t)1 << params->left_shift);
                        const int32_t shifted2 = (row2[i3 * step2] + params->input2_offset) * ((int32_t)1 << params->left_shift);
                        const int32_t sum =
                            si4_multiply_by_quantized_multiplier(shifted1, params->input1_multiplier, params->input1_shift) +
                            si4_multiply_by_quantized_multiplier(shifted2, params->input2_multiplier, params->input2_shift);
                        output[position++] = si4_dsp_output_s8(si4_dsp_scale_apply(sum, &out_scale), &out);
                    }
                }
            }
        }
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_add_s8.c"
#endif
