/*
 * si4_fully_connected_per_tensor_s8.c (DSP) - FULLY_CONNECTED for one shape
 * class, on cores with the DSP extension: per-tensor quantization, symmetric
 * weights, an input of whole words up to SI4_DSP_FC_WIDENED_MAX values (what
 * the TFLite converter gives the dense layers of small models). Same contract
 * and results, bit for bit, as kernels/src/si4_fully_connected_per_tensor_s8.c
 * (TFLM's reference FullyConnected arithmetic), for any layer: one outside the
 * class is computed by a plain loop (the generator never sends one here, see
 * ops/fully_connected.py fully_connected_kernel).
 *
 * The input is widened once per call onto the stack (2 bytes a value), so
 * each group of four inputs is one LDRD, and one assembly loop does the
 * products and the requantization of every group of four rows: 21
 * instructions per 16 MACs, about 19 a row besides. The last one to three
 * rows, and the rows from a group whose accumulators leave the fused
 * requantization's range on, take a C loop over the same widened input.
 * A separate kernel from si4_fully_connected_s8 so that a model whose dense
 * layers are all of this class links only this loop, and a model of
 * per-channel dense layers only the general kernel.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"

/* A zero bias for layers without one (read two at a time, with step 0). */
static const int32_t no_bias[2] = {0, 0};

/* ------------------------------------------------------------------------
 * Per-tensor layers whose input is whole words: si4_dsp_dot_4_rows's loop
 * and the four rows' requantization in one assembly loop over all groups of
 * four rows (si4_dsp_fc_4_rows_requantize), with the constants derived once
 * per call. For x = acc + bias and a right shift r >= 1, TFLM's
 * RDBPOT(SRDHM(x, m), r) + offset is
 *   SMMLAR(2x, m, 2^(r-1) + (offset << r) - [x < 0]) >> r:
 * SMMULR(2x, m) is gemmlowp's high multiply while |2x| < 2^31; the rounding
 * shift's ties away from zero and the offset ride in the accumulator, as
 * floor((floor(X / 2^32) + c) / 2^r) = floor((X + c 2^32) / 2^(32+r)); the
 * sign of x stands for the high word's (m >= 0: they differ only where the
 * high word is 0, and both give the offset). |x| < 2^29 (checked per group
 * of rows: the loop stops before a group beyond it, which the C loop below
 * then does) and r <= SI4_DSP_FC_MAX_RIGHT_SHIFT (22) keep every step inside
 * int32. The four results are
 * packed into a word with SSAT and BFI and clamped in byte lanes (SSUB8 sets
 * a lane's GE flag when a >= b, SEL takes that lane from its first operand).
 * About 70 instructions per group of four rows besides the products (the
 * biases read two at a time).
 */

/* What the loop reads and updates (offsets in bytes). */
typedef struct {
    int32_t words;         /* 0: input_size / 4, >= 1 */
    int32_t unused;        /* 4 */
    const uint32_t *input; /* 8: widened, words pairs of SXTAB16 lanes */
    const int8_t *row;     /* 12: row 0 of the next group */
    int32_t row_stride;    /* 16: input_size */
    int8_t *output_end;    /* 20: where the last group's outputs end (the loop stops there or before) */
    const int32_t *bias;   /* 24 */
    int8_t *output;        /* 28 */
    int32_t bias_step;     /* 32: bytes between two rows' biases, 4 or 0 */
    int32_t multiplier;    /* 36 */
    int32_t rounding;      /* 40: 2^(r-1) + (output_offset << r) */
    int32_t right_shift;   /* 44: r */
    uint32_t low;          /* 48: the clamp's bounds in four byte lanes */
    uint32_t high;         /* 52 */
} fused_job;

/* si4_dsp_util.h's SI4_DSP_ROWS_GROUP with the input widened beforehand:
 * the two SXTAB16 pairs of each input word are one LDRD. */
#define FUSED_ROWS_GROUP                                                        \
    "ldrd    r9, r10, [r0], #8         \n\t"                                    \
    SI4_DSP_ROW("ldr     r11, [r1, r2]             \n\t", "r5")                 \
    SI4_DSP_ROW("ldr     r11, [r1], #4             \n\t", "r4")                 \
    SI4_DSP_ROW("ldr     r11, [r3, r2]             \n\t", "r7")                 \
    SI4_DSP_ROW("ldr     r11, [r3], #4             \n\t", "r6")

/* Row k of the group (its x in `acc`): doubled, SMMLAR, shift, SSAT. */
#define FUSED_REQUANTIZE(acc)                                                   \
    "add     r1, " acc ", " acc "      \n\t"                                    \
    "add     r12, r9, r1, asr #31      \n\t"                                    \
    "smmlar  r1, r1, r8, r12           \n\t"                                    \
    "asr     r1, r1, r10               \n\t"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
