/*
 * semihosting.h - the two Arm semihosting calls the platform needs directly.
 *
 * printf output goes through newlib's librdimon (linked with
 * --specs=rdimon.specs), which also uses semihosting. These helpers cover
 * what must work without the C library: the fault handler's message and the
 * exit status. Semihosting on M-profile traps with `bkpt 0xAB`; QEMU needs
 * `-semihosting` (or `-semihosting-config enable=on`) or the core locks up.
 */
#ifndef SI4_SEMIHOSTING_H
#define SI4_SEMIHOSTING_H

#include <stdint.h>

#define SEMIHOSTING_SYS_WRITE0 0x04u
#define SEMIHOSTING_SYS_EXIT 0x18u
#define SEMIHOSTING_SYS_EXIT_EXTENDED 0x20u

/* Reason codes of SYS_EXIT (Arm semihosting specification, "angel" codes). */
#define SEMIHOSTING_ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define SEMIHOSTING_ADP_STOPPED_RUNTIME_ERROR 0x20023u

static inline uint32_t semihosting_call(uint32_t operation, const void *argument)
{
    register uint32_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static inline void semihosting_write0(const char *text)
{
    (void)semihosting_call(SEMIHOSTING_SYS_WRITE0, text);
}

/* Ends the QEMU process with `status` as its exit code. SYS_EXIT_EXTENDED
 * carries the code; plain SYS_EXIT (32-bit Arm passes the reason in r1, not a
 * block) only tells success from failure, and is the fallback if the first
 * call returns on an old host. */
static inline void semihosting_exit(int status)
{
    const uint32_t block[2] = {SEMIHOSTING_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    (void)semihosting_call(SEMIHOSTING_SYS_EXIT_EXTENDED, block);
    (void)semihosting_call(SEMIHOSTING_SYS_EXIT, (const void *)(uintptr_t)(status == 0
        ? SEMIHOSTING_ADP_STOPPED_APPLICATION_EXIT : SEMIHOSTING_ADP_STOPPED_RUNTIME_ERROR));
    for (;;) {
    }
}

#endif /* SI4_SEMIHOSTING_H */
