/*
 * si4_depthwise_conv2d_s8.c (DSP) - DEPTHWISE_CONV_2D for cores with the DSP
 * extension. Same contract and results, bit for bit, as
 * kernels/src/si4_depthwise_conv2d_s8.c (TFLM's reference
 * DepthwiseConvPerChannel arithmetic).
 *
 * Depth multiplier 1 (every MLPerf Tiny depthwise layer): channels are
 * independent, so four neighbouring channels share one input word and one
 * filter word per tap. The loop runs channel group (four channels) outside,
 * output positions inside: the group's filter taps are widened to int16
 * lanes once (si4_dsp_dw_group), its bias and requantization constants are
 * derived once, and every position then costs, per tap, one input load, two
 * SXTAB16 (the input offset comes free) and four 16x16 MACs on the lanes
 * (SMLABB / SMLATT: the lanes belong to different channels, so SMLAD's sum
 * of the two would mix them). 3x3 windows inside the input are unrolled.
 * The four results are requantized, packed into one word and clamped with
 * SSUB8/SEL, one store.
 *
 * Channels after the last whole group, other depth multipliers, and kernels
 * of more than SI4_DSP_DW_MAX_TAPS taps take the portable loop.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_kernel_util.h"

#include <stddef.h>

/* The portable kernel, under another name: the cases this file does not
 * speed up, and the channels after the last group of four. */
#define si4_depthwise_conv2d_s8 si4_depthwise_conv2d_s8_portable
static void si4_depthwise_conv2d_s8_portable(const si4_depthwise_conv2d_params *params,
                                             const int8_t *input,
                                             const int8_t *filter,
                                             const int32_t *bias,
                                             const int32_t *output_multiplier,
                                             const int32_t *output_shift,
                                             int8_t *output);
#include "../src/si4_depthwise_conv2d_s8.c"
#undef si4_depthwise_conv2d_s8

/* ------------------------------------------------------------------------
 * Requantization of one depthwise output, the double rounding kept exact.
 *
 * When the accumulator is known to stay below 2^(30 - left_shift) in
 * magnitude (bound = |bias| + 255 * sum |w|, computed once per channel),
 * a = acc << left_shift satisfies |2a| < 2^31, so
 *   floor((a * m + 2^30) / 2^31) = floor((2a * m + 2^31) / 2^32) = SMMULR(2a, m)
 * (the high multiply of si4_dsp_scale_apply, without its saturation, which
 * needs a = INT32_MIN), and |high| < 2^30, so RoundingDivideByPOT by
 * r >= 1 is (high + 2^(r-1) + (high < 0 ? -1 : 0)) >> r (ties away from
 * zero) without overflow. Channels outside that (r = 0 or a large bound)
 * use si4_dsp_scale_apply.
 */
typedef struct {
    int32_t bias;
    int32_t fast;           /* the SMMULR path applies */
    int32_t doubling_shift; /* left_shift + 1 */
    int32_t multiplier;
    int32_t round;          /* 2^(right_shift - 1) */
    int32_t right_shift;
    si4_dsp_scale scale;    /* the general path */
} si4_dsp_dw_channel;

static inline int32_t si4_dsp_smmulr(int32_t a, int32_t b)
{
    int32_t result;
    __asm__("smmulr %0, %1, %2" : "=r"(result) : "r"(a), "r"(b));
    return result;
}

static void si4_dsp_dw_channel_init(const si4_depthwise_conv2d_params *params,
                                    const int8_t *filter,
                                    const int32_t *bias,
                                    const int32_t *output_multiplier,
                                    const int32_t *output_shift,
                                    int32_t channel,
                                    si4_dsp_dw_channel *constants)
{
    const int32_t taps = params->kernel_height * params->kernel_width;
    const int32_t quant_index = params->per_channel ? channel : 0;
    const int32_t multiplier = output_multiplier[quant_index];
    const int32_t shift = output_shift[quant_index];
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    int64_t bound;
    int32_t tap;
    constants->bias = bias != 0 ? bias[channel] : 0;
    bound = constants->bias < 0 ? -(int64_t)constants->bias : (int64_t)constants->bias;
    for (tap = 0; tap < taps; ++tap) {
        const int32_t w = filter[tap * params->output_channels + channel];
        bound += 255 * (int64_t)(w < 0 ? -w : w);
    }
    constants->fast = right_shift >= 1 && right_shift <= 31 && left_shift < 30 &&
                      bound < ((int64_t)1 << (30 - left_shift));
    constants->doubling_shift = left_shift + 1;
    constants->multiplier = multiplier;
    constants->right_shift = right_shift;
    constants->round = right_shift >= 1 ? (int32_t)((uint32_t)1 << (right_shift - 1)) : 0;
    si4_dsp_scale_init(multiplier, shift, &constants->scale);
}

/* The scaled accumulator plus the output zero point, saturated to int8 (the
 * clamp to the activation range follows on the packed word). */
