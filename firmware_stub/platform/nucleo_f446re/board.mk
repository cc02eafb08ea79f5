# NUCLEO-F446RE (STM32F446RE, Cortex-M4F at 16 MHz HSI by default), included by
# firmware_stub/Makefile. Builds here; runs on the board, not under QEMU.
#
#   make nucleo-f446re KERNELS=dsp ASSETS=... BUILD=...
#     -> $(BUILD)/nucleo_f446re-$(KERNELS)/si4_firmware.elf, .bin, .map
#   Flash: copy the .bin to the NUCLEO's USB drive, or
#          st-flash write si4_firmware.bin 0x08000000
#   Read:  115200 8N1 on the ST-LINK virtual COM port (/dev/ttyACM0).
#
# SI4_PRINT_VECTORS=0 keeps the UART output to the summary (250 vector lines
# take about 1.5 s at 115200 baud).

NUCLEO_DIR := platform/nucleo_f446re
# CORTEX_M_COMMON_*: platform/common, defined in mps2_an386/board.mk (included first).
NUCLEO_PLATFORM_SOURCES := $(NUCLEO_DIR)/startup_f446.c $(NUCLEO_DIR)/platform_nucleo.c $(CORTEX_M_COMMON_SOURCES)
NUCLEO_DEFINES ?= -DSI4_PRINT_VECTORS=0

.PHONY: nucleo-f446re
.PRECIOUS: $(BUILD)/nucleo_f446re-%/si4_firmware.elf
nucleo-f446re: $(BUILD)/nucleo_f446re-$(KERNELS)/si4_firmware.bin

$(BUILD)/nucleo_f446re-%/si4_firmware.bin: $(BUILD)/nucleo_f446re-%/si4_firmware.elf
	$(ARM_OBJCOPY) -O binary $< $@

$(BUILD)/nucleo_f446re-%/si4_firmware.elf: main.c $(MODEL_SOURCES) $$(call kernel_sources_for,$$*) \
		$(KERNEL_HEADERS) $(ASSETS)/model.h $(ASSETS)/test_vectors.h $(NUCLEO_PLATFORM_SOURCES) \
		$(CORTEX_M_COMMON_DEPS) $(NUCLEO_DIR)/nucleo_f446re.ld platform.h
	@rm -rf $(@D)/obj && mkdir -p $(@D)/obj
	@set -e; for src in main.c $(MODEL_SOURCES) $(call kernel_sources_for,$*); do \
		$(ARM_CC) $(CPU_CORTEX_M4) $(ARM_ENGINE_FLAGS) $(NUCLEO_DEFINES) -c $$src \
			-o $(@D)/obj/$$(basename $$src .c).o; done
	@set -e; for src in $(NUCLEO_PLATFORM_SOURCES); do \
		$(ARM_CC) $(CPU_CORTEX_M4) $(ARM_PLATFORM_FLAGS) -c $$src -o $(@D)/obj/$$(basename $$src .c).o; done
	$(ARM_CC) $(CPU_CORTEX_M4) -nostartfiles --specs=nano.specs --specs=nosys.specs -Wl,--gc-sections \
		-T $(NUCLEO_DIR)/nucleo_f446re.ld -Wl,-Map=$(@:.elf=.map) $(@D)/obj/*.o -o $@
