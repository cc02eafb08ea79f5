/*
 * si4_fully_connected_s8.c (DSP) - FULLY_CONNECTED, for cores with
 * the DSP extension. Same contract and results, bit for bit, as
 * kernels/src/si4_fully_connected_s8.c (TFLM's reference FullyConnected /
 * FullyConnectedPerChannel arithmetic).
 *
 * Four output rows at a time: each input word is loaded and widened once
 * (SXTAB16 adds the input offset for free) and multiplied into the four
 * rows with SMLAD, 23 instructions per 16 MACs (an assembly loop,
 * si4_dsp_dot_4_rows); the last one to three rows two at a time in C. The
 * rows are requantized by an assembly loop that derives each row's constants
 * on the way (si4_dsp_requantize_rows, about 35 instructions a row).
 * Per-tensor layers whose input is whole words (the TFLite converter's
 * usual output) do the products and the requantization of every group of
 * four rows in one assembly loop instead, about 19 instructions a row
 * besides the products (fused_4_rows_requantize, below); inputs of up to
 * FUSED_MAX_INPUT values are widened once per call onto the stack, so that
 * each group of four inputs is one LDRD: 21 instructions per 16 MACs
 * (the estimated cycles barely move: LDRD takes three). A
 * non-zero filter offset (never produced by the TFLite converter: weights
 * are symmetric) takes a plain loop. The input's params->batches rows are
 * done one after the other.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"

/* sum_i (in[i] + input_offset) * row_k[i] for rows 0 and 1. */
static void dot_2_rows(const int8_t *input,
                       const int8_t *row_0,
                       const int8_t *row_1,
                       int32_t size,
                       int32_t input_offset,
                       int32_t *acc_0_out,
                       int32_t *acc_1_out)
{
    const uint32_t offset_pair = si4_dsp_offset_pair(input_offset);
    int32_t acc_0 = 0;
    int32_t acc_1 = 0;
    int32_t k;
    for (k = size >> 2; k > 0; --k) {
        const uint32_t x = si4_dsp_load_s8x4(input);
        const uint32_t w_0 = si4_dsp_load_s8x4(row_0);
        const uint32_t w_1 = si4_dsp_load_s8x4(row_1);
        const int32_t x_even = (int32_t)__sxtab16(offset_pair, x);
        const int32_t x_odd = si4_dsp_sxtab16_ror8(offset_pair, x);
        acc_0 = __smlad(x_even, (int32_t)__sxtb16(w_0), acc_0);
        acc_0 = __smlad(x_odd, si4_dsp_sxtb16_ror8(w_0), acc_0);
        acc_1 = __smlad(x_even, (int32_t)__sxtb16(w_1), acc_1);
        acc_1 = __smlad(x_odd, si4_dsp_sxtb16_ror8(w_1), acc_1);
        input += 4;
        row_0 += 4;
        row_1 += 4;
    }
    for (k = size & 3; k > 0; --k) {
        const int32_t x = (int32_t)*input++ + input_offset;
        acc_0 += x * (int32_t)*row_0++;
        acc_1 += x * (int32_t)*row_1++;
    }
    *acc_0_out = acc_0;
    *acc_1_out = acc_1;
}

/* A zero bias for layers without one (read with step 0). */
static const int32_t no_bias = 0;

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
 * of rows: the loop stops before a group beyond it, which the general path
 * then does) and r <= 22 keep every step inside int32. The four results are
 * packed into a word with SSAT and BFI and clamped in byte lanes (SSUB8 sets
 * a lane's GE flag when a >= b, SEL takes that lane from its first operand).
 * About 75 instructions per group of four rows besides the products.
 */
#define FUSED_MAX_RIGHT_SHIFT 22
/* The input is widened once per call onto the stack (2 bytes an input):
 * inputs up to this size take the fused loop. */
#ifndef FUSED_MAX_INPUT
#define FUSED_MAX_INPUT 128
#endif

/* What the loop reads and updates (offsets in bytes). */
typedef struct {
    int32_t words;         /* 0: input_size / 4, >= 1 */
    int32_t unused;        /* 4 */
    const uint32_t *input; /* 8: widened, words pairs of SXTAB16 lanes */
    const int8_t *row;     /* 12: row 0 of the next group */
    int32_t row_stride;    /* 16: input_size */
    int32_t groups;        /* 20: groups of four rows left (out: 0, or the first not done) */
    const int32_t *bias;   /* 24 */
    int8_t *output;        /* 28 */
    int32_t bias_step;     /* 32: bytes, 4 or 0 */
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
        "ldr     r1, [r0]                  \n\t" /* x = acc + bias, wrapping */
        "add     r0, r0, r3                \n\t"
        "add     r4, r4, r1                \n\t"
        "ldr     r1, [r0]                  \n\t"
        "add     r0, r0, r3                \n\t"
        "add     r5, r5, r1                \n\t"
        "ldr     r1, [r0]                  \n\t"
        "add     r0, r0, r3                \n\t"
        "add     r6, r6, r1                \n\t"
        "ldr     r1, [r0]                  \n\t"
        "add     r0, r0, r3                \n\t"
        "add     r7, r7, r1                \n\t"
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
        "ldr     r1, [r12, #20]            \n\t"
        "subs    r1, r1, #1                \n\t"
        "str     r1, [r12, #20]            \n\t"
        "bne     0b                        \n\t"
        "9:                                \n\t"
        "pop     {r0, r4-r11, pc}          \n\t");
}
#pragma GCC diagnostic pop

