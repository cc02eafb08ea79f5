/*
 * kernel_sanitizer_driver.c - runs every portable kernel on random cases with
 * exactly sized heap buffers, for a build with -fsanitize=address,undefined.
 * Any out-of-bounds access or undefined behaviour aborts the run; the fused
 * conv + max-pool kernel is also checked against conv then max-pool, and
 * against a truncated input that only a kernel computing unused convolution
 * rows would read past. Exit status 0 and "ok <cases>" when all is well.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "si4_nn.h"

static uint32_t rng_state = 0x12345678u;

static uint32_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static int32_t random_between(int32_t low, int32_t high)
{
    return low + (int32_t)(next_random() % (uint32_t)(high - low + 1));
}

static int8_t *random_int8(int32_t count, int32_t low)
{
    int8_t *data = (int8_t *)malloc((size_t)(count > 0 ? count : 1));
    int32_t i;
    for (i = 0; i < count; ++i) {
        data[i] = (int8_t)random_between(low, 127);
    }
    return data;
}

static int32_t *random_int32(int32_t count, int32_t low, int32_t high)
{
    int32_t *data = (int32_t *)malloc(sizeof(int32_t) * (size_t)(count > 0 ? count : 1));
    int32_t i;
    for (i = 0; i < count; ++i) {
        data[i] = random_between(low, high);
    }
    return data;
}

/* TFLite SAME/VALID output size and leading padding. */
static void output_and_padding(int32_t same, int32_t input, int32_t kernel, int32_t stride, int32_t dilation,
                               int32_t *output, int32_t *pad)
{
    const int32_t effective = (kernel - 1) * dilation + 1;
    int32_t total;
    *output = same ? (input + stride - 1) / stride : (input - effective + stride) / stride;
    total = (*output - 1) * stride + effective - input;
    *pad = total > 0 ? total / 2 : 0;
}

static void random_quantization(int32_t count, int32_t **multiplier, int32_t **shift)
{
    int32_t i;
    *multiplier = (int32_t *)malloc(sizeof(int32_t) * (size_t)count);
    *shift = (int32_t *)malloc(sizeof(int32_t) * (size_t)count);
    for (i = 0; i < count; ++i) {
        (*multiplier)[i] = random_between(1 << 30, 0x7FFFFFFF);
        (*shift)[i] = random_between(-31, 2);
    }
}

static int run_conv_pool_case(void)
{
    si4_conv2d_params conv;
    si4_pool_params pool;
    int32_t same = random_between(0, 1);
    int32_t pool_same = random_between(0, 1);
    int32_t *bias;
    int32_t *multiplier;
    int32_t *shift;
    int8_t *input;
    int8_t *filter;
    int8_t *conv_output;
    int8_t *pooled;
    int8_t *fused;
    int32_t input_size;
    int32_t failed;

    conv.kernel_height = random_between(1, 4);
    conv.kernel_width = random_between(1, 4);
    conv.stride_height = random_between(1, 3);
    conv.stride_width = random_between(1, 3);
    conv.dilation_height = random_between(1, 2);
    conv.dilation_width = random_between(1, 2);
    conv.input_height = random_between((conv.kernel_height - 1) * conv.dilation_height + 1, 14);
    conv.input_width = random_between((conv.kernel_width - 1) * conv.dilation_width + 1, 14);
    conv.input_channels = random_between(1, 8);
    conv.output_channels = random_between(1, 8);
    output_and_padding(same, conv.input_height, conv.kernel_height, conv.stride_height, conv.dilation_height,
                       &conv.output_height, &conv.pad_top);
    output_and_padding(same, conv.input_width, conv.kernel_width, conv.stride_width, conv.dilation_width,
                       &conv.output_width, &conv.pad_left);
    conv.input_offset = random_between(-127, 128);
    conv.output_offset = random_between(-128, 127);
    conv.activation_min = random_between(-128, 0);
    conv.activation_max = random_between(conv.activation_min, 127);
    conv.per_channel = random_between(0, 1);

    pool.input_height = conv.output_height;
    pool.input_width = conv.output_width;
    pool.channels = conv.output_channels;
    pool.filter_height = random_between(1, conv.output_height < 3 ? conv.output_height : 3);
    pool.filter_width = random_between(1, conv.output_width < 3 ? conv.output_width : 3);
    pool.stride_height = random_between(1, 3);
    pool.stride_width = random_between(1, 3);
    output_and_padding(pool_same, pool.input_height, pool.filter_height, pool.stride_height, 1,
                       &pool.output_height, &pool.pad_top);
    output_and_padding(pool_same, pool.input_width, pool.filter_width, pool.stride_width, 1, &pool.output_width,
                       &pool.pad_left);
    pool.activation_min = random_between(-128, 0);
    pool.activation_max = random_between(pool.activation_min, 127);

    input_size = conv.input_height * conv.input_width * conv.input_channels;
    input = random_int8(input_size, -128);
    filter = random_int8(conv.output_channels * conv.kernel_height * conv.kernel_width * conv.input_channels, -127);
    bias = random_int32(conv.output_channels, -(1 << 20), 1 << 20);
    random_quantization(conv.output_channels, &multiplier, &shift);
    conv_output = (int8_t *)malloc((size_t)(conv.output_height * conv.output_width * conv.output_channels));
    pooled = (int8_t *)malloc((size_t)(pool.output_height * pool.output_width * pool.channels));
    fused = (int8_t *)malloc((size_t)(pool.output_height * pool.output_width * pool.channels));

    si4_conv2d_s8(&conv, input, filter, bias, multiplier, shift, conv_output);
    si4_max_pool_s8(&pool, conv_output, pooled);
    si4_conv2d_max_pool_s8(&conv, &pool, input, filter, bias, multiplier, shift, fused);
    failed = memcmp(pooled, fused, (size_t)(pool.output_height * pool.output_width * pool.channels)) != 0;
    si4_avg_pool_s8(&pool, conv_output, pooled);
    si4_conv2d_s8(&conv, input, filter, NULL, multiplier, shift, conv_output);

    free(input);
    free(filter);
    free(bias);
    free(multiplier);
    free(shift);
    free(conv_output);
    free(pooled);
    free(fused);
    if (failed) {
        fprintf(stderr, "fused conv+max-pool differs from conv then max-pool\n");
    }
    return failed;
}

