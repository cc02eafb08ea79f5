"""The caller's arena (issue 13): <prefix>_invoke_with_arena next to the static arena's <prefix>_invoke.

Both entry points bit-exact with TFLite Micro on the host; an arena that is too small, misaligned or
NULL returns the error code model.h documents, before anything is written; <MACRO>_NO_STATIC_ARENA
drops the static array (and <prefix>_invoke) from the object.
"""

from __future__ import annotations

import ctypes
import re
import subprocess

import numpy as np
import pytest

import model_zoo
from si4tool.compiler import codegen, passes, planner
from si4tool.compiler.lowering import lower_tflite
from si4tool.targets.toolchain import (
    STRICT_C_FLAGS,
    compile_shared_library,
    host_compiler,
    kernel_include_dir,
    portable_kernel_sources,
)
from si4tool.validation import reference

SHA = "fedcba9876543210" * 4
IMAGES = 24
_INT8_P = ctypes.POINTER(ctypes.c_int8)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The seed-sized model rendered as "si4_model" (the default names), as a ctypes library."""
    tflite = model_zoo.seed_model_tflite()
    graph = passes.run_passes(lower_tflite(tflite))
    plan = planner.plan_memory(graph)
    folder = tmp_path_factory.mktemp("caller_arena")
    for name, text in codegen.render_model_sources(graph, plan, SHA).items():
        (folder / name).write_text(text)
    library = compile_shared_library(
        [folder / "model.c", folder / "model_weights.c", *portable_kernel_sources()],
        folder / "libcaller_arena.so",
        include_dirs=[folder, kernel_include_dir()],
    )
    lib = ctypes.CDLL(str(library))
    lib.si4_model_invoke.argtypes = [_INT8_P, _INT8_P]
    lib.si4_model_invoke_with_arena.argtypes = [_INT8_P, _INT8_P, ctypes.c_void_p, ctypes.c_size_t]
    model_h = (folder / "model.h").read_text()

    def macro(name: str) -> int:
        return int(re.search(rf"#define SI4_MODEL_{name} \(?(-?\d+)\)?", model_h).group(1))

    images = model_zoo.random_images(IMAGES, graph.tensors[graph.input].shape, seed=13)
    expected = reference.tflm_outputs(tflite, images).reshape(IMAGES, -1)
    return {"lib": lib, "folder": folder, "macro": macro, "images": images, "expected": expected}


def _pointer(array: np.ndarray):
    return array.ctypes.data_as(_INT8_P)


def _aligned_arena(nbytes: int, alignment: int, misalign: int = 0) -> tuple[np.ndarray, int]:
    """A buffer and an address in it `misalign` bytes past an `alignment` boundary, with nbytes after it."""
    backing = np.zeros(nbytes + 2 * alignment, dtype=np.int8)
    base = backing.ctypes.data
    start = (-base) % alignment + misalign
    return backing, base + start


def test_the_header_documents_the_arena_and_the_error_codes(engine):
    macro = engine["macro"]
    assert macro("ARENA_ALIGNMENT") == planner.ARENA_ALIGNMENT
    assert macro("ARENA_BYTES") >= 16
    assert (macro("OK"), macro("ERROR_ARENA_TOO_SMALL"), macro("ERROR_ARENA_MISALIGNED"),
            macro("ERROR_NULL_POINTER")) == (0, -1, -2, -3)
    model_h = (engine["folder"] / "model.h").read_text()
    assert "SI4_MODEL_NO_STATIC_ARENA" in model_h and "si4_model_invoke_with_arena" in model_h


def test_both_entry_points_are_bit_exact(engine):
    lib, macro = engine["lib"], engine["macro"]
    arena_bytes, alignment = macro("ARENA_BYTES"), macro("ARENA_ALIGNMENT")
    backing, arena = _aligned_arena(arena_bytes, alignment)
    static_out = np.zeros_like(engine["expected"])
    caller_out = np.zeros_like(engine["expected"])
    for i, image in enumerate(engine["images"]):
        image = np.ascontiguousarray(image.reshape(-1))
        assert lib.si4_model_invoke(_pointer(image), _pointer(static_out[i])) == 0
        # Garbage in the caller's arena between calls must not matter: it holds nothing across calls.
        backing[:] = np.random.default_rng(i).integers(-128, 128, backing.size, dtype=np.int8)
        assert lib.si4_model_invoke_with_arena(_pointer(image), _pointer(caller_out[i]), arena, arena_bytes) == 0
    assert np.array_equal(static_out, engine["expected"])
    assert np.array_equal(caller_out, engine["expected"])
    # The static arena still works after a run on the caller's.
    again = np.zeros(engine["expected"].shape[1], dtype=np.int8)
    image = np.ascontiguousarray(engine["images"][0].reshape(-1))
    assert lib.si4_model_invoke(_pointer(image), _pointer(again)) == 0
    assert np.array_equal(again, engine["expected"][0])


@pytest.mark.parametrize(
    "case, code",
    [("one byte short", -1), ("empty", -1), ("misaligned by 1", -2), ("misaligned by 8", -2), ("null arena", -3)],
)
def test_a_bad_arena_returns_its_error_code_and_writes_nothing(engine, case, code):
    lib, macro = engine["lib"], engine["macro"]
    arena_bytes, alignment = macro("ARENA_BYTES"), macro("ARENA_ALIGNMENT")
    misalign = {"misaligned by 1": 1, "misaligned by 8": 8}.get(case, 0)
    backing, arena = _aligned_arena(arena_bytes, alignment, misalign)
    size = {"one byte short": arena_bytes - 1, "empty": 0}.get(case, arena_bytes)
    if case == "null arena":
        arena = None
    backing[:] = 7
    output = np.full(engine["expected"].shape[1], 99, dtype=np.int8)
    image = np.ascontiguousarray(engine["images"][0].reshape(-1))
    assert lib.si4_model_invoke_with_arena(_pointer(image), _pointer(output), arena, size) == code
    assert np.all(output == 99) and np.all(backing == 7)


def test_no_static_arena_drops_the_array_and_invoke(engine, tmp_path):
    folder = engine["folder"]
    symbols = {}
    for flags in ([], ["-DSI4_MODEL_NO_STATIC_ARENA"]):
        obj = tmp_path / f"model{len(flags)}.o"
        subprocess.run([host_compiler(), *STRICT_C_FLAGS, "-O2", *flags, f"-I{folder}", f"-I{kernel_include_dir()}",
                        "-c", str(folder / "model.c"), "-o", str(obj)], check=True)
        listing = subprocess.run(["nm", "-g", "--defined-only", str(obj)], capture_output=True, text=True, check=True)
        symbols[bool(flags)] = {line.split()[-1] for line in listing.stdout.splitlines() if line.strip()}
    assert {"si4_model_arena", "si4_model_invoke", "si4_model_invoke_with_arena"} <= symbols[False]
    assert "si4_model_invoke_with_arena" in symbols[True]
    assert not {"si4_model_arena", "si4_model_invoke"} & symbols[True]
