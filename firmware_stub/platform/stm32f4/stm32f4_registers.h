/*
 * stm32f4_registers.h - the STM32F4 and Cortex-M registers the firmware
 * touches, at register level (no vendor header needed). Addresses are common
 * to the STM32F405/407 (RM0090) and STM32F446 (RM0390).
 */
#ifndef SI4_STM32F4_REGISTERS_H
#define SI4_STM32F4_REGISTERS_H

#include <stdint.h>

#define SI4_REG32(address) (*(volatile uint32_t *)(address))

/* Reset and clock control. */
#define RCC_BASE 0x40023800u
#define RCC_AHB1ENR SI4_REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR SI4_REG32(RCC_BASE + 0x40u)
#define RCC_APB2ENR SI4_REG32(RCC_BASE + 0x44u)

/* GPIO port x: base 0x40020000 + 0x400 * x (A = 0). */
#define GPIO_BASE(port) (0x40020000u + 0x400u * (uint32_t)(port))
#define GPIO_MODER(port) SI4_REG32(GPIO_BASE(port) + 0x00u)
#define GPIO_OSPEEDR(port) SI4_REG32(GPIO_BASE(port) + 0x08u)
#define GPIO_AFR(port, pin) SI4_REG32(GPIO_BASE(port) + ((pin) < 8u ? 0x20u : 0x24u))
#define GPIO_MODE_ALTERNATE 2u
#define GPIO_SPEED_FAST 2u

/* USART (all instances share one register layout). */
#define USART_SR(base) SI4_REG32((base) + 0x00u)
#define USART_DR(base) SI4_REG32((base) + 0x04u)
#define USART_BRR(base) SI4_REG32((base) + 0x08u)
#define USART_CR1(base) SI4_REG32((base) + 0x0Cu)
#define USART_SR_TXE (1u << 7)
#define USART_SR_TC (1u << 6)
#define USART_CR1_UE (1u << 13)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RE (1u << 2)

/* Cortex-M system control block. */
#define SCB_CPACR SI4_REG32(0xE000ED88u)
#define SCB_SHCSR SI4_REG32(0xE000ED24u)
#define SCB_CFSR SI4_REG32(0xE000ED28u)

/* SysTick: a 24-bit down-counter on the core clock. */
#define SYST_CSR SI4_REG32(0xE000E010u)
#define SYST_RVR SI4_REG32(0xE000E014u)
#define SYST_CVR SI4_REG32(0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE_CORE (1u << 2)
#define SYST_RELOAD_MAX 0x00FFFFFFu

/* Debug and trace: the DWT cycle counter (silicon only: QEMU does not model the DWT). */
#define DEMCR SI4_REG32(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL SI4_REG32(0xE0001000u)
#define DWT_CTRL_CYCCNTENA 1u
#define DWT_CYCCNT SI4_REG32(0xE0001004u)
#define DWT_LAR SI4_REG32(0xE0001FB0u) /* lock access: needed on some M7 parts, harmless on M4 */

#endif /* SI4_STM32F4_REGISTERS_H */