static inline int32_t si4_dsp_dw_requantize(int32_t acc, const si4_dsp_dw_channel *constants, int32_t output_offset)
{
    int32_t scaled;
    if (constants->fast) {
        const int32_t high = si4_dsp_smmulr((int32_t)((uint32_t)acc << constants->doubling_shift), constants->multiplier);
        scaled = (high + constants->round + (high >> 31)) >> constants->right_shift;
    } else {
        scaled = si4_dsp_scale_apply(acc, &constants->scale);
    }
    return __ssat((int32_t)((uint32_t)scaled + (uint32_t)output_offset), 8);
}

/* Four int8 lanes (each already in [-128, 127]) as one word. */
static inline uint32_t si4_dsp_pack_s8x4(int32_t v0, int32_t v1, int32_t v2, int32_t v3)
{
    const uint32_t low = ((uint32_t)v0 & 0xFFu) | (((uint32_t)v1 & 0xFFu) << 8);
    const uint32_t high = ((uint32_t)v2 & 0xFFu) | (((uint32_t)v3 & 0xFFu) << 8);
    return low | (high << 16);
}

/* max / min of four int8 lanes: SSUB8 sets the GE flags per lane, SEL picks. */
static inline uint32_t si4_dsp_max_s8x4(uint32_t a, uint32_t b)
{
    (void)__ssub8((int8x4_t)a, (int8x4_t)b);
    return __sel(a, b);
}

static inline uint32_t si4_dsp_min_s8x4(uint32_t a, uint32_t b)
{
    (void)__ssub8((int8x4_t)a, (int8x4_t)b);
    return __sel(b, a);
}

/* Taps of the widened filter table: 5x5 at most (200 bytes of stack). */
#define SI4_DSP_DW_MAX_TAPS 25

/* One channel group: the widened taps (per tap, lanes of channels 0 and 2,
 * then of channels 1 and 3: SXTB16 of the filter word and of it rotated by
 * 8, the order SXTAB16 gives the input word) and the four channels'
 * constants. */
typedef struct {
    uint32_t taps[2 * SI4_DSP_DW_MAX_TAPS];
    si4_dsp_dw_channel channel[4];
} si4_dsp_dw_group;

/* Four channels' accumulators over the window rows ky_start..ky_end - 1,
 * columns kx_start..kx_end - 1; `source` is the input word of the window's
 * (0, 0) tap (which may lie in the padding: only valid taps are read). */
typedef struct {
    int32_t acc0;
    int32_t acc1;
    int32_t acc2;
    int32_t acc3;
} si4_dsp_dw_acc;

static inline void si4_dsp_dw_window(const si4_depthwise_conv2d_params *params,
                                     const si4_dsp_dw_group *group,
                                     const int8_t *input,
                                     int32_t in_y_origin,
                                     int32_t in_x_origin,
                                     int32_t ky_start,
                                     int32_t ky_end,
                                     int32_t kx_start,
                                     int32_t kx_end,
                                     uint32_t offset_pair,
                                     si4_dsp_dw_acc *acc)
{
    const int32_t channels = params->input_channels;
    int32_t a0 = acc->acc0;
    int32_t a1 = acc->acc1;
    int32_t a2 = acc->acc2;
    int32_t a3 = acc->acc3;
    int32_t ky;
    for (ky = ky_start; ky < ky_end; ++ky) {
        const int32_t in_y = in_y_origin + params->dilation_height * ky;
        const uint32_t *taps = group->taps + 2 * ky * params->kernel_width;
        int32_t kx;
        for (kx = kx_start; kx < kx_end; ++kx) {
            const int32_t in_x = in_x_origin + params->dilation_width * kx;
            const uint32_t word = si4_dsp_load_s8x4(input + (in_y * params->input_width + in_x) * channels);
            const int32_t x02 = __sxtab16((int16x2_t)offset_pair, (int8x4_t)word);
            const int32_t x13 = si4_dsp_sxtab16_ror8(offset_pair, word);
            const int32_t w02 = (int32_t)taps[2 * kx];
            const int32_t w13 = (int32_t)taps[2 * kx + 1];
            a0 = __smlabb(x02, w02, a0);
            a2 = __smlatt(x02, w02, a2);
            a1 = __smlabb(x13, w13, a1);
            a3 = __smlatt(x13, w13, a3);
        }
    }
    acc->acc0 = a0;
    acc->acc1 = a1;
    acc->acc2 = a2;
    acc->acc3 = a3;
}

/* One tap of the unrolled 3x3 window: input word at `source`, widened taps
 * at taps[2 * t], taps[2 * t + 1]. */
#define SI4_DSP_DW_TAP(source, t)                                                                   \
    do {                                                                                            \
        const uint32_t word_ = si4_dsp_load_s8x4(source);                                           \
        const int32_t x02_ = __sxtab16((int16x2_t)offset_pair, (int8x4_t)word_);                    \
        const int32_t x13_ = si4_dsp_sxtab16_ror8(offset_pair, word_);                              \
        const int32_t w02_ = (int32_t)taps[2 * (t)];                                                \
        const int32_t w13_ = (int32_t)taps[2 * (t) + 1];                                            \
        a0 = __smlabb(x02_, w02_, a0);                                                              \
        a2 = __smlatt(x02_, w02_, a2);                                                              \
        a1 = __smlabb(x13_, w13_, a1);                                                              \
        a3 = __smlatt(x13_, w13_, a3);                                                              \
    } while (0)

