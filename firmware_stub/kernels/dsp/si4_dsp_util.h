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
 * In this file, in order: word helpers; the first layer's 3x3 pairs (one
 * input channel); requantization with per-channel constants derived once
 * (TFLM's double rounding, bit for bit); the column block that four
 * convolution positions are widened into; the assembly inner loops (naked
 * leaf functions, so that they build at every optimisation level and with
 * a frame pointer); the per-channel glue the kernels share; last, the
 * few-channel im2col of first layers (its own loops and requantization).
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

/* widened[2k], widened[2k + 1] = the input word k plus the input offset as SXTAB16 pairs (bytes
 * 0 and 2, bytes 1 and 3), k < words: one vector's values widened once for many dot products. */
static inline void si4_dsp_widen_words(const int8_t *input, int32_t words, int32_t input_offset, uint32_t *widened)
{
    const uint32_t offset_pair = si4_dsp_offset_pair(input_offset);
    int32_t k;
    for (k = 0; k < words; ++k) {
        const uint32_t word = si4_dsp_load_s8x4(input + 4 * k);
        widened[2 * k] = __sxtab16(offset_pair, word);
        widened[2 * k + 1] = (uint32_t)si4_dsp_sxtab16_ror8(offset_pair, word);
    }
}

/* acc + sum_i (x[i] + input_offset) * row[i] over a vector si4_dsp_widen_words widened: two
 * SMLADs a word. */
static inline int32_t si4_dsp_widened_dot(const uint32_t *widened, const int8_t *row, int32_t words, int32_t acc)
{
    int32_t k;
    for (k = 0; k < words; ++k) {
        const uint32_t w = si4_dsp_load_s8x4(row + 4 * k);
        acc = __smlad((int32_t)widened[2 * k], (int32_t)__sxtb16(w), acc);
        acc = __smlad((int32_t)widened[2 * k + 1], si4_dsp_sxtb16_ror8(w), acc);
    }
    return acc;
}

/* The first convolution of an image model has one input channel and a 3x3
 * kernel: nine MACs per output, too few for the column block below. The
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
 * stack use (si4_dsp_channel_3x3: 44 bytes per channel). */
#define SI4_DSP_CONV_1CH_CHANNEL_BLOCK 32

/* Whether the one-input-channel 3x3 kernel applies. */
static inline int32_t si4_dsp_is_conv_1ch_3x3(const si4_conv2d_params *params)
{
    return params->input_channels == 1 && params->kernel_height == 3 && params->kernel_width == 3 &&
           params->dilation_height == 1 && params->dilation_width == 1;
}


/* ------------------------------------------------------------------------
 * Requantization with the per-channel work done once per channel.
 *
 * si4_dsp_scale_apply is si4_multiply_by_quantized_multiplier (TFLM's double
 * rounding), bit for bit, in about a dozen instructions once the channel's
 * constants are known:
 * - gemmlowp's high multiply is trunc((a*b + nudge) / 2^31) with nudge =
 *   2^30 for a*b >= 0 and 1 - 2^30 otherwise. For a*b < 0,
 *   trunc(n / 2^31) = floor((n + 2^31 - 1) / 2^31) = floor((a*b + 2^30) / 2^31),
 *   the a*b >= 0 formula too: one 64-bit multiply-add and a shift serve both
 *   signs (as CMSIS-NN's arm_nn_doubling_high_mult_no_sat); the single
 *   overflow, a == b == INT32_MIN, saturates as gemmlowp's;
 * - RoundingDivideByPOT adds 1 when the remainder exceeds half the divisor
 *   (half plus one below zero): threshold - remainder is negative exactly
 *   then, both lie in [0, 2^31), so its sign bit is the increment.
 */
typedef struct {
    int32_t multiplier;
    int32_t left_shift;
    int32_t right_shift;
    uint32_t remainder_mask; /* 2^right_shift - 1 */
    uint32_t half;           /* remainder_mask / 2 */
} si4_dsp_scale;

static inline void si4_dsp_scale_init(int32_t multiplier, int32_t shift, si4_dsp_scale *scale)
{
    scale->multiplier = multiplier;
    scale->left_shift = shift > 0 ? shift : 0;
    scale->right_shift = shift > 0 ? 0 : -shift;
    scale->remainder_mask = ((uint32_t)1 << scale->right_shift) - 1u;
    scale->half = scale->remainder_mask >> 1;
}

static inline int32_t si4_dsp_scale_apply(int32_t acc, const si4_dsp_scale *scale)
{
    const int32_t shifted = (int32_t)((uint32_t)acc << scale->left_shift);
    int32_t high = (int32_t)(((int64_t)shifted * (int64_t)scale->multiplier + ((int64_t)1 << 30)) >> 31);
    uint32_t remainder;
    uint32_t threshold;
    if (scale->multiplier == INT32_MIN && shifted == INT32_MIN) {
        high = INT32_MAX;
    }
    remainder = (uint32_t)high & scale->remainder_mask;
    threshold = scale->half + ((uint32_t)high >> 31);
    return (high >> scale->right_shift) + (int32_t)((threshold - remainder) >> 31);
}

/* The output zero point and the clamp that follow the scaling. A fused max
 * pool clamps a second time. Each clamp (x < min: min, then x > max: max,
 * the kernels' order) is monotonic, and so is the two in a row: it is the
 * identity between its values at -infinity and +infinity and constant
 * beyond them, so it is one clamp to those two values, whatever the
 * bounds (disjoint ranges included). */
typedef struct {
    int32_t output_offset;
    int32_t low;
    int32_t high;
} si4_dsp_output;

static inline int32_t si4_dsp_clamp(int32_t value, int32_t minimum, int32_t maximum)
{
    value = value < minimum ? minimum : value;
    return value > maximum ? maximum : value;
}

static inline void si4_dsp_output_init(int32_t output_offset,
                                       int32_t activation_min,
                                       int32_t activation_max,
                                       int32_t pool_min,
                                       int32_t pool_max,
                                       si4_dsp_output *out)
{
    out->output_offset = output_offset;
    out->low = si4_dsp_clamp(si4_dsp_clamp(INT32_MIN, activation_min, activation_max), pool_min, pool_max);
    out->high = si4_dsp_clamp(si4_dsp_clamp(INT32_MAX, activation_min, activation_max), pool_min, pool_max);
}

static inline int8_t si4_dsp_output_s8(int32_t scaled, const si4_dsp_output *out)
{
    return (int8_t)si4_dsp_clamp((int32_t)((uint32_t)scaled + (uint32_t)out->output_offset), out->low, out->high);
}

/* si4_requantize_s8 (si4_requant.h) through the two steps above, for
 * callers that requantize a value once. */
static inline int8_t si4_dsp_requantize_s8(int32_t acc,
                                           int32_t multiplier,
                                           int32_t shift,
                                           int32_t output_offset,
                                           int32_t activation_min,
                                           int32_t activation_max)
{
    si4_dsp_scale scale;
    si4_dsp_output out;
    si4_dsp_scale_init(multiplier, shift, &scale);
    si4_dsp_output_init(output_offset, activation_min, activation_max, activation_min, activation_max, &out);
    return si4_dsp_output_s8(si4_dsp_scale_apply(acc, &scale), &out);
}

/* ------------------------------------------------------------------------
 * Four convolution positions at a time, int16 "columns" (im2col).
 *
 * The window of each of four output positions is widened once into a
 * column block: group g (taps 4g .. 4g+3, OHWI order) of position p is the
 * word pair block[8g + 2p], block[8g + 2p + 1] = SXTAB16 of the four input
 * bytes plus the input offset (taps 4g and 4g+2) and the same rotated by 8
 * (taps 4g+1 and 4g+3), the lane order SXTB16 gives the filter word, so
 * no reordering is needed on either side. Taps in the padding are 0 (they
 * contribute nothing, as TFLM skips them). Every output channel then streams
 * its filter once over the block: per group one filter load, two SXTB16,
 * two LDMs of four words and eight SMLADs, 13 instructions per 16 MACs.
 * A fused 2x2 max pool is exactly four positions.
 */
#define SI4_DSP_COLUMN_POSITIONS 4
#define SI4_DSP_COLUMN_GROUPS 72 /* taps per window at most 288: 2,304 bytes of stack */

static inline int32_t si4_dsp_conv_taps(const si4_conv2d_params *params)
{
    return params->kernel_height * params->kernel_width * params->input_channels;
}

/* Whether the column block holds this convolution's windows. */
static inline int32_t si4_dsp_columns_fit(const si4_conv2d_params *params)
{
    return si4_dsp_conv_taps(params) <= 4 * SI4_DSP_COLUMN_GROUPS;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* column[8k], column[8k + 1] = the SXTAB16 pair of input word k plus the
 * offset, k < words (words >= 1): one kernel row of a column, six
 * instructions per word (a naked leaf function, see the kernels below). */
static void __attribute__((naked, unused)) si4_dsp_widen_run(const int8_t *source,
                                                              uint32_t *column,
                                                              int32_t words,
                                                              uint32_t offset_pair)
{
    __asm__(
        "push    {r4, r5}                  \n\t"
        "1:                                \n\t"
        "ldr     r12, [r0], #4             \n\t"
        "sxtab16 r4, r3, r12               \n\t"
        "sxtab16 r5, r3, r12, ror #8       \n\t"
        "strd    r4, r5, [r1], #32         \n\t"
        "subs    r2, r2, #1                \n\t"
        "bne     1b                        \n\t"
        "pop     {r4, r5}                  \n\t"
        "bx      lr                        \n\t");
}
#pragma GCC diagnostic pop

/* Windows of rows that are not whole words gathered into one run first, up
 * to this many taps (64 bytes of stack). */
#define SI4_DSP_GATHER_TAPS 64

/* Stores value (an int16 lane) as tap `tap` of one column (the layout
 * above: word 8g + (tap & 1), half (tap >> 1) & 1); a byte-wise copy, so the
 * word block is never read through another type. */
static inline void si4_dsp_column_store(uint32_t *column, int32_t tap, int32_t value)
{
    const uint16_t lane = (uint16_t)value;
    memcpy((unsigned char *)(column + 8 * (tap >> 2) + (tap & 1)) + 2 * ((tap >> 1) & 1), &lane, sizeof lane);
}

/* Widens kernel rows row_begin .. row_end - 1 of the window of conv
 * position (out_y, out_x) into column `position` of the block (tap 0 of
 * the block = tap 0 of row row_begin). The block ends on a whole group:
 * lanes past the last tap are 0, so a filter word read past a channel's
 * taps adds nothing. */
static inline void si4_dsp_widen_column_rows(const si4_conv2d_params *params,
                                             const int8_t *input,
                                             int32_t out_y,
                                             int32_t out_x,
                                             int32_t position,
                                             int32_t row_begin,
                                             int32_t row_end,
                                             uint32_t *block)
{
    const int32_t channels = params->input_channels;
    const int32_t run = params->kernel_width * channels;
    const int32_t taps = (row_end - row_begin) * run;
    uint32_t *column = block + 2 * position;
    si4_conv2d_window window;
    si4_conv2d_window_at(params, out_y, out_x, &window);
    if (window.ky_start == 0 && window.kx_start == 0 && window.ky_end == params->kernel_height &&
        window.kx_end == params->kernel_width && params->dilation_width == 1) {
        /* Inside the input: each kernel row is `run` contiguous bytes. */
        int32_t input_index = window.input_start + row_begin * window.input_row_step;
        int32_t row;
        if ((run & 3) == 0) {
            const uint32_t offset_pair = si4_dsp_offset_pair(params->input_offset);
            const int32_t words = run >> 2;
            for (row = 0; row < row_end - row_begin; ++row) {
                si4_dsp_widen_run(input + input_index, column + 8 * words * row, words, offset_pair);
                input_index += window.input_row_step;
            }
        } else if (taps <= SI4_DSP_GATHER_TAPS && -params->input_offset >= INT8_MIN && -params->input_offset <= INT8_MAX) {
            /* Rows that are not whole words (a 3-channel first layer): the
             * window's bytes copied into one run, padded to a whole word with
             * -input_offset (which widens to 0), then widened a word at a time. */
            uint32_t words[SI4_DSP_GATHER_TAPS / 4];
            int8_t *gathered = (int8_t *)words;
            int32_t tap = 0;
            for (row = 0; row < row_end - row_begin; ++row) {
                const int8_t *source = input + input_index;
                int32_t k;
                for (k = 0; k < run; ++k) {
                    gathered[tap++] = source[k];
                }
                input_index += window.input_row_step;
            }
            for (; (tap & 3) != 0; ++tap) {
                gathered[tap] = (int8_t)-params->input_offset;
            }
            si4_dsp_widen_run(gathered, column, tap >> 2, si4_dsp_offset_pair(params->input_offset));
        } else {
            /* Rows that are not whole words, larger windows: tap by tap, and
             * the last group's unused lanes zeroed. */
            const int32_t last_group = (taps - 1) >> 2;
            int32_t tap = 0;
            column[8 * last_group] = 0;
            column[8 * last_group + 1] = 0;
            for (row = 0; row < row_end - row_begin; ++row) {
                const int8_t *source = input + input_index;
                int32_t k;
                for (k = 0; k < run; ++k) {
                    si4_dsp_column_store(column, tap++, source[k] + params->input_offset);
                }
                input_index += window.input_row_step;
            }
        }
    } else {
        /* Padding or dilation: every lane zeroed, then the taps inside the input. */
        const int32_t groups = (taps + 3) >> 2;
        const int32_t ky_begin = window.ky_start > row_begin ? window.ky_start : row_begin;
        const int32_t ky_stop = window.ky_end < row_end ? window.ky_end : row_end;
        int32_t g;
        int32_t ky;
        for (g = 0; g < groups; ++g) {
            column[8 * g] = 0;
            column[8 * g + 1] = 0;
        }
        for (ky = ky_begin; ky < ky_stop; ++ky) {
            const int32_t in_y = window.in_y_origin + params->dilation_height * ky;
            int32_t kx;
            if ((channels & 3) == 0 && params->dilation_width == 1 && window.kx_end > window.kx_start) {
                /* Whole-word channels: the row's taps inside the input are
                 * contiguous bytes that start a group, widened as a run. */
                const int32_t first_tap = ((ky - row_begin) * params->kernel_width + window.kx_start) * channels;
                const int8_t *source = input + (in_y * params->input_width + window.in_x_origin + window.kx_start) * channels;
                si4_dsp_widen_run(source, column + 2 * first_tap, ((window.kx_end - window.kx_start) * channels) >> 2,
                                  si4_dsp_offset_pair(params->input_offset));
                continue;
            }
            for (kx = window.kx_start; kx < window.kx_end; ++kx) {
                const int32_t in_x = window.in_x_origin + params->dilation_width * kx;
                const int8_t *source = input + (in_y * params->input_width + in_x) * channels;
                const int32_t first_tap = ((ky - row_begin) * params->kernel_width + kx) * channels;
                int32_t c;
                for (c = 0; c < channels; ++c) {
                    si4_dsp_column_store(column, first_tap + c, source[c] + params->input_offset);
                }
            }
        }
    }
}

/* Widens the whole window of conv position (out_y, out_x) into column
 * `position` of the block. */
static inline void si4_dsp_widen_column(const si4_conv2d_params *params,
                                        const int8_t *input,
                                        int32_t out_y,
                                        int32_t out_x,
                                        int32_t position,
                                        uint32_t *block)
{
    si4_dsp_widen_column_rows(params, input, out_y, out_x, position, 0, params->kernel_height, block);
}

/* The int16 value of tap `tap` of column `position`. */
static inline int32_t si4_dsp_column_tap(const uint32_t *block, int32_t position, int32_t tap)
{
    const uint32_t word = block[8 * (tap >> 2) + 2 * position + (tap & 1)];
    return (int32_t)(int16_t)(uint16_t)(((tap >> 1) & 1) ? word >> 16 : word & 0xFFFFu);
}

/* Keeps a path's stack buffers out of its caller's frame: inlined, the
 * frames of paths that never run together would add up. */
#define SI4_DSP_OWN_FRAME __attribute__((noinline))

/* The hot loops below are whole functions in assembly (naked: no prologue
 * from the compiler), so they need no register allocation from it: they
 * build at -O0 and with a frame pointer, where inline assembly with this
 * many operands cannot be allocated. They are leaf functions following the
 * AAPCS (arguments in r0-r3, r4-r11 saved). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* One group of the column kernel: filter word in r8, four columns' pairs. */
#define SI4_DSP_COLUMNS_GROUP                                                   \
    "ldr     r8, [r0], #4              \n\t"                                    \
    "ldm     r1!, {r10, r11, r12, lr}  \n\t" /* columns 0 and 1 */              \
    "sxtb16  r9, r8                    \n\t" /* filter taps 0 and 2 */          \
    "sxtb16  r8, r8, ror #8            \n\t" /* filter taps 1 and 3 */          \
    "smlad   r4, r10, r9, r4           \n\t"                                    \
    "smlad   r4, r11, r8, r4           \n\t"                                    \
    "smlad   r5, r12, r9, r5           \n\t"                                    \
    "smlad   r5, lr, r8, r5            \n\t"                                    \
    "ldm     r1!, {r10, r11, r12, lr}  \n\t" /* columns 2 and 3 */              \
    "smlad   r6, r10, r9, r6           \n\t"                                    \
    "smlad   r6, r11, r8, r6           \n\t"                                    \
    "smlad   r7, r12, r9, r7           \n\t"                                    \
    "smlad   r7, lr, r8, r7            \n\t"

/* acc[p] = sum over `groups` groups of filter . column p, p < 4 (block
 * word-aligned, groups >= 0): the odd groups one at a time, then four per
 * loop pass. */
static void __attribute__((naked, unused)) si4_dsp_dot_columns(const int8_t *filter,
                                                                const uint32_t *block,
                                                                int32_t groups,
                                                                int32_t acc[SI4_DSP_COLUMN_POSITIONS])
{
    __asm__(
        "push    {r3-r11, lr}              \n\t" /* acc stays at [sp] */
        "movs    r4, #0                    \n\t"
        "movs    r5, #0                    \n\t"
        "movs    r6, #0                    \n\t"
        "movs    r7, #0                    \n\t"
        "add     r3, r1, r2, lsl #5        \n\t" /* end of the block: 32 bytes per group */
        "ands    r2, r2, #3                \n\t"
        "beq     2f                        \n\t"
        "1:                                \n\t"
        SI4_DSP_COLUMNS_GROUP
        "subs    r2, r2, #1                \n\t"
        "bne     1b                        \n\t"
        "2:                                \n\t"
        "cmp     r1, r3                    \n\t"
        "beq     4f                        \n\t"
        "3:                                \n\t"
        SI4_DSP_COLUMNS_GROUP
        SI4_DSP_COLUMNS_GROUP
        SI4_DSP_COLUMNS_GROUP
        SI4_DSP_COLUMNS_GROUP
        "cmp     r1, r3                    \n\t"
        "bne     3b                        \n\t"
        "4:                                \n\t"
        "ldr     r3, [sp]                  \n\t"
        "stm     r3, {r4-r7}               \n\t"
        "pop     {r3-r11, pc}              \n\t");
}

/* si4_fully_connected_per_tensor_s8's class: per-tensor quantization,
 * symmetric weights, an input of whole words of at most
 * SI4_DSP_FC_WIDENED_MAX values (widened onto the stack, 2 bytes a value),
 * a right shift of 1 to SI4_DSP_FC_MAX_RIGHT_SHIFT and an int8 output
 * offset (the fused requantization's range, see that file). The generator's
 * twin is ops/fully_connected.py per_tensor_fits. */
#ifndef SI4_DSP_FC_WIDENED_MAX
#define SI4_DSP_FC_WIDENED_MAX 256
#endif
#define SI4_DSP_FC_MAX_RIGHT_SHIFT 22

static inline int32_t si4_dsp_fc_per_tensor_fits(const si4_fully_connected_params *params,
                                                 const int32_t *output_multiplier,
                                                 const int32_t *output_shift)
{
    return !params->per_channel && params->filter_offset == 0 && (params->input_size & 3) == 0 &&
           params->input_size >= 4 && params->input_size <= SI4_DSP_FC_WIDENED_MAX && -output_shift[0] >= 1 &&
           -output_shift[0] <= SI4_DSP_FC_MAX_RIGHT_SHIFT && output_multiplier[0] >= 0 &&
           params->output_offset >= INT8_MIN && params->output_offset <= INT8_MAX;
}

/* Four fully connected rows sharing each widened input word. */
typedef struct {
    int32_t words;        /* input_size / 4 */
    uint32_t offset_pair; /* si4_dsp_offset_pair(input_offset) */
    int32_t acc[4];       /* out: sum_i (input[i] + input_offset) * row_r[i] */
} si4_dsp_rows_job;

/* One row of the rows kernel: row word at [base], or [base + stride]. */
#define SI4_DSP_ROW(load, acc)                                                  \
    load                                                                        \
    "sxtb16  r12, r11                  \n\t"                                    \
    "sxtb16  r11, r11, ror #8          \n\t"                                    \
    "smlad   " acc ", r9, r12, " acc " \n\t"                                    \
    "smlad   " acc ", r10, r11, " acc "\n\t"

#define SI4_DSP_ROWS_GROUP                                                      \
    "ldr     r11, [r0], #4             \n\t"                                    \
    "sxtab16 r9, r8, r11               \n\t" /* inputs 0 and 2, plus offset */  \
    "sxtab16 r10, r8, r11, ror #8      \n\t" /* inputs 1 and 3, plus offset */  \
    SI4_DSP_ROW("ldr     r11, [r1, r2]             \n\t", "r5")                 \
    SI4_DSP_ROW("ldr     r11, [r1], #4             \n\t", "r4")                 \
    SI4_DSP_ROW("ldr     r11, [r3, r2]             \n\t", "r7")                 \
    SI4_DSP_ROW("ldr     r11, [r3], #4             \n\t", "r6")

/* Rows row_0 + r * row_stride, r < 4, against `input` (job->words words). */
static void __attribute__((naked, unused)) si4_dsp_dot_4_rows(const int8_t *input,
                                                               const int8_t *row_0,
                                                               int32_t row_stride,
                                                               si4_dsp_rows_job *job)
{
    __asm__(
        "push    {r3-r11, lr}              \n\t" /* the job pointer stays at [sp] */
        "ldr     lr, [r3, #0]              \n\t" /* words */
        "ldr     r8, [r3, #4]              \n\t" /* offset pair */
        "movs    r4, #0                    \n\t"
        "movs    r5, #0                    \n\t"
        "movs    r6, #0                    \n\t"
        "movs    r7, #0                    \n\t"
        "add     r3, r1, r2, lsl #1        \n\t" /* row 2 */
        "tst     lr, #1                    \n\t"
        "add     lr, r0, lr, lsl #2        \n\t" /* end of the input */
        "beq     2f                        \n\t"
        SI4_DSP_ROWS_GROUP
        "2:                                \n\t"
        "cmp     r0, lr                    \n\t"
        "beq     3f                        \n\t"
        "1:                                \n\t"
        SI4_DSP_ROWS_GROUP
        SI4_DSP_ROWS_GROUP
        "cmp     r0, lr                    \n\t"
        "bne     1b                        \n\t"
        "3:                                \n\t"
        "ldr     r3, [sp]                  \n\t"
        "adds    r3, r3, #8                \n\t"
        "stm     r3, {r4-r7}               \n\t"
        "pop     {r3-r11, pc}              \n\t");
}

/* Where requantized rows go and the constants they read: the pointers
 * advance by the steps (bytes: 4 per row, 0 for one shared entry; a layer
 * without bias points at a zero with step 0). si4_dsp_requantize_rows
 * writes the four pointers back, so consecutive calls continue. */
typedef struct {
    const int32_t *bias;       /* 0 */
    const int32_t *multiplier; /* 4 */
    const int32_t *shift;      /* 8 */
    int8_t *output;            /* 12 */
    int32_t bias_step;         /* 16 */
    int32_t quant_step;        /* 20 */
    int32_t output_offset;     /* 24: si4_dsp_output's fields */
    int32_t low;               /* 28 */
    int32_t high;              /* 32 */
} si4_dsp_rows_quant;

/* output[r] = si4_dsp_output_s8(si4_dsp_scale_apply(acc[r] + bias[r], scale
 * of (multiplier[r], shift[r])), out), r < count (count >= 1): the same
 * steps, bit for bit, with each row's constants derived on the way (about
 * 35 instructions a row). The high multiply keeps its 33rd bit by doubling
 * the high word with QADD: the one product that overflows (INT32_MIN
 * squared) saturates to INT32_MAX there, as gemmlowp's does, and every
 * other high word is below 2^30 in magnitude, so QADD is a plain doubling. */
static void __attribute__((naked, unused)) si4_dsp_requantize_rows(const int32_t *acc,
                                                                    int32_t count,
                                                                    si4_dsp_rows_quant *quant)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "mov     lr, r2                    \n\t"
        "ldm     lr, {r2, r3, r4, r5, r6, r7} \n\t" /* bias, multiplier, shift, output, steps */
        "add     r1, r0, r1, lsl #2        \n\t" /* end of the accumulators */
        "1:                                \n\t"
        "ldr     r8, [r0], #4              \n\t"
        "ldr     r9, [r2]                  \n\t"
        "add     r2, r2, r6                \n\t"
        "add     r8, r8, r9                \n\t" /* plus the bias */
        "ldr     r9, [r4]                  \n\t" /* shift */
        "ldr     r10, [r3]                 \n\t" /* multiplier */
        "add     r4, r4, r7                \n\t"
        "add     r3, r3, r7                \n\t"
        "bic     r11, r9, r9, asr #31      \n\t" /* left shift: max(shift, 0) */
        "lsl     r8, r8, r11               \n\t"
        "rsb     r9, r9, #0                \n\t"
        "bic     r9, r9, r9, asr #31       \n\t" /* right shift: max(-shift, 0) */
        "mov     r11, #0x40000000          \n\t" /* (x * multiplier + 2^30) >> 31 */
        "movs    r12, #0                   \n\t"
        "smlal   r11, r12, r8, r10         \n\t"
        "lsrs    r11, r11, #31             \n\t"
        "qadd    r12, r12, r12             \n\t"
        "orr     r11, r11, r12             \n\t"
        "movs    r12, #1                   \n\t" /* rounding division by 2^right */
        "lsl     r12, r12, r9              \n\t"
        "subs    r12, r12, #1              \n\t" /* remainder mask */
        "and     r10, r11, r12             \n\t" /* remainder */
        "lsrs    r12, r12, #1              \n\t"
        "add     r12, r12, r11, lsr #31    \n\t" /* threshold: half, plus one below zero */
        "asr     r11, r11, r9              \n\t"
        "sub     r12, r12, r10             \n\t"
        "add     r11, r11, r12, lsr #31    \n\t" /* +1 when remainder > threshold */
        "ldrd    r9, r10, [lr, #24]        \n\t" /* output offset, low */
        "ldr     r12, [lr, #32]            \n\t" /* high */
        "add     r11, r11, r9              \n\t"
        "cmp     r11, r10                  \n\t"
        "it      lt                        \n\t"
        "movlt   r11, r10                  \n\t"
        "cmp     r11, r12                  \n\t"
        "it      gt                        \n\t"
        "movgt   r11, r12                  \n\t"
        "strb    r11, [r5], #1             \n\t"
        "cmp     r0, r1                    \n\t"
        "bne     1b                        \n\t"
        "stm     lr, {r2, r3, r4, r5}      \n\t"
        "pop     {r4-r11, pc}              \n\t");
}

