"""Debug and release builds of the kernels: every optimisation level, a frame pointer, C99, C11, C++.

A firmware project builds the kernels with its own flags: an STM32CubeIDE debug build uses -O0,
profilers and some RTOS ports want -fno-omit-frame-pointer, Arduino compiles with g++. Every
kernel, portable and DSP, must compile warning-free (-Wall -Wextra -Werror -pedantic) in each
combination for the Cortex-M4, the portable ones also for the host compiler; the headers
(si4_nn.h and what the kernels include) must work from C++, and the seed firmware built at -O0
and -Os must stay bit-exact under QEMU (a few embedded vectors, to stay fast).

The compiles run one compiler call per configuration, two at a time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from si4tool.targets import qemu
from si4tool.targets.toolchain import firmware_stub_dir

KERNELS = firmware_stub_dir() / "kernels"
PORTABLE_SOURCES = sorted((KERNELS / "src").glob("*.c"))
DSP_SOURCES = sorted((KERNELS / "dsp").glob("*.c"))
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
LANGUAGES = {"c99": ["-x", "c", "-std=c99"], "c11": ["-x", "c", "-std=c11"], "c++11": ["-x", "c++", "-std=c++11"]}
ALL_LEVELS = ("-O0", "-Og", "-Os", "-O2", "-O3")
# -O0 keeps the frame pointer anyway; at the other levels it takes a register the kernels could use.
FRAME_POINTER_LEVELS = ("-Og", "-Os", "-O2", "-O3")
# Register allocation (where the DSP kernels' assembly once failed) depends on the level and the
# frame pointer, not on the language: the whole cross product for the Cortex-M4 in C99, the
# language front ends at the levels that differ most (none, size, speed; -O2 with a frame pointer)
# elsewhere, to keep the CPU time of the suite modest. The frame pointer only matters to the
# DSP kernels' inline assembly (r7 taken): those configurations build the DSP files alone, and
# the host (no assembly) has none.
MATRIX = {
    "cortex-m4": {"c99": (ALL_LEVELS, FRAME_POINTER_LEVELS), "c11": (("-O0", "-O2"), ("-O2",)),
                  "c++11": (("-O0", "-Os", "-O2"), ("-O2",))},
    "host": {"c99": (ALL_LEVELS, ()), "c11": (("-O0", "-O2"), ()), "c++11": (("-O0", "-O2"), ())},
}  # fmt: skip
FRAME_POINTER = "-fno-omit-frame-pointer"
FEW_VECTORS = 4

requires_arm_gcc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("arm-none-eabi-g++") is None,
    reason="arm-none-eabi-gcc/g++ is not installed",
)
requires_qemu = pytest.mark.skipif(
    not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing"
)


def _configurations(target: str) -> list[tuple[str, list[str]]]:
    """(name, flags) for the target's languages x optimisation levels, with and without a frame pointer."""
    configurations = []
    for language, (levels, frame_pointer_levels) in MATRIX[target].items():
        for level in levels:
            configurations.append((f"{language}{level}", [*LANGUAGES[language], level]))
        for level in frame_pointer_levels:
            configurations.append(
                (f"{language}{level}-fno-omit-frame-pointer", [*LANGUAGES[language], level, "-fno-omit-frame-pointer"])
            )
    return configurations


def _compile_matrix(target: str, compilers: dict[str, str], target_flags: list[str], sources: list[Path],
                    work: Path) -> dict:  # fmt: skip
    """Compiles `sources` once per configuration; returns {configuration: (return code, diagnostics, objects)}."""

    def compile_one(configuration: tuple[str, list[str]]):
        name, flags = configuration
        compiler = compilers["c++" if "c++" in flags else "c"]
        out = work / name
        out.mkdir(parents=True)
        # Portable and DSP files share names (dsp/ replaces src/): each set gets its own folder.
        results = []
        groups = {source.parent.name for source in sources}
        if FRAME_POINTER in flags and "dsp" in groups:
            groups = {"dsp"}
        for group in sorted(groups):
            group_sources = [str(source) for source in sources if source.parent.name == group]
            (out / group).mkdir()
            command = [compiler, *target_flags, *WARNINGS, *flags, f"-I{KERNELS / 'include'}", "-c", *group_sources]
            results.append(subprocess.run(command, cwd=out / group, capture_output=True, text=True))
        code = max(result.returncode for result in results)
        diagnostics = "".join(result.stderr + result.stdout for result in results)
        return name, (code, diagnostics, sorted(path.name for path in out.rglob("*.o")))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(compile_one, _configurations(target)))


