"""The Cortex-M firmware under QEMU: DSP kernels vs portable kernels, the instruction counter,
portability builds, and the whole firmware bit-exact on the embedded vectors.

Tests marked `qemu` need arm-none-eabi-gcc (with newlib) and qemu-system-arm; they skip
when those are missing (`sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi
qemu-system-arm`). The parser tests run everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from si4tool.artefacts import QemuValidation
from si4tool.errors import UserError
from si4tool.targets import qemu
from si4tool.targets.firmware import parse_firmware_output
from si4tool.targets.toolchain import firmware_stub_dir

requires_qemu = pytest.mark.skipif(
    not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing"
)


def _make(target: str, build_dir: Path, *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(firmware_stub_dir()), target, f"BUILD={build_dir}", *variables],
        capture_output=True, text=True, timeout=300,
    )


# --------------------------------------------------------------------------- parsing (no toolchain needed)

BOARD_OUTPUT = """\
si4 model 38cb02a2 layers 3 vectors 3 counter instructions
vector 0 label 7 predicted 7 exact 1 count 4471880
layers 0 871400 3098180 502300
vector 1 label 2 predicted 1 exact 0 count 4471920
layers 1 871440 3098200 502280
vector 2 label 1 predicted 1 exact 1 count 4471800
layers 2 871400 3098160 502240
accuracy 2/3 66.66%
bit-exact 2/3
arena 7008 bytes
inference min 4471800 max 4471920 mean 4471866 instructions
stack 1140 bytes
result FAIL
"""


def test_parse_board_output_reads_every_summary_line():
    board = parse_firmware_output(BOARD_OUTPUT)
    assert board.counter_unit == "instructions"
    assert board.model_sha256_short == "38cb02a2"
    assert (board.vectors, board.correct, board.bit_exact) == (3, 2, 2)
    assert board.counts == [4471880, 4471920, 4471800]
    assert board.mismatched_vectors == [1]
    assert board.layer_counts[1] == [871440, 3098200, 502280]
    assert (board.arena_bytes, board.stack_bytes, board.result) == (7008, 1140, "FAIL")
    assert board.fault is None


def test_parse_board_output_reports_a_fault():
    from si4tool.errors import ValidationFailed

    board = parse_firmware_output("si4 model x layers 1 vectors 1 counter instructions\n"
                                  "FAULT pc 0x00000123 lr 0x00000456 cfsr 0x00000400 hfsr 0x40000000 bfar 0x0\n")
    assert board.fault and board.fault.startswith("FAULT pc 0x00000123")
    with pytest.raises(ValidationFailed, match="the board crashed: FAULT pc 0x00000123"):
        board.check_complete("the board")


def test_parse_vectors_without_labels():
    board = parse_firmware_output(
        "si4 model ab layers 2 vectors 1 counter instructions\n"
        "vector 0 label - predicted 3 exact 1 count 500\n"
        "accuracy n/a (no labels)\nbit-exact 1/1\narena 64 bytes\nresult PASS\n"
    ).check_complete("the board")
    assert (board.correct, board.vectors, board.bit_exact, board.counts, board.passed) == (None, 1, 1, [500], True)


MAP_SNIPPET = """\
Discarded input sections

 .text.unused   0x00000000       0x40 /b/obj/si4_conv2d_s8.o

Linker script and memory map

.text           0x00000000     0x1000
 *(.text .text.*)
 .text.si4_fully_connected_s8
                0x00000100      0x250 /b/obj/si4_fully_connected_s8.o
 .text          0x00000350      0x100 /usr/lib/libc_nano.a(lib_a-printf.o)
 .text.main     0x00000450       0x80 /b/obj/main.o

.rodata         0x00001000    0x20000
 .rodata.conv2d_0_filter
                0x00001000    0x10000 /b/obj/model_weights.o
 .rodata.si4_test_inputs
                0x00011000     0x8000 /b/obj/test_vectors.o
 .rodata.params 0x00019000       0x40 /b/obj/model.o

.data           0x20000000       0x10 load address 0x00021000
 .data.state    0x20000000       0x10 /b/obj/platform_mps2.o

.bss            0x20000010     0x1b60 load address 0x00021010
 .bss.si4_model_arena
                0x20000010     0x1b60 /b/obj/model.o
