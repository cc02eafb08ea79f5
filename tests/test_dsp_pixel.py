"""si4_depthwise_conv2d_pixel_s8 (firmware_stub/kernels/{src,dsp}/si4_depthwise_conv2d_pixel_s8.c),
the entry point kws's `--memory small` computes its depthwise layers with, one pixel per call:
the DSP twin and the portable kernel against the whole-layer portable depthwise kernel, position by
position, byte for byte, under QEMU (platform/mps2_an386/tests/pixel_test.c, 300 seeded random
cases: 3x3 and other kernels, strides, dilation, depth multipliers, channels that are and are not
multiples of four, padding on every side, the requantization's extreme constants, no bias).
Built at -O2 and -O0. Needs arm-none-eabi-gcc (with newlib) and qemu-system-arm; skips without them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from si4tool.targets import qemu
from si4tool.targets.toolchain import firmware_stub_dir

CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _build(out: Path, optimize: str) -> Path:
    stub = firmware_stub_dir()
    out.mkdir(parents=True, exist_ok=True)
    engine = [*CPU, *STRICT, optimize, "-g", "-ffunction-sections", "-fdata-sections", f"-I{stub}",
              f"-I{stub}/kernels/include", f"-I{stub}/kernels/dsp"]  # fmt: skip
    platform = [*CPU, "-std=gnu99", "-Wall", "-Wextra", "-Werror", optimize, "-ffunction-sections",
                "-fdata-sections", f"-I{stub}", f"-I{stub}/platform/common"]  # fmt: skip
    board = stub / "platform/mps2_an386"
    compiles = [
        (engine + ["-Dsi4_depthwise_conv2d_s8=si4_ref_depthwise_conv2d_s8"],
         stub / "kernels/src/si4_depthwise_conv2d_s8.c", "ref_depthwise.o"),
        (engine + ["-Dsi4_depthwise_conv2d_pixel_s8=si4_ref_depthwise_conv2d_pixel_s8"],
         stub / "kernels/src/si4_depthwise_conv2d_pixel_s8.c", "ref_pixel.o"),
        (engine, stub / "kernels/dsp/si4_depthwise_conv2d_pixel_s8.c", "dsp_pixel.o"),
        (engine, board / "tests/pixel_test.c", "pixel_test.o"),
        (platform, board / "startup.c", "startup.o"),
        (platform, board / "platform_mps2.c", "platform_mps2.o"),
        (platform, stub / "platform/common/cortex_m_runtime.c", "cortex_m_runtime.o"),
    ]  # fmt: skip
    objects = []
    for flags, source, name in compiles:
        subprocess.run(["arm-none-eabi-gcc", *flags, "-c", str(source), "-o", str(out / name)],
                       check=True, capture_output=True, text=True)  # fmt: skip
        objects.append(str(out / name))
    elf = out / "pixel_test.elf"
    subprocess.run(["arm-none-eabi-gcc", *CPU, "-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs",
                    "-Wl,--gc-sections", "-T", str(board / "mps2_an386.ld"), *objects, "-o", str(elf)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    return elf


@pytest.mark.qemu
@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing")
@pytest.mark.parametrize("optimize", ["-O2", "-O0"])
def test_dsp_pixel_kernel_matches_the_whole_layer_under_qemu(tmp_path, optimize):
    try:
        elf = _build(tmp_path, optimize)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"build failed: {error.stderr}")
    status, output = qemu.run_firmware(elf, timeout=120)
    mismatches = [line for line in output.splitlines() if line.startswith("mismatch")]
    assert not mismatches, "\n".join(mismatches[:10])
    summary = re.search(r"pixel-test cases (\d+) mismatches (\d+)", output)
    assert summary, output
    assert int(summary.group(1)) == 300 and int(summary.group(2)) == 0
    assert "result PASS" in output