/* One output channel's requantization for the column kernels: its
 * constants, the bytes between its outputs (one per position) and
 * si4_dsp_output's fields, in the order si4_dsp_requantize_columns reads. */
typedef struct {
    int32_t bias;          /* 0 (0 without a bias) */
    int32_t multiplier;    /* 4 */
    int32_t shift;         /* 8 */
    int32_t output_step;   /* 12: output channels */
    int32_t output_offset; /* 16 */
    int32_t low;           /* 20 */
    int32_t high;          /* 24 */
} si4_dsp_column_quant;

/* output[p * output_step] = si4_dsp_output_s8(si4_dsp_scale_apply(acc[p] +
 * bias, scale), out) for p < count (count >= 1), one channel: its constants
 * derived once, then about 26 instructions a position; the high multiply as
 * si4_dsp_requantize_rows does it. */
static void __attribute__((naked, unused)) si4_dsp_requantize_columns(const int32_t *acc,
                                                                       int32_t count,
                                                                       const si4_dsp_column_quant *quant,
                                                                       int8_t *output)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "ldm     r2, {r4, r5, r6, r7}      \n\t" /* bias, multiplier, shift, output step */
        "bic     r8, r6, r6, asr #31       \n\t" /* left shift: max(shift, 0) */
        "rsb     r6, r6, #0                \n\t"
        "bic     r6, r6, r6, asr #31       \n\t" /* right shift: max(-shift, 0) */
        "movs    r9, #1                    \n\t"
        "lsl     r9, r9, r6                \n\t"
        "subs    r9, r9, #1                \n\t" /* remainder mask */
        "lsr     r10, r9, #1               \n\t" /* half */
        "1:                                \n\t"
        "ldr     r11, [r0], #4             \n\t"
        "add     r11, r11, r4              \n\t"
        "lsl     r11, r11, r8              \n\t"
        "mov     r12, #0x40000000          \n\t" /* (x * multiplier + 2^30) >> 31 */
        "movs    lr, #0                    \n\t"
        "smlal   r12, lr, r11, r5          \n\t"
        "lsrs    r12, r12, #31             \n\t"
        "qadd    lr, lr, lr                \n\t"
        "orr     r12, r12, lr              \n\t"
        "and     r11, r12, r9              \n\t" /* remainder */
        "add     lr, r10, r12, lsr #31     \n\t" /* threshold: half, plus one below zero */
        "asr     r12, r12, r6              \n\t"
        "sub     lr, lr, r11               \n\t"
        "add     r12, r12, lr, lsr #31     \n\t" /* +1 when remainder > threshold */
        "ldr     r11, [r2, #16]            \n\t"
        "add     r12, r12, r11             \n\t"
        "ldrd    r11, lr, [r2, #20]        \n\t" /* low, high */
        "cmp     r12, r11                  \n\t"
        "it      lt                        \n\t"
        "movlt   r12, r11                  \n\t"
        "cmp     r12, lr                   \n\t"
        "it      gt                        \n\t"
        "movgt   r12, lr                   \n\t"
        "strb    r12, [r3]                 \n\t"
        "add     r3, r3, r7                \n\t"
        "subs    r1, r1, #1                \n\t"
        "bne     1b                        \n\t"
        "pop     {r4-r11, pc}              \n\t");
}

