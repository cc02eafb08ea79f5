/*
 * si4_dsp_util.h - building blocks of the kernels for Cortex-M cores with the
 * DSP extension (Cortex-M4, M7, M33, M55 ...; __ARM_FEATURE_DSP).
 *
 * The trick all of them use: SXTB16 sign-extends bytes 0 and 2 of a word to
 * two 16-bit lanes, SXTB16 of the word rotated by 8 does bytes 1 and 3, and
 * SMLAD multiplies two lane pairs and adds both products to an accumulator.
 * Applying the same split to the input word and the filter word pairs
 * element k with element k, so four int8 MACs cost two SMLADs plus the
 * extensions, and no weight reordering is needed. SXTAB16 adds the input
 * offset to both lanes in the same instruction, so a non-zero input zero
 * point is free (int8 + offset in [-255, 255] fits a 16-bit lane).
 *
 * Only included by kernels/dsp/ files, and only when __ARM_FEATURE_DSP is set.
 */
#ifndef SI4_DSP_UTIL_H
#define SI4_DSP_UTIL_H

#include <arm_acle.h>
#include <stdint.h>
#include <string.h>

#include "si4_kernel_util.h"
#include "si4_nn.h"

/* Four int8 values as one word. memcpy: the address may be unaligned (LDR
 * handles that on v7-M), and it avoids aliasing trouble; GCC emits one LDR. */
static inline uint32_t si4_dsp_load_s8x4(const int8_t *source)
{
    uint32_t word;
    memcpy(&word, source, sizeof word);
    return word;
}

static inline void si4_dsp_store_s8x4(int8_t *destination, uint32_t word)
{
    memcpy(destination, &word, sizeof word);
}

/* GCC folds the rotate into SXTB16's ROR #8 operand. */
static inline uint32_t si4_dsp_ror8(uint32_t word)
{
    return (word >> 8) | (word << 24);
}

/* SXTB16/SXTAB16 of the word rotated right by 8 (bytes 1 and 3) as one
 * instruction: GCC 12 does not fold a C rotate into the operand. */
static inline int32_t si4_dsp_sxtb16_ror8(uint32_t word)
{
    int32_t result;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(result) : "r"(word));
    return result;
}

static inline int32_t si4_dsp_sxtab16_ror8(uint32_t pair, uint32_t word)
{
    int32_t result;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(result) : "r"(pair), "r"(word));
    return result;
}

/* The input offset in both 16-bit lanes, for SXTAB16. */
static inline uint32_t si4_dsp_offset_pair(int32_t input_offset)
{
    return ((uint32_t)input_offset & 0xFFFFu) | ((uint32_t)input_offset << 16);
}

/* The same arithmetic as si4_requantize_s8 (si4_requant.h, TFLM's
 * double-rounding MultiplyByQuantizedMultiplier), bit for bit, in fewer
 * instructions:
 * - SaturatingRoundingDoublingHighMul computes trunc((a*b + nudge) / 2^31)
 *   with nudge = 2^30 for a*b >= 0 and 1 - 2^30 otherwise. For a*b < 0,
 *   trunc(n / 2^31) = floor((n + 2^31 - 1) / 2^31) = floor((a*b + 2^30) / 2^31),
 *   which is the a*b >= 0 formula too: one SMULL, an add and an arithmetic
 *   shift (as CMSIS-NN's arm_nn_doubling_high_mult_no_sat).
 * - RoundingDivideByPOT as gemmlowp: add 1 when the remainder exceeds half
 *   (half plus one for negative values). */
static inline int8_t si4_dsp_requantize_s8(int32_t acc,
                                           int32_t multiplier,
                                           int32_t shift,
                                           int32_t output_offset,
                                           int32_t activation_min,
                                           int32_t activation_max)
{
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)acc << left_shift);
    int32_t high;
    int32_t result;
    if (shifted == INT32_MIN && multiplier == INT32_MIN) {
        high = INT32_MAX;
    } else {
        high = (int32_t)(((int64_t)shifted * (int64_t)multiplier + ((int64_t)1 << 30)) >> 31);
    }
    {
        const uint32_t mask = ((uint32_t)1 << right_shift) - 1u;
        const uint32_t remainder = (uint32_t)high & mask;
        const uint32_t threshold = (mask >> 1) + (high < 0 ? 1u : 0u);
        result = (high >> right_shift) + (remainder > threshold ? 1 : 0);
    }
    result = (int32_t)((uint32_t)result + (uint32_t)output_offset);
    result = result < activation_min ? activation_min : result;
    result = result > activation_max ? activation_max : result;
    return (int8_t)result;
}