static void __attribute__((naked, noinline)) fused_4_rows_requantize(fused_job *job)
{
    __asm__(
        "push    {r0, r4-r11, lr}          \n\t" /* the job pointer stays at [sp] */
        "0:                                \n\t"
        "ldr     r12, [sp]                 \n\t"
        "ldr     lr, [r12]                 \n\t" /* words */
        "ldrd    r0, r1, [r12, #8]         \n\t" /* input, row 0 */
        "ldr     r2, [r12, #16]            \n\t" /* row stride */
        "movs    r4, #0                    \n\t"
        "movs    r5, #0                    \n\t"
        "movs    r6, #0                    \n\t"
        "movs    r7, #0                    \n\t"
        "add     r3, r1, r2, lsl #1        \n\t" /* row 2 */
        "tst     lr, #1                    \n\t"
        "add     lr, r0, lr, lsl #3        \n\t" /* end of the widened input */
        "bne     2f                        \n\t" /* an odd count enters at the second group */
        "1:                                \n\t"
        FUSED_ROWS_GROUP
        "2:                                \n\t"
        FUSED_ROWS_GROUP
        "cmp     r0, lr                    \n\t"
        "bne     1b                        \n\t"
        "add     r1, r1, r2                \n\t" /* r1 was row 1: row 4 */
        "add     r1, r1, r2, lsl #1        \n\t"
        "ldr     r12, [sp]                 \n\t"
        "str     r1, [r12, #12]            \n\t"
        "add     r12, r12, #24             \n\t"
        "ldm     r12, {r0, r2, r3, r8, r9, r10, r11, lr} \n\t" /* bias, output, step, m, rounding, r, low, high */
        "ldrd    r1, r12, [r0]             \n\t" /* x = acc + bias, wrapping: two rows' biases */
        "add     r0, r0, r3, lsl #1        \n\t"
        "add     r4, r4, r1                \n\t"
        "add     r5, r5, r12               \n\t"
        "ldrd    r1, r12, [r0]             \n\t"
        "add     r0, r0, r3, lsl #1        \n\t"
        "add     r6, r6, r1                \n\t"
        "add     r7, r7, r12               \n\t"
        "add     r12, r4, #0x20000000      \n\t" /* every |x| < 2^29: x + 2^29 below 2^30 */
        "add     r1, r5, #0x20000000       \n\t"
        "orr     r12, r12, r1              \n\t"
        "add     r1, r6, #0x20000000       \n\t"
        "orr     r12, r12, r1              \n\t"
        "add     r1, r7, #0x20000000       \n\t"
        "orr     r12, r12, r1              \n\t"
        "tst     r12, #0xC0000000          \n\t"
        "bne     9f                        \n\t"
        FUSED_REQUANTIZE("r4")
        "ssat    r4, #8, r1                \n\t"
        FUSED_REQUANTIZE("r5")
        "ssat    r1, #8, r1                \n\t"
        "bfi     r4, r1, #8, #8            \n\t"
        FUSED_REQUANTIZE("r6")
        "ssat    r1, #8, r1                \n\t"
        "bfi     r4, r1, #16, #8           \n\t"
        FUSED_REQUANTIZE("r7")
        "ssat    r1, #8, r1                \n\t"
        "bfi     r4, r1, #24, #8           \n\t"
        "ssub8   r1, r4, r11               \n\t"
        "sel     r4, r4, r11               \n\t" /* max(q, low) */
        "ssub8   r1, r4, lr                \n\t"
        "sel     r4, lr, r4                \n\t" /* min(q, high) */
        "str     r4, [r2], #4              \n\t"
        "ldr     r12, [sp]                 \n\t"
        "strd    r0, r2, [r12, #24]        \n\t"
        "ldr     r1, [r12, #20]            \n\t" /* the output's end */
        "cmp     r2, r1                    \n\t"
        "bne     0b                        \n\t"
        "9:                                \n\t"
        "pop     {r0, r4-r11, pc}          \n\t");
}
#pragma GCC diagnostic pop

/* si4_requantize_s8 for the rows outside the fused loop (one copy of it). */
static int8_t __attribute__((noinline)) requantize_row(int32_t acc,
                                                       int32_t multiplier,
                                                       int32_t shift,
                                                       const si4_fully_connected_params *params)
{
    return si4_dsp_requantize_s8(acc, multiplier, shift, params->output_offset, params->activation_min,
                                 params->activation_max);
}

