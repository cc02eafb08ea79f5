/*
 * si4_max_pool_s8.c (DSP) - MAX_POOL_2D for cores with the DSP extension.
 * Same contract and results as kernels/src/si4_max_pool_s8.c (TFLM's
 * reference MaxPool: padding ignored, start from -128, clamp).
 *
 * Four channels per word: SSUB8 sets the per-byte GE flags from a - b, SEL
 * then picks the larger byte of each lane, so a 4-channel maximum is two
 * instructions. Left-over channels use the scalar loop.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"

static uint32_t max_s8x4(uint32_t a, uint32_t b)
{
    (void)__ssub8((int8x4_t)a, (int8x4_t)b);
    return __sel(a, b);
}

static uint32_t min_s8x4(uint32_t a, uint32_t b)
{
    (void)__ssub8((int8x4_t)a, (int8x4_t)b);
    return __sel(b, a);
}

static uint32_t splat_s8(int32_t value)
{
    return ((uint32_t)value & 0xFFu) * 0x01010101u;
}

void si4_max_pool_s8(const si4_pool_params *params, const int8_t *input, int8_t *output)
{
    const int32_t channels = params->channels;
    const int32_t input_row_stride = params->input_width * channels;
    const uint32_t floor_word = splat_s8(params->activation_min);
    const uint32_t ceiling_word = splat_s8(params->activation_max);
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
            int32_t c = 0;
            si4_pool_window_range(in_x_origin, params->filter_width, params->input_width, &fx_start, &fx_end);
            for (; c + 4 <= channels; c += 4) {
                uint32_t max_word = 0x80808080u; /* -128 in every lane */
                int32_t fy;
                for (fy = fy_start; fy < fy_end; ++fy) {
                    int32_t fx;
                    for (fx = fx_start; fx < fx_end; ++fx) {
                        max_word = max_s8x4(si4_dsp_load_s8x4(input + (in_y_origin + fy) * input_row_stride +
                                                              (in_x_origin + fx) * channels + c),
                                            max_word);
                    }
                }
                /* clamp: max with the floor, then min with the ceiling */
                max_word = max_s8x4(max_word, floor_word);
                max_word = min_s8x4(max_word, ceiling_word);
                si4_dsp_store_s8x4(output + c, max_word);
            }
            for (; c < channels; ++c) {
                int32_t max_value = INT8_MIN;
                int32_t fy;
                for (fy = fy_start; fy < fy_end; ++fy) {
                    int32_t fx;
                    for (fx = fx_start; fx < fx_end; ++fx) {
                        const int32_t value = input[(in_y_origin + fy) * input_row_stride + (in_x_origin + fx) * channels + c];
                        max_value = value > max_value ? value : max_value;
                    }
                }
                max_value = max_value < params->activation_min ? params->activation_min : max_value;
                max_value = max_value > params->activation_max ? params->activation_max : max_value;
                output[c] = (int8_t)max_value;
            }
            output += channels;
        }
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_max_pool_s8.c"
#endif
