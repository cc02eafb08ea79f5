"""`bench`: the figures users choose a tool on, measured side by side in one run.

1. Host latency per image over the same test images, in this process, for the
   C engine (-O2 shared library, timed in C around si4_model_invoke), LiteRT
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

Writes bench.json (flat "figures": one key per figure, null when unavailable
with the reason in "unavailable"; plus machine, settings and details) and
bench.md (the tables).
"""

from __future__ import annotations

import ctypes
import datetime
import importlib.metadata
import inspect
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from si4tool.errors import UserError, ValidationFailed
from si4tool.targets.toolchain import (
    STRICT_C_FLAGS,
    compile_shared_library,
    firmware_stub_dir,
    host_compiler,
    kernel_include_dir,
    run_compiler,
)

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

_INT8_P = ctypes.POINTER(ctypes.c_int8)
_INT64_P = ctypes.POINTER(ctypes.c_int64)


def _bench_source() -> Path:
    return firmware_stub_dir() / "platform" / "host" / "si4_bench_main.c"


# --------------------------------------------------------------------------- latency


@dataclass
class TimedPass:
    ns_per_image: np.ndarray  # int64, one per image
    outputs: np.ndarray  # int8 (N, classes)


class CEngineTimer:
    """The generated engine as a shared library whose C loop times each inference."""

    def __init__(self, assets_dir: Path, build_dir: Path):
        from si4tool.targets.host_engine import engine_sources

        library = compile_shared_library(
            [*engine_sources(assets_dir), _bench_source()],
            Path(build_dir) / "libsi4_bench.so",
            include_dirs=[Path(assets_dir), kernel_include_dir()],
            extra_flags=["-DSI4_BENCH_NO_MAIN"],
        )
        self._lib = ctypes.CDLL(str(library))
        for name in ("si4_bench_input_size", "si4_bench_output_size", "si4_bench_layer_count"):
            getattr(self._lib, name).restype = ctypes.c_int32
        self._lib.si4_bench_time_images.argtypes = [_INT8_P, ctypes.c_int32, ctypes.c_int32, _INT8_P, _INT64_P]
        self._lib.si4_bench_time_images.restype = ctypes.c_int32
        self.input_size = self._lib.si4_bench_input_size()
        self.output_size = self._lib.si4_bench_output_size()
        self.layer_count = self._lib.si4_bench_layer_count()

    def layer_names(self) -> list[str] | None:
        try:
            names = (ctypes.c_char_p * self.layer_count).in_dll(self._lib, "si4_model_layer_names")
        except ValueError:
            return None
        return [name.decode() for name in names]

    def time_images(self, x_int8: np.ndarray, warmup: int) -> TimedPass:
        batch = np.ascontiguousarray(x_int8, dtype=np.int8).reshape(len(x_int8), -1)
        outputs = np.zeros((len(batch), self.output_size), dtype=np.int8)
        ns = np.zeros(len(batch), dtype=np.int64)
        status = self._lib.si4_bench_time_images(
            batch.ctypes.data_as(_INT8_P), len(batch), warmup, outputs.ctypes.data_as(_INT8_P), ns.ctypes.data_as(_INT64_P)
        )
        if status != 0:
            raise RuntimeError(f"si4_model_invoke returned {status}")
        return TimedPass(ns, outputs)


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
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if op_resolver == "reference" else OpResolverType.AUTO
    interpreter = Interpreter(model_content=tflite_bytes, num_threads=1, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    return InterpreterTimer(
        lambda image: interpreter.set_tensor(input_index, image),
        interpreter.invoke,
        lambda: interpreter.get_tensor(output_index),
        tflite_bytes,
    )


def tflm_timer(tflite_bytes: bytes) -> InterpreterTimer:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite_bytes)
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
    from si4tool.targets.host_engine import engine_sources

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


def _runs_from_qemu_result(result) -> list[dict]:
    if isinstance(result, dict):
        return list(result.get("runs", []))
    if isinstance(result, list):
        return result
    return []


def _m4_run_for(runs: list[dict], kernel: str) -> dict | None:
    """The Cortex-M4 run (mps2-an386) of a kernel variant, if the json holds one."""
    candidates = [run for run in runs if run.get("kernel") == kernel]
    for run in candidates:
        target = str(run.get("target", "")).lower()
        if "m4" in target or "an386" in target:
            return run
    return candidates[0] if candidates else None


