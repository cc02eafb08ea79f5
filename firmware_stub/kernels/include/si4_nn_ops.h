/*
 * si4_nn_ops.h - the elementwise, broadcast, padding, reduction and
 * concatenation int8 kernels (issue 10), each bit-exact with TensorFlow Lite
 * Micro's reference kernel for the same operator.
 *
 * Every constant (multipliers, shifts, clamps, strides, look-up tables) is
 * computed at build time by si4tool/compiler/ops/<op>.py exactly as TFLM's
 * Prepare computes it; the kernels only apply it. Params structs hold int32_t
 * fields only, in the order of the Python <Name>Params dataclasses.
 */
#ifndef SI4_NN_OPS_H
#define SI4_NN_OPS_H

#include <stdint.h>

/* RELU: TFLM ReluQuantized (requantizes, then clamps at the output's zero). */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t activation_min;
    int32_t activation_max;
} si4_relu_params;

/* RELU6: TFLM Relu6Quantized (a clamp on the input's scale, no requantization). */
typedef struct {
    int32_t size;
    int32_t lower;
    int32_t upper;
} si4_relu6_params;

/* LEAKY_RELU: TFLM QuantizeLeakyRelu, one multiplier per sign of the input. */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t identity_multiplier;
    int32_t identity_shift;
    int32_t alpha_multiplier;
    int32_t alpha_shift;
} si4_leaky_relu_params;

/* QUANTIZE int8 -> int8: TFLM reference_ops::Requantize. */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t output_multiplier;
    int32_t output_shift;
} si4_quantize_params;

/* LOGISTIC, TANH, HARD_SWISH: a 256-entry table indexed by the input byte
 * (table[(uint8_t)x]), built in Python with TFLM's integer arithmetic. */
typedef struct {
    int32_t size;
} si4_table_params;

/* The iteration of a broadcast binary op (MUL, SUB): the output shape over six
 * dimensions (leading ones added) and, per input, the element step of each
 * dimension, 0 where that input is broadcast. Row-major, last dimension
 * fastest, as TFLM's BroadcastBinaryOpSimple walks it. */
typedef struct {
    int32_t shape0;
    int32_t shape1;
    int32_t shape2;
    int32_t shape3;
    int32_t shape4;
    int32_t shape5;
    int32_t input1_stride0;
    int32_t input1_stride1;
    int32_t input1_stride2;
    int32_t input1_stride3;
    int32_t input1_stride4;
    int32_t input1_stride5;
    int32_t input2_stride0;
    int32_t input2_stride1;
    int32_t input2_stride2;
    int32_t input2_stride3;
    int32_t input2_stride4;
    int32_t input2_stride5;
} si4_broadcast_params;

/* MUL: TFLM reference_integer_ops::Mul / BroadcastMul6DSlow. */
typedef struct {
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t activation_min;
    int32_t activation_max;
} si4_mul_params;

/* SUB: TFLM reference_ops::Sub / BroadcastQuantSubSlow (int8). */
typedef struct {
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t left_shift;
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t output_offset;
    int32_t activation_min;
    int32_t activation_max;
} si4_sub_params;

/* PAD / PADV2 (constant): TFLM reference_ops::Pad over five dimensions
 * (leading ones added). */
typedef struct {
    int32_t input_shape0;
    int32_t input_shape1;
    int32_t input_shape2;
    int32_t input_shape3;
    int32_t input_shape4;
    int32_t pad_before0;
    int32_t pad_before1;
    int32_t pad_before2;
    int32_t pad_before3;
    int32_t pad_before4;
    int32_t pad_after0;
    int32_t pad_after1;
    int32_t pad_after2;
    int32_t pad_after3;
    int32_t pad_after4;
    int32_t pad_value;
} si4_pad_params;

/* MEAN over a run of contiguous axes (global average pooling: axes 1 and 2
 * of [N, H, W, C]): the input viewed as [outer][reduced][inner]. TFLM
 * reference_ops::QuantizedMeanOrSum. */
typedef struct {
    int32_t outer_size;
    int32_t reduced_size;
    int32_t inner_size;
    int32_t sum_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t output_zero_point;
} si4_mean_params;

/* CONCATENATION: one call per input copies its [outer][copy_size] slab to
 * output + output_offset, rows output_row_size apart. */
typedef struct {
    int32_t outer_size;
    int32_t copy_size;
    int32_t output_row_size;
    int32_t output_offset;
} si4_concatenation_params;

void si4_relu_s8(const si4_relu_params *params, const int8_t *input, int8_t *output);
void si4_relu6_s8(const si4_relu6_params *params, const int8_t *input, int8_t *output);
void si4_leaky_relu_s8(const si4_leaky_relu_params *params, const int8_t *input, int8_t *output);
void si4_quantize_s8(const si4_quantize_params *params, const int8_t *input, int8_t *output);
void si4_logistic_s8(const si4_table_params *params, const int8_t table[256], const int8_t *input, int8_t *output);
void si4_tanh_s8(const si4_table_params *params, const int8_t table[256], const int8_t *input, int8_t *output);
void si4_hard_swish_s8(const si4_table_params *params, const int8_t table[256], const int8_t *input,
                       int8_t *output);
void si4_mul_s8(const si4_mul_params *params, const si4_broadcast_params *broadcast, const int8_t *input1,
                const int8_t *input2, int8_t *output);
void si4_sub_s8(const si4_sub_params *params, const si4_broadcast_params *broadcast, const int8_t *input1,
                const int8_t *input2, int8_t *output);
void si4_pad_s8(const si4_pad_params *params, const int8_t *input, int8_t *output);
void si4_mean_s8(const si4_mean_params *params, const int8_t *input, int8_t *output);
void si4_concatenation_s8(const si4_concatenation_params *params, const int8_t *input, int8_t *output);

#endif /* SI4_NN_OPS_H */
