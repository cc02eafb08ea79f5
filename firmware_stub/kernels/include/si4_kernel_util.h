/*
 * si4_kernel_util.h - internal helpers shared by the kernel sources (not part
 * of the public API in si4_nn.h): int8 dot products, the receptive field
 * of one convolution output position and the clipping of a pool window.
 */
#ifndef SI4_KERNEL_UTIL_H
#define SI4_KERNEL_UTIL_H

#include <stdint.h>

#include "si4_nn.h"
#include "si4_requant.h"

/* sum_i a[i] * b[i] over n int8 pairs. Unrolled by four with walking
 * pointers: on a Cortex-M4 (GCC -O2) that is two post-increment byte loads
 * and one MLA per multiply-accumulate plus one loop test per four.
 * The caller guarantees the sum fits in int32 (TFLM assumes the same: at most
 * 2^16 products of magnitude <= 2^15). */
static inline int32_t si4_dot_s8(const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0;
    for (; n >= 4; n -= 4) {
        acc += (int32_t)*a++ * (int32_t)*b++;
        acc += (int32_t)*a++ * (int32_t)*b++;
        acc += (int32_t)*a++ * (int32_t)*b++;
        acc += (int32_t)*a++ * (int32_t)*b++;
    }
    for (; n > 0; --n) {
        acc += (int32_t)*a++ * (int32_t)*b++;
    }
    return acc;
}

/* sum_i filter[i] * (input[i] + input_offset): TFLM's accumulation with the
 * input zero point applied per element. */
static inline int32_t si4_dot_s8_input_offset(const int8_t *filter,
                                              const int8_t *input,
                                              int32_t n,
                                              int32_t input_offset)
{
    int32_t acc = 0;
    for (; n >= 4; n -= 4) {
        acc += (int32_t)*filter++ * ((int32_t)*input++ + input_offset);
        acc += (int32_t)*filter++ * ((int32_t)*input++ + input_offset);
        acc += (int32_t)*filter++ * ((int32_t)*input++ + input_offset);
        acc += (int32_t)*filter++ * ((int32_t)*input++ + input_offset);
    }
    for (; n > 0; --n) {
        acc += (int32_t)*filter++ * ((int32_t)*input++ + input_offset);
    }
    return acc;
}

/* Two dot products over one input run, for two output channels at once:
 * *acc_a += sum_i filter_a[i] * (input[i] + input_offset), likewise for b.
 * Each input byte is loaded (and offset) once for two multiply-accumulates;
 * unrolled by four, with one index for the three arrays. */
static inline void si4_dot_s8_pair(const int8_t *filter_a,
                                   const int8_t *filter_b,
                                   const int8_t *input,
                                   int32_t n,
                                   int32_t input_offset,
                                   int32_t *acc_a,
                                   int32_t *acc_b)
{
    int32_t sum_a = *acc_a;
    int32_t sum_b = *acc_b;
    int32_t i = 0;
    if (input_offset == 0) {
        for (; i + 4 <= n; i += 4) {
            const int32_t x0 = input[i];
            const int32_t x1 = input[i + 1];
            const int32_t x2 = input[i + 2];
            const int32_t x3 = input[i + 3];
            sum_a += filter_a[i] * x0 + filter_a[i + 1] * x1 + filter_a[i + 2] * x2 + filter_a[i + 3] * x3;
            sum_b += filter_b[i] * x0 + filter_b[i + 1] * x1 + filter_b[i + 2] * x2 + filter_b[i + 3] * x3;
        }
    } else {
        for (; i + 4 <= n; i += 4) {
            const int32_t x0 = input[i] + input_offset;
            const int32_t x1 = input[i + 1] + input_offset;
            const int32_t x2 = input[i + 2] + input_offset;
            const int32_t x3 = input[i + 3] + input_offset;
            sum_a += filter_a[i] * x0 + filter_a[i + 1] * x1 + filter_a[i + 2] * x2 + filter_a[i + 3] * x3;
            sum_b += filter_b[i] * x0 + filter_b[i + 1] * x1 + filter_b[i + 2] * x2 + filter_b[i + 3] * x3;
        }
    }
    for (; i < n; ++i) {
        const int32_t x = input[i] + input_offset;
        sum_a += filter_a[i] * x;
        sum_b += filter_b[i] * x;
    }
    *acc_a = sum_a;
    *acc_b = sum_b;
}

