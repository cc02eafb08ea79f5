/*
 * si4_add_s8.c (DSP) - ADD for cores with the DSP extension. Same contract
 * and results, bit for bit, as kernels/src/si4_add_s8.c (TFLM's
 * reference_integer_ops::Add with broadcasting).
 *
 * Each input's rescaling depends only on its int8 value, so a call of 64
 * elements or more builds two 256-entry tables (2 KB of stack, in its own
 * frame) with the per-element steps below and looks the inputs up; the
 * output's rescaling is then one SMMLAR and a shift per element, four
 * elements a word in an assembly loop (the table path, further down).
 * The per-element steps: each input's rescaling is one SMMULR plus the
 * rounding shift: |(v + offset) << left_shift| < 2^29 (left shift 20,
 * |v + offset| <= 255), so doubling it cannot overflow and
 *   floor((a * m + 2^30) / 2^31) = floor((2a * m + 2^31) / 2^32) = SMMULR(2a, m),
 * gemmlowp's high multiply without its saturation (which needs a = INT32_MIN);
 * |high| < 2^29, so RoundingDivideByPOT by r >= 1 is
 * (high + 2^(r-1) + (high < 0 ? -1 : 0)) >> r, ties away from zero. Other
 * input shifts (a left shift, a larger headroom) take the portable
 * arithmetic. Smaller calls, and output scalings outside the table path's
 * bounds, rescale per element and requantize the sum with
 * si4_dsp_scale_apply (si4_multiply_by_quantized_multiplier, bit for bit).
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_requant.h"

/* One input's rescaling constants. */
typedef struct {
    int32_t offset;
    int32_t doubling_shift; /* left_shift + 1 */
    int32_t multiplier;
    int32_t round;          /* 2^(r-1), 0 for r = 0 */
    int32_t sign_mask;      /* -1 for r >= 1 (the tie correction), 0 for r = 0 */
    int32_t right_shift;
} si4_dsp_add_input;

static inline int32_t si4_dsp_add_smmulr(int32_t a, int32_t b)
{
    int32_t result;
    __asm__("smmulr %0, %1, %2" : "=r"(result) : "r"(a), "r"(b));
    return result;
}

static void si4_dsp_add_input_init(int32_t offset, int32_t multiplier, int32_t shift, int32_t left_shift,
                                   si4_dsp_add_input *input)
{
    const int32_t right_shift = -shift;
    input->offset = offset;
    input->doubling_shift = left_shift + 1;
    input->multiplier = multiplier;
    input->right_shift = right_shift;
    input->round = right_shift >= 1 ? (int32_t)((uint32_t)1 << (right_shift - 1)) : 0;
    input->sign_mask = right_shift >= 1 ? -1 : 0;
}

static inline int32_t si4_dsp_add_rescale(int32_t value, const si4_dsp_add_input *input)
{
    const int32_t high = si4_dsp_add_smmulr((int32_t)((uint32_t)(value + input->offset) << input->doubling_shift),
                                            input->multiplier);
    return (high + input->round + ((high >> 31) & input->sign_mask)) >> input->right_shift;
}

/* One input value rescaled (the portable kernel's steps, bit for bit):
 * SMMULR on the fast path, the portable arithmetic otherwise. */
static SI4_DSP_OWN_FRAME int32_t si4_dsp_add_scaled(int32_t value,
                                                    const si4_dsp_add_input *input,
                                                    int32_t fast,
                                                    int32_t left_shift)
{
    if (fast) {
        return si4_dsp_add_rescale(value, input);
    }
    return si4_multiply_by_quantized_multiplier((value + input->offset) * ((int32_t)1 << left_shift),
                                                input->multiplier, -input->right_shift);
}

/* ------------------------------------------------------------------------
 * The table path. Each input's rescaled value depends only on its int8
 * value, so both are looked up in 256-entry tables built per call with the
 * per-element steps above (exact by construction), and only the output's
 * rescaling is left per element:
 *   q = RDBPOT(SRDHM(sum, m), r) + offset, r >= 1.
 * With the entries doubled, S = 2 * sum is the SMMULR operand, high =
 * floor((S m + 2^31) / 2^32); RDBPOT's ties go away from zero, so
 *   q = floor((high + c) / 2^r),  c = 2^(r-1) + (offset << r) - [high < 0],
 * and floor((floor(X / 2^32) + c) / 2^r) = floor((X + c 2^32) / 2^(32+r)):
 *   q = SMMLAR(S, m, c) >> r.
 * [high < 0] may be replaced by [S < 0] (m >= 0): they differ only when
 * -2^31 <= S m < 0, where high = 0 and both give q = offset (r >= 1). So
 * an element is two table loads, an add, the sign into c, SMMLAR, a shift
 * and SSAT. Bounds: entries below 2^28 in magnitude (|S| <= 2^30, |high| <=
 * 2^29 + 1) and r <= 23 (|c| <= 2^30 + 2^22) keep high + c inside int32.
 */

