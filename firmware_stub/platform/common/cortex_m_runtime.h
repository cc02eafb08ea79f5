/*
 * cortex_m_runtime.h - the board-independent part of the Cortex-M start-up
 * and platform code, shared by every board under platform/ (each board's
 * board.mk compiles cortex_m_runtime.c with its own platform sources).
 *
 * The linker scripts provide __data_load/__data_start/__data_end,
 * __bss_start__/__bss_end__, the .preinit_array/.init_array bounds and
 * __stack_limit/__stack_top. platform_stack_paint() and
 * platform_stack_used_bytes() (platform.h) are defined in cortex_m_runtime.c.
 */
#ifndef SI4_CORTEX_M_RUNTIME_H
#define SI4_CORTEX_M_RUNTIME_H

#include <stdint.h>

/* The C runtime set-up a reset handler does before main(): copy .data from
 * flash, zero .bss, run the constructors in .preinit_array/.init_array. */
void si4_c_runtime_init(void);

/* Writes value as 8 lower-case hex digits to text[0..7] (no terminator),
 * without the C library: fault handlers use it, and a fault may come from
 * inside the library. */
void si4_format_hex32(char *text, uint32_t value);

#endif /* SI4_CORTEX_M_RUNTIME_H */