/* si4_dsp_requantize_columns for a channel whose constants pass
 * si4_dsp_few_quant_init with the output clamp [-128, 127] (checked by the
 * caller, once per layer: si4_dsp_columns_quant_fast): the few-channel path's one-SMLAL
 * form of TFLM's double rounding, its constants derived here from the shift,
 * then 12 instructions a position instead of 26. quant->low / high unused. */
static void __attribute__((naked, unused)) si4_dsp_requantize_columns_fast(const int32_t *acc,
                                                                            int32_t count,
                                                                            const si4_dsp_column_quant *quant,
                                                                            int8_t *output)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "ldm     r2, {r4, r5, r6, r7, r8}  \n\t" /* bias, multiplier, shift, output step, offset */
        "rsb     r6, r6, #0                \n\t" /* e = -shift, in [2, 31] */
        "sub     r9, r6, #1                \n\t" /* the high word's shift: e - 1 */
        "sub     r6, r6, #2                \n\t"
        "movs    r10, #1                   \n\t"
        "lsl     r10, r10, r6              \n\t"
        "lsl     r8, r8, r9                \n\t"
        "add     r10, r10, r8              \n\t" /* high start: 2^(e-2) + offset * 2^(e-1) */
        "1:                                \n\t"
        "ldr     r11, [r0], #4             \n\t"
        "add     r11, r11, r4              \n\t" /* x = acc + bias */
        "and     r12, r11, #0x80000000     \n\t"
        "orr     r12, r12, #0x40000000     \n\t" /* low word: 2^30 | (x & 2^31) */
        "add     lr, r10, r11, asr #31     \n\t" /* high word: start - [x < 0] */
        "smlal   r12, lr, r11, r5          \n\t"
        "asr     lr, lr, r9                \n\t"
        "ssat    lr, #8, lr                \n\t"
        "strb    lr, [r3]                  \n\t"
        "add     r3, r3, r7                \n\t"
        "subs    r1, r1, #1                \n\t"
        "bne     1b                        \n\t"
        "pop     {r4-r11, pc}              \n\t");
}