/* A whole 3x3 window, dilation 1: `source` is the input word of tap (0, 0),
 * `column` the distance between horizontal neighbours, `row` between
 * vertical ones. */
static inline void si4_dsp_dw_window_3x3(const uint32_t *taps,
                                         const int8_t *source,
                                         int32_t column,
                                         int32_t row,
                                         uint32_t offset_pair,
                                         si4_dsp_dw_acc *acc)
{
    int32_t a0 = acc->acc0;
    int32_t a1 = acc->acc1;
    int32_t a2 = acc->acc2;
    int32_t a3 = acc->acc3;
    const int8_t *row_1 = source + row;
    const int8_t *row_2 = row_1 + row;
    SI4_DSP_DW_TAP(source, 0);
    SI4_DSP_DW_TAP(source + column, 1);
    SI4_DSP_DW_TAP(source + 2 * column, 2);
    SI4_DSP_DW_TAP(row_1, 3);
    SI4_DSP_DW_TAP(row_1 + column, 4);
    SI4_DSP_DW_TAP(row_1 + 2 * column, 5);
    SI4_DSP_DW_TAP(row_2, 6);
    SI4_DSP_DW_TAP(row_2 + column, 7);
    SI4_DSP_DW_TAP(row_2 + 2 * column, 8);
    acc->acc0 = a0;
    acc->acc1 = a1;
    acc->acc2 = a2;
    acc->acc3 = a3;
}

/* ------------------------------------------------------------------------
 * The 3x3 run: the hot path, in assembly.
 *
 * For a group whose four channels all satisfy si4_dsp_dw_run_fits, the
 * accumulator is kept pre-scaled by 2^s (s = left_shift + 1): the widened
 * taps and the bias are multiplied by 2^s offline (|w| * 2^s <= 2^14 fits a
 * lane, the bound keeps the sum in int32), so the high multiply is one
 * SMMLAR with no shift before it, and
 *   scaled + output_offset = (SMMLAR(acc', m, round') + (acc' < 0 ? -1 : 0)) >> r
 * with round' = 2^(r-1) + output_offset * 2^r: the sign of the high product
 * equals the accumulator's when m >= 0, except where the product is 0 and
 * the correction changes nothing (2^(r-1) - 1 < 2^r); adding a multiple of
 * 2^r before the arithmetic shift adds it after. SSAT then clamps to int8,
 * BFI packs the four channels, SSUB8/SEL clamp to the activation range.
 *
 * A window that reaches into the padding (by one row or column) reads a
 * whole 3x3 block moved inside the input instead, with a taps table moved
 * the other way and zeros where the real window has no tap: the same run,
 * the same sums.
 */
#define SI4_DSP_DW_SHIFTS 3 /* window moves of -1, 0, +1 rows or columns */
#define SI4_DSP_DW_TABLES (SI4_DSP_DW_SHIFTS * SI4_DSP_DW_SHIFTS)

typedef struct {
    int32_t bias[4];       /* scaled by 2^s */
    const uint32_t *taps;  /* 18 words: per tap, lanes of channels 0 and 2, then 1 and 3 */
    int32_t column;        /* bytes between horizontal input neighbours */
    int32_t row;           /* bytes between vertical ones */
    uint32_t offset_pair;  /* the input offset in both lanes */
    int32_t requant[4][3]; /* per channel: multiplier, round', right shift */
    uint32_t low_word;     /* the clamp, in four lanes */
    uint32_t high_word;
    int8_t *output;        /* where the next four outputs go; advanced */
    int32_t output_step;
    int32_t step;          /* input bytes between consecutive positions of a run */
    int32_t count;         /* positions left in the run, >= 1; counted down */
    const int32_t *next;   /* the next run: source offset, output offset, count, taps */
    const int32_t *end;    /* after the last run */
    const int8_t *input;   /* the group's first input channel: run offsets count from here */
    int8_t *output_base;   /* likewise for the outputs */
} si4_dsp_dw_run_job;

/* Words per listed run, and runs listed per call (a chunk of rows). */
#define SI4_DSP_DW_RUN_WORDS 4
#define SI4_DSP_DW_MAX_RUNS 64

/* The assembly reads the job at fixed offsets. */
typedef char si4_dsp_dw_job_layout_check[(offsetof(si4_dsp_dw_run_job, taps) == 16 &&
                                          offsetof(si4_dsp_dw_run_job, requant) == 32 &&
                                          offsetof(si4_dsp_dw_run_job, low_word) == 80 &&
                                          offsetof(si4_dsp_dw_run_job, output) == 88 &&
                                          offsetof(si4_dsp_dw_run_job, count) == 100 &&
                                          offsetof(si4_dsp_dw_run_job, next) == 104 &&
                                          offsetof(si4_dsp_dw_run_job, input) == 112) ? 1 : -1];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* One tap: input word at `address`, widened taps at [r1 + offset]. */
