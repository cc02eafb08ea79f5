/* Host platform: stdout is the terminal, the counter is CLOCK_MONOTONIC in ns. */
#define _POSIX_C_SOURCE 199309L

#include <stdlib.h>
#include <time.h>

#include "platform.h"

void platform_init(void) {}

uint64_t platform_counter_read(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

const char *platform_counter_unit(void) { return "ns"; }

/* A hosted process has no fixed stack region to paint. */
void platform_stack_paint(void) {}

int32_t platform_stack_used_bytes(void) { return -1; }

void platform_exit(int status) { exit(status); }
