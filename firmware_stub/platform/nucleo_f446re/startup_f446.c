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

extern uint32_t __data_load;
extern uint32_t __data_start;
extern uint32_t __data_end;
extern uint32_t __bss_start__;
extern uint32_t __bss_end__;
extern uint32_t __stack_top;

typedef void (*constructor_fn)(void);
extern constructor_fn __preinit_array_start[];
extern constructor_fn __preinit_array_end[];
extern constructor_fn __init_array_start[];
extern constructor_fn __init_array_end[];

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
    const uint32_t *source;
    uint32_t *destination;
    constructor_fn *constructor;

    SCB_CPACR |= (0xFu << 20); /* CP10/CP11: the FPU, for the hard-float ABI */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
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
    (void)main();
    for (;;) {
        __asm__ volatile("wfi");
    }
}

static void write_hex(char *text, uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    int32_t i;
    for (i = 7; i >= 0; --i) {
        text[i] = digits[value & 0xFu];
        value >>= 4;
    }
}

void Fault_Handler(void)
{
    char message[] = "\r\nFAULT cfsr 0x________\r\nresult FAIL\r\n";
    write_hex(&message[14], SCB_CFSR);
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
