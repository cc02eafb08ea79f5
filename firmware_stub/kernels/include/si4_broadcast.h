/*
 * si4_broadcast.h - walking two broadcast inputs in the output's row-major
 * order, for the elementwise kernels with broadcasting (SUB, MUL).
 *
 * si4_broadcast_params describes the output as six nested loops and each
 * input's element step per loop (0 along a dimension it broadcasts). Rather
 * than six nested loops in every kernel, a cursor keeps the six loop counters
 * (an odometer) and the two input indices; advancing it costs one add per
 * input and, at the end of a row, a carry into the next loop out.
 */
#ifndef SI4_BROADCAST_H
#define SI4_BROADCAST_H

#include <stdint.h>

#include "si4_nn_ops.h"

#define SI4_BROADCAST_DIMS 6

typedef struct {
    int32_t shape[SI4_BROADCAST_DIMS];
    int32_t step1[SI4_BROADCAST_DIMS];
    int32_t step2[SI4_BROADCAST_DIMS];
    int32_t count[SI4_BROADCAST_DIMS];
    int32_t index1; /* element of input 1 under the cursor */
    int32_t index2; /* element of input 2 under the cursor */
} si4_broadcast_cursor;

/* Elements of the output: the product of the six loop counts. */
static inline int32_t si4_broadcast_begin(const si4_broadcast_params *b, si4_broadcast_cursor *cursor)
{
    const int32_t shape[SI4_BROADCAST_DIMS] = {b->shape0, b->shape1, b->shape2, b->shape3, b->shape4, b->shape5};
    const int32_t step1[SI4_BROADCAST_DIMS] = {b->input1_stride0, b->input1_stride1, b->input1_stride2,
                                               b->input1_stride3, b->input1_stride4, b->input1_stride5};
    const int32_t step2[SI4_BROADCAST_DIMS] = {b->input2_stride0, b->input2_stride1, b->input2_stride2,
                                               b->input2_stride3, b->input2_stride4, b->input2_stride5};
    int32_t total = 1;
    int32_t d;
    for (d = 0; d < SI4_BROADCAST_DIMS; ++d) {
        cursor->shape[d] = shape[d];
        cursor->step1[d] = step1[d];
        cursor->step2[d] = step2[d];
        cursor->count[d] = 0;
        total *= shape[d];
    }
    cursor->index1 = 0;
    cursor->index2 = 0;
    return total;
}

/* Moves to the next output element: the innermost loop steps; a loop that
 * reaches its count rewinds and carries into the loop around it. */
static inline void si4_broadcast_advance(si4_broadcast_cursor *cursor)
{
    int32_t d = SI4_BROADCAST_DIMS - 1;
    cursor->index1 += cursor->step1[d];
    cursor->index2 += cursor->step2[d];
    while (++cursor->count[d] == cursor->shape[d] && d > 0) {
        cursor->index1 -= cursor->step1[d] * cursor->shape[d];
        cursor->index2 -= cursor->step2[d] * cursor->shape[d];
        cursor->count[d] = 0;
        --d;
        cursor->index1 += cursor->step1[d];
        cursor->index2 += cursor->step2[d];
    }
}

#endif /* SI4_BROADCAST_H */
