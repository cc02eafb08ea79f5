/*
 * counter_test.c - checks that platform_counter_read() counts instructions.
 *
 * Runs an assembly loop of exactly 2 instructions per iteration (subs, bne)
 * for several lengths and prints what the counter measured:
 *
 *   loop <iterations> instructions <expected> measured <count>
 *
 * The expected count is 2 * iterations + 1 (the mov that loads the
 * counter). The difference between measured and expected is the constant
 * cost of the two counter reads plus the tick quantisation (40); a test
 * checks that the slope is exactly one count per instruction.
 */
#include <stdint.h>
#include <stdio.h>

#include "platform.h"

/* noinline: the loop body must be exactly these instructions. */
static __attribute__((noinline)) void run_loop(uint32_t iterations)
{
    __asm__ volatile(
        "   mov r0, %0      \n"
        "1: subs r0, r0, #1 \n"
        "   bne 1b          \n"
        :
        : "r"(iterations)
        : "r0", "cc");
}

int main(void)
{
    static const uint32_t lengths[] = {1000u, 10000u, 100000u, 1000000u, 5000000u};
    uint32_t i;
    platform_stack_paint();
    platform_init();
    printf("counter unit %s\n", platform_counter_unit());
    for (i = 0; i < sizeof lengths / sizeof lengths[0]; ++i) {
        uint64_t start;
        uint64_t count;
        start = platform_counter_read();
        run_loop(lengths[i]);
        count = platform_counter_read() - start;
        printf("loop %lu instructions %lu measured %lu\n", (unsigned long)lengths[i],
               (unsigned long)(2u * lengths[i] + 1u), (unsigned long)count);
    }
    printf("stack %ld bytes\n", (long)platform_stack_used_bytes());
    printf("result PASS\n");
    platform_exit(0);
    return 0;
}
