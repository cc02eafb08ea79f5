"""The cycle estimate: the QEMU plugin's report parser, the pairing of its marks with the
firmware's counter reads, the loops of hand-counted cycles, and the seed firmware's estimate.

Tests marked `qemu` need a host C compiler, arm-none-eabi-gcc and qemu-system-arm (with
plugin support, as Debian's 7.2 has); they skip when those are missing.
"""

from __future__ import annotations

import ctypes
import shutil

import pytest

from si4tool.errors import UserError
from si4tool.targets import cycles, qemu
from si4tool.targets.toolchain import compile_shared_library

requires_qemu = pytest.mark.skipif(
    not qemu.toolchain_available() or shutil.which("cc") is None and shutil.which("gcc") is None,
    reason="arm-none-eabi-gcc/newlib, qemu-system-arm or a host C compiler missing",
)

# The loops of firmware_stub/tools/qemu_cycles/cycle_loop_test.S, counted by hand from the
# Cortex-M4 TRM table (P = 2, SDIV = 7): (instructions, cycles) per window.
LOOP_WINDOWS = [
    (3 * 1000 + 2, 5 * 1000 + 1),  # A: adds/subs/bne, N = 1000
    (9 * 500 + 4, 18 * 500 + 4),  # B: ldr, pipelined ldr, str #imm, ldr [reg], str [reg], ldrd, ldm, N = 500
    (13 * 200 + 4, 31 * 200 + 3),  # C: push, bl, bx, pop, mul, smlad, sdiv, it, N = 200
]

REPORT = """\
si4-cycles format 1 refill 2 divide 7 estimate zero-wait-states
mark 100 150
mark 1100 2650
mark 1200 2800
mark 1300 2950
mark 1350 3000
mark 1500 3300
total instructions 2000 cycles 4000
conditional branches 30 taken 20
class alu instructions 1500 cycles 1500
"""


# --------------------------------------------------------------------------- no toolchain needed


def test_plugin_report_is_parsed_into_marks_and_totals():
    report = cycles.parse_plugin_output(REPORT)
    assert (report.refill_cycles, report.divide_cycles) == (2, 7)
    assert (report.instructions, report.cycles) == (2000, 4000)
    assert (report.conditional_branches, report.taken_branches) == (30, 20)
    assert report.classes["alu"] == cycles.Window(1500, 1500)
    assert report.windows() == [cycles.Window(1000, 2500), cycles.Window(100, 150), cycles.Window(150, 300)]


def test_a_report_without_its_total_or_with_odd_marks_is_refused():
    with pytest.raises(RuntimeError, match="no total"):
        cycles.parse_plugin_output(REPORT.split("total")[0])
    with pytest.raises(RuntimeError, match="starts with"):
        cycles.parse_plugin_output("hello\n")
    odd = cycles.parse_plugin_output(REPORT.replace("mark 1500 3300\n", ""))
    with pytest.raises(RuntimeError, match="not pairs"):
        odd.windows()


def test_marks_pair_with_the_boards_inference_and_layer_windows():
    """main.c's order: vector 0's inference, then its one profiled layer; then vector 1's inference."""
    report = cycles.parse_plugin_output(REPORT)
    inferences, layers = cycles.firmware_windows(report, counts=[1000, 150], layer_counts=[[100]])
    assert inferences == [cycles.Window(1000, 2500), cycles.Window(150, 300)]
    assert layers == [[cycles.Window(100, 150)]]
    # within one timer tick (40 instructions) of the board's counts is the same window
    assert cycles.firmware_windows(report, counts=[1040, 120], layer_counts=[[60]])[0] == inferences


def test_a_window_that_disagrees_with_the_board_is_refused():
    report = cycles.parse_plugin_output(REPORT)
    with pytest.raises(RuntimeError, match="do not line up"):
        cycles.firmware_windows(report, counts=[1000, 400, 150], layer_counts=[])
    with pytest.raises(RuntimeError, match="firmware made 2"):
        cycles.firmware_windows(report, counts=[1000, 100], layer_counts=[])


def test_estimated_milliseconds_and_the_summary_say_estimate():
    assert cycles.estimated_ms(1_200_000, 120.0) == pytest.approx(10.0)
    with pytest.raises(UserError):
        cycles.estimated_ms(1000, 0.0)
    run = {"cycle_estimate": {"cycles_per_inference": 6_000_000}}
    assert cycles.summary_text(run, 120.0) == ", estimated 6,000,000 cycles/inference (50.00 ms at 120 MHz; estimate)"
    assert cycles.summary_text({"cycle_estimate": {"unavailable": "no plugin"}}) == ""


