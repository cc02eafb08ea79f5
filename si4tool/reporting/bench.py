"""`bench`: the figures users choose a tool on, measured side by side in one run.

1. Host latency per image over the same test images, in this process, for the
   C engine (the host engine of si4tool.targets.host_engine, timed in C around
   si4_model_invoke by si4_host_time_batch), LiteRT
   with its default XNNPACK delegate on one thread, LiteRT with the reference
   op resolver, and the TFLite Micro Python interpreter. Warm-up first, then
   several repetitions interleaved across runtimes (so drift hits all alike);
   the figure is the median over repetitions of each repetition's median.
2. Host instructions per inference of the C engine under callgrind, total and
   per layer (deterministic).
3. Cortex-M4 instructions per inference (QEMU -icount), portable and DSP
   kernels, total and per layer, and per MAC; flash split and RAM from the ELF
   (si4tool.targets.qemu, when it and the cross toolchain are there).
4. Memory: our arena against TFLite Micro's for the same model.
5. Pipeline seconds: a training epoch (recorded when the assets were built),
   quantization, rendering, host validation.

Writes bench.json (an artefacts.BenchResult: flat "figures", one key per
figure, null when unavailable with the reason in "unavailable"; plus machine,
settings and details) and bench.md (templates/bench.md.j2).
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from si4tool.artefacts import BenchResult, Manifest, QemuValidation
from si4tool.errors import UserError
from si4tool.reporting.latency import WARMUP_IMAGES, litert_timer, measure_latency, tflm_timer
from si4tool.reporting.machine import machine_description
from si4tool.reporting.tflm_figures import SOURCE, TFLM_M4, millions
from si4tool.targets import cycles
from si4tool.targets.callgrind import build_callgrind_program, callgrind_instructions
from si4tool.targets.host_engine import build_host_engine, engine_object_sizes

# Test vectors run under callgrind: instruction counts barely depend on the data,
# and callgrind runs about 50x slower than native.
CALLGRIND_VECTORS = 4
QUANTIZATION_CALIBRATION_SAMPLES = 200
# The order of the latency table; the C engine is the baseline of the ratios.
RUNTIMES = {
    "c_engine": "si4tool C engine (-O2, host)",
    "litert_xnnpack": "LiteRT, default (XNNPACK delegate), 1 thread",
    "litert_reference": "LiteRT, reference op resolver",
    "tflm": "TFLite Micro Python interpreter",
}
M4_KERNELS = ("portable", "dsp")
# Columns of the instructions table: figure prefix -> title.
INSTRUCTION_COLUMNS = {
    "host_instructions": "host x86-64 (callgrind)",
    "m4.portable": "Cortex-M4 portable (QEMU)",
    "m4.dsp": "Cortex-M4 DSP (QEMU)",
}
# Columns of the flash table: figure group -> title.
FLASH_COLUMNS = {"m4_portable": "Cortex-M4 portable", "m4_dsp": "Cortex-M4 DSP", "host": "host x86-64 objects"}
# Rows of the flash table, in order: figure suffix -> title.
FLASH_ROWS = {
    "weights_bytes": "weights (model_weights.c)",
    "code_bytes": "engine code (model.c + kernels)",
    "model_code_bytes": "of which model.c",
    "kernel_code_bytes": "of which kernels",
    "vectors_bytes": "test vectors",
    "platform_bytes": "platform, startup, libc",
    "total_bytes": "total (text + rodata + data)",
}
# QemuRun fields -> flash figure suffix.
QEMU_FLASH_FIELDS = {
    "flash_weights_bytes": "weights_bytes",
    "flash_code_bytes": "code_bytes",
    "flash_vectors_bytes": "vectors_bytes",
    "flash_platform_bytes": "platform_bytes",
    "flash_bytes": "total_bytes",
}
# For comparison in the tables: TFLite Micro on the same emulated M4 (quoted, see tflm_figures).
TFLM_M4_INSTRUCTIONS = (
    f"{millions(TFLM_M4['seed'].reference_instructions)} (reference kernels), "
    f"{millions(TFLM_M4['seed'].cmsis_nn_instructions)} (CMSIS-NN) for the seed model ({SOURCE})"
)


# --------------------------------------------------------------------------- latency


# --------------------------------------------------------------------------- callgrind

# --------------------------------------------------------------------------- Cortex-M4


def m4_results(
    assets_dir: Path, work_dir: Path, validation_dir: Path, qemu: bool, manifest: Manifest, console=None
) -> tuple[QemuValidation | None, str | None]:
    """The QEMU runs (run here, or with qemu=False validate-qemu's qemu.json of these assets) and, when
    there are none, why."""
    qemu_json = Path(validation_dir) / "qemu.json"
    if not qemu:
        existing = QemuValidation.read_if_present(qemu_json)
        if existing is not None and existing.model_sha256 == manifest.model_sha256:
            return existing, None
        return None, f"QEMU skipped (--no-qemu) and {qemu_json} does not measure these assets"
    from si4tool.targets import qemu as qemu_stage

    try:
        qemu_stage.check_toolchain()
    except UserError as error:
        return None, str(error)
    # A failed M4 run must not lose the host figures: its reason is reported instead.
    try:
        result = qemu_stage.validate_qemu(
            assets_dir, out_dir=Path(work_dir) / "qemu", build_dir=Path(work_dir) / "qemu_build", quiet=True
        )
    except (UserError, RuntimeError, subprocess.SubprocessError) as error:
        return None, f"validate-qemu failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    failure = qemu_stage.failures(result)
    if failure and console is not None:
        console.print(f"[yellow]QEMU validation reported a failure:[/] {failure}")
    return result, None


# --------------------------------------------------------------------------- pipeline


def _timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - start, value


def time_rendering(tflite_bytes: bytes, manifest: Manifest, x_int8: np.ndarray, labels: np.ndarray) -> float:
    """Seconds to lower, run the passes, plan memory and render every C source (in memory)."""
    from si4tool.compiler import codegen
    from si4tool.compiler import passes
    from si4tool.compiler import planner
    from si4tool.assets import render_model_data, render_test_vectors
    from si4tool.compiler.lowering import lower_tflite

    vectors = min(manifest.test_vectors, len(x_int8))
    classes = int(np.prod(manifest.quantization["output"]["shape"]))
    sha = manifest.model_sha256
    start = time.perf_counter()
    graph = passes.run_passes(lower_tflite(tflite_bytes))
    plan = planner.plan_memory(graph)
    codegen.render_model_sources(graph, plan, sha)
    render_model_data(tflite_bytes, sha)
    render_test_vectors(
        x_int8[:vectors], None if labels is None else labels[:vectors], np.zeros((vectors, classes), dtype=np.int8), sha,
        manifest.input_quantization, (manifest.data or {}).get("source", "random inputs"),
    )
    return time.perf_counter() - start


# --------------------------------------------------------------------------- the bench


def _layer_key(index: int, name: str) -> str:
    return f"{index}_{name}"


def run_bench(
    assets_dir: Path,
    out_dir: Path,
    validation_dir: Path,
    images: int = 1000,
    repetitions: int = 5,
    data_path: Path | None = None,
    qemu: bool = True,
    console=None,
    inputs_spec: str | Path | None = None,
    clock_mhz: float = cycles.DEFAULT_CLOCK_MHZ,
) -> BenchResult:
    """Measure everything, write bench.json and bench.md into out_dir, and return the results.

    validation_dir: where validate-qemu wrote the qemu.json that qemu=False reuses.
    inputs_spec: `--inputs` (random or a file); default what the assets were built on (frontend/inputs.py).
    clock_mhz: the clock of the estimated milliseconds beside the estimated Cortex-M4 cycles."""
    from si4tool.frontend import data
    from si4tool.compiler.quant_math import quantize_input
    from si4tool.validation import reference
    from si4tool.validation.validate import load_assets, validate_host

    if images < 1:
        raise UserError(f"--images must be at least 1, not {images}")
    if repetitions < 1:
        raise UserError(f"--repetitions must be at least 1, not {repetitions}")

    section_seconds: dict[str, float] = {}
    section_started = [time.perf_counter(), None]

    def say(message: str, section: str | None = None) -> None:
        """Print progress; a `section` also closes the previous section's stopwatch."""
        if section is not None:
            now = time.perf_counter()
            if section_started[1] is not None:
                section_seconds[section_started[1]] = round(now - section_started[0], 1)
            section_started[:] = [now, section]
        if console is not None:
            console.print(message)

    assets_dir = Path(assets_dir)
    out_dir = Path(out_dir)
    manifest, tflite_bytes = load_assets(assets_dir)
    build_dir = out_dir / "build"
    started = time.perf_counter()
    machine = machine_description()  # first: its load average is the one the timings ran under

    from si4tool.frontend.inputs import inputs_of_assets

    # The assets' own inputs (their dataset, or random from the recorded seed) unless --inputs says otherwise.
    inputs, inputs_note = inputs_of_assets(
        manifest, inputs_spec, images, load_dataset=lambda: data.load_dataset_of_assets(manifest.data, None, data_path)
    )
    if inputs_note is not None:
        say(inputs_note)
    dataset = inputs.dataset  # None unless the inputs are the dataset's test images
    count = len(inputs)
    x_int8 = inputs.x if inputs.x.dtype == np.int8 else quantize_input(inputs.x, *manifest.input_quantization)
    labels = inputs.labels
    macs = int(manifest.totals["macs"])
    layer_names = manifest.layer_names

    figures: dict[str, float | int | None] = {}
    unavailable: dict[str, str] = {}
    details: dict = {}

    # 1. Latency.
    say(f"latency: {count} images x {repetitions} repetitions, 4 runtimes (warm-up {WARMUP_IMAGES} images each)", section="latency")
    engine = build_host_engine(assets_dir, build_dir)
    if engine.layer_names != layer_names:
        raise UserError(f"the C sources in {assets_dir} do not match its manifest.json; build the assets again")
    timers = {
        "c_engine": engine,
        "litert_xnnpack": litert_timer(tflite_bytes, "default"),
        "litert_reference": litert_timer(tflite_bytes, "reference"),
        "tflm": tflm_timer(tflite_bytes),
    }
    latency = measure_latency(timers, x_int8, repetitions)
    details["latency"] = latency
    c_median = latency["c_engine"]["median_us"]
    for name, entry in latency.items():
        figures[f"latency_us.{name}"] = round(entry["median_us"], 3)
        if name != "c_engine":
            figures[f"latency_ratio_to_c.{name}"] = float(f"{entry['median_us'] / c_median:.4g}")

    # 2. Host instructions (callgrind).
    say(f"host instructions: callgrind on {CALLGRIND_VECTORS} test vectors", section="callgrind")
    if shutil.which("valgrind") is None:
        unavailable["host_instructions"] = "valgrind is not installed (apt-get install valgrind)"
    else:
        try:
            program = build_callgrind_program(assets_dir, build_dir)
            vectors = min(CALLGRIND_VECTORS, manifest.test_vectors)
            total, host_layers = callgrind_instructions(program, vectors, build_dir / "callgrind")
            figures["host_instructions.per_inference"] = total
            figures["host_instructions.per_mac"] = round(total / macs, 3) if macs else None
            for index, value in enumerate(host_layers):
                figures[f"host_instructions.layer.{_layer_key(index, layer_names[index])}"] = value
            details["callgrind_vectors"] = vectors
        except (UserError, RuntimeError, subprocess.TimeoutExpired) as error:
            unavailable["host_instructions"] = str(error)

    # 3. Cortex-M4 under QEMU.
    say("Cortex-M4: QEMU runs of the portable and DSP kernels" if qemu else "Cortex-M4: QEMU skipped", section="m4")
    qemu_result, reason = m4_results(assets_dir, out_dir, validation_dir, qemu, manifest, console)
    details["m4_runs"] = [run.to_dict() for run in qemu_result.runs] if qemu_result else []
    for kernel in M4_KERNELS:
        run = qemu_result.run_for(kernel) if qemu_result else None
        prefix = f"m4.{kernel}"
        if run is None:
            unavailable[prefix] = reason or f"no {kernel} run in the QEMU results"
            continue
        figures[f"{prefix}.instructions_per_inference"] = run.instructions_per_inference
        if macs:
            figures[f"{prefix}.instructions_per_mac"] = round(run.instructions_per_inference / macs, 3)
        for index, value in enumerate(run.layer_instructions):
            figures[f"{prefix}.layer.{_layer_key(index, layer_names[index])}"] = value
        figures.update(cycles.bench_figures(run, prefix, clock_mhz))
        for key in ("ram_bytes", "stack_bytes", "arena_bytes"):
            figures[f"{prefix}.{key}"] = getattr(run, key)
        for field_name, part in QEMU_FLASH_FIELDS.items():
            figures[f"flash.m4_{kernel}.{part}"] = getattr(run, field_name)
        if run.bit_exact != run.vectors:
            details.setdefault("m4_failures", []).append(
                f"QEMU {run.target} {run.kernel}: only {run.bit_exact}/{run.vectors} vectors bit-exact."
            )
    if not qemu and qemu_result is not None:
        details["m4_source"] = f"{Path(validation_dir) / 'qemu.json'} (reused: --no-qemu)"

    # 4. Memory.
    say("memory: arena against TFLite Micro's", section="memory")
    figures["memory.arena_bytes"] = int(manifest.totals["arena_bytes"])
    if manifest.memory:  # issue 12: every schedule the planner built, and the one --memory chose
        details["memory_schedules"] = {"choice": manifest.memory["choice"], "schedule": manifest.memory["schedule"],
                                       "candidates": manifest.memory["candidates"]}
    try:
        figures["memory.tflm_arena_bytes"] = reference.tflm_arena_bytes(tflite_bytes)
    except (RuntimeError, UserError) as error:
        unavailable["memory.tflm_arena_bytes"] = str(error)
    try:
        for group, value in engine_object_sizes(assets_dir, build_dir / "objects").items():
            figures[f"flash.host.{group}_bytes"] = value
    except (UserError, RuntimeError) as error:
        unavailable["flash.host"] = str(error)

    # 5. Pipeline.
    say("pipeline: quantization, rendering, host validation", section="pipeline")
    epoch = (manifest.training or {}).get("seconds_per_epoch")
    figures["pipeline_seconds.train_epoch"] = float(epoch) if epoch else None
    if not epoch:
        unavailable["pipeline_seconds.train_epoch"] = "the assets were built from a given model: no training was timed"
    keras_path = assets_dir / "model.keras"
    if keras_path.is_file() and dataset is None:
        figures["pipeline_seconds.quantization"] = None
        unavailable["pipeline_seconds.quantization"] = "the inputs are not the dataset the model was calibrated on"
    elif keras_path.is_file():
        from si4tool.frontend.model import load_float_model
        from si4tool.frontend.quantize import quantize_model

        float_model = load_float_model(keras_path)
        seconds, _ = _timed(
            quantize_model, float_model, dataset, calibration_samples=QUANTIZATION_CALIBRATION_SAMPLES
        )
        figures["pipeline_seconds.quantization"] = round(seconds, 3)
    else:
        figures["pipeline_seconds.quantization"] = None
        unavailable["pipeline_seconds.quantization"] = f"{keras_path} is missing (assets built from a .tflite)"
    figures["pipeline_seconds.rendering"] = round(time_rendering(tflite_bytes, manifest, x_int8, labels), 3)
    # A fresh reference cache: the figure is what a first validation of new assets costs.
    with tempfile.TemporaryDirectory(prefix="si4-bench-cache-") as fresh_cache:
        start = time.perf_counter()
        host = validate_host(
            assets_dir, out_dir=out_dir / "validation", build_dir=build_dir / "validation", data_path=data_path,
            cache_dir=Path(fresh_cache), images=count, quiet=True, inputs_spec=inputs_spec,
        )
        # A validation that found a difference still ran to the end: the time stands, the finding is reported.
        figures["pipeline_seconds.host_validation"] = round(time.perf_counter() - start, 3)
        if not host.passed:
            details["host_validation_failed"] = "; ".join(host.failures)
            say(f"[yellow]host validation reported a failure:[/] {details['host_validation_failed']}")

    say("writing bench.json and bench.md", section="report")
    details["section_seconds"] = section_seconds
    result = BenchResult(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        assets=str(assets_dir),
        model_sha256=manifest.model_sha256,
        settings={
            "images": count,
            "repetitions": repetitions,
            "warmup_images": WARMUP_IMAGES,
            "callgrind_vectors": details.get("callgrind_vectors"),
            "quantization_calibration_samples": QUANTIZATION_CALIBRATION_SAMPLES,
            "qemu": qemu,
            "clock_mhz": clock_mhz,
        },
        model={"macs": macs, "layers": layer_names, "parameters": manifest.totals["parameters"]},
        machine=machine,
        figures=figures,
        unavailable=unavailable,
        details=details,
        bench_seconds=round(time.perf_counter() - started, 1),
    )
    write_bench(result, out_dir)
    if console is not None:
        from rich.markdown import Markdown

        console.print(Markdown(bench_markdown(result)))
    return result


def write_bench(result: BenchResult, out_dir: Path) -> None:
    from si4tool.render import write_file_atomically

    out_dir = Path(out_dir)
    try:
        result.write(out_dir / "bench.json")
        write_file_atomically(out_dir / "bench.md", bench_markdown(result).encode())
    except OSError as error:
        raise UserError(f"cannot write the bench results into {out_dir} ({error.strerror or error}); choose another --out") from None


# --------------------------------------------------------------------------- bench.md


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}"


