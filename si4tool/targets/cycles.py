"""Estimated Cortex-M4 cycles beside QEMU's instruction counts.

QEMU models no pipeline: under `-icount shift=0` the firmware's counter counts
instructions. The TCG plugin in `firmware_stub/tools/qemu_cycles/` (host C,
built here with the host compiler) decodes every executed Thumb-2 instruction
and adds its Cortex-M4 Technical Reference Manual timing at zero wait states
(a taken conditional branch gets its pipeline refill at run time). The
result is an **estimate**: no flash wait states, no bus contention, one fixed
refill (2 cycles), a fixed divide (7 cycles), no register-dependency stalls.
docs/cycles.md has the timing table and the cross-check.

Per inference and per layer: the plugin prints a mark, with its running
instruction and cycle totals, at every load from the CMSDK timer's value
register (0x40000004), the one load in `platform_counter_read()` that
samples the counter. main.c reads the counter in pairs around every
inference and every profiled layer, so consecutive marks pair into exactly
the windows whose instruction counts the board prints. Each window's
instruction count from the plugin is checked against the board's (they
agree within one 40-instruction timer tick): a mark lost or gained cannot
shift cycles onto the wrong layer unnoticed.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from si4tool.errors import UserError
from si4tool.targets.toolchain import firmware_stub_dir, host_compiler

PLUGIN_FILE = "si4_cycles.so"
LOOP_TEST_FILE = "cycle_loop_test.elf"
# CMSDK APB timer 0's VALUE register (platform/mps2_an386/platform_mps2.c reads it).
TIMER_VALUE_ADDRESS = 0x40000004
DEFAULT_CLOCK_MHZ = 120.0
CORTEX_M4_MACHINE = "mps2-an386"
ESTIMATE_LABEL = "estimate: Cortex-M4 TRM timings, zero wait states"
# The board's count moves in ticks of 40 instructions (25 MHz timer, 1 ns per instruction).
TICK_INSTRUCTIONS = 40
BUILD_TIMEOUT_SECONDS = 120
RUN_TIMEOUT_SECONDS = 900
OUTPUT_FORMAT = "1"


def plugin_source_dir() -> Path:
    return firmware_stub_dir() / "tools" / "qemu_cycles"


def _make(target: str, out_dir: Path, what: str) -> None:
    if not shutil.which("make"):
        raise UserError("make not found: install it (Debian: apt-get install make) to build the cycle-estimate plugin")
    command = ["make", "-C", str(plugin_source_dir()), target, f"OUT={out_dir.resolve()}", f"HOST_CC={host_compiler()}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS)
    if result.returncode != 0:
        lines = (result.stderr + result.stdout).strip().splitlines()
        first = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
        raise UserError(f"building {what} failed: {first.strip()}")


def build_plugin(out_dir: Path | str) -> Path:
    """The QEMU plugin, compiled with the host C compiler; returns the .so path."""
    out_dir = Path(out_dir)
    _make("plugin", out_dir, "the QEMU cycle-estimate plugin")
    return out_dir.resolve() / PLUGIN_FILE


def build_loop_test(out_dir: Path | str) -> Path:
    """The bare-metal loop program of hand-counted cycles (arm-none-eabi-gcc); returns the ELF."""
    out_dir = Path(out_dir)
    _make("loop-test", out_dir, "the cycle loop test")
    return out_dir.resolve() / LOOP_TEST_FILE


def plugin_option(plugin: Path, out_file: Path, mark: int | None = TIMER_VALUE_ADDRESS, mix: bool = False) -> list[str]:
    """QEMU's `-plugin` arguments: the plugin writes its report to out_file."""
    for path in (plugin, out_file):
        if "," in str(path):
            raise UserError(f"{path}: QEMU cannot take a plugin path with a comma; use a build folder without one")
    arguments = [str(plugin), f"out={out_file}"]
    if mark is not None:
        arguments.append(f"mark={mark:#x}")
    if mix:
        arguments.append("mix=on")
    return ["-plugin", ",".join(arguments)]


# --------------------------------------------------------------------------- the plugin's report


@dataclass
class Window:
    """What ran between two marks: instructions and estimated cycles."""

    instructions: int
    cycles: int


