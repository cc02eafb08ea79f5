/*
 * si4_quantize_s8.c - QUANTIZE int8 -> int8 (requantization).
 *
 * out = clamp(MBQM(x - input_zero_point, M, s) + output_zero_point, -128, 127)
 * with M * 2^(s - 31) = (double)input_scale / (double)output_scale: TFLM's
 * reference_ops::Requantize (micro/kernels/quantize_common.cc). Its xor-0x80
 * fast path applies only between int8 and uint8, never int8 -> int8.
 */
#include "si4_nn_ops.h"
#include "si4_requant.h"

void si4_quantize_s8(const si4_quantize_params *params, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < params->size; ++i) {
        output[i] = si4_requantize_s8((int32_t)input[i] - params->input_zero_point, params->output_multiplier,
                                      params->output_shift, params->output_zero_point, INT8_MIN, INT8_MAX);
    }
}
