"""si4tool export: each format's library built as its users build it, and run where it can run.

- cmake: configured and built with CMake and an arm-none-eabi toolchain file into the MPS2 AN386
  firmware (add_subdirectory, and find_package after install), run under QEMU, bit-exact.
- arduino: compiled as the Arduino builder does (every .c under src/ with gcc, the sketch as C++
  with g++ against a stub Arduino.h), linked with the MPS2 start-up, run under QEMU.
- zephyr: the module layout checked and every listed source compiled with the flags of a Zephyr
  Cortex-M4 build.
- plain: the Makefile fragment builds the host firmware, which runs bit-exact.
Bad input: one sentence, exit code 2, nothing written.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_si4tool

from si4tool.targets import qemu
from si4tool.targets.export import export_library
from si4tool.targets.firmware import FirmwareOutput, parse_firmware_output
from si4tool.targets.toolchain import firmware_stub_dir

STUB = firmware_stub_dir()
MPS2 = STUB / "platform" / "mps2_an386"
MPS2_PLATFORM_SOURCES = [MPS2 / "startup.c", MPS2 / "platform_mps2.c", STUB / "platform/common/cortex_m_runtime.c"]
CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
MPS2_LINK = ["-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs", "-Wl,--gc-sections", f"-T{MPS2 / 'mps2_an386.ld'}"]
SEED_KERNELS = ["si4_conv2d_max_pool_s8", "si4_fully_connected_s8", "si4_softmax_s8"]  # per-channel dense layers

requires_arm = pytest.mark.skipif(
    not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing"
)
requires_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake missing")


def _run(command: list, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))[:300]}\n{(result.stdout + result.stderr)[-3000:]}"
    return result


def _qemu_bit_exact(elf: Path) -> FirmwareOutput:
    status, output = qemu.run_firmware(elf, "mps2-an386")
    board = parse_firmware_output(output)
    assert (status, board.result, board.bit_exact, board.vectors) == (0, "PASS", 250, 250), output[-500:]
    return board


def _marker(folder: Path) -> dict:
    return json.loads((folder / "si4_export.json").read_text())


# --------------------------------------------------------------------------- what is exported


@pytest.mark.parametrize("kernels", ["portable", "dsp", "auto"])
def test_exactly_the_kernels_the_model_calls(firmware_assets, tmp_path, kernels):
    result = export_library(firmware_assets, tmp_path / "lib", "plain", kernels)
    assert list(result.kernels.called) == SEED_KERNELS
    marker = _marker(tmp_path / "lib")
    compiled = marker["compiled_sources"]
    kernel_sources = sorted(Path(path).stem for path in compiled if "/kernels/" in path)
    assert kernel_sources == SEED_KERNELS
    shipped = sorted(path for path in marker["files"] if "/kernels/" in path)
    if kernels == "portable":
        assert shipped == [f"src/kernels/src/{name}.c" for name in SEED_KERNELS]
        assert "include/si4_dsp_util.h" not in marker["files"]
    else:
        twins = ["si4_conv2d_max_pool_s8", "si4_fully_connected_s8"]  # the called kernels with a DSP twin
        assert marker["dsp_kernels"] == twins
        assert [path for path in compiled if "/dsp/" in path] == [f"src/kernels/dsp/{name}.c" for name in twins]
        fallbacks = [f"src/kernels/src/{name}.c" for name in twins]
        assert all((path in marker["files"]) == (kernels == "auto") for path in fallbacks)
        assert ("src/si4_dsp_required.c" in compiled) == (kernels == "dsp")
    # Every file listed with its hash, and nothing else in the folder.
    on_disk = sorted(str(path.relative_to(tmp_path / "lib")) for path in (tmp_path / "lib").rglob("*") if path.is_file())
    assert on_disk == sorted([*marker["files"], "si4_export.json"])
    for path, digest in marker["files"].items():
        assert hashlib.sha256((tmp_path / "lib" / path).read_bytes()).hexdigest() == digest


def test_readme_states_the_manifest_figures(firmware_assets, tmp_path):
    export_library(firmware_assets, tmp_path / "lib", "cmake", "auto")
    manifest = json.loads((firmware_assets / "manifest.json").read_text())
    readme = (tmp_path / "lib" / "README.md").read_text()
    assert f"{manifest['totals']['arena_bytes']:,} bytes" in readme
    assert f"{manifest['totals']['weight_bytes']:,} bytes" in readme
    assert f"{manifest['totals']['parameters']:,}" in readme
    assert f"{100 * manifest['accuracy']['int8_tflm']:.2f} %" in readme
    assert manifest["tflite_micro_version"] and f"TensorFlow Lite Micro {manifest['tflite_micro_version']}" in readme
    assert manifest["int8_model"]["sha256"] in readme


def test_dsp_only_export_refuses_a_core_without_dsp(firmware_assets, tmp_path):
    export_library(firmware_assets, tmp_path / "lib", "plain", "dsp")
    result = subprocess.run(
        ["cc", "-std=c99", "-c", str(tmp_path / "lib/src/si4_dsp_required.c"), "-o", str(tmp_path / "x.o")],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "needs a core with the DSP extension" in result.stderr


# --------------------------------------------------------------------------- plain: the host firmware


def test_plain_makefile_fragment_builds_the_host_firmware(firmware_assets, tmp_path):
    export_library(firmware_assets, tmp_path / "lib", "plain", "auto")
    makefile = tmp_path / "Makefile"
    makefile.write_text(
        f"include {tmp_path / 'lib' / 'si4_model.mk'}\n"
        "firmware: \n"
        f"\tcc -std=c99 -Wall -Wextra -Werror -pedantic -O2 $(SI4_MODEL_CFLAGS) -I{STUB} {STUB / 'main.c'} "
        f"{STUB / 'platform/host/platform_host.c'} $(SI4_MODEL_SOURCES) $(SI4_MODEL_SELF_CHECK_SOURCES) -o $@\n"
    )
    _run(["make", "-C", tmp_path, "firmware"])
    result = subprocess.run([str(tmp_path / "firmware")], capture_output=True, text=True, timeout=120)
    board = parse_firmware_output(result.stdout)
    assert (result.returncode, board.bit_exact, board.vectors) == (0, 250, 250)


# --------------------------------------------------------------------------- cmake: into the MPS2 firmware


def _firmware_project(folder: Path, use_library: str) -> Path:
    folder.mkdir(parents=True)
    sources = " ".join(str(path) for path in [STUB / "main.c", *MPS2_PLATFORM_SOURCES])
    (folder / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\n"
        "project(si4_firmware C)\n"
        f"{use_library}\n"
        f"add_executable(si4_firmware.elf {sources})\n"
        f"target_include_directories(si4_firmware.elf PRIVATE {STUB} {STUB / 'platform/common'})\n"
        "target_link_libraries(si4_firmware.elf PRIVATE si4::model si4::model_selfcheck)\n"
        f"target_link_options(si4_firmware.elf PRIVATE {' '.join(MPS2_LINK)})\n"
    )
    return folder


@requires_arm
@requires_cmake
@pytest.mark.qemu
def test_cmake_library_in_the_mps2_firmware_runs_bit_exact(firmware_assets, tmp_path):
    library = tmp_path / "si4_model"
    export_library(firmware_assets, library, "cmake", "auto")
    toolchain = library / "cmake/arm-none-eabi-cortex-m4.cmake"

    # add_subdirectory
    project = _firmware_project(tmp_path / "app", f"add_subdirectory({library} si4_model)")
    build = tmp_path / "app-build"
    _run(["cmake", "-S", project, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DCMAKE_BUILD_TYPE=Release"])
    _run(["cmake", "--build", build])
    archive = next(build.rglob("libsi4_model.a"))
    members = _run(["arm-none-eabi-ar", "t", archive]).stdout.split()
    assert sorted(members) == sorted(f"{name}.c.obj" for name in ["model", "model_weights", *SEED_KERNELS])
    _qemu_bit_exact(build / "si4_firmware.elf")

    # install, then find_package from another project
    library_build, prefix = tmp_path / "lib-build", tmp_path / "prefix"
    _run(["cmake", "-S", library, "-B", library_build, f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DCMAKE_BUILD_TYPE=MinSizeRel"])
    _run(["cmake", "--build", library_build])
    _run(["cmake", "--install", library_build, "--prefix", prefix])
    assert (prefix / "include/si4_model/si4_model_library.h").is_file()
    project = _firmware_project(tmp_path / "app2", f"find_package(si4_model {_marker(library)['tool_version']} EXACT REQUIRED PATHS {prefix})")
    build = tmp_path / "app2-build"
    _run(["cmake", "-S", project, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"])
    _run(["cmake", "--build", build])
    _qemu_bit_exact(build / "si4_firmware.elf")


# --------------------------------------------------------------------------- arduino: as the Arduino builder compiles it

# The few Arduino core names the example uses, enough for arm-none-eabi-g++ to compile the
# sketch as Arduino would, and for the MPS2 image to run it (Serial prints through stdout).
STUB_ARDUINO_H = """\
#pragma once
#include <stdio.h>
class StubSerial {
public:
    void begin(unsigned long) {}
    explicit operator bool() const { return true; }
    void print(const char *text) { fputs(text, stdout); }
    void print(long value) { printf("%ld", value); }
    void println(const char *text) { printf("%s\\n", text); }
    void println(long value) { printf("%ld\\n", value); }
};
extern StubSerial Serial;
unsigned long millis(void);
void setup(void);
void loop(void);
"""
STUB_CORE_CPP = """\
#include <Arduino.h>
extern "C" {
#include "platform.h"
}
StubSerial Serial;
unsigned long millis(void) { return (unsigned long)(platform_counter_read() / 25000u); }
int main(void)
{
    platform_init();
    setup();
    loop();
    fflush(stdout);
    platform_exit(0);
    return 0;
}
"""
# Arduino's ARM cores: gnu11 / gnu++11, -Os, sections, no RTTI or exceptions in C++.
ARDUINO_C = ["-c", "-g", "-Os", "-std=gnu11", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror"]
ARDUINO_CXX = ["-c", "-g", "-Os", "-std=gnu++11", "-ffunction-sections", "-fdata-sections", "-fno-rtti",
               "-fno-exceptions", "-fno-threadsafe-statics", "-Wall", "-Wextra", "-Werror"]


@requires_arm
@pytest.mark.qemu
def test_arduino_library_compiles_as_arduino_does_and_its_example_runs(firmware_assets, tmp_path):
    library = tmp_path / "si4_model"
    export_library(firmware_assets, library, "arduino", "auto")
    properties = dict(
        line.split("=", 1) for line in (library / "library.properties").read_text().splitlines() if "=" in line
    )
    assert {"name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url", "architectures"} <= set(properties)
    assert properties["includes"] == "si4_model_library.h"
    sketch = library / "examples/si4_self_check/si4_self_check.ino"
    assert "Serial" in sketch.read_text()
    assert not (library / "include").exists()  # Arduino puts only src/ on the include path

    stub, objects = tmp_path / "arduino_stub", tmp_path / "obj"
    stub.mkdir(), objects.mkdir()
    (stub / "Arduino.h").write_text(STUB_ARDUINO_H)
    (stub / "core.cpp").write_text(STUB_CORE_CPP)
    # The builder: every .c below src/ (recursively) with gcc, .cpp and the sketch with g++, -I src only.
    c_sources = sorted((library / "src").rglob("*.c"))
    assert not [path for path in c_sources if path.name.endswith(".c.inc")]
    for index, source in enumerate(c_sources):
        _run(["arm-none-eabi-gcc", *CORTEX_M4, *ARDUINO_C, f"-I{library / 'src'}", source, "-o", objects / f"c{index}.o"])
    sketch_cpp = tmp_path / "si4_self_check.ino.cpp"
    sketch_cpp.write_text(f'#include <Arduino.h>\n#line 1 "{sketch}"\n{sketch.read_text()}')
    for name, source in (("sketch", sketch_cpp), ("core", stub / "core.cpp")):
        _run(["arm-none-eabi-g++", *CORTEX_M4, *ARDUINO_CXX, f"-I{stub}", f"-I{library / 'src'}", f"-I{STUB}", source,
              "-o", objects / f"{name}.o"])
    for index, source in enumerate(MPS2_PLATFORM_SOURCES):
        _run(["arm-none-eabi-gcc", *CORTEX_M4, "-std=gnu99", "-O2", "-c", f"-I{STUB}", f"-I{STUB / 'platform/common'}",
              source, "-o", objects / f"platform{index}.o"])
    elf = tmp_path / "sketch.elf"
    _run(["arm-none-eabi-g++", *CORTEX_M4, *MPS2_LINK, *sorted(objects.glob("*.o")), "-o", elf])
    status, output = qemu.run_firmware(elf, "mps2-an386")
    assert status == 0
    assert "bit-exact 250/250" in output and "result PASS" in output
    correct = int(re.search(r"accuracy (\d+)/250", output).group(1))
    assert correct == _reference_correct(firmware_assets)


def _c_array(text: str, name: str) -> list[int]:
    body = re.search(rf"{name}\[[^=]*=\s*\{{(.*?)\}};", text, re.S).group(1)
    return [int(value) for value in re.findall(r"-?\d+", body)]


def _reference_correct(assets: Path) -> int:
    """Top-1 hits of TensorFlow Lite Micro's outputs recorded in test_vectors.c: what a bit-exact board counts."""
    text = (assets / "test_vectors.c").read_text()
    labels = _c_array(text, "si4_test_labels")
    outputs = _c_array(text, "si4_test_expected_outputs")
    size = len(outputs) // len(labels)
    rows = [outputs[i * size : (i + 1) * size] for i in range(len(labels))]
    return sum(row.index(max(row)) == label for row, label in zip(rows, labels))


