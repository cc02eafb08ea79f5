/*
 * pixel_test.c - si4_depthwise_conv2d_pixel_s8, DSP and portable, against the
 * whole-layer portable depthwise kernel, position by position, byte for byte,
 * under QEMU (tests/test_dsp_pixel.py builds and runs it).
 *
 * Linked with the portable whole-layer kernel renamed
 * si4_ref_depthwise_conv2d_s8, the portable pixel kernel renamed
 * si4_ref_depthwise_conv2d_pixel_s8 and the DSP pixel kernel under its own
 * name. Seeded random shapes: 3x3 mostly, other kernels, strides, dilation,
 * depth multipliers (the DSP kernel's scalar path), channel counts that are
 * and are not multiples of four, padding on every side, zero points, the
 * requantization's extreme multipliers and shifts, no bias now and then.
 * Each pixel call writes into a buffer with guard bytes after the position.
 *
 *   mismatch pixel case <i> position <y>,<x> byte <j> whole <a> portable <b> dsp <c>
 *   pixel-bench kws 25x5x64 whole <i> pixels <j> instructions
 *   pixel-test cases <n> mismatches <m>
 *   result PASS|FAIL
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/include/si4_nn.h"
#include "kernels/include/si4_nn_stream.h"
#include "platform.h"

void si4_ref_depthwise_conv2d_s8(const si4_depthwise_conv2d_params *params, const int8_t *input,
                                 const int8_t *filter, const int32_t *bias, const int32_t *output_multiplier,
                                 const int32_t *output_shift, int8_t *output);
void si4_ref_depthwise_conv2d_pixel_s8(const si4_depthwise_conv2d_params *params, const int8_t *input,
                                       const int8_t *filter, const int32_t *bias, const int32_t *output_multiplier,
                                       const int32_t *output_shift, int32_t out_y, int32_t out_x, int8_t *output);

#define PIXEL_TEST_CASES 300
#define BUFFER_BYTES 8192
#define MAX_CHANNELS 96
#define GUARD_BYTES 8
#define TEST_RANDOM_SEED 0x2545F491u
#include "test_support.h"

static int8_t pixel_out[MAX_CHANNELS + GUARD_BYTES];

/* The requantization constants: typical, and now and then its extremes. */
static void fill_constants(int32_t channels)
{
    int32_t i;
    for (i = 0; i < channels; ++i) {
        multiplier[i] = (int32_t)(0x40000000u + (random_u32() & 0x3FFFFFFFu));
        shift[i] = -random_between(5, 12);
        bias[i] = random_between(-30000, 30000);
        switch (random_between(0, 11)) {
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
            shift[i] = random_between(0, 4);
            break;
        case 4:
            bias[i] = (int32_t)random_u32();
            break;
        default:
            break;
        }
    }
}

static int32_t extent(int32_t size, int32_t kernel, int32_t stride, int32_t dilation, int32_t before, int32_t after)
{
    return (size + before + after - dilation * (kernel - 1) - 1) / stride + 1;
}

