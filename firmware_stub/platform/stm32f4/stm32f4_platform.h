/*
 * stm32f4_platform.h - the board hooks shared by stm32f4_platform.c and
 * stm32f4_startup.c. With -DSI4_USE_VENDOR_HAL the user's project provides
 * them (CubeMX: HAL_Init() and SystemClock_Config(), MX_USARTx_UART_Init(),
 * HAL_UART_Transmit()); otherwise stm32f4_platform.c does, at register level.
 */
#ifndef SI4_STM32F4_PLATFORM_H
#define SI4_STM32F4_PLATFORM_H

#include <stdint.h>

void si4_board_clock_init(void);
void si4_board_uart_init(void);
/* Polled output usable from a fault handler (no C library, no interrupts). */
void si4_board_uart_write(const char *text, uint32_t length);

#endif /* SI4_STM32F4_PLATFORM_H */