def _assert_all_built(results: dict, sources: list[Path]) -> None:
    failures = {name: diagnostics for name, (code, diagnostics, _) in results.items() if code != 0 or diagnostics}
    assert not failures, "\n".join(f"--- {name}\n{text[:1500]}" for name, text in failures.items())
    every = sorted(f"{source.stem}.o" for source in sources)
    dsp = sorted(f"{source.stem}.o" for source in sources if source.parent.name == "dsp")
    for name, (_, _, objects) in results.items():
        assert objects == (dsp if FRAME_POINTER in name and dsp else every), name


def test_matrix_covers_every_level_frame_pointer_and_language():
    cortex_m4 = [name for name, _ in _configurations("cortex-m4")]
    host = [name for name, _ in _configurations("host")]
    assert len(cortex_m4) == len(set(cortex_m4)) == (5 + 4) + 3 + 4
    assert len(host) == len(set(host)) == 5 + 2 + 2
    for level in ("-O0", "-Og", "-Os", "-O2", "-O3"):
        assert f"c99{level}" in cortex_m4
        assert level == "-O0" or f"c99{level}-fno-omit-frame-pointer" in cortex_m4
    assert {"c++11-O0", "c++11-Os", "c++11-O2", "c++11-O2-fno-omit-frame-pointer"} <= set(cortex_m4)
    for names in (cortex_m4, host):
        assert {"c99-O0", "c99-O3", "c11-O0", "c11-O2", "c++11-O0", "c++11-O2"} <= set(names)
    assert {source.name for source in DSP_SOURCES} <= {source.name for source in PORTABLE_SOURCES}
    assert DSP_SOURCES, "no DSP kernels found"


@requires_arm_gcc
def test_every_kernel_builds_for_cortex_m4_at_every_level(tmp_path):
    """Portable and DSP kernels, -O0 ... -O3, with a frame pointer, as C99, C11 and C++ (MATRIX): no warning."""
    sources = PORTABLE_SOURCES + DSP_SOURCES
    compilers = {"c": "arm-none-eabi-gcc", "c++": "arm-none-eabi-g++"}
    results = _compile_matrix("cortex-m4", compilers, CORTEX_M4, sources, tmp_path)
    _assert_all_built(results, sources)


def test_portable_kernels_build_for_the_host_at_every_level(tmp_path):
    c_compiler = shutil.which("cc") or shutil.which("gcc")
    cxx_compiler = shutil.which("c++") or shutil.which("g++")
    if c_compiler is None or cxx_compiler is None:
        pytest.skip("no host C and C++ compiler")
    results = _compile_matrix("host", {"c": c_compiler, "c++": cxx_compiler}, [], PORTABLE_SOURCES, tmp_path)
    _assert_all_built(results, PORTABLE_SOURCES)


CXX_CALLER = r"""
#include "si4_nn.h"
#include "si4_requant.h"

int main()
{
    static const si4_fully_connected_params params = {4, 1, 0, 0, 0, -128, 127, 0, 1};
    static const int8_t input[4] = {1, 2, 3, 4};
    static const int8_t filter[4] = {1, 1, 1, 1};
    static const int32_t multiplier[1] = {1 << 30};
    static const int32_t shift[1] = {1};
    int8_t output[1] = {0};
    si4_fully_connected_s8(&params, input, filter, nullptr, multiplier, shift, output);
    return output[0] == 10 && si4_requantize_s8(10, 1 << 30, 1, 0, -128, 127) == 10 ? 0 : 1;
}
"""


