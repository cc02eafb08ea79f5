/*
 * si4_kernel_util.h - internal helpers shared by the kernel sources (not part
 * of the public API in si4_nn.h): int8 dot products and the receptive field
 * of one convolution output position.
 */
#ifndef SI4_KERNEL_UTIL_H
#define SI4_KERNEL_UTIL_H

#include <stdint.h>

#include "si4_nn.h"

/* sum_i a[i] * b[i] over n int8 pairs. Unrolled by four: on a Cortex-M this
 * keeps the loop overhead below one instruction per multiply-accumulate.
 * The caller guarantees the sum fits in int32 (TFLM assumes the same: at most
 * 2^16 products of magnitude <= 2^15). */
static inline int32_t si4_dot_s8(const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += (int32_t)a[i] * (int32_t)b[i];
        acc += (int32_t)a[i + 1] * (int32_t)b[i + 1];
        acc += (int32_t)a[i + 2] * (int32_t)b[i + 2];
        acc += (int32_t)a[i + 3] * (int32_t)b[i + 3];
    }
    for (; i < n; ++i) {
        acc += (int32_t)a[i] * (int32_t)b[i];
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
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += (int32_t)filter[i] * ((int32_t)input[i] + input_offset);
        acc += (int32_t)filter[i + 1] * ((int32_t)input[i + 1] + input_offset);
        acc += (int32_t)filter[i + 2] * ((int32_t)input[i + 2] + input_offset);
        acc += (int32_t)filter[i + 3] * ((int32_t)input[i + 3] + input_offset);
    }
    for (; i < n; ++i) {
        acc += (int32_t)filter[i] * ((int32_t)input[i] + input_offset);
    }
    return acc;
}

/* The part of a convolution window that lies inside the input: kernel rows
 * [ky_start, ky_end) and columns [kx_start, kx_end). Positions outside (the
 * padding) contribute nothing, as in TFLM's reference ConvPerChannel. */
typedef struct {
    int32_t in_y_origin;
    int32_t in_x_origin;
    int32_t ky_start;
    int32_t ky_end;
    int32_t kx_start;
    int32_t kx_end;
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
    window->in_y_origin = out_y * params->stride_height - params->pad_top;
    window->in_x_origin = out_x * params->stride_width - params->pad_left;
    si4_valid_kernel_range(window->in_y_origin, params->dilation_height, params->kernel_height,
                           params->input_height, &window->ky_start, &window->ky_end);
    si4_valid_kernel_range(window->in_x_origin, params->dilation_width, params->kernel_width,
                           params->input_width, &window->kx_start, &window->kx_end);
}

/* sum over the window of filter * (input + input_offset) for one output
 * channel (filter_oc points at its [kernel_height][kernel_width][input_channels]
 * slice). Bias not included. With dilation_width 1 a window row is one
 * contiguous run of (kx_end - kx_start) * input_channels bytes in both the
 * input and the filter, so the inner loop is a single dot product. */
static inline int32_t si4_conv2d_window_dot(const si4_conv2d_params *params,
                                            const si4_conv2d_window *window,
                                            const int8_t *input,
                                            const int8_t *filter_oc)
{
    const int32_t channels = params->input_channels;
    const int32_t input_row_stride = params->input_width * channels;
    const int32_t filter_row_stride = params->kernel_width * channels;
    const int32_t input_offset = params->input_offset;
    int32_t acc = 0;
    int32_t ky;
    if (window->kx_end <= window->kx_start) {
        return 0; /* the whole window lies in the padding */
    }
    for (ky = window->ky_start; ky < window->ky_end; ++ky) {
        const int32_t in_y = window->in_y_origin + params->dilation_height * ky;
        const int8_t *input_row = input + in_y * input_row_stride;
        const int8_t *filter_row = filter_oc + ky * filter_row_stride;
        if (params->dilation_width == 1) {
            const int32_t run = (window->kx_end - window->kx_start) * channels;
            const int8_t *input_run = input_row + (window->in_x_origin + window->kx_start) * channels;
            const int8_t *filter_run = filter_row + window->kx_start * channels;
            acc += input_offset == 0 ? si4_dot_s8(filter_run, input_run, run)
                                     : si4_dot_s8_input_offset(filter_run, input_run, run, input_offset);
        } else {
            int32_t kx;
            for (kx = window->kx_start; kx < window->kx_end; ++kx) {
                const int32_t in_x = window->in_x_origin + params->dilation_width * kx;
                acc += si4_dot_s8_input_offset(filter_row + kx * channels, input_row + in_x * channels,
                                               channels, input_offset);
            }
        }
    }
    return acc;
}

#endif /* SI4_KERNEL_UTIL_H */
