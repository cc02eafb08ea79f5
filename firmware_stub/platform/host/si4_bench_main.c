/*
 * si4_bench_main.c - host-side measurement of the generated engine for
 * `si4tool bench`. Only this file is bench-specific; the engine is the same
 * model.c, model_weights.c and kernels that run on the board.
 *
 * Two uses, one file:
 *
 * 1. Built into a shared library (with -DSI4_BENCH_NO_MAIN) and called from
 *    Python: si4_bench_time_images() times every image with the monotonic
 *    clock around si4_model_invoke() alone, so neither the ctypes call nor
 *    Python's loop is part of the latency.
 *
 * 2. Built as a program and run under `valgrind --tool=callgrind
 *    --collect-atstart=no`: it runs the first test vectors once with the
 *    whole inference collected, then once per layer with only that layer
 *    collected, and dumps the counters after each pass
 *    (CALLGRIND_DUMP_STATS_AT). Each dump then holds the instructions of
 *    exactly one thing, whatever the generated functions are called and
 *    whether or not the compiler inlined them. Outside valgrind the client
 *    requests do nothing and the program just runs the vectors.
 *
 *    usage: si4_bench [vectors]      (default 4, at most the embedded count)
 */
#define _POSIX_C_SOURCE 199309L

#include <stdint.h>
#include <time.h>

#include "model.h"

static uint64_t si4_bench_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

int32_t si4_bench_input_size(void) { return SI4_MODEL_INPUT_SIZE; }

int32_t si4_bench_output_size(void) { return SI4_MODEL_OUTPUT_SIZE; }

int32_t si4_bench_layer_count(void) { return SI4_MODEL_LAYER_COUNT; }

/* Runs `warmup` untimed inferences on the first image, then every image once,
 * timing each inference alone: ns_per_image[i] is image i's wall time in ns.
 * Returns 0, or the first non-zero status of si4_model_invoke. */
int32_t si4_bench_time_images(const int8_t *inputs, int32_t count, int32_t warmup, int8_t *outputs,
                              int64_t *ns_per_image)
{
    int32_t i;
    for (i = 0; i < warmup && count > 0; ++i) {
        const int status = si4_model_invoke(inputs, outputs);
        if (status != 0) {
            return status;
        }
    }
    for (i = 0; i < count; ++i) {
        const int8_t *input = inputs + (int64_t)i * SI4_MODEL_INPUT_SIZE;
        int8_t *output = outputs + (int64_t)i * SI4_MODEL_OUTPUT_SIZE;
        const uint64_t start = si4_bench_now_ns();
        const int status = si4_model_invoke(input, output);
        ns_per_image[i] = (int64_t)(si4_bench_now_ns() - start);
        if (status != 0) {
            return status;
        }
    }
    return 0;
}

#ifndef SI4_BENCH_NO_MAIN

#include <stdio.h>
#include <stdlib.h>
#include <valgrind/callgrind.h>

#include "test_vectors.h"

static int8_t bench_output[SI4_MODEL_OUTPUT_SIZE];

int main(int argc, char **argv)
{
    int32_t vectors = 4;
    int32_t i;
    int32_t layer;
    int32_t run_layer;

    if (argc > 1) {
        vectors = (int32_t)atoi(argv[1]);
    }
    if (vectors < 1 || vectors > SI4_TEST_VECTOR_COUNT) {
        fprintf(stderr, "vectors must be between 1 and %d\n", SI4_TEST_VECTOR_COUNT);
        return 2;
    }

    /* Warm-up outside collection: first-touch page faults and lazy binding
     * are not the engine's instructions. */
    si4_model_invoke(si4_test_inputs[0], bench_output);

    /* Pass 1: whole inferences. */
    CALLGRIND_ZERO_STATS;
    for (i = 0; i < vectors; ++i) {
        CALLGRIND_TOGGLE_COLLECT;
        si4_model_invoke(si4_test_inputs[i], bench_output);
        CALLGRIND_TOGGLE_COLLECT;
    }
    CALLGRIND_DUMP_STATS_AT("si4_bench invoke");

    /* Pass 2: one layer at a time; the other layers run uncollected because
     * each layer reads what the previous one left in the arena. */
    for (layer = 0; layer < SI4_MODEL_LAYER_COUNT; ++layer) {
        char label[48];
        CALLGRIND_ZERO_STATS;
        for (i = 0; i < vectors; ++i) {
            for (run_layer = 0; run_layer < SI4_MODEL_LAYER_COUNT; ++run_layer) {
                if (run_layer == layer) {
                    CALLGRIND_TOGGLE_COLLECT;
                    si4_model_layers[run_layer](si4_test_inputs[i], bench_output);
                    CALLGRIND_TOGGLE_COLLECT;
                } else {
                    si4_model_layers[run_layer](si4_test_inputs[i], bench_output);
                }
            }
        }
        sprintf(label, "si4_bench layer %ld", (long)layer);
        CALLGRIND_DUMP_STATS_AT(label);
    }

    printf("si4_bench vectors %ld layers %d\n", (long)vectors, SI4_MODEL_LAYER_COUNT);
    return 0;
}

#endif /* SI4_BENCH_NO_MAIN */