#define SI4_DSP_DW_RUN_TAP(address, offset)                                     \
    "ldr     lr, " address "           \n\t"                                    \
    "ldrd    r10, r11, [r1, #" offset "] \n\t"                                  \
    "sxtab16 r9, r8, lr                \n\t" /* channels 0 and 2, plus offset */ \
    "sxtab16 lr, r8, lr, ror #8        \n\t" /* channels 1 and 3 */             \
    "smlabb  r4, r9, r10, r4           \n\t"                                    \
    "smlatt  r6, r9, r10, r6           \n\t"                                    \
    "smlabb  r5, lr, r11, r5           \n\t"                                    \
    "smlatt  r7, lr, r11, r7           \n\t"

/* One channel's requantization, accumulator in `acc`, constants at [lr]. */
#define SI4_DSP_DW_RUN_REQUANT(acc)                                             \
    "ldm     lr!, {r9, r10, r11}       \n\t" /* multiplier, round', shift */    \
    "smmlar  r12, " acc ", r9, r10     \n\t"                                    \
    "add     r12, r12, " acc ", asr #31 \n\t"                                   \
    "asr     r12, r12, r11             \n\t"                                    \
    "ssat    " acc ", #8, r12          \n\t"

/* The runs job->next .. job->end of four channels (a naked leaf function,
 * as the kernels of si4_dsp_util.h): each run is `count` positions, the
 * first window's (0, 0) tap at job->input + source offset, its outputs from
 * job->output_base + output offset on. Per position: 9 x 8 instructions for
 * 36 MACs, 20 for four requantizations, 3 to pack, 5 to clamp, 13 to load
 * the biases, store and step (113); 17 per run. */
static void __attribute__((naked, noinline)) si4_dsp_dw_3x3_runs(si4_dsp_dw_run_job *unused, si4_dsp_dw_run_job *job)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "add     r2, r1, #32               \n\t"
        "push    {r1, r2}                  \n\t" /* [sp]: the job, [sp, #4]: its requant */
        "0:                                \n\t" /* the next run */
        "ldr     r12, [sp]                 \n\t"
        "ldrd    r2, r3, [r12, #104]       \n\t" /* next, end */
        "cmp     r2, r3                    \n\t"
        "beq     9f                        \n\t"
        "ldm     r2!, {r0, r4, r5, r6}     \n\t" /* source offset, output offset, count, taps */
        "str     r2, [r12, #104]           \n\t"
        "ldrd    r2, r3, [r12, #112]       \n\t" /* input, output base */
        "add     r0, r0, r2                \n\t"
        "add     r4, r4, r3                \n\t"
        "str     r6, [r12, #16]            \n\t"
        "str     r4, [r12, #88]            \n\t"
        "str     r5, [r12, #100]           \n\t"
        "add     r12, r12, #16             \n\t"
        "ldm     r12, {r1, r2, r3, r8}     \n\t" /* taps, column, row, offset pair: kept for the run */
        "1:                                \n\t"
        "ldr     r12, [sp]                 \n\t"
        "ldm     r12, {r4, r5, r6, r7}     \n\t" /* the biases */
        SI4_DSP_DW_RUN_TAP("[r0]", "0")
        SI4_DSP_DW_RUN_TAP("[r0, r2]", "8")
        SI4_DSP_DW_RUN_TAP("[r0, r2, lsl #1]", "16")
        "add     r12, r0, r3               \n\t"
        SI4_DSP_DW_RUN_TAP("[r12]", "24")
        SI4_DSP_DW_RUN_TAP("[r12, r2]", "32")
        SI4_DSP_DW_RUN_TAP("[r12, r2, lsl #1]", "40")
        "add     r12, r12, r3              \n\t"
        SI4_DSP_DW_RUN_TAP("[r12]", "48")
        SI4_DSP_DW_RUN_TAP("[r12, r2]", "56")
        SI4_DSP_DW_RUN_TAP("[r12, r2, lsl #1]", "64")
        "ldr     lr, [sp, #4]              \n\t"
        SI4_DSP_DW_RUN_REQUANT("r4")
        SI4_DSP_DW_RUN_REQUANT("r5")
        SI4_DSP_DW_RUN_REQUANT("r6")
        SI4_DSP_DW_RUN_REQUANT("r7")
        "bfi     r4, r5, #8, #8            \n\t"
        "bfi     r4, r6, #16, #8           \n\t"
        "bfi     r4, r7, #24, #8           \n\t"
        "ldm     lr!, {r9, r10}            \n\t" /* low, high words */
        "ssub8   r12, r4, r9               \n\t"
        "sel     r4, r4, r9                \n\t" /* max with low */
        "ssub8   r12, r4, r10              \n\t"
        "sel     r4, r10, r4               \n\t" /* min with high */
        "ldm     lr, {r9, r10, r11, r12}   \n\t" /* output, output step, step, count */
        "str     r4, [r9]                  \n\t"
        "add     r9, r9, r10               \n\t"
        "add     r0, r0, r11               \n\t"
        "str     r9, [lr]                  \n\t"
        "subs    r12, r12, #1              \n\t"
        "str     r12, [lr, #12]            \n\t"
        "bne     1b                        \n\t"
        "b       0b                        \n\t"
        "9:                                \n\t"
        "add     sp, sp, #8                \n\t"
        "pop     {r4-r11, pc}              \n\t");
}

