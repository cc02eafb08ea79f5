"""The generated C engine, compiled for this machine and called from Python.

The same model.c, model_weights.c and kernels that run on the board are built
into a shared library (with the strict C99 flags) next to a small host runner,
so validation, tracing, the latency bench and the tests exercise exactly the
code that ships. This is the one ctypes binding of the engine.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from si4tool.artefacts import assets_model_names
from si4tool.compiler.codegen import LAYER_TABLES_FLAG
from si4tool.errors import UserError
from si4tool.targets.toolchain import (
    STRICT_C_FLAGS,
    compile_shared_library,
    firmware_stub_dir,
    host_compiler,
    kernel_include_dir,
    portable_kernel_sources,
    run_compiler,
)

_INT8_P = ctypes.POINTER(ctypes.c_int8)
_INT64_P = ctypes.POINTER(ctypes.c_int64)


class EngineError(RuntimeError):
    """The compiled engine reported a failure (si4_model_invoke's status, a layer copy that came up short)."""


@dataclass
class TimedPass:
    """One timed pass over a batch: the wall time of each inference alone, and the outputs."""

    ns_per_image: np.ndarray  # int64, one per image
    outputs: np.ndarray  # int8 (N, output size)


def _as_int8_pointer(array: np.ndarray):
    return array.ctypes.data_as(_INT8_P)


class HostEngine:
    """ctypes view of one compiled model: batch inference and per-layer runs."""

    def __init__(self, library_path: Path, names=None):
        from si4tool.compiler.codegen import DEFAULT_NAMES

        names = names or DEFAULT_NAMES
        self.library_path = Path(library_path)
        self._lib = ctypes.CDLL(str(self.library_path))
        for name in ("si4_host_input_size", "si4_host_output_size", "si4_host_layer_count", "si4_host_arena_bytes"):
            getattr(self._lib, name).restype = ctypes.c_int32
        self._lib.si4_host_run_batch.argtypes = [_INT8_P, ctypes.c_int32, _INT8_P]
        self._lib.si4_host_run_batch.restype = ctypes.c_int32
        self._lib.si4_host_run_layer.argtypes = [ctypes.c_int32, _INT8_P, _INT8_P, _INT8_P]
        self._lib.si4_host_run_layer.restype = ctypes.c_int32
        self._lib.si4_host_time_batch.argtypes = [_INT8_P, ctypes.c_int32, ctypes.c_int32, _INT8_P, _INT64_P]
        self._lib.si4_host_time_batch.restype = ctypes.c_int32
        self.input_size = self._lib.si4_host_input_size()
        self.output_size = self._lib.si4_host_output_size()
        self.layer_count = self._lib.si4_host_layer_count()
        self.arena_bytes = self._lib.si4_host_arena_bytes()
        names_array = ctypes.c_char_p * self.layer_count
        self.layer_names = [n.decode() for n in names_array.in_dll(self._lib, f"{names.prefix}_layer_names")]
        sizes = ctypes.c_int32 * self.layer_count
        self.layer_output_sizes = list(sizes.in_dll(self._lib, f"{names.prefix}_layer_output_sizes"))

    def _batch(self, inputs: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(inputs, dtype=np.int8).reshape(len(inputs), -1)
        if batch.shape[1] != self.input_size:
            raise UserError(f"the engine takes {self.input_size} input values per image, not {batch.shape[1]}")
        return batch

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """int8 inputs (N, ...) -> int8 outputs (N, output_size)."""
        batch = self._batch(inputs)
        outputs = np.zeros((len(batch), self.output_size), dtype=np.int8)
        status = self._lib.si4_host_run_batch(_as_int8_pointer(batch), len(batch), _as_int8_pointer(outputs))
        if status != 0:
            raise EngineError(f"si4_model_invoke returned {status}")
        return outputs

    def time_images(self, inputs: np.ndarray, warmup: int) -> TimedPass:
        """`warmup` untimed inferences, then each image timed alone in C around si4_model_invoke."""
        batch = self._batch(inputs)
        outputs = np.zeros((len(batch), self.output_size), dtype=np.int8)
        ns = np.zeros(len(batch), dtype=np.int64)
        status = self._lib.si4_host_time_batch(
            _as_int8_pointer(batch), len(batch), warmup, _as_int8_pointer(outputs), ns.ctypes.data_as(_INT64_P)
        )
        if status != 0:
            raise EngineError(f"si4_model_invoke returned {status}")
        return TimedPass(ns, outputs)

    def run_layers(self, image: np.ndarray) -> list[np.ndarray]:
        """Run one image layer by layer; return each layer's output tensor (flat int8)."""
        single = np.ascontiguousarray(image, dtype=np.int8).reshape(-1)
        output = np.zeros(self.output_size, dtype=np.int8)
        results = []
        for layer, size in enumerate(self.layer_output_sizes):
            layer_output = np.zeros(size, dtype=np.int8)
            copied = self._lib.si4_host_run_layer(
                layer, _as_int8_pointer(single), _as_int8_pointer(output), _as_int8_pointer(layer_output)
            )
            if copied != size:
                raise EngineError(f"layer {layer} copied {copied} bytes, its output has {size}")
            results.append(layer_output)
        return results


def engine_sources(assets_dir: Path) -> list[Path]:
    """The model's two sources (named as its manifest says) and the portable kernels."""
    assets_dir = Path(assets_dir)
    names = assets_model_names(assets_dir)
    for name in (names.file(base) for base in ("model.c", "model.h", "model_weights.c", "model_weights.h")):
        if not (assets_dir / name).is_file():
            raise UserError(f"{assets_dir / name} is missing: run `si4tool build-firmware-assets --out {assets_dir}` first")
    return [assets_dir / names.file("model.c"), assets_dir / names.file("model_weights.c"), *portable_kernel_sources()]


def build_host_engine(assets_dir: Path, build_dir: Path, extra_flags: list[str] = ()) -> HostEngine:
    """Compile the assets' engine for the host (-O2, strict flags) and load it."""
    assets_dir = Path(assets_dir)
    names = assets_model_names(assets_dir)
    runner = firmware_stub_dir() / "platform" / "host" / "si4_host_runner.c"
    library = compile_shared_library(
        [*engine_sources(assets_dir), runner],
        Path(build_dir) / "libsi4_model.so",
        include_dirs=[assets_dir, kernel_include_dir(), firmware_stub_dir()],
        extra_flags=[*names.binding_flags(), LAYER_TABLES_FLAG, *extra_flags],  # the runner reads the per-layer tables
    )
    return HostEngine(library, names)


def engine_object_sizes(assets_dir: Path, build_dir: Path) -> dict[str, int]:
    """Bytes of code + constants (text, which holds .rodata, plus data) of the engine's host objects."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    groups = {"weights": [], "model_code": [], "kernel_code": []}
    names = assets_model_names(assets_dir)
    for source in engine_sources(assets_dir):
        obj = build_dir / (source.stem + ".o")
        args = [host_compiler(), *STRICT_C_FLAGS, "-O2", "-c", f"-I{assets_dir}", f"-I{kernel_include_dir()}"]
        run_compiler(args + [str(source), "-o", str(obj)], source.name)
        group = (
            "weights" if source.name == names.file("model_weights.c")
            else "model_code" if source.name == names.file("model.c") else "kernel_code"
        )
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