/* One output channel of the first-layer kernel with a fused pool: its
 * widened taps and requantization constants, in the order the assembly
 * below loads them (two LDMs). */
typedef struct {
    uint32_t taps[SI4_DSP_PAIRS_3X3];
    int32_t bias;
    si4_dsp_scale scale; /* multiplier, left_shift, right_shift, remainder_mask, half */
} si4_dsp_channel_3x3;

/* Where the pooled outputs go and how they are offset and clamped. */
typedef struct {
    int8_t *output;        /* the first channel's output byte, the others follow */
    int32_t output_offset; /* si4_dsp_output's fields */
    int32_t low;
    int32_t high;
} si4_dsp_pool_3x3_job;

#define SI4_DSP_WINDOW_3X3(first)                                               \
    "ldm     r0!, {r9, r10, r11, r12, lr} \n\t"                                 \
    "smuad   r9, r9, r4                \n\t"                                    \
    "smlad   r9, r10, r5, r9           \n\t"                                    \
    "smlad   r9, r11, r6, r9           \n\t"                                    \
    "smlad   r9, r12, r7, r9           \n\t"                                    \
    first

#define SI4_DSP_WINDOW_3X3_MAX                                                  \
    SI4_DSP_WINDOW_3X3("smlad   r9, lr, r8, r9            \n\t"                 \
                       "cmp     r9, r2                    \n\t"                 \
                       "it      gt                        \n\t"                 \
                       "movgt   r2, r9                    \n\t")