#pragma GCC diagnostic pop

/* Whether channel `channel` can take the run: m >= 0, right shift 1..22
 * (round' stays in int32), left shift <= 6 (2^s * |w| fits a lane), and
 * the accumulator times 2^s stays in int32. */
static int32_t si4_dsp_dw_run_fits(const si4_depthwise_conv2d_params *params,
                                   const int8_t *filter,
                                   const int32_t *bias,
                                   const int32_t *output_multiplier,
                                   const int32_t *output_shift,
                                   int32_t channel)
{
    const int32_t quant_index = params->per_channel ? channel : 0;
    const int32_t shift = output_shift[quant_index];
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    const int8_t *w = filter + channel;
    const int32_t step = params->output_channels;
    int32_t weight_sum = 0; /* sum |w| <= 9 * 128 */
    int64_t bound;
    int32_t tap;
    for (tap = 0; tap < 9; ++tap, w += step) {
        weight_sum += *w < 0 ? -*w : *w;
    }
    bound = 255 * (int64_t)weight_sum;
    if (bias != 0) {
        bound += bias[channel] < 0 ? -(int64_t)bias[channel] : (int64_t)bias[channel];
    }
    return output_multiplier[quant_index] >= 0 && right_shift >= 1 && right_shift <= 22 && left_shift <= 6 &&
           bound < ((int64_t)1 << (30 - left_shift));
}

/* The run's constants of channels first_channel .. + 3, and its nine taps
 * tables: table[(dy + 1) * 3 + dx + 1] serves windows moved by dy rows and
 * dx columns (tap (r, c) of the table is the filter's (r + dy, c + dx), 0
 * outside the filter). */
static void si4_dsp_dw_run_init(const si4_depthwise_conv2d_params *params,
                                const int8_t *filter,
                                const int32_t *bias,
                                const int32_t *output_multiplier,
                                const int32_t *output_shift,
                                int32_t first_channel,
                                const si4_dsp_output *out,
                                si4_dsp_dw_run_job *job,
                                uint32_t tables[SI4_DSP_DW_TABLES][18])
{
    int32_t scale_bits[4];
    int32_t c;
    int32_t table;
    int32_t tap;
    for (c = 0; c < 4; ++c) {
        const int32_t channel = first_channel + c;
        const int32_t quant_index = params->per_channel ? channel : 0;
        const int32_t shift = output_shift[quant_index];
        const int32_t right_shift = shift > 0 ? 0 : -shift;
        scale_bits[c] = (shift > 0 ? shift : 0) + 1;
        job->bias[c] = (int32_t)((uint32_t)(bias != 0 ? bias[channel] : 0) << scale_bits[c]);
        job->requant[c][0] = output_multiplier[quant_index];
        job->requant[c][1] = (int32_t)(((uint32_t)1 << (right_shift - 1)) +
                                       ((uint32_t)params->output_offset << right_shift));
        job->requant[c][2] = right_shift;
    }
    job->column = params->input_channels;
    job->row = params->input_width * params->input_channels;
    job->offset_pair = si4_dsp_offset_pair(params->input_offset);
    job->step = params->stride_width * params->input_channels;
    job->output_step = params->output_channels;
    job->low_word = ((uint32_t)out->low & 0xFFu) * 0x01010101u;
    job->high_word = ((uint32_t)out->high & 0xFFu) * 0x01010101u;
    /* The unmoved table (index 4) from the filter, the moved ones by copying its words. */
    for (tap = 0; tap < 9; ++tap) {
        const int8_t *w = filter + tap * params->output_channels + first_channel;
        tables[4][2 * tap] = si4_dsp_pack_s16x2(w[0] * (1 << scale_bits[0]), w[2] * (1 << scale_bits[2]));
        tables[4][2 * tap + 1] = si4_dsp_pack_s16x2(w[1] * (1 << scale_bits[1]), w[3] * (1 << scale_bits[3]));
    }
    /* Row r of table (dy, dx) is row r + dy of the unmoved one (zeros outside), moved by dx taps. */
    for (table = 0; table < SI4_DSP_DW_TABLES; ++table) {
        const int32_t dy = table / SI4_DSP_DW_SHIFTS - 1;
        const int32_t dx = table % SI4_DSP_DW_SHIFTS - 1;
        int32_t row;
        if (table == 4) {
            continue;
        }
        for (row = 0; row < 3; ++row) {
            uint32_t *to = tables[table] + 6 * row;
            const uint32_t *from = tables[4] + 6 * (row + dy);
            if (row + dy < 0 || row + dy > 2) {
                memset(to, 0, 6 * sizeof *to);
            } else if (dx == 0) {
                memcpy(to, from, 6 * sizeof *to);
            } else if (dx > 0) { /* tap c reads tap c + 1 */
                memcpy(to, from + 2, 4 * sizeof *to);
                to[4] = 0;
                to[5] = 0;
            } else {
                to[0] = 0;
                to[1] = 0;
                memcpy(to + 2, from, 4 * sizeof *to);
            }
        }
    }
}