/* Four dot products over one input run, for four output channels whose
 * filters are `filter_stride` bytes apart: acc[k] += sum_i filter[k *
 * filter_stride + i] * (input[i] + input_offset). Each input byte is loaded
 * and offset once for four multiply-accumulates (the convolutions' hot loop
 * in the portable build): eleven live values, so no spills on a 16-register
 * core. */
static inline void si4_dot_s8_quad(const int8_t *filter,
                                   int32_t filter_stride,
                                   const int8_t *input,
                                   int32_t n,
                                   int32_t input_offset,
                                   int32_t acc[4])
{
    const int8_t *f0 = filter;
    const int8_t *f1 = filter + filter_stride;
    const int8_t *f2 = f1 + filter_stride;
    const int8_t *f3 = f2 + filter_stride;
    int32_t sum_0 = acc[0];
    int32_t sum_1 = acc[1];
    int32_t sum_2 = acc[2];
    int32_t sum_3 = acc[3];
    const int8_t *const end = input + n;
    if (input_offset == 0) {
        /* The input offset folded into the bias (si4tool does so where it is
         * exact): one instruction less per tap. */
        while (input != end) {
            const int32_t x = *input++;
            sum_0 += *f0++ * x;
            sum_1 += *f1++ * x;
            sum_2 += *f2++ * x;
            sum_3 += *f3++ * x;
        }
    }
    while (input != end) {
        const int32_t x = *input++ + input_offset;
        sum_0 += *f0++ * x;
        sum_1 += *f1++ * x;
        sum_2 += *f2++ * x;
        sum_3 += *f3++ * x;
    }
    acc[0] = sum_0;
    acc[1] = sum_1;
    acc[2] = sum_2;
    acc[3] = sum_3;
}

/* The part of a convolution window that lies inside the input: kernel rows
 * [ky_start, ky_end) and columns [kx_start, kx_end). Positions outside (the
 * padding) contribute nothing, as in TFLM's reference ConvPerChannel.
 * The remaining fields are derived once per output position so the
 * per-channel dot product only walks pointers. */
typedef struct {
    int32_t in_y_origin;
    int32_t in_x_origin;
    int32_t ky_start;
    int32_t ky_end;
    int32_t kx_start;
    int32_t kx_end;
    int32_t rows;             /* ky_end - ky_start, 0 when empty */
    int32_t columns;          /* kx_end - kx_start, 0 when empty */
    int32_t input_start;      /* input index of (row ky_start, column kx_start, channel 0) */
    int32_t filter_start;     /* filter index, within one output channel, of the same tap */
    int32_t input_row_step;   /* input bytes between two kernel rows (dilation included) */
    int32_t filter_row_step;  /* filter bytes between two kernel rows */
} si4_conv2d_window;

/* First k in [0, kernel) with origin + dilation * k >= 0, and one past the
 * last k with origin + dilation * k < extent. */
static inline void si4_valid_kernel_range(int32_t origin,
                                          int32_t dilation,
                                          int32_t kernel,
                                          int32_t extent,
                                          int32_t *start,
                                          int32_t *end)
{
    const int32_t first = origin >= 0 ? 0 : (-origin + dilation - 1) / dilation;
    const int32_t room = extent - origin;
    const int32_t last = room <= 0 ? 0 : (room + dilation - 1) / dilation;
    *start = first;
    *end = last < kernel ? last : kernel;
}