def m4_runs(assets_dir: Path, out_dir: Path, qemu: bool, manifest: dict, console=None) -> tuple[list[dict], str | None]:
    """QEMU runs (one per kernel variant) and, when there are none, why."""
    if not qemu:
        existing = Path("build/validation/qemu.json")
        if existing.is_file():
            try:
                data = json.loads(existing.read_text())
            except ValueError:
                data = None
            sha = manifest.get("int8_model", {}).get("sha256")
            newer = existing.stat().st_mtime >= Path(assets_dir, "manifest.json").stat().st_mtime
            runs = _runs_from_qemu_result(data)
            recorded = {run.get("model_sha256") for run in runs} - {None}
            if runs and (recorded == {sha} if recorded else newer):
                for run in runs:
                    run.setdefault("source", f"{existing} (reused: --no-qemu)")
                return runs, None
        return [], "QEMU skipped (--no-qemu) and no fresh build/validation/qemu.json"
    try:
        from si4tool.targets.qemu import validate_qemu
    except ImportError as error:
        return [], f"si4tool.targets.qemu is not available ({error})"
    missing = [tool for tool in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(tool) is None]
    if missing:
        return [], f"{' and '.join(missing)} not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
    wanted = {
        "assets_dir": Path(assets_dir),
        "out_dir": Path(out_dir) / "qemu",
        "build_dir": Path(out_dir) / "qemu_build",
        "quiet": True,
        "console": None,
    }
    accepted = inspect.signature(validate_qemu).parameters
    kwargs = {key: value for key, value in wanted.items() if key in accepted}
    written = Path(kwargs.get("out_dir", Path("build/validation"))) / "qemu.json"
    written.unlink(missing_ok=True)
    try:
        result = validate_qemu(**kwargs)
    except ValidationFailed as failure:
        # qemu.json is written before the bit-exactness verdict: the instruction counts stand,
        # and the verdict is reported beside them.
        if console is not None:
            console.print(f"[yellow]QEMU validation reported a failure:[/] {failure}")
        result = json.loads(written.read_text()) if written.is_file() else None
        if result is None:
            return [], f"validate_qemu failed: {failure}"
    except Exception as error:  # a failed M4 run must not lose the host figures
        return [], f"validate_qemu failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    if result is None:
        result = json.loads(written.read_text()) if written.is_file() else None
    runs = _runs_from_qemu_result(result)
    return runs, None if runs else "validate_qemu returned no runs"


# --------------------------------------------------------------------------- host objects


def host_object_sizes(assets_dir: Path, build_dir: Path) -> dict[str, int]:
    """Bytes of code + constants (text, which holds .rodata, plus data) of the engine's host objects."""
    from si4tool.targets.host_engine import engine_sources

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
        output = subprocess.run([size_tool, "-B", *map(str, objects)], capture_output=True, text=True, check=True).stdout
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


def time_rendering(tflite_bytes: bytes, manifest: dict, x_int8: np.ndarray, labels: np.ndarray) -> float:
    """Seconds to lower, run the passes, plan memory and render every C source (in memory)."""
    from si4tool.compiler import codegen
    from si4tool.compiler import passes
    from si4tool.compiler import planner
    from si4tool.assets import render_model_data, render_test_vectors
    from si4tool.compiler.ir import lower_tflite

    vectors = min(int(manifest.get("test_vectors", 250)), len(x_int8))
    q_in = manifest["quantization"]["input"]
    classes = int(np.prod(manifest["quantization"]["output"].get("shape", [10])))
    sha = manifest.get("int8_model", {}).get("sha256", "")
    start = time.perf_counter()
    graph = passes.run_passes(lower_tflite(tflite_bytes))
    plan = planner.plan_memory(graph)
    codegen.render_model_sources(graph, plan, sha)
    render_model_data(tflite_bytes, sha)
    render_test_vectors(
        x_int8[:vectors], labels[:vectors], np.zeros((vectors, classes), dtype=np.int8), sha,
        (q_in["scale"], q_in["zero_point"]), "MNIST",
    )
    return time.perf_counter() - start