# --------------------------------------------------------------------------- zephyr: the module and its sources

# What a Zephyr build passes for a Cortex-M4F board (zephyr/cmake/compiler/gcc, arch/arm), plus -Werror.
ZEPHYR_CORTEX_M4 = [
    *CORTEX_M4, "-mabi=aapcs", "-Os", "-std=c11", "-ffreestanding", "-fno-common", "-ffunction-sections",
    "-fdata-sections", "-fno-strict-aliasing", "-fno-pic", "-fno-asynchronous-unwind-tables", "-Wall", "-Wformat",
    "-Wformat-security", "-Wno-main", "-Wpointer-arith", "-Wshadow", "-Wno-address-of-packed-member", "-Werror",
]


@requires_arm
def test_zephyr_module_layout_and_sources_compile_with_zephyr_flags(firmware_assets, tmp_path):
    library = tmp_path / "si4_model"
    export_library(firmware_assets, library, "zephyr", "auto")
    module = (library / "zephyr/module.yml").read_text()
    assert re.search(r"^name: si4_model$", module, re.M)
    assert re.search(r"^build:\n  cmake: \.\n  kconfig: Kconfig$", module, re.M)
    kconfig = (library / "Kconfig").read_text()
    assert re.search(r"^config SI4_MODEL$", kconfig, re.M) and re.search(r"^config SI4_MODEL_SELF_CHECK$", kconfig, re.M)
    cmake = (library / "CMakeLists.txt").read_text()
    assert cmake.startswith("#") and "if(CONFIG_SI4_MODEL)" in cmake and "zephyr_library_named(si4_model)" in cmake
    listed = re.findall(r"^\s+(src/\S+\.c)$", cmake, re.M)
    marker = _marker(library)
    assert listed == marker["compiled_sources"] + marker["self_check_sources"]
    includes = re.findall(r"zephyr_include_directories\((\S+)\)", cmake)
    autoconf = tmp_path / "autoconf.h"
    autoconf.write_text("#define CONFIG_SI4_MODEL 1\n#define CONFIG_SI4_MODEL_SELF_CHECK 1\n")
    for source in listed:
        _run(["arm-none-eabi-gcc", *ZEPHYR_CORTEX_M4, "-imacros", autoconf, *(f"-I{library / path}" for path in includes),
              "-c", library / source, "-o", tmp_path / (Path(source).stem + ".o")])


