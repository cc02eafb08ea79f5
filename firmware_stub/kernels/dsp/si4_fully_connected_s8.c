/*
 * si4_fully_connected_s8.c (DSP) - FULLY_CONNECTED, for cores with
 * the DSP extension. Same contract and results, bit for bit, as
 * kernels/src/si4_fully_connected_s8.c (TFLM's reference FullyConnected /
 * FullyConnectedPerChannel arithmetic).
 *
 * The generator sends the layers of si4_fully_connected_per_tensor_s8's class
 * (per-tensor, input of whole words up to SI4_DSP_FC_WIDENED_MAX values) to
 * that kernel, which fuses the products and the requantization; this one
 * computes them too, by its general path, so that a model of per-channel
 * dense layers (the TFLite converter's default today) links only this file.
 * Four output rows at a time, each input word loaded and widened once (SXTAB16 adds the input
 * offset for free) and multiplied into the four rows with SMLAD, 23
 * instructions per 16 MACs (an assembly loop, si4_dsp_dot_4_rows); the last
 * one to three rows two at a time in C. The rows are requantized by an
 * assembly loop that derives each row's constants on the way
 * (si4_dsp_requantize_rows, about 35 instructions a row). A non-zero filter
 * offset (never produced by the TFLite converter: weights are symmetric)
 * takes a plain loop. The input's params->batches rows are done one after
 * the other.
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