def seconds_per_epoch(assets_dir: Path, manifest: dict) -> float | None:
    training = manifest.get("training") or {}
    if training.get("seconds_per_epoch"):
        return float(training["seconds_per_epoch"])
    history = Path(assets_dir) / "history.json"
    if history.is_file():
        try:
            value = json.loads(history.read_text()).get("seconds_per_epoch")
        except (ValueError, AttributeError):
            value = None
        if value:
            return float(value)
    return None


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


def _layer_key(index: int, name: str | None) -> str:
    return f"{index}_{name}" if name else str(index)


def _named_layer_counts(per_layer, layer_names: list[str | None]) -> list[tuple[str | None, int]]:
    """qemu.json's per-layer instructions as (name, count): a list of {"layer", "instructions"}
    records (si4tool.targets.qemu's format), a plain list, a {name: count} dict, or lists per vector."""
    if not per_layer:
        return []
    if isinstance(per_layer, dict):
        pairs = list(per_layer.items())
    else:
        pairs = []
        for index, value in enumerate(per_layer):
            name = layer_names[index] if index < len(layer_names) else None
            if isinstance(value, dict):
                name, value = value.get("layer", name), value.get("instructions")
            pairs.append((name, value))
    return [(name, int(np.median(value)) if isinstance(value, list) else value) for name, value in pairs]