/* How far a 3x3 window at `origin` (input extent `extent` >= 3) moves to lie
 * inside the input: -1, 0, +1, or 2 when it cannot (then the C path). */
static inline int32_t si4_dsp_dw_move(int32_t origin, int32_t extent)
{
    const int32_t inside = origin < 0 ? 0 : (origin > extent - 3 ? extent - 3 : origin);
    const int32_t move = inside - origin;
    return move >= -1 && move <= 1 ? move : 2;
}

/* The C path's widened taps and constants of channels first_channel .. + 3. */
static void si4_dsp_dw_group_init(const si4_depthwise_conv2d_params *params,
                                  const int8_t *filter,
                                  const int32_t *bias,
                                  const int32_t *output_multiplier,
                                  const int32_t *output_shift,
                                  int32_t first_channel,
                                  si4_dsp_dw_group *group)
{
    const int32_t taps = params->kernel_height * params->kernel_width;
    int32_t tap;
    int32_t c;
    for (tap = 0; tap < taps; ++tap) {
        const uint32_t word = si4_dsp_load_s8x4(filter + tap * params->output_channels + first_channel);
        group->taps[2 * tap] = (uint32_t)__sxtb16((int8x4_t)word);
        group->taps[2 * tap + 1] = (uint32_t)si4_dsp_sxtb16_ror8(word);
    }
    for (c = 0; c < 4; ++c) {
        si4_dsp_dw_channel_init(params, filter, bias, output_multiplier, output_shift, first_channel + c,
                                &group->channel[c]);
    }
}

/* Four channels of one output position through the C loops (any window). */
static void si4_dsp_dw_position(const si4_depthwise_conv2d_params *params,
                                const si4_dsp_dw_group *group,
                                const int8_t *input,
                                int32_t out_y,
                                int32_t out_x,
                                const si4_dsp_output *out,
                                int8_t *output)
{
    const int32_t in_y_origin = out_y * params->stride_height - params->pad_top;
    const int32_t in_x_origin = out_x * params->stride_width - params->pad_left;
    const uint32_t offset_pair = si4_dsp_offset_pair(params->input_offset);
    const uint32_t low_word = ((uint32_t)out->low & 0xFFu) * 0x01010101u;
    const uint32_t high_word = ((uint32_t)out->high & 0xFFu) * 0x01010101u;
    int32_t ky_start;
    int32_t ky_end;
    int32_t kx_start;
    int32_t kx_end;
    si4_dsp_dw_acc acc;
    uint32_t packed;
    si4_valid_kernel_range(in_y_origin, params->dilation_height, params->kernel_height, params->input_height,
                           &ky_start, &ky_end);
    si4_valid_kernel_range(in_x_origin, params->dilation_width, params->kernel_width, params->input_width,
                           &kx_start, &kx_end);
    acc.acc0 = group->channel[0].bias;
    acc.acc1 = group->channel[1].bias;
    acc.acc2 = group->channel[2].bias;
    acc.acc3 = group->channel[3].bias;
    if (params->kernel_height == 3 && params->kernel_width == 3 && params->dilation_height == 1 &&
        params->dilation_width == 1 && ky_start == 0 && ky_end == 3 && kx_start == 0 && kx_end == 3) {
        si4_dsp_dw_window_3x3(group->taps, input + (in_y_origin * params->input_width + in_x_origin) *
                                                     params->input_channels,
                              params->input_channels, params->input_width * params->input_channels, offset_pair,
                              &acc);
    } else {
        si4_dsp_dw_window(params, group, input, in_y_origin, in_x_origin, ky_start, ky_end, kx_start, kx_end,
                          offset_pair, &acc);
    }
    packed = si4_dsp_pack_s8x4(si4_dsp_dw_requantize(acc.acc0, &group->channel[0], out->output_offset),
                               si4_dsp_dw_requantize(acc.acc1, &group->channel[1], out->output_offset),
                               si4_dsp_dw_requantize(acc.acc2, &group->channel[2], out->output_offset),
                               si4_dsp_dw_requantize(acc.acc3, &group->channel[3], out->output_offset));
    packed = si4_dsp_min_s8x4(si4_dsp_max_s8x4(packed, low_word), high_word);
    si4_dsp_store_s8x4(output + (out_y * params->output_width + out_x) * params->output_channels, packed);
}

