"""`bench-models`: the seed model and the MLPerf Tiny reference models on the emulated Cortex-M4, in one table.

For each model: build its assets (MLPerf models with seeded random inputs, reused when the folder
already holds the same model), run the firmware under QEMU (mps2-an386, `-icount shift=0`) with the
portable and the DSP kernels, and put instructions per inference, the cycle estimate (QEMU TCG
plugin, targets/cycles.py), RAM and engine code beside TFLite Micro's quoted figures
(tflm_figures.py). The firmware's own self-check over the embedded vectors says whether each run
is bit-exact with TFLite Micro; a run that is not fails the command after the table is written.

Then, per model, every distinct memory schedule (issue 12): the assets are built again with each
`--memory` choice asked for (`schedules`, fast always among them), a choice that picks a schedule
already measured is folded into its row, and each new schedule runs under QEMU with both kernel
builds (bit-exact too). The schedule table gives arena, arena + input, TFLite Micro's arena,
instructions portable / DSP, their ratio to fast's, and issue 12's targets (RAM, ratio <= 1.3x)
met or missed by how much; schedules.png plots RAM against instructions, one series per model.
Which schedules exist is read from each build's manifest (memory.schedule / memory.candidates), so
a schedule the planner gains shows up here without a change.

Writes <out>/models.json, <out>/models.md and <out>/schedules.png.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from si4tool.artefacts import Manifest, QemuRun
from si4tool.errors import UserError, ValidationFailed
from si4tool.reporting.tflm_figures import MLPERF_TINY_FILES, SOURCE, TFLM_M4, millions
from si4tool.targets import cycles

# Issue 11's targets, instructions per inference (DSP build, portable build): shown met or missed.
INSTRUCTION_TARGETS = {
    "seed": (2_600_000, 8_000_000),
    "kws": (3_850_000, 20_000_000),
    "resnet8": (14_900_000, 50_000_000),
    "vww": (12_000_000, 45_000_000),
    "ad01": (410_000, 1_200_000),
}
# Issue 11's engine code target (model.c as a product compiles it + the kernels it links, DSP
# build), reported met or missed per model; tests/test_dsp_conv.py holds the seed model to it.
ENGINE_CODE_TARGET_BYTES = 12 * 1024
SUITE_VECTORS = 10  # embedded vectors per MLPerf model: instruction counts barely depend on the data
KERNELS = ("portable", "dsp")

# Issue 12's RAM targets (arena + input, bytes: TFLite Micro's arena holds its input) and the
# instruction cost a smaller schedule may have against fast's, on each kernel build.
RAM_TARGETS = {"seed": 3_072, "kws": 9_000, "resnet8": 27_000, "vww": 48_000, "ad01": 1_400}
RATIO_TARGET = 1.3
# The choices measured by default: every `--memory` choice, and "smallest" (`--memory small
# --max-slowdown inf`: the smallest arena whatever it costs), the far end of the RAM/speed curve
# (a choice picking a schedule already measured costs one asset build, no QEMU run).
SMALLEST = "smallest"
SUITE_CHOICES = ("fast", "balanced", "small", SMALLEST)
DEFAULT_SCHEDULES = SUITE_CHOICES


def plan_arguments(choice: str) -> tuple[str, float | None]:
    """(--memory, --max-slowdown) of a suite choice."""
    return ("small", float("inf")) if choice == SMALLEST else (choice, None)
PLOT_SCHEDULES = "schedules.png"


@dataclass
class ModelRow:
    model: str
    macs: int
    vectors: int
    bit_exact: dict  # kernel -> "exact/vectors"
    instructions: dict  # kernel -> instructions per inference (median over the profiled vectors)
    estimated_cycles: dict  # kernel -> estimated Cortex-M4 cycles (None when the plugin is unavailable)
    arena_bytes: int
    arena_plus_input_bytes: int
    code_bytes: dict  # kernel -> engine code (model.c + the kernels it links), bytes
    tflm_reference_instructions: int
    tflm_cmsis_nn_instructions: int
    tflm_arena_bytes: int

    @property
    def dsp_vs_cmsis_nn(self) -> float:
        return self.instructions["dsp"] / self.tflm_cmsis_nn_instructions


@dataclass
class ScheduleRow:
    """One memory schedule of one model, measured under QEMU with both kernel builds."""

    model: str
    model_sha256: str
    schedule: str  # manifest memory.schedule, e.g. "layer by layer"
    choices: list  # the --memory choices that pick it, e.g. ["balanced", "small"]
    vectors: int
    bit_exact: dict  # kernel -> "exact/vectors"
    instructions: dict  # kernel -> instructions per inference
    ratio_to_fast: dict  # kernel -> instructions / fast's (None when fast was not measured)
    arena_bytes: int
    arena_plus_input_bytes: int
    estimated_macs: int
    tflm_arena_bytes: int
    ram_target_bytes: int | None

    @property
    def ram_verdict(self) -> str:
        if self.ram_target_bytes is None:
            return "-"
        if self.arena_plus_input_bytes <= self.ram_target_bytes:
            return f"<= {self.ram_target_bytes:,} met"
        return f"<= {self.ram_target_bytes:,} missed by {self.arena_plus_input_bytes - self.ram_target_bytes:,} B"

    @property
    def ratio_verdict(self) -> str:
        """Issue 12's bound on a smaller schedule's instructions, per kernel build (fast is the reference)."""
        if "fast" in self.choices or any(value is None for value in self.ratio_to_fast.values()):
            return "-"
        parts = []
        for kernel in KERNELS:
            ratio = self.ratio_to_fast[kernel]
            verdict = "met" if ratio <= RATIO_TARGET else f"{ratio:.2f}x, missed by {ratio - RATIO_TARGET:.2f}x"
            parts.append(f"{kernel} {verdict}")
        return f"<= {RATIO_TARGET}x: " + ", ".join(parts)


def default_models_dir() -> Path:
    """../shared/models/mlperf_tiny beside the repository (or the current folder's parent)."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base.parent / "shared" / "models" / "mlperf_tiny"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "models" / "mlperf_tiny"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _suite_assets(assets: Path, model_file: Path, cache_dir: Path | None, vectors: int, choice: str = "fast") -> Path:
    """Assets of one model and suite choice in `assets`, built unless they already hold them
    (same model, vector count, --memory and --max-slowdown), with seeded random inputs."""
    from si4tool.assets import build_firmware_assets

    memory, max_slowdown = plan_arguments(choice)
    manifest_path = assets / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = Manifest.read(manifest_path)
            record = manifest.memory or {}
            if (manifest.source_model.get("sha256") == _sha256(model_file) and manifest.test_vectors == vectors
                    and record.get("choice", "fast") == memory and record.get("max_slowdown") == max_slowdown):
                return assets
        except UserError:
            pass  # an unreadable earlier folder is rebuilt
    build_firmware_assets(
        out_dir=assets, model_path=model_file, vectors=vectors, inputs_spec="random", cache_dir=cache_dir, quiet=True,
        memory=memory, max_slowdown=max_slowdown,
    )
    return assets


def _mlperf_assets(name: str, model_file: Path, out_dir: Path, cache_dir: Path | None, vectors: int) -> Path:
    """Assets of one MLPerf model (fast schedule) under out_dir/<name>/assets."""
    return _suite_assets(out_dir / name / "assets", model_file, cache_dir, vectors)


def _row(name: str, manifest: Manifest, runs: dict[str, QemuRun]) -> ModelRow:
    tflm = TFLM_M4[name]
    arena = int(manifest.totals["arena_bytes"])
    # The planner's figure: a schedule with the input in the arena needs no input buffer beside it.
    ram = manifest.totals.get("arena_plus_input_bytes")
    if ram is None:  # assets from before issue 12
        ram = arena + int(np.prod(manifest.quantization["input"]["shape"]))

    def cycles_of(run: QemuRun):
        return run.cycle_estimate.get("cycles_per_inference")

    return ModelRow(
        model=name,
        macs=int(manifest.totals["macs"]),
        vectors=runs["dsp"].vectors,
        bit_exact={kernel: f"{run.bit_exact}/{run.vectors}" for kernel, run in runs.items()},
        instructions={kernel: run.instructions_per_inference for kernel, run in runs.items()},
        estimated_cycles={kernel: cycles_of(run) for kernel, run in runs.items()},
        arena_bytes=arena,
        arena_plus_input_bytes=int(ram),
        code_bytes={kernel: run.flash_code_bytes for kernel, run in runs.items()},
        tflm_reference_instructions=tflm.reference_instructions,
        tflm_cmsis_nn_instructions=tflm.cmsis_nn_instructions,
        tflm_arena_bytes=tflm.arena_bytes,
    )


def _memory_record(manifest: Manifest) -> dict:
    """manifest.memory, or what assets from before issue 12 imply (layer by layer, chosen by fast)."""
    record = manifest.memory or {}
    input_bytes = int(np.prod(manifest.quantization["input"]["shape"]))
    arena = int(manifest.totals["arena_bytes"])
    schedule = record.get("schedule", "layer by layer")
    candidate = next((c for c in record.get("candidates", []) if c["schedule"] == schedule), None)
    if candidate is None:
        candidate = {"schedule": schedule, "arena_bytes": arena, "arena_plus_input_bytes": arena + input_bytes,
                     "estimated_macs": int(manifest.totals["macs"])}
    return {"choice": record.get("choice", "fast"), "schedule": schedule, "candidate": candidate}


def _schedule_row(name: str, manifest: Manifest, runs: dict[str, QemuRun], choice: str,
                  fast: ScheduleRow | None) -> ScheduleRow:
    record = _memory_record(manifest)
    candidate = record["candidate"]
    return ScheduleRow(
        model=name,
        model_sha256=manifest.model_sha256,
        schedule=record["schedule"],
        choices=[choice],
        vectors=runs["dsp"].vectors,
        bit_exact={kernel: f"{run.bit_exact}/{run.vectors}" for kernel, run in runs.items()},
        instructions={kernel: run.instructions_per_inference for kernel, run in runs.items()},
        ratio_to_fast={
            kernel: (1.0 if choice == "fast" else None) if fast is None
            else run.instructions_per_inference / fast.instructions[kernel]
            for kernel, run in runs.items()
        },
        arena_bytes=int(candidate["arena_bytes"]),
        arena_plus_input_bytes=int(candidate["arena_plus_input_bytes"]),
        estimated_macs=int(candidate["estimated_macs"]),
        tflm_arena_bytes=TFLM_M4[name].arena_bytes,
        ram_target_bytes=RAM_TARGETS.get(name),
    )


def parse_schedules(text: str) -> tuple[str, ...]:
    """`--schedules fast,small` -> ("fast", "small"), fast always first (the ratios' reference)."""
    asked = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in asked if part not in SUITE_CHOICES]
    if unknown:
        raise UserError(
            f"--schedules takes --memory choices or smallest ({', '.join(SUITE_CHOICES)}), not {', '.join(unknown)}"
        )
    return tuple(["fast"] + [choice for choice in SUITE_CHOICES if choice in asked and choice != "fast"])


