/*
 * si4_cycles.c - a QEMU TCG plugin that estimates Cortex-M4 cycles at zero
 * wait states for the Thumb-2 code a guest executes.
 *
 *   qemu-system-arm -M mps2-an386 ... -plugin si4_cycles.so,out=FILE[,mark=ADDR][,mix=on]
 *
 * At translation, every instruction is decoded from its bytes
 * (thumb_timing.c) and gets an inline add of its cycles and of 1 to the
 * instruction count: per instruction, not per translation block, so a block
 * left early (an I/O access under -icount ends it and re-runs the access)
 * counts exactly what ran. A conditional branch's refill depends on the run:
 * the branch records its fall-through address, and the next block to start
 * adds the refill when it starts anywhere else (taken).
 *
 * mark=ADDR: every single load (LDR) from ADDR writes "mark <instructions>
 * <cycles>", both counted up to and including that load. The firmware reads
 * its timer's value register in platform_counter_read(), so two marks bound
 * exactly the window of two counter reads: per inference and per layer, the
 * same windows as the instruction counts main.c prints.
 *
 * At exit: "total instructions N cycles C", and with mix=on one line per
 * instruction class (its count and cycles).
 *
 * It is an estimate: see thumb_timing.h and docs/cycles.md.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"
#include "thumb_timing.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define OUTPUT_FORMAT_VERSION 1

/* Counters the generated code adds to inline. One vCPU (the M4): no races. */
static uint64_t instructions;
static uint64_t cycles;
static uint64_t class_instructions[THUMB_CLASS_COUNT];
static uint64_t class_cycles[THUMB_CLASS_COUNT];
static uint64_t taken_conditional;
static uint64_t conditional_total;

/* The last conditional branch executed, until the next block starts. */
static int branch_pending;
static uint64_t pending_fall_through;

static FILE *output;
static int has_mark;
static uint64_t mark_address;
static int report_mix;

static void on_conditional_branch(unsigned int vcpu_index, void *fall_through)
{
    (void)vcpu_index;
    branch_pending = 1;
    pending_fall_through = (uint64_t)(uintptr_t)fall_through;
    ++conditional_total;
}

static void on_block_start(unsigned int vcpu_index, void *block_address)
{
    (void)vcpu_index;
    if (branch_pending) {
        if ((uint64_t)(uintptr_t)block_address != pending_fall_through) {
            cycles += THUMB_REFILL_CYCLES;
            class_cycles[THUMB_COND_BRANCH] += THUMB_REFILL_CYCLES;
            ++taken_conditional;
        }
        branch_pending = 0;
    }
}

static void on_load(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (!qemu_plugin_mem_is_store(info) && vaddr == mark_address) {
        fprintf(output, "mark %" PRIu64 " %" PRIu64 "\n", instructions, cycles);
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    const size_t count = qemu_plugin_tb_n_insns(tb);
    uint32_t it_remaining = 0u;
    int32_t previous_lets_pipeline = 0;
    size_t i;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block_start, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_vaddr(tb));
    for (i = 0; i < count; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint8_t *bytes = (const uint8_t *)qemu_plugin_insn_data(insn);
        const uint32_t size = (uint32_t)qemu_plugin_insn_size(insn);
        const uint16_t hw1 = (uint16_t)(bytes[0] | (bytes[1] << 8));
        const uint16_t hw2 = size == 4u ? (uint16_t)(bytes[2] | (bytes[3] << 8)) : 0u;
        const int32_t in_it_block = it_remaining > 0u;
        const thumb_timing timing = thumb_timing_of(hw1, hw2, size, in_it_block, previous_lets_pipeline);
        if (in_it_block) {
            --it_remaining;
        }
        if (size == 2u && thumb_it_block_length(hw1) > 0u) {
            it_remaining = thumb_it_block_length(hw1);
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &instructions, 1u);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &cycles, timing.cycles);
        if (report_mix) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                       &class_instructions[timing.klass], 1u);
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                       &class_cycles[timing.klass], timing.cycles);
        }
        if (timing.klass == THUMB_COND_BRANCH) {
            const uint64_t fall_through = qemu_plugin_insn_vaddr(insn) + size;
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_conditional_branch, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)(uintptr_t)fall_through);
        }
        if (has_mark && timing.klass == THUMB_LOAD) {
            /* QEMU 7.2 never calls a callback registered for reads only (QEMU_PLUGIN_MEM_R):
             * register for both and drop stores in on_load. */
            qemu_plugin_register_vcpu_mem_cb(insn, on_load, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
        }
        previous_lets_pipeline = timing.lets_next_pipeline;
    }
}

static void on_plugin_exit(qemu_plugin_id_t id, void *userdata)
{
    int k;
    (void)id;
    (void)userdata;
    fprintf(output, "total instructions %" PRIu64 " cycles %" PRIu64 "\n", instructions, cycles);
    fprintf(output, "conditional branches %" PRIu64 " taken %" PRIu64 "\n", conditional_total, taken_conditional);
    if (report_mix) {
        for (k = 0; k < THUMB_CLASS_COUNT; ++k) {
            fprintf(output, "class %s instructions %" PRIu64 " cycles %" PRIu64 "\n", thumb_class_names[k],
                    class_instructions[k], class_cycles[k]);
        }
    }
    fflush(output);
    if (output != stderr) {
        fclose(output);
    }
}

/* "name=value" -> value when argument starts with name=, else NULL. */
static const char *option_value(const char *argument, const char *name)
{
    const size_t length = strlen(name);
    return strncmp(argument, name, length) == 0 && argument[length] == '=' ? argument + length + 1 : NULL;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *out_path = NULL;
    int i;
    if (info == NULL || info->target_name == NULL || strcmp(info->target_name, "arm") != 0) {
        fprintf(stderr, "si4_cycles: Thumb-2 timings need an arm guest, not %s\n",
                info != NULL && info->target_name != NULL ? info->target_name : "(unknown)");
        return -1;
    }
    for (i = 0; i < argc; ++i) {
        const char *value;
        char *end = NULL;
        if ((value = option_value(argv[i], "out")) != NULL) {
            out_path = value;
        } else if ((value = option_value(argv[i], "mark")) != NULL) {
            mark_address = strtoull(value, &end, 0);
            if (end == value || *end != '\0') {
                fprintf(stderr, "si4_cycles: mark=%s is not an address\n", value);
                return -1;
            }
            has_mark = 1;
        } else if ((value = option_value(argv[i], "mix")) != NULL) {
            report_mix = strcmp(value, "on") == 0;
        } else {
            fprintf(stderr, "si4_cycles: unknown argument %s (out=FILE, mark=ADDR, mix=on)\n", argv[i]);
            return -1;
        }
    }
    output = stderr;
    if (out_path != NULL) {
        output = fopen(out_path, "w");
        if (output == NULL) {
            fprintf(stderr, "si4_cycles: cannot write %s\n", out_path);
            return -1;
        }
    }
    fprintf(output, "si4-cycles format %d refill %u divide %u estimate zero-wait-states\n", OUTPUT_FORMAT_VERSION,
            THUMB_REFILL_CYCLES, THUMB_DIVIDE_CYCLES);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
    return 0;
}
