/*
 * si4_depthwise_conv2d_s8.c (DSP) - DEPTHWISE_CONV_2D for cores with the DSP
 * extension. Same contract and results, bit for bit, as
 * kernels/src/si4_depthwise_conv2d_s8.c (TFLM's reference
 * DepthwiseConvPerChannel arithmetic).
 *
 * Depth multiplier 1 (every MLPerf Tiny depthwise layer): channels are
 * independent, so four neighbouring channels share one input word and one
 * filter word per tap. The loop runs channel group (four channels) outside,
 * output positions inside, and per tap costs one input load, two SXTAB16
 * (the input offset comes free), one LDRD of the group's widened taps and
 * four 16x16 MACs on the lanes (SMLABB / SMLATT: the lanes belong to
 * different channels, so SMLAD's sum of the two would mix them).
 *
 * 3x3, dilation 1 (kws, vww): an assembly loop (si4_dsp_dw_3x3_runs) walks
 * the runs of output positions listed once per chunk of rows for all
 * groups; requantization, packing and the clamp stay in registers (111
 * instructions per position and group of four channels, 36 MACs; 116 with
 * a clamp narrower than int8). Windows
 * that reach one row or column into the padding read a block moved inside
 * the input with a taps window moved the other way (zeros for the missing
 * taps), so the padding costs nothing extra.
 *
 * A channel count not a multiple of four ends with a group that overlaps
 * the one before. Everything else (other kernel sizes, dilation, other
 * depth multipliers, channels whose constants the pre-scaled accumulator
 * cannot hold, windows that cannot move inside, fewer than four channels)
 * takes the portable kernel's scalar loop (si4_dsp_dw_scalar_position),
 * compiled for size: the MLPerf Tiny layers never need it, and the engine's
 * code stays small.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_kernel_util.h"

#include <stddef.h>

/* The paths the MLPerf Tiny layers do not take (other kernels, constants the
 * runs cannot hold, windows that cannot move inside, the last channels):
 * compiled for size, out of line. */
#define SI4_DSP_DW_COLD __attribute__((cold, noinline))

/* ------------------------------------------------------------------------
 * The 3x3 run: the hot path, in assembly.
 *
 * For a group whose four channels all fit (si4_dsp_dw_run_init), the
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
 * whole 3x3 block moved inside the input instead, with a taps window moved
 * the other way and zeros where the real window has no tap: the same run,
 * the same sums. The taps live in a 5x5 grid of tap pairs whose border
 * stays zero (si4_dsp_dw_taps): the 3x3 window of the grid at (1 + dy,
 * 1 + dx) is the table of a block moved by (dy, dx), so one group writes
 * only its nine taps, and the moved tables cost nothing to build.
 */
#define SI4_DSP_DW_GRID 5 /* taps grid side: the filter's 3 and a zero border */

/* The taps grid: per tap, lanes of channels 0 and 2, then 1 and 3. */
typedef uint32_t si4_dsp_dw_taps[SI4_DSP_DW_GRID][SI4_DSP_DW_GRID][2];

typedef struct {
    int32_t bias[4];       /* scaled by 2^s */
    const uint32_t *taps;  /* a 3x3 window of the taps grid (rows 10 words apart) */
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
    int32_t clamp;         /* 0 when the clamp is all of int8 (SSAT did it) */
} si4_dsp_dw_run_job;

/* Words per listed run, and runs listed per call (a chunk of rows). */
#define SI4_DSP_DW_RUN_WORDS 4
#define SI4_DSP_DW_MAX_RUNS 96

