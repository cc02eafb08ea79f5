/*
 * si4_pad_s8.c - PAD and PADV2 (constant), int8.
 *
 * output[i0..i4] = input[i0 - before0, ..., i4 - before4] where that lies
 * inside the input, pad_value elsewhere; shapes extended to five dimensions
 * with leading ones. TFLM reference_ops::Pad / PadImageStyle
 * (micro/kernels/pad.cc): pad_value is the output zero point for PAD and the
 * constant_values tensor's byte for PADV2 (whose quantization TFLM requires
 * to equal the output's). No arithmetic: the bytes are moved, as in TFLM.
 */
#include "si4_nn_ops.h"

void si4_pad_s8(const si4_pad_params *params, const int8_t *input, int8_t *output)
{
    const int32_t in0 = params->input_shape0, in1 = params->input_shape1, in2 = params->input_shape2;
    const int32_t in3 = params->input_shape3, in4 = params->input_shape4;
    const int32_t out0 = in0 + params->pad_before0 + params->pad_after0;
    const int32_t out1 = in1 + params->pad_before1 + params->pad_after1;
    const int32_t out2 = in2 + params->pad_before2 + params->pad_after2;
    const int32_t out3 = in3 + params->pad_before3 + params->pad_after3;
    const int32_t out4 = in4 + params->pad_before4 + params->pad_after4;
    const int8_t pad_value = (int8_t)params->pad_value;
    int32_t o = 0;
    int32_t i0, i1, i2, i3, i4;
    for (i0 = 0; i0 < out0; ++i0) {
        const int32_t y0 = i0 - params->pad_before0;
        const int32_t inside0 = y0 >= 0 && y0 < in0;
        for (i1 = 0; i1 < out1; ++i1) {
            const int32_t y1 = i1 - params->pad_before1;
            const int32_t inside1 = inside0 && y1 >= 0 && y1 < in1;
            for (i2 = 0; i2 < out2; ++i2) {
                const int32_t y2 = i2 - params->pad_before2;
                const int32_t inside2 = inside1 && y2 >= 0 && y2 < in2;
                for (i3 = 0; i3 < out3; ++i3) {
                    const int32_t y3 = i3 - params->pad_before3;
                    const int32_t inside3 = inside2 && y3 >= 0 && y3 < in3;
                    /* Input index of (y0, y1, y2, y3, 0), formed only when inside. */
                    const int32_t row = inside3 ? (((y0 * in1 + y1) * in2 + y2) * in3 + y3) * in4 : 0;
                    for (i4 = 0; i4 < out4; ++i4) {
                        const int32_t y4 = i4 - params->pad_before4;
                        output[o++] = inside3 && y4 >= 0 && y4 < in4 ? input[row + y4] : pad_value;
                    }
                }
            }
        }
    }
}