/* The one-channel 3x3 convolution with a fused pool window of four
 * positions, requantized: for each of `count` channels (count >= 1), the
 * maximum over the four windows (5 SMLAD pairs each, si4_dsp_widen_window_3x3)
 * of the window . taps, plus the bias, scaled as si4_dsp_scale_apply,
 * offset and clamped as si4_dsp_output_s8, written to job->output[c].
 * Per channel: the taps in one LDM, per window one LDM and five multiplies,
 * three instructions per maximum, 28 for the requantization. */
static void __attribute__((naked, unused)) si4_dsp_pool_3x3(const uint32_t *windows,
                                                             const si4_dsp_channel_3x3 *channels,
                                                             int32_t count,
                                                             const si4_dsp_pool_3x3_job *job)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "ldm     r3, {r3, r4, r5, r6}      \n\t" /* output, offset, low, high */
        "add     r7, r2, r2, lsl #1        \n\t" /* 11 words per channel */
        "add     r7, r7, r2, lsl #3        \n\t"
        "add     r7, r1, r7, lsl #2        \n\t" /* end of the channels */
        "push    {r4, r5, r6, r7}          \n\t" /* [sp]: offset, low, high, end */
        "1:                                \n\t"
        "ldm     r1!, {r4, r5, r6, r7, r8} \n\t" /* taps */
        SI4_DSP_WINDOW_3X3("smlad   r2, lr, r8, r9            \n\t")
        SI4_DSP_WINDOW_3X3_MAX
        SI4_DSP_WINDOW_3X3_MAX
        SI4_DSP_WINDOW_3X3_MAX
        "subs    r0, r0, #80               \n\t" /* back to window 0 */
        "ldm     r1!, {r4, r5, r6, r7, r8, r9} \n\t" /* bias, multiplier, left, right, mask, half */
        "add     r2, r2, r4                \n\t"
        "lsl     r2, r2, r6                \n\t"
        "mov     r10, #0x40000000          \n\t" /* (shifted * multiplier + 2^30) >> 31 */
        "movs    r11, #0                   \n\t"
        "smlal   r10, r11, r2, r5          \n\t"
        "lsrs    r10, r10, #31             \n\t"
        "orr     r10, r10, r11, lsl #1     \n\t"
        "cmp     r5, #0x80000000           \n\t" /* INT32_MIN * INT32_MIN saturates */
        "it      eq                        \n\t"
        "cmpeq   r2, #0x80000000           \n\t"
        "it      eq                        \n\t"
        "mvneq   r10, #0x80000000          \n\t"
        "and     r11, r10, r8              \n\t" /* remainder */
        "add     r12, r9, r10, lsr #31     \n\t" /* threshold: half, plus one below zero */
        "asr     r10, r10, r7              \n\t"
        "sub     r12, r12, r11             \n\t"
        "add     r10, r10, r12, lsr #31    \n\t" /* +1 when remainder > threshold */
        "ldm     sp, {r4, r5, r6, r7}      \n\t"
        "add     r10, r10, r4              \n\t"
        "cmp     r10, r5                   \n\t"
        "it      lt                        \n\t"
        "movlt   r10, r5                   \n\t"
        "cmp     r10, r6                   \n\t"
        "it      gt                        \n\t"
        "movgt   r10, r6                   \n\t"
        "strb    r10, [r3], #1             \n\t"
        "cmp     r1, r7                    \n\t"
        "bne     1b                        \n\t"
        "add     sp, sp, #16               \n\t"
        "pop     {r4-r11, pc}              \n\t");
}

