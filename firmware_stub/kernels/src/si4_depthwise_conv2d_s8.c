/*
 * si4_depthwise_conv2d_s8.c - DEPTHWISE_CONV_2D, int8, per-channel weights.
 *
 * out[y][x][oc] = clamp(requant(bias[oc] + sum_{ky,kx} f[ky][kx][oc] *
 *                 (in[y*sh - pt + ky*dh][x*sw - pl + kx*dw][oc / depth_multiplier]
 *                  + input_offset)) + output_offset)
 * with padding positions skipped; output channel oc = ic * depth_multiplier + m.
 * Matches TFLM's reference_integer_ops::DepthwiseConvPerChannel bit for bit.
 *
 * 3x3 kernels (every MLPerf Tiny depthwise layer) take a fast path for the
 * windows that lie wholly inside the input: no clipping per tap, the nine
 * weights and the channel's constants loaded once per channel, and the
 * input offset folded into the bias (sum_k w_k * (x_k + o) = sum_k w_k * x_k
 * + o * sum_k w_k, equal modulo 2^32, which is how TFLM's int32 sums wrap
 * in practice). The windows that reach into the padding, and other kernel
 * sizes, take the general loop.
 */
#include "si4_nn.h"

#include "si4_kernel_util.h"
#include "si4_requant.h"

/* The first output index, from `first` on, whose window starts inside the
 * input (origin >= 0), and the end of those whose window also ends inside
 * (origin + (kernel - 1) * dilation < extent): the interior is [*start, *end). */
static void si4_depthwise_interior(int32_t outputs,
                                   int32_t stride,
                                   int32_t pad,
                                   int32_t kernel,
                                   int32_t dilation,
                                   int32_t extent,
                                   int32_t *start,
                                   int32_t *end)
{
    int32_t first = 0;
    int32_t last = outputs;
    while (first < outputs && first * stride - pad < 0) {
        ++first;
    }
    while (last > first && (last - 1) * stride - pad + (kernel - 1) * dilation >= extent) {
        --last;
    }
    *start = first;
    *end = last;
}

/* One channel's requantization constants, prepared once per channel. */
typedef struct {
    int32_t multiplier;
    int32_t left_shift;
    int32_t right_shift;
    int32_t remainder_mask; /* 2^right_shift - 1 */
    int32_t half;           /* remainder_mask / 2 */
    int32_t output_offset;
    int32_t activation_min;
    int32_t activation_max;
} si4_depthwise_requant;

/* si4_requantize_s8 with the constants prepared, for multiplier != INT32_MIN.
 * gemmlowp's high multiply adds 2^30 to a product p >= 0 and 1 - 2^30 to a
 * negative one, then truncates toward zero: both are floor((p + 2^30) / 2^31)
 * (for p < 0, trunc((p + 1 - 2^30) / 2^31) = ceil(...) = floor((p + 2^30) / 2^31)),
 * one arithmetic shift. Its only saturating case needs multiplier INT32_MIN. */
static inline int8_t si4_depthwise_requantize(int32_t acc, const si4_depthwise_requant *q)
{
    const int32_t shifted = (int32_t)((uint32_t)acc << q->left_shift);
    const int32_t high = (int32_t)(((int64_t)shifted * q->multiplier + ((int64_t)1 << 30)) >> 31);
    const int32_t threshold = q->half + (int32_t)((uint32_t)high >> 31);
    const int32_t rounded = (high >> q->right_shift) + ((high & q->remainder_mask) > threshold ? 1 : 0);
    int32_t result = (int32_t)((uint32_t)rounded + (uint32_t)q->output_offset);
    if (result < q->activation_min) {
        result = q->activation_min;
    }
    if (result > q->activation_max) {
        result = q->activation_max;
    }
    return (int8_t)result;
}

/* One channel of the 3x3 windows wholly inside the input: output rows y0 .. y1 - 1,
 * columns x0 .. x1 - 1. `saturating` takes the general requantization, for the
 * multiplier INT32_MIN (a branch per output the predictor settles; one copy of
 * the loop keeps the code small). */
