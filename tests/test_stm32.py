"""The STM32F4 platform layer: run under QEMU's netduinoplus2 (STM32F405) with its output on
USART1, bit-exact on the embedded vectors, and built unchanged for the NUCLEO-F446RE.

Needs arm-none-eabi-gcc (with newlib) and qemu-system-arm; skips without them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import run_si4tool

from si4tool.artefacts import Manifest
from si4tool.targets import qemu
from si4tool.targets.toolchain import firmware_stub_dir

requires_qemu = pytest.mark.skipif(
    not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing"
)
pytestmark = [pytest.mark.qemu, requires_qemu]

# The shared layer: every STM32F4 board links these, and only its stm32_board.h and MEMORY differ.
SHARED_PLATFORM_OBJECTS = {"stm32f4_startup.o", "stm32f4_platform.o", "cortex_m_runtime.o"}


def _make(target: str, assets: Path, build: Path, kernel: str) -> None:
    result = subprocess.run(
        ["make", "-C", str(firmware_stub_dir()), target, f"KERNELS={kernel}", f"ASSETS={assets}", f"BUILD={build}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, (result.stderr + result.stdout)[-2000:]


def _linked_objects(map_path: Path) -> set[str]:
    return {name for name in qemu.map_sections_by_object(map_path) if name.endswith(".o") and "(" not in name}


@pytest.fixture(scope="module")
def netduino_runs(firmware_assets, tmp_path_factory):
    """`si4tool validate-qemu --target netduinoplus2` for both kernel variants, as a user runs it."""
    out = tmp_path_factory.mktemp("netduino_validation")
    build = tmp_path_factory.mktemp("netduino_build")  # --build-dir: not the checkout's build/qemu
    result = run_si4tool(
        "validate-qemu", "--assets", str(firmware_assets), "--target", "netduinoplus2", "--kernels", "portable,dsp",
        "--out", str(out), "--build-dir", str(build), "--no-report", "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])["runs"]
    assert json.loads((out / "qemu.json").read_text())["runs"] == runs
    assert all(Path(run["elf"]).is_relative_to(build) for run in runs)
    return {run["kernel"]: run for run in runs}


@pytest.mark.parametrize("kernel", ["portable", "dsp"])
def test_netduinoplus2_is_bit_exact_over_its_usart(netduino_runs, firmware_assets, kernel):
    run = netduino_runs[kernel]
    manifest = json.loads((firmware_assets / "manifest.json").read_text())
    assert run["target"] == "netduinoplus2" and run["machine"] == "netduinoplus2"
    assert (run["vectors"], run["bit_exact"], run["exit_status"]) == (250, 250, 0)
    assert run["counter_unit"] == "instructions"
    assert run["arena_bytes"] == manifest["totals"]["arena_bytes"]
    assert run["model_sha256_short"] == manifest["int8_model"]["sha256"][:8]
    # What QEMU printed came from the USART: no semihosting stdio is linked (and see the -serial none test).
    output = (Path(run["elf"]).parent / "qemu_output.txt").read_text()
    assert output.rstrip().endswith("result PASS")
    symbols = subprocess.run(["arm-none-eabi-nm", run["elf"]], capture_output=True, text=True).stdout
    assert "initialise_monitor_handles" not in symbols and " _write" in symbols


def test_netduinoplus2_counts_the_instructions_mps2_counts(netduino_runs, firmware_assets, tmp_path):
    """SysTick at 168 MHz under -icount shift=0 (125/21 instructions a tick) against the MPS2 timer
    (40 a tick): the same engine code, so the same instructions per inference to within both
    counters' resolution and the few SysTick interrupts."""
    manifest = Manifest.read(firmware_assets / "manifest.json")
    mps2 = qemu.run_variant(firmware_assets, tmp_path, manifest, "portable", "mps2_an386").to_dict()
    netduino = netduino_runs["portable"]
    assert mps2["bit_exact"] == 250
    assert abs(netduino["instructions_per_inference"] - mps2["instructions_per_inference"]) <= 200
    assert netduino["flash_code_bytes"] == mps2["flash_code_bytes"]
    for ours, theirs in zip(netduino["instructions_per_layer"], mps2["instructions_per_layer"]):
        assert abs(ours["instructions"] - theirs["instructions"]) <= 100, ours["layer"]


def test_without_a_serial_port_nothing_is_printed(netduino_runs):
    """The output is the USART's: with QEMU's -serial none the firmware still runs and exits
    through semihosting, but prints nothing."""
    elf = netduino_runs["dsp"]["elf"]
    command = [part if part != "stdio" else "none" for part in qemu.qemu_command(Path(elf), "netduinoplus2")]
    assert "none" in command
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    assert "bit-exact" not in result.stdout


@pytest.mark.parametrize("kernel", ["portable", "dsp"])
def test_nucleo_f446re_builds_from_the_same_platform_code(firmware_assets, netduino_runs, tmp_path, kernel):
    _make("nucleo-f446re", firmware_assets, tmp_path, kernel)
    folder = tmp_path / f"nucleo_f446re-{kernel}"
    nucleo = _linked_objects(folder / "si4_firmware.map")
    netduino = _linked_objects(Path(netduino_runs[kernel]["elf"]).with_suffix(".map"))
    assert SHARED_PLATFORM_OBJECTS <= nucleo
    assert nucleo == netduino
    binary = (folder / "si4_firmware.bin").read_bytes()
    # The vector table: initial stack at the top of the F446's 128 KB SRAM, reset handler in flash (Thumb bit set).
    assert int.from_bytes(binary[0:4], "little") == 0x20000000 + 128 * 1024
    reset = int.from_bytes(binary[4:8], "little")
    assert 0x08000000 <= reset < 0x08000000 + 512 * 1024 and reset & 1