/* The assembly reads the job at fixed offsets. */
typedef char si4_dsp_dw_job_layout_check[(offsetof(si4_dsp_dw_run_job, taps) == 16 &&
                                          offsetof(si4_dsp_dw_run_job, requant) == 32 &&
                                          offsetof(si4_dsp_dw_run_job, low_word) == 80 &&
                                          offsetof(si4_dsp_dw_run_job, output) == 88 &&
                                          offsetof(si4_dsp_dw_run_job, count) == 100 &&
                                          offsetof(si4_dsp_dw_run_job, next) == 104 &&
                                          offsetof(si4_dsp_dw_run_job, input) == 112 &&
                                          offsetof(si4_dsp_dw_run_job, clamp) == 120) ? 1 : -1];

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
 * 36 MACs, 20 for four requantizations, 3 to pack, 2 to see whether to
 * clamp (5 more when it does: the whole int8 range, every MLPerf Tiny
 * depthwise layer's, needs none after SSAT), 14 to load the biases, store
 * and step (111); 17 per run. */
static void __attribute__((naked, noinline)) si4_dsp_dw_3x3_runs(si4_dsp_dw_run_job *unused, si4_dsp_dw_run_job *job)
{
    __asm__(
        "push    {r4-r11, lr}              \n\t"
        "add     r2, r1, #32               \n\t"
        "ldr     r3, [r1, #120]            \n\t"
        "push    {r1, r2, r3}              \n\t" /* [sp]: the job, [sp, #4]: its requant, [sp, #8]: clamp */
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
        SI4_DSP_DW_RUN_TAP("[r12]", "40")
        SI4_DSP_DW_RUN_TAP("[r12, r2]", "48")
        SI4_DSP_DW_RUN_TAP("[r12, r2, lsl #1]", "56")
        "add     r12, r12, r3              \n\t"
        SI4_DSP_DW_RUN_TAP("[r12]", "80")
        SI4_DSP_DW_RUN_TAP("[r12, r2]", "88")
        SI4_DSP_DW_RUN_TAP("[r12, r2, lsl #1]", "96")
        "ldr     lr, [sp, #4]              \n\t"
        SI4_DSP_DW_RUN_REQUANT("r4")
        SI4_DSP_DW_RUN_REQUANT("r5")
        SI4_DSP_DW_RUN_REQUANT("r6")
        SI4_DSP_DW_RUN_REQUANT("r7")
        "bfi     r4, r5, #8, #8            \n\t"
        "bfi     r4, r6, #16, #8           \n\t"
        "bfi     r4, r7, #24, #8           \n\t"
        "ldr     r5, [sp, #8]              \n\t" /* r5-r7 are free once packed */
        "cbz     r5, 2f                    \n\t"
        "ldrd    r9, r10, [lr]             \n\t" /* low, high words */
        "ssub8   r12, r4, r9               \n\t"
        "sel     r4, r4, r9                \n\t" /* max with low */
        "ssub8   r12, r4, r10              \n\t"
        "sel     r4, r10, r4               \n\t" /* min with high */
        "2:                                \n\t"
        "ldrd    r9, r10, [lr, #8]         \n\t" /* output, output step */
        "ldrd    r11, r12, [lr, #16]       \n\t" /* step, count */
        "str     r4, [r9]                  \n\t"
        "add     r9, r9, r10               \n\t"
        "add     r0, r0, r11               \n\t"
        "str     r9, [lr, #8]              \n\t"
        "subs    r12, r12, #1              \n\t"
        "str     r12, [lr, #20]            \n\t"
        "bne     1b                        \n\t"
        "b       0b                        \n\t"
        "9:                                \n\t"
        "add     sp, sp, #12               \n\t"
        "pop     {r4-r11, pc}              \n\t");
}

#pragma GCC diagnostic pop

/* The run's constants of channels first_channel .. + 3 into the job, and
 * their taps into the grid's centre (the border stays zero). Returns
 * whether all four channels fit the run: m >= 0, right shift 1..22 (round'
 * stays in int32), left shift <= 6 (2^s * |w| fits a lane), and the
 * accumulator times 2^s stays in int32; when not, the job is not to run. */
static int32_t si4_dsp_dw_run_init(const si4_depthwise_conv2d_params *params,
                                   const int8_t *filter,
                                   const int32_t *bias,
                                   const int32_t *output_multiplier,
                                   const int32_t *output_shift,
                                   int32_t first_channel,
                                   si4_dsp_dw_run_job *job,
                                   si4_dsp_dw_taps grid)
{
    const int32_t step = params->output_channels;
    int32_t scale_bits[4];
    int32_t ky;
    int32_t c;
    for (c = 0; c < 4; ++c) {
        const int32_t channel = first_channel + c;
        const int32_t quant_index = params->per_channel ? channel : 0;
        const int32_t shift = output_shift[quant_index];
        const int32_t left_shift = shift > 0 ? shift : 0;
        const int32_t right_shift = shift > 0 ? 0 : -shift;
        const int32_t channel_bias = bias != 0 ? bias[channel] : 0;
        const int64_t bias_size = channel_bias < 0 ? -(int64_t)channel_bias : (int64_t)channel_bias;
        int64_t limit;
        if (output_multiplier[quant_index] < 0 || right_shift < 1 || right_shift > 22 || left_shift > 6) {
            return 0;
        }
        limit = (int64_t)1 << (30 - left_shift);
        /* The accumulator's bound with every |w| = 128 holds for almost every layer, so the
         * taps' own sum is needed only when that one fails. This runs once per group and call:
         * an in-place layer in one-row bands pays it on every row. */
        if (255 * (int64_t)(9 * 128) + bias_size >= limit) {
            const int8_t *w = filter + channel;
            int32_t weight_sum = 0; /* sum |w| <= 9 * 128 */
            int32_t tap;
            for (tap = 0; tap < 9; ++tap, w += step) {
                weight_sum += *w < 0 ? -*w : *w;
            }
            if (255 * (int64_t)weight_sum + bias_size >= limit) {
                return 0;
            }
        }
        scale_bits[c] = left_shift + 1;
        job->bias[c] = (int32_t)((uint32_t)channel_bias << (left_shift + 1));
        job->requant[c][0] = output_multiplier[quant_index];
        job->requant[c][1] = (int32_t)(((uint32_t)1 << (right_shift - 1)) +
                                       ((uint32_t)params->output_offset << right_shift));
        job->requant[c][2] = right_shift;
    }
    for (ky = 0; ky < 3; ++ky) {
        int32_t kx;
        for (kx = 0; kx < 3; ++kx) {
            const int8_t *w = filter + (3 * ky + kx) * step + first_channel;
            uint32_t *pair = grid[1 + ky][1 + kx];
            pair[0] = si4_dsp_pack_s16x2(w[0] * (1 << scale_bits[0]), w[2] * (1 << scale_bits[2]));
            pair[1] = si4_dsp_pack_s16x2(w[1] * (1 << scale_bits[1]), w[3] * (1 << scale_bits[3]));
        }
    }
    return 1;
}

/* The job's constants every group shares. */
static void si4_dsp_dw_job_init(const si4_depthwise_conv2d_params *params, const si4_dsp_output *out,
                                si4_dsp_dw_run_job *job)
{
    job->column = params->input_channels;
    job->row = params->input_width * params->input_channels;
    job->offset_pair = si4_dsp_offset_pair(params->input_offset);
    job->step = params->stride_width * params->input_channels;
    job->output_step = params->output_channels;
    job->low_word = ((uint32_t)out->low & 0xFFu) * 0x01010101u;
    job->high_word = ((uint32_t)out->high & 0xFFu) * 0x01010101u;
    job->clamp = out->low != -128 || out->high != 127;
}

/* How far a 3x3 window at `origin` (input extent `extent` >= 3) moves to lie
 * inside the input: -1, 0, +1, or 2 when it cannot (then the C path). */
static inline int32_t si4_dsp_dw_move(int32_t origin, int32_t extent)
{
    const int32_t inside = origin < 0 ? 0 : (origin > extent - 3 ? extent - 3 : origin);
    const int32_t move = inside - origin;
    return move >= -1 && move <= 1 ? move : 2;
}

/* Whether the 3x3 runs serve this layer at all (each group still checks
 * its channels' constants). */
static int32_t si4_dsp_dw_runs_apply(const si4_depthwise_conv2d_params *params)
{
    return params->kernel_height == 3 && params->kernel_width == 3 && params->dilation_height == 1 &&
           params->dilation_width == 1 && params->input_height >= 3 && params->input_width >= 3;
}

/* Whether the runs go down the columns: maps taller than wide (kws's 25x5)
 * have fewer, longer runs that way (each run costs 17 instructions), when
 * every window can move inside and the columns' runs (at most 3 each) fit
 * one list. */
static SI4_DSP_DW_COLD int32_t si4_dsp_dw_runs_down(const si4_depthwise_conv2d_params *params)
{
    int32_t out_y;
    int32_t out_x;
    if (params->output_height <= params->output_width || 3 * params->output_width > SI4_DSP_DW_MAX_RUNS) {
        return 0;
    }
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        if (si4_dsp_dw_move(out_y * params->stride_height - params->pad_top, params->input_height) == 2) {
            return 0;
        }
    }
    for (out_x = 0; out_x < params->output_width; ++out_x) {
        if (si4_dsp_dw_move(out_x * params->stride_width - params->pad_left, params->input_width) == 2) {
            return 0;
        }
    }
    return 1;
}

