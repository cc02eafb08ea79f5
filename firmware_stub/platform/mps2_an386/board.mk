# Cortex-M targets, included by firmware_stub/Makefile (run from firmware_stub/).
#
#   make mps2        KERNELS=portable|dsp ASSETS=... BUILD=...
#                    -> $(BUILD)/mps2_an386-$(KERNELS)/si4_firmware.elf (+ .map)
#   make run-mps2    KERNELS=...   build, then run under QEMU (exit status = result)
#   make mps2-an385  KERNELS=...   the same firmware for the Cortex-M3 image (no DSP)
#   make run-mps2-an385
#   make mps2-kernel-test           DSP kernels vs portable kernels, seeded random cases
#   make mps2-counter-test          timer-to-instruction conversion check
#   make cortex-m0plus cortex-m7    compile-only portability checks, -Wall -Wextra -Werror
#
# Counts under QEMU are instructions (-icount shift=0: 1 ns per instruction,
# 40 per tick of the 25 MHz timer), not cycles.

ARM_CC      ?= arm-none-eabi-gcc
ARM_OBJCOPY ?= arm-none-eabi-objcopy
ARM_NM      ?= arm-none-eabi-nm
QEMU_ARM    ?= qemu-system-arm
QEMU_TIMEOUT ?= 900
MPS2_OPT    ?= -O2

MPS2_DIR := platform/mps2_an386
# Start-up and stack painting every Cortex-M board shares (nucleo_f446re too).
CORTEX_M_COMMON_DIR     := platform/common
CORTEX_M_COMMON_SOURCES := $(CORTEX_M_COMMON_DIR)/cortex_m_runtime.c
CORTEX_M_COMMON_DEPS    := $(CORTEX_M_COMMON_SOURCES) $(CORTEX_M_COMMON_DIR)/cortex_m_runtime.h

CPU_CORTEX_M4     := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
CPU_CORTEX_M3     := -mcpu=cortex-m3 -mthumb -mfloat-abi=soft
CPU_CORTEX_M0PLUS := -mcpu=cortex-m0plus -mthumb -mfloat-abi=soft
CPU_CORTEX_M7     := -mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16

# The engine (main.c, model, kernels) keeps the host's strict C99; the
# platform layer needs GNU C for inline assembly and the vector table.
ARM_SECTIONS     := -ffunction-sections -fdata-sections -g
ARM_ENGINE_FLAGS := -std=c99 -Wall -Wextra -Werror -pedantic $(MPS2_OPT) $(ARM_SECTIONS) $(INCLUDES)
ARM_PLATFORM_FLAGS := -std=gnu99 -Wall -Wextra -Werror $(MPS2_OPT) $(ARM_SECTIONS) -I. -I$(CORTEX_M_COMMON_DIR)
# Our startup code replaces newlib's crt0; librdimon supplies semihosting stdio.
ARM_LINK_FLAGS   := -nostartfiles --specs=nano.specs --specs=rdimon.specs -Wl,--gc-sections

MPS2_PLATFORM_SOURCES := $(MPS2_DIR)/startup.c $(MPS2_DIR)/platform_mps2.c $(CORTEX_M_COMMON_SOURCES)
MPS2_PLATFORM_DEPS    := $(MPS2_PLATFORM_SOURCES) $(CORTEX_M_COMMON_DEPS) $(CORTEX_M_COMMON_DIR)/semihosting.h \
	$(MPS2_DIR)/mps2_an386.ld platform.h si4_model_binding.h