def _schedules_picked(model_file: Path) -> dict[str, str]:
    """--memory choice -> the schedule it picks for this .tflite, by the planner's own rule
    (schedule.choose_plan on the lowered graph, as build_firmware_assets does): assets are then
    built only for the distinct ones."""
    from si4tool.compiler import passes, schedule
    from si4tool.compiler.lowering import lower_tflite

    graph = passes.run_passes(lower_tflite(model_file.read_bytes(), source=model_file.name))
    return {choice: schedule.choose_plan(graph, *plan_arguments(choice))[0].schedule for choice in SUITE_CHOICES}


def _measure_schedules(name: str, main_assets: Path, main_manifest: Manifest, main_runs: dict[str, QemuRun],
                       model_file: Path | None, out_dir: Path, cache_dir: Path | None, vectors: int,
                       schedules: tuple[str, ...], console) -> tuple[list[ScheduleRow], str | None]:
    """The model's distinct schedules among `schedules` (fast first), each measured once; plus a
    note when some could not be built."""
    from si4tool.targets import qemu as qemu_stage

    rows: list[ScheduleRow] = []
    main_choice = _memory_record(main_manifest)["choice"]
    picks = _schedules_picked(model_file) if model_file is not None and model_file.is_file() else {}
    for choice in schedules:
        known = next((row for row in rows if choice in picks and row.schedule == picks[choice]), None)
        if known is not None:
            known.choices.append(choice)  # this choice picks a schedule already measured: no build, no run
            continue
        if choice == main_choice:
            manifest, runs, assets = main_manifest, main_runs, main_assets
        else:
            if model_file is None or not model_file.is_file():
                return rows, f"{name}: only the --memory {main_choice} schedule (no model_int8.tflite in {main_assets})"
            assets = _suite_assets(out_dir / name / f"assets_{choice}", model_file, cache_dir, vectors, choice)
            manifest = Manifest.read(assets / "manifest.json")
            runs = None
        schedule = _memory_record(manifest)["schedule"]
        known = next((row for row in rows if row.schedule == schedule), None)
        if known is not None:
            known.choices.append(choice)  # this choice picks a schedule already measured
            continue
        if runs is None:
            runs = {}
            for kernel in KERNELS:
                _say(console, f"{name}: {schedule} (--memory {choice}), {kernel} kernels under QEMU")
                runs[kernel] = qemu_stage.run_variant(assets, out_dir / name / f"qemu_{choice}", manifest, kernel)
        fast = rows[0] if rows else None
        rows.append(_schedule_row(name, manifest, runs, choice, fast))
    return rows, None