/* Elements at which building the two tables (512 input rescalings) pays for
 * itself; smaller calls rescale each element as it comes. */
#define SI4_DSP_ADD_TABLE_MIN_ELEMENTS 64
#define SI4_DSP_ADD_MAX_RIGHT_SHIFT 23
#define SI4_DSP_ADD_MAX_ENTRY ((uint32_t)1 << 28)

/* What the assembly loop reads (offsets in bytes). */
typedef struct {
    const int32_t *table1; /* 0: input 1's doubled entries, by the value's byte */
    const int32_t *table2; /* 4 */
    int32_t multiplier;    /* 8: the output's */
    int32_t bias;          /* 12: 2^(r-1) + (output_offset << r) */
    int32_t shift_clamps;  /* 16: r, plus 0x100 when the activation clamps within int8
                            * (ASR by a register reads its low byte only) */
    uint32_t low;          /* 20: activation_min in four byte lanes */
    uint32_t high;         /* 24: activation_max in four byte lanes */
    int32_t words;         /* 28: outputs / 4 of this run, >= 1 */
} si4_dsp_add_job;

typedef struct {
    int32_t input1[256];
    int32_t input2[256];
    si4_dsp_add_job job;
    int32_t activation_min;
    int32_t activation_max;
    int32_t right_shift;
} si4_dsp_add_tables;

static inline int32_t si4_dsp_add_smmlar(int32_t a, int32_t b, int32_t accumulate)
{
    int32_t result;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(accumulate));
    return result;
}

/* table[(uint8_t)v] = input v rescaled; returns the largest magnitude. */
static uint32_t si4_dsp_add_table(const si4_dsp_add_input *input, int32_t fast, int32_t left_shift, int32_t *table)
{
    uint32_t largest = 0;
    int32_t value;
    for (value = INT8_MIN; value <= INT8_MAX; ++value) {
        /* The fast step inline: 512 of them per call. */
        const int32_t scaled = fast ? si4_dsp_add_rescale(value, input) : si4_dsp_add_scaled(value, input, 0, left_shift);
        const uint32_t magnitude = scaled < 0 ? 0u - (uint32_t)scaled : (uint32_t)scaled;
        largest = magnitude > largest ? magnitude : largest;
        table[(uint8_t)value] = scaled;
    }
    return largest;
}

/* Fills the tables; 0 when these constants are outside the path's bounds. */
static int32_t si4_dsp_add_tables_init(const si4_add_params *params,
                                       int32_t fast,
                                       const si4_dsp_add_input *in1,
                                       const si4_dsp_add_input *in2,
                                       si4_dsp_add_tables *tables)
{
    const int32_t right_shift = -params->output_shift;
    int32_t i;
    if (right_shift < 1 || right_shift > SI4_DSP_ADD_MAX_RIGHT_SHIFT || params->output_multiplier < 0 ||
        params->output_offset < INT8_MIN || params->output_offset > INT8_MAX) {
        return 0;
    }
    if (si4_dsp_add_table(in1, fast, params->left_shift, tables->input1) > SI4_DSP_ADD_MAX_ENTRY ||
        si4_dsp_add_table(in2, fast, params->left_shift, tables->input2) > SI4_DSP_ADD_MAX_ENTRY) {
        return 0;
    }
    for (i = 0; i < 256; ++i) {
        tables->input1[i] *= 2;
        tables->input2[i] *= 2;
    }
    tables->job.table1 = tables->input1;
    tables->job.table2 = tables->input2;
    tables->job.multiplier = params->output_multiplier;
    tables->right_shift = right_shift;
    tables->job.bias =
        (int32_t)(((uint32_t)1 << (right_shift - 1)) + ((uint32_t)params->output_offset << right_shift));
    tables->job.low = 0x01010101u * (uint8_t)params->activation_min;
    tables->job.high = 0x01010101u * (uint8_t)params->activation_max;
    tables->job.words = 0;
    tables->activation_min = params->activation_min;
    tables->activation_max = params->activation_max;
    /* Otherwise SSAT's int8 range is the clamp. */
    tables->job.shift_clamps =
        right_shift | (params->activation_min != INT8_MIN || params->activation_max != INT8_MAX ? 0x100 : 0);
    return 1;
}