static inline void si4_depthwise_3x3_channel(const si4_depthwise_conv2d_params *params,
                                             const int8_t *channel_input,
                                             const int8_t *w,
                                             uint32_t folded_bias,
                                             const si4_depthwise_requant *q,
                                             int32_t shift,
                                             int32_t saturating,
                                             int32_t y0,
                                             int32_t y1,
                                             int32_t x0,
                                             int32_t x1,
                                             int8_t *channel_output)
{
    const int32_t channels = params->output_channels;
    const int32_t column = params->dilation_width * params->input_channels;
    const int32_t row = params->dilation_height * params->input_width * params->input_channels;
    const int32_t input_step = params->stride_width * params->input_channels;
    const int32_t w0 = w[0];
    const int32_t w1 = w[channels];
    const int32_t w2 = w[2 * channels];
    const int32_t w3 = w[3 * channels];
    const int32_t w4 = w[4 * channels];
    const int32_t w5 = w[5 * channels];
    const int32_t w6 = w[6 * channels];
    const int32_t w7 = w[7 * channels];
    const int32_t w8 = w[8 * channels];
    int32_t out_y;
    for (out_y = y0; out_y < y1; ++out_y) {
        const int8_t *in = channel_input + ((out_y * params->stride_height - params->pad_top) * params->input_width +
                                            x0 * params->stride_width - params->pad_left) *
                                               params->input_channels;
        int8_t *out = channel_output + (out_y * params->output_width + x0) * channels;
        int32_t out_x;
        for (out_x = x0; out_x < x1; ++out_x) {
            const int8_t *middle = in + row;
            const int8_t *bottom = middle + row;
            const int32_t sum = w0 * in[0] + w1 * in[column] + w2 * in[2 * column] + w3 * middle[0] +
                                w4 * middle[column] + w5 * middle[2 * column] + w6 * bottom[0] +
                                w7 * bottom[column] + w8 * bottom[2 * column];
            const int32_t acc = (int32_t)(folded_bias + (uint32_t)sum);
            *out = saturating ? si4_requantize_s8(acc, q->multiplier, shift, q->output_offset, q->activation_min,
                                                  q->activation_max)
                              : si4_depthwise_requantize(acc, q);
            in += input_step;
            out += channels;
        }
    }
}

/* 3x3 windows wholly inside the input: output rows y0 .. y1 - 1, columns x0 .. x1 - 1
 * (a non-empty rectangle), channel by channel. */
static void si4_depthwise_3x3_interior(const si4_depthwise_conv2d_params *params,
                                       const int8_t *input,
                                       const int8_t *filter,
                                       const int32_t *bias,
                                       const int32_t *output_multiplier,
                                       const int32_t *output_shift,
                                       int32_t y0,
                                       int32_t y1,
                                       int32_t x0,
                                       int32_t x1,
                                       int8_t *output)
{
    const int32_t channels = params->output_channels;
    si4_depthwise_requant q;
    int32_t oc;
    q.output_offset = params->output_offset;
    q.activation_min = params->activation_min;
    q.activation_max = params->activation_max;
    for (oc = 0; oc < channels; ++oc) {
        const int8_t *w = filter + oc;
        const int32_t quant_index = params->per_channel ? oc : 0;
        const int32_t shift = output_shift[quant_index];
        const int32_t weight_sum = w[0] + w[channels] + w[2 * channels] + w[3 * channels] + w[4 * channels] +
                                   w[5 * channels] + w[6 * channels] + w[7 * channels] + w[8 * channels];
        /* In uint32, so any offset wraps as the reference's int32 sums do. */
        const uint32_t folded_bias = (uint32_t)(bias != 0 ? bias[oc] : 0) +
                                     (uint32_t)params->input_offset * (uint32_t)weight_sum;
        const int8_t *channel_input = input + oc / params->depth_multiplier;
        q.multiplier = output_multiplier[quant_index];
        q.left_shift = shift > 0 ? shift : 0;
        q.right_shift = shift > 0 ? 0 : -shift;
        q.remainder_mask = (int32_t)(((int64_t)1 << q.right_shift) - 1);
        q.half = q.remainder_mask >> 1;
        si4_depthwise_3x3_channel(params, channel_input, w, folded_bias, &q, shift, q.multiplier == INT32_MIN, y0,
                                  y1, x0, x1, output + oc);
    }
}

void si4_depthwise_conv2d_s8(const si4_depthwise_conv2d_params *params,
                             const int8_t *input,
                             const int8_t *filter,
                             const int32_t *bias,
                             const int32_t *output_multiplier,
                             const int32_t *output_shift,
                             int8_t *output)
{
    int32_t y0 = 0;
    int32_t y1 = 0;
    int32_t x0 = 0;
    int32_t x1 = 0;
    int32_t out_y;
    if (params->kernel_height == 3 && params->kernel_width == 3) {
        si4_depthwise_interior(params->output_height, params->stride_height, params->pad_top, 3,
                               params->dilation_height, params->input_height, &y0, &y1);
        si4_depthwise_interior(params->output_width, params->stride_width, params->pad_left, 3,
                               params->dilation_width, params->input_width, &x0, &x1);
    }
    if (y0 < y1 && x0 < x1) {
        si4_depthwise_3x3_interior(params, input, filter, bias, output_multiplier, output_shift, y0, y1, x0, x1,
                                   output);
    } else {
        y0 = 0; /* no interior: every position takes the general loop */
        y1 = 0;
        x0 = 0;
        x1 = 0;
    }
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        const int32_t inside_row = out_y >= y0 && out_y < y1;
        int32_t out_x;
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            if (inside_row && out_x == x0) {
                out_x = x1 - 1; /* done by the interior path */
                continue;
            }
            si4_depthwise_position(params, input, filter, bias, output_multiplier, output_shift, out_y, out_x, 0,
                                   params->output_channels,
                                   output + (out_y * params->output_width + out_x) * params->output_channels);
        }
    }
}