static inline void si4_conv2d_window_at(const si4_conv2d_params *params,
                                        int32_t out_y,
                                        int32_t out_x,
                                        si4_conv2d_window *window)
{
    const int32_t channels = params->input_channels;
    window->in_y_origin = out_y * params->stride_height - params->pad_top;
    window->in_x_origin = out_x * params->stride_width - params->pad_left;
    si4_valid_kernel_range(window->in_y_origin, params->dilation_height, params->kernel_height,
                           params->input_height, &window->ky_start, &window->ky_end);
    si4_valid_kernel_range(window->in_x_origin, params->dilation_width, params->kernel_width,
                           params->input_width, &window->kx_start, &window->kx_end);
    window->rows = window->ky_end > window->ky_start ? window->ky_end - window->ky_start : 0;
    window->columns = window->kx_end > window->kx_start ? window->kx_end - window->kx_start : 0;
    if (window->rows == 0 || window->columns == 0) {
        /* Wholly in the padding: nothing to read, and no index is formed. */
        window->rows = 0;
        window->columns = 0;
        window->input_start = 0;
        window->filter_start = 0;
    } else {
        const int32_t first_y = window->in_y_origin + params->dilation_height * window->ky_start;
        const int32_t first_x = window->in_x_origin + params->dilation_width * window->kx_start;
        window->input_start = (first_y * params->input_width + first_x) * channels;
        window->filter_start = (window->ky_start * params->kernel_width + window->kx_start) * channels;
    }
    window->input_row_step = params->dilation_height * params->input_width * channels;
    window->filter_row_step = params->kernel_width * channels;
}

/* sum over the window of filter * (input + input_offset) for one output
 * channel (filter_oc points at its [kernel_height][kernel_width][input_channels]
 * slice). Bias not included. With dilation_width 1 a window row is one
 * contiguous run of columns * input_channels bytes in both the input and the
 * filter, so the inner loop is a single dot product. */
static inline int32_t si4_conv2d_window_dot(const si4_conv2d_params *params,
                                            const si4_conv2d_window *window,
                                            const int8_t *input,
                                            const int8_t *filter_oc)
{
    const int32_t channels = params->input_channels;
    const int32_t input_offset = params->input_offset;
    /* Indices, not pointers, walk the rows: a pointer stepped past the last
     * row would leave its array, which C does not allow. */
    int32_t input_index = window->input_start;
    int32_t filter_index = window->filter_start;
    int32_t acc = 0;
    int32_t row;
    if (params->dilation_width == 1) {
        const int32_t run = window->columns * channels;
        if (input_offset == 0) {
            for (row = 0; row < window->rows; ++row) {
                acc += si4_dot_s8(filter_oc + filter_index, input + input_index, run);
                input_index += window->input_row_step;
                filter_index += window->filter_row_step;
            }
        } else {
            for (row = 0; row < window->rows; ++row) {
                acc += si4_dot_s8_input_offset(filter_oc + filter_index, input + input_index, run, input_offset);
                input_index += window->input_row_step;
                filter_index += window->filter_row_step;
            }
        }
    } else {
        const int32_t input_column_step = params->dilation_width * channels;
        for (row = 0; row < window->rows; ++row) {
            int32_t column;
            for (column = 0; column < window->columns; ++column) {
                acc += si4_dot_s8_input_offset(filter_oc + filter_index + column * channels,
                                               input + input_index + column * input_column_step, channels,
                                               input_offset);
            }
            input_index += window->input_row_step;
            filter_index += window->filter_row_step;
        }
    }
    return acc;
}

/* si4_conv2d_window_dot for two output channels (filter_a, filter_b) at
 * once, sharing every input load: the convolution kernels' hot loop. */