def run_model_suite(
    seed_assets: Path | None,
    models_dir: Path | None,
    out_dir: Path,
    cache_dir: Path | None = None,
    vectors: int = SUITE_VECTORS,
    clock_mhz: float = cycles.DEFAULT_CLOCK_MHZ,
    console=None,
    schedules: tuple[str, ...] = DEFAULT_SCHEDULES,
) -> list[ModelRow]:
    """Measure every model available; returns the rows (also written as models.json / models.md,
    with the schedule table and schedules.png)."""
    from si4tool.reporting.plots import plot_ram_vs_instructions
    from si4tool.targets import qemu as qemu_stage
    from si4tool.validation.validate import load_assets

    qemu_stage.check_toolchain()
    schedules = parse_schedules(",".join(schedules))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models: list[tuple[str, Path | None, Path | None]] = []  # (name, assets, model file)
    skipped: list[str] = []
    if seed_assets is not None:
        if (Path(seed_assets) / "manifest.json").is_file():
            models.append(("seed", Path(seed_assets), Path(seed_assets) / "model_int8.tflite"))
        else:
            skipped.append(f"seed: no assets in {seed_assets} (run `make firmware-assets`)")
    models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
    for name, file_name in MLPERF_TINY_FILES.items():
        path = models_dir / file_name
        if path.is_file():
            models.append((name, None, path))
        else:
            skipped.append(f"{name}: {path} not found (the MLPerf Tiny models live in ../shared/models/mlperf_tiny/)")
    rows: list[ModelRow] = []
    schedule_rows: list[ScheduleRow] = []
    schedule_notes: list[str] = []
    for name, assets, model_file in models:
        if assets is None:
            _say(console, f"{name}: building the assets ({vectors} random input vectors)")
            assets = _mlperf_assets(name, model_file, out_dir, cache_dir, vectors)
        manifest, _ = load_assets(assets)
        runs: dict[str, QemuRun] = {}
        for kernel in KERNELS:
            _say(console, f"{name}: {kernel} kernels under QEMU mps2-an386")
            runs[kernel] = qemu_stage.run_variant(assets, out_dir / name / "qemu", manifest, kernel)
        rows.append(_row(name, manifest, runs))
        measured, note = _measure_schedules(name, assets, manifest, runs, model_file, out_dir, cache_dir, vectors,
                                            schedules, console)
        schedule_rows += measured
        if note:
            schedule_notes.append(note)
    if not rows:
        raise UserError("no model to measure: " + "; ".join(skipped))
    (out_dir / "models.json").write_text(
        json.dumps({"source_of_tflm_figures": SOURCE, "clock_mhz": clock_mhz, "skipped": skipped,
                    "models": [asdict(row) for row in rows],
                    "schedule_choices": list(schedules), "ram_targets": RAM_TARGETS, "ratio_target": RATIO_TARGET,
                    "schedules": [schedule_record(row) for row in schedule_rows],
                    "schedule_notes": schedule_notes}, indent=2) + "\n"
    )
    (out_dir / "models.md").write_text(markdown_table(rows, clock_mhz, skipped, schedule_rows, schedule_notes))
    (out_dir / PLOT_SCHEDULES).write_bytes(plot_ram_vs_instructions(plot_series(schedule_rows)))
    if console is not None:
        print_table(rows, console, clock_mhz, skipped)
        print_schedule_table(schedule_rows, console)
    failed = [f"{row.model} {kernel} {exact}" for row in rows for kernel, exact in row.bit_exact.items()
              if exact.split("/")[0] != exact.split("/")[1]]
    failed += [f"{row.model} {row.schedule} {kernel} {exact}" for row in schedule_rows
               for kernel, exact in row.bit_exact.items() if exact.split("/")[0] != exact.split("/")[1]]
    if failed:
        raise ValidationFailed(f"not bit-exact with TFLite Micro under QEMU: {', '.join(failed)}")
    return rows


