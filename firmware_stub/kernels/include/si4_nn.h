/*
 * si4_nn.h - the si4tool int8 kernel library.
 *
 * One operator per source file (kernels/src/<name>.c), reference style:
 * plain C99, explicit types, no malloc, no VLAs, no recursion, no floating
 * point. The caller owns every buffer. Tensors are NHWC with batch 1, int8,
 * asymmetric activations, symmetric weights.
 *
 * Every kernel matches TensorFlow Lite Micro's reference kernels
 * (tensorflow/lite/kernels/internal/reference/integer_ops/) bit for bit,
 * including the double-rounding requantization (see si4_requant.h).
 *
 * All parameters are computed by si4tool at build time and emitted as
 * const structs and arrays; nothing is derived on the device.
 */
#ifndef SI4_NN_H
#define SI4_NN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CONV_2D. Filter layout [output_channels][kernel_height][kernel_width][input_channels]
 * (TFLite OHWI). Padding positions contribute nothing (as in TFLM). */
typedef struct {
    int32_t input_height;
    int32_t input_width;
    int32_t input_channels;
    int32_t output_height;
    int32_t output_width;
    int32_t output_channels;
    int32_t kernel_height;
    int32_t kernel_width;
    int32_t stride_height;
    int32_t stride_width;
    int32_t dilation_height;
    int32_t dilation_width;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;   /* minus the input zero point */
    int32_t output_offset;  /* the output zero point */
    int32_t activation_min; /* fused activation clamp, int8 range */
    int32_t activation_max;
    int32_t per_channel;    /* 1: multiplier/shift have output_channels entries; 0: one entry */
} si4_conv2d_params;

/* MAX_POOL_2D and AVERAGE_POOL_2D. */
typedef struct {
    int32_t input_height;
    int32_t input_width;
    int32_t channels;
    int32_t output_height;
    int32_t output_width;
    int32_t filter_height;
    int32_t filter_width;
    int32_t stride_height;
    int32_t stride_width;
    int32_t pad_top;
    int32_t pad_left;
    int32_t activation_min;
    int32_t activation_max;
} si4_pool_params;

/* FULLY_CONNECTED. Filter layout [output_size][input_size]; the input is batches rows of
 * input_size values (TFLite flattens every dimension but the last), the output batches rows
 * of output_size. */
typedef struct {
    int32_t input_size;
    int32_t output_size;
    int32_t input_offset;   /* minus the input zero point */
    int32_t filter_offset;  /* minus the filter zero point (0 for symmetric weights) */
    int32_t output_offset;  /* the output zero point */
    int32_t activation_min;
    int32_t activation_max;
    int32_t per_channel;    /* 1: multiplier/shift have output_size entries; 0: one entry */
    int32_t batches;        /* rows of the input (at least 1) */
} si4_fully_connected_params;

/* SOFTMAX, int8 in, int8 out (output scale 1/256, zero point -128, as TFLM requires). */
typedef struct {
    int32_t rows;
    int32_t row_size;
    int32_t input_multiplier;  /* beta * input_scale as a Q31 multiplier ... */
    int32_t input_left_shift;  /* ... and its left shift (PreprocessSoftmaxScaling, 5 integer bits) */
    int32_t diff_min;          /* inputs this far below the row maximum give exp() = 0 */
} si4_softmax_params;

/* DEPTHWISE_CONV_2D. Filter layout [1][kernel_height][kernel_width][output_channels],
 * output_channels = input_channels * depth_multiplier. */
typedef struct {
    int32_t input_height;
    int32_t input_width;
    int32_t input_channels;
    int32_t output_height;
    int32_t output_width;
    int32_t output_channels;
    int32_t depth_multiplier;
    int32_t kernel_height;
    int32_t kernel_width;
    int32_t stride_height;
    int32_t stride_width;
    int32_t dilation_height;
    int32_t dilation_width;
    int32_t pad_top;
    int32_t pad_left;
    int32_t input_offset;
    int32_t output_offset;
    int32_t activation_min;
    int32_t activation_max;
    int32_t per_channel;
} si4_depthwise_conv2d_params;

/* ADD with broadcasting. The output is walked as dim_0 x dim_1 x dim_2 x dim_3 (outermost
 * first, the shapes collapsed by si4tool); input k's element is at sum(i_d * inputk_stride_d),
 * stride 0 where it broadcasts. Inputs are rescaled to a common scale with left_shift (20)
 * bits of headroom, added, and requantized (TFLM's int8 ADD). */