static void run_depthwise_case(void)
{
    si4_depthwise_conv2d_params params;
    int32_t same = random_between(0, 1);
    int32_t *bias;
    int32_t *multiplier;
    int32_t *shift;
    int8_t *input;
    int8_t *filter;
    int8_t *output;
    params.kernel_height = random_between(1, 4);
    params.kernel_width = random_between(1, 4);
    params.stride_height = random_between(1, 3);
    params.stride_width = random_between(1, 3);
    params.dilation_height = random_between(1, 2);
    params.dilation_width = random_between(1, 2);
    params.input_height = random_between((params.kernel_height - 1) * params.dilation_height + 1, 12);
    params.input_width = random_between((params.kernel_width - 1) * params.dilation_width + 1, 12);
    params.input_channels = random_between(1, 6);
    params.depth_multiplier = random_between(1, 3);
    params.output_channels = params.input_channels * params.depth_multiplier;
    output_and_padding(same, params.input_height, params.kernel_height, params.stride_height,
                       params.dilation_height, &params.output_height, &params.pad_top);
    output_and_padding(same, params.input_width, params.kernel_width, params.stride_width, params.dilation_width,
                       &params.output_width, &params.pad_left);
    params.input_offset = random_between(-127, 128);
    params.output_offset = random_between(-128, 127);
    params.activation_min = random_between(-128, 0);
    params.activation_max = random_between(params.activation_min, 127);
    params.per_channel = random_between(0, 1);
    input = random_int8(params.input_height * params.input_width * params.input_channels, -128);
    filter = random_int8(params.kernel_height * params.kernel_width * params.output_channels, -127);
    bias = random_int32(params.output_channels, -(1 << 20), 1 << 20);
    random_quantization(params.output_channels, &multiplier, &shift);
    output = (int8_t *)malloc((size_t)(params.output_height * params.output_width * params.output_channels));
    si4_depthwise_conv2d_s8(&params, input, filter, bias, multiplier, shift, output);
    free(input);
    free(filter);
    free(bias);
    free(multiplier);
    free(shift);
    free(output);
}

static void run_fully_connected_and_softmax_case(void)
{
    si4_fully_connected_params fc;
    si4_softmax_params softmax;
    int32_t *bias;
    int32_t *multiplier;
    int32_t *shift;
    int8_t *input;
    int8_t *filter;
    int8_t *output;
    int8_t *probabilities;
    fc.batches = 1;
    fc.input_size = random_between(1, 300);
    fc.output_size = random_between(1, 40);
    fc.input_offset = random_between(-127, 128);
    fc.filter_offset = random_between(0, 1) ? 0 : random_between(-127, 127);
    fc.output_offset = random_between(-128, 127);
    fc.activation_min = random_between(-128, 0);
    fc.activation_max = random_between(fc.activation_min, 127);
    fc.per_channel = random_between(0, 1);
    input = random_int8(fc.input_size, -128);
    filter = random_int8(fc.input_size * fc.output_size, -127);
    bias = random_int32(fc.output_size, -(1 << 20), 1 << 20);
    random_quantization(fc.output_size, &multiplier, &shift);
    output = (int8_t *)malloc((size_t)fc.output_size);
    si4_fully_connected_s8(&fc, input, filter, bias, multiplier, shift, output);

    /* Softmax parameters for an input scale around 0.05..0.2 and beta 1
     * (as PreprocessSoftmaxScaling gives them). */
    softmax.rows = 1;
    softmax.row_size = fc.output_size;
    softmax.input_multiplier = random_between(1 << 30, 0x7FFFFFFF);
    softmax.input_left_shift = random_between(21, 24);
    softmax.diff_min = -((31 << 26) >> softmax.input_left_shift);
    probabilities = (int8_t *)malloc((size_t)softmax.row_size);
    si4_softmax_s8(&softmax, output, probabilities);
    free(input);
    free(filter);
    free(bias);
    free(multiplier);
    free(shift);
    free(output);
    free(probabilities);
}

