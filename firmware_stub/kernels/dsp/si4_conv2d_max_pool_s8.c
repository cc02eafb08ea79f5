/*
 * si4_conv2d_max_pool_s8.c (DSP) - CONV_2D followed by MAX_POOL_2D, fused,
 * for cores with the DSP extension. Same contract and results, bit for bit,
 * as kernels/src/si4_conv2d_max_pool_s8.c: the maximum of the int32
 * accumulators a pool window covers is requantized once (exact, since
 * requantization, offset and clamps are monotonic), in TFLM's arithmetic.
 *
 * Two paths:
 * - one input channel, 3x3 (the first layer of an image model): each
 *   position's window is widened to int16 pairs once and shared by all
 *   output channels, five SMLADs per output (si4_dsp_util.h);
 * - anything else: blocks of 2 positions x 2 output channels, four int8
 *   MACs per two SMLADs, each input and filter word loaded once per block.
 * Windows reaching into the padding use the portable per-output code.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_kernel_util.h"

/* The conv positions a pool window covers, clipped as TFLM's MaxPool clips. */
typedef struct {
    int32_t conv_y;  /* first covered conv row */
    int32_t conv_x;  /* first covered conv column */
    int32_t width;   /* covered columns */
    int32_t count;   /* covered positions (0 when the window misses the input) */
} pool_window;

static void pool_window_at(const si4_pool_params *pool, int32_t pool_y, int32_t pool_x, pool_window *window)
{
    const int32_t y_origin = pool_y * pool->stride_height - pool->pad_top;
    const int32_t x_origin = pool_x * pool->stride_width - pool->pad_left;
    int32_t fy_start;
    int32_t fy_end;
    int32_t fx_start;
    int32_t fx_end;
    int32_t rows;
    int32_t columns;
    si4_pool_window_range(y_origin, pool->filter_height, pool->input_height, &fy_start, &fy_end);
    si4_pool_window_range(x_origin, pool->filter_width, pool->input_width, &fx_start, &fx_end);
    rows = fy_end - fy_start;
    columns = fx_end - fx_start;
    window->conv_y = y_origin + fy_start;
    window->conv_x = x_origin + fx_start;
    window->width = columns;
    window->count = (rows > 0 && columns > 0) ? rows * columns : 0;
}

static int8_t pool_clamp(const si4_pool_params *pool, int32_t value)
{
    value = value < pool->activation_min ? pool->activation_min : value;
    value = value > pool->activation_max ? pool->activation_max : value;
    return (int8_t)value;
}

static inline int8_t requantize_max(const si4_conv2d_params *conv,
                             const si4_pool_params *pool,
                             int32_t covered,
                             int32_t max_acc,
                             const int32_t *bias,
                             const int32_t *output_multiplier,
                             const int32_t *output_shift,
                             int32_t channel)
{
    const int32_t quant_index = conv->per_channel ? channel : 0;
    if (covered == 0) {
        return pool_clamp(pool, INT8_MIN); /* TFLM's MaxPool starts from -128 and finds nothing */
    }
    if (bias != 0) {
        max_acc += bias[channel];
    }
    return pool_clamp(pool, si4_dsp_requantize_s8(max_acc, output_multiplier[quant_index], output_shift[quant_index],
                                                  conv->output_offset, conv->activation_min,
                                                  conv->activation_max));
}

/* Whether every conv position of the pool window has its whole receptive
 * field inside the input (dilation_width 1): then the windows are plain
 * pointer offsets and the 2x2 loop runs without per-position checks. The
 * covered positions form a rectangle, so its corners decide. */
static int32_t window_is_interior(const si4_conv2d_params *conv, const pool_window *window)
{
    si4_conv2d_window first;
    si4_conv2d_window last;
    if (window->count == 0 || conv->dilation_width != 1) {
        return 0;
    }
    si4_conv2d_window_at(conv, window->conv_y, window->conv_x, &first);
    si4_conv2d_window_at(conv, window->conv_y + (window->count - 1) / window->width,
                         window->conv_x + window->width - 1, &last);
    return first.ky_start == 0 && first.kx_start == 0 && last.ky_end == conv->kernel_height &&
           last.kx_end == conv->kernel_width;
}