#pragma GCC diagnostic pop

/* The one-channel 3x3 accumulators of conv position (y, x) for `count`
 * channels whose widened taps are in `channels`; `filter` (OHWI, from the first
 * of those channels) serves windows that reach into the padding. With
 * `running_max` set, acc[c] becomes max(acc[c], new value) (fused pooling);
 * otherwise it is overwritten. */
static inline void si4_dsp_conv_1ch_3x3_position(const si4_conv2d_params *params,
                                                 const int8_t *input,
                                                 const int8_t *filter,
                                                 const si4_dsp_channel_3x3 *channels,
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
                const int32_t value = si4_dsp_dot_pairs_3x3(pairs, channels[channel].taps);
                acc[channel] = value > acc[channel] ? value : acc[channel];
            }
        } else {
            for (channel = 0; channel < count; ++channel) {
                acc[channel] = si4_dsp_dot_pairs_3x3(pairs, channels[channel].taps);
            }
        }
    } else {
        for (channel = 0; channel < count; ++channel) {
            const int32_t value = si4_conv2d_window_dot(params, &window, input, filter + channel * SI4_DSP_TAPS_3X3);
            acc[channel] = (running_max && acc[channel] > value) ? acc[channel] : value;
        }
    }
}

/* The channel table of output channels first_channel .. + count - 1
 * (count <= SI4_DSP_CONV_1CH_CHANNEL_BLOCK): widened taps, bias and
 * requantization constants. */
static inline void si4_dsp_channels_3x3(const int8_t *filter,
                                        const int32_t *bias,
                                        const int32_t *output_multiplier,
                                        const int32_t *output_shift,
                                        int32_t per_channel,
                                        int32_t first_channel,
                                        int32_t count,
                                        si4_dsp_channel_3x3 *channels)
{
    int32_t channel;
    for (channel = 0; channel < count; ++channel) {
        const int32_t output_channel = first_channel + channel;
        const int32_t quant_index = per_channel ? output_channel : 0;
        si4_dsp_widen_taps_3x3(filter + output_channel * SI4_DSP_TAPS_3X3, channels[channel].taps);
        channels[channel].bias = bias != 0 ? bias[output_channel] : 0;
        si4_dsp_scale_init(output_multiplier[quant_index], output_shift[quant_index], &channels[channel].scale);
    }
}

/* The taps after the last whole group (taps not a multiple of four), added
 * to the four column accumulators; out of line, so that it costs the hot
 * channel loops no registers. */
static SI4_DSP_OWN_FRAME void si4_dsp_columns_tail(const int8_t *filter_oc,
                                                   const uint32_t *block,
                                                   int32_t taps,
                                                   int32_t acc[SI4_DSP_COLUMN_POSITIONS])
{
    int32_t tap;
    for (tap = taps & ~3; tap < taps; ++tap) {
        const int32_t w = filter_oc[tap];
        acc[0] += w * si4_dsp_column_tap(block, 0, tap);
        acc[1] += w * si4_dsp_column_tap(block, 1, tap);
        acc[2] += w * si4_dsp_column_tap(block, 2, tap);
        acc[3] += w * si4_dsp_column_tap(block, 3, tap);
    }
}

/* The four column accumulators of one output channel (filter_oc: its OHWI
 * taps, `readable` bytes of filter from there on) over a widened block.
 * When taps is not a multiple of four, the last group's filter word reaches
 * into the next channel's taps; the block's lanes there are 0, so the
 * product is exact, and the assembly loop does every group. Only the last
 * channel (its word would run past the filter) takes the C tail. */