@dataclass
class PluginReport:
    refill_cycles: int = 0
    divide_cycles: int = 0
    instructions: int = 0
    cycles: int = 0
    conditional_branches: int = 0
    taken_branches: int = 0
    marks: list[tuple[int, int]] = field(default_factory=list)
    classes: dict[str, Window] = field(default_factory=dict)

    def windows(self) -> list[Window]:
        """Marks taken in pairs (start, end), as main.c reads its counter."""
        if len(self.marks) % 2:
            raise RuntimeError(f"the cycle plugin saw {len(self.marks)} counter reads, not pairs of them")
        return [
            Window(end[0] - start[0], end[1] - start[1])
            for start, end in zip(self.marks[0::2], self.marks[1::2])
        ]


def parse_plugin_output(text: str) -> PluginReport:
    """The plugin's report file, parsed; RuntimeError if it is not one (an internal failure)."""
    report = PluginReport()
    lines = text.splitlines()
    if not lines or not lines[0].startswith("si4-cycles format "):
        raise RuntimeError(f"the cycle plugin's report starts with {lines[0][:80]!r}" if lines else
                           "the cycle plugin wrote an empty report")
    header = lines[0].split()
    if header[2] != OUTPUT_FORMAT:
        raise RuntimeError(f"the cycle plugin writes format {header[2]}, this si4tool reads format {OUTPUT_FORMAT}")
    report.refill_cycles, report.divide_cycles = int(header[4]), int(header[6])
    has_total = False
    for line in lines[1:]:
        words = line.split()
        if not words:
            continue
        if words[0] == "mark" and len(words) == 3:
            report.marks.append((int(words[1]), int(words[2])))
        elif words[0] == "total" and len(words) == 5:
            report.instructions, report.cycles = int(words[2]), int(words[4])
            has_total = True
        elif words[0] == "conditional" and len(words) == 5:
            report.conditional_branches, report.taken_branches = int(words[2]), int(words[4])
        elif words[0] == "class" and len(words) == 6:
            report.classes[words[1]] = Window(int(words[3]), int(words[5]))
    if not has_total:
        raise RuntimeError("the cycle plugin's report has no total: QEMU did not reach its exit")
    return report


