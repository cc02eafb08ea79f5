/*
 * si4_conv2d_1x1_s8.c (DSP) - CONV_2D with a 1x1 window, for cores with the
 * DSP extension. Same contract and results, bit for bit, as
 * kernels/src/si4_conv2d_1x1_s8.c (TFLM's reference ConvPerChannel
 * arithmetic).
 *
 * One shape class of the convolution (si4_nn.h): the pointwise layers of
 * MobileNet-style models, a GEMM without im2col. Layers the fast path does
 * not take (padding, input channels not whole words or more than
 * 4 * SI4_DSP_COLUMN_GROUPS, a channel in neither requantization form)
 * are left to si4_conv2d_s8 by the generator; called with one anyway, the
 * kernel computes it the compact way (si4_conv2d_each_output_s8).
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_kernel_util.h"

#include <stddef.h>

/* ------------------------------------------------------------------------
 * 1x1 (pointwise) convolutions: a GEMM without im2col.
 *
 * A 1x1 window is one input pixel, so a block of four output positions is
 * four input pixels widened once (SXTAB16 with the input offset, then
 * doubled, see below) and shared by every output channel; each channel's
 * filter row streams over it as in conv_columns (13 instructions per 16
 * MACs). What changes is everything around the dot product, which for the
 * few input channels of vww's early layers was most of the cost: one
 * assembly call runs all the channels of a block, the requantization
 * constants of up to PW_CHANNELS channels are derived once per layer, and
 * the epilogue is four (or eight) instructions per output plus a shared
 * pack, clamp and store.
 *
 * The requantization is TFLM's double rounding, bit for bit, for a
 * multiplier m >= 0 (TFLM's are) and a right shift r (shift = -r), in one
 * of two forms chosen per channel (pw_channel_init):
 *
 * Short (r in [1, 22], |acc| < 2^30 for every input: input_channels * 128 *
 * max|x + input_offset| + |bias|). The block holds 2 * (x + input_offset),
 * so the channel accumulates a' = 2 * acc (the table holds 2 * bias). The
 * high multiply floor((acc*m + 2^30) / 2^31) is floor((a'*m + 2^31) / 2^32),
 * SMMLAR's product term; adding round' = output_offset * 2^r + 2^(r-1) in
 * the same instruction, then -1 when a' < 0, and an arithmetic shift by r
 * give the rounding division plus the output offset (the argument of
 * si4_depthwise_conv2d_s8.c: with m >= 0 the high product's sign is a''s,
 * except when it is 0, where the -1 changes nothing since r >= 1).
 * |high| < 2^30 and |round'| < 2^30: nothing overflows. A channel with
 * m = 0 is always short (its output is the offset whatever acc is).
 *
 * Wide (r in [2, 31], any acc: vww's later layers have biases near 2^30
 * with shifts of -25 to -31). Both roundings fold into one 64-bit
 * multiply-add: floor((floor(Q / 2^31) + k) / 2^r) = floor((Q + k * 2^31) /
 * 2^(31+r)) for Q = acc*m + 2^30, with k = 2^(r-1) when the high product is
 * >= 0 and 2^(r-1) - 1 below 0 (TFLM's half away from zero). So SMLAL onto
 * C = 2^30 + 2^(30+r) (minus 2^31 when acc < 0) and an arithmetic shift of
 * the high word by r - 1 give the result; acc's sign stands for the high
 * product's as above (when acc < 0 and the high product is 0, the sum is in
 * [2^(30+r) - 2^31, 2^(30+r) - 2^30), which gives 0 as well). acc is the
 * exact int32 sum, bias + a' / 2 (the table's 2 * bias is 0 for these),
 * the output offset is added after the shift.
 *
 * SSAT to int8 and the packed SSUB8/SEL clamp are then the same clamp as
 * si4_dsp_output_s8 (the activation bounds are int8).
 */
#define PW_CHANNELS 64
#define PW_WIDE 256 /* flags a wide channel in right_shift; ASR reads only its low byte */

