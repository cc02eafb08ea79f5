/*
 * startup.c - reset and fault handling for the MPS2 AN386 (Cortex-M4) and
 * AN385 (Cortex-M3) images under QEMU.
 *
 * Reset: enable the FPU (the firmware is built for the hard-float ABI),
 * copy .data from flash, zero .bss, run the C/C++ constructors in
 * .preinit_array/.init_array, then call main(). A fault prints where it
 * happened through semihosting and ends QEMU with exit status 3, so a
 * crashing firmware can never look like a passing one.
 */
#include <stdint.h>

#include "cortex_m_runtime.h"
#include "semihosting.h"

extern uint32_t __stack_top; /* the linker script */

extern int main(void);

void Reset_Handler(void);
void HardFault_Handler(void);
void Default_Handler(void);
void si4_report_fault(const uint32_t *stacked_frame, uint32_t exc_return);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)
#define SCB_SHCSR (*(volatile uint32_t *)0xE000ED24u)
#define FAULT_EXIT_STATUS 3

void Reset_Handler(void)
{
#if defined(__ARM_FP)
    /* CP10 and CP11 full access: the hard-float ABI uses s0-s15 from the first call. */
    SCB_CPACR |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
    /* Separate MemManage/BusFault/UsageFault handlers report more precisely than an escalated HardFault. */
    SCB_SHCSR |= (1u << 16) | (1u << 17) | (1u << 18);
#endif

    si4_c_runtime_init();

    semihosting_exit(main());
}

/* Called by the fault handlers with the exception frame the core pushed:
 * r0, r1, r2, r3, r12, lr, pc, xpsr. */
void si4_report_fault(const uint32_t *stacked_frame, uint32_t exc_return)
{
    char message[] = "\nFAULT pc 0x________ lr 0x________ cfsr 0x________ hfsr 0x________ bfar 0x________\n";
    si4_format_hex32(&message[10], stacked_frame[6]);
    si4_format_hex32(&message[25], stacked_frame[5]);
    si4_format_hex32(&message[42], SCB_CFSR);
    si4_format_hex32(&message[59], SCB_HFSR);
    si4_format_hex32(&message[76], SCB_BFAR);
    (void)exc_return;
    semihosting_write0(message);
    semihosting_write0("result FAIL\n");
    semihosting_exit(FAULT_EXIT_STATUS);
}

/* Finds the exception frame (main or process stack, bit 2 of EXC_RETURN)
 * and hands it to the C reporter; naked so no prologue moves the stack. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm__ volatile(
        "movs r0, #4            \n"
        "mov  r1, lr            \n"
        "tst  r0, r1            \n"
        "beq  1f                \n"
        "mrs  r0, psp           \n"
        "b    2f                \n"
        "1:                     \n"
        "mrs  r0, msp           \n"
        "2:                     \n"
        "ldr  r2, =si4_report_fault \n"
        "bx   r2                \n"
        ".ltorg                 \n");
}

void Default_Handler(void)
{
    semihosting_write0("\nFAULT unexpected interrupt\nresult FAIL\n");
    semihosting_exit(FAULT_EXIT_STATUS);
}

/* Cortex-M3/M4 vector table: initial stack pointer, then handlers. The
 * firmware uses no interrupts (the timer is polled), so all IRQs share the
 * default handler, which reports and exits. */
#define IRQ_COUNT 32
__attribute__((section(".vectors"), used)) static const void *const vector_table[16 + IRQ_COUNT] = {
    &__stack_top,
    (const void *)Reset_Handler,
    (const void *)Default_Handler,   /* NMI */
    (const void *)HardFault_Handler, /* HardFault */
    (const void *)HardFault_Handler, /* MemManage */
    (const void *)HardFault_Handler, /* BusFault */
    (const void *)HardFault_Handler, /* UsageFault */
    0, 0, 0, 0,
    (const void *)Default_Handler,   /* SVCall */
    (const void *)Default_Handler,   /* DebugMonitor */
    0,
    (const void *)Default_Handler,   /* PendSV */
    (const void *)Default_Handler,   /* SysTick */
    [16 ... 16 + IRQ_COUNT - 1] = (const void *)Default_Handler,
};