/* Any layer, one output at a time: the contract's fallback outside the class. */
static void plain_rows(const si4_fully_connected_params *params,
                       const int8_t *input,
                       const int8_t *filter,
                       const int32_t *bias,
                       const int32_t *output_multiplier,
                       const int32_t *output_shift,
                       int8_t *output)
{
    int32_t o;
    for (o = 0; o < params->batches * params->output_size; ++o) {
        const int32_t channel = o % params->output_size;
        const int8_t *x = input + (o / params->output_size) * params->input_size;
        const int8_t *row = filter + channel * params->input_size;
        const int32_t q = params->per_channel ? channel : 0;
        int32_t acc = bias != 0 ? bias[channel] : 0;
        int32_t i;
        for (i = 0; i < params->input_size; ++i) {
            acc += ((int32_t)row[i] + params->filter_offset) * ((int32_t)x[i] + params->input_offset);
        }
        output[o] = requantize_row(acc, output_multiplier[q], output_shift[q], params);
    }
}

/* One input row of a layer of the class; `widened` holds input_size / 2 words. */
static void __attribute__((noinline)) per_tensor_row(const si4_fully_connected_params *params,
                                                     const int8_t *input,
                                                     const int8_t *filter,
                                                     const int32_t *bias,
                                                     const int32_t *output_multiplier,
                                                     const int32_t *output_shift,
                                                     int8_t *output,
                                                     uint32_t *widened)
{
    const int32_t right_shift = -output_shift[0];
    const int32_t words = params->input_size >> 2;
    si4_dsp_output out;
    fused_job job;
    int32_t o;
    si4_dsp_widen_words(input, words, params->input_offset, widened);
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    o = 0;
    if (params->output_size >= 4) {
        job.words = words;
        job.unused = 0;
        job.input = widened;
        job.row = filter;
        job.row_stride = params->input_size;
        job.output_end = output + 4 * (params->output_size >> 2);
        job.bias = bias != 0 ? bias : no_bias;
        job.output = output;
        job.bias_step = bias != 0 ? (int32_t)sizeof *bias : 0;
        job.multiplier = output_multiplier[0];
        job.rounding = (int32_t)(((uint32_t)1 << (right_shift - 1)) + ((uint32_t)out.output_offset << right_shift));
        job.right_shift = right_shift;
        job.low = 0x01010101u * (uint8_t)out.low;
        job.high = 0x01010101u * (uint8_t)out.high;
        fused_4_rows_requantize(&job);
        o = (int32_t)(job.output - output);
    }
    for (; o < params->output_size; ++o) {
        const int32_t acc = si4_dsp_widened_dot(widened, filter + o * params->input_size, words, 0) + (bias != 0 ? bias[o] : 0);
        output[o] = requantize_row(acc, output_multiplier[0], output_shift[0], params);
    }
}

/* The input's params->batches rows, one after the other. */
static void per_tensor_batches(const si4_fully_connected_params *params,
                               const int8_t *input,
                               const int8_t *filter,
                               const int32_t *bias,
                               const int32_t *output_multiplier,
                               const int32_t *output_shift,
                               int8_t *output,
                               uint32_t *widened)
{
    int32_t batch;
    for (batch = 0; batch < params->batches; ++batch) {
        per_tensor_row(params, input + batch * params->input_size, filter, bias, output_multiplier, output_shift,
                       output + batch * params->output_size, widened);
    }
}

/* The widened input on the stack, sized for the layer: a small layer's call
 * (ad01's, kws's) keeps the stack of the 128-value buffer it always had. */
#define SMALL_WIDENED_INPUT 128

static void __attribute__((noinline)) small_input_rows(const si4_fully_connected_params *params,
                                                       const int8_t *input,
                                                       const int8_t *filter,
                                                       const int32_t *bias,
                                                       const int32_t *output_multiplier,
                                                       const int32_t *output_shift,
                                                       int8_t *output)
{
    uint32_t widened[SMALL_WIDENED_INPUT / 2];
    per_tensor_batches(params, input, filter, bias, output_multiplier, output_shift, output, widened);
}

static void __attribute__((noinline)) large_input_rows(const si4_fully_connected_params *params,
                                                       const int8_t *input,
                                                       const int8_t *filter,
                                                       const int32_t *bias,
                                                       const int32_t *output_multiplier,
                                                       const int32_t *output_shift,
                                                       int8_t *output)
{
    uint32_t widened[SI4_DSP_FC_WIDENED_MAX / 2];
    per_tensor_batches(params, input, filter, bias, output_multiplier, output_shift, output, widened);
}

void si4_fully_connected_per_tensor_s8(const si4_fully_connected_params *params,
                                       const int8_t *input,
                                       const int8_t *filter,
                                       const int32_t *bias,
                                       const int32_t *output_multiplier,
                                       const int32_t *output_shift,
                                       int8_t *output)
{
    if (!si4_dsp_fc_per_tensor_fits(params, output_multiplier, output_shift)) {
        plain_rows(params, input, filter, bias, output_multiplier, output_shift, output);
    } else if (params->input_size <= SMALL_WIDENED_INPUT) {
        small_input_rows(params, input, filter, bias, output_multiplier, output_shift, output);
    } else {
        large_input_rows(params, input, filter, bias, output_multiplier, output_shift, output);
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_fully_connected_per_tensor_s8.c"
#endif