/* One output from two table entries, the steps of the comment above. */
static inline int8_t si4_dsp_add_output(int32_t entry1, int32_t entry2, const si4_dsp_add_tables *tables)
{
    const int32_t doubled_sum = entry1 + entry2;
    const int32_t q = si4_dsp_add_smmlar(doubled_sum, tables->job.multiplier, tables->job.bias + (doubled_sum >> 31)) >>
                      tables->right_shift;
    return (int8_t)si4_dsp_clamp(q, tables->activation_min, tables->activation_max);
}

/* One output of the assembly loop, byte `byte` of the input words r9, r10,
 * into byte `byte` of lr (SSAT to int8, then BFI; byte 0 is SSAT's own). */
#define SI4_DSP_ADD_ELEMENT(rotate, insert)                                                 \
    "uxtb    r11, r9" rotate "           \n\t"                                              \
    "uxtb    r12, r10" rotate "          \n\t"                                              \
    "ldr     r11, [r4, r11, lsl #2]    \n\t"                                                \
    "ldr     r12, [r5, r12, lsl #2]    \n\t"                                                \
    "add     r11, r11, r12             \n\t" /* S */                                        \
    "add     r12, r7, r11, asr #31     \n\t" /* c = bias - [S < 0] */                       \
    "smmlar  r11, r11, r6, r12         \n\t"                                                \
    "asr     r11, r11, r8              \n\t"                                                \
    insert

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* 4 * job->words outputs of contiguous inputs, four per pass (word loads
 * and stores; an input that is the output is read before it is written):
 * 10 instructions an output and 7 a word, 5 more when the activation
 * clamps (in byte lanes: SSUB8 sets a lane's GE flag when a >= b, SEL takes
 * that lane from its first operand). A naked leaf function, as in
 * si4_dsp_util.h, so that it builds at every optimisation level. */
static void __attribute__((naked, noinline)) si4_dsp_add_words(const int8_t *input1,
                                                               const int8_t *input2,
                                                               int8_t *output,
                                                               const si4_dsp_add_job *job)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "ldrd    r9, r10, [r3, #20]        \n\t" /* low, high */
        "ldr     r11, [r3, #28]            \n\t" /* words */
        "ldm     r3, {r4, r5, r6, r7, r8}  \n\t"
        "push    {r9, r10}                 \n\t" /* [sp]: low, high */
        "add     r3, r2, r11, lsl #2       \n\t" /* end of the output */
        "1:                                \n\t"
        "ldr     r9, [r0], #4              \n\t"
        "ldr     r10, [r1], #4             \n\t"
        SI4_DSP_ADD_ELEMENT("", "ssat    lr, #8, r11               \n\t")
        SI4_DSP_ADD_ELEMENT(", ror #8", "ssat    r11, #8, r11              \n\t"
                                        "bfi     lr, r11, #8, #8           \n\t")
        SI4_DSP_ADD_ELEMENT(", ror #16", "ssat    r11, #8, r11              \n\t"
                                         "bfi     lr, r11, #16, #8          \n\t")
        SI4_DSP_ADD_ELEMENT(", ror #24", "ssat    r11, #8, r11              \n\t"
                                         "bfi     lr, r11, #24, #8          \n\t")
        "tst     r8, #0x100                \n\t" /* clamps? */
        "beq     2f                        \n\t"
        "ldrd    r9, r10, [sp]             \n\t"
        "ssub8   r11, lr, r9               \n\t"
        "sel     lr, lr, r9                \n\t" /* max(q, low) */
        "ssub8   r11, lr, r10              \n\t"
        "sel     lr, r10, lr               \n\t" /* min(q, high) */
        "2:                                \n\t"
        "str     lr, [r2], #4              \n\t"
        "cmp     r2, r3                    \n\t"
        "bne     1b                        \n\t"
        "add     sp, sp, #8                \n\t"
        "pop     {r4-r11, pc}              \n\t");
}
#pragma GCC diagnostic pop