def schedule_record(row: ScheduleRow) -> dict:
    """models.json's record of one schedule: the measured figures and the targets' verdicts."""
    return {**asdict(row), "ram_verdict": row.ram_verdict, "ratio_verdict": row.ratio_verdict}


def plot_series(rows: list[ScheduleRow]) -> dict[str, list[tuple[str, int, dict]]]:
    """model -> [(schedule label, arena + input bytes, {kernel: instructions})] for the plot."""
    series: dict[str, list[tuple[str, int, dict]]] = {}
    for row in rows:
        series.setdefault(row.model, []).append(("=".join(row.choices), row.arena_plus_input_bytes, row.instructions))
    return series


def _say(console, text: str) -> None:
    if console is not None:
        console.print(f"[cyan]→[/] {text}")


def _cycles_text(value, clock_mhz: float) -> str:
    if value is None:
        return "n/a"
    return f"{millions(value)} ({cycles.estimated_ms(value, clock_mhz):.1f} ms)"


COLUMNS = (
    "model", "MACs", "bit-exact portable / DSP", "instr. portable", "instr. DSP",
    "est. cycles portable", "est. cycles DSP", "TFLM reference", "TFLM + CMSIS-NN", "DSP / CMSIS-NN",
    "arena / + input", "TFLM arena", "engine code portable / DSP", "target DSP / portable",
)


