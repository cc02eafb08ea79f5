/*
 * si4_conv2d_s8.c - CONV_2D, int8 activations, int8 per-channel weights.
 *
 * out[y][x][oc] = clamp(requant(bias[oc] + sum_{ky,kx,ic} f[oc][ky][kx][ic] *
 *                       (in[y*sh - pt + ky*dh][x*sw - pl + kx*dw][ic] + input_offset))
 *                       + output_offset)
 * with padding positions skipped. Matches TFLM's
 * reference_integer_ops::ConvPerChannel bit for bit, including its
 * double-rounding MultiplyByQuantizedMultiplier (si4_requant.h).
 *
 * Loop order: output position, groups of four output channels (then a
 * pair, then one), kernel row; the inner loop is a contiguous dot product
 * over a window row (kernel_width * input_channels bytes when
 * dilation_width is 1) feeding four channels.
 */
#include "si4_nn.h"

#include "si4_kernel_util.h"
#include "si4_requant.h"

/* ------------------------------------------------------------------------
 * 1x1 (pointwise) convolutions without padding: each output position reads
 * one input pixel, input_channels contiguous bytes. Two positions and four
 * output channels at a time: each widened input value feeds four
 * accumulators and each weight two, with none of the window bookkeeping.
 * The sums and the requantization are the general loop's, value for value
 * (integer sums, in any order the same). */
static int32_t pointwise_applies(const si4_conv2d_params *params)
{
    return params->kernel_height == 1 && params->kernel_width == 1 && params->pad_top == 0 && params->pad_left == 0;
}

/* The input pixel output position `position` reads. */
static const int8_t *pointwise_pixel(const si4_conv2d_params *params, const int8_t *input, int32_t position)
{
    const int32_t out_y = position / params->output_width;
    const int32_t out_x = position - out_y * params->output_width;
    return input + (out_y * params->stride_height * params->input_width + out_x * params->stride_width) *
                       params->input_channels;
}

static int8_t pointwise_requantize(const si4_conv2d_params *params,
                                   int32_t acc,
                                   const int32_t *bias,
                                   const int32_t *output_multiplier,
                                   const int32_t *output_shift,
                                   int32_t channel)
{
    const int32_t quant_index = params->per_channel ? channel : 0;
    const int32_t total = bias != 0 ? acc + bias[channel] : acc;
    return si4_requantize_s8(total, output_multiplier[quant_index], output_shift[quant_index], params->output_offset,
                             params->activation_min, params->activation_max);
}

/* Output channels first .. first + count - 1 (count <= 4) of two positions
 * (in_1 == in_0 and out_1 == out_0 for a lone last position). */
static void pointwise_channels(const si4_conv2d_params *params,
                               const int8_t *in_0,
                               const int8_t *in_1,
                               const int8_t *filter,
                               const int32_t *bias,
                               const int32_t *output_multiplier,
                               const int32_t *output_shift,
                               int32_t first,
                               int32_t count,
                               int8_t *out_0,
                               int8_t *out_1)
{
    const int32_t depth = params->input_channels;
    const int32_t input_offset = params->input_offset;
    const int8_t *w_0 = filter + first * depth;
    int32_t acc_0[4] = {0, 0, 0, 0};
    int32_t acc_1[4] = {0, 0, 0, 0};
    int32_t k;
    int32_t c;
    if (count == 4) {
        const int8_t *w_1 = w_0 + depth;
        const int8_t *w_2 = w_1 + depth;
        const int8_t *w_3 = w_2 + depth;
        int32_t a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
        for (k = 0; k < depth; ++k) {
            const int32_t x_0 = in_0[k] + input_offset;
            const int32_t x_1 = in_1[k] + input_offset;
            int32_t w = w_0[k];
            a00 += w * x_0;
            a10 += w * x_1;
            w = w_1[k];
            a01 += w * x_0;
            a11 += w * x_1;
            w = w_2[k];
            a02 += w * x_0;
            a12 += w * x_1;
            w = w_3[k];
            a03 += w * x_0;
            a13 += w * x_1;
        }
        acc_0[0] = a00;
        acc_0[1] = a01;
        acc_0[2] = a02;
        acc_0[3] = a03;
        acc_1[0] = a10;
        acc_1[1] = a11;
        acc_1[2] = a12;
        acc_1[3] = a13;
    } else {
        for (c = 0; c < count; ++c) {
            const int8_t *w_c = w_0 + c * depth;
            int32_t a_0 = 0;
            int32_t a_1 = 0;
            for (k = 0; k < depth; ++k) {
                a_0 += w_c[k] * (in_0[k] + input_offset);
                a_1 += w_c[k] * (in_1[k] + input_offset);
            }
            acc_0[c] = a_0;
            acc_1[c] = a_1;
        }
    }
    for (c = 0; c < count; ++c) {
        out_0[first + c] = pointwise_requantize(params, acc_0[c], bias, output_multiplier, output_shift, first + c);
        out_1[first + c] = pointwise_requantize(params, acc_1[c], bias, output_multiplier, output_shift, first + c);
    }
}