/* Lists the runs of output lines first_line on (rows, or columns when
 * `down`), at most SI4_DSP_DW_MAX_RUNS, into `runs`; returns the line after
 * the last one listed, and the number of words in *words. A line's runs are
 * its consecutive positions whose windows move alike; windows that cannot
 * move inside are left out (the C path does them: only rows, as
 * si4_dsp_dw_runs_down never lets columns leave any out). */
static int32_t si4_dsp_dw_list_runs(const si4_depthwise_conv2d_params *params,
                                    int32_t down,
                                    int32_t first_line,
                                    si4_dsp_dw_taps grid,
                                    int32_t *runs,
                                    int32_t *words)
{
    const int32_t lines = down ? params->output_width : params->output_height;
    const int32_t length = down ? params->output_height : params->output_width;
    const int32_t line_stride = down ? params->stride_width : params->stride_height;
    const int32_t line_pad = down ? params->pad_left : params->pad_top;
    const int32_t line_extent = down ? params->input_width : params->input_height;
    const int32_t stride = down ? params->stride_height : params->stride_width;
    const int32_t pad = down ? params->pad_top : params->pad_left;
    const int32_t extent = down ? params->input_height : params->input_width;
    int32_t line;
    *words = 0;
    for (line = first_line; line < lines; ++line) {
        const int32_t line_origin = line * line_stride - line_pad;
        const int32_t line_move = si4_dsp_dw_move(line_origin, line_extent);
        int32_t line_words = 0;
        int32_t position = 0;
        while (line_move != 2 && position < length) {
            const int32_t origin = position * stride - pad;
            const int32_t move = si4_dsp_dw_move(origin, extent);
            int32_t end = position + 1;
            int32_t *run = runs + *words + line_words;
            if (move == 2) {
                ++position;
                continue;
            }
            while (end < length && si4_dsp_dw_move(end * stride - pad, extent) == move) {
                ++end;
            }
            if (*words + line_words + SI4_DSP_DW_RUN_WORDS > SI4_DSP_DW_MAX_RUNS * SI4_DSP_DW_RUN_WORDS) {
                if (line == first_line) {
                    break; /* a line of more runs than the list holds: the rest of it by C */
                }
                return line; /* this line goes into the next list */
            }
            {
                const int32_t dy = down ? move : line_move;
                const int32_t dx = down ? line_move : move;
                const int32_t in_y = (down ? origin : line_origin) + dy;
                const int32_t in_x = (down ? line_origin : origin) + dx;
                const int32_t out_y = down ? position : line;
                const int32_t out_x = down ? line : position;
                run[0] = (in_y * params->input_width + in_x) * params->input_channels;
                run[1] = (out_y * params->output_width + out_x) * params->output_channels;
                run[2] = end - position;
                run[3] = (int32_t)(uintptr_t)grid[1 + dy][1 + dx];
            }
            line_words += SI4_DSP_DW_RUN_WORDS;
            position = end;
        }
        *words += line_words;
    }
    return line;
}

