/*
 * kernel_test.c - the DSP kernels against the portable kernels, byte for byte.
 *
 * Linked with both variants: the portable objects' si4_* symbols are renamed
 * si4_ref_* (board.mk, objcopy), the DSP ones keep their names. Seeded
 * random shapes, strides, dilations, paddings, zero points, multipliers and
 * shifts, the requantization's edge values, and the seed model's own layer
 * shapes. Prints one line per mismatch and a summary:
 *
 *   mismatch <op> case <i> byte <j> portable <a> dsp <b> (<shape>)
 *   kernel-test <op> cases <n> mismatches <m>
 *   result PASS|FAIL
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/include/si4_nn.h"
#include "platform.h"

void si4_ref_conv2d_s8(const si4_conv2d_params *params, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, const int32_t *output_multiplier, const int32_t *output_shift,
                       int8_t *output);
void si4_ref_conv2d_max_pool_s8(const si4_conv2d_params *conv, const si4_pool_params *pool, const int8_t *input,
                                const int8_t *filter, const int32_t *bias, const int32_t *output_multiplier,
                                const int32_t *output_shift, int8_t *output);
void si4_ref_fully_connected_s8(const si4_fully_connected_params *params, const int8_t *input,
                                const int8_t *filter, const int32_t *bias, const int32_t *output_multiplier,
                                const int32_t *output_shift, int8_t *output);
void si4_ref_max_pool_s8(const si4_pool_params *params, const int8_t *input, int8_t *output);

#ifndef KERNEL_TEST_CASES
#define KERNEL_TEST_CASES 300
#endif
/* The largest case: the seed conv2 filter, 64 x 3 x 3 x 32 bytes. */
#define BUFFER_BYTES 18432
#define MAX_CHANNELS 160

#define TEST_RANDOM_SEED 0x2545F491u
#include "test_support.h"

/* Multipliers in [2^30, 2^31) with shifts that bring a typical accumulator
 * of `terms` products near the int8 range, sometimes saturating, sometimes a
 * left shift. */
static void fill_requant(int32_t channels, int32_t terms)
{
    int32_t magnitude_bits = 14;
    int32_t i;
    while ((1 << ((magnitude_bits - 14) * 2)) < terms && magnitude_bits < 30) {
        ++magnitude_bits;
    }
    for (i = 0; i < channels; ++i) {
        multiplier[i] = (int32_t)(0x40000000u + (random_u32() & 0x3FFFFFFFu));
        shift[i] = -(magnitude_bits - 7) + random_between(-2, 2);
        if (random_between(0, 19) == 0) {
            shift[i] = random_between(0, 2);
        }
        bias[i] = random_between(-(1 << (magnitude_bits - 1)), 1 << (magnitude_bits - 1));
        /* Now and then the ends of the requantization's domain: multiplier
         * 0 and INT32_MIN (the saturating high multiply), the largest
         * right shift, left shifts that overflow the accumulator. */
        switch (random_between(0, 27)) {
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
            shift[i] = random_between(20, 31);
            break;
        case 4: /* every odd accumulator becomes INT32_MIN: the saturation */
            multiplier[i] = INT32_MIN;
            shift[i] = 31;
            break;
        default:
            break;
        }
    }
}

static void random_activation(int32_t *activation_min, int32_t *activation_max, int32_t output_offset)
{
    switch (random_between(0, 9) == 0 ? 3 : random_between(0, 2)) {
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
    default: /* any int8 bounds, even inverted: the kernels clamp min first, then max */
        *activation_min = random_between(-128, 127);
        *activation_max = random_between(-128, 127);
        break;
    }
}

static int32_t compare(const char *op, int32_t case_index, int32_t bytes, const char *shape)
{
    int32_t i;
    for (i = 0; i < bytes; ++i) {
        if (output_portable[i] != output_dsp[i]) {
            printf("mismatch %s case %ld byte %ld portable %d dsp %d (%s)\n", op, (long)case_index, (long)i,
                   output_portable[i], output_dsp[i], shape);
            return 1;
        }
    }
    return 0;
}

typedef void (*conv_kernel)(const si4_conv2d_params *, const int8_t *, const int8_t *, const int32_t *,
                            const int32_t *, const int32_t *, int8_t *);

/* The reference convolution against every DSP kernel of the convolution's
 * shape classes that could be handed this shape: the general one always,
 * the 1x1 one for 1x1 windows, the few-channel one for up to 4 input
 * channels, the one-channel 3x3 one for one input channel (a shape outside
 * a class checks that kernel's fallback). */
static int32_t compare_conv(const char *op, int32_t case_index, const si4_conv2d_params *conv,
                            const int32_t *conv_bias, const char *shape)
{
    static const struct {
        const char *name;
        conv_kernel kernel;
    } kernels[] = {
        {"si4_conv2d_s8", si4_conv2d_s8},
        {"si4_conv2d_1x1_s8", si4_conv2d_1x1_s8},
        {"si4_conv2d_few_channels_s8", si4_conv2d_few_channels_s8},
        {"si4_conv2d_1ch_3x3_s8", si4_conv2d_1ch_3x3_s8},
    };
    const int32_t bytes = conv->output_height * conv->output_width * conv->output_channels;
    int32_t failures = 0;
    size_t k;
    memset(output_portable, 0x55, (size_t)bytes);
    si4_ref_conv2d_s8(conv, input, filter, conv_bias, multiplier, shift, output_portable);
    for (k = 0; k < sizeof kernels / sizeof kernels[0]; ++k) {
        char text[200];
        if ((k == 1 && (conv->kernel_height != 1 || conv->kernel_width != 1)) || (k == 2 && conv->input_channels > 4) ||
            (k == 3 && conv->input_channels != 1)) {
            continue;
        }
        memset(output_dsp, 0x55, (size_t)bytes);
        kernels[k].kernel(conv, input, filter, conv_bias, multiplier, shift, output_dsp);
        snprintf(text, sizeof text, "%s: %s", kernels[k].name, shape);
        failures += compare(op, case_index, bytes, text);
    }
    return failures;
}

