/*
 * si4_maximum_into_s8.c - elementwise int8 maximum into an accumulator row.
 *
 * A row-streamed schedule max-pools a window of rows in parts: the first
 * part is written by the pool kernel, each further part is folded in here.
 * max is associative and commutative, so the result equals pooling the whole
 * window at once (and the pool's clamp, applied to every part, commutes with
 * max because it is monotonic).
 */
#include "si4_nn_stream.h"

void si4_maximum_into_s8(const int8_t *values, int8_t *accumulator, int32_t size)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        if (values[i] > accumulator[i]) {
            accumulator[i] = values[i];
        }
    }
}