def test_bench_section_lists_estimated_cycles_per_variant_and_layer():
    run = {"cycle_estimate": {"cycles_per_inference": 2_400_000, "cycles_per_instruction": 1.2,
                              "cycles_per_layer": [{"layer": "conv2d_0", "cycles": 2_000_000},
                                                   {"layer": "fully_connected_1", "cycles": 400_000}]}}
    figures = {"m4.dsp.instructions_per_inference": 2_000_000, **cycles.bench_figures(run, "m4.dsp", 120.0)}
    assert figures["m4.dsp.estimated_cycles_per_inference"] == 2_400_000
    assert figures["m4.dsp.estimated_ms"] == 20.0
    text = "\n".join(cycles.bench_markdown_lines(figures, ("portable", "dsp"), 120.0))
    assert "| **estimated cycles** | 2,400,000 |" in text
    assert "| estimated ms at 120 MHz | 20.00 |" in text
    assert "| layer 1 `fully_connected_1` | 400,000 |" in text
    assert "Estimate, not a measurement" in text


# --------------------------------------------------------------------------- the decoder (host C)

# Encodings from arm-none-eabi-as (-mcpu=cortex-m4 -mfpu=fpv4-sp-d16), hw1 hw2 as objdump prints
# them, with the class and cycles of docs/cycles.md's table (P = 2). Loads are decoded once
# after a non-load (2 cycles) unless marked "after load".
DECODED = [
    # (hw1, hw2 or None for 16-bit, class, cycles, assembly)
    (0x1888, None, "alu", 1, "adds r0, r1, r2"),
    (0xEB01, 0x00C2, "alu", 1, "add.w r0, r1, r2, lsl #3"),
    (0xF240, 0x40D2, "alu", 1, "movw r0, #1234"),
    (0xFA91, 0xF002, "alu", 1, "sadd16 r0, r1, r2"),
    (0xFA2F, 0xF081, "alu", 1, "sxtb16 r0, r1"),
    (0xF301, 0x0007, "alu", 1, "ssat r0, #8, r1"),
    (0xFAB1, 0xF081, "alu", 1, "clz r0, r1"),
    (0xBA08, None, "alu", 1, "rev r0, r1"),
    (0xF361, 0x100B, "alu", 1, "bfi r0, r1, #4, #8"),
    (0x2805, None, "alu", 1, "cmp r0, #5"),
    (0xBF08, None, "alu", 1, "it eq"),
    (0xBF00, None, "alu", 1, "nop"),
    (0xF890, 0xF000, "alu", 1, "pld [r0]"),
    (0x4348, None, "multiply", 1, "muls r0, r1"),
    (0xFB01, 0x3002, "multiply", 1, "mla r0, r1, r2, r3"),
    (0xFB21, 0x3002, "multiply", 1, "smlad r0, r1, r2, r3"),
    (0xFB82, 0x0103, "multiply", 1, "smull r0, r1, r2, r3"),
    (0xFBC2, 0x0103, "multiply", 1, "smlal r0, r1, r2, r3"),
    (0xFB91, 0xF0F2, "divide", 7, "sdiv r0, r1, r2"),
    (0xFBB1, 0xF0F2, "divide", 7, "udiv r0, r1, r2"),
    (0x6848, None, "load", 2, "ldr r0, [r1, #4]"),
    (0xF8D1, 0x0FA0, "load", 2, "ldr.w r0, [r1, #4000]"),
    (0x5688, None, "load", 2, "ldrsb r0, [r1, r2]"),
    (0xF811, 0x0B01, "load", 2, "ldrb.w r0, [r1], #1"),
    (0x4802, None, "load", 2, "ldr r0, [pc, #8]"),
    (0xE851, 0x0F00, "load", 2, "ldrex r0, [r1]"),
    (0x6048, None, "store_imm", 1, "str r0, [r1, #4]"),
    (0xF841, 0x0D04, "store_imm", 1, "str.w r0, [r1, #-4]!"),
    (0x5088, None, "store_reg", 2, "str r0, [r1, r2]"),
    (0xF821, 0x0012, "store_reg", 2, "strh.w r0, [r1, r2, lsl #1]"),
    (0xE9D2, 0x0102, "load_store_dual", 3, "ldrd r0, r1, [r2, #8]"),
    (0xE9C2, 0x0100, "load_store_dual", 3, "strd r0, r1, [r2]"),
    (0xC80E, None, "load_store_multiple", 4, "ldmia r0!, {r1, r2, r3}"),
    (0xB570, None, "load_store_multiple", 5, "push {r4, r5, r6, lr}"),
    (0xBD70, None, "load_store_multiple", 7, "pop {r4, r5, r6, pc}"),
    (0xE92D, 0x4FF0, "load_store_multiple", 10, "push.w {r4-r11, lr}"),
    (0xE8BD, 0x8FF0, "load_store_multiple", 12, "pop.w {r4-r11, pc}"),
    (0xF85D, 0xFB04, "load_pc", 4, "ldr.w pc, [sp], #4"),
    (0xE7FE, None, "branch", 3, "b.n ."),
    (0xF000, 0xB9F2, "branch", 3, "b.w"),
    (0xF000, 0xF830, "branch", 3, "bl"),
    (0x4770, None, "branch", 3, "bx lr"),
    (0x4798, None, "branch", 3, "blx r3"),
    (0x4687, None, "branch", 3, "mov pc, r0"),
    (0xD0FE, None, "cond_branch", 1, "beq.n (taken: + 2 at run time)"),
    (0xF040, 0x81F2, "cond_branch", 1, "bne.w"),
    (0xB110, None, "cond_branch", 1, "cbz r0"),
    (0xE8D0, 0xF001, "table_branch", 4, "tbb [r0, r1]"),
    (0xE8D0, 0xF011, "table_branch", 4, "tbh [r0, r1, lsl #1]"),
    (0xEE30, 0x0A81, "fp", 1, "vadd.f32 s0, s1, s2"),
    (0xEE10, 0x0A10, "fp", 1, "vmov r0, s0"),
    (0xEEBD, 0x0AC0, "fp", 1, "vcvt.s32.f32 s0, s0"),
    (0xEE00, 0x0A81, "fp_mac", 3, "vmla.f32 s0, s1, s2"),
    (0xEEA0, 0x0A81, "fp_mac", 3, "vfma.f32 s0, s1, s2"),
    (0xEE80, 0x0A81, "fp_divide", 14, "vdiv.f32 s0, s1, s2"),
    (0xEEB1, 0x0AE0, "fp_divide", 14, "vsqrt.f32 s0, s1"),
    (0xED90, 0x0A01, "fp_load_store", 2, "vldr s0, [r0, #4]"),
    (0xED80, 0x0A00, "fp_load_store", 2, "vstr s0, [r0]"),
    (0xEC41, 0x0A10, "fp_load_store", 2, "vmov s0, s1, r0, r1"),
    (0xED2D, 0x8A04, "fp_load_store_multiple", 5, "vpush {s16-s19}"),
    (0xECB0, 0x0A08, "fp_load_store_multiple", 9, "vldmia r0!, {s0-s7}"),
    (0xF380, 0x8811, "system", 1, "msr basepri, r0"),
    (0xF3EF, 0x8010, "system", 1, "mrs r0, primask"),
    (0xF3BF, 0x8F4F, "system", 1, "dsb sy"),
    (0xF3BF, 0x8F6F, "system", 3, "isb sy"),
    (0xBEAB, None, "system", 1, "bkpt 0xab"),
    (0xDF00, None, "system", 1, "svc 0"),
]

