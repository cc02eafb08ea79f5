# QEMU's netduinoplus2 machine (STM32F405RG, Cortex-M4F), included by
# firmware_stub/Makefile: the shared STM32F4 layer (platform/stm32f4/), the
# code a NUCLEO-F446RE runs, with output on USART1 and SysTick instruction counts.
#
#   make netduinoplus2     KERNELS=portable|dsp ASSETS=... BUILD=...
#                          -> $(BUILD)/netduinoplus2-$(KERNELS)/si4_firmware.elf (+ .map)
#   make run-netduinoplus2 KERNELS=...   build, then run under QEMU: the output is
#                          the USART's, on QEMU's stdout; the exit status is the result

include platform/stm32f4/stm32f4.mk

NETDUINOPLUS2_DIR := platform/netduinoplus2

.PHONY: netduinoplus2 run-netduinoplus2
netduinoplus2: $(BUILD)/netduinoplus2-$(KERNELS)/si4_firmware.elf

$(BUILD)/netduinoplus2-%/si4_firmware.elf: main.c $(MODEL_SOURCES) $$(call kernel_sources_for,$$*) \
		$(KERNEL_HEADERS) $(MODEL_HEADER) $(VECTORS_HEADER) $(STM32F4_PLATFORM_DEPS) \
		$(NETDUINOPLUS2_DIR)/stm32_board.h $(NETDUINOPLUS2_DIR)/netduinoplus2.ld
	$(call stm32f4_build_firmware,$(NETDUINOPLUS2_DIR),netduinoplus2.ld,,main.c $(MODEL_SOURCES) $(call kernel_sources_for,$*),$@)

# -serial stdio: USART1 (the SoC's first USART) to stdout; semihosting only for the exit status.
run-netduinoplus2: $(BUILD)/netduinoplus2-$(KERNELS)/si4_firmware.elf
	timeout $(QEMU_TIMEOUT) $(QEMU_ARM) -M netduinoplus2 -display none -monitor none -serial stdio \
		-semihosting-config enable=on,target=native -icount shift=0 -kernel $<
