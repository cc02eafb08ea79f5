/*
 * platform_mps2.c - platform.h for the MPS2 AN386 (Cortex-M4) / AN385
 * (Cortex-M3) images under QEMU.
 *
 * Output: newlib's librdimon sends stdout to the host through semihosting.
 *
 * Counter: CMSDK APB timer 0, clocked at the board's 25 MHz. QEMU runs with
 * `-icount shift=0`: every guest instruction advances the virtual clock by
 * exactly 1 ns, so one timer tick (40 ns) is 40 instructions. The count is
 * therefore deterministic and in *instructions*, not cycles: QEMU models no
 * pipeline, wait states or multi-cycle instructions. Resolution: 40.
 *
 * Stack: painted and measured by platform/common/cortex_m_runtime.c.
 */
#include <stdint.h>
#include <stdio.h>

#include "platform.h"
#include "semihosting.h"

/* ARM CMSDK APB timer (ARM DDI 0479): a 32-bit down-counter that reloads. */
typedef struct {
    volatile uint32_t ctrl;      /* bit 0: enable */
    volatile uint32_t value;     /* current count, counts down */
    volatile uint32_t reload;    /* value loaded when the count reaches 0 */
    volatile uint32_t intstatus; /* write 1 to clear */
} cmsdk_apb_timer;

#define CMSDK_TIMER0 ((cmsdk_apb_timer *)0x40000000u)
#define TIMER_CTRL_ENABLE 1u
#define TIMER_RELOAD 0xFFFFFFFFu
/* 25 MHz timer clock, 1 GHz virtual instruction clock under -icount shift=0. */
#define INSTRUCTIONS_PER_TICK 40u

/* newlib's librdimon: opens the semihosting console as stdin/stdout/stderr.
 * Its own crt0 calls this; ours (startup.c) leaves it to platform_init. */
extern void initialise_monitor_handles(void);

static uint32_t last_tick_value;
static uint32_t wrap_count;

void platform_init(void)
{
    initialise_monitor_handles();
    /* Unbuffered stdout would cost one semihosting trap per character. */
    setvbuf(stdout, NULL, _IOLBF, 128);

    CMSDK_TIMER0->ctrl = 0u;
    CMSDK_TIMER0->reload = TIMER_RELOAD;
    CMSDK_TIMER0->value = TIMER_RELOAD;
    CMSDK_TIMER0->ctrl = TIMER_CTRL_ENABLE;
    last_tick_value = TIMER_RELOAD;
    wrap_count = 0u;
}

/* A 64-bit instruction count from the 32-bit down-counter: a wrap is seen as
 * the count going up between two reads. It takes 2^32 ticks (172 s of
 * virtual time) to wrap, far longer than anything measured between reads. */
uint64_t platform_counter_read(void)
{
    const uint32_t value = CMSDK_TIMER0->value;
    uint64_t ticks;
    if (value > last_tick_value) {
        ++wrap_count;
    }
    last_tick_value = value;
    ticks = ((uint64_t)wrap_count << 32) + (uint64_t)(TIMER_RELOAD - value);
    return ticks * INSTRUCTIONS_PER_TICK;
}

const char *platform_counter_unit(void) { return "instructions"; }

void platform_exit(int status)
{
    fflush(stdout);
    semihosting_exit(status);
}
