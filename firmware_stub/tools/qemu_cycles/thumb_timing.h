/*
 * thumb_timing.h - Cortex-M4 instruction timings at zero wait states, from the
 * Cortex-M4 Technical Reference Manual (ARM DDI 0439, table 3-1 "Processor
 * instruction set summary", section 3.3.2 "Load/store timings", and the FPU
 * chapter's instruction table), for one decoded Thumb-2 instruction.
 *
 * This is an estimate: it has no flash wait states, no bus contention, no
 * register-dependency stalls and one fixed pipeline refill (see
 * THUMB_REFILL_CYCLES). docs/cycles.md gives the table and what it ignores.
 */
#ifndef SI4_THUMB_TIMING_H
#define SI4_THUMB_TIMING_H

#include <stdint.h>

/* P of the TRM: a pipeline refill after a taken branch costs 1 to 3 cycles
 * depending on the target's alignment and width and on early speculation;
 * the estimate takes 2 for every refill. */
#define THUMB_REFILL_CYCLES 2u
/* SDIV/UDIV take 2 to 12 cycles (early termination on the operands' leading
 * zeros, which the plugin cannot see): the estimate takes the midpoint. */
#define THUMB_DIVIDE_CYCLES 7u
/* VDIV.F32 and VSQRT.F32. */
#define THUMB_FP_DIVIDE_CYCLES 14u
/* VMLA, VMLS, VNMLA, VNMLS, VFMA, VFMS, VFNMA, VFNMS. */
#define THUMB_FP_MAC_CYCLES 3u

typedef enum {
    THUMB_ALU,           /* data processing, shifts, extends, saturation, SIMD, bit fields, IT, hints: 1 */
    THUMB_MULTIPLY,      /* MUL, MLA, MLS, SMULL, UMULL, SMLAL, SMLAD, SMUAD, SMMUL, ...: 1 */
    THUMB_DIVIDE,        /* SDIV, UDIV: THUMB_DIVIDE_CYCLES */
    THUMB_LOAD,          /* LDR, LDRB, LDRH, LDRSB, LDRSH, LDREX (and STREX): 2, 1 behind a single load */
    THUMB_STORE_IMM,     /* STR, STRB, STRH with an immediate offset: 1 */
    THUMB_STORE_REG,     /* STR, STRB, STRH with a register offset: 2, 1 behind a single load */
    THUMB_LOAD_DUAL,     /* LDRD, STRD: 1 + 2 */
    THUMB_MULTIPLE,      /* LDM, STM, PUSH, POP: 1 + N, + P when PC is loaded */
    THUMB_LOAD_PC,       /* LDR PC, [...]: 2 + P */
    THUMB_BRANCH,        /* B, BL, BX, BLX, MOV PC / ADD PC: 1 + P */
    THUMB_COND_BRANCH,   /* B<cond>, CBZ, CBNZ, branches in an IT block: 1, + P when taken (decided at run time) */
    THUMB_TABLE_BRANCH,  /* TBB, TBH: 2 + P */
    THUMB_FP,            /* VADD, VSUB, VMUL, VCVT, VCMP, VMOV, VMRS, ...: 1 */
    THUMB_FP_MAC,        /* fused and chained multiply-accumulate: THUMB_FP_MAC_CYCLES */
    THUMB_FP_DIVIDE,     /* VDIV, VSQRT: THUMB_FP_DIVIDE_CYCLES */
    THUMB_FP_LOAD,       /* VLDR, VSTR: 2; VMOV of two core registers: 2 */
    THUMB_FP_MULTIPLE,   /* VLDM, VSTM, VPUSH, VPOP: 1 + N words */
    THUMB_SYSTEM,        /* MSR, MRS, CPS, barriers, SVC, BKPT, UDF: 1 (ISB: 1 + P) */
    THUMB_CLASS_COUNT
} thumb_class;

typedef struct {
    thumb_class klass;
    /* Cycles when executed, before the run-time taken-branch refill of a
     * THUMB_COND_BRANCH. Pipelining behind a preceding load is applied. */
    uint32_t cycles;
    /* 1 when a following single load or register-offset store pipelines
     * behind this one (it is a single load that does not write PC). */
    int32_t lets_next_pipeline;
} thumb_timing;

/* Names of the classes, for the plugin's report ("alu", "load", ...). */
extern const char *const thumb_class_names[THUMB_CLASS_COUNT];

/* Decodes one instruction: hw1 its first halfword, hw2 its second (ignored
 * for a 16-bit instruction), size 2 or 4 bytes. in_it_block: the instruction
 * sits inside an IT block (a branch there is conditional).
 * previous_lets_pipeline: lets_next_pipeline of the instruction executed just
 * before (0 when unknown, e.g. at the start of a translation block). */
thumb_timing thumb_timing_of(uint16_t hw1, uint16_t hw2, uint32_t size, int32_t in_it_block,
                             int32_t previous_lets_pipeline);

/* The number of instructions an IT instruction (hw1) makes conditional: 1 to
 * 4; 0 when hw1 is not an IT instruction. */
uint32_t thumb_it_block_length(uint16_t hw1);

/* 1 when hw1 starts a 32-bit Thumb-2 instruction. */
int32_t thumb_is_32bit(uint16_t hw1);

#endif /* SI4_THUMB_TIMING_H */
