/*
 * cortex_m_runtime.c - see cortex_m_runtime.h: C runtime initialisation,
 * hex formatting for fault reports, and stack painting (platform.h).
 *
 * Stack: the region between __stack_limit and the current stack pointer is
 * painted with a pattern at start-up; the high-water mark is the deepest
 * word that no longer holds it.
 */
#include <stdint.h>

#include "cortex_m_runtime.h"
#include "platform.h"

extern uint32_t __data_load;
extern uint32_t __data_start;
extern uint32_t __data_end;
extern uint32_t __bss_start__;
extern uint32_t __bss_end__;
extern uint32_t __stack_limit;
extern uint32_t __stack_top;

typedef void (*constructor_fn)(void);
extern constructor_fn __preinit_array_start[];
extern constructor_fn __preinit_array_end[];
extern constructor_fn __init_array_start[];
extern constructor_fn __init_array_end[];

#define STACK_PAINT_WORD 0x5A4B3C2Du
/* Words just below the stack pointer left unpainted: the painter's own frame. */
#define STACK_PAINT_MARGIN_WORDS 16u

void si4_c_runtime_init(void)
{
    const uint32_t *source;
    uint32_t *destination;
    constructor_fn *constructor;

    for (source = &__data_load, destination = &__data_start; destination < &__data_end;) {
        *destination++ = *source++;
    }
    for (destination = &__bss_start__; destination < &__bss_end__;) {
        *destination++ = 0u;
    }
    for (constructor = __preinit_array_start; constructor < __preinit_array_end; ++constructor) {
        (*constructor)();
    }
    for (constructor = __init_array_start; constructor < __init_array_end; ++constructor) {
        (*constructor)();
    }
}

void si4_format_hex32(char *text, uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    int32_t i;
    for (i = 7; i >= 0; --i) {
        text[i] = digits[value & 0xFu];
        value >>= 4;
    }
}

/* Paints from the bottom of the stack region up to just below the caller's
 * frame. noinline: the margin must be measured from this function's frame. */
__attribute__((noinline)) void platform_stack_paint(void)
{
    uintptr_t stack_pointer;
    uint32_t *word = &__stack_limit;
    __asm__ volatile("mov %0, sp" : "=r"(stack_pointer));
    stack_pointer -= STACK_PAINT_MARGIN_WORDS * sizeof(uint32_t);
    while ((uintptr_t)word < stack_pointer) {
        *word++ = STACK_PAINT_WORD;
    }
}

int32_t platform_stack_used_bytes(void)
{
    const uint32_t *word = &__stack_limit;
    while (word < &__stack_top && *word == STACK_PAINT_WORD) {
        ++word;
    }
    return (int32_t)((uintptr_t)&__stack_top - (uintptr_t)word);
}