/* Output channels first_channel .. end_channel - 1 of position (out_y,
 * out_x), any kernel, dilation and depth multiplier: the portable kernel's
 * loop over the valid taps. */
static SI4_DSP_DW_COLD void si4_dsp_dw_scalar_position(const si4_depthwise_conv2d_params *params,
                                                       const int8_t *input,
                                                       const int8_t *filter,
                                                       const int32_t *bias,
                                                       const int32_t *output_multiplier,
                                                       const int32_t *output_shift,
                                                       int32_t out_y,
                                                       int32_t out_x,
                                                       int32_t first_channel,
                                                       int32_t end_channel,
                                                       int8_t *output)
{
    si4_depthwise_position(params, input, filter, bias, output_multiplier, output_shift, out_y, out_x, first_channel,
                           end_channel, output + (out_y * params->output_width + out_x) * params->output_channels);
}

/* Channels first_channel .. end_channel - 1 of every position of rows
 * first_row .. end_row - 1, scalar. */
static SI4_DSP_DW_COLD void si4_dsp_dw_scalar_rows(const si4_depthwise_conv2d_params *params,
                                                   const int8_t *input,
                                                   const int8_t *filter,
                                                   const int32_t *bias,
                                                   const int32_t *output_multiplier,
                                                   const int32_t *output_shift,
                                                   int32_t first_row,
                                                   int32_t end_row,
                                                   int32_t first_channel,
                                                   int32_t end_channel,
                                                   int8_t *output)
{
    int32_t out_y;
    for (out_y = first_row; out_y < end_row; ++out_y) {
        int32_t out_x;
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            si4_dsp_dw_scalar_position(params, input, filter, bias, output_multiplier, output_shift, out_y, out_x,
                                       first_channel, end_channel, output);
        }
    }
}