CLASS_NAMES = [
    "alu", "multiply", "divide", "load", "store_imm", "store_reg", "load_store_dual", "load_store_multiple",
    "load_pc", "branch", "cond_branch", "table_branch", "fp", "fp_mac", "fp_divide", "fp_load_store",
    "fp_load_store_multiple", "system",
]


class _Timing(ctypes.Structure):
    _fields_ = [("klass", ctypes.c_int), ("cycles", ctypes.c_uint32), ("lets_next_pipeline", ctypes.c_int32)]


@pytest.fixture(scope="module")
def thumb_timing(tmp_path_factory):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no host C compiler")
    source = cycles.plugin_source_dir() / "thumb_timing.c"
    library = ctypes.CDLL(str(compile_shared_library([source], tmp_path_factory.mktemp("timing") / "libtiming.so")))
    library.thumb_timing_of.restype = _Timing
    library.thumb_timing_of.argtypes = [ctypes.c_uint16, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_int32, ctypes.c_int32]
    library.thumb_is_32bit.restype = ctypes.c_int32
    library.thumb_it_block_length.restype = ctypes.c_uint32

    def decode(hw1: int, hw2: int | None, in_it: bool = False, after_load: bool = False) -> tuple[str, int, int]:
        assert bool(library.thumb_is_32bit(hw1)) == (hw2 is not None)
        timing = library.thumb_timing_of(hw1, hw2 or 0, 2 if hw2 is None else 4, int(in_it), int(after_load))
        return CLASS_NAMES[timing.klass], timing.cycles, timing.lets_next_pipeline

    decode.it_block_length = library.thumb_it_block_length
    return decode