/* The whole call through the tables, or 0 when they do not apply. Out of
 * line, so that the tables' 2 KB of stack are taken only on this path. */
static SI4_DSP_OWN_FRAME int32_t si4_dsp_add_by_tables(const si4_add_params *params,
                                                       int32_t fast,
                                                       const si4_dsp_add_input *in1,
                                                       const si4_dsp_add_input *in2,
                                                       const int8_t *input1,
                                                       const int8_t *input2,
                                                       int8_t *output)
{
    si4_dsp_add_tables tables;
    const int32_t step1 = params->input1_stride_3;
    const int32_t step2 = params->input2_stride_3;
    const int32_t count = params->dim_3;
    int32_t i0;
    int32_t i1;
    int32_t i2;
    int32_t i3;
    if (!si4_dsp_add_tables_init(params, fast, in1, in2, &tables)) {
        return 0;
    }
    tables.job.words = count >> 2;
    for (i0 = 0; i0 < params->dim_0; ++i0) {
        for (i1 = 0; i1 < params->dim_1; ++i1) {
            for (i2 = 0; i2 < params->dim_2; ++i2) {
                const int8_t *row1 = input1 + i0 * params->input1_stride_0 + i1 * params->input1_stride_1 +
                                     i2 * params->input1_stride_2;
                const int8_t *row2 = input2 + i0 * params->input2_stride_0 + i1 * params->input2_stride_1 +
                                     i2 * params->input2_stride_2;
                i3 = 0;
                if (step1 == 1 && step2 == 1 && tables.job.words > 0) {
                    si4_dsp_add_words(row1, row2, output, &tables.job);
                    i3 = 4 * tables.job.words;
                }
                for (; i3 < count; ++i3) {
                    output[i3] = si4_dsp_add_output(tables.input1[(uint8_t)row1[i3 * step1]],
                                                    tables.input2[(uint8_t)row2[i3 * step2]], &tables);
                }
                output += count;
            }
        }
    }
    return 1;
}

void si4_add_s8(const si4_add_params *params, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    si4_dsp_add_input in1;
    si4_dsp_add_input in2;
    si4_dsp_scale out_scale;
    si4_dsp_output out;
    int32_t i0;
    int32_t i1;
    int32_t i2;
    int32_t i3;
    /* The SMMULR rescaling needs a right shift (or none) of each input and 255 << left_shift < 2^29. */
    const int32_t fast = params->input1_shift <= 0 && params->input2_shift <= 0 && params->input1_shift >= -31 &&
                         params->input2_shift >= -31 && params->left_shift >= 0 && params->left_shift <= 20;
    si4_dsp_add_input_init(params->input1_offset, params->input1_multiplier, params->input1_shift, params->left_shift,
                           &in1);
    si4_dsp_add_input_init(params->input2_offset, params->input2_multiplier, params->input2_shift, params->left_shift,
                           &in2);
    if (params->dim_0 * params->dim_1 * params->dim_2 * params->dim_3 >= SI4_DSP_ADD_TABLE_MIN_ELEMENTS &&
        si4_dsp_add_by_tables(params, fast, &in1, &in2, input1, input2, output)) {
        return;
    }
    si4_dsp_scale_init(params->output_multiplier, params->output_shift, &out_scale);
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    for (i0 = 0; i0 < params->dim_0; ++i0) {
        for (i1 = 0; i1 < params->dim_1; ++i1) {
            for (i2 = 0; i2 < params->dim_2; ++i2) {
                const int8_t *row1 = input1 + i0 * params->input1_stride_0 + i1 * params->input1_stride_1 +
                                     i2 * params->input1_stride_2;
                const int8_t *row2 = input2 + i0 * params->input2_stride_0 + i1 * params->input2_stride_1 +
                                     i2 * params->input2_stride_2;
                for (i3 = 0; i3 < params->dim_3; ++i3) {
                    const int32_t sum = si4_dsp_add_scaled(row1[i3 * params->input1_stride_3], &in1, fast, params->left_shift) +
                                        si4_dsp_add_scaled(row2[i3 * params->input2_stride_3], &in2, fast, params->left_shift);
                    *output++ = si4_dsp_output_s8(si4_dsp_scale_apply(sum, &out_scale), &out);
                }
            }
        }
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_add_s8.c"
#endif