/* One pool output, all channels, for an interior window (see above). */
static void conv_interior_max(const si4_conv2d_params *conv,
                              const pool_window *window,
                              const int8_t *input,
                              const int8_t *filter,
                              const int32_t *bias,
                              const int32_t *output_multiplier,
                              const int32_t *output_shift,
                              const si4_pool_params *pool,
                              int8_t *output)
{
    const int32_t output_channels = conv->output_channels;
    const int32_t input_row_stride = conv->input_width * conv->input_channels;
    const int32_t filter_stride = conv->kernel_height * conv->kernel_width * conv->input_channels;
    const int32_t run = conv->kernel_width * conv->input_channels;
    const int32_t window_row_stride = conv->dilation_height * input_row_stride;
    const int8_t *position_input[4];
    int32_t positions = window->count;
    int32_t channel_0;
    int32_t index;
    if (positions > 4) {
        /* Larger pool windows: the general path, one pair at a time. */
        positions = 0;
    }
    for (index = 0; index < positions; ++index) {
        const int32_t y = window->conv_y + index / window->width;
        const int32_t x = window->conv_x + index % window->width;
        position_input[index] = input + (y * conv->stride_height - conv->pad_top) * input_row_stride +
                                (x * conv->stride_width - conv->pad_left) * conv->input_channels;
    }
    for (channel_0 = 0; channel_0 < output_channels; channel_0 += 2) {
        const int32_t channel_1 = channel_0 + 1 < output_channels ? channel_0 + 1 : channel_0;
        const int8_t *filter_0 = filter + channel_0 * filter_stride;
        const int8_t *filter_1 = filter + channel_1 * filter_stride;
        int32_t max_0 = INT32_MIN;
        int32_t max_1 = INT32_MIN;
        for (index = 0; index < window->count; index += 2) {
            const int32_t index_1 = index + 1 < window->count ? index + 1 : index;
            int32_t acc[4];
            if (positions > 0) {
                si4_dsp_conv_window_2x2(position_input[index], position_input[index_1], window_row_stride,
                                        filter_0, filter_1, conv->kernel_height, run, conv->input_offset, acc);
            } else {
                si4_dsp_conv_2x2(conv, input, filter, window->conv_y + index / window->width,
                                 window->conv_x + index % window->width, window->conv_y + index_1 / window->width,
                                 window->conv_x + index_1 % window->width, channel_0, channel_1, acc);
            }
            max_0 = acc[0] > max_0 ? acc[0] : max_0;
            max_0 = acc[2] > max_0 ? acc[2] : max_0;
            max_1 = acc[1] > max_1 ? acc[1] : max_1;
            max_1 = acc[3] > max_1 ? acc[3] : max_1;
        }
        output[channel_0] = requantize_max(conv, pool, window->count, max_0, bias, output_multiplier, output_shift,
                                           channel_0);
        if (channel_1 != channel_0) {
            output[channel_1] = requantize_max(conv, pool, window->count, max_1, bias, output_multiplier,
                                               output_shift, channel_1);
        }
    }
}

static void conv_1ch_3x3_max_pool(const si4_conv2d_params *conv,
                                  const si4_pool_params *pool,
                                  const int8_t *input,
                                  const int8_t *filter,
                                  const int32_t *bias,
                                  const int32_t *output_multiplier,
                                  const int32_t *output_shift,
                                  int8_t *output)
{
    const int32_t output_channels = conv->output_channels;
    uint32_t taps[SI4_DSP_CONV_1CH_CHANNEL_BLOCK][SI4_DSP_PAIRS_3X3];
    int32_t max_acc[SI4_DSP_CONV_1CH_CHANNEL_BLOCK];
    int32_t first_channel;
    for (first_channel = 0; first_channel < output_channels; first_channel += SI4_DSP_CONV_1CH_CHANNEL_BLOCK) {
        const int32_t count = si4_dsp_widen_taps_block_3x3(filter, first_channel, output_channels, taps);
        const int8_t *block_filter = filter + first_channel * SI4_DSP_TAPS_3X3;
        int8_t *block_output = output + first_channel;
        int32_t channel;
        int32_t pool_y;
        for (pool_y = 0; pool_y < pool->output_height; ++pool_y) {
            int32_t pool_x;
            for (pool_x = 0; pool_x < pool->output_width; ++pool_x) {
                pool_window window;
                int32_t index;
                pool_window_at(pool, pool_y, pool_x, &window);
                if (window.count <= 4 && window_is_interior(conv, &window)) {
                    /* The usual case (2x2 pool): the windows of the covered
                     * positions are widened once, then each channel's taps
                     * stay in registers across them. */
                    uint32_t pairs[4][SI4_DSP_PAIRS_3X3];
                    for (index = 0; index < window.count; ++index) {
                        const int32_t y = window.conv_y + index / window.width;
                        const int32_t x = window.conv_x + index % window.width;
                        si4_dsp_widen_window_3x3(input + (y * conv->stride_height - conv->pad_top) * conv->input_width +
                                                     (x * conv->stride_width - conv->pad_left),
                                                 conv->input_width, conv->input_offset, pairs[index]);
                    }
                    for (channel = 0; channel < count; ++channel) {
                        const uint32_t *channel_taps = taps[channel];
                        const int32_t tap_0 = (int32_t)channel_taps[0];
                        const int32_t tap_1 = (int32_t)channel_taps[1];
                        const int32_t tap_2 = (int32_t)channel_taps[2];
                        const int32_t tap_3 = (int32_t)channel_taps[3];
                        const int32_t tap_4 = (int32_t)channel_taps[4];
                        int32_t best = INT32_MIN;
                        for (index = 0; index < window.count; ++index) {
                            const uint32_t *window_pairs = pairs[index];
                            int32_t acc = __smlad((int32_t)window_pairs[0], tap_0, 0);
                            acc = __smlad((int32_t)window_pairs[1], tap_1, acc);
                            acc = __smlad((int32_t)window_pairs[2], tap_2, acc);
                            acc = __smlad((int32_t)window_pairs[3], tap_3, acc);
                            acc = __smlad((int32_t)window_pairs[4], tap_4, acc);
                            best = acc > best ? acc : best;
                        }
                        block_output[channel] = requantize_max(conv, pool, window.count, best, bias, output_multiplier,
                                                               output_shift, first_channel + channel);
                    }
                    block_output += output_channels;
                    continue;
                }
                for (index = 0; index < window.count; ++index) {
                    si4_dsp_conv_1ch_3x3_position(conv, input, block_filter, (const uint32_t(*)[SI4_DSP_PAIRS_3X3])taps,
                                                  count, window.conv_y + index / window.width,
                                                  window.conv_x + index % window.width, index > 0, max_acc);
                }
                for (channel = 0; channel < count; ++channel) {
                    block_output[channel] = requantize_max(conv, pool, window.count, max_acc[channel], bias,
                                                           output_multiplier, output_shift, first_channel + channel);
                }
                block_output += output_channels;
            }
        }
    }
}