@pytest.mark.parametrize("hw1, hw2, klass, cycles_expected, assembly", DECODED, ids=[row[4] for row in DECODED])
def test_decoder_gives_each_instruction_its_trm_timing(thumb_timing, hw1, hw2, klass, cycles_expected, assembly):
    assert thumb_timing(hw1, hw2)[:2] == (klass, cycles_expected), assembly


def test_decoder_pipelines_loads_behind_loads_and_makes_it_branches_conditional(thumb_timing):
    assert thumb_timing(0x6848, None, after_load=True) == ("load", 1, 1)  # ldr behind a load
    assert thumb_timing(0x5088, None, after_load=True) == ("store_reg", 1, 0)  # str [reg] behind a load
    assert thumb_timing(0x6048, None, after_load=True) == ("store_imm", 1, 0)
    assert thumb_timing(0xE9D2, 0x0102, after_load=True)[:2] == ("load_store_dual", 3)  # ldrd never pipelines
    assert thumb_timing(0x4770, None, in_it=True)[:2] == ("cond_branch", 1)  # bxeq lr
    assert thumb_timing(0xBD70, None, in_it=True)[:2] == ("cond_branch", 5)  # popeq {r4-r6, pc}: 1 + N, + P if taken
    assert [thumb_timing.it_block_length(hw) for hw in (0xBF08, 0xBF04, 0xBF0C, 0xBF02, 0xBF01, 0xBF00)] == [1, 2, 2, 3, 4, 0]


# --------------------------------------------------------------------------- under QEMU


@pytest.mark.qemu
@requires_qemu
def test_plugin_counts_the_loops_of_known_cycle_count(tmp_path):
    plugin = cycles.build_plugin(tmp_path)
    elf = cycles.build_loop_test(tmp_path)
    status, _, report = cycles.run_with_plugin(elf, "mps2-an386", plugin, tmp_path / "report.txt", mix=True, timeout=60)
    assert status == 0
    assert [(w.instructions, w.cycles) for w in report.windows()] == LOOP_WINDOWS
    # 1000 + 500 + 200 loop branches, each taken but the last time
    assert (report.conditional_branches, report.taken_branches) == (1700, 1697)
    assert report.classes["divide"] == cycles.Window(200, 200 * 7)
    assert report.classes["load_store_dual"] == cycles.Window(500, 500 * 3)
    assert report.classes["load_store_multiple"] == cycles.Window(900, 500 * 4 + 400 * 4)
    assert sum(window.cycles for window in report.classes.values()) == report.cycles


@pytest.mark.qemu
@requires_qemu
def test_seed_firmware_estimate_is_at_least_its_instruction_count(firmware_assets, tmp_path):
    assets = firmware_assets
    result = qemu.validate_qemu(assets, out_dir=tmp_path / "validation", build_dir=tmp_path / "build",
                                kernels=("dsp",), quiet=True)
    run = result.runs[0].to_dict()
    estimate = run["cycle_estimate"]
    assert "estimate" in estimate["label"]
    assert estimate["run_cycles"] >= estimate["run_instructions"] > 0
    assert estimate["cycles_per_inference"] >= run["instructions_per_inference"]
    # measured 1.25 on the seed model's DSP build with the C kernels and 1.64 with the assembly
    # ones (fewer instructions, a larger share of them loads and multi-register loads)
    assert 1.05 <= estimate["cycles_per_instruction"] <= 1.9
    assert [entry["layer"] for entry in estimate["cycles_per_layer"]] == [
        entry["layer"] for entry in run["instructions_per_layer"]]
    for cycles_entry, instructions_entry in zip(estimate["cycles_per_layer"], run["instructions_per_layer"]):
        # the board's layer counts move in ticks of 40 instructions
        assert cycles_entry["cycles"] >= instructions_entry["instructions"] - cycles.TICK_INSTRUCTIONS
    # the layer windows add up to the inference window, up to the counter reads between them
    layer_total = sum(entry["cycles"] for entry in estimate["cycles_per_layer"])
    assert abs(layer_total - estimate["cycles_per_inference"]) <= 0.01 * estimate["cycles_per_inference"]