static inline void si4_dsp_columns_channel(const int8_t *filter_oc,
                                           int32_t readable,
                                           const uint32_t *block,
                                           int32_t taps,
                                           int32_t acc[SI4_DSP_COLUMN_POSITIONS])
{
    const int32_t groups = (taps + 3) >> 2;
    if ((taps & 3) == 0 || 4 * groups <= readable) {
        si4_dsp_dot_columns(filter_oc, block, groups, acc);
    } else {
        si4_dsp_dot_columns(filter_oc, block, taps >> 2, acc);
        si4_dsp_columns_tail(filter_oc, block, taps, acc);
    }
}

/* Per-channel requantization constants read by walking pointers: the
 * multiplier and shift arrays have one entry per channel (per_channel) or
 * one for all, the bias may be absent. */
typedef struct {
    const int32_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t step; /* 1 when per channel, 0 when per tensor */
} si4_dsp_channel_constants;

static inline void si4_dsp_channel_constants_init(const int32_t *bias,
                                                  const int32_t *multiplier,
                                                  const int32_t *shift,
                                                  int32_t per_channel,
                                                  si4_dsp_channel_constants *constants)
{
    constants->bias = bias;
    constants->multiplier = multiplier;
    constants->shift = shift;
    constants->step = per_channel ? 1 : 0;
}

/* ------------------------------------------------------------------------
 * few-channel im2col
 *
 * First layers with few input channels (3x3x3: 27 taps, 10x4x1: 40) and few
 * output channels: the window of each of two output positions is widened
 * into int16 pairs (tap pairs in an order the widening finds cheap, the
 * filter widened into the same order once per call), then every pair of
 * output channels is register-blocked against both positions: per group of
 * two tap pairs three LDMs and eight SMLADs, 16 MACs in 13 instructions
 * with the loop. The layout (words; p: position, q: channel of a pair,
 * j: tap pair):
 *   columns: word 4 * (j / 2) + 2p + (j % 2)
 *   filters: per channel pair, the two biases, then word
 *            2 + 4 * (j / 2) + 2q + (j % 2)
 * so one LDM of four column words serves one group of both positions.
 */

/* The accumulators of one position pair go to `acc` ([channel][position],
 * bias included) for `channel_pairs` channel pairs. */
typedef struct {
    int32_t *acc;
    int32_t channel_pairs; /* >= 1 */
} si4_dsp_few_mac_job;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* One group of both positions against one channel pair. */
#define SI4_DSP_FEW_GROUP                                                       \
    "ldm     r0!, {r7, r8, r9, r10}    \n\t" /* a group of positions 0 and 1 */ \
    "ldm     r1!, {r11, r12}           \n\t" /* channel 0 */                    \
    "smlad   r3, r7, r11, r3           \n\t"                                    \
    "smlad   r3, r8, r12, r3           \n\t"                                    \
    "smlad   r4, r9, r11, r4           \n\t"                                    \
    "smlad   r4, r10, r12, r4          \n\t"                                    \
    "ldm     r1!, {r11, r12}           \n\t" /* channel 1 */                    \
    "smlad   r5, r7, r11, r5           \n\t"                                    \
    "smlad   r5, r8, r12, r5           \n\t"                                    \
    "smlad   r6, r9, r11, r6           \n\t"                                    \
    "smlad   r6, r10, r12, r6          \n\t"

#define SI4_DSP_FEW_MAC_START                                                   \
    "push    {r4-r11, lr}              \n\t"                                    \
    "ldm     r3, {r3, lr}              \n\t" /* acc, channel pairs */           \
    "push    {r1, r3}                  \n\t" /* [sp]: columns, acc */           \
    "mov     r1, r0                    \n\t"                                    \
    "1:                                \n\t"                                    \
    "ldm     r1!, {r3, r5}             \n\t" /* the biases start the sums */    \
    "mov     r4, r3                    \n\t"                                    \
    "mov     r6, r5                    \n\t"                                    \
    "ldr     r0, [sp]                  \n\t"

#define SI4_DSP_FEW_MAC_END                                                     \
    "3:                                \n\t"                                    \
    "ldr     r7, [sp, #4]              \n\t"                                    \
    "stm     r7!, {r3, r4, r5, r6}     \n\t"                                    \
    "str     r7, [sp, #4]              \n\t"                                    \
    "subs    lr, lr, #1                \n\t"                                    \
    "bne     1b                        \n\t"                                    \
    "add     sp, sp, #8                \n\t"                                    \
    "pop     {r4-r11, pc}              \n\t"

/* filters: the channel pairs' words (layout above); columns .. columns_end:
 * the groups of the position pair, an even number of them (at least 2),
 * two per loop pass. */
static void __attribute__((naked, unused)) si4_dsp_few_mac(const uint32_t *filters,
                                                            const uint32_t *columns,
                                                            const uint32_t *columns_end,
                                                            const si4_dsp_few_mac_job *job)
{
    __asm__(
        SI4_DSP_FEW_MAC_START
        "2:                                \n\t"
        SI4_DSP_FEW_GROUP
        SI4_DSP_FEW_GROUP
        "cmp     r0, r2                    \n\t"
        "bne     2b                        \n\t"
        SI4_DSP_FEW_MAC_END);
}

/* si4_dsp_few_mac for an odd number of groups: the first alone. */
static void __attribute__((naked, unused)) si4_dsp_few_mac_odd(const uint32_t *filters,
                                                                const uint32_t *columns,
                                                                const uint32_t *columns_end,
                                                                const si4_dsp_few_mac_job *job)
{
    __asm__(
        SI4_DSP_FEW_MAC_START
        SI4_DSP_FEW_GROUP
        "cmp     r0, r2                    \n\t"
        "beq     3f                        \n\t"
        "2:                                \n\t"
        SI4_DSP_FEW_GROUP
        SI4_DSP_FEW_GROUP
        "cmp     r0, r2                    \n\t"
        "bne     2b                        \n\t"
        SI4_DSP_FEW_MAC_END);
}

/* The requantization of one channel in three words, for the case the
 * caller checked: multiplier >= 0, shift = -e with e in [2, 31], output
 * clamp [-128, 127], and accumulators small enough that nothing below
 * overflows. TFLM computes high = floor((x*m + 2^30) / 2^31) (its two
 * nudges agree with this one formula) and then round-half-away-from-zero
 * of high / 2^e, which is floor((high + 2^(e-1) - [high < 0]) / 2^e).
 * Nested floors of divisions by powers of two are one floor, and adding an
 * integer before a floor is adding it after, so the result is
 *   floor((x*m + 2^30 + 2^(30+e) - [high < 0] * 2^31) / 2^(31+e)),
 * and [high < 0] may be replaced by [x < 0] (they differ only where high
 * is 0, which rounds to 0 either way). One SMLAL onto a start that depends
 * on x's sign: low word 2^30 | (x & 2^31), high word 2^(e-2) + (x >> 31),
 * then the high word shifted right by e-1. The output offset rides in the
 * high word as offset * 2^(e-1). */
