/*
 * thumb_timing.c - classify one Thumb-2 (ARMv7E-M) instruction and give its
 * Cortex-M4 cycle count at zero wait states. Encodings follow the ARMv7-M
 * Architecture Reference Manual (ARM DDI 0403), chapters A5 (16-bit and
 * 32-bit Thumb encodings) and A6 (floating-point); timings follow the
 * Cortex-M4 TRM (see thumb_timing.h).
 *
 * Load/store pipelining, the one neighbour effect modelled: the TRM's "LDR
 * [any] are pipelined when possible": a single load (LDR, LDRB, LDRH, LDRSB,
 * LDRSH, LDREX) or a register-offset store directly after a single load
 * costs 1 cycle instead of 2. A store with an immediate offset is always 1
 * cycle ("STR Rx,[Ry,#imm] is always one cycle"). Nothing pipelines behind a
 * store, LDRD/STRD, LDM/STM or a load into PC. The TRM's exception (no
 * pipelining when the first load's destination forms the second one's
 * address) and the stall of a load whose address a data-processing
 * instruction just computed are ignored: the estimate is optimistic there.
 */
#include "thumb_timing.h"

const char *const thumb_class_names[THUMB_CLASS_COUNT] = {
    "alu", "multiply", "divide", "load", "store_imm", "store_reg", "load_store_dual", "load_store_multiple",
    "load_pc", "branch", "cond_branch", "table_branch", "fp", "fp_mac", "fp_divide", "fp_load_store",
    "fp_load_store_multiple", "system",
};

static uint32_t popcount16(uint32_t value)
{
    uint32_t count = 0u;
    value &= 0xFFFFu;
    while (value != 0u) {
        count += value & 1u;
        value >>= 1;
    }
    return count;
}

static thumb_timing make(thumb_class klass, uint32_t cycles)
{
    thumb_timing timing;
    timing.klass = klass;
    timing.cycles = cycles;
    timing.lets_next_pipeline = klass == THUMB_LOAD;
    return timing;
}

/* A single load or register-offset store: 2 cycles, 1 behind a single load. */
static thumb_timing pipelined(thumb_class klass, int32_t previous_lets_pipeline)
{
    return make(klass, previous_lets_pipeline ? 1u : 2u);
}

/* LDM/POP loading PC is a branch: conditional inside an IT block (the refill
 * is then added at run time when it is taken), always taken outside. */
static thumb_timing multiple(uint32_t registers, int32_t loads_pc, int32_t in_it)
{
    if (loads_pc && in_it) {
        return make(THUMB_COND_BRANCH, 1u + registers);
    }
    return make(THUMB_MULTIPLE, 1u + registers + (loads_pc ? THUMB_REFILL_CYCLES : 0u));
}

static thumb_timing branch(int32_t conditional)
{
    return conditional ? make(THUMB_COND_BRANCH, 1u) : make(THUMB_BRANCH, 1u + THUMB_REFILL_CYCLES);
}

int32_t thumb_is_32bit(uint16_t hw1)
{
    const uint32_t top5 = (uint32_t)hw1 >> 11;
    return top5 == 0x1Du || top5 == 0x1Eu || top5 == 0x1Fu;
}

uint32_t thumb_it_block_length(uint16_t hw1)
{
    const uint32_t mask = (uint32_t)hw1 & 0xFu;
    if ((hw1 & 0xFF00u) != 0xBF00u || mask == 0u) {
        return 0u; /* not IT: a hint (NOP, YIELD, WFE, WFI, SEV) or another instruction */
    }
    /* The block ends at the mask's lowest set bit: xxx1 -> 4, xx10 -> 3, x100 -> 2, 1000 -> 1. */
    if (mask & 1u) {
        return 4u;
    }
    if (mask & 2u) {
        return 3u;
    }
    if (mask & 4u) {
        return 2u;
    }
    return 1u;
}

