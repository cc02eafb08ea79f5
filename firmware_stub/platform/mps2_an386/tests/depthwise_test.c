/*
 * depthwise_test.c - the DSP depthwise kernel (and the DSP average pool and add)
 * against the portable ones, byte for byte, under QEMU
 * (tests/test_dsp_depthwise.py builds and runs it).
 *
 * Linked with both variants: the portable file is compiled with its function
 * renamed si4_ref_depthwise_conv2d_s8, the DSP file keeps the name. Seeded
 * random shapes (3x3 stride 1 and 2 most of the time, other kernels,
 * dilation, depth multipliers), channel counts 1, 3, 5, 8, 64 and others,
 * odd widths, padding on every side (TFLM's SAME padding puts the extra row
 * or column at the bottom and right; pad_top/pad_left of 0..2 with any input
 * size covers every side), zero points, multipliers 0 and INT32_MIN, right
 * shifts 1..31 and 0, left shifts; then directed 3x3 shapes the draw reaches
 * rarely (1-row and 1-column maps, 3x3 maps, channels not a multiple of 4,
 * one-sided padding, stride 2 on odd sizes, per-tensor), three draws each.
 * Prints one line per mismatch and:
 *
 *   mismatch depthwise case <i> byte <j> portable <a> dsp <b> (<shape>)
 *   depthwise-bench <shape> macs <n> portable <i> dsp <j> instructions
 *   depthwise-test cases <n> mismatches <m> fast <k>
 *   avg-pool-bench <shape> portable <i> dsp <j> instructions
 *   avg-pool-test cases <n> mismatches <m>
 *   add-bench <shape> portable <i> dsp <j> instructions
 *   add-test cases <n> mismatches <m> tables <t>
 *   result PASS|FAIL
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/include/si4_nn.h"
#include "platform.h"

void si4_ref_add_s8(const si4_add_params *params, const int8_t *input1, const int8_t *input2, int8_t *output);
void si4_ref_avg_pool_s8(const si4_pool_params *params, const int8_t *input, int8_t *output);
void si4_ref_depthwise_conv2d_s8(const si4_depthwise_conv2d_params *params, const int8_t *input,
                                 const int8_t *filter, const int32_t *bias, const int32_t *output_multiplier,
                                 const int32_t *output_shift, int8_t *output);

#ifndef DEPTHWISE_TEST_CASES
#define DEPTHWISE_TEST_CASES 400
#endif
#define BUFFER_BYTES 36864 /* the largest bench shape, 48x48x16 */
#define MAX_CHANNELS 128

#define TEST_RANDOM_SEED 0x9E3779B9u
#include "test_support.h"

/* Multipliers in [2^30, 2^31) with right shifts that bring a 9-tap
 * accumulator near the int8 range, and now and then the ends of the
 * requantization's domain: multiplier 0 and INT32_MIN, right shift 0 and
 * 31, left shifts (small, and large enough to overflow), huge biases. */
static void fill_requant(int32_t channels)
{
    int32_t i;
    for (i = 0; i < channels; ++i) {
        multiplier[i] = (int32_t)(0x40000000u + (random_u32() & 0x3FFFFFFFu));
        shift[i] = -random_between(6, 12);
        bias[i] = random_between(-20000, 20000);
        switch (random_between(0, 15)) {
        case 0:
            multiplier[i] = 0;
            break;
        case 1:
            multiplier[i] = INT32_MIN;
            break;
        case 2:
            shift[i] = -31;
            break;
        case 3:
            shift[i] = 0;
            break;
        case 4:
            shift[i] = random_between(1, 3);
            break;
        case 5:
            shift[i] = random_between(20, 31);
            break;
        case 6:
            bias[i] = (int32_t)random_u32();
            break;
        case 7:
            shift[i] = -1;
            break;
        default:
            break;
        }
    }
}