/* Whether the 3x3 runs serve this layer at all (each group still checks
 * its channels' constants). */
static int32_t si4_dsp_dw_runs_apply(const si4_depthwise_conv2d_params *params)
{
    return params->kernel_height == 3 && params->kernel_width == 3 && params->dilation_height == 1 &&
           params->dilation_width == 1 && params->input_height >= 3 && params->input_width >= 3;
}

/* Lists the runs of output rows first_row on, at most SI4_DSP_DW_MAX_RUNS,
 * into `runs`; returns the row after the last one listed, and the number
 * of words in *words. A row's runs are its consecutive positions whose
 * windows move alike; windows that cannot move inside are left out (the C
 * path does them, si4_dsp_dw_c_positions). */
static int32_t si4_dsp_dw_list_runs(const si4_depthwise_conv2d_params *params,
                                    int32_t first_row,
                                    uint32_t (*tables)[18],
                                    int32_t *runs,
                                    int32_t *words)
{
    const int32_t channels = params->input_channels;
    int32_t out_y;
    *words = 0;
    for (out_y = first_row; out_y < params->output_height; ++out_y) {
        const int32_t in_y_origin = out_y * params->stride_height - params->pad_top;
        const int32_t dy = si4_dsp_dw_move(in_y_origin, params->input_height);
        int32_t row_words = 0;
        int32_t out_x = 0;
        while (dy != 2 && out_x < params->output_width) {
            const int32_t in_x_origin = out_x * params->stride_width - params->pad_left;
            const int32_t dx = si4_dsp_dw_move(in_x_origin, params->input_width);
            int32_t end = out_x + 1;
            if (dx == 2) {
                ++out_x;
                continue;
            }
            while (end < params->output_width &&
                   si4_dsp_dw_move(end * params->stride_width - params->pad_left, params->input_width) == dx) {
                ++end;
            }
            if (*words + row_words + SI4_DSP_DW_RUN_WORDS > SI4_DSP_DW_MAX_RUNS * SI4_DSP_DW_RUN_WORDS) {
                if (out_y == first_row) {
                    break; /* a row of more runs than the list holds: the rest of it by C */
                }
                return out_y; /* this row goes into the next list */
            }
            runs[*words + row_words] = ((in_y_origin + dy) * params->input_width + in_x_origin + dx) * channels;
            runs[*words + row_words + 1] = (out_y * params->output_width + out_x) * params->output_channels;
            runs[*words + row_words + 2] = end - out_x;
            runs[*words + row_words + 3] = (int32_t)(uintptr_t)tables[(dy + 1) * SI4_DSP_DW_SHIFTS + dx + 1];
            row_words += SI4_DSP_DW_RUN_WORDS;
            out_x = end;
        }
        *words += row_words;
    }
    return out_y;
}

/* The positions of rows first_row .. end_row - 1 that no listed run covers
 * (all of them when `all` is set), through the C loops. */
static void si4_dsp_dw_c_positions(const si4_depthwise_conv2d_params *params,
                                   const si4_dsp_dw_group *group,
                                   const int8_t *input,
                                   const int32_t *runs,
                                   int32_t words,
                                   int32_t first_row,
                                   int32_t end_row,
                                   int32_t all,
                                   const si4_dsp_output *out,
                                   int8_t *output)
{
    int32_t out_y;
    int32_t word = 0;
    for (out_y = first_row; out_y < end_row; ++out_y) {
        int32_t out_x;
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            const int32_t output_offset = (out_y * params->output_width + out_x) * params->output_channels;
            /* Runs are listed in raster order: skip the positions they cover. */
            if (!all && word < words && runs[word + 1] == output_offset) {
                out_x += runs[word + 2] - 1;
                word += SI4_DSP_DW_RUN_WORDS;
                continue;
            }
            si4_dsp_dw_position(params, group, input, out_y, out_x, out, output);
        }
    }
}

/* Channels first_channel .. first_channel + 3 of output rows first_row ..
 * end_row - 1, whose runs (when the layer has them) are listed. */