static void conv_pointwise(const si4_conv2d_params *params,
                           const int8_t *input,
                           const int8_t *filter,
                           const int32_t *bias,
                           const int32_t *output_multiplier,
                           const int32_t *output_shift,
                           int8_t *output)
{
    const int32_t output_channels = params->output_channels;
    const int32_t positions = params->output_height * params->output_width;
    int32_t position;
    for (position = 0; position < positions; position += 2) {
        const int32_t second = position + 1 < positions ? position + 1 : position;
        const int8_t *in_0 = pointwise_pixel(params, input, position);
        const int8_t *in_1 = pointwise_pixel(params, input, second);
        int8_t *out_0 = output + position * output_channels;
        int8_t *out_1 = output + second * output_channels;
        int32_t first;
        for (first = 0; first < output_channels; first += 4) {
            const int32_t count = output_channels - first < 4 ? output_channels - first : 4;
            pointwise_channels(params, in_0, in_1, filter, bias, output_multiplier, output_shift, first, count,
                               out_0, out_1);
        }
    }
}
/* ---------------------------------------------------------- end of 1x1 */

void si4_conv2d_s8(const si4_conv2d_params *params,
                   const int8_t *input,
                   const int8_t *filter,
                   const int32_t *bias,
                   const int32_t *output_multiplier,
                   const int32_t *output_shift,
                   int8_t *output)
{
    const int32_t output_channels = params->output_channels;
    const int32_t filter_stride =
        params->kernel_height * params->kernel_width * params->input_channels;
    int32_t out_y;
    if (pointwise_applies(params)) {
        conv_pointwise(params, input, filter, bias, output_multiplier, output_shift, output);
        return;
    }
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        int32_t out_x;
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            si4_conv2d_window window;
            int32_t oc;
            int32_t group = 1;
            si4_conv2d_window_at(params, out_y, out_x, &window);
            /* Output channels four at a time, then two, sharing each input load. */
            for (oc = 0; oc < output_channels; oc += group) {
                int32_t acc[4];
                int32_t k;
                if (oc + 4 <= output_channels) {
                    group = 4;
                    si4_conv2d_window_dot_quad(params, &window, input, filter + oc * filter_stride, filter_stride,
                                               acc);
                } else if (oc + 2 <= output_channels) {
                    group = 2;
                    si4_conv2d_window_dot_pair(params, &window, input, filter + oc * filter_stride,
                                               filter + (oc + 1) * filter_stride, &acc[0], &acc[1]);
                } else {
                    group = 1;
                    acc[0] = si4_conv2d_window_dot(params, &window, input, filter + oc * filter_stride);
                }
                for (k = 0; k < group; ++k) {
                    const int32_t channel = oc + k;
                    const int32_t quant_index = params->per_channel ? channel : 0;
                    const int32_t total = bias != 0 ? acc[k] + bias[channel] : acc[k];
                    *output++ = si4_requantize_s8(total, output_multiplier[quant_index], output_shift[quant_index],
                                                  params->output_offset, params->activation_min,
                                                  params->activation_max);
                }
            }
        }
    }
}