def test_kernels_link_and_run_from_cpp(tmp_path):
    """si4_nn.h from a C++ translation unit, linked against the C-compiled kernels (extern "C")."""
    c_compiler = shutil.which("cc") or shutil.which("gcc")
    cxx_compiler = shutil.which("c++") or shutil.which("g++")
    if c_compiler is None or cxx_compiler is None:
        pytest.skip("no host C and C++ compiler")
    (tmp_path / "caller.cpp").write_text(CXX_CALLER)
    objects = []
    for source in PORTABLE_SOURCES:
        target = tmp_path / f"{source.stem}.o"
        subprocess.run([c_compiler, "-std=c99", *WARNINGS, "-O2", f"-I{KERNELS / 'include'}", "-c", str(source),
                        "-o", str(target)], check=True)  # fmt: skip
        objects.append(str(target))
    program = tmp_path / "caller"
    build = subprocess.run(
        [cxx_compiler, "-std=c++11", *WARNINGS, f"-I{KERNELS / 'include'}", str(tmp_path / "caller.cpp"), *objects,
         "-o", str(program)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert subprocess.run([str(program)]).returncode == 0


# --------------------------------------------------------------------------- the firmware at -O0 and -Os


def _c_array_values(text: str, name: str) -> list[int]:
    start = text.index("{", text.index(name))
    end = text.index("};", start)
    return [int(value) for value in re.findall(r"-?\d+", re.sub(r"/\*.*?\*/", "", text[start:end], flags=re.S))]


def _assets_with_few_vectors(assets: Path, out: Path, count: int) -> Path:
    """A copy of the assets whose test_vectors.c/.h hold only the first `count` vectors."""
    from si4tool.assets import render_test_vectors

    shutil.copytree(assets, out)
    header = (assets / "test_vectors.h").read_text()
    text = (assets / "test_vectors.c").read_text()
    total = int(re.search(r"#define SI4_TEST_VECTOR_COUNT (\d+)", header).group(1))
    input_size = int(re.search(r"#define SI4_TEST_VECTOR_INPUT_SIZE (\d+)", header).group(1))
    output_size = int(re.search(r"#define SI4_TEST_VECTOR_OUTPUT_SIZE (\d+)", header).group(1))
    sha256 = re.search(r'#define SI4_TEST_VECTORS_MODEL_SHA256 "([0-9a-f]+)"', header).group(1)
    scale, zero_point = re.search(r"\(scale ([0-9.e-]+), zero point (-?\d+)\)", header).groups()
    inputs = np.array(_c_array_values(text, "si4_test_inputs["), dtype=np.int8).reshape(total, input_size)
    labels = np.array(_c_array_values(text, "si4_test_labels["), dtype=np.uint8)
    expected = np.array(_c_array_values(text, "si4_test_expected_outputs["), dtype=np.int8).reshape(total, output_size)
    assert len(labels) == total
    files = render_test_vectors(inputs[:count], labels[:count], expected[:count], sha256,
                                (float(scale), int(zero_point)), "MNIST")  # fmt: skip
    for name, content in files.items():
        (out / name).write_text(content)
    return out


@pytest.fixture(scope="module")
def few_vector_assets(request, tmp_path_factory) -> Path:
    try:
        assets = Path(request.getfixturevalue("firmware_assets"))
    except pytest.FixtureLookupError:
        pytest.skip("no firmware_assets fixture in tests/conftest.py")
    return _assets_with_few_vectors(assets, tmp_path_factory.mktemp("few") / "assets", FEW_VECTORS)


@pytest.mark.qemu
@requires_qemu
@pytest.mark.parametrize(("kernel", "optimize"), [("dsp", "-O0"), ("dsp", "-Os"), ("portable", "-O0"),
                                                  ("dsp", "-O2 -fno-omit-frame-pointer")])  # fmt: skip
def test_seed_firmware_is_bit_exact_at_debug_and_size_levels(few_vector_assets, tmp_path, kernel, optimize):
    result = qemu.validate_qemu(few_vector_assets, out_dir=tmp_path / "validation", build_dir=tmp_path / "build",
                                kernels=(kernel,), optimize=optimize, quiet=True)  # fmt: skip
    [run] = result.runs
    assert (run.kernel, run.compiler_flags) == (kernel, optimize)
    assert run.vectors == FEW_VECTORS
    assert run.bit_exact == FEW_VECTORS, run.mismatched_vectors
    assert run.exit_status == 0
    assert run.instructions_per_inference > 0
