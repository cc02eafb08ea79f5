/*
 * stm32f4_startup.c - reset, vector table and fault handling for every STM32F4
 * board under platform/ (stm32_board.h picks the exit: semihosting under QEMU,
 * waiting for reset on a board).
 *
 * Reset: FPU on, precise fault handlers enabled, .data copied from flash,
 * .bss zeroed, constructors run, main() called. A fault prints its status
 * register on the UART and "result FAIL", so a host-side reader stops and a
 * crashing firmware never looks like a passing one. With the vendor HAL,
 * CubeMX's startup file can replace this one: keep stm32f4_platform.c and the
 * linker symbols it uses.
 */
#include <stdint.h>

#include "cortex_m_runtime.h"
#include "platform.h"
#include "stm32_board.h"
#include "stm32f4_platform.h"
#include "stm32f4_registers.h"

extern uint32_t __stack_top; /* the linker script */

extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
#if SI4_COUNTER_SYSTICK
void SysTick_Handler(void); /* stm32f4_platform.c */
#define SYSTICK_VECTOR SysTick_Handler
#else
#define SYSTICK_VECTOR Default_Handler
#endif

#define FAULT_EXIT_STATUS 3

void Reset_Handler(void)
{
    SCB_CPACR |= (0xFu << 20); /* CP10/CP11: the FPU, for the hard-float ABI */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    /* Separate MemManage/BusFault/UsageFault handlers report more precisely than an escalated HardFault. */
    SCB_SHCSR |= (1u << 16) | (1u << 17) | (1u << 18);
    si4_c_runtime_init();
    platform_exit(main());
}

void Fault_Handler(void)
{
    char message[] = "\r\nFAULT cfsr 0x________\r\nresult FAIL\r\n";
    si4_format_hex32(&message[15], SCB_CFSR);
    si4_board_uart_write(message, sizeof message - 1u);
    platform_exit(FAULT_EXIT_STATUS);
}

void Default_Handler(void)
{
    static const char message[] = "\r\nFAULT unexpected interrupt\r\nresult FAIL\r\n";
    si4_board_uart_write(message, sizeof message - 1u);
    platform_exit(FAULT_EXIT_STATUS);
}

/* Core exceptions and the first 32 IRQs; the firmware enables no peripheral interrupt. */
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
    (const void *)SYSTICK_VECTOR,  /* SysTick */
    [16 ... 16 + IRQ_COUNT - 1] = (const void *)Default_Handler,
};