typedef struct {
    int32_t input1_offset; /* minus the zero point of input 1 */
    int32_t input1_multiplier;
    int32_t input1_shift; /* <= 0 */
    int32_t input2_offset;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t left_shift;
    int32_t output_offset; /* the output zero point */
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t activation_min;
    int32_t activation_max;
    int32_t dim_0;
    int32_t dim_1;
    int32_t dim_2;
    int32_t dim_3;
    int32_t input1_stride_0;
    int32_t input1_stride_1;
    int32_t input1_stride_2;
    int32_t input1_stride_3;
    int32_t input2_stride_0;
    int32_t input2_stride_1;
    int32_t input2_stride_2;
    int32_t input2_stride_3;
} si4_add_params;

/* CONV_2D, one kernel per shape class: the three take the same arguments
 * and give the same bytes for any shape (each computes a shape outside its
 * class exactly, by a slower path), so a caller may use si4_conv2d_s8
 * everywhere. The generator picks the class's kernel for each layer
 * (ops/conv2d.py conv2d_kernel) so that a model links only the paths its
 * layers run: 1x1 windows -> si4_conv2d_1x1_s8; one input channel, 3x3 ->
 * si4_conv2d_1ch_3x3_s8; 1 to 4 input channels with windows of 8 to 64 taps
 * -> si4_conv2d_few_channels_s8; the rest -> si4_conv2d_s8. */
void si4_conv2d_s8(const si4_conv2d_params *params,
                   const int8_t *input,
                   const int8_t *filter,
                   const int32_t *bias,
                   const int32_t *output_multiplier,
                   const int32_t *output_shift,
                   int8_t *output);
void si4_conv2d_1x1_s8(const si4_conv2d_params *params,
                       const int8_t *input,
                       const int8_t *filter,
                       const int32_t *bias,
                       const int32_t *output_multiplier,
                       const int32_t *output_shift,
                       int8_t *output);
void si4_conv2d_few_channels_s8(const si4_conv2d_params *params,
                                const int8_t *input,
                                const int8_t *filter,
                                const int32_t *bias,
                                const int32_t *output_multiplier,
                                const int32_t *output_shift,
                                int8_t *output);
void si4_conv2d_1ch_3x3_s8(const si4_conv2d_params *params,
                           const int8_t *input,
                           const int8_t *filter,
                           const int32_t *bias,
                           const int32_t *output_multiplier,
                           const int32_t *output_shift,
                           int8_t *output);
/* Any shape, one output at a time: small and slow, the DSP kernels' fallback. */
void si4_conv2d_each_output_s8(const si4_conv2d_params *params,
                               const int8_t *input,
                               const int8_t *filter,
                               const int32_t *bias,
                               const int32_t *output_multiplier,
                               const int32_t *output_shift,
                               int8_t *output);

/* CONV_2D followed by MAX_POOL_2D, computed without materialising the
 * convolution output. conv->output_* are the (virtual) convolution output
 * dimensions, pool->input_* equal them, pool->output_* are the result.
 * Pooling the int32 accumulators before requantizing is exact because
 * requantization (positive multiplier), the offset and the clamp are all
 * monotonic non-decreasing. */
void si4_conv2d_max_pool_s8(const si4_conv2d_params *conv,
                            const si4_pool_params *pool,
                            const int8_t *input,
                            const int8_t *filter,
                            const int32_t *bias,
                            const int32_t *output_multiplier,
                            const int32_t *output_shift,
                            int8_t *output);

void si4_depthwise_conv2d_s8(const si4_depthwise_conv2d_params *params,
                             const int8_t *input,
                             const int8_t *filter,
                             const int32_t *bias,
                             const int32_t *output_multiplier,
                             const int32_t *output_shift,
                             int8_t *output);

void si4_max_pool_s8(const si4_pool_params *params, const int8_t *input, int8_t *output);

void si4_avg_pool_s8(const si4_pool_params *params, const int8_t *input, int8_t *output);

void si4_fully_connected_s8(const si4_fully_connected_params *params,
                            const int8_t *input,
                            const int8_t *filter,
                            const int32_t *bias,
                            const int32_t *output_multiplier,
                            const int32_t *output_shift,
                            int8_t *output);

/* FULLY_CONNECTED's shape class of per-tensor layers with symmetric weights
 * and an input of whole words (up to 256 values for the DSP build's fast
 * path): the same arguments and bytes as si4_fully_connected_s8 for any
 * layer. The generator picks it where it applies (ops/fully_connected.py),
 * so that such a model links only its loop. */
void si4_fully_connected_per_tensor_s8(const si4_fully_connected_params *params,
                                       const int8_t *input,
                                       const int8_t *filter,
                                       const int32_t *bias,
                                       const int32_t *output_multiplier,
                                       const int32_t *output_shift,
                                       int8_t *output);

void si4_softmax_s8(const si4_softmax_params *params, const int8_t *input, int8_t *output);

/* The output may be input1 or input2 when that input has the output's shape (in place). */
void si4_add_s8(const si4_add_params *params, const int8_t *input1, const int8_t *input2, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* SI4_NN_H */
