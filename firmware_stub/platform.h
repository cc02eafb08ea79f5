/*
 * platform.h - what the firmware needs from a board, and nothing more.
 *
 * main.c prints with the C library's printf; each platform retargets stdout
 * (host: the terminal, QEMU: semihosting, a board: its UART). A port
 * implements the functions below in platform/<board>/; see docs/porting.md.
 */
#ifndef SI4_PLATFORM_H
#define SI4_PLATFORM_H

#include <stdint.h>

/* Clocks, UART, timers: everything before the first printf. */
void platform_init(void);

/* A free-running counter, read before and after the code being measured.
 * Its unit is platform_counter_unit(): "cycles" on a board with a cycle
 * counter, "instructions" under QEMU -icount, "ns" on a host. */
uint64_t platform_counter_read(void);
const char *platform_counter_unit(void);

/* Stack high-water mark: paint the unused stack with a pattern at start-up,
 * and later count how much of it was overwritten. Returns -1 where the
 * platform cannot tell (the host). */
void platform_stack_paint(void);
int32_t platform_stack_used_bytes(void);

/* End the program with an exit status (0 pass, 1 mismatch). Does not return. */
void platform_exit(int status);

#endif /* SI4_PLATFORM_H */
