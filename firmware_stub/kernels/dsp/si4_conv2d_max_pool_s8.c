/*
 * si4_conv2d_max_pool_s8.c (DSP) - CONV_2D followed by MAX_POOL_2D, fused,
 * for cores with the DSP extension. Same contract and results, bit for bit,
 * as kernels/src/si4_conv2d_max_pool_s8.c: the maximum of the int32
 * accumulators a pool window covers is requantized once (exact, since
 * requantization, offset and clamps are monotonic), in TFLM's arithmetic.
 *
 * Three paths:
 * - one input channel, 3x3 (the first layer of an image model): each
 *   position's window is widened to int16 pairs once and shared by all
 *   output channels, five SMLADs per output, the four positions of a pool
 *   window and their maximum in one assembly loop (si4_dsp_util.h);
 * - windows of at most 4 * SI4_DSP_COLUMN_GROUPS taps: the (up to four)
 *   positions of a pool window widened into a column block once, padding
 *   included, then each output channel's filter streamed over it
 *   (13 instructions per 16 MACs);
 * - anything else (larger windows, pool windows of more than four
 *   positions): the portable per-output dot product.
 * Each channel's requantization constants are derived once per pool output
 * (si4_dsp_scale), and the conv and pool clamps are one clamp.
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

/* A pool window that covers no conv position: TFLM's MaxPool starts from
 * -128, finds nothing and clamps. */
static int8_t empty_pool_output(const si4_pool_params *pool)
{
    int32_t value = INT8_MIN;
    value = value < pool->activation_min ? pool->activation_min : value;
    value = value > pool->activation_max ? pool->activation_max : value;
    return (int8_t)value;
}

/* The requantization of one channel's pool maximum, constants derived once. */
typedef struct {
    int32_t bias;
    si4_dsp_scale scale;
} channel_quant;

static inline void channel_quant_at(const si4_conv2d_params *conv,
                             const int32_t *bias,
                             const int32_t *output_multiplier,
                             const int32_t *output_shift,
                             int32_t channel,
                             channel_quant *quant)
{
    const int32_t quant_index = conv->per_channel ? channel : 0;
    quant->bias = bias != 0 ? bias[channel] : 0;
    si4_dsp_scale_init(output_multiplier[quant_index], output_shift[quant_index], &quant->scale);
}

static inline int8_t requantize_pooled(int32_t max_acc, const channel_quant *quant, const si4_dsp_output *out)
{
    return si4_dsp_output_s8(si4_dsp_scale_apply(max_acc + quant->bias, &quant->scale), out);
}

/* Whether every conv position of the pool window has its whole receptive
 * field inside the input: then the windows are plain pointer offsets. The
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

static SI4_DSP_OWN_FRAME void conv_1ch_3x3_max_pool(const si4_conv2d_params *conv,
                                                    const si4_pool_params *pool,
                                                    const int8_t *input,
                                                    const int8_t *filter,
                                                    const int32_t *bias,
                                                    const int32_t *output_multiplier,
                                                    const int32_t *output_shift,
                                                    const si4_dsp_output *out,
                                                    int8_t *output)
{
    const int32_t output_channels = conv->output_channels;
    si4_dsp_channel_3x3 channels[SI4_DSP_CONV_1CH_CHANNEL_BLOCK];
    int32_t max_acc[SI4_DSP_CONV_1CH_CHANNEL_BLOCK];
    si4_dsp_pool_3x3_job job;
    int32_t first_channel;
    job.output_offset = out->output_offset;
    job.low = out->low;
    job.high = out->high;
    for (first_channel = 0; first_channel < output_channels; first_channel += SI4_DSP_CONV_1CH_CHANNEL_BLOCK) {
        const int32_t remaining = output_channels - first_channel;
        const int32_t count = remaining < SI4_DSP_CONV_1CH_CHANNEL_BLOCK ? remaining : SI4_DSP_CONV_1CH_CHANNEL_BLOCK;
        const int8_t *block_filter = filter + first_channel * SI4_DSP_TAPS_3X3;
        int8_t *block_output = output + first_channel;
        int32_t channel;
        int32_t pool_y;
        si4_dsp_channels_3x3(filter, bias, output_multiplier, output_shift, conv->per_channel, first_channel, count,
                             channels);
        for (pool_y = 0; pool_y < pool->output_height; ++pool_y) {
            int32_t pool_x;
            for (pool_x = 0; pool_x < pool->output_width; ++pool_x) {
                pool_window window;
                int32_t index;
                pool_window_at(pool, pool_y, pool_x, &window);
                if (window.count == 0) {
                    for (channel = 0; channel < count; ++channel) {
                        block_output[channel] = empty_pool_output(pool);
                    }
                } else if (window.count <= 4 && window_is_interior(conv, &window)) {
                    /* The usual case (2x2 pool): the windows of the covered
                     * positions are widened once (a smaller pool window
                     * repeats its last position, which leaves the maximum
                     * alone), then one assembly loop takes every channel
                     * over them, requantization included. */
                    uint32_t pairs[4][SI4_DSP_PAIRS_3X3];
                    for (index = 0; index < 4; ++index) {
                        const int32_t covered = index < window.count ? index : window.count - 1;
                        const int32_t y = window.conv_y + covered / window.width;
                        const int32_t x = window.conv_x + covered % window.width;
                        si4_dsp_widen_window_3x3(input + (y * conv->stride_height - conv->pad_top) * conv->input_width +
                                                     (x * conv->stride_width - conv->pad_left),
                                                 conv->input_width, conv->input_offset, pairs[index]);
                    }
                    job.output = block_output;
                    si4_dsp_pool_3x3(&pairs[0][0], channels, count, &job);
                } else {
                    for (index = 0; index < window.count; ++index) {
                        si4_dsp_conv_1ch_3x3_position(conv, input, block_filter, channels, count,
                                                      window.conv_y + index / window.width,
                                                      window.conv_x + index % window.width, index > 0, max_acc);
                    }
                    for (channel = 0; channel < count; ++channel) {
                        block_output[channel] = si4_dsp_output_s8(
                            si4_dsp_scale_apply(max_acc[channel] + channels[channel].bias, &channels[channel].scale),
                            out);
                    }
                }
                block_output += output_channels;
            }
        }
    }
}