typedef struct {
    int32_t bias2;       /* short: 2 * bias; wide: 0 */
    int32_t bias;        /* wide: bias */
    int32_t multiplier;
    int32_t round;       /* short: output_offset * 2^r + 2^(r-1); wide: 2^(r-2), C's high word */
    int32_t right_shift; /* short: r; wide: (r - 1) | PW_WIDE */
} pw_channel;

/* The block job; pw_block reads it at these offsets. */
typedef struct {
    const pw_channel *table;     /* 0: the next channel's constants; advanced */
    const pw_channel *table_end; /* 4 */
    int8_t *output;              /* 8: the next channel's output at position 0; advanced */
    int32_t output_step;         /* 12: bytes between the block's positions */
    uint32_t low_word;           /* 16: the clamp, in four lanes */
    uint32_t high_word;          /* 20 */
    int32_t output_offset;       /* 24 */
} pw_job;

typedef char pw_job_layout_check[(sizeof(pw_channel) == 20 && offsetof(pw_job, output) == 8 &&
                                  offsetof(pw_job, low_word) == 16 && offsetof(pw_job, output_offset) == 24) ? 1 : -1];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* column[8k], column[8k + 1] = 2 * (input word k + offset) as SXTAB16
 * pairs, k < words (words >= 1); six instructions a word plus the loop. */
static void __attribute__((naked, noinline)) pw_widen(const int8_t *source,
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
        "sadd16  r4, r4, r4                \n\t"
        "sadd16  r5, r5, r5                \n\t"
        "strd    r4, r5, [r1], #32         \n\t"
        "subs    r2, r2, #1                \n\t"
        "bne     1b                        \n\t"
        "pop     {r4, r5}                  \n\t"
        "bx      lr                        \n\t");
}

/* One short requantization of `acc` (r9: multiplier, r10: round', r11: r),
 * left in `acc` as an int8. */
#define PW_REQUANT(acc)                                                         \
    "smmlar  r8, " acc ", r9, r10      \n\t"                                    \
    "add     r8, r8, " acc ", asr #31  \n\t"                                    \
    "asr     r8, r8, r11               \n\t"                                    \
    "ssat    " acc ", #8, r8           \n\t"

/* One wide requantization of `acc` (r8: bias, r9: multiplier, r10: C's high
 * word, r11: r - 1, r12: output offset; r1 and lr scratch). */
#define PW_REQUANT_WIDE(acc)                                                    \
    "add     " acc ", r8, " acc ", asr #1 \n\t" /* the exact sum */              \
    "and     r1, " acc ", #0x80000000  \n\t"                                    \
    "orr     r1, r1, #0x40000000       \n\t" /* C's low word, minus 2^31 below 0 */ \
    "add     lr, r10, " acc ", asr #31 \n\t" /* and its high word */             \
    "smlal   r1, lr, " acc ", r9       \n\t"                                    \
    "asr     lr, lr, r11               \n\t"                                    \
    "add     lr, lr, r12               \n\t"                                    \
    "ssat    " acc ", #8, lr           \n\t"

/* The channels job->table .. job->table_end over one widened block of four
 * positions (groups >= 1 groups of four input channels; filter: the first
 * channel's row, the rows follow each other). Per channel: 2 * bias into the
 * four accumulators, a jump into the four-group loop for groups % 4, the
 * groups (SI4_DSP_COLUMNS_GROUP), then the four requantizations, one pack,
 * one clamp, four byte stores. */
