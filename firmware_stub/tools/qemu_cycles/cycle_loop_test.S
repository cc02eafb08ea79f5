/*
 * cycle_loop_test.S - loops of known Cortex-M4 cycle counts, the cross-check
 * of the si4_cycles plugin (tests/test_cycles.py, docs/cycles.md).
 *
 * Each window starts and ends with a load of the CMSDK timer's value register
 * (0x40000004): run with `-plugin si4_cycles.so,mark=0x40000004` the plugin
 * prints a mark at each, and the difference of two marks is the window's
 * instructions and cycles, counted from the instruction after the first load
 * up to and including the second. The counts by hand, from the TRM table
 * (P = 2, SDIV = 7), with N iterations:
 *
 *   window A, ALU loop, N = 1000: 3N + 2 instructions, 5N + 1 cycles
 *     movw 1; per iteration adds 1, subs 1, bne 3 (1 the last time);
 *     closing ldr 2 (first of its block, nothing to pipeline behind)
 *   window B, loads and stores, N = 500: 9N + 4 instructions, 18N + 4 cycles
 *     movw 1, ldr literal 2, movs 1; per iteration ldr 2, ldr 1 (pipelined
 *     behind the first), str #imm 1, ldr [reg] 2 (nothing pipelines behind a
 *     store), str [reg] 1 (behind a load), ldrd 3, ldm of 3 registers 4,
 *     subs 1, bne 3 (1 the last time); closing ldr 2
 *   window C, calls, multiplies, divide, IT, N = 200: 13N + 4 instructions, 31N + 3 cycles
 *     movw, movs, movs 3; per iteration push of 3 registers 4, bl 3, add 1,
 *     bx 3, pop of 3 registers 4, mul 1, smlad 1, sdiv 7, cmp 1, it 1,
 *     addeq 1, subs 1, bne 3 (1 the last time); closing ldr 2
 *
 * Then SYS_EXIT through semihosting (QEMU exits with status 0).
 */
    .syntax unified
    .cpu cortex-m4
    .thumb

    .section .vectors, "a"
    .word __stack_top
    .word reset
    .word fault         /* NMI */
    .word fault         /* HardFault */
    .word fault         /* MemManage */
    .word fault         /* BusFault */
    .word fault         /* UsageFault */

    .bss
    .balign 8
data:
    .space 16

    .text
    .thumb_func
    .global reset
reset:
    ldr r7, =0x40000000     /* CMSDK APB timer 0; +4 is its value register */
    movs r1, #0
    movs r5, #0

    /* window A */
    ldr r0, [r7, #4]
    movw r0, #1000
1:  adds r1, r1, #1
    subs r0, r0, #1
    bne 1b
    ldr r2, [r7, #4]

    /* window B */
    ldr r0, [r7, #4]
    movw r0, #500
    ldr r1, =data
    movs r5, #0
2:  ldr r2, [r1]
    ldr r3, [r1, #4]
    str r2, [r1, #8]
    ldr r4, [r1, r5]
    str r4, [r1, r5]
    ldrd r2, r3, [r1]
    ldm r1, {r2, r3, r4}
    subs r0, r0, #1
    bne 2b
    ldr r2, [r7, #4]

    /* window C */
    ldr r0, [r7, #4]
    movw r0, #200
    movs r2, #7
    movs r3, #3
3:  push {r4, r5, lr}
    bl leaf
    pop {r4, r5, lr}
    mul r4, r2, r3
    smlad r5, r2, r3, r5
    sdiv r6, r2, r3
    cmp r0, #100
    it eq
    addeq r6, r6, #1
    subs r0, r0, #1
    bne 3b
    ldr r2, [r7, #4]

    ldr r1, =0x20026        /* ADP_Stopped_ApplicationExit */
    movs r0, #0x18          /* SYS_EXIT */
    bkpt 0xab
    b .

    .thumb_func
leaf:
    add r5, r5, r2
    bx lr

    .thumb_func
fault:
    ldr r1, =0x20023        /* ADP_Stopped_RunTimeErrorUnknown */
    movs r0, #0x18
    bkpt 0xab
    b .

    .ltorg