# --------------------------------------------------------------------------- the CLI and bad input


def test_cli_export_and_export_again_into_the_same_folder(firmware_assets, tmp_path):
    out = tmp_path / "lib"
    first = run_si4tool("export", "--assets", str(firmware_assets), "--format", "cmake", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "export:" in first.stdout and (out / "CMakeLists.txt").is_file()
    again = run_si4tool("export", "--assets", str(firmware_assets), "--format", "zephyr", "--out", str(out), "--kernels", "portable")
    assert again.returncode == 0, again.stderr
    assert _marker(out)["format"] == "zephyr" and (out / "zephyr/module.yml").is_file()
    assert not (out / "cmake").exists()  # replaced as a whole, not merged


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--format", "makefile"], "unknown --format 'makefile': choose from cmake, arduino, zephyr, plain"),
        (["--kernels", "neon"], "unknown --kernels 'neon': choose from portable, dsp, auto"),
    ],
)
def test_bad_options_are_one_sentence_and_write_nothing(firmware_assets, tmp_path, arguments, message):
    out = tmp_path / "lib"
    result = run_si4tool("export", "--assets", str(firmware_assets), "--out", str(out), *arguments)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}"
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_an_export_is_left_alone(firmware_assets, tmp_path):
    out = tmp_path / "project"
    out.mkdir()
    (out / "main.c").write_text("int main(void) { return 0; }\n")
    result = run_si4tool("export", "--assets", str(firmware_assets), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not an earlier si4tool export" in result.stderr
    assert [path.name for path in out.iterdir()] == ["main.c"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["project"]  # no staging folder left behind


def test_missing_assets_are_one_sentence(tmp_path):
    result = run_si4tool("export", "--assets", str(tmp_path / "nothing"), "--out", str(tmp_path / "lib"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "build-firmware-assets" in result.stderr
    assert not (tmp_path / "lib").exists()
