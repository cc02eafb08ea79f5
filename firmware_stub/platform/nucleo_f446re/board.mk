# NUCLEO-F446RE (STM32F446RE, Cortex-M4F at 16 MHz HSI by default), included by
# firmware_stub/Makefile. Builds here; runs on the board. Its code is the shared
# STM32F4 layer (platform/stm32f4/) that also runs under QEMU as netduinoplus2;
# only stm32_board.h and the linker script's MEMORY are the NUCLEO's own.
#
#   make nucleo-f446re KERNELS=dsp ASSETS=... BUILD=...
#     -> $(BUILD)/nucleo_f446re-$(KERNELS)/si4_firmware.elf, .bin, .map
#   Flash: copy the .bin to the NUCLEO's USB drive, or
#          st-flash write si4_firmware.bin 0x08000000
#   Read:  115200 8N1 on the ST-LINK virtual COM port (/dev/ttyACM0).
#
# SI4_PRINT_VECTORS=0 keeps the UART output to the summary (250 vector lines
# take about 1.5 s at 115200 baud).

include platform/stm32f4/stm32f4.mk

NUCLEO_DIR := platform/nucleo_f446re
NUCLEO_DEFINES ?= -DSI4_PRINT_VECTORS=0

.PHONY: nucleo-f446re
.PRECIOUS: $(BUILD)/nucleo_f446re-%/si4_firmware.elf
nucleo-f446re: $(BUILD)/nucleo_f446re-$(KERNELS)/si4_firmware.bin

$(BUILD)/nucleo_f446re-%/si4_firmware.bin: $(BUILD)/nucleo_f446re-%/si4_firmware.elf
	$(ARM_OBJCOPY) -O binary $< $@

$(BUILD)/nucleo_f446re-%/si4_firmware.elf: main.c $(MODEL_SOURCES) $$(call kernel_sources_for,$$*) \
		$(KERNEL_HEADERS) $(MODEL_HEADER) $(VECTORS_HEADER) $(STM32F4_PLATFORM_DEPS) \
		$(NUCLEO_DIR)/stm32_board.h $(NUCLEO_DIR)/nucleo_f446re.ld
	$(call stm32f4_build_firmware,$(NUCLEO_DIR),nucleo_f446re.ld,$(NUCLEO_DEFINES),main.c $(MODEL_SOURCES) $(call kernel_sources_for,$*),$@)
