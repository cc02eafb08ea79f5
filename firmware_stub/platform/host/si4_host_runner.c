/*
 * si4_host_runner.c - entry points for calling the generated engine from
 * Python (ctypes) on the host: a batch runner for validating all test images,
 * a timed batch runner for the latency bench and a per-layer runner for
 * tracing. The engine code is the same C that runs on the board; only this
 * file is host-specific.
 */
#define _POSIX_C_SOURCE 199309L

#include <stdint.h>
#include <string.h>
#include <time.h>

/* model.h, or that of the model built with --name (the engine only: no test vectors). */
#define SI4_BIND_NO_VECTORS
#include "si4_model_binding.h"

int32_t si4_host_input_size(void) { return SI4_MODEL_INPUT_SIZE; }

int32_t si4_host_output_size(void) { return SI4_MODEL_OUTPUT_SIZE; }

int32_t si4_host_layer_count(void) { return SI4_MODEL_LAYER_COUNT; }

int32_t si4_host_arena_bytes(void) { return SI4_MODEL_ARENA_BYTES; }

/* Runs `count` images stored back to back in `inputs`; outputs likewise. */
int32_t si4_host_run_batch(const int8_t *inputs, int32_t count, int8_t *outputs)
{
    int32_t i;
    for (i = 0; i < count; ++i) {
        const int status = si4_model_invoke(inputs + (int64_t)i * SI4_MODEL_INPUT_SIZE,
                                            outputs + (int64_t)i * SI4_MODEL_OUTPUT_SIZE);
        if (status != 0) {
            return status;
        }
    }
    return 0;
}

static uint64_t si4_host_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Runs `warmup` untimed inferences on the first image, then every image once,
 * timing each inference alone with the monotonic clock (so neither ctypes nor
 * Python's loop is in the figure): ns_per_image[i] is image i's wall time.
 * Returns 0, or the first non-zero status of si4_model_invoke. */
int32_t si4_host_time_batch(const int8_t *inputs, int32_t count, int32_t warmup, int8_t *outputs,
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
        const uint64_t start = si4_host_now_ns();
        const int status = si4_model_invoke(input, output);
        ns_per_image[i] = (int64_t)(si4_host_now_ns() - start);
        if (status != 0) {
            return status;
        }
    }
    return 0;
}

/* Runs layer `layer` alone (the previous layers must have run) and copies its
 * output tensor, wherever the planner put it, into `layer_output`. Returns the
 * number of bytes copied, or -1 for a layer index out of range. */
int32_t si4_host_run_layer(int32_t layer, const int8_t *input, int8_t *output, int8_t *layer_output)
{
    int32_t offset;
    int32_t size;
    if (layer < 0 || layer >= SI4_MODEL_LAYER_COUNT) {
        return -1;
    }
    si4_model_layers[layer](input, output);
    offset = si4_model_layer_output_offsets[layer];
    size = si4_model_layer_output_sizes[layer];
    memcpy(layer_output, offset < 0 ? output : si4_model_arena + offset, (size_t)size);
    return size;
}