static thumb_timing timing_16(uint32_t hw1, int32_t in_it, int32_t prev)
{
    if ((hw1 >> 14) == 0x0u) {
        return make(THUMB_ALU, 1u); /* shift, add, subtract, move, compare (immediate) */
    }
    if ((hw1 >> 10) == 0x10u) {
        /* data processing (register); MULS is 0100 0011 01 */
        return make(((hw1 >> 6) & 0xFu) == 0xDu ? THUMB_MULTIPLY : THUMB_ALU, 1u);
    }
    if ((hw1 >> 10) == 0x11u) {
        /* special data processing and branch-exchange */
        const uint32_t op = (hw1 >> 8) & 0x3u;
        const uint32_t rd = ((hw1 >> 4) & 0x8u) | (hw1 & 0x7u);
        if (op == 0x3u) {
            return branch(in_it); /* BX, BLX */
        }
        if (op != 0x1u && rd == 15u) {
            return branch(in_it); /* ADD PC, Rm / MOV PC, Rm */
        }
        return make(THUMB_ALU, 1u);
    }
    if ((hw1 >> 11) == 0x09u) {
        return pipelined(THUMB_LOAD, prev); /* LDR (literal) */
    }
    if ((hw1 >> 12) == 0x5u) {
        /* load/store, register offset: opB 000 STR, 001 STRH, 010 STRB, others loads */
        return ((hw1 >> 9) & 0x7u) <= 0x2u ? pipelined(THUMB_STORE_REG, prev) : pipelined(THUMB_LOAD, prev);
    }
    if ((hw1 >> 13) == 0x3u || (hw1 >> 12) == 0x8u || (hw1 >> 12) == 0x9u) {
        /* word/byte, halfword and SP-relative, immediate offset; bit 11 is L */
        return (hw1 & 0x0800u) ? pipelined(THUMB_LOAD, prev) : make(THUMB_STORE_IMM, 1u);
    }
    if ((hw1 >> 12) == 0xAu) {
        return make(THUMB_ALU, 1u); /* ADR, ADD Rd, SP, #imm */
    }
    if ((hw1 >> 12) == 0xBu) {
        /* miscellaneous */
        if ((hw1 & 0x0500u) == 0x0100u) {
            return branch(1); /* CBZ, CBNZ */
        }
        if ((hw1 & 0x0E00u) == 0x0400u) {
            return multiple(popcount16(hw1 & 0x1FFu), 0, 0); /* PUSH; bit 8 is LR */
        }
        if ((hw1 & 0x0E00u) == 0x0C00u) {
            return multiple(popcount16(hw1 & 0x1FFu), (hw1 & 0x0100u) != 0u, in_it); /* POP; bit 8 is PC */
        }
        if ((hw1 & 0x0F00u) == 0x0E00u) {
            return make(THUMB_SYSTEM, 1u); /* BKPT (semihosting traps here) */
        }
        if ((hw1 & 0x0FE0u) == 0x0660u) {
            return make(THUMB_SYSTEM, 1u); /* CPS */
        }
        return make(THUMB_ALU, 1u); /* ADD/SUB SP, extends, REV, IT, hints */
    }
    if ((hw1 >> 12) == 0xCu) {
        return multiple(popcount16(hw1 & 0xFFu), 0, 0); /* STM, LDM */
    }
    if ((hw1 >> 12) == 0xDu) {
        const uint32_t cond = (hw1 >> 8) & 0xFu;
        return cond >= 0xEu ? make(THUMB_SYSTEM, 1u) : branch(1); /* UDF, SVC; B<cond> */
    }
    return branch(in_it); /* 11100: B */
}