/* ADD over four random loops, each input broadcasting some of them, with buffers of exactly the
 * inputs' sizes; when input 1 broadcasts nothing the output is written over it (in place). */
static void run_add_case(void)
{
    si4_add_params add;
    int32_t dims[4];
    int32_t strides1[4];
    int32_t strides2[4];
    int32_t size1 = 1;
    int32_t size2 = 1;
    int32_t total = 1;
    int32_t d;
    int8_t *input1;
    int8_t *input2;
    int8_t *output;
    for (d = 3; d >= 0; --d) {
        dims[d] = random_between(1, 4);
        strides1[d] = random_between(0, 2) == 0 ? 0 : size1;
        strides2[d] = random_between(0, 1) == 0 ? 0 : size2;
        size1 *= strides1[d] != 0 ? dims[d] : 1;
        size2 *= strides2[d] != 0 ? dims[d] : 1;
        total *= dims[d];
    }
    add.input1_offset = random_between(-127, 128);
    add.input1_multiplier = random_between(1 << 30, 0x7FFFFFFF);
    add.input1_shift = random_between(-12, 0);
    add.input2_offset = random_between(-127, 128);
    add.input2_multiplier = random_between(1 << 30, 0x7FFFFFFF);
    add.input2_shift = random_between(-12, 0);
    add.left_shift = 20;
    add.output_offset = random_between(-128, 127);
    add.output_multiplier = random_between(1 << 30, 0x7FFFFFFF);
    add.output_shift = random_between(-24, 0);
    add.activation_min = random_between(-128, 0);
    add.activation_max = random_between(add.activation_min, 127);
    add.dim_0 = dims[0];
    add.dim_1 = dims[1];
    add.dim_2 = dims[2];
    add.dim_3 = dims[3];
    add.input1_stride_0 = strides1[0];
    add.input1_stride_1 = strides1[1];
    add.input1_stride_2 = strides1[2];
    add.input1_stride_3 = strides1[3];
    add.input2_stride_0 = strides2[0];
    add.input2_stride_1 = strides2[1];
    add.input2_stride_2 = strides2[2];
    add.input2_stride_3 = strides2[3];
    input1 = random_int8(size1, -128);
    input2 = random_int8(size2, -128);
    if (size1 == total) {
        si4_add_s8(&add, input1, input2, input1);
    } else {
        output = (int8_t *)malloc((size_t)total);
        si4_add_s8(&add, input1, input2, output);
        free(output);
    }
    free(input1);
    free(input2);
}

/* 13x13x2 input, 3x3 VALID conv -> 11x11, 2x2/2 VALID pool -> 5x5. Only
 * convolution rows/columns 0..9 are pooled, so the last input byte needed is
 * row 11, column 11, channel 1: the buffer stops right after it and ASan
 * reports any read of convolution row or column 10's extra inputs. */
static void run_unused_rows_case(void)
{
    si4_conv2d_params conv = {13, 13, 2, 11, 11, 4, 3, 3, 1, 1, 1, 1, 0, 0, 3, -5, -128, 127, 1};
    si4_pool_params pool = {11, 11, 4, 5, 5, 2, 2, 2, 2, 0, 0, -128, 127};
    int8_t *input = random_int8((11 * 13 + 12) * 2, -128);
    int8_t *filter = random_int8(4 * 3 * 3 * 2, -127);
    int32_t *bias = random_int32(4, -1000, 1000);
    int32_t *multiplier;
    int32_t *shift;
    int8_t output[5 * 5 * 4];
    random_quantization(4, &multiplier, &shift);
    si4_conv2d_max_pool_s8(&conv, &pool, input, filter, bias, multiplier, shift, output);
    free(input);
    free(filter);
    free(bias);
    free(multiplier);
    free(shift);
}

int main(int argc, char **argv)
{
    int32_t cases = argc > 1 ? (int32_t)atoi(argv[1]) : 300;
    int32_t failures = 0;
    int32_t i;
    for (i = 0; i < cases; ++i) {
        failures += run_conv_pool_case();
        run_depthwise_case();
        run_fully_connected_and_softmax_case();
        run_add_case();
    }
    run_unused_rows_case();
    if (failures != 0) {
        printf("failed %ld of %ld\n", (long)failures, (long)cases);
        return 1;
    }
    printf("ok %ld\n", (long)cases);
    return 0;
}
