/*
 * si4_bench_main.c - the generated engine under callgrind, for `si4tool bench`.
 * Only this file is bench-specific; the engine is the same model.c,
 * model_weights.c and kernels that run on the board (the latency bench calls
 * si4_host_time_batch of si4_host_runner.c instead).
 *
 * Run under `valgrind --tool=callgrind --collect-atstart=no`, it runs the
 * first test vectors once with the whole inference collected, then once per
 * layer with only that layer collected, and dumps the counters after each
 * pass (CALLGRIND_DUMP_STATS_AT). Each dump then holds the instructions of
 * exactly one thing, whatever the generated functions are called and whether
 * or not the compiler inlined them. Outside valgrind the client requests do
 * nothing and the program just runs the vectors.
 *
 * usage: si4_bench [vectors]      (default 4, at most the embedded count)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <valgrind/callgrind.h>

/* model.h and test_vectors.h, or those of the model built with --name. */
#include "si4_model_binding.h"

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