static inline void si4_conv2d_window_dot_pair(const si4_conv2d_params *params,
                                              const si4_conv2d_window *window,
                                              const int8_t *input,
                                              const int8_t *filter_a,
                                              const int8_t *filter_b,
                                              int32_t *acc_a,
                                              int32_t *acc_b)
{
    const int32_t channels = params->input_channels;
    const int32_t input_offset = params->input_offset;
    int32_t input_index = window->input_start;
    int32_t filter_index = window->filter_start;
    int32_t row;
    *acc_a = 0;
    *acc_b = 0;
    if (params->dilation_width == 1) {
        const int32_t run = window->columns * channels;
        for (row = 0; row < window->rows; ++row) {
            si4_dot_s8_pair(filter_a + filter_index, filter_b + filter_index, input + input_index, run,
                            input_offset, acc_a, acc_b);
            input_index += window->input_row_step;
            filter_index += window->filter_row_step;
        }
    } else {
        const int32_t input_column_step = params->dilation_width * channels;
        for (row = 0; row < window->rows; ++row) {
            int32_t column;
            for (column = 0; column < window->columns; ++column) {
                const int32_t tap = filter_index + column * channels;
                si4_dot_s8_pair(filter_a + tap, filter_b + tap, input + input_index + column * input_column_step,
                                channels, input_offset, acc_a, acc_b);
            }
            input_index += window->input_row_step;
            filter_index += window->filter_row_step;
        }
    }
}

/* si4_conv2d_window_dot for four output channels (filters filter_stride
 * bytes apart, from filter_0) at once, sharing every input load. */
static inline void si4_conv2d_window_dot_quad(const si4_conv2d_params *params,
                                              const si4_conv2d_window *window,
                                              const int8_t *input,
                                              const int8_t *filter_0,
                                              int32_t filter_stride,
                                              int32_t acc[4])
{
    const int32_t channels = params->input_channels;
    int32_t input_index = window->input_start;
    int32_t filter_index = window->filter_start;
    int32_t row;
    acc[0] = 0;
    acc[1] = 0;
    acc[2] = 0;
    acc[3] = 0;
    for (row = 0; row < window->rows; ++row) {
        if (params->dilation_width == 1) {
            si4_dot_s8_quad(filter_0 + filter_index, filter_stride, input + input_index, window->columns * channels,
                            params->input_offset, acc);
        } else {
            int32_t column;
            for (column = 0; column < window->columns; ++column) {
                si4_dot_s8_quad(filter_0 + filter_index + column * channels, filter_stride,
                                input + input_index + column * params->dilation_width * channels, channels,
                                params->input_offset, acc);
            }
        }
        input_index += window->input_row_step;
        filter_index += window->filter_row_step;
    }
}

/* Windows of at most this many taps (kernel_height * kernel_width *
 * input_channels) are gathered into a stack buffer, so that each output
 * channel's accumulation is one contiguous dot product of that length. For
 * a first layer (one input channel, 3x3 kernel) a window row is only three
 * bytes, and walking rows would cost more than the multiplies themselves. */
#define SI4_GATHER_WINDOW_MAX 64

/* Copy the window's input taps, in the filter's [ky][kx][ic] order, into
 * taps[]; a tap in the padding gets -input_offset, so that
 * filter * (tap + input_offset) = 0 contributes nothing, as TFLM's skipping
 * does. Returns the number of taps, or 0 when the window is too large or
 * -input_offset is not an int8 value (then the caller walks the window). */
static inline int32_t si4_conv2d_gather_window(const si4_conv2d_params *params,
                                               const si4_conv2d_window *window,
                                               const int8_t *input,
                                               int8_t taps[SI4_GATHER_WINDOW_MAX])
{
    const int32_t channels = params->input_channels;
    const int32_t size = params->kernel_height * params->kernel_width * channels;
    const int32_t padding_value = -params->input_offset;
    int32_t index = 0;
    int32_t ky;
    if (size > SI4_GATHER_WINDOW_MAX || padding_value < INT8_MIN || padding_value > INT8_MAX) {
        return 0;
    }
    for (ky = 0; ky < params->kernel_height; ++ky) {
        const int32_t row_inside = ky >= window->ky_start && ky < window->ky_end;
        const int32_t in_y = window->in_y_origin + params->dilation_height * ky;
        int32_t kx;
        for (kx = 0; kx < params->kernel_width; ++kx) {
            const int32_t inside = row_inside && kx >= window->kx_start && kx < window->kx_end;
            const int32_t in_x = window->in_x_origin + params->dilation_width * kx;
            /* Index 0 for a padding tap keeps the (unused) address in bounds. */
            const int32_t tap_index = inside ? (in_y * params->input_width + in_x) * channels : 0;
            int32_t c;
            /* One select per byte rather than a copy loop: compilers turn a
             * plain copy into a memcpy call, costly for a few bytes. */
            for (c = 0; c < channels; ++c) {
                taps[index++] = inside ? input[tap_index + c] : (int8_t)padding_value;
            }
        }
    }
    return size;
}