/* One random case: 0 exact, 1 a mismatch (printed), -1 a draw that does not fit. */
static int32_t run_case(int32_t index)
{
    static const int32_t channel_choices[] = {64, 4, 1, 3, 8, 5, 16, 12, 7, 32, 2, 20};
    si4_depthwise_conv2d_params p;
    const int32_t *case_bias;
    int32_t y;
    int32_t x;
    memset(&p, 0, sizeof p);
    p.input_channels = channel_choices[index < 12 ? index : random_between(0, 11)];
    p.depth_multiplier = random_between(0, 6) == 0 ? random_between(2, 3) : 1;
    p.kernel_height = 3;
    p.kernel_width = 3;
    if (random_between(0, 4) == 0) {
        p.kernel_height = random_between(1, 5);
        p.kernel_width = random_between(1, 5);
    }
    p.stride_height = random_between(1, 2);
    p.stride_width = random_between(1, 2);
    p.dilation_height = random_between(0, 6) == 0 ? 2 : 1;
    p.dilation_width = random_between(0, 6) == 0 ? 2 : 1;
    p.input_height = random_between(1, 9);
    p.input_width = random_between(1, 9);
    p.pad_top = random_between(0, 2);
    p.pad_left = random_between(0, 2);
    p.output_height = extent(p.input_height, p.kernel_height, p.stride_height, p.dilation_height, p.pad_top,
                             random_between(0, 2));
    p.output_width = extent(p.input_width, p.kernel_width, p.stride_width, p.dilation_width, p.pad_left,
                            random_between(0, 2));
    p.output_channels = p.input_channels * p.depth_multiplier;
    if (p.output_height < 1 || p.output_width < 1 || p.output_channels > MAX_CHANNELS ||
        p.input_height * p.input_width * p.input_channels > BUFFER_BYTES ||
        p.output_height * p.output_width * p.output_channels > BUFFER_BYTES ||
        p.kernel_height * p.kernel_width * p.output_channels > BUFFER_BYTES) {
        return -1;
    }
    p.input_offset = random_between(0, 3) == 0 ? 0 : random_between(-127, 128);
    p.output_offset = random_between(-128, 127);
    p.activation_min = random_between(0, 1) ? -128 : p.output_offset;
    p.activation_max = random_between(0, 2) ? 127 : random_between(-128, 127);
    p.per_channel = random_between(0, 5) != 0;
    fill_s8(input, p.input_height * p.input_width * p.input_channels);
    fill_s8(filter, p.kernel_height * p.kernel_width * p.output_channels);
    fill_constants(p.output_channels);
    case_bias = random_between(0, 9) == 0 ? 0 : bias;
    si4_ref_depthwise_conv2d_s8(&p, input, filter, case_bias, multiplier, shift, output_portable);
    for (y = 0; y < p.output_height; ++y) {
        for (x = 0; x < p.output_width; ++x) {
            const int8_t *whole = output_portable + (y * p.output_width + x) * p.output_channels;
            int32_t j;
            memset(output_dsp, 0x55, sizeof pixel_out);
            memset(pixel_out, 0x55, sizeof pixel_out);
            si4_ref_depthwise_conv2d_pixel_s8(&p, input, filter, case_bias, multiplier, shift, y, x, output_dsp);
            si4_depthwise_conv2d_pixel_s8(&p, input, filter, case_bias, multiplier, shift, y, x, pixel_out);
            for (j = 0; j < p.output_channels + GUARD_BYTES; ++j) {
                const int8_t expected = j < p.output_channels ? whole[j] : (int8_t)0x55;
                if (output_dsp[j] != expected || pixel_out[j] != expected) {
                    printf("mismatch pixel case %ld position %ld,%ld byte %ld whole %d portable %d dsp %d\n",
                           (long)index, (long)y, (long)x, (long)j, expected, output_dsp[j], pixel_out[j]);
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* Instructions of kws's depthwise layer (25x5x64, 3x3, SAME) whole against
 * one pixel call per position. */
static void bench_kws(void)
{
    si4_depthwise_conv2d_params p;
    uint64_t start;
    uint64_t whole;
    uint64_t pixels;
    int32_t position;
    memset(&p, 0, sizeof p);
    p.input_height = p.output_height = 25;
    p.input_width = p.output_width = 5;
    p.input_channels = p.output_channels = 64;
    p.depth_multiplier = 1;
    p.kernel_height = p.kernel_width = 3;
    p.stride_height = p.stride_width = 1;
    p.dilation_height = p.dilation_width = 1;
    p.pad_top = p.pad_left = 1;
    p.input_offset = 128;
    p.output_offset = -128;
    p.activation_min = -128;
    p.activation_max = 127;
    p.per_channel = 1;
    fill_s8(input, 25 * 5 * 64);
    fill_s8(filter, 9 * 64);
    fill_constants(64);
    start = platform_counter_read();
    si4_ref_depthwise_conv2d_s8(&p, input, filter, bias, multiplier, shift, output_portable);
    whole = platform_counter_read() - start;
    start = platform_counter_read();
    for (position = 0; position < 125; ++position) {
        si4_depthwise_conv2d_pixel_s8(&p, input, filter, bias, multiplier, shift, position / 5, position % 5,
                                      output_dsp + position * 64);
    }
    pixels = platform_counter_read() - start;
    printf("pixel-bench kws 25x5x64 whole %lu pixels %lu %s\n", (unsigned long)whole, (unsigned long)pixels,
           platform_counter_unit());
}

int main(void)
{
    int32_t cases = 0;
    int32_t mismatches = 0;
    int32_t index;
    platform_init();
    for (index = 0; cases < PIXEL_TEST_CASES && index < 50 * PIXEL_TEST_CASES; ++index) {
        const int32_t result = run_case(index);
        if (result >= 0) {
            ++cases;
            mismatches += result;
        }
    }
    bench_kws();
    printf("pixel-test cases %ld mismatches %ld\n", (long)cases, (long)mismatches);
    printf("result %s\n", mismatches == 0 ? "PASS" : "FAIL");
    platform_exit(mismatches == 0 ? 0 : 1);
    return 0;
}