"""


def test_map_sections_are_charged_to_their_objects(tmp_path):
    map_path = tmp_path / "x.map"
    map_path.write_text(MAP_SNIPPET)
    sections = qemu.map_sections_by_object(map_path)
    assert sections["si4_fully_connected_s8.o"] == {".text": 0x250}
    assert "si4_conv2d_s8.o" not in sections  # discarded by --gc-sections
    assert sections["model_weights.o"] == {".rodata": 0x10000}
    assert sections["test_vectors.o"] == {".rodata": 0x8000}
    assert sections["model.o"] == {".rodata": 0x40, ".bss": 0x1B60}
    assert sections["libc_nano.a(lib_a-printf.o)"] == {".text": 0x100}
    assert sections["platform_mps2.o"] == {".data": 0x10}


def test_a_failing_binutils_call_is_an_error_not_zero(tmp_path):
    not_an_elf = tmp_path / "x.elf"
    not_an_elf.write_bytes(b"not an ELF")
    if shutil.which("arm-none-eabi-nm") is None:
        pytest.skip("arm-none-eabi-nm missing")
    with pytest.raises(qemu.BinutilsError, match="arm-none-eabi-nm failed"):
        qemu.symbol_size(not_an_elf, qemu.ARENA_SYMBOL)
    with pytest.raises(qemu.BinutilsError, match="arm-none-eabi-size failed"):
        qemu.image_bytes(not_an_elf)


def test_missing_toolchain_names_the_apt_packages(monkeypatch):
    monkeypatch.setattr(qemu.shutil, "which", lambda tool: None)
    with pytest.raises(UserError, match="apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"):
        qemu.check_toolchain()


# --------------------------------------------------------------------------- under QEMU


@pytest.mark.qemu
@requires_qemu
def test_missing_assets_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="build-firmware-assets"):
        qemu.validate_qemu(tmp_path / "nothing", out_dir=tmp_path / "validation", build_dir=tmp_path / "build")


@pytest.mark.qemu
@requires_qemu
def test_timer_counts_one_per_instruction(tmp_path):
    """An assembly loop of 2 instructions per iteration, measured by platform_counter_read()."""
    build = _make("mps2-counter-test", tmp_path)
    assert build.returncode == 0, build.stderr
    status, output = qemu.run_firmware(tmp_path / "mps2_an386-counter-test" / "counter_test.elf", timeout=60)
    assert status == 0, output
    assert "counter unit instructions" in output
    loops = [tuple(int(v) for v in match) for match in
             re.findall(r"loop (\d+) instructions (\d+) measured (\d+)", output)]
    assert len(loops) >= 4
    for _, expected, measured in loops:
        # the two counter reads cost a constant few dozen instructions; counts move in ticks of 40
        assert -40 <= measured - expected <= 120, (expected, measured)
    (_, expected_small, measured_small), (_, expected_large, measured_large) = loops[0], loops[-1]
    # one count per instruction, exactly: the difference of two runs is off by at most one tick
    assert abs((measured_large - measured_small) - (expected_large - expected_small)) <= 40


@pytest.mark.qemu
@requires_qemu
def test_dsp_kernels_match_portable_kernels_under_qemu(tmp_path):
    """Seeded random shapes of conv, conv+max-pool, fully connected and max pool, byte for byte."""
    build = _make("mps2-kernel-test", tmp_path)
    assert build.returncode == 0, build.stderr
    status, output = qemu.run_firmware(tmp_path / "mps2_an386-kernel-test" / "kernel_test.elf", timeout=120)
    mismatches = [line for line in output.splitlines() if line.startswith("mismatch")]
    assert not mismatches, "\n".join(mismatches[:10])
    summaries = dict(re.findall(r"kernel-test (\S+) cases (\d+) mismatches 0", output))
    assert set(summaries) >= {"seed_shapes", "conv2d", "conv2d_max_pool", "fully_connected", "max_pool"}, output
    assert all(int(count) >= 3 for count in summaries.values())
    assert status == 0 and "result PASS" in output


@pytest.mark.qemu
@requires_qemu
@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m7"])
def test_kernels_compile_for_other_cores_with_warnings_as_errors(tmp_path, core):
    """Portable and DSP kernel files (the latter fall back without the DSP extension), -Wall -Wextra -Werror."""
    build = _make(core, tmp_path)
    assert build.returncode == 0, build.stderr + build.stdout
    objects = list((tmp_path / core).glob("*.o"))
    assert any(path.name.startswith("dsp_") for path in objects)
    assert any(path.name.startswith("src_") for path in objects)


@pytest.mark.qemu
@requires_qemu
def test_firmware_is_bit_exact_on_the_embedded_vectors(firmware_assets, seed_qemu_validation):
    """Both kernel variants on the Cortex-M4, every vector bit-exact with TFLite Micro; figures reported."""
    manifest = json.loads((firmware_assets / "manifest.json").read_text())
    result = QemuValidation.read(seed_qemu_validation / "qemu.json")  # validate_qemu's result (conftest)
    assert qemu.failures(result) is None
    assert result.model_sha256 == manifest["int8_model"]["sha256"]
    assert [run.kernel for run in result.runs] == ["portable", "dsp"]
    for run in result.runs:
        assert run.target == "mps2_an386" and run.counter_unit == "instructions"
        assert run.vectors == 250 and run.bit_exact == 250
        assert [entry["layer"] for entry in run.instructions_per_layer] == [layer["name"] for layer in manifest["layers"]]
        assert all(count > 0 for count in run.layer_instructions)
        # The layers are the inference: their counts add up to it, up to the counter's reads and 40-instruction ticks.
        assert abs(sum(run.layer_instructions) - run.instructions_per_inference) <= 0.01 * run.instructions_per_inference
        assert run.arena_bytes == 7008 and run.stack_bytes > 0
        assert run.ram_bytes == run.arena_bytes + run.stack_bytes + run.engine_static_bytes
        assert run.flash_weights_bytes > 0 and run.flash_vectors_bytes > 0 and run.flash_code_bytes > 0
        assert run.flash_bytes == (run.flash_weights_bytes + run.flash_vectors_bytes
                                   + run.flash_code_bytes + run.flash_platform_bytes)
    portable, dsp = result.runs
    assert portable.correct == dsp.correct
    # The seed architecture's figures (weights differ per training run, counts barely): DSP 2.50 M
    # (issue 11's target: at most 2.6 M), portable 7.95 M (issue 11's target: at most 8.0 M).
    assert 2.4e6 <= dsp.instructions_per_inference <= 2.6e6
    assert 7.7e6 <= portable.instructions_per_inference <= 8.0e6


@pytest.mark.qemu
@requires_qemu
def test_a_wrong_expected_output_fails_validation(firmware_assets, tmp_path):
    """The firmware really compares: corrupt one expected output byte, the run must report the vector."""
    corrupted = tmp_path / "assets"
    shutil.copytree(firmware_assets, corrupted)
    vectors_c = corrupted / "test_vectors.c"
    text = vectors_c.read_text()
    start = text.index("si4_test_expected_outputs")
    match = re.compile(r"-?\d+").search(text, text.index("{", start) + 1)
    value = int(match.group(0))
    text = text[: match.start()] + str(value - 1 if value > -128 else value + 1) + text[match.end():]
    vectors_c.write_text(text)
    result = qemu.validate_qemu(corrupted, out_dir=tmp_path / "validation", build_dir=tmp_path / "build",
                                kernels=("dsp",), quiet=True)
    assert "differ from TFLite Micro" in qemu.failures(result)
    run = QemuValidation.read(tmp_path / "validation" / "qemu.json").runs[0]
    assert run.bit_exact == run.vectors - 1 and run.mismatched_vectors == [0]


@pytest.mark.qemu
@requires_qemu
def test_nucleo_port_builds(firmware_assets, tmp_path):
    """The real-board port (not run here) links for the STM32F446RE and fits its 512 KB flash."""
    assets = firmware_assets
    build = _make("nucleo-f446re", tmp_path, "KERNELS=dsp", f"ASSETS={assets.resolve()}")
    assert build.returncode == 0, build.stderr + build.stdout
    image = tmp_path / "nucleo_f446re-dsp" / "si4_firmware.bin"
    assert 0 < image.stat().st_size <= 512 * 1024
