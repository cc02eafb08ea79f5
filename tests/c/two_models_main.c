/*
 * two_models_main.c - two models built with different --name in one firmware.
 *
 * kws (assets built with --name kws) runs over its static arena; anomaly
 * (--name anomaly, compiled with -DANOMALY_NO_STATIC_ARENA) over an arena
 * this program owns, through anomaly_invoke_with_arena. Both share one copy
 * of the si4_*_s8 kernels. Each model checks its own embedded vectors
 * against the outputs TensorFlow Lite Micro gave, and prints
 *
 *   model <name> bit-exact <exact>/<vectors>
 *   arena-errors <too small> <misaligned>
 *   result PASS|FAIL
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "anomaly_model.h"
#include "anomaly_test_vectors.h"
#include "kws_model.h"
#include "kws_test_vectors.h"
#include "platform.h"

#ifndef ANOMALY_NO_STATIC_ARENA
#error "build anomaly_model.c and this file with -DANOMALY_NO_STATIC_ARENA"
#endif

/* The caller's arena: one alignment unit more, so a misaligned start can be tried too. */
static int8_t caller_arena[ANOMALY_ARENA_BYTES + ANOMALY_ARENA_ALIGNMENT] __attribute__((aligned(ANOMALY_ARENA_ALIGNMENT)));
static int8_t kws_output[KWS_OUTPUT_SIZE];
static int8_t anomaly_output[ANOMALY_OUTPUT_SIZE];

static int32_t check_kws(void)
{
    int32_t exact = 0;
    int32_t i;
    for (i = 0; i < KWS_TEST_VECTOR_COUNT; ++i) {
        const int status = kws_invoke(kws_test_inputs[i], kws_output);
        exact += status == KWS_OK && memcmp(kws_output, kws_test_expected_outputs[i], KWS_OUTPUT_SIZE) == 0;
    }
    printf("model kws bit-exact %ld/%d\n", (long)exact, KWS_TEST_VECTOR_COUNT);
    return exact;
}

static int32_t check_anomaly(void)
{
    int32_t exact = 0;
    int32_t i;
    for (i = 0; i < ANOMALY_TEST_VECTOR_COUNT; ++i) {
        const int status = anomaly_invoke_with_arena(anomaly_test_inputs[i], anomaly_output, caller_arena,
                                                     sizeof caller_arena);
        exact += status == ANOMALY_OK &&
                 memcmp(anomaly_output, anomaly_test_expected_outputs[i], ANOMALY_OUTPUT_SIZE) == 0;
    }
    printf("model anomaly bit-exact %ld/%d\n", (long)exact, ANOMALY_TEST_VECTOR_COUNT);
    return exact;
}

int main(void)
{
    int32_t kws_exact;
    int32_t anomaly_exact;
    int too_small;
    int misaligned;
    int pass;

    platform_init();
    /* Interleaved, so neither model may depend on what the other leaves behind. */
    kws_exact = check_kws();
    anomaly_exact = check_anomaly();
    kws_exact = kws_exact == KWS_TEST_VECTOR_COUNT ? check_kws() : kws_exact;

    too_small = anomaly_invoke_with_arena(anomaly_test_inputs[0], anomaly_output, caller_arena,
                                          ANOMALY_ARENA_BYTES - 1);
    misaligned = anomaly_invoke_with_arena(anomaly_test_inputs[0], anomaly_output, caller_arena + 1,
                                           ANOMALY_ARENA_BYTES);
    printf("arena-errors %d %d\n", too_small, misaligned);

    pass = kws_exact == KWS_TEST_VECTOR_COUNT && anomaly_exact == ANOMALY_TEST_VECTOR_COUNT &&
           too_small == ANOMALY_ERROR_ARENA_TOO_SMALL && misaligned == ANOMALY_ERROR_ARENA_MISALIGNED;
    printf("result %s\n", pass ? "PASS" : "FAIL");
    fflush(stdout);
    platform_exit(pass ? 0 : 1);
    return 0;
}