static SI4_DSP_OWN_FRAME void si4_dsp_dw_channel_group(const si4_depthwise_conv2d_params *params,
                                                       const int8_t *input,
                                                       const int8_t *filter,
                                                       const int32_t *bias,
                                                       const int32_t *output_multiplier,
                                                       const int32_t *output_shift,
                                                       int32_t first_channel,
                                                       const si4_dsp_output *out,
                                                       const int32_t *runs,
                                                       int32_t words,
                                                       int32_t first_row,
                                                       int32_t end_row,
                                                       uint32_t (*tables)[18],
                                                       int8_t *output)
{
    si4_dsp_dw_group group;
    si4_dsp_dw_run_job job;
    int32_t fits = runs != 0;
    int32_t listed = 0;
    int32_t word;
    int32_t c;
    for (c = 0; c < 4 && fits; ++c) {
        fits = si4_dsp_dw_run_fits(params, filter, bias, output_multiplier, output_shift, first_channel + c);
    }
    input += first_channel;
    output += first_channel;
    if (fits) {
        si4_dsp_dw_run_init(params, filter, bias, output_multiplier, output_shift, first_channel, out, &job, tables);
        job.next = runs;
        job.end = runs + words;
        job.input = input;
        job.output_base = output;
        si4_dsp_dw_3x3_runs(&job, &job);
        /* Positions no run covers (windows that cannot move inside) are the C path's. */
        for (word = 0; word < words; word += SI4_DSP_DW_RUN_WORDS) {
            listed += runs[word + 2];
        }
        if (listed == (end_row - first_row) * params->output_width) {
            return;
        }
    }
    si4_dsp_dw_group_init(params, filter, bias, output_multiplier, output_shift, first_channel, &group);
    si4_dsp_dw_c_positions(params, &group, input, runs, words, first_row, end_row, !fits, out, output);
}

/* The channels from first_channel on (fewer than four), portable loop. */
static SI4_DSP_OWN_FRAME void si4_dsp_dw_tail_channels(const si4_depthwise_conv2d_params *params,
                                                       const int8_t *input,
                                                       const int8_t *filter,
                                                       const int32_t *bias,
                                                       const int32_t *output_multiplier,
                                                       const int32_t *output_shift,
                                                       int32_t first_channel,
                                                       int8_t *output)
{
    const int32_t channels = params->output_channels;
    int32_t out_y;
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        const int32_t in_y_origin = out_y * params->stride_height - params->pad_top;
        int32_t ky_start;
        int32_t ky_end;
        int32_t out_x;
        si4_valid_kernel_range(in_y_origin, params->dilation_height, params->kernel_height, params->input_height,
                               &ky_start, &ky_end);
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            const int32_t in_x_origin = out_x * params->stride_width - params->pad_left;
            int32_t kx_start;
            int32_t kx_end;
            int32_t oc;
            si4_valid_kernel_range(in_x_origin, params->dilation_width, params->kernel_width, params->input_width,
                                   &kx_start, &kx_end);
            for (oc = first_channel; oc < channels; ++oc) {
                const int32_t quant_index = params->per_channel ? oc : 0;
                int32_t acc = bias != 0 ? bias[oc] : 0;
                int32_t ky;
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int32_t in_y = in_y_origin + params->dilation_height * ky;
                    int32_t kx;
                    for (kx = kx_start; kx < kx_end; ++kx) {
                        const int32_t in_x = in_x_origin + params->dilation_width * kx;
                        acc += filter[(ky * params->kernel_width + kx) * channels + oc] *
                               (input[(in_y * params->input_width + in_x) * channels + oc] + params->input_offset);
                    }
                }
                output[(out_y * params->output_width + out_x) * channels + oc] =
                    si4_dsp_requantize_s8(acc, output_multiplier[quant_index], output_shift[quant_index],
                                          params->output_offset, params->activation_min, params->activation_max);
            }
        }
    }
}

void si4_depthwise_conv2d_s8(const si4_depthwise_conv2d_params *params,
                             const int8_t *input,
                             const int8_t *filter,
                             const int32_t *bias,
                             const int32_t *output_multiplier,
                             const int32_t *output_shift,
                             int8_t *output)
{
    const int32_t channels = params->output_channels;
    si4_dsp_output out;
    int32_t first_channel;
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    /* The packed clamp needs int8 bounds (TFLM's int8 activation ranges always are). */
    if (params->depth_multiplier != 1 || params->kernel_height * params->kernel_width > SI4_DSP_DW_MAX_TAPS ||
        out.low < -128 || out.high > 127) {
        si4_depthwise_conv2d_s8_portable(params, input, filter, bias, output_multiplier, output_shift, output);
        return;
    }
    if (channels >= 4) {
        /* The runs are listed once for a chunk of rows and serve every channel group. */
        uint32_t tables[SI4_DSP_DW_TABLES][18];
        int32_t runs[SI4_DSP_DW_MAX_RUNS * SI4_DSP_DW_RUN_WORDS];
        const int32_t listing = si4_dsp_dw_runs_apply(params);
        int32_t first_row = 0;
        while (first_row < params->output_height) {
            int32_t words = 0;
            const int32_t end_row = listing ? si4_dsp_dw_list_runs(params, first_row, tables, runs, &words)
                                            : params->output_height;
            for (first_channel = 0; first_channel + 4 <= channels; first_channel += 4) {
                si4_dsp_dw_channel_group(params, input, filter, bias, output_multiplier, output_shift, first_channel,
                                         &out, listing ? runs : 0, words, first_row, end_row, tables, output);
            }
            first_row = end_row;
        }
    }
    first_channel = channels & ~3;
    if (first_channel < channels) {
        si4_dsp_dw_tail_channels(params, input, filter, bias, output_multiplier, output_shift, first_channel, output);
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_depthwise_conv2d_s8.c"
#endif
