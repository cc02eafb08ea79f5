/*
 * test_support.h - what the two-kernel test firmwares (kernel_test.c,
 * depthwise_test.c) share: the buffers a case fills and a seeded generator,
 * so that a failing case replays exactly from its index.
 *
 * Define BUFFER_BYTES, MAX_CHANNELS and TEST_RANDOM_SEED before including it.
 */
#ifndef SI4_TEST_SUPPORT_H
#define SI4_TEST_SUPPORT_H

#include <stdint.h>

#if !defined(BUFFER_BYTES) || !defined(MAX_CHANNELS) || !defined(TEST_RANDOM_SEED)
#error "define BUFFER_BYTES, MAX_CHANNELS and TEST_RANDOM_SEED before including test_support.h"
#endif

static int8_t input[BUFFER_BYTES];
static int8_t filter[BUFFER_BYTES];
static int32_t bias[MAX_CHANNELS];
static int32_t multiplier[MAX_CHANNELS];
static int32_t shift[MAX_CHANNELS];
static int8_t output_portable[BUFFER_BYTES];
static int8_t output_dsp[BUFFER_BYTES];

static uint32_t random_state = TEST_RANDOM_SEED;

static uint32_t random_u32(void)
{
    /* xorshift32 */
    random_state ^= random_state << 13;
    random_state ^= random_state >> 17;
    random_state ^= random_state << 5;
    return random_state;
}

/* Uniform in [low, high]. */
static int32_t random_between(int32_t low, int32_t high)
{
    return low + (int32_t)(random_u32() % (uint32_t)(high - low + 1));
}

static void fill_s8(int8_t *buffer, int32_t count)
{
    int32_t i;
    for (i = 0; i < count; ++i) {
        buffer[i] = (int8_t)random_between(-128, 127);
    }
}

#endif /* SI4_TEST_SUPPORT_H */