static void __attribute__((naked, noinline)) pw_block(const int8_t *filter,
                                                       const uint32_t *block,
                                                       int32_t groups,
                                                       pw_job *job)
{
    __asm__(
        "push    {r3-r11, lr}              \n\t" /* the job stays at [sp] */
        "add     r3, r1, r2, lsl #5        \n\t" /* end of the block: 32 bytes a group */
        "mov     r2, r1                    \n\t" /* its start */
        "0:                                \n\t"
        "ldr     lr, [sp]                  \n\t"
        "ldr     r12, [lr]                 \n\t"
        "ldr     r4, [r12]                 \n\t" /* 2 * bias */
        "mov     r5, r4                    \n\t"
        "mov     r6, r4                    \n\t"
        "mov     r7, r4                    \n\t"
        "mov     r1, r2                    \n\t"
        "sub     r8, r3, r2                \n\t"
        "ubfx    r8, r8, #5, #2            \n\t" /* groups % 4 */
        "tbb     [pc, r8]                  \n\t"
        "1:                                \n\t"
        ".byte   (10f - 1b) / 2, (13f - 1b) / 2, (12f - 1b) / 2, (11f - 1b) / 2 \n\t"
        ".p2align 1                        \n\t"
        "10:                               \n\t"
        SI4_DSP_COLUMNS_GROUP
        "11:                               \n\t"
        SI4_DSP_COLUMNS_GROUP
        "12:                               \n\t"
        SI4_DSP_COLUMNS_GROUP
        "13:                               \n\t"
        SI4_DSP_COLUMNS_GROUP
        "cmp     r1, r3                    \n\t"
        "bne     10b                       \n\t"
        "ldr     lr, [sp]                  \n\t"
        "ldr     r12, [lr]                 \n\t"
        "ldm     r12!, {r1, r8, r9, r10, r11} \n\t" /* (2 * bias), bias, multiplier, round', shift */
        "str     r12, [lr]                 \n\t"
        "tst     r11, #256                 \n\t" /* PW_WIDE */
        "bne     20f                       \n\t"
        PW_REQUANT("r4")
        PW_REQUANT("r5")
        PW_REQUANT("r6")
        PW_REQUANT("r7")
        "21:                               \n\t"
        "bfi     r4, r5, #8, #8            \n\t"
        "bfi     r4, r6, #16, #8           \n\t"
        "bfi     r4, r7, #24, #8           \n\t"
        "ldrd    r8, r9, [lr, #16]         \n\t" /* low, high words */
        "ssub8   r10, r4, r8               \n\t"
        "sel     r4, r4, r8                \n\t" /* max with low */
        "ssub8   r10, r4, r9               \n\t"
        "sel     r4, r9, r4                \n\t" /* min with high */
        "ldrd    r8, r9, [lr, #8]          \n\t" /* output, output step */
        "strb    r4, [r8]                  \n\t"
        "lsrs    r10, r4, #8               \n\t"
        "strb    r10, [r8, r9]             \n\t"
        "add     r11, r8, r9, lsl #1       \n\t"
        "lsrs    r10, r4, #16              \n\t"
        "strb    r10, [r11]                \n\t"
        "lsrs    r10, r4, #24              \n\t"
        "strb    r10, [r11, r9]            \n\t"
        "adds    r8, r8, #1                \n\t"
        "str     r8, [lr, #8]              \n\t"
        "ldr     r8, [lr, #4]              \n\t"
        "cmp     r12, r8                   \n\t"
        "bne     0b                        \n\t"
        "pop     {r3-r11, pc}              \n\t"
        "20:                               \n\t" /* a wide channel */
        "ldr     r12, [lr, #24]            \n\t" /* output offset */
        PW_REQUANT_WIDE("r4")
        PW_REQUANT_WIDE("r5")
        PW_REQUANT_WIDE("r6")
        PW_REQUANT_WIDE("r7")
        "ldr     lr, [sp]                  \n\t"
        "ldr     r12, [lr]                 \n\t"
        "b       21b                       \n\t");
}

#pragma GCC diagnostic pop

/* Which form channel takes (terms_bound: input_channels * 128 *
 * max|x + input_offset|): 1 short, 2 wide, 0 neither. */
static int32_t pw_channel_form(int32_t multiplier, int32_t shift, int32_t bias, int32_t terms_bound)
{
    const int32_t limit = (1 << 30) - terms_bound;
    if (multiplier == 0 || (shift <= -1 && shift >= -22 && bias < limit && bias > -limit)) {
        return 1;
    }
    return multiplier > 0 && shift <= -2 && shift >= -31 ? 2 : 0;
}

/* The channel's constants in its form; returns the form (0: neither, the
 * constants are then not to be used). */
