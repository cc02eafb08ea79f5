/*
 * si4_mean_s8.c - MEAN over a run of contiguous axes, int8 (global average
 * pooling is axes 1 and 2 of [N, H, W, C], keep_dims either way: the bytes
 * are the same).
 *
 * For each (outer, inner): sum = sum over the reduced axis of x (int32);
 * out = clamp(MBQM(sum + sum_offset, M', s') + output_zero_point, -128, 127)
 * with sum_offset = -input_zero_point * n and (M', s') the input/output
 * rescale with 1/n folded in at build time: TFLM
 * reference_ops::QuantizedMeanOrSum (kernels/internal/reference/reduce.h,
 * the path micro/kernels/reduce_common.cc takes for every int8 MEAN).
 * The caller guarantees n * 255 < 2^31 (si4tool checks it).
 */
#include "si4_nn_ops.h"
#include "si4_requant.h"

void si4_mean_s8(const si4_mean_params *params, const int8_t *input, int8_t *output)
{
    const int32_t reduced = params->reduced_size;
    const int32_t inner = params->inner_size;
    int32_t outer;
    for (outer = 0; outer < params->outer_size; ++outer) {
        const int8_t *slab = input + outer * reduced * inner;
        int32_t c;
        for (c = 0; c < inner; ++c) {
            int32_t sum = params->sum_offset;
            int32_t r;
            for (r = 0; r < reduced; ++r) {
                sum += slab[r * inner + c];
            }
            output[outer * inner + c] = si4_requantize_s8(sum, params->output_multiplier, params->output_shift,
                                                          params->output_zero_point, INT8_MIN, INT8_MAX);
        }
    }
}