/* Coprocessor space: the single-precision FPU (coprocessors 10 and 11). */
static thumb_timing timing_fp(uint32_t hw1, uint32_t hw2)
{
    if ((hw1 & 0xFC00u) != 0xEC00u || ((hw2 >> 8) & 0xEu) != 0xAu) {
        return make(THUMB_SYSTEM, 1u); /* other coprocessors: none on this core */
    }
    if ((hw1 & 0x0200u) == 0u) {
        /* 110x: extension register load/store and 64-bit transfers */
        const uint32_t opcode = (hw1 >> 4) & 0x1Fu;
        if ((opcode & 0x1Eu) == 0x04u) {
            return make(THUMB_FP_LOAD, 2u); /* VMOV two core registers <-> two S registers / one D register */
        }
        if ((opcode & 0x12u) == 0x10u) {
            return make(THUMB_FP_LOAD, 2u); /* VSTR, VLDR */
        }
        return make(THUMB_FP_MULTIPLE, 1u + (hw2 & 0xFFu)); /* VSTM, VLDM, VPUSH, VPOP: imm8 words */
    }
    if ((hw1 & 0x0300u) == 0x0300u) {
        return make(THUMB_SYSTEM, 1u);
    }
    if (hw2 & 0x0010u) {
        return make(THUMB_FP, 1u); /* VMOV core <-> S register, VMRS, VMSR */
    }
    switch ((hw1 >> 4) & 0xBu) {
    case 0x0u: /* VMLA, VMLS */
    case 0x1u: /* VNMLA, VNMLS */
    case 0x9u: /* VFNMA, VFNMS */
    case 0xAu: /* VFMA, VFMS */
        return make(THUMB_FP_MAC, THUMB_FP_MAC_CYCLES);
    case 0x8u: /* VDIV */
        return make(THUMB_FP_DIVIDE, THUMB_FP_DIVIDE_CYCLES);
    case 0xBu: /* VMOV immediate/register, VABS, VNEG, VSQRT, VCMP, VCVT */
        if ((hw1 & 0xFu) == 0x1u && ((hw2 >> 6) & 0x3u) == 0x3u) {
            return make(THUMB_FP_DIVIDE, THUMB_FP_DIVIDE_CYCLES); /* VSQRT */
        }
        return make(THUMB_FP, 1u);
    default: /* VMUL, VNMUL, VADD, VSUB */
        return make(THUMB_FP, 1u);
    }
}

