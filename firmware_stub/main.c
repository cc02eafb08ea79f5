/*
 * main.c - the on-device accuracy and bit-exactness check.
 *
 * For every embedded test vector it runs si4_model_invoke(), compares all
 * output bytes with the output TensorFlow Lite Micro produced for the same
 * input (recorded by si4tool: the proof) and, when the vectors have labels,
 * the top-1 class with the label, and prints lines a script can parse:
 *
 *   vector <i> label <l|-> predicted <p> exact <0|1> count <n>
 *   layers <i> <n0> <n1> ...          (per-layer counts, first vectors only)
 *   accuracy <correct>/<total> <pct>%  (or "accuracy n/a (no labels)")
 *   bit-exact <exact>/<total>
 *   arena <bytes> bytes
 *   inference min <n> max <n> mean <n> <unit>
 *   stack <bytes> bytes               (where the platform can tell)
 *   result PASS|FAIL
 *
 * The exit status is 0 when every vector is bit-exact, 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "platform.h"
/* model.h and test_vectors.h, or those of the model built with --name. */
#include "si4_model_binding.h"

/* Per-layer counts are taken on the first few vectors only: they hardly
 * depend on the data, and printing them for every vector would dominate a
 * slow UART. */
#ifndef SI4_PROFILED_VECTORS
#define SI4_PROFILED_VECTORS 8
#endif

/* Set to 0 to print only the summary (e.g. on a slow UART). */
#ifndef SI4_PRINT_VECTORS
#define SI4_PRINT_VECTORS 1
#endif

/* test_vectors.h from before this macro always held labels. */
#ifndef SI4_TEST_VECTOR_HAS_LABELS
#define SI4_TEST_VECTOR_HAS_LABELS 1
#endif

#if SI4_TEST_VECTOR_OUTPUT_SIZE != SI4_MODEL_OUTPUT_SIZE || SI4_TEST_VECTOR_INPUT_SIZE != SI4_MODEL_INPUT_SIZE
#error "test_vectors.h and model.h come from different models: render both with one si4tool run"
#endif

static int8_t model_output[SI4_MODEL_OUTPUT_SIZE];

static int32_t argmax_s8(const int8_t *values, int32_t count)
{
    int32_t best = 0;
    int32_t i;
    for (i = 1; i < count; ++i) {
        if (values[i] > values[best]) {
            best = i;
        }
    }
    return best;
}

/* The per-layer tables exist when model.c is compiled with SI4_LAYER_TABLES (the
 * firmware Makefile does); without them main.c checks whole inferences only. */
#ifdef SI4_LAYER_TABLES
static void profile_layers(int32_t vector_index, const int8_t *input)
{
    int32_t layer;
    printf("layers %ld", (long)vector_index);
    for (layer = 0; layer < SI4_MODEL_LAYER_COUNT; ++layer) {
        const uint64_t start = platform_counter_read();
        si4_model_layers[layer](input, model_output);
        printf(" %lu", (unsigned long)(platform_counter_read() - start));
    }
    printf("\n");
}
#endif

int main(void)
{
    int32_t correct = 0;
    int32_t exact = 0;
    int32_t i;
    uint64_t count_min = UINT64_MAX;
    uint64_t count_max = 0;
    uint64_t count_sum = 0;
    int32_t stack_bytes;

    platform_stack_paint();
    platform_init();
    printf("si4 model %s layers %d vectors %d counter %s\n", SI4_MODEL_SHA256_SHORT, SI4_MODEL_LAYER_COUNT,
           SI4_TEST_VECTOR_COUNT, platform_counter_unit());

    for (i = 0; i < SI4_TEST_VECTOR_COUNT; ++i) {
        const int8_t *input = si4_test_inputs[i];
        uint64_t start;
        uint64_t elapsed;
        int32_t predicted;
        int is_exact;

        start = platform_counter_read();
        si4_model_invoke(input, model_output);
        elapsed = platform_counter_read() - start;

        predicted = argmax_s8(model_output, SI4_MODEL_OUTPUT_SIZE);
        is_exact = memcmp(model_output, si4_test_expected_outputs[i], SI4_MODEL_OUTPUT_SIZE) == 0;
#if SI4_TEST_VECTOR_HAS_LABELS
        correct += predicted == (int32_t)si4_test_labels[i];
#endif
        exact += is_exact;
        count_min = elapsed < count_min ? elapsed : count_min;
        count_max = elapsed > count_max ? elapsed : count_max;
        count_sum += elapsed;
#if SI4_PRINT_VECTORS && SI4_TEST_VECTOR_HAS_LABELS
        printf("vector %ld label %d predicted %ld exact %d count %lu\n", (long)i, (int)si4_test_labels[i],
               (long)predicted, is_exact, (unsigned long)elapsed);
#elif SI4_PRINT_VECTORS
        printf("vector %ld label - predicted %ld exact %d count %lu\n", (long)i, (long)predicted, is_exact,
               (unsigned long)elapsed);
#endif
#ifdef SI4_LAYER_TABLES
        if (i < SI4_PROFILED_VECTORS) {
            profile_layers(i, input);
        }
#endif
    }

#if SI4_TEST_VECTOR_HAS_LABELS
    /* Integer percentage with two decimals: no floating point printf needed on the board. */
    {
        const uint32_t basis_points = (uint32_t)(((uint64_t)correct * 10000u) / SI4_TEST_VECTOR_COUNT);
        printf("accuracy %ld/%d %lu.%02lu%%\n", (long)correct, SI4_TEST_VECTOR_COUNT,
               (unsigned long)(basis_points / 100u), (unsigned long)(basis_points % 100u));
    }
#else
    (void)correct;
    printf("accuracy n/a (no labels)\n");
#endif
    printf("bit-exact %ld/%d\n", (long)exact, SI4_TEST_VECTOR_COUNT);
    printf("arena %d bytes\n", SI4_MODEL_ARENA_BYTES);
    printf("inference min %lu max %lu mean %lu %s\n", (unsigned long)count_min, (unsigned long)count_max,
           (unsigned long)(count_sum / SI4_TEST_VECTOR_COUNT), platform_counter_unit());
    stack_bytes = platform_stack_used_bytes();
    if (stack_bytes >= 0) {
        printf("stack %ld bytes\n", (long)stack_bytes);
    }
    printf("result %s\n", exact == SI4_TEST_VECTOR_COUNT ? "PASS" : "FAIL");
    fflush(stdout);
    platform_exit(exact == SI4_TEST_VECTOR_COUNT ? 0 : 1);
    return 0;
}