static void random_activation(int32_t *activation_min, int32_t *activation_max, int32_t output_offset)
{
    switch (random_between(0, 3)) {
    case 0:
        *activation_min = -128;
        *activation_max = 127;
        break;
    case 1: /* relu */
        *activation_min = output_offset;
        *activation_max = 127;
        break;
    case 2: /* relu6-like */
        *activation_min = output_offset;
        *activation_max = output_offset + random_between(0, 127 - output_offset);
        break;
    default: /* any int8 bounds, even inverted */
        *activation_min = random_between(-128, 127);
        *activation_max = random_between(-128, 127);
        break;
    }
}

static int32_t output_size(int32_t input_size, int32_t kernel, int32_t stride, int32_t dilation, int32_t pad_before,
                           int32_t pad_after)
{
    return (input_size + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride + 1;
}

static int32_t check_case(si4_depthwise_conv2d_params *p, int32_t pad_bottom, int32_t pad_right, int32_t case_index,
                          int32_t *fast);

/* One random case; -1 when the draw does not fit the buffers. */
static int32_t run_case(int32_t case_index, int32_t *fast)
{
    static const int32_t channel_choices[] = {1, 3, 5, 8, 64, 4, 2, 7, 12, 16, 32, 6, 9, 20, 10};
    si4_depthwise_conv2d_params p;
    int32_t pad_bottom;
    int32_t pad_right;
    memset(&p, 0, sizeof p);
    p.input_channels = channel_choices[case_index < 15 ? case_index : random_between(0, 14)];
    p.depth_multiplier = random_between(0, 7) == 0 ? random_between(2, 3) : 1;
    p.kernel_height = 3;
    p.kernel_width = 3;
    if (random_between(0, 4) == 0) {
        p.kernel_height = random_between(1, 6);
        p.kernel_width = random_between(1, 6);
    }
    p.stride_height = random_between(1, 2);
    p.stride_width = random_between(1, 2);
    p.dilation_height = random_between(0, 7) == 0 ? 2 : 1;
    p.dilation_width = random_between(0, 7) == 0 ? 2 : 1;
    p.input_height = random_between(1, 13);
    p.input_width = random_between(1, 13);
    p.pad_top = random_between(0, 2);
    p.pad_left = random_between(0, 2);
    pad_bottom = random_between(0, 2);
    pad_right = random_between(0, 2);
    p.output_height = output_size(p.input_height, p.kernel_height, p.stride_height, p.dilation_height, p.pad_top,
                                  pad_bottom);
    p.output_width = output_size(p.input_width, p.kernel_width, p.stride_width, p.dilation_width, p.pad_left,
                                 pad_right);
    p.output_channels = p.input_channels * p.depth_multiplier;
    p.input_offset = random_between(0, 3) == 0 ? 0 : random_between(-127, 128);
    p.output_offset = random_between(-128, 127);
    random_activation(&p.activation_min, &p.activation_max, p.output_offset);
    p.per_channel = random_between(0, 5) != 0;
    return check_case(&p, pad_bottom, pad_right, case_index, fast);
}

/* Shapes the random draw reaches rarely, each run with random data and
 * requantization: 1-row and 1-column maps, 3x3 maps, channels not a multiple
 * of four (the DSP kernel's overlapping last group), padding on one side
 * only, stride 2 with odd sizes, padding of 2 (windows that cannot move
 * inside), per-tensor quantization; and the one-row bands of a layer run in
 * place at a map's edges, grown to three input rows (schedule.py
 * _whole_window_band): a negative pad (-1) on the side the window does not
 * reach. {height, width, channels, stride_h, stride_w, pad top, left, bottom,
 * right, per_channel}. */
static const int32_t directed_shapes[][10] = {
    {1, 9, 6, 1, 1, 1, 1, 1, 1, 1},   {9, 1, 10, 1, 1, 1, 1, 1, 1, 1},  {1, 1, 3, 1, 1, 1, 1, 1, 1, 1},
    {3, 3, 10, 1, 1, 1, 1, 1, 1, 1},  {3, 3, 6, 2, 2, 1, 1, 1, 1, 0},   {3, 3, 128, 2, 2, 0, 0, 1, 1, 1},
    {6, 6, 6, 2, 2, 0, 0, 1, 1, 1},   {7, 5, 10, 2, 2, 1, 1, 1, 1, 1},  {5, 7, 9, 2, 1, 1, 1, 1, 1, 0},
    {4, 9, 13, 1, 1, 0, 1, 0, 0, 1},  {9, 4, 7, 1, 1, 1, 0, 0, 0, 1},   {5, 5, 6, 1, 1, 0, 0, 1, 1, 1},
    {6, 8, 5, 1, 1, 2, 2, 2, 2, 1},   {25, 5, 12, 1, 1, 1, 1, 1, 1, 1}, {11, 13, 4, 1, 2, 0, 0, 0, 0, 0},
    {8, 8, 1, 1, 1, 1, 1, 1, 1, 1},   {3, 4, 3, 1, 1, 0, 0, 0, 0, 1},   {12, 12, 20, 2, 2, 0, 0, 1, 1, 1},
    {3, 5, 64, 1, 1, 1, 1, -1, 1, 1}, {3, 5, 64, 1, 1, -1, 1, 1, 1, 1}, {3, 7, 13, 1, 1, -1, 1, 1, 1, 0},
    {3, 8, 16, 2, 2, -1, 0, 1, 1, 1},
};
#define DIRECTED_SHAPES ((int32_t)(sizeof directed_shapes / sizeof directed_shapes[0]))

static int32_t run_directed_case(int32_t index, int32_t *fast)
{
    const int32_t *shape = directed_shapes[index % DIRECTED_SHAPES];
    si4_depthwise_conv2d_params p;
    memset(&p, 0, sizeof p);
    p.input_height = shape[0];
    p.input_width = shape[1];
    p.input_channels = shape[2];
    p.output_channels = shape[2];
    p.depth_multiplier = 1;
    p.kernel_height = 3;
    p.kernel_width = 3;
    p.stride_height = shape[3];
    p.stride_width = shape[4];
    p.dilation_height = 1;
    p.dilation_width = 1;
    p.pad_top = shape[5];
    p.pad_left = shape[6];
    p.per_channel = shape[9];
    p.output_height = output_size(p.input_height, 3, p.stride_height, 1, p.pad_top, shape[7]);
    p.output_width = output_size(p.input_width, 3, p.stride_width, 1, p.pad_left, shape[8]);
    p.input_offset = random_between(-127, 128);
    p.output_offset = random_between(-128, 127);
    random_activation(&p.activation_min, &p.activation_max, p.output_offset);
    return check_case(&p, shape[7], shape[8], 1000 + index, fast);
}

/* Random data and requantization for shape `p`, both kernels, byte for byte
 * (and nothing written past the end); -1 when the shape does not fit. */
static int32_t check_case(si4_depthwise_conv2d_params *p_in, int32_t pad_bottom, int32_t pad_right, int32_t case_index,
                          int32_t *fast)
{
    si4_depthwise_conv2d_params p = *p_in;
    const int32_t *case_bias;
    char shape[200];
    const int32_t channels = p.output_channels;
    int32_t bytes;
    int32_t i;
    if (p.output_height < 1 || p.output_width < 1 || channels > MAX_CHANNELS ||
        p.input_height * p.input_width * p.input_channels > BUFFER_BYTES ||
        p.output_height * p.output_width * channels > BUFFER_BYTES ||
        p.kernel_height * p.kernel_width * channels > BUFFER_BYTES) {
        return -1;
    }
    fill_s8(input, p.input_height * p.input_width * p.input_channels);
    fill_s8(filter, p.kernel_height * p.kernel_width * channels);
    if (random_between(0, 9) == 0) { /* extreme weights: the accumulator bound */
        for (i = 0; i < p.kernel_height * p.kernel_width * channels; ++i) {
            filter[i] = (int8_t)(random_between(0, 1) ? -128 : 127);
        }
    }
    fill_requant(channels);
    memset(output_portable, 0x55, (size_t)(p.output_height * p.output_width * channels) + 4u);
    memset(output_dsp, 0x55, (size_t)(p.output_height * p.output_width * channels) + 4u);
    case_bias = random_between(0, 9) == 0 ? 0 : bias; /* sometimes no bias at all */
    si4_ref_depthwise_conv2d_s8(&p, input, filter, case_bias, multiplier, shift, output_portable);
    si4_depthwise_conv2d_s8(&p, input, filter, case_bias, multiplier, shift, output_dsp);
    *fast += p.depth_multiplier == 1 && p.kernel_height == 3 && p.kernel_width == 3 && p.input_channels >= 4 &&
             p.dilation_height == 1 && p.dilation_width == 1;
    bytes = p.output_height * p.output_width * channels + 4; /* and nothing written past the end */
    for (i = 0; i < bytes; ++i) {
        if (output_portable[i] != output_dsp[i]) {
            snprintf(shape, sizeof shape,
                     "in %ldx%ldx%ld k %ldx%ld s %ld,%ld d %ld,%ld pad t%ld l%ld b%ld r%ld dm %ld off %ld/%ld act %ld..%ld",
                     (long)p.input_height, (long)p.input_width, (long)p.input_channels, (long)p.kernel_height,
                     (long)p.kernel_width, (long)p.stride_height, (long)p.stride_width, (long)p.dilation_height,
                     (long)p.dilation_width, (long)p.pad_top, (long)p.pad_left, (long)pad_bottom, (long)pad_right,
                     (long)p.depth_multiplier, (long)p.input_offset, (long)p.output_offset, (long)p.activation_min,
                     (long)p.activation_max);
            printf("mismatch depthwise case %ld byte %ld portable %d dsp %d (%s)\n", (long)case_index, (long)i,
                   output_portable[i], output_dsp[i], shape);
            return 1;
        }
    }
    return 0;
}

/* Instructions (QEMU -icount) of both kernels on the MLPerf Tiny depthwise
 * shapes, 3x3 with SAME padding: kws (25x5x64, stride 1), vww's first
 * (48x48x8 stride 1) and a stride-2 one (48x48x16 -> 24x24x16). Random data;
 * the two outputs are compared too. */
static int32_t bench_shape(const char *name, int32_t height, int32_t width, int32_t channels, int32_t stride)
{
    si4_depthwise_conv2d_params p;
    uint64_t start;
    uint64_t portable;
    uint64_t dsp;
    int32_t bytes;
    int32_t i;
    memset(&p, 0, sizeof p);
    p.input_height = height;
    p.input_width = width;
    p.input_channels = channels;
    p.output_channels = channels;
    p.depth_multiplier = 1;
    p.kernel_height = 3;
    p.kernel_width = 3;
    p.stride_height = stride;
    p.stride_width = stride;
    p.dilation_height = 1;
    p.dilation_width = 1;
    p.output_height = (height + stride - 1) / stride;
    p.output_width = (width + stride - 1) / stride;
    p.pad_top = ((p.output_height - 1) * stride + 3 - height) / 2;
    p.pad_left = ((p.output_width - 1) * stride + 3 - width) / 2;
    p.input_offset = 128;
    p.output_offset = -128;
    p.activation_min = -128;
    p.activation_max = 127;
    p.per_channel = 1;
    fill_s8(input, height * width * channels);
    fill_s8(filter, 9 * channels);
    for (i = 0; i < channels; ++i) {
        multiplier[i] = (int32_t)(0x40000000u + (random_u32() & 0x3FFFFFFFu));
        shift[i] = -random_between(7, 9);
        bias[i] = random_between(-5000, 5000);
    }
    start = platform_counter_read();
    si4_ref_depthwise_conv2d_s8(&p, input, filter, bias, multiplier, shift, output_portable);
    portable = platform_counter_read() - start;
    start = platform_counter_read();
    si4_depthwise_conv2d_s8(&p, input, filter, bias, multiplier, shift, output_dsp);
    dsp = platform_counter_read() - start;
    bytes = p.output_height * p.output_width * channels;
    printf("depthwise-bench %s macs %ld portable %lu dsp %lu %s\n", name, (long)(bytes * 9), (unsigned long)portable,
           (unsigned long)dsp, platform_counter_unit());
    return memcmp(output_portable, output_dsp, (size_t)bytes) != 0;
}

/* AVERAGE_POOL_2D, DSP twin against portable: random windows (up to 17x17,
 * beyond the 256 positions a 16-bit lane sum holds), strides, padding,
 * channel counts, clamps; and the MLPerf Tiny global pools' instructions. */
static int32_t run_avg_pool_case(int32_t case_index)
{
    static const int32_t channel_choices[] = {1, 3, 4, 5, 8, 64, 7, 16, 12, 2};
    si4_pool_params p;
    int32_t bytes;
    int32_t i;
    memset(&p, 0, sizeof p);
    p.channels = channel_choices[random_between(0, 9)];
    p.filter_height = random_between(1, case_index % 8 == 0 ? 17 : 4);
    p.filter_width = random_between(1, case_index % 8 == 0 ? 17 : 4);
    p.stride_height = random_between(1, 3);
    p.stride_width = random_between(1, 3);
    p.input_height = random_between(p.filter_height, p.filter_height + 8);
    p.input_width = random_between(p.filter_width, p.filter_width + 8);
    p.pad_top = random_between(0, (p.filter_height - 1) / 2);
    p.pad_left = random_between(0, (p.filter_width - 1) / 2);
    p.output_height = (p.input_height + p.pad_top - p.filter_height) / p.stride_height + 1;
    p.output_width = (p.input_width + p.pad_left - p.filter_width) / p.stride_width + 1;
    random_activation(&p.activation_min, &p.activation_max, random_between(-128, 127));
    if (p.input_height * p.input_width * p.channels > BUFFER_BYTES ||
        p.output_height * p.output_width * p.channels > BUFFER_BYTES) {
        return -1;
    }
    fill_s8(input, p.input_height * p.input_width * p.channels);
    if (random_between(0, 5) == 0) { /* all -128 or all 127: the lane sums' ends */
        const int8_t value = (int8_t)(random_between(0, 1) ? -128 : 127);
        memset(input, value, (size_t)(p.input_height * p.input_width * p.channels));
    }
    bytes = p.output_height * p.output_width * p.channels;
    memset(output_portable, 0x55, (size_t)bytes + 4u);
    memset(output_dsp, 0x55, (size_t)bytes + 4u);
    si4_ref_avg_pool_s8(&p, input, output_portable);
    si4_avg_pool_s8(&p, input, output_dsp);
    for (i = 0; i < bytes + 4; ++i) {
        if (output_portable[i] != output_dsp[i]) {
            printf("mismatch avg_pool case %ld byte %ld portable %d dsp %d (in %ldx%ldx%ld window %ldx%ld)\n",
                   (long)case_index, (long)i, output_portable[i], output_dsp[i], (long)p.input_height,
                   (long)p.input_width, (long)p.channels, (long)p.filter_height, (long)p.filter_width);
            return 1;
        }
    }
    return 0;
}

static int32_t bench_avg_pool(const char *name, int32_t height, int32_t width, int32_t channels)
{
    si4_pool_params p;
    uint64_t start;
    uint64_t portable;
    uint64_t dsp;
    memset(&p, 0, sizeof p);
    p.input_height = height;
    p.input_width = width;
    p.channels = channels;
    p.output_height = 1;
    p.output_width = 1;
    p.filter_height = height;
    p.filter_width = width;
    p.stride_height = 1;
    p.stride_width = 1;
    p.activation_min = -128;
    p.activation_max = 127;
    fill_s8(input, height * width * channels);
    start = platform_counter_read();
    si4_ref_avg_pool_s8(&p, input, output_portable);
    portable = platform_counter_read() - start;
    start = platform_counter_read();
    si4_avg_pool_s8(&p, input, output_dsp);
    dsp = platform_counter_read() - start;
    printf("avg-pool-bench %s portable %lu dsp %lu %s\n", name, (unsigned long)portable, (unsigned long)dsp,
           platform_counter_unit());
    return memcmp(output_portable, output_dsp, (size_t)channels) != 0;
}

/* ADD, DSP twin against portable: random 4-D shapes, input 2 broadcast
 * along some axes now and then, zero points, multipliers (0 and INT32_MIN
 * too) and shifts (a left shift of an input now and then: the slow path),
 * in place over input 1. */
static int32_t random_multiplier(void)
{
    switch (random_between(0, 11)) {
    case 0:
        return 0;
    case 1:
        return INT32_MIN;
    default:
        return (int32_t)(0x40000000u + (random_u32() & 0x3FFFFFFFu));
    }
}

static int32_t add_table_cases;

static int32_t run_add_case(int32_t case_index)
{
    si4_add_params p;
    static int8_t second[BUFFER_BYTES];
    int32_t bytes;
    int32_t in_place;
    int32_t i;
    memset(&p, 0, sizeof p);
    p.dim_0 = random_between(1, 2);
    p.dim_1 = random_between(1, 6);
    p.dim_2 = random_between(1, 6);
    /* Now and then a long innermost run: the DSP kernel's table path does
     * four elements a word there, plus a tail. */
    p.dim_3 = random_between(0, 3) == 0 ? random_between(21, 90) : random_between(1, 20);
    bytes = p.dim_0 * p.dim_1 * p.dim_2 * p.dim_3;
    p.input1_stride_3 = 1;
    p.input1_stride_2 = p.dim_3;
    p.input1_stride_1 = p.dim_3 * p.dim_2;
    p.input1_stride_0 = p.dim_3 * p.dim_2 * p.dim_1;
    p.input2_stride_3 = random_between(0, 3) == 0 ? 0 : 1;
    p.input2_stride_2 = random_between(0, 3) == 0 ? 0 : p.dim_3;
    p.input2_stride_1 = random_between(0, 3) == 0 ? 0 : p.dim_3 * p.dim_2;
    p.input2_stride_0 = random_between(0, 3) == 0 ? 0 : p.dim_3 * p.dim_2 * p.dim_1;
    p.input1_offset = random_between(-127, 128);
    p.input2_offset = random_between(-127, 128);
    /* TFLM's headroom is 20 bits, which hides the inputs' rounding behind the
     * output's; small headrooms and shifts make every rounding step show. */
    p.left_shift = random_between(0, 2) == 0 ? 20 : random_between(0, 3);
    p.input1_multiplier = random_multiplier();
    p.input2_multiplier = random_multiplier();
    p.input1_shift = random_between(0, 9) == 0 ? random_between(0, 2) : -random_between(0, random_between(0, 1) ? 3 : 31);
    p.input2_shift = random_between(0, 9) == 0 ? random_between(0, 2) : -random_between(0, random_between(0, 1) ? 3 : 31);
    p.output_multiplier = random_multiplier();
    p.output_shift = random_between(0, 5) == 0 ? random_between(0, 3) : -random_between(0, p.left_shift + 3);
    p.output_offset = random_between(-128, 127);
    random_activation(&p.activation_min, &p.activation_max, p.output_offset);
    fill_s8(input, bytes);
    fill_s8(second, bytes);
    in_place = case_index % 5 == 0;
    memset(output_portable, 0x55, (size_t)bytes + 4u);
    memset(output_dsp, 0x55, (size_t)bytes + 4u);
    si4_ref_add_s8(&p, input, second, output_portable);
    if (in_place) {
        memcpy(output_dsp, input, (size_t)bytes);
        si4_add_s8(&p, output_dsp, second, output_dsp);
    } else {
        si4_add_s8(&p, input, second, output_dsp);
    }
    /* The DSP kernel's table path takes calls of 64 elements or more whose
     * output shifts right by 1..23 (si4_add_s8.c, kernels/dsp). */
    if (bytes >= 64 && p.output_shift <= -1 && p.output_shift >= -23 && p.output_multiplier >= 0) {
        ++add_table_cases;
    }
    for (i = 0; i < bytes + 4; ++i) {
        if (output_portable[i] != output_dsp[i]) {
            printf("mismatch add case %ld byte %ld portable %d dsp %d (shifts %ld %ld %ld left %ld)\n", (long)case_index,
                   (long)i, output_portable[i], output_dsp[i], (long)p.input1_shift, (long)p.input2_shift,
                   (long)p.output_shift, (long)p.left_shift);
            return 1;
        }
    }
    return 0;
}

static int32_t bench_add(void)
{
    /* resnet8's first residual add: 32x32x16, no broadcast. */
    si4_add_params p;
    static int8_t second[16384];
    uint64_t start;
    uint64_t portable;
    uint64_t dsp;
    memset(&p, 0, sizeof p);
    p.dim_0 = 1;
    p.dim_1 = 32;
    p.dim_2 = 32;
    p.dim_3 = 16;
    p.input1_stride_3 = p.input2_stride_3 = 1;
    p.input1_stride_2 = p.input2_stride_2 = 16;
    p.input1_stride_1 = p.input2_stride_1 = 512;
    p.input1_stride_0 = p.input2_stride_0 = 16384;
    p.input1_offset = 128;
    p.input2_offset = 3;
    p.left_shift = 20;
    p.input1_multiplier = 1518500250;
    p.input1_shift = -1;
    p.input2_multiplier = 1073741824;
    p.input2_shift = 0;
    p.output_multiplier = 1431655765;
    p.output_shift = -19;
    p.output_offset = -128;
    p.activation_min = -128;
    p.activation_max = 127;
    fill_s8(input, 16384);
    fill_s8(second, 16384);
    start = platform_counter_read();
    si4_ref_add_s8(&p, input, second, output_portable);
    portable = platform_counter_read() - start;
    start = platform_counter_read();
    si4_add_s8(&p, input, second, output_dsp);
    dsp = platform_counter_read() - start;
    printf("add-bench resnet8_32x32x16 portable %lu dsp %lu %s\n", (unsigned long)portable, (unsigned long)dsp,
           platform_counter_unit());
    return memcmp(output_portable, output_dsp, 16384) != 0;
}

int main(void)
{
    int32_t mismatches = 0;
    int32_t done = 0;
    int32_t attempt = 0;
    int32_t fast = 0;
    platform_stack_paint();
    platform_init();
    while (done < DEPTHWISE_TEST_CASES && attempt < 20 * DEPTHWISE_TEST_CASES) {
        const int32_t outcome = run_case(attempt++, &fast);
        if (outcome >= 0) {
            ++done;
            mismatches += outcome;
        }
    }
    for (attempt = 0; attempt < 3 * DIRECTED_SHAPES; ++attempt) { /* each shape with three draws */
        const int32_t outcome = run_directed_case(attempt, &fast);
        if (outcome >= 0) {
            ++done;
            mismatches += outcome;
        }
    }
    mismatches += bench_shape("kws_25x5x64_s1", 25, 5, 64, 1);
    mismatches += bench_shape("vww_48x48x8_s1", 48, 48, 8, 1);
    mismatches += bench_shape("vww_48x48x16_s2", 48, 48, 16, 2);
    mismatches += bench_shape("vww_6x6x128_s1", 6, 6, 128, 1);
    printf("depthwise-test cases %ld mismatches %ld fast %ld\n", (long)done, (long)mismatches, (long)fast);
    {
        int32_t pool_mismatches = 0;
        int32_t pool_done = 0;
        attempt = 0;
        while (pool_done < DEPTHWISE_TEST_CASES / 2 && attempt < 20 * DEPTHWISE_TEST_CASES) {
            const int32_t outcome = run_avg_pool_case(attempt++);
            if (outcome >= 0) {
                ++pool_done;
                pool_mismatches += outcome;
            }
        }
        pool_mismatches += bench_avg_pool("kws_25x5x64", 25, 5, 64);
        pool_mismatches += bench_avg_pool("vww_3x3x256", 3, 3, 256);
        printf("avg-pool-test cases %ld mismatches %ld\n", (long)pool_done, (long)pool_mismatches);
        mismatches += pool_mismatches;
    }
    {
        int32_t add_mismatches = 0;
        int32_t add_done;
        for (add_done = 0; add_done < DEPTHWISE_TEST_CASES / 2; ++add_done) {
            add_mismatches += run_add_case(add_done);
        }
        add_mismatches += bench_add();
        printf("add-test cases %ld mismatches %ld tables %ld\n", (long)add_done, (long)add_mismatches,
               (long)add_table_cases);
        mismatches += add_mismatches;
    }
    printf("result %s\n", mismatches == 0 ? "PASS" : "FAIL");
    platform_exit(mismatches == 0 ? 0 : 1);
    return 0;
}