CONSOLE_COLUMNS = (
    "model", "bit-exact", "portable", "DSP", "TFLM ref.", "TFLM+CMSIS-NN", "DSP/CMSIS", "est. cyc. DSP",
    "RAM (B)", "TFLM arena",
)


def _cells(row: ModelRow, clock_mhz: float) -> list[str]:
    return [
        row.model, f"{row.macs:,}", f"{row.bit_exact['portable']} / {row.bit_exact['dsp']}",
        millions(row.instructions["portable"]), millions(row.instructions["dsp"]),
        _cycles_text(row.estimated_cycles["portable"], clock_mhz), _cycles_text(row.estimated_cycles["dsp"], clock_mhz),
        millions(row.tflm_reference_instructions), millions(row.tflm_cmsis_nn_instructions),
        f"{row.dsp_vs_cmsis_nn:.2f}x",
        f"{row.arena_bytes:,} / {row.arena_plus_input_bytes:,} B", f"{row.tflm_arena_bytes:,} B",
        f"{row.code_bytes['portable']:,} / {row.code_bytes['dsp']:,} B",
        _targets_text(row),
    ]


def _targets_text(row: ModelRow) -> str:
    if row.model not in INSTRUCTION_TARGETS:
        return "-"
    parts = []
    for kernel, target in zip(("dsp", "portable"), INSTRUCTION_TARGETS[row.model]):
        verdict = "met" if row.instructions[kernel] <= target else f"missed by {row.instructions[kernel] / target:.2f}x"
        parts.append(f"<= {millions(target)} {verdict}")
    return " / ".join(parts)


def engine_code_note(rows: list[ModelRow]) -> str:
    """One line: each model's DSP engine code against ENGINE_CODE_TARGET_BYTES."""
    verdicts = [
        f"{row.model} {row.code_bytes['dsp']:,} B "
        + ("met" if row.code_bytes["dsp"] <= ENGINE_CODE_TARGET_BYTES
           else f"missed by {row.code_bytes['dsp'] - ENGINE_CODE_TARGET_BYTES:,} B")
        for row in rows
    ]
    return (f"Engine code (model.c without the per-layer tables + the kernels it links, DSP build), "
            f"target <= {ENGINE_CODE_TARGET_BYTES:,} B: " + ", ".join(verdicts) + ".")


def _notes(clock_mhz: float, skipped: list[str], rows: list[ModelRow] = ()) -> list[str]:
    notes = [
        "Instructions: QEMU mps2-an386 (Cortex-M4F) with -icount shift=0, median per inference over the embedded vectors.",
        f"Estimated cycles: the QEMU cycle plugin at zero wait states (an estimate; docs/cycles.md), ms at {clock_mhz:g} MHz.",
        f"TFLite Micro: {SOURCE}. Its arena holds its input; ours reads the caller's buffer, hence 'arena + input'.",
    ]
    if rows:
        notes.append(engine_code_note(rows))
    notes += [f"Skipped {reason}." for reason in skipped]
    return notes


