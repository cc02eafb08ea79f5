/*
 * stm32_board.h - NUCLEO-F446RE (STM32F446RE, Cortex-M4F) for the shared
 * STM32F4 platform layer (platform/stm32f4/).
 *
 * Output: USART2 on PA2 (TX) / PA3 (RX), alternate function 7, wired to the
 * ST-LINK's virtual COM port: 115200 8N1 (`python -m serial.tools.miniterm
 * /dev/ttyACM0 115200`). USART2 sits on APB1, at 16 MHz from the reset clock.
 *
 * Counter: the DWT cycle counter (CYCCNT), real core cycles. Flash wait states
 * count: for figures comparable with QEMU's instruction counts, run from the
 * reset clock (0 wait states at 16 MHz). SysTick stays free for a vendor HAL.
 */
#ifndef SI4_STM32_BOARD_H
#define SI4_STM32_BOARD_H

#define SI4_BOARD_NAME "NUCLEO-F446RE"

#define SI4_UART_BASE 0x40004400u /* USART2 */
#define SI4_UART_RCC_ENR RCC_APB1ENR
#define SI4_UART_RCC_BIT (1u << 17)
#define SI4_UART_GPIO_PORT 0u /* GPIOA */
#define SI4_UART_TX_PIN 2u
#define SI4_UART_RX_PIN 3u
#define SI4_UART_AF 7u
#define SI4_UART_PCLK_HZ 16000000u
#define SI4_UART_BAUD 115200u

#define SI4_COUNTER_SYSTICK 0
#define SI4_COUNTER_UNIT "cycles"
#define SI4_COUNTER_SCALE_NUM 1u
#define SI4_COUNTER_SCALE_DEN 1u

/* A board has nowhere to exit to: platform_exit() waits for reset. */
#define SI4_EXIT_SEMIHOSTING 0

#endif /* SI4_STM32_BOARD_H */
