/*
 * platform_nucleo.c - platform.h for the NUCLEO-F446RE (STM32F446RE, Cortex-M4F).
 *
 * Output: USART2 on PA2 (TX) / PA3 (RX), alternate function 7, wired to the
 * ST-LINK's virtual COM port: 115200 8N1, read it with any serial terminal
 * (`python -m serial.tools.miniterm /dev/ttyACM0 115200`). printf reaches it
 * through newlib's _write, retargeted below.
 *
 * Clock: the reset default, HSI at 16 MHz, unless si4_board_clock_init() is
 * replaced (e.g. PLL at 180 MHz: then replace si4_board_uart_init() too, or
 * recompute the baud divisor).
 *
 * Counter: the DWT cycle counter (CYCCNT), real core cycles, extended to 64
 * bits. Flash wait states count: for figures comparable with QEMU's
 * instruction counts, run from the reset clock (0 wait states at 16 MHz).
 *
 * Vendor HAL hook: build with -DSI4_USE_VENDOR_HAL and provide the three
 * si4_board_* functions from your CubeMX project (HAL_Init(),
 * SystemClock_Config(), MX_USART2_UART_Init(), HAL_UART_Transmit()); the
 * register-level versions here are then left out. See docs/porting.md.
 */
#include <stdint.h>
#include <stdio.h>

#include "platform.h"

void si4_board_clock_init(void);
void si4_board_uart_init(void);
void si4_board_uart_write(const char *text, uint32_t length);
int _write(int file, const char *data, int length);

#define HSI_HZ 16000000u
#define UART_BAUD 115200u

/* Cortex-M debug and trace: DWT cycle counter. */
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CTRL_CYCCNTENA 1u
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u) /* lock access: needed on some M7 parts, harmless here */

#if !defined(SI4_USE_VENDOR_HAL)

/* STM32F446 reference manual RM0390: RCC, GPIOA, USART2. */
#define RCC_AHB1ENR (*(volatile uint32_t *)0x40023830u)
#define RCC_APB1ENR (*(volatile uint32_t *)0x40023840u)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_APB1ENR_USART2EN (1u << 17)
#define GPIOA_MODER (*(volatile uint32_t *)0x40020000u)
#define GPIOA_OSPEEDR (*(volatile uint32_t *)0x40020008u)
#define GPIOA_AFRL (*(volatile uint32_t *)0x40020020u)
#define USART2_SR (*(volatile uint32_t *)0x40004400u)
#define USART2_DR (*(volatile uint32_t *)0x40004404u)
#define USART2_BRR (*(volatile uint32_t *)0x40004408u)
#define USART2_CR1 (*(volatile uint32_t *)0x4000440Cu)
#define USART_SR_TXE (1u << 7)
#define USART_SR_TC (1u << 6)
#define USART_CR1_UE (1u << 13)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RE (1u << 2)

void si4_board_clock_init(void) {}

void si4_board_uart_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB1ENR |= RCC_APB1ENR_USART2EN;
    (void)RCC_APB1ENR; /* a read-back delays the first peripheral access until the clock runs */
    /* PA2, PA3: alternate function mode (0b10), AF7 = USART2, fast speed. */
    GPIOA_MODER = (GPIOA_MODER & ~((3u << 4) | (3u << 6))) | (2u << 4) | (2u << 6);
    GPIOA_OSPEEDR |= (2u << 4) | (2u << 6);
    GPIOA_AFRL = (GPIOA_AFRL & ~((0xFu << 8) | (0xFu << 12))) | (7u << 8) | (7u << 12);
    /* Oversampling by 16: BRR = f_pclk / baud, rounded (mantissa.fraction in 12.4). */
    USART2_BRR = (HSI_HZ + UART_BAUD / 2u) / UART_BAUD;
    USART2_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE;
}

void si4_board_uart_write(const char *text, uint32_t length)
{
    uint32_t i;
    for (i = 0; i < length; ++i) {
        while ((USART2_SR & USART_SR_TXE) == 0u) {
        }
        USART2_DR = (uint8_t)text[i];
    }
    while ((USART2_SR & USART_SR_TC) == 0u) {
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

static uint32_t last_cycles;
static uint32_t cycle_wraps;

void platform_init(void)
{
    si4_board_clock_init();
    si4_board_uart_init();
    setvbuf(stdout, NULL, _IONBF, 0); /* every byte straight to the UART: nothing lost on a fault */
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    last_cycles = 0u;
    cycle_wraps = 0u;
}

/* 64-bit cycles from the 32-bit CYCCNT: it wraps every 2^32 cycles (268 s at
 * 16 MHz, 24 s at 180 MHz), far longer than anything measured between reads. */
uint64_t platform_counter_read(void)
{
    const uint32_t cycles = DWT_CYCCNT;
    if (cycles < last_cycles) {
        ++cycle_wraps;
    }
    last_cycles = cycles;
    return ((uint64_t)cycle_wraps << 32) | cycles;
}

const char *platform_counter_unit(void) { return "cycles"; }

/* A board has nowhere to exit to: the result line is out, wait for reset. */
void platform_exit(int status)
{
    (void)status;
    fflush(stdout);
    for (;;) {
        __asm__ volatile("wfi");
    }
}