/* Channels first_channel .. first_channel + 3 of output rows first_row ..
 * end_row - 1, whose runs are listed in `runs` (covering every position when
 * `covered`); `job` holds the shared constants. */
static SI4_DSP_OWN_FRAME void si4_dsp_dw_channel_group(const si4_depthwise_conv2d_params *params,
                                                       const int8_t *input,
                                                       const int8_t *filter,
                                                       const int32_t *bias,
                                                       const int32_t *output_multiplier,
                                                       const int32_t *output_shift,
                                                       int32_t first_channel,
                                                       si4_dsp_dw_run_job *job,
                                                       const int32_t *runs,
                                                       int32_t words,
                                                       int32_t covered,
                                                       int32_t first_row,
                                                       int32_t end_row,
                                                       si4_dsp_dw_taps grid,
                                                       int8_t *output)
{
    int32_t word;
    int32_t out_y;
    if (!si4_dsp_dw_run_init(params, filter, bias, output_multiplier, output_shift, first_channel, job, grid)) {
        si4_dsp_dw_scalar_rows(params, input, filter, bias, output_multiplier, output_shift, first_row, end_row,
                               first_channel, first_channel + 4, output);
        return;
    }
    job->next = runs;
    job->end = runs + words;
    job->input = input + first_channel;
    job->output_base = output + first_channel;
    si4_dsp_dw_3x3_runs(job, job);
    if (covered) {
        return;
    }
    /* The positions no run covers (windows that cannot move inside): the runs
     * are listed in raster order, so walk them alongside. */
    word = 0;
    for (out_y = first_row; out_y < end_row; ++out_y) {
        int32_t out_x;
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            const int32_t output_offset = (out_y * params->output_width + out_x) * params->output_channels;
            if (word < words && runs[word + 1] == output_offset) {
                out_x += runs[word + 2] - 1;
                word += SI4_DSP_DW_RUN_WORDS;
                continue;
            }
            si4_dsp_dw_scalar_position(params, input, filter, bias, output_multiplier, output_shift, out_y, out_x,
                                       first_channel, first_channel + 4, output);
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
    if (params->depth_multiplier != 1 || !si4_dsp_dw_runs_apply(params) || out.low < -128 || out.high > 127 ||
        channels < 4) {
        si4_dsp_dw_scalar_rows(params, input, filter, bias, output_multiplier, output_shift, 0,
                               params->output_height, 0, channels, output);
        return;
    }
    {
        /* The runs are listed once for a chunk of rows and serve every channel group;
         * the grid's border is zeroed once and no group writes it. */
        si4_dsp_dw_taps grid;
        si4_dsp_dw_run_job job;
        int32_t runs[SI4_DSP_DW_MAX_RUNS * SI4_DSP_DW_RUN_WORDS];
        int32_t first_row = 0;
        memset(grid, 0, sizeof grid);
        si4_dsp_dw_job_init(params, &out, &job);
        if (si4_dsp_dw_runs_down(params)) {
            int32_t words = 0;
            (void)si4_dsp_dw_list_runs(params, 1, 0, grid, runs, &words);
            job.step = params->stride_height * params->input_width * params->input_channels;
            job.output_step = params->output_width * channels;
            for (first_channel = 0; first_channel < channels; first_channel += 4) {
                const int32_t group = first_channel + 4 <= channels ? first_channel : channels - 4;
                si4_dsp_dw_channel_group(params, input, filter, bias, output_multiplier, output_shift, group, &job,
                                         runs, words, 1, 0, params->output_height, grid, output);
            }
            return;
        }
        while (first_row < params->output_height) {
            int32_t words = 0;
            int32_t listed = 0;
            int32_t word;
            const int32_t end_row = si4_dsp_dw_list_runs(params, 0, first_row, grid, runs, &words);
            for (word = 0; word < words; word += SI4_DSP_DW_RUN_WORDS) {
                listed += runs[word + 2];
            }
            for (first_channel = 0; first_channel < channels; first_channel += 4) {
                /* A channel count not a multiple of 4 ends with a group overlapping the one
                 * before: its first channels are computed twice, to the same values. */
                const int32_t group = first_channel + 4 <= channels ? first_channel : channels - 4;
                si4_dsp_dw_channel_group(params, input, filter, bias, output_multiplier, output_shift, group, &job,
                                         runs, words, listed == (end_row - first_row) * params->output_width,
                                         first_row, end_row, grid, output);
            }
            first_row = end_row;
        }
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_depthwise_conv2d_s8.c"
#endif
