/*
 * si4_depthwise_conv2d_pixel_s8.c - one output position of a DEPTHWISE_CONV_2D.
 *
 * An in-place schedule that computes a depthwise layer one pixel at a time
 * (its ring of pending output then holds a row and a pixel or two instead of
 * two rows) would pay a whole-layer kernel's per-call set-up once per pixel.
 * This entry point takes the whole layer's params and input and computes
 * position (out_y, out_x) only, with the arithmetic of
 * si4_depthwise_conv2d_s8 (TFLM's DepthwiseConvPerChannel), so its bytes are
 * the whole-tensor kernel's bytes at that position.
 */
#include "si4_nn_stream.h"

#include "si4_kernel_util.h"
#include "si4_requant.h"

void si4_depthwise_conv2d_pixel_s8(const si4_depthwise_conv2d_params *params,
                                   const int8_t *input,
                                   const int8_t *filter,
                                   const int32_t *bias,
                                   const int32_t *output_multiplier,
                                   const int32_t *output_shift,
                                   int32_t out_y,
                                   int32_t out_x,
                                   int8_t *output)
{
    si4_depthwise_position(params, input, filter, bias, output_multiplier, output_shift, out_y, out_x, 0,
                           params->output_channels, output);
}