static int32_t pw_channel_init(int32_t bias,
                               int32_t multiplier,
                               int32_t shift,
                               const si4_conv2d_params *params,
                               int32_t terms_bound,
                               pw_channel *channel)
{
    const int32_t form = pw_channel_form(multiplier, shift, bias, terms_bound);
    if (form == 1) {
        const int32_t right_shift = multiplier == 0 ? 1 : -shift;
        channel->bias2 = multiplier == 0 ? 0 : 2 * bias;
        channel->round =
            (int32_t)(((uint32_t)params->output_offset << right_shift) + ((uint32_t)1 << (right_shift - 1)));
        channel->right_shift = right_shift;
    } else {
        channel->bias2 = 0;
        channel->round = (int32_t)(1u << (-shift - 2));
        channel->right_shift = (-shift - 1) | PW_WIDE;
    }
    channel->bias = bias;
    channel->multiplier = multiplier;
    return form;
}

/* input_channels * 128 * max|x + input_offset|: |acc - bias| never exceeds it. */
static int32_t pw_terms_bound(const si4_conv2d_params *params)
{
    const int32_t low = -128 + params->input_offset;
    const int32_t high = 127 + params->input_offset;
    const int32_t low_magnitude = low < 0 ? -low : low;
    const int32_t high_magnitude = high < 0 ? -high : high;
    return params->input_channels * 128 * (low_magnitude > high_magnitude ? low_magnitude : high_magnitude);
}

/* Whether conv_pointwise handles this layer's shape and offsets: 1x1, no
 * padding, whole words of input channels that fit the block. Each channel's
 * form is checked where its constants are made (pw_channel_init), so a call
 * looks at each channel once. */
static int32_t pw_layer_fits(const si4_conv2d_params *params)
{
    const int32_t channels = params->input_channels;
    return params->kernel_height == 1 && params->kernel_width == 1 && params->pad_top == 0 && params->pad_left == 0 &&
           (channels & 3) == 0 && channels <= 4 * SI4_DSP_COLUMN_GROUPS && params->input_offset >= -128 &&
           params->input_offset <= 128 && params->output_offset >= -128 && params->output_offset <= 127 &&
           params->activation_min >= -128 && params->activation_max <= 127;
}

/* A last block of one position (a 1x1 layer called on rows of 4k + 1
 * positions, as a depth-first schedule calls kws's 5-wide rows): the
 * position's input widened once and each channel's dot product by SMLAD,
 * requantized as every DSP kernel does (TFLM's arithmetic), instead of a
 * block that computes four positions' work for one. Channels first_channel
 * .. first_channel + count - 1 of output position `output`. */
static void __attribute__((noinline)) pw_one_position(const si4_conv2d_params *params,
                                                      const int8_t *pixel,
                                                      const int8_t *filter,
                                                      const int32_t *bias,
                                                      const int32_t *output_multiplier,
                                                      const int32_t *output_shift,
                                                      int32_t first_channel,
                                                      int32_t count,
                                                      uint32_t *widened,
                                                      int8_t *output)
{
    const int32_t words = params->input_channels >> 2;
    int32_t channel;
    si4_dsp_widen_words(pixel, words, params->input_offset, widened);
    for (channel = first_channel; channel < first_channel + count; ++channel) {
        const int32_t quant_index = params->per_channel ? channel : 0;
        const int32_t acc = si4_dsp_widened_dot(widened, filter + channel * params->input_channels, words,
                                                bias != 0 ? bias[channel] : 0);
        output[channel] = si4_dsp_requantize_s8(acc, output_multiplier[quant_index], output_shift[quant_index],
                                                params->output_offset, params->activation_min,
                                                params->activation_max);
    }
}

/* The 1x1 convolution (returns 1), or 0 when the layer or one of its
 * channels fits neither form: the channels of the chunks before that one
 * may then hold outputs already, and the caller's fallback writes every
 * output again (the input is never written). Channels PW_CHANNELS at a time
 * (their constants on the stack), then the positions four at a time; a
 * short last block of two or three positions repeats the last one and is
 * requantized into `tail`, whose real rows are then copied; a last block of
 * one position goes to pw_one_position. */