/* The filter rows (or columns) [*start, *end) of a pool window whose first
 * row is at input row `origin` that lie inside an input of `extent` rows:
 * TFLM's pooling clipping (padding positions are ignored, not counted).
 * *end <= *start when the window misses the input. Called once for the
 * height and once for the width. */
static inline void si4_pool_window_range(int32_t origin,
                                         int32_t filter_size,
                                         int32_t extent,
                                         int32_t *start,
                                         int32_t *end)
{
    const int32_t limit = extent - origin;
    *start = origin < 0 ? -origin : 0;
    *end = filter_size < limit ? filter_size : limit;
}

/* Output channels first_channel .. end_channel - 1 of DEPTHWISE_CONV_2D position (out_y, out_x)
 * into out[first_channel .. end_channel), the window clipped to the input: TFLM's
 * DepthwiseConvPerChannel arithmetic (the portable kernel's edges, the pixel kernels, the DSP
 * kernel's cold paths). */
static inline void si4_depthwise_position(const si4_depthwise_conv2d_params *params,
                                          const int8_t *input,
                                          const int8_t *filter,
                                          const int32_t *bias,
                                          const int32_t *output_multiplier,
                                          const int32_t *output_shift,
                                          int32_t out_y,
                                          int32_t out_x,
                                          int32_t first_channel,
                                          int32_t end_channel,
                                          int8_t *out)
{
    const int32_t input_channels = params->input_channels;
    const int32_t output_channels = params->output_channels;
    const int32_t depth_multiplier = params->depth_multiplier;
    const int32_t input_offset = params->input_offset;
    const int32_t in_y_origin = out_y * params->stride_height - params->pad_top;
    const int32_t in_x_origin = out_x * params->stride_width - params->pad_left;
    int32_t ky_start;
    int32_t ky_end;
    int32_t kx_start;
    int32_t kx_end;
    int32_t oc;
    si4_valid_kernel_range(in_y_origin, params->dilation_height, params->kernel_height, params->input_height,
                           &ky_start, &ky_end);
    si4_valid_kernel_range(in_x_origin, params->dilation_width, params->kernel_width, params->input_width,
                           &kx_start, &kx_end);
    for (oc = first_channel; oc < end_channel; ++oc) {
        const int32_t ic = oc / depth_multiplier;
        const int32_t quant_index = params->per_channel ? oc : 0;
        int32_t acc = 0;
        int32_t ky;
        for (ky = ky_start; ky < ky_end; ++ky) {
            const int32_t in_y = in_y_origin + params->dilation_height * ky;
            int32_t kx;
            for (kx = kx_start; kx < kx_end; ++kx) {
                const int32_t in_x = in_x_origin + params->dilation_width * kx;
                const int32_t input_value = input[(in_y * params->input_width + in_x) * input_channels + ic];
                const int32_t filter_value = filter[(ky * params->kernel_width + kx) * output_channels + oc];
                acc += filter_value * (input_value + input_offset);
            }
        }
        if (bias != 0) {
            acc += bias[oc];
        }
        out[oc] = si4_requantize_s8(acc, output_multiplier[quant_index], output_shift[quant_index],
                                    params->output_offset, params->activation_min, params->activation_max);
    }
}

#endif /* SI4_KERNEL_UTIL_H */