static int32_t conv_output_size(int32_t input_size, int32_t kernel, int32_t stride, int32_t dilation, int32_t pad)
{
    return (input_size + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

/* A random convolution that fits the buffers; 0 when the draw is unusable. */
static int32_t random_conv(si4_conv2d_params *conv, int32_t case_index)
{
    static const int32_t channel_choices[] = {1, 1, 2, 3, 4, 5, 8, 12, 16, 32};
    memset(conv, 0, sizeof *conv);
    conv->input_channels = channel_choices[random_between(0, 9)];
    conv->kernel_height = random_between(1, 5);
    conv->kernel_width = random_between(1, 5);
    if (case_index % 4 == 0) {
        conv->kernel_height = 3;
        conv->kernel_width = 3;
    }
    conv->stride_height = random_between(1, 2);
    conv->stride_width = random_between(1, 2);
    conv->dilation_height = random_between(0, 5) == 0 ? random_between(2, 3) : 1;
    conv->dilation_width = random_between(0, 5) == 0 ? random_between(2, 3) : 1;
    conv->input_height = random_between(conv->kernel_height, 14);
    conv->input_width = random_between(conv->kernel_width, 14);
    if (random_between(0, 1)) {
        conv->pad_top = (conv->dilation_height * (conv->kernel_height - 1)) / 2;
        conv->pad_left = (conv->dilation_width * (conv->kernel_width - 1)) / 2;
    }
    conv->output_height = conv_output_size(conv->input_height, conv->kernel_height, conv->stride_height,
                                           conv->dilation_height, conv->pad_top);
    conv->output_width = conv_output_size(conv->input_width, conv->kernel_width, conv->stride_width,
                                          conv->dilation_width, conv->pad_left);
    conv->output_channels = random_between(1, 9);
    conv->input_offset = random_between(0, 1) ? 0 : random_between(-127, 128);
    conv->output_offset = random_between(-128, 100);
    random_activation(&conv->activation_min, &conv->activation_max, conv->output_offset);
    conv->per_channel = random_between(0, 3) != 0;
    if (conv->output_height < 1 || conv->output_width < 1 ||
        conv->input_height * conv->input_width * conv->input_channels > BUFFER_BYTES ||
        conv->output_channels * conv->kernel_height * conv->kernel_width * conv->input_channels > BUFFER_BYTES ||
        conv->output_height * conv->output_width * conv->output_channels > BUFFER_BYTES) {
        return 0;
    }
    fill_s8(input, conv->input_height * conv->input_width * conv->input_channels);
    fill_s8(filter, conv->output_channels * conv->kernel_height * conv->kernel_width * conv->input_channels);
    fill_requant(conv->output_channels, conv->kernel_height * conv->kernel_width * conv->input_channels);
    return 1;
}

static void describe_conv(char *text, size_t size, const si4_conv2d_params *conv)
{
    snprintf(text, size, "in %ldx%ldx%ld k %ldx%ld s %ld,%ld d %ld,%ld pad %ld,%ld out %ldx%ldx%ld in_off %ld",
             (long)conv->input_height, (long)conv->input_width, (long)conv->input_channels,
             (long)conv->kernel_height, (long)conv->kernel_width, (long)conv->stride_height,
             (long)conv->stride_width, (long)conv->dilation_height, (long)conv->dilation_width,
             (long)conv->pad_top, (long)conv->pad_left, (long)conv->output_height, (long)conv->output_width,
             (long)conv->output_channels, (long)conv->input_offset);
}

static int32_t test_conv(int32_t case_index)
{
    si4_conv2d_params conv;
    char shape[160];
    if (!random_conv(&conv, case_index)) {
        return -1;
    }
    describe_conv(shape, sizeof shape, &conv);
    return compare_conv("conv2d", case_index, &conv, case_index % 7 == 0 ? 0 : bias, shape);
}

/* 1x1 (pointwise) convolutions, the shapes and constants the DSP 1x1 path
 * takes (si4_conv2d_s8.c: multiplier >= 0, shifts of -1 to -31, whole
 * words of input channels) and the ones it leaves to the other paths: input
 * channels 1 to 64 (not all multiples of four), output channels past one
 * 64-channel chunk, odd position counts, stride 2, multiplier 0 and
 * INT32_MAX, shifts -1 and -22, biases at the short form's bound, biases
 * near 2^30 with shifts -2 to -31 (the wide form), inputs and
 * weights at their extremes, per tensor and per channel, every clamp. */
static int32_t test_pointwise(int32_t case_index)
{
    static const int32_t input_choices[] = {1, 3, 4, 5, 7, 8, 12, 16, 17, 24, 32, 64};
    static const int32_t output_choices[] = {1, 2, 3, 4, 5, 7, 8, 12, 17, 33, 64, 65, 70};
    si4_conv2d_params conv;
    const int32_t fast = case_index % 4 != 3; /* constants the 1x1 path takes */
    int32_t bytes;
    int32_t channel;
    char shape[160];
    memset(&conv, 0, sizeof conv);
    conv.input_channels = input_choices[random_between(0, 11)];
    conv.output_channels = output_choices[random_between(0, 12)];
    conv.kernel_height = 1;
    conv.kernel_width = 1;
    conv.stride_height = random_between(1, 2);
    conv.stride_width = random_between(1, 2);
    conv.dilation_height = 1;
    conv.dilation_width = 1;
    conv.input_height = random_between(1, 9);
    conv.input_width = random_between(1, 9);
    conv.output_height = (conv.input_height - 1) / conv.stride_height + 1;
    conv.output_width = (conv.input_width - 1) / conv.stride_width + 1;
    switch (random_between(0, 3)) {
    case 0:
        conv.input_offset = 0;
        break;
    case 1:
        conv.input_offset = 128;
        break;
    case 2:
        conv.input_offset = -127;
        break;
    default:
        conv.input_offset = random_between(-127, 128);
        break;
    }
    conv.output_offset = random_between(0, 3) == 0 ? (random_between(0, 1) ? -128 : 127) : random_between(-128, 127);
    random_activation(&conv.activation_min, &conv.activation_max, conv.output_offset);
    conv.per_channel = random_between(0, 3) != 0;
    bytes = conv.output_height * conv.output_width * conv.output_channels;
    if (conv.input_height * conv.input_width * conv.input_channels > BUFFER_BYTES ||
        conv.output_channels * conv.input_channels > BUFFER_BYTES || bytes > BUFFER_BYTES) {
        return -1;
    }
    fill_s8(input, conv.input_height * conv.input_width * conv.input_channels);
    fill_s8(filter, conv.output_channels * conv.input_channels);
    if (random_between(0, 4) == 0) { /* the largest accumulators: every product at its extreme */
        const int8_t x = conv.input_offset > 0 ? 127 : -128;
        memset(input, x, (size_t)(conv.input_height * conv.input_width * conv.input_channels));
        memset(filter, random_between(0, 1) ? 127 : -128, (size_t)(conv.output_channels * conv.input_channels));
    }
    fill_requant(conv.output_channels, conv.input_channels);
    for (channel = 0; fast && channel < conv.output_channels; ++channel) {
        const int32_t bound = (1 << 30) - 1 - conv.input_channels * 128 * 256;
        multiplier[channel] = multiplier[channel] < 0 ? 0x40000000 : multiplier[channel];
        shift[channel] = shift[channel] > -1 ? -1 : shift[channel] < -22 ? -22 : shift[channel];
        switch (random_between(0, 9)) {
        case 0:
            multiplier[channel] = 0;
            break;
        case 1:
            multiplier[channel] = INT32_MAX;
            break;
        case 2:
            shift[channel] = -1;
            break;
        case 3:
            shift[channel] = -22;
            break;
        case 4:
            bias[channel] = random_between(0, 1) ? bound : -bound;
            break;
        case 5: /* the wide form: vww's biases near 2^30 with shifts of -25 to -31 */
        case 6:
            shift[channel] = random_between(0, 2) == 0 ? -random_between(2, 22) : -random_between(23, 31);
            bias[channel] = random_between(1 << 29, (1 << 30) + (1 << 29)) * (random_between(0, 1) ? 1 : -1);
            break;
        default:
            break;
        }
    }
    describe_conv(shape, sizeof shape, &conv);
    return compare_conv("pointwise", case_index, &conv, case_index % 7 == 0 ? 0 : bias, shape);
}

/* The 1x1 path's rounding ties, which random inputs almost never reach
 * with large shifts: zero inputs, so the accumulator is the bias, and
 * multiplier 2^30, so the high product is (bias + 1) / 2; biases put it
 * exactly half way between two outputs (below and above zero) and one step
 * either side, for right shifts 1 to 31, short and wide forms in one layer
 * (and past one 64-channel chunk). */
static int32_t test_pointwise_ties(void)
{
    static const int32_t right_shifts[] = {1, 2, 3, 8, 21, 22, 23, 24, 26, 29, 30, 31};
    static const int32_t output_offsets[] = {0, -20, 7};
    si4_conv2d_params conv;
    int32_t failures = 0;
    int32_t o;
    int32_t channels = 0;
    int32_t s;
    for (s = 0; s < (int32_t)(sizeof right_shifts / sizeof right_shifts[0]); ++s) {
        const int32_t r = right_shifts[s];
        int32_t k;
        for (k = 0; k < 2; ++k) {
            int32_t sign;
            for (sign = -1; sign <= 1; sign += 2) {
                int32_t delta;
                for (delta = -2; delta <= 2; delta += 2) {
                    /* (bias + 1) / 2 = sign * (6k + 1) * 2^(r-1), a tie; past 2^30 the largest bias */
                    const int64_t tie = (int64_t)sign * (6 * k + 1) * ((int64_t)1 << r) - 1;
                    const int64_t limit = (int64_t)1 << 30;
                    bias[channels] = (int32_t)((tie > limit ? limit : tie < -limit ? -limit : tie) + delta);
                    multiplier[channels] = 0x40000000;
                    shift[channels] = -r;
                    ++channels;
                }
            }
        }
    }
    memset(&conv, 0, sizeof conv);
    conv.input_height = 1;
    conv.input_width = 5;
    conv.input_channels = 4;
    conv.output_height = 1;
    conv.output_width = 5;
    conv.output_channels = channels;
    conv.kernel_height = 1;
    conv.kernel_width = 1;
    conv.stride_height = 1;
    conv.stride_width = 1;
    conv.dilation_height = 1;
    conv.dilation_width = 1;
    conv.activation_min = -128;
    conv.activation_max = 127;
    conv.per_channel = 1;
    memset(input, 0, 20);
    fill_s8(filter, channels * 4);
    for (o = 0; o < (int32_t)(sizeof output_offsets / sizeof output_offsets[0]); ++o) {
        char shape[160];
        conv.output_offset = output_offsets[o];
        describe_conv(shape, sizeof shape, &conv);
        failures += compare_conv("pointwise_ties", o, &conv, bias, shape);
    }
    printf("kernel-test pointwise_ties cases %ld mismatches %ld\n",
           (long)(sizeof output_offsets / sizeof output_offsets[0]), (long)failures);
    return failures;
}

static int32_t test_conv_max_pool(int32_t case_index)
{
    si4_conv2d_params conv;
    si4_pool_params pool;
    char shape[160];
    int32_t bytes;
    if (!random_conv(&conv, case_index)) {
        return -1;
    }
    memset(&pool, 0, sizeof pool);
    pool.input_height = conv.output_height;
    pool.input_width = conv.output_width;
    pool.channels = conv.output_channels;
    pool.filter_height = random_between(1, 3);
    pool.filter_width = random_between(1, 3);
    if (case_index % 2 == 0) {
        pool.filter_height = 2;
        pool.filter_width = 2;
    }
    pool.stride_height = random_between(1, 2);
    pool.stride_width = random_between(1, 2);
    pool.pad_top = random_between(0, 3) == 0 ? 1 : 0;
    pool.pad_left = random_between(0, 3) == 0 ? 1 : 0;
    pool.output_height = (pool.input_height + 2 * pool.pad_top - pool.filter_height) / pool.stride_height + 1;
    pool.output_width = (pool.input_width + 2 * pool.pad_left - pool.filter_width) / pool.stride_width + 1;
    random_activation(&pool.activation_min, &pool.activation_max, conv.output_offset);
    if (pool.output_height < 1 || pool.output_width < 1) {
        return -1;
    }
    bytes = pool.output_height * pool.output_width * pool.channels;
    memset(output_portable, 0x55, (size_t)bytes);
    memset(output_dsp, 0x55, (size_t)bytes);
    si4_ref_conv2d_max_pool_s8(&conv, &pool, input, filter, bias, multiplier, shift, output_portable);
    si4_conv2d_max_pool_s8(&conv, &pool, input, filter, bias, multiplier, shift, output_dsp);
    describe_conv(shape, sizeof shape, &conv);
    return compare("conv2d_max_pool", case_index, bytes, shape);
}

static int32_t test_fully_connected(int32_t case_index)
{
    si4_fully_connected_params fc;
    char shape[96];
    memset(&fc, 0, sizeof fc);
    fc.batches = random_between(0, 3) == 0 ? random_between(2, 3) : 1; /* rows of the input, one after the other */
    fc.input_size = random_between(1, 400);
    if (random_between(0, 1)) { /* whole words: the per-tensor class's inputs */
        fc.input_size = 4 * random_between(1, 70);
    }
    fc.output_size = random_between(1, 20);
    fc.input_offset = random_between(0, 1) ? 0 : random_between(-127, 128);
    fc.filter_offset = random_between(0, 9) == 0 ? random_between(-10, 10) : 0;
    fc.output_offset = random_between(-128, 100);
    random_activation(&fc.activation_min, &fc.activation_max, fc.output_offset);
    fc.per_channel = random_between(0, 1);
    fill_s8(input, fc.batches * fc.input_size);
    fill_s8(filter, fc.input_size * fc.output_size);
    fill_requant(fc.output_size, fc.input_size);
    memset(output_portable, 0x55, (size_t)(fc.batches * fc.output_size));
    memset(output_dsp, 0x55, (size_t)(fc.batches * fc.output_size));
    si4_ref_fully_connected_s8(&fc, input, filter, case_index % 7 == 0 ? 0 : bias, multiplier, shift,
                               output_portable);
    si4_fully_connected_s8(&fc, input, filter, case_index % 7 == 0 ? 0 : bias, multiplier, shift, output_dsp);
    snprintf(shape, sizeof shape, "in %ld out %ld in_off %ld filter_off %ld per_channel %ld batches %ld", (long)fc.input_size,
             (long)fc.output_size, (long)fc.input_offset, (long)fc.filter_offset, (long)fc.per_channel, (long)fc.batches);
    if (compare("fully_connected", case_index, fc.batches * fc.output_size, shape)) {
        return 1;
    }
    /* The per-tensor class's kernel, handed any layer (outside its class: its plain loop). */
    memset(output_dsp, 0x55, (size_t)(fc.batches * fc.output_size));
    si4_fully_connected_per_tensor_s8(&fc, input, filter, case_index % 7 == 0 ? 0 : bias, multiplier, shift,
                                      output_dsp);
    return compare("fully_connected_per_tensor", case_index, fc.batches * fc.output_size, shape);
}

static int32_t test_max_pool(int32_t case_index)
{
    si4_pool_params pool;
    char shape[96];
    int32_t bytes;
    memset(&pool, 0, sizeof pool);
    pool.channels = random_between(1, 13);
    pool.filter_height = random_between(1, 3);
    pool.filter_width = random_between(1, 3);
    pool.stride_height = random_between(1, 3);
    pool.stride_width = random_between(1, 3);
    pool.input_height = random_between(pool.filter_height, 12);
    pool.input_width = random_between(pool.filter_width, 12);
    pool.pad_top = random_between(0, 2) == 0 ? 1 : 0;
    pool.pad_left = random_between(0, 2) == 0 ? 1 : 0;
    pool.output_height = (pool.input_height + 2 * pool.pad_top - pool.filter_height) / pool.stride_height + 1;
    pool.output_width = (pool.input_width + 2 * pool.pad_left - pool.filter_width) / pool.stride_width + 1;
    random_activation(&pool.activation_min, &pool.activation_max, random_between(-128, 100));
    fill_s8(input, pool.input_height * pool.input_width * pool.channels);
    bytes = pool.output_height * pool.output_width * pool.channels;
    memset(output_portable, 0x55, (size_t)bytes);
    memset(output_dsp, 0x55, (size_t)bytes);
    si4_ref_max_pool_s8(&pool, input, output_portable);
    si4_max_pool_s8(&pool, input, output_dsp);
    snprintf(shape, sizeof shape, "in %ldx%ldx%ld f %ldx%ld s %ld,%ld pad %ld,%ld", (long)pool.input_height,
             (long)pool.input_width, (long)pool.channels, (long)pool.filter_height, (long)pool.filter_width,
             (long)pool.stride_height, (long)pool.stride_width, (long)pool.pad_top, (long)pool.pad_left);
    return compare("max_pool", case_index, bytes, shape);
}

/* The requantization's edges, every combination: multiplier 0, 2^30,
 * INT32_MAX and INT32_MIN (whose high multiply saturates when the shifted
 * accumulator is INT32_MIN too: shift 31 and an odd accumulator), shifts
 * from -31 to 31, output zero points 0 (where the saturated value differs
 * after the zero point is added), -128 and 100; through each requantizing
 * path: fully connected, the one-channel 3x3 convolution fused with a 2x2
 * pool and alone, and a 4-channel convolution (column block) fused and
 * alone. */
static int32_t run_requant_edge(int32_t op, int32_t output_offset, int32_t case_index)
{
    static const char *const names[] = {"fc", "conv1ch_pool", "conv1ch", "conv4ch_pool", "conv4ch"};
    si4_conv2d_params conv;
    si4_pool_params pool;
    si4_fully_connected_params fc;
    char shape[96];
    int32_t bytes = 0; /* stays 0 for the convolutions, which compare_conv checks */
    memset(&conv, 0, sizeof conv);
    memset(&pool, 0, sizeof pool);
    conv.input_height = 4;
    conv.input_width = 4;
    conv.input_channels = (op == 3 || op == 4) ? 4 : 1;
    conv.output_height = 2;
    conv.output_width = 2;
    conv.output_channels = 3;
    conv.kernel_height = 3;
    conv.kernel_width = 3;
    conv.stride_height = 1;
    conv.stride_width = 1;
    conv.dilation_height = 1;
    conv.dilation_width = 1;
    conv.output_offset = output_offset;
    conv.activation_min = -128;
    conv.activation_max = 127;
    pool.input_height = 2;
    pool.input_width = 2;
    pool.channels = 3;
    pool.output_height = 1;
    pool.output_width = 1;
    pool.filter_height = 2;
    pool.filter_width = 2;
    pool.stride_height = 2;
    pool.stride_width = 2;
    pool.activation_min = -128;
    pool.activation_max = 127;
    memset(output_portable, 0x55, 16);
    memset(output_dsp, 0x55, 16);
    memset(&fc, 0, sizeof fc);
    if (op == 0) {
        fc.batches = 1;
        fc.input_size = 4;
        fc.output_size = 8;
        fc.output_offset = output_offset;
        fc.activation_min = -128;
        fc.activation_max = 127;
        si4_ref_fully_connected_s8(&fc, input, filter, 0, multiplier, shift, output_portable);
        si4_fully_connected_s8(&fc, input, filter, 0, multiplier, shift, output_dsp);
        bytes = 8;
    } else if (op == 1 || op == 3) {
        si4_ref_conv2d_max_pool_s8(&conv, &pool, input, filter, 0, multiplier, shift, output_portable);
        si4_conv2d_max_pool_s8(&conv, &pool, input, filter, 0, multiplier, shift, output_dsp);
        bytes = 3;
    }
    snprintf(shape, sizeof shape, "%s multiplier %ld shift %ld output_offset %ld", names[op], (long)multiplier[0],
             (long)shift[0], (long)output_offset);
    if (bytes == 0) {
        return compare_conv("requant_edges", case_index, &conv, 0, shape);
    }
    if (op == 0) { /* the per-tensor class's kernel too (its fused requantization where it applies) */
        if (compare("requant_edges", case_index, bytes, shape)) {
            return 1;
        }
        memset(output_dsp, 0x55, 16);
        si4_fully_connected_per_tensor_s8(&fc, input, filter, 0, multiplier, shift, output_dsp);
    }
    return compare("requant_edges", case_index, bytes, shape);
}

static int32_t test_requant_edges(void)
{
    static const int32_t multipliers[] = {0, 0x40000000, INT32_MAX, INT32_MIN, 0x5A5A5A5A};
    static const int32_t shifts[] = {-31, -20, -7, -2, -1, 0, 1, 7, 30, 31};
    static const int32_t offsets[] = {0, -128, 100};
    int32_t failures = 0;
    int32_t cases = 0;
    int32_t m;
    int32_t s;
    int32_t o;
    int32_t op;
    int32_t data;
    for (data = 0; data < 2; ++data) {
        int32_t i;
        fill_s8(input, 4 * 4 * 4);
        fill_s8(filter, 3 * 3 * 3 * 4);
        if (data == 1) {
            /* Small values: results stay in the int8 range, and with small
             * right shifts many of them are exact ties (rounded away from
             * zero, also below zero). */
            for (i = 0; i < 4 * 4 * 4; ++i) {
                input[i] = (int8_t)(input[i] % 4);
            }
            for (i = 0; i < 3 * 3 * 3 * 4; ++i) {
                filter[i] = (int8_t)(filter[i] % 4);
            }
        }
        for (m = 0; m < (int32_t)(sizeof multipliers / sizeof multipliers[0]); ++m) {
            for (s = 0; s < (int32_t)(sizeof shifts / sizeof shifts[0]); ++s) {
                for (o = 0; o < (int32_t)(sizeof offsets / sizeof offsets[0]); ++o) {
                    multiplier[0] = multipliers[m];
                    shift[0] = shifts[s];
                    for (op = 0; op < 5; ++op) {
                        failures += run_requant_edge(op, offsets[o], cases);
                        ++cases;
                    }
                }
            }
        }
    }
    printf("kernel-test requant_edges cases %ld mismatches %ld\n", (long)cases, (long)failures);
    return failures;
}

/* The seed model's layers (MNIST CNN): the shapes the benchmark runs. */
static int32_t test_seed_shapes(void)
{
    static const si4_conv2d_params conv1 = {28, 28, 1, 26, 26, 32, 3, 3, 1, 1, 1, 1, 0, 0, 128, -128, -128, 127, 1};
    static const si4_pool_params pool1 = {26, 26, 32, 13, 13, 2, 2, 2, 2, 0, 0, -128, 127};
    static const si4_conv2d_params conv2 = {13, 13, 32, 11, 11, 64, 3, 3, 1, 1, 1, 1, 0, 0, 0, -128, -128, 127, 1};
    static const si4_pool_params pool2 = {11, 11, 64, 5, 5, 2, 2, 2, 2, 0, 0, -128, 127};
    static const si4_fully_connected_params fc1 = {1600, 128, 128, 0, -128, -128, 127, 0, 1};
    int32_t failures = 0;
    fill_s8(input, 28 * 28);
    fill_s8(filter, 32 * 9);
    fill_requant(32, 9);
    si4_ref_conv2d_max_pool_s8(&conv1, &pool1, input, filter, bias, multiplier, shift, output_portable);
    si4_conv2d_max_pool_s8(&conv1, &pool1, input, filter, bias, multiplier, shift, output_dsp);
    failures += compare("seed_conv1_pool", 0, 13 * 13 * 32, "seed conv1");
    fill_s8(input, 13 * 13 * 32);
    fill_s8(filter, 64 * 9 * 32);
    fill_requant(64, 288);
    si4_ref_conv2d_max_pool_s8(&conv2, &pool2, input, filter, bias, multiplier, shift, output_portable);
    si4_conv2d_max_pool_s8(&conv2, &pool2, input, filter, bias, multiplier, shift, output_dsp);
    failures += compare("seed_conv2_pool", 0, 5 * 5 * 64, "seed conv2");
    fill_s8(input, 1600);
    fill_s8(filter, 1600 * 4); /* rows beyond the buffer repeat: only the arithmetic matters */
    fill_requant(128, 1600);
    {
        si4_fully_connected_params small = fc1;
        small.output_size = 4;
        si4_ref_fully_connected_s8(&small, input, filter, bias, multiplier, shift, output_portable);
        si4_fully_connected_s8(&small, input, filter, bias, multiplier, shift, output_dsp);
        failures += compare("seed_fc1", 0, 4, "seed fc1 (4 rows)");
    }
    printf("kernel-test seed_shapes cases 3 mismatches %ld\n", (long)failures);
    return failures;
}

/* The shape classes the MLPerf Tiny models run through the DSP conv and
 * fully connected kernels (channel counts cut to fit the buffers): a window
 * larger than the column block (3x3x64, chunked by kernel rows), 3-channel
 * first layers (rows that are not whole words), stride 2 with padding on
 * every side, KWS's 10x4 one-channel window, pointwise 1x1 layers with odd
 * channel counts and odd widths; fully connected layers with 1 to 7 rows
 * and ragged inputs. Each shape runs with and without bias and with a zero
 * and a non-zero input offset. */
static int32_t test_model_shapes(void)
{
    static const si4_conv2d_params convs[] = {
        {8, 8, 64, 8, 8, 18, 3, 3, 1, 1, 1, 1, 1, 1, 0, -5, -128, 127, 1},     /* resnet8 conv2d_7 */
        {7, 5, 64, 4, 3, 11, 3, 3, 2, 2, 1, 1, 1, 1, 3, 0, -128, 127, 1},      /* chunked, stride 2 */
        {6, 6, 48, 6, 6, 7, 5, 5, 1, 1, 1, 1, 2, 2, 0, 3, -128, 127, 1},       /* 5x5x48: 240 taps a row */
        {16, 16, 3, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 128, -128, -128, 127, 1}, /* resnet8 conv2d_0 */
        {15, 17, 3, 8, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1, -1, -128, -128, 127, 1},  /* vww conv2d_0, odd sizes */
        {49, 10, 1, 25, 5, 16, 10, 4, 2, 2, 1, 1, 4, 1, 83, -128, -128, 127, 1}, /* kws conv2d_0 */
        {9, 7, 13, 9, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 128, 5, -128, 127, 1},     /* pointwise, odd */
        {5, 5, 64, 5, 5, 64, 1, 1, 1, 1, 1, 1, 0, 0, 128, -128, -128, 127, 1}, /* kws pointwise */
        {6, 6, 128, 6, 6, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, -128, -128, 127, 0},   /* vww pointwise, per tensor */
        {7, 7, 5, 7, 7, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, -128, 127, 1},        /* pointwise, 5 taps */
    };
    static const si4_fully_connected_params fcs[] = {
        {640, 7, 0, 0, 12, -128, 127, 1, 1},    /* ad01's first layer, 4 + 2 + 1 rows */
        {128, 5, 128, 0, -128, -128, 127, 0, 1}, /* per tensor */
        {13, 6, -3, 0, 0, -128, 127, 1, 1},     /* ragged input */
        {3, 1, 1, 0, -128, -128, 127, 1, 1},    /* shorter than a word */
        /* Per tensor, whole words: the DSP kernel's fused dot and requantization loop. */
        {128, 8, 128, 0, -128, -128, 127, 0, 1}, /* ad01's 128 -> 8 */
        {8, 13, 128, 0, -128, -128, 127, 0, 1},  /* ad01's 8 -> 128, 3 rows left over */
        {640, 9, 0, 0, -20, -20, 100, 0, 1},     /* a clamp inside int8 */
    };
    int32_t failures = 0;
    int32_t cases = 0;
    int32_t i;
    int32_t variant;
    for (i = 0; i < (int32_t)(sizeof convs / sizeof convs[0]); ++i) {
        for (variant = 0; variant < 4; ++variant) {
            si4_conv2d_params conv = convs[i];
            const int32_t taps = conv.kernel_height * conv.kernel_width * conv.input_channels;
            char shape[160];
            if (variant >= 2) {
                conv.input_offset = conv.input_offset == 0 ? 128 : 0;
            }
            fill_s8(input, conv.input_height * conv.input_width * conv.input_channels);
            fill_s8(filter, conv.output_channels * taps);
            fill_requant(conv.output_channels, taps);
            describe_conv(shape, sizeof shape, &conv);
            failures += compare_conv("model_shapes conv2d", i * 4 + variant, &conv, variant % 2 ? 0 : bias, shape);
            ++cases;
        }
    }
    for (i = 0; i < (int32_t)(sizeof fcs / sizeof fcs[0]); ++i) {
        for (variant = 0; variant < 4; ++variant) {
            si4_fully_connected_params fc = fcs[i];
            char shape[64];
            if (variant >= 2) {
                fc.input_offset = fc.input_offset == 0 ? -128 : 0;
            }
            fill_s8(input, fc.input_size);
            fill_s8(filter, fc.input_size * fc.output_size);
            fill_requant(fc.output_size, fc.input_size);
            if (variant == 2) {
                /* A bias beyond the fused loop's bound (|acc + bias| < 2^29) in
                 * the second group of rows (|acc| < 2^25 here): that group
                 * and the rest go the general way. */
                bias[fc.output_size > 5 ? 5 : 0] = ((int32_t)1 << 29) + ((int32_t)1 << 28);
                multiplier[0] = 0x50000000; /* a per-tensor scaling the fused loop takes */
                shift[0] = -10;
            }
            memset(output_portable, 0x55, (size_t)fc.output_size);
            memset(output_dsp, 0x55, (size_t)fc.output_size);
            si4_ref_fully_connected_s8(&fc, input, filter, variant % 2 ? 0 : bias, multiplier, shift, output_portable);
            si4_fully_connected_s8(&fc, input, filter, variant % 2 ? 0 : bias, multiplier, shift, output_dsp);
            snprintf(shape, sizeof shape, "fc %ld -> %ld in_off %ld", (long)fc.input_size, (long)fc.output_size,
                     (long)fc.input_offset);
            failures += compare("model_shapes fully_connected", i * 4 + variant, fc.output_size, shape);
            ++cases;
        }
    }
    printf("kernel-test model_shapes cases %ld mismatches %ld\n", (long)cases, (long)failures);
    return failures;
}

/* A first-layer convolution of the few-channel class: SAME (ceil(in /
 * stride), the padding split as TFLite does, odd totals one more at the
 * bottom/right) or VALID. */
typedef struct {
    int32_t height, width, channels, kernel_height, kernel_width, stride, same, output_channels;
} few_channel_shape;

static void few_channel_conv_params(const few_channel_shape *shape, si4_conv2d_params *conv)
{
    memset(conv, 0, sizeof *conv);
    conv->input_height = shape->height;
    conv->input_width = shape->width;
    conv->input_channels = shape->channels;
    conv->kernel_height = shape->kernel_height;
    conv->kernel_width = shape->kernel_width;
    conv->stride_height = shape->stride;
    conv->stride_width = shape->stride;
    conv->dilation_height = 1;
    conv->dilation_width = 1;
    conv->output_channels = shape->output_channels;
    conv->per_channel = 1;
    if (shape->same) {
        const int32_t pad_h = (shape->height + shape->stride - 1) / shape->stride * shape->stride - shape->stride +
                              shape->kernel_height - shape->height;
        const int32_t pad_w = (shape->width + shape->stride - 1) / shape->stride * shape->stride - shape->stride +
                              shape->kernel_width - shape->width;
        conv->output_height = (shape->height + shape->stride - 1) / shape->stride;
        conv->output_width = (shape->width + shape->stride - 1) / shape->stride;
        conv->pad_top = pad_h > 0 ? pad_h / 2 : 0;
        conv->pad_left = pad_w > 0 ? pad_w / 2 : 0;
    } else {
        conv->output_height = (shape->height - shape->kernel_height) / shape->stride + 1;
        conv->output_width = (shape->width - shape->kernel_width) / shape->stride + 1;
    }
}

/* Issue 11's first layers (1 to 4 input channels, 3x3, 5x5, 10x4 and
 * other windows up to 64 taps, stride 1 and 2, SAME and VALID, odd widths,
 * output channels that are not multiples of 4 and more than one filter
 * block), each in six variants: the int8 clamp (the fast requantization)
 * or a relu6-like one, an output offset of -128 or 17, with and without
 * bias, input offsets 128, 0 and -127; then the requantization's ends in
 * the channels: multiplier 0, shift -2 (the fast path's last) and -1, -31,
 * a left shift, a bias so large the fast path must step aside. */
static int32_t test_few_channel_shapes(void)
{
    static const few_channel_shape shapes[] = {
        {15, 17, 3, 3, 3, 2, 1, 8},   /* vww conv2d_0 class, odd sizes, SAME */
        {16, 13, 3, 3, 3, 1, 1, 16},  /* resnet8 conv2d_0 class */
        {13, 11, 3, 3, 3, 1, 0, 33},  /* VALID, two filter blocks */
        {49, 10, 1, 10, 4, 2, 1, 70}, /* kws conv2d_0 class, three filter blocks */
        {12, 9, 1, 5, 5, 1, 1, 7},
        {11, 7, 1, 5, 5, 2, 0, 5},
        {9, 9, 1, 8, 8, 1, 1, 3},     /* 64 taps, the largest window */
        {10, 9, 2, 3, 3, 1, 1, 6},
        {11, 12, 2, 5, 5, 2, 1, 9},
        {9, 7, 1, 10, 4, 2, 1, 4},    /* kernel taller than the input */
        {12, 11, 4, 3, 3, 2, 1, 13},
        {9, 10, 4, 3, 3, 1, 0, 1},
        {8, 7, 4, 2, 2, 2, 0, 30},
        {7, 9, 3, 1, 3, 1, 1, 11},    /* 9 taps, rows of 3 leftover bytes */
        {6, 5, 3, 2, 5, 1, 1, 2},
    };
    static const int32_t input_offsets[] = {128, 0, -127};
    int32_t failures = 0;
    int32_t cases = 0;
    int32_t i;
    int32_t variant;
    for (i = 0; i < (int32_t)(sizeof shapes / sizeof shapes[0]); ++i) {
        for (variant = 0; variant < 6; ++variant) {
            si4_conv2d_params conv;
            int32_t taps;
            char text[160];
            few_channel_conv_params(&shapes[i], &conv);
            taps = conv.kernel_height * conv.kernel_width * conv.input_channels;
            conv.input_offset = input_offsets[variant % 3];
            conv.output_offset = variant == 1 ? 17 : -128;
            conv.activation_min = variant == 4 ? conv.output_offset : -128;
            conv.activation_max = variant == 4 ? conv.output_offset + 90 : 127;
            fill_s8(input, conv.input_height * conv.input_width * conv.input_channels);
            fill_s8(filter, conv.output_channels * taps);
            fill_requant(conv.output_channels, taps);
            if (variant == 5) {
                static const int32_t end_shifts[] = {-2, -1, -31, 1, -30};
                int32_t c;
                for (c = 0; c < conv.output_channels; ++c) {
                    shift[c] = end_shifts[c % 5];
                }
                multiplier[0] = 0;
                bias[conv.output_channels - 1] = INT32_MAX / 4;
            } else if (variant == 3) {
                multiplier[conv.output_channels / 2] = 0;
                shift[0] = -2;
            }
            describe_conv(text, sizeof text, &conv);
            failures += compare_conv("few_channel conv2d", i * 6 + variant, &conv, variant == 2 ? 0 : bias, text);
            ++cases;
        }
    }
    printf("kernel-test few_channel cases %ld mismatches %ld\n", (long)cases, (long)failures);
    return failures;
}

typedef int32_t (*case_fn)(int32_t case_index);

static int32_t run_cases(const char *op, case_fn run)
{
    int32_t mismatches = 0;
    int32_t done = 0;
    int32_t attempt = 0;
    while (done < KERNEL_TEST_CASES && attempt < 20 * KERNEL_TEST_CASES) {
        const int32_t outcome = run(attempt++);
        if (outcome >= 0) {
            ++done;
            mismatches += outcome;
        }
    }
    printf("kernel-test %s cases %ld mismatches %ld\n", op, (long)done, (long)mismatches);
    return mismatches;
}

int main(void)
{
    int32_t mismatches = 0;
    platform_stack_paint();
    platform_init();
    mismatches += test_seed_shapes();
    mismatches += test_requant_edges();
    mismatches += test_model_shapes();
    mismatches += test_few_channel_shapes();
    mismatches += run_cases("conv2d", test_conv);
    mismatches += run_cases("pointwise", test_pointwise);
    mismatches += test_pointwise_ties();
    mismatches += run_cases("conv2d_max_pool", test_conv_max_pool);
    mismatches += run_cases("fully_connected", test_fully_connected);
    mismatches += run_cases("max_pool", test_max_pool);
    printf("result %s\n", mismatches == 0 ? "PASS" : "FAIL");
    platform_exit(mismatches == 0 ? 0 : 1);
    return 0;
}
