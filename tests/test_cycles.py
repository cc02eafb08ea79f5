"""The cycle estimate: the QEMU plugin's report parser, the pairing of its marks with the
firmware's counter reads, the loops of hand-counted cycles, and the seed firmware's estimate.

Tests marked `qemu` need a host C compiler, arm-none-eabi-gcc and qemu-system-arm (with
plugin support, as Debian's 7.2 has); they skip when those are missing.
"""

from __future__ import annotations

import shutil

import pytest

from si4tool.errors import UserError
from si4tool.targets import cycles, qemu

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
def test_seed_firmware_estimate_is_at_least_its_instruction_count(request, tmp_path):
    try:
        assets = request.getfixturevalue("firmware_assets")
    except pytest.FixtureLookupError:
        pytest.skip("no firmware_assets fixture in tests/conftest.py")
    result = qemu.validate_qemu(assets, out_dir=tmp_path / "validation", build_dir=tmp_path / "build",
                                kernels=("dsp",), quiet=True)
    run = result.runs[0].to_dict()
    estimate = run["cycle_estimate"]
    assert "estimate" in estimate["label"]
    assert estimate["run_cycles"] >= estimate["run_instructions"] > 0
    assert estimate["cycles_per_inference"] >= run["instructions_per_inference"]
    # measured 1.25 on the seed model's DSP build: loads, MACs and loop branches dominate
    assert 1.05 <= estimate["cycles_per_instruction"] <= 1.6
    assert [entry["layer"] for entry in estimate["cycles_per_layer"]] == [
        entry["layer"] for entry in run["instructions_per_layer"]]
    for cycles_entry, instructions_entry in zip(estimate["cycles_per_layer"], run["instructions_per_layer"]):
        # the board's layer counts move in ticks of 40 instructions
        assert cycles_entry["cycles"] >= instructions_entry["instructions"] - cycles.TICK_INSTRUCTIONS
    # the layer windows add up to the inference window, up to the counter reads between them
    layer_total = sum(entry["cycles"] for entry in estimate["cycles_per_layer"])
    assert abs(layer_total - estimate["cycles_per_inference"]) <= 0.01 * estimate["cycles_per_inference"]
