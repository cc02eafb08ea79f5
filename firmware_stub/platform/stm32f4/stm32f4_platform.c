/*
 * stm32f4_platform.c - platform.h for STM32F4 boards, at register level.
 *
 * One file for every STM32F4 board under platform/: the board's
 * stm32_board.h says which USART, pins, clock and counter it uses
 * (nucleo_f446re: USART2 to the ST-LINK, DWT cycles; netduinoplus2: USART1,
 * which QEMU's netduinoplus2 machine wires to -serial, SysTick). What runs
 * under QEMU is therefore the code a NUCLEO user flashes, board header aside.
 *
 * Output: printf reaches the USART through newlib's _write, retargeted below,
 * polled and unbuffered (nothing is lost on a fault), "\n" sent as "\r\n".
 *
 * Clock: the reset default, HSI at 16 MHz, unless si4_board_clock_init() is
 * replaced (a faster clock changes SI4_UART_PCLK_HZ, and the baud divisor).
 *
 * Vendor HAL hook: build with -DSI4_USE_VENDOR_HAL and provide the three
 * si4_board_* functions from your CubeMX project (HAL_Init(),
 * SystemClock_Config(), MX_USARTx_UART_Init(), HAL_UART_Transmit()); the
 * register-level versions here are then left out. See docs/porting.md.
 */
#include <stdint.h>
#include <stdio.h>

#include "platform.h"
#include "stm32_board.h"
#include "stm32f4_platform.h"
#include "stm32f4_registers.h"
#if SI4_EXIT_SEMIHOSTING
#include "semihosting.h"
#endif

int _write(int file, const char *data, int length);

#if !defined(SI4_USE_VENDOR_HAL)

void si4_board_clock_init(void) {}

void si4_board_uart_init(void)
{
    const uint32_t tx = SI4_UART_TX_PIN;
    const uint32_t rx = SI4_UART_RX_PIN;
    RCC_AHB1ENR |= 1u << SI4_UART_GPIO_PORT;
    SI4_UART_RCC_ENR |= SI4_UART_RCC_BIT;
    (void)SI4_UART_RCC_ENR; /* a read-back delays the first peripheral access until the clock runs */
    GPIO_MODER(SI4_UART_GPIO_PORT) = (GPIO_MODER(SI4_UART_GPIO_PORT) & ~((3u << (2u * tx)) | (3u << (2u * rx))))
        | (GPIO_MODE_ALTERNATE << (2u * tx)) | (GPIO_MODE_ALTERNATE << (2u * rx));
    GPIO_OSPEEDR(SI4_UART_GPIO_PORT) |= (GPIO_SPEED_FAST << (2u * tx)) | (GPIO_SPEED_FAST << (2u * rx));
    GPIO_AFR(SI4_UART_GPIO_PORT, tx) = (GPIO_AFR(SI4_UART_GPIO_PORT, tx) & ~(0xFu << (4u * (tx % 8u))))
        | ((uint32_t)SI4_UART_AF << (4u * (tx % 8u)));
    GPIO_AFR(SI4_UART_GPIO_PORT, rx) = (GPIO_AFR(SI4_UART_GPIO_PORT, rx) & ~(0xFu << (4u * (rx % 8u))))
        | ((uint32_t)SI4_UART_AF << (4u * (rx % 8u)));
    /* Oversampling by 16: BRR = f_pclk / baud, rounded (mantissa.fraction in 12.4). */
    USART_BRR(SI4_UART_BASE) = (SI4_UART_PCLK_HZ + SI4_UART_BAUD / 2u) / SI4_UART_BAUD;
    USART_CR1(SI4_UART_BASE) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE;
}

void si4_board_uart_write(const char *text, uint32_t length)
{
    uint32_t i;
    for (i = 0; i < length; ++i) {
        while ((USART_SR(SI4_UART_BASE) & USART_SR_TXE) == 0u) {
        }
        USART_DR(SI4_UART_BASE) = (uint8_t)text[i];
    }
    while ((USART_SR(SI4_UART_BASE) & USART_SR_TC) == 0u) {
    }
}

#endif /* !SI4_USE_VENDOR_HAL */

/* newlib's stdout ends here: terminals want "\r\n". */
int _write(int file, const char *data, int length)
{
    int i;
    (void)file;
    for (i = 0; i < length; ++i) {
        if (data[i] == '\n') {
            si4_board_uart_write("\r\n", 2u);
        } else {
            si4_board_uart_write(&data[i], 1u);
        }
    }
    return length;
}

/* --- the counter ------------------------------------------------------------- */

#if SI4_COUNTER_SYSTICK

/* SysTick wraps every 2^24 ticks (0.1 s at 168 MHz): its interrupt counts the
 * wraps so a long inference is measured whole. */
static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { ++systick_wraps; }

static void counter_start(void)
{
    systick_wraps = 0u;
    SYST_CSR = 0u;
    SYST_RVR = SYST_RELOAD_MAX;
    SYST_CVR = 0u; /* any write clears the count: it reloads on the next tick */
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE_CORE;
}

#define ICSR SI4_REG32(0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)

/* With interrupts masked, a wrap not yet counted shows as a pending SysTick:
 * the value read after it has reloaded and one more period has passed. */
static uint64_t counter_ticks(void)
{
    uint32_t primask;
    uint32_t wraps;
    uint32_t value;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    wraps = systick_wraps;
    value = SYST_CVR;
    if ((ICSR & ICSR_PENDSTSET) != 0u) {
        value = SYST_CVR;
        ++wraps;
    }
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
    return (uint64_t)wraps * (SYST_RELOAD_MAX + 1u) + (uint64_t)(SYST_RELOAD_MAX - value);
}

#else /* the DWT cycle counter */

static uint32_t last_cycles;
static uint32_t cycle_wraps;

static void counter_start(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    last_cycles = 0u;
    cycle_wraps = 0u;
}

/* 64-bit cycles from the 32-bit CYCCNT: it wraps every 2^32 cycles (268 s at
 * 16 MHz, 24 s at 180 MHz), far longer than anything measured between reads. */
static uint64_t counter_ticks(void)
{
    const uint32_t cycles = DWT_CYCCNT;
    if (cycles < last_cycles) {
        ++cycle_wraps;
    }
    last_cycles = cycles;
    return ((uint64_t)cycle_wraps << 32) | cycles;
}

#endif /* SI4_COUNTER_SYSTICK */

void platform_init(void)
{
    si4_board_clock_init();
    si4_board_uart_init();
    setvbuf(stdout, NULL, _IONBF, 0); /* every byte straight to the UART: nothing lost on a fault */
    counter_start();
}

uint64_t platform_counter_read(void)
{
    return counter_ticks() * SI4_COUNTER_SCALE_NUM / SI4_COUNTER_SCALE_DEN;
}

const char *platform_counter_unit(void) { return SI4_COUNTER_UNIT; }

void platform_exit(int status)
{
    fflush(stdout);
#if SI4_EXIT_SEMIHOSTING
    semihosting_exit(status);
#else
    /* A board has nowhere to exit to: the result line is out, wait for reset. */
    (void)status;
    for (;;) {
        __asm__ volatile("wfi");
    }
#endif
}
