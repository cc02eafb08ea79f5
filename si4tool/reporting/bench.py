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
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from si4tool.artefacts import BenchResult, Manifest, QemuValidation
from si4tool.errors import UserError
from si4tool.targets.host_engine import TimedPass, build_host_engine, engine_sources
from si4tool.targets.toolchain import STRICT_C_FLAGS, firmware_stub_dir, host_compiler, kernel_include_dir, run_compiler

# Untimed inferences before each timed pass (caches, lazy allocation, XNNPACK packing).
WARMUP_IMAGES = 10
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
PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "tflite-micro", "numpy")
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
# For comparison in the tables: TFLite Micro measured by the team on the same emulated M4.
TFLM_M4_INSTRUCTIONS = "30.45 M (reference kernels), 6.52 M (CMSIS-NN)"


def _bench_source() -> Path:
    return firmware_stub_dir() / "platform" / "host" / "si4_bench_main.c"


# --------------------------------------------------------------------------- latency


class InterpreterTimer:
    """A Python interpreter timed around invoke() alone; set/get of tensors are outside the clock."""

    def __init__(self, set_input, invoke, get_output, tflite_bytes: bytes):
        from si4tool.compiler.ir import engine_edges
        from si4tool.validation.reference import engine_output_reader

        self._set_input = set_input
        self._invoke = invoke
        self._get_output = get_output
        self._edges = engine_edges(tflite_bytes)
        self._engine_output = engine_output_reader(tflite_bytes)

    def _interpreter_images(self, x_int8: np.ndarray) -> np.ndarray:
        """A float-input model (QUANTIZE first) takes the dequantized engine input: its
        own QUANTIZE turns that back into exactly the same int8 values."""
        if not self._edges.float_input:
            return x_int8
        scale, zero_point = self._edges.input_quantization
        return ((x_int8.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)

    def time_images(self, x_int8: np.ndarray, warmup: int) -> TimedPass:
        x_int8 = self._interpreter_images(x_int8)
        count = len(x_int8)
        for _ in range(warmup if count else 0):
            self._set_input(x_int8[0:1])
            self._invoke()
        ns = np.zeros(count, dtype=np.int64)
        outputs = None
        clock = time.perf_counter_ns
        for index in range(count):
            self._set_input(x_int8[index : index + 1])
            start = clock()
            self._invoke()
            ns[index] = clock() - start
            output = self._engine_output(np.asarray(self._get_output())).reshape(-1)
            if outputs is None:
                outputs = np.zeros((count, output.size), dtype=np.int8)
            outputs[index] = output
        return TimedPass(ns, outputs if outputs is not None else np.zeros((0, 0), dtype=np.int8))


def litert_timer(tflite_bytes: bytes, op_resolver: str) -> InterpreterTimer:
    from si4tool.validation.reference import litert_interpreter

    interpreter = litert_interpreter(tflite_bytes, op_resolver)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    return InterpreterTimer(
        lambda image: interpreter.set_tensor(input_index, image),
        interpreter.invoke,
        lambda: interpreter.get_tensor(output_index),
        tflite_bytes,
    )


def tflm_timer(tflite_bytes: bytes) -> InterpreterTimer:
    from si4tool.validation.reference import tflm_interpreter

    interpreter = tflm_interpreter(tflite_bytes)
    return InterpreterTimer(
        lambda image: interpreter.set_input(image, 0), interpreter.invoke, lambda: interpreter.get_output(0), tflite_bytes
    )


def measure_latency(timers: dict, x_int8: np.ndarray, repetitions: int, warmup: int = WARMUP_IMAGES) -> dict:
    """Per runtime: median µs per image (median of the repetitions' medians), the
    repetitions' medians, and how many outputs are identical to the C engine's."""
    rep_medians: dict[str, list[float]] = {name: [] for name in timers}
    last_outputs: dict[str, np.ndarray] = {}
    for _ in range(repetitions):
        # Interleaved: a slow spell of a shared machine hits every runtime, not one.
        for name, timer in timers.items():
            timed = timer.time_images(x_int8, warmup)
            rep_medians[name].append(float(np.median(timed.ns_per_image)) / 1000.0)
            last_outputs[name] = timed.outputs
    baseline = last_outputs.get("c_engine")
    results = {}
    for name, medians in rep_medians.items():
        entry = {
            "median_us": float(np.median(medians)),
            "repetition_medians_us": [round(m, 3) for m in medians],
        }
        if baseline is not None and last_outputs[name].shape == baseline.shape:
            entry["identical_outputs_to_c"] = int(np.sum(np.all(last_outputs[name] == baseline, axis=1)))
        results[name] = entry
    return results


# --------------------------------------------------------------------------- callgrind

_DUMP_TRIGGER = re.compile(r"^desc: Trigger: Client Request: si4_bench (invoke|layer (\d+))\s*$")
_DUMP_TOTALS = re.compile(r"^totals:\s+(\d+)")


def parse_callgrind_dumps(paths: list[Path]) -> tuple[int | None, dict[int, int]]:
    """(instructions of the 'invoke' pass, {layer index: instructions}) from si4_bench's dumps."""
    invoke = None
    layers: dict[int, int] = {}
    for path in paths:
        trigger = totals = None
        for line in path.read_text(errors="replace").splitlines():
            if trigger is None and (match := _DUMP_TRIGGER.match(line)):
                trigger = match
            elif match := _DUMP_TOTALS.match(line):
                totals = int(match.group(1))
        if trigger is None or totals is None:
            continue
        if trigger.group(2) is None:
            invoke = totals
        else:
            layers[int(trigger.group(2))] = totals
    return invoke, layers


def build_bench_program(assets_dir: Path, build_dir: Path) -> Path:
    """si4_bench_main.c + the engine + the embedded test vectors, -O2 with the strict flags."""
    assets_dir = Path(assets_dir)
    if not (assets_dir / "test_vectors.c").is_file():
        raise UserError(f"{assets_dir / 'test_vectors.c'} is missing: build the firmware assets again")
    program = Path(build_dir) / "si4_bench"
    program.parent.mkdir(parents=True, exist_ok=True)
    args = [host_compiler(), *STRICT_C_FLAGS, "-O2", f"-I{assets_dir}", f"-I{kernel_include_dir()}"]
    args += [str(s) for s in [_bench_source(), *engine_sources(assets_dir), assets_dir / "test_vectors.c"]]
    run_compiler(args + ["-o", str(program)], "the callgrind bench program")
    return program


def callgrind_instructions(program: Path, vectors: int, work_dir: Path) -> tuple[int, list[int]]:
    """Instructions per inference (total, per layer) of the bench program under callgrind."""
    work_dir = Path(work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    args = [
        "valgrind", "--tool=callgrind", "--collect-atstart=no",
        f"--callgrind-out-file={work_dir / 'callgrind.out.%p'}", str(program), str(vectors),
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"valgrind exited with status {result.returncode}: {' '.join(tail)}")
    invoke, layers = parse_callgrind_dumps(sorted(work_dir.glob("callgrind.out.*")))
    if invoke is None or not layers:
        raise RuntimeError("callgrind wrote no si4_bench dumps (is the valgrind header the installed valgrind's?)")
    per_layer = [round(layers[i] / vectors) for i in sorted(layers)]
    return round(invoke / vectors), per_layer


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


# --------------------------------------------------------------------------- host objects


def host_object_sizes(assets_dir: Path, build_dir: Path) -> dict[str, int]:
    """Bytes of code + constants (text, which holds .rodata, plus data) of the engine's host objects."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    groups = {"weights": [], "model_code": [], "kernel_code": []}
    for source in engine_sources(assets_dir):
        obj = build_dir / (source.stem + ".o")
        args = [host_compiler(), *STRICT_C_FLAGS, "-O2", "-c", f"-I{assets_dir}", f"-I{kernel_include_dir()}"]
        run_compiler(args + [str(source), "-o", str(obj)], source.name)
        group = "weights" if source.name == "model_weights.c" else "model_code" if source.name == "model.c" else "kernel_code"
        groups[group].append(obj)
    size_tool = shutil.which("size")
    if size_tool is None:
        raise RuntimeError("binutils' size is not installed")
    sizes = {}
    for group, objects in groups.items():
        result = subprocess.run([size_tool, "-B", *map(str, objects)], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"size failed: {(result.stderr or result.stdout).strip()[:200]}")
        output = result.stdout
        total = 0
        for line in output.splitlines()[1:]:
            fields = line.split()
            total += int(fields[0]) + int(fields[1])
        sizes[group] = total
    # The engine's code as qemu.json counts it (model.c plus kernels), for the same row.
    sizes["code"] = sizes["model_code"] + sizes["kernel_code"]
    return sizes


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
    from si4tool.compiler.ir import lower_tflite

    vectors = min(manifest.test_vectors, len(x_int8))
    classes = int(np.prod(manifest.quantization["output"]["shape"]))
    sha = manifest.model_sha256
    start = time.perf_counter()
    graph = passes.run_passes(lower_tflite(tflite_bytes))
    plan = planner.plan_memory(graph)
    codegen.render_model_sources(graph, plan, sha)
    render_model_data(tflite_bytes, sha)
    render_test_vectors(
        x_int8[:vectors], labels[:vectors], np.zeros((vectors, classes), dtype=np.int8), sha,
        manifest.input_quantization, manifest.data["source"],
    )
    return time.perf_counter() - start


# --------------------------------------------------------------------------- machine


def _first_line(args: list[str]) -> str | None:
    if shutil.which(args[0]) is None:
        return None
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def machine_description() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        # Wall times depend on what else runs: the 1/5/15-minute load when the bench started.
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "compilers": {
            "host_cc": _first_line([host_compiler(), "--version"]),
            "arm-none-eabi-gcc": _first_line(["arm-none-eabi-gcc", "--version"]),
            "valgrind": _first_line(["valgrind", "--version"]),
            "qemu-system-arm": _first_line(["qemu-system-arm", "--version"]),
        },
        "packages": packages,
    }


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
) -> BenchResult:
    """Measure everything, write bench.json and bench.md into out_dir, and return the results.

    validation_dir: where validate-qemu wrote the qemu.json that qemu=False reuses."""
    from si4tool.frontend import data
    from si4tool.frontend.quantize import quantize_input
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

    dataset = data.load_dataset_of_assets(manifest.data, None, data_path)  # the assets' own dataset
    count = min(images, len(dataset.x_test))
    x_int8 = quantize_input(data.normalize(dataset.x_test[:count]), *manifest.input_quantization)
    labels = dataset.y_test[:count]
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
            program = build_bench_program(assets_dir, build_dir)
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
    try:
        figures["memory.tflm_arena_bytes"] = reference.tflm_arena_bytes(tflite_bytes)
    except (RuntimeError, UserError) as error:
        unavailable["memory.tflm_arena_bytes"] = str(error)
    try:
        for group, value in host_object_sizes(assets_dir, build_dir / "objects").items():
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
    if keras_path.is_file():
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
            cache_dir=Path(fresh_cache), images=count, quiet=True,
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
        "memory_rows": memory_rows,
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
