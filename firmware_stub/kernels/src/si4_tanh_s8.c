/*
 * si4_tanh_s8.c - TANH, int8, by table look-up.
 *
 * out = table[(uint8_t)x]. TFLM's micro kernel computes each element with
 * reference_integer_ops::Tanh (gemmlowp::tanh on Q4.27, then RoundingDivideByPOT to Q0.7); an int8 input has only 256 values, so
 * si4tool/compiler/ops/tanh.py evaluates that same integer arithmetic for
 * each of them at build time and this kernel reads the answer: bit-exact by
 * construction, checked against TFLM on all 256 inputs, no arithmetic at run
 * time and 256 bytes of flash per operator.
 */
#include "si4_nn_ops.h"

void si4_tanh_s8(const si4_table_params *params, const int8_t table[256], const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < params->size; ++i) {
        output[i] = table[(uint8_t)input[i]];
    }
}
