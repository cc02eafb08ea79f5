/*
 * schedule_sanitizer_driver.c - runs a generated engine under AddressSanitizer
 * and checks its arena's guard bytes (tests/test_memory_schedules.py).
 *
 * Usage: driver <inputs.bin> <outputs.bin> <count>. Before every inference
 * the arena is filled with 0xA5; afterwards every byte that no buffer of the
 * plan ever covers (schedule_guards.h, written by the test: the guards the
 * planner left after each buffer) must still hold 0xA5, so a kernel that
 * writes past its buffer (a band call with wrong rows, a ring overrun) fails
 * here even where ASan cannot see it (inside the one arena array).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "schedule_guards.h"

#define GUARD_PATTERN 0xA5

static int8_t input[SI4_MODEL_INPUT_SIZE];
static int8_t output[SI4_MODEL_OUTPUT_SIZE];

int main(int argc, char **argv)
{
    FILE *inputs;
    FILE *outputs;
    long count;
    long image;
    int32_t guard;
    if (argc != 4) {
        fprintf(stderr, "usage: %s inputs.bin outputs.bin count\n", argv[0]);
        return 2;
    }
    inputs = fopen(argv[1], "rb");
    outputs = fopen(argv[2], "wb");
    count = strtol(argv[3], 0, 10);
    if (inputs == 0 || outputs == 0) {
        fprintf(stderr, "cannot open the files\n");
        return 2;
    }
    for (image = 0; image < count; ++image) {
        if (fread(input, 1, sizeof input, inputs) != sizeof input) {
            fprintf(stderr, "short input file\n");
            return 2;
        }
        memset(si4_model_arena, GUARD_PATTERN, sizeof si4_model_arena);
        if (si4_model_invoke(input, output) != 0) {
            fprintf(stderr, "invoke failed\n");
            return 1;
        }
        for (guard = 0; guard < SCHEDULE_GUARD_COUNT; ++guard) {
            int32_t byte;
            for (byte = schedule_guards[guard][0]; byte < schedule_guards[guard][1]; ++byte) {
                if ((uint8_t)si4_model_arena[byte] != GUARD_PATTERN) {
                    printf("guard byte %ld overwritten (image %ld)\n", (long)byte, image);
                    return 1;
                }
            }
        }
        fwrite(output, 1, sizeof output, outputs);
    }
    fclose(inputs);
    fclose(outputs);
    printf("ok %ld\n", count);
    return 0;
}
