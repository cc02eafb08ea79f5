"""The DSP depthwise kernel (firmware_stub/kernels/dsp/si4_depthwise_conv2d_s8.c) against its
portable twin, byte for byte, under QEMU (Cortex-M4, mps2-an386); the DSP average pool and add too.

One firmware holds both kernels (the portable one compiled with its function renamed
si4_ref_depthwise_conv2d_s8) and runs a few hundred seeded random cases in one go
(platform/mps2_an386/tests/depthwise_test.c): 3x3 stride 1 and 2, other kernels, dilation,
depth multipliers, channels 1, 3, 5, 8, 64 and more, odd widths, padding on every side,
multiplier 0 and INT32_MIN, right shifts 0..31, left shifts, no bias. It is built at -O2 and at
-O0 (the DSP kernels must stay exact at every level).

Needs arm-none-eabi-gcc (with newlib) and qemu-system-arm; skips without them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from si4tool.targets import qemu
from si4tool.targets.toolchain import firmware_stub_dir

requires_qemu = pytest.mark.skipif(
    not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing"
)

CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _build_depthwise_test(out: Path, optimize: str) -> Path:
    """Compiles and links the two-kernel test firmware the way board.mk links the boards."""
    stub = firmware_stub_dir()
    out.mkdir(parents=True, exist_ok=True)
    engine = [*CPU, *STRICT, optimize, "-g", "-ffunction-sections", "-fdata-sections", f"-I{stub}", f"-I{stub}/kernels/include"]
    platform = [*CPU, "-std=gnu99", "-Wall", "-Wextra", "-Werror", optimize, "-ffunction-sections", "-fdata-sections",
                f"-I{stub}", f"-I{stub}/platform/common"]
    board = stub / "platform/mps2_an386"
    compiles = [
        (engine + ["-Dsi4_depthwise_conv2d_s8=si4_ref_depthwise_conv2d_s8"],
         stub / "kernels/src/si4_depthwise_conv2d_s8.c", "ref_depthwise.o"),
        (engine, stub / "kernels/dsp/si4_depthwise_conv2d_s8.c", "dsp_depthwise.o"),
        (engine + ["-Dsi4_avg_pool_s8=si4_ref_avg_pool_s8"], stub / "kernels/src/si4_avg_pool_s8.c", "ref_avg_pool.o"),
        (engine, stub / "kernels/dsp/si4_avg_pool_s8.c", "dsp_avg_pool.o"),
        (engine + ["-Dsi4_add_s8=si4_ref_add_s8"], stub / "kernels/src/si4_add_s8.c", "ref_add.o"),
        (engine, stub / "kernels/dsp/si4_add_s8.c", "dsp_add.o"),
        (engine, board / "tests/depthwise_test.c", "depthwise_test.o"),
        (platform, board / "startup.c", "startup.o"),
        (platform, board / "platform_mps2.c", "platform_mps2.o"),
        (platform, stub / "platform/common/cortex_m_runtime.c", "cortex_m_runtime.o"),
    ]
    objects = []
    for flags, source, name in compiles:
        subprocess.run(["arm-none-eabi-gcc", *flags, "-c", str(source), "-o", str(out / name)],
                       check=True, capture_output=True, text=True)
        objects.append(str(out / name))
    elf = out / "depthwise_test.elf"
    subprocess.run(["arm-none-eabi-gcc", *CPU, "-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs",
                    "-Wl,--gc-sections", "-T", str(board / "mps2_an386.ld"), *objects, "-o", str(elf)],
                   check=True, capture_output=True, text=True)
    return elf


@pytest.mark.qemu
@requires_qemu
@pytest.mark.parametrize("optimize", ["-O2", "-O0"])
def test_dsp_depthwise_matches_portable_under_qemu(tmp_path, optimize):
    try:
        elf = _build_depthwise_test(tmp_path, optimize)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"build failed: {error.stderr}")
    status, output = qemu.run_firmware(elf, timeout=120)
    mismatches = [line for line in output.splitlines() if line.startswith("mismatch")]
    assert not mismatches, "\n".join(mismatches[:10])
    summary = re.search(r"depthwise-test cases (\d+) mismatches (\d+) fast (\d+)", output)
    assert summary, output
    cases, failed, fast = (int(group) for group in summary.groups())
    assert cases >= 300 and failed == 0
    assert fast >= 100  # most cases take the 3x3 channel-group path, not the fallback
    pool = re.search(r"avg-pool-test cases (\d+) mismatches (\d+)", output)
    assert pool and int(pool.group(1)) >= 150 and int(pool.group(2)) == 0, output
    add = re.search(r"add-test cases (\d+) mismatches (\d+) tables (\d+)", output)
    assert add and int(add.group(1)) >= 150 and int(add.group(2)) == 0, output
    assert int(add.group(3)) >= 50, output  # the DSP add's table path (64+ elements, right shifts 1..23)
    assert status == 0 and "result PASS" in output
