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
 * on the way (si4_dsp_requantize_rows, about 35 instructions a row). A
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

/* Per-tensor requantization with its constants derived once per call (the
 * table path of kernels/dsp/si4_add_s8.c): for x = acc + bias and a right
 * shift r >= 1, TFLM's RDBPOT(SRDHM(x, m), r) + offset is
 *   SMMLAR(2x, m, 2^(r-1) + (offset << r) - [x < 0]) >> r
 * (SMMULR(2x, m) is gemmlowp's high multiply while |2x| < 2^31; the
 * rounding shift's ties away from zero and the offset ride in the
 * accumulator, floor(floor(X / 2^32) + c) / 2^r) = floor((X + c 2^32) /
 * 2^(32+r)); the sign of x stands for the high word's, m >= 0: they differ
 * only where the high word is 0 and both give the offset). Bounds: |x| <=
 * 2^29 (checked per row: 3 instructions) and r
 * <= 22 keep every step inside int32; a row beyond them (and a per-channel
 * layer) takes si4_dsp_requantize_rows. */
#define SHARED_QUANT_MAX_RIGHT_SHIFT 22
#define SHARED_QUANT_MAX_TOTAL ((uint32_t)1 << 29)

typedef struct {
    int32_t enabled;
    int32_t multiplier;
    int32_t rounding; /* 2^(r-1) + (output_offset << r) */
    int32_t right_shift;
    int32_t low;
    int32_t high;
} shared_quant;

static void shared_quant_init(const si4_fully_connected_params *params,
                              const int32_t *output_multiplier,
                              const int32_t *output_shift,
                              const si4_dsp_output *out,
                              shared_quant *quant)
{
    const int32_t right_shift = -output_shift[0];
    memset(quant, 0, sizeof *quant);
    if (params->per_channel || right_shift < 1 || right_shift > SHARED_QUANT_MAX_RIGHT_SHIFT ||
        output_multiplier[0] < 0 || out->output_offset < INT8_MIN || out->output_offset > INT8_MAX) {
        return;
    }
    quant->enabled = 1;
    quant->multiplier = output_multiplier[0];
    quant->right_shift = right_shift;
    quant->rounding =
        (int32_t)(((uint32_t)1 << (right_shift - 1)) + ((uint32_t)out->output_offset << right_shift));
    quant->low = out->low;
    quant->high = out->high;
}

static inline int32_t smmlar(int32_t a, int32_t b, int32_t accumulate)
{
    int32_t result;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(accumulate));
    return result;
}

/* Requantizes count rows: the shared constants when they apply, else
 * si4_dsp_requantize_rows; either way quant's pointers move on. */
static SI4_DSP_OWN_FRAME void requantize_rows(const int32_t *acc,
                                              int32_t count,
                                              const shared_quant *shared,
                                              si4_dsp_rows_quant *quant)
{
    /* Locals: the int8 stores would otherwise make GCC reload every field. */
    const int32_t *bias = quant->bias;
    const int32_t bias_step = quant->bias_step >> 2;
    const int32_t multiplier = shared->multiplier;
    const int32_t rounding = shared->rounding;
    const int32_t right_shift = shared->right_shift;
    const int32_t low = shared->low;
    const int32_t high = shared->high;
    int8_t *output = quant->output;
    int32_t r;
    if (!shared->enabled) {
        si4_dsp_requantize_rows(acc, count, quant);
        return;
    }
    for (r = 0; r < count; ++r) {
        /* acc + bias wraps as in si4_dsp_requantize_rows; beyond the bound
         * the rest of the rows go there. */
        const int32_t total = (int32_t)((uint32_t)acc[r] + (uint32_t)*bias);
        const int32_t doubled = 2 * total;
        int32_t value;
        if ((uint32_t)total + SHARED_QUANT_MAX_TOTAL > 2 * SHARED_QUANT_MAX_TOTAL) {
            quant->bias = bias;
            quant->output = output + r;
            si4_dsp_requantize_rows(acc + r, count - r, quant);
            return;
        }
        value = smmlar(doubled, multiplier, rounding + (doubled >> 31)) >> right_shift;
        output[r] = (int8_t)si4_dsp_clamp(value, low, high);
        bias += bias_step;
    }
    quant->bias = bias;
    quant->output = output + count;
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
    shared_quant shared;
    int32_t o = 0;
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    shared_quant_init(params, output_multiplier, output_shift, &out, &shared);
    quant.bias = bias != 0 ? bias : &no_bias;
    quant.multiplier = output_multiplier;
    quant.shift = output_shift;
    quant.output = output;
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
            requantize_rows(job.acc, 4, &shared, &quant);
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
        requantize_rows(acc, o_1 != o ? 2 : 1, &shared, &quant);
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