typedef struct {
    int32_t multiplier;
    int32_t high_start; /* 2^(e-2) + output_offset * 2^(e-1) */
    int32_t high_shift; /* e - 1 */
} si4_dsp_few_quant;

/* output[c] and output[c + second] (second: the next position's byte
 * offset, or 0 when the pair repeats one position) of `count` channels
 * (count >= 1) from acc ([channel][position]). */
static void __attribute__((naked, unused)) si4_dsp_few_requantize(const int32_t *acc,
                                                                   int32_t count,
                                                                   const si4_dsp_few_quant *quant,
                                                                   int8_t *output,
                                                                   int32_t second)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "ldr     r12, [sp, #36]            \n\t" /* second (fifth argument) */
        "1:                                \n\t"
        "ldm     r2!, {r4, r5, r6}         \n\t" /* multiplier, high start, high shift */
        "ldrd    r7, r8, [r0], #8          \n\t"
        "and     r9, r7, #0x80000000       \n\t"
        "orr     r9, r9, #0x40000000       \n\t"
        "add     r10, r5, r7, asr #31      \n\t"
        "smlal   r9, r10, r7, r4           \n\t"
        "asr     r10, r10, r6              \n\t"
        "ssat    r10, #8, r10              \n\t"
        "and     r9, r8, #0x80000000       \n\t"
        "orr     r9, r9, #0x40000000       \n\t"
        "add     r11, r5, r8, asr #31      \n\t"
        "smlal   r9, r11, r8, r4           \n\t"
        "asr     r11, r11, r6              \n\t"
        "ssat    r11, #8, r11              \n\t"
        "strb    r11, [r3, r12]            \n\t"
        "strb    r10, [r3], #1             \n\t"
        "subs    r1, r1, #1                \n\t"
        "bne     1b                        \n\t"
        "pop     {r4-r11, pc}              \n\t");
}
#pragma GCC diagnostic pop

/* The fast requantization's constants of one channel, 1 when they apply
 * (see si4_dsp_few_quant): `bound` bounds |acc + bias|. */
static inline int32_t si4_dsp_few_quant_init(int32_t multiplier,
                                             int32_t shift,
                                             int32_t output_offset,
                                             int64_t bound,
                                             si4_dsp_few_quant *quant)
{
    const int32_t e = -shift;
    int64_t start;
    if (multiplier < 0 || e < 2 || e > 31 || bound >= ((int64_t)1 << 31)) {
        return 0;
    }
    start = ((int64_t)1 << (e - 2)) + (int64_t)output_offset * ((int64_t)1 << (e - 1));
    /* |high word| <= bound / 2 + 2^(e-2) + 1 before the offset. */
    if (bound / 2 + ((int64_t)1 << (e - 2)) + 1 + 128 * ((int64_t)1 << (e - 1)) >= ((int64_t)1 << 31)) {
        return 0;
    }
    quant->multiplier = multiplier;
    quant->high_start = (int32_t)start;
    quant->high_shift = e - 1;
    return 1;
}

/* Whether every output channel of a column-kernel layer takes
 * si4_dsp_requantize_columns_fast: the clamp is [-128, 127] and each
 * channel's constants pass si4_dsp_few_quant_init for accumulators of
 * `taps` products of at most 255 * 128 each, plus the channel's bias. Once
 * per kernel call, a few instructions a channel (one copy: not inlined). */
static SI4_DSP_OWN_FRAME __attribute__((unused)) int32_t si4_dsp_columns_quant_fast(
    const si4_conv2d_params *params,
    int32_t taps,
    const int32_t *bias,
    const int32_t *output_multiplier,
    const int32_t *output_shift,
    const si4_dsp_output *out)
{
    int32_t channel;
    if (out->low != INT8_MIN || out->high != INT8_MAX) {
        return 0;
    }
    for (channel = 0; channel < params->output_channels; ++channel) {
        const int32_t index = params->per_channel ? channel : 0;
        const int32_t bias_value = bias != 0 ? bias[channel] : 0;
        const int64_t bound = (int64_t)taps * 255 * 128 + (bias_value < 0 ? -(int64_t)bias_value : bias_value);
        si4_dsp_few_quant unused;
        if (!si4_dsp_few_quant_init(output_multiplier[index], output_shift[index], params->output_offset, bound, &unused)) {
            return 0;
        }
    }
    return 1;
}

/* How a window of whole kernel rows is widened into one position's words. */
typedef struct {
    int32_t row_step;     /* bytes from one kernel row's first input byte to the next's */
    int32_t rows;         /* >= 1 */
    int32_t words;        /* whole input words per row */
    int32_t leftover;     /* bytes per row after them */
    uint32_t offset_pair; /* si4_dsp_offset_pair(input_offset) */
    int32_t input_offset;
} si4_dsp_few_widen_job;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* The window whose first row starts at `row` into `column` (the columns
 * plus 2p words), in the tap order of the layout above: per row its words
 * (SXTAB16 pairs, one STRD per word), then every row's leftover bytes plus
 * the offset as halfwords, four to a group. */
static void __attribute__((naked, unused)) si4_dsp_few_widen(const int8_t *row,
                                                              uint32_t *column,
                                                              const si4_dsp_few_widen_job *job)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "ldm     r2, {r3, r4, r5, r6, r7, lr} \n\t" /* row step, rows, words, leftover, pair, offset */
        "mul     r8, r4, r5                \n\t"
        "add     r8, r1, r8, lsl #4        \n\t" /* the leftovers' first group */
        "movs    r2, #0                    \n\t" /* leftovers so far */
        "1:                                \n\t"
        "mov     r10, r0                   \n\t"
        "movs    r9, r5                    \n\t"
        "beq     3f                        \n\t"
        "2:                                \n\t"
        "ldr     r11, [r10], #4            \n\t"
        "sxtab16 r12, r7, r11              \n\t"
        "sxtab16 r11, r7, r11, ror #8      \n\t"
        "strd    r12, r11, [r1], #16       \n\t"
        "subs    r9, r9, #1                \n\t"
        "bne     2b                        \n\t"
        "3:                                \n\t"
        "movs    r9, r6                    \n\t"
        "beq     5f                        \n\t"
        "4:                                \n\t"
        "ldrsb   r11, [r10], #1            \n\t"
        "add     r11, r11, lr              \n\t"
        "strh    r11, [r8], #2             \n\t"
        "adds    r2, r2, #1                \n\t"
        "tst     r2, #3                    \n\t"
        "it      eq                        \n\t"
        "addeq   r8, r8, #8                \n\t" /* the next group */
        "subs    r9, r9, #1                \n\t"
        "bne     4b                        \n\t"
        "5:                                \n\t"
        "add     r0, r0, r3                \n\t"
        "subs    r4, r4, #1                \n\t"
        "bne     1b                        \n\t"
        "pop     {r4-r11, pc}              \n\t");
}
#pragma GCC diagnostic pop

#endif /* SI4_DSP_UTIL_H */
