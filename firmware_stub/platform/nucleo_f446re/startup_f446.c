/*
 * startup_f446.c - reset and fault handling for the STM32F446RE.
 *
 * Reset: FPU on, .data copied from flash, .bss zeroed, constructors run,
 * main() called. A fault prints its program counter on the UART (the board
 * cannot end a process, so it then waits; the host-side reader sees
 * "result FAIL" and stops). With the vendor HAL, CubeMX's startup file can
 * replace this one: keep platform_nucleo.c and the linker symbols it uses.
 */
#include <stdint.h>

#include "cortex_m_runtime.h"

extern uint32_t __stack_top; /* the linker script */

extern int main(void);
/* platform_nucleo.c: polled UART output usable from a fault handler. */
extern void si4_board_uart_write(const char *text, uint32_t length);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)

void Reset_Handler(void)
{
    SCB_CPACR |= (0xFu << 20); /* CP10/CP11: the FPU, for the hard-float ABI */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    si4_c_runtime_init();
    (void)main();
    for (;;) {
        __asm__ volatile("wfi");
    }
}

void Fault_Handler(void)
{
    char message[] = "\r\nFAULT cfsr 0x________\r\nresult FAIL\r\n";
    si4_format_hex32(&message[14], SCB_CFSR);
    si4_board_uart_write(message, sizeof message - 1u);
    for (;;) {
    }
}

void Default_Handler(void)
{
    static const char message[] = "\r\nFAULT unexpected interrupt\r\nresult FAIL\r\n";
    si4_board_uart_write(message, sizeof message - 1u);
    for (;;) {
    }
}

/* Core exceptions and the first 32 IRQs; the firmware enables no interrupt. */
#define IRQ_COUNT 32
__attribute__((section(".vectors"), used)) static const void *const vector_table[16 + IRQ_COUNT] = {
    &__stack_top,
    (const void *)Reset_Handler,
    (const void *)Default_Handler, /* NMI */
    (const void *)Fault_Handler,   /* HardFault */
    (const void *)Fault_Handler,   /* MemManage */
    (const void *)Fault_Handler,   /* BusFault */
    (const void *)Fault_Handler,   /* UsageFault */
    0, 0, 0, 0,
    (const void *)Default_Handler, /* SVCall */
    (const void *)Default_Handler, /* DebugMonitor */
    0,
    (const void *)Default_Handler, /* PendSV */
    (const void *)Default_Handler, /* SysTick */
    [16 ... 16 + IRQ_COUNT - 1] = (const void *)Default_Handler,
};