void si4_conv2d_max_pool_s8(const si4_conv2d_params *conv,
                            const si4_pool_params *pool,
                            const int8_t *input,
                            const int8_t *filter,
                            const int32_t *bias,
                            const int32_t *output_multiplier,
                            const int32_t *output_shift,
                            int8_t *output)
{
    const int32_t output_channels = conv->output_channels;
    int32_t pool_y;
    if (si4_dsp_is_conv_1ch_3x3(conv)) {
        conv_1ch_3x3_max_pool(conv, pool, input, filter, bias, output_multiplier, output_shift, output);
        return;
    }
    for (pool_y = 0; pool_y < pool->output_height; ++pool_y) {
        int32_t pool_x;
        for (pool_x = 0; pool_x < pool->output_width; ++pool_x) {
            pool_window window;
            int32_t channel_0;
            pool_window_at(pool, pool_y, pool_x, &window);
            if (window_is_interior(conv, &window)) {
                conv_interior_max(conv, &window, input, filter, bias, output_multiplier, output_shift, pool, output);
            } else {
                for (channel_0 = 0; channel_0 < output_channels; channel_0 += 2) {
                    const int32_t channel_1 = channel_0 + 1 < output_channels ? channel_0 + 1 : channel_0;
                    int32_t max_0 = INT32_MIN;
                    int32_t max_1 = INT32_MIN;
                    int32_t index;
                    /* Positions in pairs; an odd last one is paired with itself. */
                    for (index = 0; index < window.count; index += 2) {
                        const int32_t index_1 = index + 1 < window.count ? index + 1 : index;
                        int32_t acc[4];
                        si4_dsp_conv_2x2(conv, input, filter, window.conv_y + index / window.width,
                                         window.conv_x + index % window.width, window.conv_y + index_1 / window.width,
                                         window.conv_x + index_1 % window.width, channel_0, channel_1, acc);
                        max_0 = acc[0] > max_0 ? acc[0] : max_0;
                        max_0 = acc[2] > max_0 ? acc[2] : max_0;
                        max_1 = acc[1] > max_1 ? acc[1] : max_1;
                        max_1 = acc[3] > max_1 ? acc[3] : max_1;
                    }
                    output[channel_0] = requantize_max(conv, pool, window.count, max_0, bias, output_multiplier,
                                                       output_shift, channel_0);
                    if (channel_1 != channel_0) {
                        output[channel_1] = requantize_max(conv, pool, window.count, max_1, bias,
                                                           output_multiplier, output_shift, channel_1);
                    }
                }
            }
            output += output_channels;
        }
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_conv2d_max_pool_s8.c"
#endif