# KERNELS=dsp: kernels/dsp/<name>.c replaces kernels/src/<name>.c; the other
# portable files are used as they are. Each DSP file falls back to its
# portable twin where the core has no DSP extension.
DSP_KERNEL_SOURCES := $(wildcard kernels/dsp/*.c)
PORTABLE_NOT_REPLACED := $(filter-out $(addprefix kernels/src/,$(notdir $(DSP_KERNEL_SOURCES))),$(KERNEL_SOURCES))
kernel_sources_for = $(if $(filter dsp,$(1)),$(DSP_KERNEL_SOURCES) $(PORTABLE_NOT_REPLACED),$(KERNEL_SOURCES))
KERNEL_HEADERS := $(wildcard kernels/include/*.h kernels/dsp/*.h)

QEMU_RUN = timeout $(QEMU_TIMEOUT) $(QEMU_ARM) -nographic -semihosting-config enable=on,target=native \
	-icount shift=0 -M

# Compile each source to its own object (the map file then attributes flash
# to model, kernels, platform and libc), link, and keep the map.
#   $(1) cpu flags  $(2) engine sources  $(3) object dir  $(4) elf
define arm_build_firmware
	@rm -rf $(3) && mkdir -p $(3)
	@set -e; for src in $(2); do \
		$(ARM_CC) $(1) $(ARM_ENGINE_FLAGS) -c $$src -o $(3)/$$(basename $$src .c).o; done
	$(call arm_product_model,$(1),$(2),$(3))
	@set -e; for src in $(MPS2_PLATFORM_SOURCES); do \
		$(ARM_CC) $(1) $(ARM_PLATFORM_FLAGS) -c $$src -o $(3)/$$(basename $$src .c).o; done
	$(ARM_CC) $(1) $(ARM_LINK_FLAGS) -T $(MPS2_DIR)/mps2_an386.ld -Wl,-Map=$(4:.elf=.map) \
		$(3)/*.o -o $(4)
endef

# model.c as a product links it, without main.c's per-layer tables: compiled beside
# the firmware's objects (in $(3)/product/, not linked) for the engine code figure.
#   $(1) cpu flags  $(2) engine sources  $(3) object dir
define arm_product_model
	$(if $(filter $(MODEL_C),$(2)),@mkdir -p $(3)/product && $(ARM_CC) $(1) \
		$(filter-out $(LAYER_TABLES),$(ARM_ENGINE_FLAGS)) -c $(MODEL_C) -o $(3)/product/$(notdir $(MODEL_C:.c=.o)))
endef

.PHONY: mps2 run-mps2 mps2-an385 run-mps2-an385 mps2-kernel-test mps2-counter-test cortex-m0plus cortex-m7
.SECONDEXPANSION:

mps2: $(BUILD)/mps2_an386-$(KERNELS)/si4_firmware.elf
mps2-an385: $(BUILD)/mps2_an385-$(KERNELS)/si4_firmware.elf

run-mps2: $(BUILD)/mps2_an386-$(KERNELS)/si4_firmware.elf
	$(QEMU_RUN) mps2-an386 -kernel $<

run-mps2-an385: $(BUILD)/mps2_an385-$(KERNELS)/si4_firmware.elf
	$(QEMU_RUN) mps2-an385 -kernel $<

$(BUILD)/mps2_an386-%/si4_firmware.elf: main.c $(MODEL_SOURCES) $$(call kernel_sources_for,$$*) \
		$(KERNEL_HEADERS) $(MODEL_HEADER) $(VECTORS_HEADER) $(MPS2_PLATFORM_DEPS)
	$(call arm_build_firmware,$(CPU_CORTEX_M4),main.c $(MODEL_SOURCES) $(call kernel_sources_for,$*),$(@D)/obj,$@)

$(BUILD)/mps2_an385-%/si4_firmware.elf: main.c $(MODEL_SOURCES) $$(call kernel_sources_for,$$*) \
		$(KERNEL_HEADERS) $(MODEL_HEADER) $(VECTORS_HEADER) $(MPS2_PLATFORM_DEPS)
	$(call arm_build_firmware,$(CPU_CORTEX_M3),main.c $(MODEL_SOURCES) $(call kernel_sources_for,$*),$(@D)/obj,$@)

# --- DSP vs portable kernel test -----------------------------------------------
# Both variants live in one firmware: the portable objects get their global
# si4_* symbols renamed to si4_ref_* (objcopy), the DSP build keeps the names.
KERNEL_TEST_DIR := $(BUILD)/mps2_an386-kernel-test
mps2-kernel-test: $(KERNEL_TEST_DIR)/kernel_test.elf

$(KERNEL_TEST_DIR)/kernel_test.elf: $(MPS2_DIR)/tests/kernel_test.c $(MPS2_DIR)/tests/test_support.h $(KERNEL_SOURCES) $(DSP_KERNEL_SOURCES) \
		$(KERNEL_HEADERS) $(MPS2_PLATFORM_DEPS)
	@rm -rf $(@D) && mkdir -p $(@D)/obj $(@D)/ref
	@set -e; for src in $(KERNEL_SOURCES); do \
		$(ARM_CC) $(CPU_CORTEX_M4) $(ARM_ENGINE_FLAGS) -c $$src -o $(@D)/ref/$$(basename $$src .c).o; done
	@$(ARM_NM) -g --defined-only $(@D)/ref/*.o | awk '$$3 ~ /^si4_/ {print $$3, "si4_ref_" substr($$3, 5)}' \
		| sort -u > $(@D)/ref/renames.txt
	@set -e; for obj in $(@D)/ref/*.o; do $(ARM_OBJCOPY) --redefine-syms=$(@D)/ref/renames.txt $$obj; done
	@set -e; for src in $(call kernel_sources_for,dsp) $(MPS2_DIR)/tests/kernel_test.c; do \
		$(ARM_CC) $(CPU_CORTEX_M4) $(ARM_ENGINE_FLAGS) -c $$src -o $(@D)/obj/$$(basename $$src .c).o; done
	@set -e; for src in $(MPS2_PLATFORM_SOURCES); do \
		$(ARM_CC) $(CPU_CORTEX_M4) $(ARM_PLATFORM_FLAGS) -c $$src -o $(@D)/obj/$$(basename $$src .c).o; done
	$(ARM_CC) $(CPU_CORTEX_M4) $(ARM_LINK_FLAGS) -T $(MPS2_DIR)/mps2_an386.ld -Wl,-Map=$(@:.elf=.map) \
		$(@D)/obj/*.o $(@D)/ref/*.o -o $@

run-mps2-kernel-test: $(KERNEL_TEST_DIR)/kernel_test.elf
	$(QEMU_RUN) mps2-an386 -kernel $<

# --- timer-to-instruction check -------------------------------------------------
COUNTER_TEST_DIR := $(BUILD)/mps2_an386-counter-test
mps2-counter-test: $(COUNTER_TEST_DIR)/counter_test.elf

$(COUNTER_TEST_DIR)/counter_test.elf: $(MPS2_DIR)/tests/counter_test.c $(MPS2_PLATFORM_DEPS)
	$(call arm_build_firmware,$(CPU_CORTEX_M4),$(MPS2_DIR)/tests/counter_test.c,$(@D)/obj,$@)

run-mps2-counter-test: $(COUNTER_TEST_DIR)/counter_test.elf
	$(QEMU_RUN) mps2-an386 -kernel $<

# --- compile-only portability checks ----------------------------------------------
# The kernels (portable and DSP files, which fall back to portable code without
# the DSP extension) always; main.c and the model when assets exist.
PORTABILITY_SOURCES = $(KERNEL_SOURCES) $(DSP_KERNEL_SOURCES) \
	$(if $(wildcard $(MODEL_HEADER)),main.c $(MODEL_SOURCES))

cortex-m0plus cortex-m7:
	@rm -rf $(BUILD)/$@ && mkdir -p $(BUILD)/$@
	@set -e; for src in $(PORTABILITY_SOURCES); do \
		echo "$@: $$src"; \
		$(ARM_CC) $(CPU_$(subst -,_,$(shell echo $@ | tr a-z A-Z))) $(ARM_ENGINE_FLAGS) -c $$src \
			-o $(BUILD)/$@/$$(basename $$(dirname $$src))_$$(basename $$src .c).o; done