static thumb_timing timing_32(uint32_t hw1, uint32_t hw2, int32_t in_it, int32_t prev)
{
    const uint32_t op1 = (hw1 >> 11) & 0x3u;
    const uint32_t op2 = (hw1 >> 4) & 0x7Fu;
    if (op1 == 0x1u) {
        if ((op2 & 0x64u) == 0x00u) {
            /* load/store multiple: LDM, STM, PUSH.W, POP.W; bit 4 of hw1 is L */
            const uint32_t opc = (hw1 >> 7) & 0x3u;
            if (opc == 0x0u || opc == 0x3u) {
                return make(THUMB_SYSTEM, 1u); /* RFE, SRS: not on M profile */
            }
            return multiple(popcount16(hw2), (hw1 & 0x0010u) != 0u && (hw2 & 0x8000u) != 0u, in_it);
        }
        if ((op2 & 0x64u) == 0x04u) {
            /* load/store dual, exclusive, table branch */
            const uint32_t o1 = (hw1 >> 7) & 0x3u;
            const uint32_t o2 = (hw1 >> 4) & 0x3u;
            if (o1 == 0x0u && o2 <= 0x1u) {
                return pipelined(THUMB_LOAD, prev); /* STREX, LDREX: pipeline like LDR */
            }
            if (o1 == 0x1u && o2 == 0x0u) {
                return pipelined(THUMB_LOAD, prev); /* STREXB, STREXH */
            }
            if (o1 == 0x1u && o2 == 0x1u) {
                const uint32_t op3 = (hw2 >> 4) & 0xFu;
                if (op3 <= 0x1u) {
                    return make(THUMB_TABLE_BRANCH, 2u + THUMB_REFILL_CYCLES); /* TBB, TBH */
                }
                return pipelined(THUMB_LOAD, prev); /* LDREXB, LDREXH */
            }
            return make(THUMB_LOAD_DUAL, 3u); /* LDRD, STRD */
        }
        if ((op2 & 0x60u) == 0x20u) {
            return make(THUMB_ALU, 1u); /* data processing (shifted register) */
        }
        return timing_fp(hw1, hw2);
    }
    if (op1 == 0x2u) {
        if ((hw2 & 0x8000u) == 0u) {
            return make(THUMB_ALU, 1u); /* data processing (modified or plain immediate) */
        }
        {
            /* branches and miscellaneous control */
            const uint32_t op1b = (hw2 >> 12) & 0x5u;
            if (op1b == 0x0u) {
                if ((op2 & 0x38u) != 0x38u) {
                    return branch(1); /* B<cond>.W */
                }
                if ((op2 & 0x7Fu) == 0x3Bu && ((hw2 >> 4) & 0xFu) == 0x6u) {
                    return make(THUMB_SYSTEM, 1u + THUMB_REFILL_CYCLES); /* ISB */
                }
                return make(THUMB_SYSTEM, 1u); /* MSR, MRS, hints, DSB, DMB, UDF */
            }
            if (op1b == 0x1u || op1b == 0x5u) {
                return branch(in_it); /* B.W, BL */
            }
            return make(THUMB_SYSTEM, 1u);
        }
    }
    /* op1 == 3 */
    if ((op2 & 0x71u) == 0x00u) {
        /* store single: register offset only in the 000/001/010 forms with op2 of hw2 = 000000 */
        const int32_t register_offset = ((hw1 >> 5) & 0x4u) == 0u && ((hw2 >> 6) & 0x3Fu) == 0u;
        return register_offset ? pipelined(THUMB_STORE_REG, prev) : make(THUMB_STORE_IMM, 1u);
    }
    if ((op2 & 0x67u) == 0x01u || (op2 & 0x67u) == 0x03u) {
        /* load byte / halfword; Rt = PC is PLD, PLI or a memory hint */
        return ((hw2 >> 12) & 0xFu) == 15u ? make(THUMB_ALU, 1u) : pipelined(THUMB_LOAD, prev);
    }
    if ((op2 & 0x67u) == 0x05u) {
        /* load word */
        if (((hw2 >> 12) & 0xFu) == 15u) {
            return in_it ? make(THUMB_COND_BRANCH, 2u) : make(THUMB_LOAD_PC, 2u + THUMB_REFILL_CYCLES);
        }
        return pipelined(THUMB_LOAD, prev);
    }
    if ((op2 & 0x67u) == 0x07u) {
        return make(THUMB_SYSTEM, 1u); /* undefined */
    }
    if ((op2 & 0x70u) == 0x20u) {
        return make(THUMB_ALU, 1u); /* data processing (register), parallel add/sub, misc (CLZ, REV, SEL, QADD) */
    }
    if ((op2 & 0x78u) == 0x30u) {
        return make(THUMB_MULTIPLY, 1u); /* multiply, multiply-accumulate, absolute difference */
    }
    if ((op2 & 0x78u) == 0x38u) {
        /* long multiply, long multiply-accumulate, divide */
        const uint32_t o1 = (hw1 >> 4) & 0x7u;
        const uint32_t o2 = (hw2 >> 4) & 0xFu;
        if ((o1 == 0x1u || o1 == 0x3u) && o2 == 0xFu) {
            return make(THUMB_DIVIDE, THUMB_DIVIDE_CYCLES); /* SDIV, UDIV */
        }
        return make(THUMB_MULTIPLY, 1u);
    }
    return timing_fp(hw1, hw2);
}

thumb_timing thumb_timing_of(uint16_t hw1, uint16_t hw2, uint32_t size, int32_t in_it_block,
                             int32_t previous_lets_pipeline)
{
    if (size == 4u) {
        return timing_32(hw1, hw2, in_it_block, previous_lets_pipeline);
    }
    return timing_16(hw1, in_it_block, previous_lets_pipeline);
}
