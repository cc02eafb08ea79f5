/*
 * stm32_board.h - QEMU's netduinoplus2 machine (STM32F405RG, Cortex-M4F) for
 * the shared STM32F4 platform layer (platform/stm32f4/), the same code the
 * NUCLEO-F446RE runs with its own board header.
 *
 * Output: USART1 on PA9 (TX) / PA10 (RX), alternate function 7, on APB2. QEMU
 * connects the SoC's USARTs to -serial in address order, USART1 first, so the
 * first -serial carries it (si4tool runs `-serial stdio`).
 *
 * Counter: QEMU models no DWT (reading CYCCNT is a bus fault there), so this
 * board counts with SysTick on the core clock, 168 MHz in QEMU's model. Under
 * `-icount shift=0` a guest instruction is 1 ns of virtual time, so one tick is
 * 1000/168 = 125/21 instructions: the count is in instructions, resolution 6.
 *
 * Exit: semihosting SYS_EXIT, so QEMU ends with the firmware's status (QEMU
 * runs with -semihosting-config enable=on; real silicon would stop at the
 * bkpt without a debugger, which is why the NUCLEO header waits instead).
 */
#ifndef SI4_STM32_BOARD_H
#define SI4_STM32_BOARD_H

#define SI4_BOARD_NAME "netduinoplus2"

#define SI4_UART_BASE 0x40011000u /* USART1 */
#define SI4_UART_RCC_ENR RCC_APB2ENR
#define SI4_UART_RCC_BIT (1u << 4)
#define SI4_UART_GPIO_PORT 0u /* GPIOA */
#define SI4_UART_TX_PIN 9u
#define SI4_UART_RX_PIN 10u
#define SI4_UART_AF 7u
#define SI4_UART_PCLK_HZ 16000000u
#define SI4_UART_BAUD 115200u

#define SI4_COUNTER_SYSTICK 1
#define SI4_COUNTER_UNIT "instructions"
#define SI4_COUNTER_SCALE_NUM 125u
#define SI4_COUNTER_SCALE_DEN 21u

#define SI4_EXIT_SEMIHOSTING 1

#endif /* SI4_STM32_BOARD_H */