def run_with_plugin(
    elf: Path, machine: str, plugin: Path, report_file: Path, *, mark: int | None = TIMER_VALUE_ADDRESS,
    mix: bool = False, timeout: int = RUN_TIMEOUT_SECONDS,
) -> tuple[int, str, PluginReport]:
    """Runs the ELF under QEMU (the validation's command) with the plugin; (exit status, stdout, report)."""
    from si4tool.targets.qemu import qemu_command

    report_file.parent.mkdir(parents=True, exist_ok=True)
    report_file.unlink(missing_ok=True)
    command = [*qemu_command(Path(elf), machine), *plugin_option(plugin, report_file, mark, mix)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if not report_file.is_file():
        detail = result.stderr.strip().splitlines()
        raise UserError(f"qemu-system-arm did not run the cycle plugin: {detail[-1] if detail else 'no report written'}")
    return result.returncode, result.stdout, parse_plugin_output(report_file.read_text())


# --------------------------------------------------------------------------- the firmware's windows


def firmware_windows(report: PluginReport, counts: list[int], layer_counts: list[list[int]]) -> tuple[list[Window], list[list[Window]]]:
    """Pairs the plugin's marks with main.c's counter reads: per vector one inference window,
    then, for the first len(layer_counts) vectors, one window per layer.

    counts / layer_counts: the instruction counts the board printed (FirmwareOutput.counts,
    .layer_counts). Every window's plugin instruction count must match the board's within
    one timer tick, else RuntimeError: the marks are not the counter reads.
    """
    windows = report.windows()
    expected = len(counts) + sum(len(layers) for layers in layer_counts)
    if len(windows) != expected:
        raise RuntimeError(
            f"the cycle plugin saw {len(windows)} counter-read pairs, the firmware made {expected}"
        )
    inferences: list[Window] = []
    layers: list[list[Window]] = []
    position = 0
    for vector, board_count in enumerate(counts):
        board_windows = [board_count, *(layer_counts[vector] if vector < len(layer_counts) else [])]
        measured = windows[position: position + len(board_windows)]
        position += len(board_windows)
        for board_instructions, window in zip(board_windows, measured):
            if abs(window.instructions - board_instructions) > TICK_INSTRUCTIONS:
                raise RuntimeError(
                    f"vector {vector}: the cycle plugin counted {window.instructions} instructions in a window "
                    f"the board counted {board_instructions}: marks and counter reads do not line up"
                )
        inferences.append(measured[0])
        if vector < len(layer_counts):
            layers.append(measured[1:])
    return inferences, layers


def firmware_cycle_estimate(elf: Path, machine: str, board, layer_names: list[str], build_dir: Path) -> dict:
    """Runs the firmware once more under QEMU with the plugin; the figures for qemu.json.

    board: the FirmwareOutput of the plain run (its instruction counts pair the windows).
    Returns {"label", "cycles_per_inference", "cycles_min", "cycles_max",
    "cycles_per_instruction", "cycles_per_layer": [{"layer", "cycles"}], "run_cycles",
    "run_instructions", "refill_cycles", "divide_cycles"}, or {"label", "unavailable": reason}
    when the plugin cannot be built or loaded (the instruction counts stand without it).
    """
    if machine != CORTEX_M4_MACHINE:
        return {"label": ESTIMATE_LABEL, "unavailable": f"the timings are the Cortex-M4's, not {machine}'s core"}
    try:
        plugin = build_plugin(Path(build_dir) / "qemu_cycles")
        status, output, report = run_with_plugin(Path(elf), machine, plugin, Path(elf).parent / "cycles_report.txt")
    except UserError as error:
        return {"label": ESTIMATE_LABEL, "unavailable": str(error)}
    except subprocess.TimeoutExpired:
        return {"label": ESTIMATE_LABEL, "unavailable": f"the run with the cycle plugin took over {RUN_TIMEOUT_SECONDS} s"}
    from si4tool.targets.firmware import parse_firmware_output

    if parse_firmware_output(output).counts != board.counts:
        raise RuntimeError("the firmware counted other instructions with the cycle plugin loaded than without it")
    inferences, layers = firmware_windows(report, board.counts, board.layer_counts)
    per_inference = [window.cycles for window in inferences]
    instructions = [window.instructions for window in inferences]
    per_layer = [int(statistics.median(vector[i].cycles for vector in layers)) for i in range(len(layers[0]))] if layers else []
    if report.cycles < report.instructions:
        raise RuntimeError(f"the cycle estimate ({report.cycles}) is below the instruction count ({report.instructions})")
    median_cycles = int(statistics.median(per_inference))
    return {
        "label": ESTIMATE_LABEL,
        "cycles_per_inference": median_cycles,
        "cycles_min": min(per_inference),
        "cycles_max": max(per_inference),
        "cycles_per_instruction": round(median_cycles / statistics.median(instructions), 3),
        "cycles_per_layer": [{"layer": name, "cycles": cycles} for name, cycles in zip(layer_names, per_layer)],
        "run_cycles": report.cycles,
        "run_instructions": report.instructions,
        "refill_cycles": report.refill_cycles,
        "divide_cycles": report.divide_cycles,
        "exit_status": status,
    }


# --------------------------------------------------------------------------- reporting


def _estimate_of(run) -> dict:
    """A run's cycle_estimate: a QemuRun record, or its dictionary as qemu.json holds it."""
    estimate = run.get("cycle_estimate") if isinstance(run, dict) else getattr(run, "cycle_estimate", None)
    return estimate or {}


def _field(run, name: str):
    return run[name] if isinstance(run, dict) else getattr(run, name)


def estimated_ms(cycles: int, clock_mhz: float) -> float:
    """Milliseconds at clock_mhz for an estimated cycle count."""
    if clock_mhz <= 0:
        raise UserError(f"--clock-mhz must be positive, not {clock_mhz}")
    return cycles / (clock_mhz * 1e3)


def print_cycle_estimates(runs: list[dict], console, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> None:
    """A rich table of the estimates of the runs that have one: per inference, then per layer."""
    from rich.table import Table

    estimated = [run for run in runs if "cycles_per_inference" in _estimate_of(run)]
    for run in runs:
        reason = _estimate_of(run).get("unavailable")
        if reason:
            console.print(f"no cycle estimate for {_field(run, 'target')} {_field(run, 'kernel')}: {reason}")
    if not estimated:
        return
    table = Table(title=f"Estimated Cortex-M4 cycles ({ESTIMATE_LABEL}; ms at {clock_mhz:g} MHz)")
    for column in ("target", "kernels", "instr./inference", "est. cycles/inference", "est. cycles/instr.",
                   f"est. ms @ {clock_mhz:g} MHz"):
        table.add_column(column, justify="left" if column in ("target", "kernels") else "right")
    for run in estimated:
        estimate = _estimate_of(run)
        table.add_row(
            _field(run, "target"), _field(run, "kernel"), f"{_field(run, 'instructions_per_inference'):,}",
            f"{estimate['cycles_per_inference']:,}", f"{estimate['cycles_per_instruction']:.2f}",
            f"{estimated_ms(estimate['cycles_per_inference'], clock_mhz):.2f}",
        )
    console.print(table)
    layers = Table(title="Estimated cycles per layer (median over the profiled vectors; estimate)")
    layers.add_column("layer")
    for run in estimated:
        layers.add_column(f"{_field(run, 'target')} {_field(run, 'kernel')}", justify="right")
    per_run = [_estimate_of(run)["cycles_per_layer"] for run in estimated]
    for index, entry in enumerate(per_run[0]):
        layers.add_row(entry["layer"], *(f"{entries[index]['cycles']:,}" if index < len(entries) else ""
                                         for entries in per_run))
    console.print(layers)


def summary_text(run: dict, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> str:
    """", estimated 5.27 M cycles/inference (43.91 ms at 120 MHz; estimate)" for a run, or "" without one."""
    estimate = _estimate_of(run)
    if "cycles_per_inference" not in estimate:
        return ""
    cycles = estimate["cycles_per_inference"]
    return (f", estimated {cycles:,} cycles/inference ({estimated_ms(cycles, clock_mhz):.2f} ms at {clock_mhz:g} MHz; "
            "estimate)")


def bench_figures(run: dict, prefix: str, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> dict:
    """bench.json figures of one QEMU run's estimate, keyed under prefix ("m4.dsp"); {} without one."""
    estimate = _estimate_of(run)
    if "cycles_per_inference" not in estimate:
        return {}
    cycles = estimate["cycles_per_inference"]
    figures = {
        f"{prefix}.estimated_cycles_per_inference": cycles,
        f"{prefix}.estimated_cycles_per_instruction": estimate["cycles_per_instruction"],
        f"{prefix}.estimated_ms": round(estimated_ms(cycles, clock_mhz), 3),
    }
    for index, entry in enumerate(estimate["cycles_per_layer"]):
        figures[f"{prefix}.estimated_cycles.layer.{index}_{entry['layer']}"] = entry["cycles"]
    return figures


def bench_markdown_lines(figures: dict, kernels: tuple[str, ...], clock_mhz: float = DEFAULT_CLOCK_MHZ) -> list[str]:
    """bench.md's section of estimated cycles: one column per Cortex-M4 kernel variant."""
    columns = [kernel for kernel in kernels if f"m4.{kernel}.estimated_cycles_per_inference" in figures]
    lines = ["", f"## Estimated Cortex-M4 cycles per inference ({ESTIMATE_LABEL})", ""]
    if not columns:
        return [*lines, "No estimate: the QEMU runs did not load the cycle plugin (see qemu.json).", ""]

    def row(title: str, key: str, form: str) -> str:
        cells = [format(figures[f"m4.{kernel}.{key}"], form) if figures.get(f"m4.{kernel}.{key}") is not None else "n/a"
                 for kernel in columns]
        return f"| {title} | " + " | ".join(cells) + " |"

    lines += [
        "| | " + " | ".join(f"Cortex-M4 {kernel}" for kernel in columns) + " |",
        "|---" + "|---:" * len(columns) + "|",
        row("instructions (QEMU -icount)", "instructions_per_inference", ","),
        row("**estimated cycles**", "estimated_cycles_per_inference", ","),
        row("estimated cycles per instruction", "estimated_cycles_per_instruction", ".2f"),
        row(f"estimated ms at {clock_mhz:g} MHz", "estimated_ms", ".2f"),
    ]
    layer_keys = sorted(
        {key.split(".layer.", 1)[1] for key in figures if key.startswith(f"m4.{columns[0]}.estimated_cycles.layer.")},
        key=lambda suffix: int(suffix.split("_", 1)[0]),
    )
    for suffix in layer_keys:
        index, name = suffix.split("_", 1)
        lines.append(row(f"layer {index} `{name}`", f"estimated_cycles.layer.{suffix}", ","))
    lines += [
        "",
        "Estimate, not a measurement: the QEMU plugin `firmware_stub/tools/qemu_cycles` adds the Cortex-M4 TRM "
        "cycle count of every executed instruction at zero wait states (taken-branch refill 2 cycles, SDIV/UDIV "
        "7, loads 2 or 1 when pipelined behind a load); it ignores flash wait states, bus contention and "
        "register-dependency stalls. See docs/cycles.md for the table and the cross-check on loops of known "
        "cycle count.",
        "",
    ]
    return lines