static SI4_DSP_OWN_FRAME int32_t conv_pointwise(const si4_conv2d_params *params,
                                                const int8_t *input,
                                                const int8_t *filter,
                                                const int32_t *bias,
                                                const int32_t *output_multiplier,
                                                const int32_t *output_shift,
                                                int8_t *output)
{
    const int32_t input_channels = params->input_channels;
    const int32_t output_channels = params->output_channels;
    const int32_t positions = params->output_height * params->output_width;
    const int32_t groups = input_channels >> 2;
    const uint32_t offset_pair = si4_dsp_offset_pair(params->input_offset);
    const int32_t terms_bound = pw_terms_bound(params);
    uint32_t block[8 * SI4_DSP_COLUMN_GROUPS];
    pw_channel table[PW_CHANNELS];
    int8_t tail[SI4_DSP_COLUMN_POSITIONS * PW_CHANNELS];
    si4_dsp_output out;
    pw_job job;
    int32_t first_channel;
    if (!pw_layer_fits(params)) {
        return 0;
    }
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    job.low_word = ((uint32_t)out.low & 0xFFu) * 0x01010101u;
    job.high_word = ((uint32_t)out.high & 0xFFu) * 0x01010101u;
    job.output_offset = params->output_offset;
    for (first_channel = 0; first_channel < output_channels; first_channel += PW_CHANNELS) {
        const int32_t remaining = output_channels - first_channel;
        const int32_t count = remaining < PW_CHANNELS ? remaining : PW_CHANNELS;
        int32_t channel;
        int32_t first;
        for (channel = 0; channel < count; ++channel) {
            const int32_t output_channel = first_channel + channel;
            const int32_t quant_index = params->per_channel ? output_channel : 0;
            if (pw_channel_init(bias != 0 ? bias[output_channel] : 0, output_multiplier[quant_index],
                                output_shift[quant_index], params, terms_bound, &table[channel]) == 0) {
                return 0;
            }
        }
        for (first = 0; first < positions; first += SI4_DSP_COLUMN_POSITIONS) {
            const int32_t real = positions - first < SI4_DSP_COLUMN_POSITIONS ? positions - first : SI4_DSP_COLUMN_POSITIONS;
            int32_t index;
            if (real == 1) {
                const int32_t out_y = first / params->output_width;
                const int32_t out_x = first - out_y * params->output_width;
                const int32_t pixel = out_y * params->stride_height * params->input_width + out_x * params->stride_width;
                pw_one_position(params, input + pixel * input_channels, filter, bias, output_multiplier, output_shift,
                                first_channel, count, block, output + first * output_channels);
                continue;
            }
            for (index = 0; index < SI4_DSP_COLUMN_POSITIONS; ++index) {
                const int32_t position = first + (index < real ? index : real - 1);
                const int32_t out_y = position / params->output_width;
                const int32_t out_x = position - out_y * params->output_width;
                const int32_t pixel = out_y * params->stride_height * params->input_width + out_x * params->stride_width;
                pw_widen(input + pixel * input_channels, block + 2 * index, groups, offset_pair);
            }
            job.table = table;
            job.table_end = table + count;
            if (real == SI4_DSP_COLUMN_POSITIONS) {
                job.output = output + first * output_channels + first_channel;
                job.output_step = output_channels;
            } else {
                job.output = tail;
                job.output_step = count;
            }
            pw_block(filter + first_channel * input_channels, block, groups, &job);
            for (index = 0; real < SI4_DSP_COLUMN_POSITIONS && index < real; ++index) {
                memcpy(output + (first + index) * output_channels + first_channel, tail + index * count,
                       (size_t)count);
            }
        }
    }
    return 1;
}
/* ---------------------------------------------------------- end of 1x1 */

void si4_conv2d_1x1_s8(const si4_conv2d_params *params,
                       const int8_t *input,
                       const int8_t *filter,
                       const int32_t *bias,
                       const int32_t *output_multiplier,
                       const int32_t *output_shift,
                       int8_t *output)
{
    if (!conv_pointwise(params, input, filter, bias, output_multiplier, output_shift, output)) {
        si4_conv2d_each_output_s8(params, input, filter, bias, output_multiplier, output_shift, output);
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_conv2d_1x1_s8.c"
#endif