/* Two convolution positions x two output channels over a window that lies
 * entirely inside the input, dilation 1: `rows` runs of `run` bytes, the
 * input runs `input_row_stride` apart, the filter runs contiguous (OHWI).
 * acc[2 * position + channel] receives sum (input + input_offset) * filter.
 * Callers with one position or one channel pass the same pointer twice. */
static inline void si4_dsp_conv_window_2x2(const int8_t *input_0,
                                           const int8_t *input_1,
                                           int32_t input_row_stride,
                                           const int8_t *filter_0,
                                           const int8_t *filter_1,
                                           int32_t rows,
                                           int32_t run,
                                           int32_t input_offset,
                                           int32_t acc[4])
{
    const uint32_t offset_pair = si4_dsp_offset_pair(input_offset);
    int32_t acc_00 = 0; /* position 0, channel 0 */
    int32_t acc_01 = 0;
    int32_t acc_10 = 0;
    int32_t acc_11 = 0;
    int32_t row;
    for (row = 0; row < rows; ++row) {
        const int8_t *in_0 = input_0 + row * input_row_stride;
        const int8_t *in_1 = input_1 + row * input_row_stride;
        int32_t k = run >> 2;
        if (input_offset == 0 && k >= 2) {
            /* The common case (si4tool folds the input zero point of a VALID
             * convolution into the bias): written in assembly because the
             * loop needs 15 values and GCC spills pointers inside it; here
             * the loop end lives on the stack instead, one load per two
             * words. 20 instructions per 16 MACs plus the loop test; an odd
             * last word is left to the C loop below. */
            const int8_t *const filter_0_end = filter_0 + 4 * (k & ~1);
            uint32_t x;
            uint32_t x_lanes;
            uint32_t w_0;
            uint32_t w_1;
            uint32_t w_0_even;
            uint32_t w_1_even;
            __asm__ volatile(
                "1:                                 \n\t"
                "ldr     %[w_0], [%[f_0]], #4       \n\t"
                "ldr     %[w_1], [%[f_1]], #4       \n\t"
                "ldr     %[x], [%[in_0]], #4        \n\t"
                "sxtb16  %[w_0_even], %[w_0]        \n\t"
                "sxtb16  %[w_0], %[w_0], ror #8     \n\t"
                "sxtb16  %[w_1_even], %[w_1]        \n\t"
                "sxtb16  %[w_1], %[w_1], ror #8     \n\t"
                "sxtb16  %[x_lanes], %[x]           \n\t"
                "smlad   %[a_00], %[x_lanes], %[w_0_even], %[a_00] \n\t"
                "smlad   %[a_01], %[x_lanes], %[w_1_even], %[a_01] \n\t"
                "sxtb16  %[x_lanes], %[x], ror #8   \n\t"
                "ldr     %[x], [%[in_1]], #4        \n\t"
                "smlad   %[a_00], %[x_lanes], %[w_0], %[a_00] \n\t"
                "smlad   %[a_01], %[x_lanes], %[w_1], %[a_01] \n\t"
                "sxtb16  %[x_lanes], %[x]           \n\t"
                "smlad   %[a_10], %[x_lanes], %[w_0_even], %[a_10] \n\t"
                "smlad   %[a_11], %[x_lanes], %[w_1_even], %[a_11] \n\t"
                "sxtb16  %[x_lanes], %[x], ror #8   \n\t"
                "smlad   %[a_10], %[x_lanes], %[w_0], %[a_10] \n\t"
                "smlad   %[a_11], %[x_lanes], %[w_1], %[a_11] \n\t"
                                /* second word: the same, unrolled to halve the loop test */
                "ldr     %[w_0], [%[f_0]], #4       \n\t"
                "ldr     %[w_1], [%[f_1]], #4       \n\t"
                "ldr     %[x], [%[in_0]], #4        \n\t"
                "sxtb16  %[w_0_even], %[w_0]        \n\t"
                "sxtb16  %[w_0], %[w_0], ror #8     \n\t"
                "sxtb16  %[w_1_even], %[w_1]        \n\t"
                "sxtb16  %[w_1], %[w_1], ror #8     \n\t"
                "sxtb16  %[x_lanes], %[x]           \n\t"
                "smlad   %[a_00], %[x_lanes], %[w_0_even], %[a_00] \n\t"
                "smlad   %[a_01], %[x_lanes], %[w_1_even], %[a_01] \n\t"
                "sxtb16  %[x_lanes], %[x], ror #8   \n\t"
                "ldr     %[x], [%[in_1]], #4        \n\t"
                "smlad   %[a_00], %[x_lanes], %[w_0], %[a_00] \n\t"
                "smlad   %[a_01], %[x_lanes], %[w_1], %[a_01] \n\t"
                "sxtb16  %[x_lanes], %[x]           \n\t"
                "smlad   %[a_10], %[x_lanes], %[w_0_even], %[a_10] \n\t"
                "smlad   %[a_11], %[x_lanes], %[w_1_even], %[a_11] \n\t"
                "sxtb16  %[x_lanes], %[x], ror #8   \n\t"
                "smlad   %[a_10], %[x_lanes], %[w_0], %[a_10] \n\t"
                "smlad   %[a_11], %[x_lanes], %[w_1], %[a_11] \n\t"
                "ldr     %[x], %[end]               \n\t"
                "cmp     %[f_0], %[x]               \n\t"
                "bne     1b                         \n\t"
                : [a_00] "+r"(acc_00), [a_01] "+r"(acc_01), [a_10] "+r"(acc_10), [a_11] "+r"(acc_11),
                  [in_0] "+r"(in_0), [in_1] "+r"(in_1), [f_0] "+r"(filter_0), [f_1] "+r"(filter_1),
                  [x] "=&r"(x), [x_lanes] "=&r"(x_lanes), [w_0] "=&r"(w_0), [w_1] "=&r"(w_1),
                  [w_0_even] "=&r"(w_0_even), [w_1_even] "=&r"(w_1_even)
                : [end] "m"(filter_0_end)
                : "cc", "memory");
            k &= 1;
        }
        while (k > 0) {
            const uint32_t x_0 = si4_dsp_load_s8x4(in_0);
            const uint32_t x_1 = si4_dsp_load_s8x4(in_1);
            const uint32_t w_0 = si4_dsp_load_s8x4(filter_0);
            const uint32_t w_1 = si4_dsp_load_s8x4(filter_1);
            const int32_t w_0_even = (int32_t)__sxtb16(w_0);
            const int32_t w_0_odd = si4_dsp_sxtb16_ror8(w_0);
            const int32_t w_1_even = (int32_t)__sxtb16(w_1);
            const int32_t w_1_odd = si4_dsp_sxtb16_ror8(w_1);
            int32_t x_even = (int32_t)__sxtab16(offset_pair, x_0);
            int32_t x_odd = si4_dsp_sxtab16_ror8(offset_pair, x_0);
            acc_00 = __smlad(x_even, w_0_even, acc_00);
            acc_00 = __smlad(x_odd, w_0_odd, acc_00);
            acc_01 = __smlad(x_even, w_1_even, acc_01);
            acc_01 = __smlad(x_odd, w_1_odd, acc_01);
            x_even = (int32_t)__sxtab16(offset_pair, x_1);
            x_odd = si4_dsp_sxtab16_ror8(offset_pair, x_1);
            acc_10 = __smlad(x_even, w_0_even, acc_10);
            acc_10 = __smlad(x_odd, w_0_odd, acc_10);
            acc_11 = __smlad(x_even, w_1_even, acc_11);
            acc_11 = __smlad(x_odd, w_1_odd, acc_11);
            in_0 += 4;
            in_1 += 4;
            filter_0 += 4;
            filter_1 += 4;
            --k;
        }
        for (k = run & 3; k > 0; --k) {
            const int32_t x_0 = (int32_t)*in_0++ + input_offset;
            const int32_t x_1 = (int32_t)*in_1++ + input_offset;
            const int32_t w_0 = *filter_0++;
            const int32_t w_1 = *filter_1++;
            acc_00 += x_0 * w_0;
            acc_01 += x_0 * w_1;
            acc_10 += x_1 * w_0;
            acc_11 += x_1 * w_1;
        }
    }
    acc[0] = acc_00;
    acc[1] = acc_01;
    acc[2] = acc_10;
    acc[3] = acc_11;
}