/* Runs the fused loop when it applies; returns the rows it did (a multiple of 4). */
static int32_t fused_rows(const si4_fully_connected_params *params,
                          const int8_t *input,
                          const int8_t *filter,
                          const int32_t *bias,
                          const int32_t *output_multiplier,
                          const int32_t *output_shift,
                          const si4_dsp_output *out,
                          int8_t *output)
{
    const int32_t right_shift = -output_shift[0];
    uint32_t widened[FUSED_MAX_INPUT / 2];
    fused_job job;
    if (params->input_size > FUSED_MAX_INPUT || params->per_channel || params->filter_offset != 0 || (params->input_size & 3) != 0 ||
        params->input_size < 4 || params->output_size < 4 || right_shift < 1 ||
        right_shift > FUSED_MAX_RIGHT_SHIFT || output_multiplier[0] < 0 || out->output_offset < INT8_MIN ||
        out->output_offset > INT8_MAX) {
        return 0;
    }
    {
        const uint32_t offset_pair = si4_dsp_offset_pair(params->input_offset);
        int32_t k;
        for (k = 0; k < params->input_size >> 2; ++k) {
            const uint32_t word = si4_dsp_load_s8x4(input + 4 * k);
            widened[2 * k] = __sxtab16(offset_pair, word);
            widened[2 * k + 1] = (uint32_t)si4_dsp_sxtab16_ror8(offset_pair, word);
        }
    }
    job.words = params->input_size >> 2;
    job.unused = 0;
    job.input = widened;
    job.row = filter;
    job.row_stride = params->input_size;
    job.groups = params->output_size >> 2;
    job.bias = bias != 0 ? bias : &no_bias;
    job.output = output;
    job.bias_step = bias != 0 ? (int32_t)sizeof *bias : 0;
    job.multiplier = output_multiplier[0];
    job.rounding = (int32_t)(((uint32_t)1 << (right_shift - 1)) + ((uint32_t)out->output_offset << right_shift));
    job.right_shift = right_shift;
    job.low = 0x01010101u * (uint8_t)out->low;
    job.high = 0x01010101u * (uint8_t)out->high;
    fused_4_rows_requantize(&job);
    return 4 * ((params->output_size >> 2) - job.groups);
}

static void fully_connected_row(const si4_fully_connected_params *params,
                                const int8_t *input,
                                const int8_t *filter,
                                const int32_t *bias,
                                const int32_t *output_multiplier,
                                const int32_t *output_shift,
                                int8_t *output)
{
    const int32_t input_size = params->input_size;
    const int32_t output_size = params->output_size;
    const int32_t whole = input_size & ~3;
    si4_dsp_output out;
    si4_dsp_rows_quant quant;
    int32_t o = 0;
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    o = fused_rows(params, input, filter, bias, output_multiplier, output_shift, &out, output);
    quant.bias = bias != 0 ? bias + o : &no_bias;
    quant.multiplier = output_multiplier;
    quant.shift = output_shift;
    quant.output = output + o;
    quant.bias_step = bias != 0 ? (int32_t)sizeof *bias : 0;
    quant.quant_step = params->per_channel ? (int32_t)sizeof *output_multiplier : 0;
    quant.output_offset = out.output_offset;
    quant.low = out.low;
    quant.high = out.high;
    if (params->filter_offset == 0) {
        si4_dsp_rows_job job;
        job.words = input_size >> 2;
        job.offset_pair = si4_dsp_offset_pair(params->input_offset);
        for (; o + 4 <= output_size; o += 4) {
            const int8_t *row_0 = filter + o * input_size;
            si4_dsp_dot_4_rows(input, row_0, input_size, &job);
            if (whole != input_size) {
                int32_t r;
                for (r = 0; r < 4; ++r) {
                    const int8_t *row_filter = row_0 + r * input_size;
                    int32_t i;
                    for (i = whole; i < input_size; ++i) {
                        job.acc[r] += ((int32_t)input[i] + params->input_offset) * (int32_t)row_filter[i];
                    }
                }
            }
            si4_dsp_requantize_rows(job.acc, 4, &quant);
        }
    }
    for (; o < output_size; o += 2) {
        /* An odd last row is paired with itself and written once. */
        const int32_t o_1 = o + 1 < output_size ? o + 1 : o;
        int32_t acc[2];
        int32_t r;
        if (params->filter_offset == 0) {
            dot_2_rows(input, filter + o * input_size, filter + o_1 * input_size, input_size, params->input_offset,
                       &acc[0], &acc[1]);
        } else {
            for (r = 0; r < 2; ++r) {
                const int8_t *row = filter + (r == 0 ? o : o_1) * input_size;
                int32_t i;
                acc[r] = 0;
                for (i = 0; i < input_size; ++i) {
                    acc[r] += ((int32_t)row[i] + params->filter_offset) * ((int32_t)input[i] + params->input_offset);
                }
            }
        }
        si4_dsp_requantize_rows(acc, o_1 != o ? 2 : 1, &quant);
    }
}

void si4_fully_connected_s8(const si4_fully_connected_params *params,
                            const int8_t *input,
                            const int8_t *filter,
                            const int32_t *bias,
                            const int32_t *output_multiplier,
                            const int32_t *output_shift,
                            int8_t *output)
{
    int32_t batch;
    for (batch = 0; batch < params->batches; ++batch) {
        fully_connected_row(params, input + batch * params->input_size, filter, bias, output_multiplier, output_shift,
                            output + batch * params->output_size);
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_fully_connected_s8.c"
#endif