def run_bench(
    assets_dir: Path = Path("build/firmware_assets"),
    out_dir: Path = Path("build/bench"),
    images: int = 1000,
    repetitions: int = 5,
    data_path: Path | None = None,
    qemu: bool = True,
    console=None,
) -> dict:
    """Measure everything, write bench.json and bench.md into out_dir, and return the json."""
    from si4tool.frontend import data
    from si4tool.validation import reference
    from si4tool.frontend.quantize import quantize_input
    from si4tool.validation.validate import load_assets

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
    out_dir.mkdir(parents=True, exist_ok=True)
    build_dir = out_dir / "build"
    started = time.perf_counter()
    machine = machine_description()  # first: its load average is the one the timings ran under

    dataset = data.load_dataset_of_assets(manifest.get("data"), None, data_path)  # the assets' own dataset
    count = min(images, len(dataset.x_test))
    q_in = manifest["quantization"]["input"]
    x_int8 = quantize_input(data.normalize(dataset.x_test[:count]), q_in["scale"], q_in["zero_point"])
    labels = dataset.y_test[:count]
    macs = int(manifest.get("totals", {}).get("macs") or 0)

    figures: dict[str, float | int | None] = {}
    unavailable: dict[str, str] = {}
    details: dict = {}

    # 1. Latency.
    say(f"latency: {count} images x {repetitions} repetitions, 4 runtimes (warm-up {WARMUP_IMAGES} images each)", section="latency")
    c_timer = CEngineTimer(assets_dir, build_dir)
    layer_names = c_timer.layer_names() or [layer.get("name") for layer in manifest.get("layers", [])]
    if len(layer_names) != c_timer.layer_count:
        layer_names = [None] * c_timer.layer_count
    timers = {
        "c_engine": c_timer,
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
    host_layers: list[int] = []
    say(f"host instructions: callgrind on {CALLGRIND_VECTORS} test vectors", section="callgrind")
    if shutil.which("valgrind") is None:
        unavailable["host_instructions"] = "valgrind is not installed (apt-get install valgrind)"
    else:
        try:
            program = build_bench_program(assets_dir, build_dir)
            vectors = min(CALLGRIND_VECTORS, int(manifest.get("test_vectors") or CALLGRIND_VECTORS))
            total, host_layers = callgrind_instructions(program, vectors, build_dir / "callgrind")
            figures["host_instructions.per_inference"] = total
            if macs:
                figures["host_instructions.per_mac"] = round(total / macs, 3)
            for index, value in enumerate(host_layers):
                figures[f"host_instructions.layer.{_layer_key(index, layer_names[index])}"] = value
            details["callgrind_vectors"] = vectors
        except (UserError, RuntimeError, subprocess.TimeoutExpired) as error:
            unavailable["host_instructions"] = str(error)

    # 3. Cortex-M4 under QEMU.
    say("Cortex-M4: QEMU runs of the portable and DSP kernels" if qemu else "Cortex-M4: QEMU skipped", section="m4")
    runs, reason = m4_runs(assets_dir, out_dir, qemu, manifest, console)
    details["m4_runs"] = runs
    for kernel in M4_KERNELS:
        run = _m4_run_for(runs, kernel)
        prefix = f"m4.{kernel}"
        if run is None:
            unavailable[prefix] = reason or f"no {kernel} run in the QEMU results"
            continue
        total = run.get("instructions_per_inference")
        figures[f"{prefix}.instructions_per_inference"] = total
        if total and macs:
            figures[f"{prefix}.instructions_per_mac"] = round(total / macs, 3)
        for index, (name, value) in enumerate(_named_layer_counts(run.get("instructions_per_layer"), layer_names)):
            figures[f"{prefix}.layer.{_layer_key(index, name)}"] = value
        for key in ("ram_bytes", "stack_bytes", "arena_bytes"):
            if run.get(key) is not None:
                figures[f"{prefix}.{key}"] = run[key]
        for key, value in run.items():
            if key.startswith("flash_") and key.endswith("_bytes") and isinstance(value, (int, float)):
                part = key[len("flash_") : -len("_bytes")] or "total"
                figures[f"flash.m4_{kernel}.{part}_bytes"] = value

    # 4. Memory.
    say("memory: arena against TFLite Micro's", section="memory")
    figures["memory.arena_bytes"] = int(manifest.get("totals", {}).get("arena_bytes") or 0) or None
    try:
        figures["memory.tflm_arena_bytes"] = reference.tflm_arena_bytes(tflite_bytes)
    except (RuntimeError, UserError) as error:
        unavailable["memory.tflm_arena_bytes"] = str(error)
    try:
        for group, value in host_object_sizes(assets_dir, build_dir / "objects").items():
            figures[f"flash.host.{group}_bytes"] = value
    except (UserError, RuntimeError, subprocess.CalledProcessError) as error:
        unavailable["flash.host"] = str(error)

    # 5. Pipeline.
    say("pipeline: quantization, rendering, host validation", section="pipeline")
    epoch = seconds_per_epoch(assets_dir, manifest)
    if epoch is None:
        unavailable["pipeline_seconds.train_epoch"] = "the assets were built from a given model: no training was timed"
    figures["pipeline_seconds.train_epoch"] = epoch
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
    try:
        figures["pipeline_seconds.rendering"] = round(time_rendering(tflite_bytes, manifest, x_int8, labels), 3)
    except Exception as error:  # a stage that cannot run here is reported, not fatal
        figures["pipeline_seconds.rendering"] = None
        unavailable["pipeline_seconds.rendering"] = f"{type(error).__name__}: {error}"
    from si4tool.validation.validate import validate_host

    # A fresh reference cache: the figure is what a first validation of new assets costs.
    with tempfile.TemporaryDirectory(prefix="si4-bench-cache-") as fresh_cache:
        start = time.perf_counter()
        try:
            validate_host(
                assets_dir, data_path=data_path, out_dir=out_dir / "validation",
                build_dir=build_dir / "validation", cache_dir=Path(fresh_cache), images=count, quiet=True,
            )
            figures["pipeline_seconds.host_validation"] = round(time.perf_counter() - start, 3)
        except ValidationFailed as failure:
            # It ran to the end and found a difference: the time is still the time; the finding is reported.
            figures["pipeline_seconds.host_validation"] = round(time.perf_counter() - start, 3)
            details["host_validation_failed"] = str(failure)
            say(f"[yellow]host validation reported a failure:[/] {failure}")
        except Exception as error:
            figures["pipeline_seconds.host_validation"] = None
            unavailable["pipeline_seconds.host_validation"] = f"{type(error).__name__}: {str(error).splitlines()[0]}"

    say("writing bench.json and bench.md", section="report")
    details["section_seconds"] = section_seconds
    result = {
        "tool": "si4tool bench",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "assets": str(assets_dir),
        "model_sha256": manifest.get("int8_model", {}).get("sha256"),
        "settings": {
            "images": count,
            "repetitions": repetitions,
            "warmup_images": WARMUP_IMAGES,
            "callgrind_vectors": details.get("callgrind_vectors"),
            "quantization_calibration_samples": QUANTIZATION_CALIBRATION_SAMPLES,
            "qemu": qemu,
        },
        "model": {"macs": macs, "layers": layer_names, "parameters": manifest.get("totals", {}).get("parameters")},
        "machine": machine,
        "figures": figures,
        "unavailable": unavailable,
        "details": details,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = bench_markdown(result)
    (out_dir / "bench.md").write_text(markdown)
    if console is not None:
        from rich.markdown import Markdown

        console.print(Markdown(markdown))
    return result


# --------------------------------------------------------------------------- report


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}"


def _millions(value) -> str:
    return "n/a" if value is None else f"{value / 1e6:.3f} M"


def bench_markdown(result: dict) -> str:
    f = result["figures"]
    settings = result["settings"]
    machine = result["machine"]
    layers = result["model"]["layers"]
    lines = [
        "# si4tool bench",
        "",
        f"Model `{(result.get('model_sha256') or '')[:12]}` ({_fmt(result['model']['macs'])} MACs), "
        f"assets `{result['assets']}`, measured {result['created']} on {machine['cpu']} "
        f"({machine['cores']} cores) in {result['bench_seconds']} s.",
        "",
        f"## Host latency per image ({settings['images']} test images, {settings['repetitions']} repetitions)",
        "",
        "| runtime | median µs/image | repetition medians (µs) | time / C engine's | outputs identical to C |",
        "|---|---:|---|---:|---:|",
    ]
    for name, title in RUNTIMES.items():
        entry = result["details"]["latency"].get(name)
        if entry is None:
            continue
        ratio = 1.0 if name == "c_engine" else f.get(f"latency_ratio_to_c.{name}")
        if name == "c_engine" or not ratio:
            ratio_text = "1"
        elif ratio < 1:
            ratio_text = f"{ratio:.3g} ({1 / ratio:.1f}× faster)"
        else:
            ratio_text = f"{ratio:.3g} ({ratio:.2f}× slower)"
        spread = f"{min(entry['repetition_medians_us']):.1f}–{max(entry['repetition_medians_us']):.1f}"
        identical = entry.get("identical_outputs_to_c")
        identical_text = "n/a" if identical is None else f"{identical}/{settings['images']}"
        lines.append(f"| {title} | {entry['median_us']:.1f} | {spread} | {ratio_text} | {identical_text} |")
    lines += [
        "",
        "Method: per image, the wall time of one inference alone. C engine: `clock_gettime(CLOCK_MONOTONIC)` around "
        "`si4_model_invoke` inside a C loop (`firmware_stub/platform/host/si4_bench_main.c`), so no ctypes or Python "
        "overhead; interpreters: `time.perf_counter_ns` around `invoke()` (setting the input and reading the output "
        f"are outside the clock; the Python call itself, about a microsecond, is inside). {settings['warmup_images']} "
        "warm-up inferences before every pass; the repetitions are interleaved across runtimes; the figure is the "
        "median of the repetitions' medians.",
        "",
        "## Instructions per inference",
        "",
        "| | host x86-64 (callgrind) | Cortex-M4 portable (QEMU) | Cortex-M4 DSP (QEMU) |",
        "|---|---:|---:|---:|",
    ]
    columns = ("host_instructions", "m4.portable", "m4.dsp")
    totals = (f.get("host_instructions.per_inference"), f.get("m4.portable.instructions_per_inference"), f.get("m4.dsp.instructions_per_inference"))
    lines.append("| **total** | " + " | ".join(f"**{_millions(v)}**" for v in totals) + " |")
    per_mac = (f.get("host_instructions.per_mac"), f.get("m4.portable.instructions_per_mac"), f.get("m4.dsp.instructions_per_mac"))
    lines.append("| per MAC | " + " | ".join(_fmt(v, 2) for v in per_mac) + " |")
    for index, name in enumerate(layers):
        cells = []
        for column in columns:
            prefix = f"{column}.layer."
            match = next((value for key, value in f.items() if key.startswith(prefix) and key[len(prefix):].split("_", 1)[0] == str(index)), None)
            cells.append(_fmt(match))
        lines.append(f"| layer {index} `{name}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Host: `valgrind --tool=callgrind` on the -O2 engine; the whole inference and each layer are collected in "
        f"separate passes over {settings['callgrind_vectors'] or 'n/a'} test vectors and divided by their number. "
        "Cortex-M4: `qemu-system-arm -M mps2-an386 -icount shift=0`, where the timer counts guest instructions "
        "(instructions, not cycles). Both are deterministic. For comparison, TFLite Micro on the same emulated M4: "
        "30.45 M (reference kernels), 6.52 M (CMSIS-NN)."
        + "".join(
            f" The Cortex-M4 figures come from {source}."
            for source in sorted({run["source"] for run in result["details"].get("m4_runs", []) if run.get("source")})
        ),
        "",
        "## Memory",
        "",
        "| | bytes |",
        "|---|---:|",
        f"| si4tool arena (activations + scratch) | {_fmt(f.get('memory.arena_bytes'))} |",
        f"| TFLite Micro arena, same model (allocation report) | {_fmt(f.get('memory.tflm_arena_bytes'))} |",
    ]
    for kernel in M4_KERNELS:
        for key, title in (("ram_bytes", "RAM (arena + peak stack + static)"), ("stack_bytes", "peak stack")):
            if f.get(f"m4.{kernel}.{key}") is not None:
                lines.append(f"| Cortex-M4 {kernel}: {title} | {_fmt(f[f'm4.{kernel}.{key}'])} |")
    lines += [
        "",
        "TFLite Micro's arena is its recording allocator's total in the Python interpreter on this 64-bit host; "
        "its pointer-sized structures are smaller on a 32-bit Cortex-M (31,124 bytes measured on the emulated M4 "
        "for the seed model). Our arena is the same on every target.",
        "",
        "## Flash (bytes: code + constants)",
        "",
    ]
    flash_columns = [c for c in ("m4_portable", "m4_dsp", "host") if any(k.startswith(f"flash.{c}.") for k in f)]
    if flash_columns:
        known = list(FLASH_ROWS)
        parts = known + sorted(
            {key.split(".", 2)[2] for key in f if key.startswith("flash.") and key.split(".", 2)[2] not in known}
        )
        titles = {"m4_portable": "Cortex-M4 portable", "m4_dsp": "Cortex-M4 DSP", "host": "host x86-64 objects"}
        lines.append("| | " + " | ".join(titles[c] for c in flash_columns) + " |")
        lines.append("|---" + "|---:" * len(flash_columns) + "|")
        for part in parts:
            cells = [f.get(f"flash.{c}.{part}") for c in flash_columns]
            if any(cell is not None for cell in cells):
                title = FLASH_ROWS.get(part, part.removesuffix("_bytes").replace("_", " "))
                lines.append(f"| {title} | " + " | ".join(_fmt(cell) for cell in cells) + " |")
    else:
        lines.append("n/a")
    lines += [
        "",
        "## Pipeline (seconds)",
        "",
        "| stage | seconds |",
        "|---|---:|",
        f"| training, per epoch (recorded when the assets were built) | {_fmt(f.get('pipeline_seconds.train_epoch'), 2)} |",
        f"| quantization ({settings['quantization_calibration_samples']} calibration images) | {_fmt(f.get('pipeline_seconds.quantization'), 2)} |",
        f"| rendering (lower, passes, plan, all C sources, in memory) | {_fmt(f.get('pipeline_seconds.rendering'), 3)} |",
        f"| host validation ({settings['images']} images, no reference cache) | {_fmt(f.get('pipeline_seconds.host_validation'), 2)} |",
    ]
    if result["details"].get("host_validation_failed"):
        lines += ["", f"Host validation reported a failure: {result['details']['host_validation_failed']}"]
    failed_runs = [run for run in result["details"].get("m4_runs", []) if run.get("bit_exact") != run.get("vectors")]
    for run in failed_runs:
        lines += ["", f"QEMU {run.get('target')} {run.get('kernel')}: only {run.get('bit_exact')}/{run.get('vectors')} vectors bit-exact."]
    if result["unavailable"]:
        lines += ["", "## Not measured", ""]
        lines += [f"- `{key}`: {reason}" for key, reason in result["unavailable"].items()]
    compilers = machine["compilers"]
    lines += [
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores ({machine['cores_available']} available); {machine['system']}"
        + (f"; load average {' / '.join(map(str, machine['load_average']))} at the start" if machine.get("load_average") else ""),
        f"- Python {machine['python']}; " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()),
        "- " + "; ".join(f"{k}: {v}" for k, v in compilers.items() if v),
        "",
        "Wall times are noisy on shared machines; the instruction counts (callgrind, QEMU) are deterministic.",
    ]
    return "\n".join(lines) + "\n"