/* The first convolution of an image model has one input channel and a 3x3
 * kernel: nine MACs per output, too few for the loop above. Instead the
 * nine filter taps of each channel are widened once per call into five
 * int16 pairs (tap 8 paired with 0), the nine input values of a position
 * into five matching pairs, and each output is five SMLADs. */
#define SI4_DSP_TAPS_3X3 9
#define SI4_DSP_PAIRS_3X3 5

static inline uint32_t si4_dsp_pack_s16x2(int32_t low, int32_t high)
{
    return ((uint32_t)low & 0xFFFFu) | ((uint32_t)high << 16);
}

/* filter: one channel's 9 taps; pairs: 5 words. */
static inline void si4_dsp_widen_taps_3x3(const int8_t *filter, uint32_t pairs[SI4_DSP_PAIRS_3X3])
{
    pairs[0] = si4_dsp_pack_s16x2(filter[0], filter[1]);
    pairs[1] = si4_dsp_pack_s16x2(filter[2], filter[3]);
    pairs[2] = si4_dsp_pack_s16x2(filter[4], filter[5]);
    pairs[3] = si4_dsp_pack_s16x2(filter[6], filter[7]);
    pairs[4] = si4_dsp_pack_s16x2(filter[8], 0);
}

/* The 3x3 window at `input` (row stride `input_width`, one channel) plus
 * the input offset, in the tap order of si4_dsp_widen_taps_3x3. */
