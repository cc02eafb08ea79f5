# The STM32F4 platform layer every STM32F4 board shares (included by the
# boards' board.mk; CPU flags, ARM_* and CORTEX_M_COMMON_* come from
# platform/mps2_an386/board.mk, included first).
#
# A board is a folder with stm32_board.h (USART, pins, clock, counter, exit),
# <board>.ld (MEMORY, then INCLUDE stm32f4_sections.ld) and a board.mk calling
# stm32f4_build_firmware. Output on the board's USART through newlib's _write;
# no semihosting stdio (librdimon) is linked.

ifndef STM32F4_MK_INCLUDED
STM32F4_MK_INCLUDED := 1

STM32F4_DIR := platform/stm32f4
STM32F4_PLATFORM_SOURCES := $(STM32F4_DIR)/stm32f4_startup.c $(STM32F4_DIR)/stm32f4_platform.c $(CORTEX_M_COMMON_SOURCES)
STM32F4_PLATFORM_DEPS := $(STM32F4_PLATFORM_SOURCES) $(wildcard $(STM32F4_DIR)/*.h $(STM32F4_DIR)/*.ld) \
	$(CORTEX_M_COMMON_DEPS) $(CORTEX_M_COMMON_DIR)/semihosting.h platform.h si4_model_binding.h
STM32F4_LINK_FLAGS := -nostartfiles --specs=nano.specs --specs=nosys.specs -Wl,--gc-sections -L$(STM32F4_DIR)

# $(1) board folder  $(2) its linker script  $(3) extra engine flags
# $(4) engine sources  $(5) elf (its .map and obj/ go beside it)
define stm32f4_build_firmware
	@rm -rf $(dir $(5))obj && mkdir -p $(dir $(5))obj
	@set -e; for src in $(4); do \
		$(ARM_CC) $(CPU_CORTEX_M4) $(ARM_ENGINE_FLAGS) $(3) -c $$src -o $(dir $(5))obj/$$(basename $$src .c).o; done
	$(call arm_product_model,$(CPU_CORTEX_M4) $(3),$(4),$(dir $(5))obj)
	@set -e; for src in $(STM32F4_PLATFORM_SOURCES); do \
		$(ARM_CC) $(CPU_CORTEX_M4) $(ARM_PLATFORM_FLAGS) -I$(1) -I$(STM32F4_DIR) -c $$src \
			-o $(dir $(5))obj/$$(basename $$src .c).o; done
	$(ARM_CC) $(CPU_CORTEX_M4) $(STM32F4_LINK_FLAGS) -T $(1)/$(2) -Wl,-Map=$(5:.elf=.map) $(dir $(5))obj/*.o -o $(5)
endef

endif