def _millions(value) -> str:
    return "n/a" if value is None else f"{value / 1e6:.3f} M"


def _ratio_text(ratio: float | None) -> str:
    if not ratio or ratio == 1:
        return "1"
    if ratio < 1:
        return f"{ratio:.3g} ({1 / ratio:.1f}× faster)"
    return f"{ratio:.3g} ({ratio:.2f}× slower)"


def bench_context(result: BenchResult) -> dict:
    """Every value templates/bench.md.j2 prints, formatted."""
    f = result.figures
    settings = result.settings
    layers = result.model["layers"]
    latency = []
    for name, title in RUNTIMES.items():
        entry = result.details["latency"].get(name)
        if entry is None:
            continue
        identical = entry.get("identical_outputs_to_c")
        latency.append({
            "title": title,
            "median": f"{entry['median_us']:.1f}",
            "spread": f"{min(entry['repetition_medians_us']):.1f}–{max(entry['repetition_medians_us']):.1f}",
            "ratio": "1" if name == "c_engine" else _ratio_text(f.get(f"latency_ratio_to_c.{name}")),
            "identical": "n/a" if identical is None else f"{identical}/{settings['images']}",
        })
    instruction_layers = [
        {
            "index": index,
            "name": name,
            "cells": [_fmt(f.get(f"{column}.layer.{_layer_key(index, name)}")) for column in INSTRUCTION_COLUMNS],
        }
        for index, name in enumerate(layers)
    ]
    memory_rows = [
        ("si4tool arena (activations + scratch)", _fmt(f.get("memory.arena_bytes"))),
        ("TFLite Micro arena, same model (allocation report)", _fmt(f.get("memory.tflm_arena_bytes"))),
    ]
    for kernel in M4_KERNELS:
        for key, title in (("ram_bytes", "RAM (arena + peak stack + static)"), ("stack_bytes", "peak stack")):
            if f.get(f"m4.{kernel}.{key}") is not None:
                memory_rows.append((f"Cortex-M4 {kernel}: {title}", _fmt(f[f"m4.{kernel}.{key}"])))
    flash_columns = [column for column in FLASH_COLUMNS if any(key.startswith(f"flash.{column}.") for key in f)]
    flash_rows = []
    for part, title in FLASH_ROWS.items():
        cells = [f.get(f"flash.{column}.{part}") for column in flash_columns]
        if any(cell is not None for cell in cells):
            flash_rows.append({"title": title, "cells": [_fmt(cell) for cell in cells]})
    machine = result.machine
    return {
        "model_sha256": result.model_sha256[:12],
        "macs": _fmt(result.model["macs"]),
        "assets": result.assets,
        "created": result.created,
        "machine": machine,
        "bench_seconds": result.bench_seconds,
        "settings": settings,
        "latency": latency,
        "instruction_columns": list(INSTRUCTION_COLUMNS.values()),
        "instruction_totals": [_millions(f.get(f"{column}.per_inference" if column == "host_instructions" else f"{column}.instructions_per_inference")) for column in INSTRUCTION_COLUMNS],
        "instruction_per_mac": [_fmt(f.get(f"{column}.per_mac" if column == "host_instructions" else f"{column}.instructions_per_mac"), 2) for column in INSTRUCTION_COLUMNS],
        "instruction_layers": instruction_layers,
        "callgrind_vectors": settings["callgrind_vectors"] or "n/a",
        "tflm_m4_instructions": TFLM_M4_INSTRUCTIONS,
        "m4_source": result.details.get("m4_source"),
        "cycle_estimate_section": "\n".join(
            cycles.bench_markdown_lines(f, M4_KERNELS, settings.get("clock_mhz", cycles.DEFAULT_CLOCK_MHZ))
        ),
        "memory_rows": memory_rows,
        "schedule_rows": [
            (c["schedule"], _fmt(c["arena_bytes"]), _fmt(c["arena_plus_input_bytes"]), _fmt(c["estimated_macs"]),
             "yes" if c["schedule"] == result.details["memory_schedules"]["schedule"] else "")
            for c in result.details.get("memory_schedules", {}).get("candidates", [])
        ] if len(result.details.get("memory_schedules", {}).get("candidates", [])) > 1 else [],
        "schedule_choice": result.details.get("memory_schedules", {}).get("choice", "fast"),
        "flash_columns": [FLASH_COLUMNS[column] for column in flash_columns],
        "flash_rows": flash_rows,
        "pipeline": {
            "train_epoch": _fmt(f.get("pipeline_seconds.train_epoch"), 2),
            "quantization": _fmt(f.get("pipeline_seconds.quantization"), 2),
            "rendering": _fmt(f.get("pipeline_seconds.rendering"), 3),
            "host_validation": _fmt(f.get("pipeline_seconds.host_validation"), 2),
        },
        "host_validation_failed": result.details.get("host_validation_failed"),
        "m4_failures": result.details.get("m4_failures", []),
        "unavailable": result.unavailable,
        "load_average": " / ".join(map(str, machine["load_average"])) if machine.get("load_average") else None,
        "packages": ", ".join(f"{name} {version}" for name, version in machine["packages"].items()),
        "compilers": "; ".join(f"{name}: {version}" for name, version in machine["compilers"].items() if version),
    }


def bench_markdown(result: BenchResult) -> str:
    from si4tool.render import render_template

    return render_template("bench.md.j2", **bench_context(result))