static inline void si4_dsp_widen_window_3x3(const int8_t *input,
                                            int32_t input_width,
                                            int32_t input_offset,
                                            uint32_t pairs[SI4_DSP_PAIRS_3X3])
{
    const int8_t *row_1 = input + input_width;
    const int8_t *row_2 = row_1 + input_width;
    pairs[0] = si4_dsp_pack_s16x2(input[0] + input_offset, input[1] + input_offset);
    pairs[1] = si4_dsp_pack_s16x2(input[2] + input_offset, row_1[0] + input_offset);
    pairs[2] = si4_dsp_pack_s16x2(row_1[1] + input_offset, row_1[2] + input_offset);
    pairs[3] = si4_dsp_pack_s16x2(row_2[0] + input_offset, row_2[1] + input_offset);
    pairs[4] = si4_dsp_pack_s16x2(row_2[2] + input_offset, 0);
}

static inline int32_t si4_dsp_dot_pairs_3x3(const uint32_t window[SI4_DSP_PAIRS_3X3],
                                            const uint32_t taps[SI4_DSP_PAIRS_3X3])
{
    int32_t acc = __smlad((int32_t)window[0], (int32_t)taps[0], 0);
    acc = __smlad((int32_t)window[1], (int32_t)taps[1], acc);
    acc = __smlad((int32_t)window[2], (int32_t)taps[2], acc);
    acc = __smlad((int32_t)window[3], (int32_t)taps[3], acc);
    return __smlad((int32_t)window[4], (int32_t)taps[4], acc);
}

/* Channels widened per pass of the first-convolution kernel: bounds its
 * stack use (20 bytes of taps + 4 of running maximum per channel). */
#define SI4_DSP_CONV_1CH_CHANNEL_BLOCK 32

/* Widens the taps of the output channels from first_channel on, at most
 * SI4_DSP_CONV_1CH_CHANNEL_BLOCK of them, into taps; returns how many. */
static inline int32_t si4_dsp_widen_taps_block_3x3(const int8_t *filter,
                                                   int32_t first_channel,
                                                   int32_t output_channels,
                                                   uint32_t taps[][SI4_DSP_PAIRS_3X3])
{
    const int32_t remaining = output_channels - first_channel;
    const int32_t count = remaining < SI4_DSP_CONV_1CH_CHANNEL_BLOCK ? remaining : SI4_DSP_CONV_1CH_CHANNEL_BLOCK;
    int32_t channel;
    for (channel = 0; channel < count; ++channel) {
        si4_dsp_widen_taps_3x3(filter + (first_channel + channel) * SI4_DSP_TAPS_3X3, taps[channel]);
    }
    return count;
}

/* Accumulators (bias not included) of conv positions (y_0, x_0) and
 * (y_1, x_1) for output channels channel_0 and channel_1, into
 * acc[2 * position + channel]. The fast path needs both windows inside the
 * input and dilation_width 1 (each window row one contiguous run); windows
 * that reach into the padding take the portable per-output path. */