/* One pool output, every channel, by the portable per-output dot product:
 * for windows the column block does not hold. */
static void per_output_max_pool(const si4_conv2d_params *conv,
                                const pool_window *window,
                                const int8_t *input,
                                const int8_t *filter,
                                const int32_t *bias,
                                const int32_t *output_multiplier,
                                const int32_t *output_shift,
                                const si4_dsp_output *out,
                                int8_t *output)
{
    const int32_t taps = si4_dsp_conv_taps(conv);
    int32_t channel;
    for (channel = 0; channel < conv->output_channels; ++channel) {
        int32_t best = INT32_MIN;
        int32_t index;
        channel_quant quant;
        for (index = 0; index < window->count; ++index) {
            si4_conv2d_window conv_window;
            int32_t acc;
            si4_conv2d_window_at(conv, window->conv_y + index / window->width, window->conv_x + index % window->width,
                                 &conv_window);
            acc = si4_conv2d_window_dot(conv, &conv_window, input, filter + channel * taps);
            best = acc > best ? acc : best;
        }
        channel_quant_at(conv, bias, output_multiplier, output_shift, channel, &quant);
        output[channel] = requantize_pooled(best, &quant, out);
    }
}

/* Pool windows of one to four positions over a column block: each
 * position's window widened once (a smaller pool window repeats its last
 * position), then per output channel four accumulators, their maximum and
 * its requantization. */
static void columns_max_pool(const si4_conv2d_params *conv,
                             const pool_window *window,
                             const int8_t *input,
                             const int8_t *filter,
                             const si4_dsp_channel_constants *constants,
                             const si4_dsp_output *out,
                             uint32_t *block,
                             int8_t *output)
{
    const int32_t taps = si4_dsp_conv_taps(conv);
    const int32_t *bias = constants->bias;
    const int32_t *multiplier = constants->multiplier;
    const int32_t *shift = constants->shift;
    const int32_t step = constants->step;
    const int8_t *filter_oc = filter;
    int8_t *const output_end = output + conv->output_channels;
    int32_t index;
    for (index = 0; index < SI4_DSP_COLUMN_POSITIONS; ++index) {
        const int32_t covered = index < window->count ? index : window->count - 1;
        si4_dsp_widen_column(conv, input, window->conv_y + covered / window->width,
                             window->conv_x + covered % window->width, index, block);
    }
    while (output != output_end) {
        int32_t acc[SI4_DSP_COLUMN_POSITIONS];
        int32_t best;
        si4_dsp_scale scale;
        si4_dsp_columns_channel(filter_oc, (int32_t)(output_end - output) * taps, block, taps, acc);
        filter_oc += taps;
        best = acc[0] > acc[1] ? acc[0] : acc[1];
        best = acc[2] > best ? acc[2] : best;
        best = acc[3] > best ? acc[3] : best;
        if (bias != 0) {
            best += *bias++;
        }
        si4_dsp_scale_init(*multiplier, *shift, &scale);
        multiplier += step;
        shift += step;
        *output++ = si4_dsp_output_s8(si4_dsp_scale_apply(best, &scale), out);
    }
}

static SI4_DSP_OWN_FRAME void conv_max_pool(const si4_conv2d_params *conv,
                                            const si4_pool_params *pool,
                                            const int8_t *input,
                                            const int8_t *filter,
                                            const int32_t *bias,
                                            const int32_t *output_multiplier,
                                            const int32_t *output_shift,
                                            const si4_dsp_output *out,
                                            int8_t *output)
{
    const int32_t output_channels = conv->output_channels;
    const int32_t use_columns = si4_dsp_columns_fit(conv);
    uint32_t block[8 * SI4_DSP_COLUMN_GROUPS];
    si4_dsp_channel_constants constants;
    int32_t pool_y;
    si4_dsp_channel_constants_init(bias, output_multiplier, output_shift, conv->per_channel, &constants);
    for (pool_y = 0; pool_y < pool->output_height; ++pool_y) {
        int32_t pool_x;
        for (pool_x = 0; pool_x < pool->output_width; ++pool_x) {
            pool_window window;
            pool_window_at(pool, pool_y, pool_x, &window);
            if (window.count == 0) {
                int32_t channel;
                for (channel = 0; channel < output_channels; ++channel) {
                    output[channel] = empty_pool_output(pool);
                }
            } else if (use_columns && window.count <= SI4_DSP_COLUMN_POSITIONS) {
                columns_max_pool(conv, &window, input, filter, &constants, out, block, output);
            } else {
                per_output_max_pool(conv, &window, input, filter, bias, output_multiplier, output_shift, out, output);
            }
            output += output_channels;
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
    si4_dsp_output out;
    si4_dsp_output_init(conv->output_offset, conv->activation_min, conv->activation_max, pool->activation_min,
                        pool->activation_max, &out);
    if (si4_dsp_is_conv_1ch_3x3(conv)) {
        conv_1ch_3x3_max_pool(conv, pool, input, filter, bias, output_multiplier, output_shift, &out, output);
    } else {
        conv_max_pool(conv, pool, input, filter, bias, output_multiplier, output_shift, &out, output);
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_conv2d_max_pool_s8.c"
#endif
