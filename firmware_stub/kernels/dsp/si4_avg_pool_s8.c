/*
 * si4_avg_pool_s8.c (DSP) - AVERAGE_POOL_2D for cores with the DSP extension.
 * Same contract and results as kernels/src/si4_avg_pool_s8.c (TFLM's
 * reference AveragePool: the sum over the window positions inside the input,
 * divided by their count with ties away from zero, clamped).
 *
 * Four channels per word: SXTAB16 adds bytes 0 and 2 of the input word to
 * two 16-bit lane sums, SXTAB16 of the word rotated by 8 bytes 1 and 3, so
 * four channels cost three instructions per window position. A lane holds
 * the exact sum while the window has at most 256 positions (256 * -128 =
 * -32768); larger windows, and the channels after the last group of four,
 * take the scalar loop.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"

/* Window positions whose int8 sum a 16-bit lane holds exactly. */
#define SI4_DSP_POOL_LANE_POSITIONS 256

static int8_t average_s8(int32_t sum, int32_t count, const si4_pool_params *params)
{
    int32_t average = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
    average = average < params->activation_min ? params->activation_min : average;
    average = average > params->activation_max ? params->activation_max : average;
    return (int8_t)average;
}

void si4_avg_pool_s8(const si4_pool_params *params, const int8_t *input, int8_t *output)
{
    const int32_t channels = params->channels;
    const int32_t input_row_stride = params->input_width * channels;
    int32_t out_y;
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        const int32_t in_y_origin = out_y * params->stride_height - params->pad_top;
        int32_t fy_start;
        int32_t fy_end;
        int32_t out_x;
        si4_pool_window_range(in_y_origin, params->filter_height, params->input_height, &fy_start, &fy_end);
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            const int32_t in_x_origin = out_x * params->stride_width - params->pad_left;
            int32_t fx_start;
            int32_t fx_end;
            int32_t count;
            int32_t c = 0;
            si4_pool_window_range(in_x_origin, params->filter_width, params->input_width, &fx_start, &fx_end);
            count = (fy_end > fy_start && fx_end > fx_start) ? (fy_end - fy_start) * (fx_end - fx_start) : 0;
            if (count == 0) {
                /* As the portable kernel: a window wholly in the padding writes 0. */
                for (c = 0; c < channels; ++c) {
                    output[c] = 0;
                }
                output += channels;
                continue;
            }
            if (count <= SI4_DSP_POOL_LANE_POSITIONS) {
                for (; c + 4 <= channels; c += 4) {
                    uint32_t sums_02 = 0;
                    uint32_t sums_13 = 0;
                    int32_t fy;
                    for (fy = fy_start; fy < fy_end; ++fy) {
                        const int8_t *source = input + (in_y_origin + fy) * input_row_stride +
                                               (in_x_origin + fx_start) * channels + c;
                        int32_t fx;
                        for (fx = fx_start; fx < fx_end; ++fx, source += channels) {
                            const uint32_t word = si4_dsp_load_s8x4(source);
                            sums_02 = (uint32_t)__sxtab16((int16x2_t)sums_02, (int8x4_t)word);
                            sums_13 = (uint32_t)si4_dsp_sxtab16_ror8(sums_13, word);
                        }
                    }
                    output[c] = average_s8((int16_t)(sums_02 & 0xFFFFu), count, params);
                    output[c + 1] = average_s8((int16_t)(sums_13 & 0xFFFFu), count, params);
                    output[c + 2] = average_s8((int16_t)(sums_02 >> 16), count, params);
                    output[c + 3] = average_s8((int16_t)(sums_13 >> 16), count, params);
                }
            }
            for (; c < channels; ++c) {
                int32_t sum = 0;
                int32_t fy;
                for (fy = fy_start; fy < fy_end; ++fy) {
                    const int8_t *input_row = input + (in_y_origin + fy) * input_row_stride + c;
                    int32_t fx;
                    for (fx = fx_start; fx < fx_end; ++fx) {
                        sum += input_row[(in_x_origin + fx) * channels];
                    }
                }
                output[c] = average_s8(sum, count, params);
            }
            output += channels;
        }
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_avg_pool_s8.c"
#endif