SCHEDULE_COLUMNS = (
    "model", "schedule", "--memory", "arena", "arena + input", "TFLM arena", "instr. portable", "instr. DSP",
    "ratio to fast portable / DSP", "bit-exact portable / DSP", "RAM target", "ratio target",
)


def schedule_cells(row: ScheduleRow) -> list[str]:
    ratios = " / ".join("-" if row.ratio_to_fast[k] is None else f"{row.ratio_to_fast[k]:.2f}x" for k in KERNELS)
    return [
        row.model, row.schedule, ", ".join(row.choices), f"{row.arena_bytes:,}", f"{row.arena_plus_input_bytes:,}",
        f"{row.tflm_arena_bytes:,}", millions(row.instructions["portable"]), millions(row.instructions["dsp"]),
        ratios, f"{row.bit_exact['portable']} / {row.bit_exact['dsp']}", row.ram_verdict, row.ratio_verdict,
    ]


def schedule_markdown(rows: list[ScheduleRow], notes: list[str] = ()) -> list[str]:
    """The schedule table's markdown lines (models.md and docs)."""
    lines = ["## Memory schedules: RAM against instructions", ""]
    lines.append("| " + " | ".join(SCHEDULE_COLUMNS) + " |")
    lines.append("|" + "|".join("---" if index < 3 else "---:" for index in range(len(SCHEDULE_COLUMNS))) + "|")
    lines += ["| " + " | ".join(schedule_cells(row)) + " |" for row in rows]
    lines.append("")
    lines += [
        "- One row per distinct schedule; `--memory` lists the choices that pick it (docs/memory.md); smallest is "
        "`--memory small --max-slowdown inf`, the smallest arena whatever it costs.",
        "- RAM target: issue 12's, on arena + input bytes (TFLite Micro's arena holds its input). "
        f"Ratio target: a smaller schedule's instructions at most {RATIO_TARGET}x fast's, on each kernel build.",
        f"- Plot: {PLOT_SCHEDULES} (arena + input against instructions, one series per model).",
    ]
    lines += [f"- Not measured: {note}." for note in notes]
    return lines


def markdown_table(rows: list[ModelRow], clock_mhz: float, skipped: list[str],
                   schedule_rows: list[ScheduleRow] = (), schedule_notes: list[str] = ()) -> str:
    lines = ["# si4tool on the emulated Cortex-M4: seed and MLPerf Tiny models", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---" if index == 0 else "---:" for index in range(len(COLUMNS))) + "|")
    lines += ["| " + " | ".join(_cells(row, clock_mhz)) + " |" for row in rows]
    lines.append("")
    lines += [f"- {note}" for note in _notes(clock_mhz, skipped, rows)]
    if schedule_rows:
        lines.append("")
        lines += schedule_markdown(list(schedule_rows), list(schedule_notes))
    return "\n".join(lines) + "\n"


def print_schedule_table(rows: list[ScheduleRow], console) -> None:
    from rich.table import Table

    if not rows:
        return
    table = Table(title="Memory schedules: RAM (arena + input) against instructions per inference")
    for index, column in enumerate(("model", "schedule", "--memory", "RAM (B)", "portable", "DSP", "ratio", "RAM target", "ratio target")):
        table.add_column(column, justify="left" if index < 3 else "right")
    for row in rows:
        cells = schedule_cells(row)
        table.add_row(cells[0], cells[1], cells[2], cells[4], cells[6], cells[7], cells[8], cells[10], cells[11])
    console.print(table)


def print_table(rows: list[ModelRow], console, clock_mhz: float, skipped: list[str]) -> None:
    from rich.table import Table

    # The terminal gets the figures users compare on; models.md has every column.
    table = Table(title="Seed and MLPerf Tiny models on the emulated Cortex-M4 (instructions; cycles are estimates)")
    for index, column in enumerate(CONSOLE_COLUMNS):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(
            row.model, f"{row.bit_exact['portable']}, {row.bit_exact['dsp']}",
            millions(row.instructions["portable"]), millions(row.instructions["dsp"]),
            millions(row.tflm_reference_instructions), millions(row.tflm_cmsis_nn_instructions),
            f"{row.dsp_vs_cmsis_nn:.2f}x",
            "n/a" if row.estimated_cycles["dsp"] is None else millions(row.estimated_cycles["dsp"]),
            f"{row.arena_plus_input_bytes:,}", f"{row.tflm_arena_bytes:,}",
        )
    console.print(table)
    for note in _notes(clock_mhz, skipped, rows):
        console.print(f"[dim]{note}[/]")