static inline void si4_dsp_conv_2x2(const si4_conv2d_params *params,
                                    const int8_t *input,
                                    const int8_t *filter,
                                    int32_t y_0,
                                    int32_t x_0,
                                    int32_t y_1,
                                    int32_t x_1,
                                    int32_t channel_0,
                                    int32_t channel_1,
                                    int32_t acc[4])
{
    const int32_t channels = params->input_channels;
    const int32_t filter_stride = params->kernel_height * params->kernel_width * channels;
    const int8_t *filter_0 = filter + channel_0 * filter_stride;
    const int8_t *filter_1 = filter + channel_1 * filter_stride;
    si4_conv2d_window window_0;
    si4_conv2d_window window_1;
    si4_conv2d_window_at(params, y_0, x_0, &window_0);
    si4_conv2d_window_at(params, y_1, x_1, &window_1);
    if (params->dilation_width == 1 && window_0.ky_start == 0 && window_0.kx_start == 0 &&
        window_0.ky_end == params->kernel_height && window_0.kx_end == params->kernel_width &&
        window_1.ky_start == 0 && window_1.kx_start == 0 && window_1.ky_end == params->kernel_height &&
        window_1.kx_end == params->kernel_width) {
        const int32_t input_row_stride = params->input_width * channels;
        si4_dsp_conv_window_2x2(input + window_0.in_y_origin * input_row_stride + window_0.in_x_origin * channels,
                                input + window_1.in_y_origin * input_row_stride + window_1.in_x_origin * channels,
                                params->dilation_height * input_row_stride, filter_0, filter_1,
                                params->kernel_height, params->kernel_width * channels, params->input_offset, acc);
    } else {
        acc[0] = si4_conv2d_window_dot(params, &window_0, input, filter_0);
        acc[1] = si4_conv2d_window_dot(params, &window_0, input, filter_1);
        acc[2] = si4_conv2d_window_dot(params, &window_1, input, filter_0);
        acc[3] = si4_conv2d_window_dot(params, &window_1, input, filter_1);
    }
}

/* Whether the one-input-channel 3x3 kernel applies. */
static inline int32_t si4_dsp_is_conv_1ch_3x3(const si4_conv2d_params *params)
{
    return params->input_channels == 1 && params->kernel_height == 3 && params->kernel_width == 3 &&
           params->dilation_height == 1 && params->dilation_width == 1;
}

/* The one-channel 3x3 accumulators of conv position (y, x) for `count`
 * channels whose widened taps are in `taps`; `filter` (OHWI, from the first
 * of those channels) serves windows that reach into the padding. With
 * `running_max` set, acc[c] becomes max(acc[c], new value) (fused pooling);
 * otherwise it is overwritten. */
static inline void si4_dsp_conv_1ch_3x3_position(const si4_conv2d_params *params,
                                                 const int8_t *input,
                                                 const int8_t *filter,
                                                 const uint32_t taps[][SI4_DSP_PAIRS_3X3],
                                                 int32_t count,
                                                 int32_t y,
                                                 int32_t x,
                                                 int32_t running_max,
                                                 int32_t *acc)
{
    si4_conv2d_window window;
    int32_t channel;
    si4_conv2d_window_at(params, y, x, &window);
    if (window.ky_start == 0 && window.kx_start == 0 && window.ky_end == 3 && window.kx_end == 3) {
        uint32_t pairs[SI4_DSP_PAIRS_3X3];
        si4_dsp_widen_window_3x3(input + window.in_y_origin * params->input_width + window.in_x_origin,
                                 params->input_width, params->input_offset, pairs);
        if (running_max) {
            for (channel = 0; channel < count; ++channel) {
                const int32_t value = si4_dsp_dot_pairs_3x3(pairs, taps[channel]);
                acc[channel] = value > acc[channel] ? value : acc[channel];
            }
        } else {
            for (channel = 0; channel < count; ++channel) {
                acc[channel] = si4_dsp_dot_pairs_3x3(pairs, taps[channel]);
            }
        }
    } else {
        for (channel = 0; channel < count; ++channel) {
            const int32_t value = si4_conv2d_window_dot(params, &window, input, filter + channel * SI4_DSP_TAPS_3X3);
            acc[channel] = (running_max && acc[channel] > value) ? acc[channel] : value;
        }
    }
}

#endif /* SI4_DSP_UTIL_H */
