"""The DSP convolution and fully connected kernels (issue 11): byte for byte with their portable
twins under QEMU on the MLPerf Tiny shape classes, and the DSP engine's code size.

Both need arm-none-eabi-gcc (with newlib) and qemu-system-arm; they skip without them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from si4tool.targets import qemu
from si4tool.targets.firmware import build_firmware
from si4tool.targets.toolchain import firmware_stub_dir

requires_qemu = pytest.mark.skipif(
    not qemu.toolchain_available(), reason="arm-none-eabi-gcc/newlib or qemu-system-arm missing"
)

# Issue 11: the generated model plus the kernels it links, DSP build, at most 12 KB per model.
ENGINE_CODE_LIMIT_BYTES = 12 * 1024


def _run_kernel_test(build_dir: Path, optimize: str) -> tuple[int, str]:
    """One run of the kernel-test firmware (DSP kernels and the portable ones renamed si4_ref_*)."""
    build = subprocess.run(
        ["make", "-C", str(firmware_stub_dir()), "mps2-kernel-test", f"BUILD={build_dir}", f"MPS2_OPT={optimize}"],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    return qemu.run_firmware(build_dir / "mps2_an386-kernel-test" / "kernel_test.elf", timeout=120)


@pytest.fixture(scope="module")
def kernel_test_output(tmp_path_factory) -> tuple[int, str]:
    return _run_kernel_test(tmp_path_factory.mktemp("dsp_conv"), "-O2")


@pytest.mark.qemu
@requires_qemu
def test_dsp_conv_and_fully_connected_match_portable_on_model_shapes(kernel_test_output):
    """Windows larger than the column block (chunked), 3-channel and 10x4 one-channel first layers,
    stride 2 with padding, pointwise layers with odd channels, fully connected with 1..13 rows
    (per-tensor whole-word layers through the fused dot-and-requantize loop, one bias beyond its bound
    per shape sending the rest of the rows the general way): each with and without bias and input
    offset, bit-exact."""
    status, output = kernel_test_output
    mismatches = [line for line in output.splitlines() if line.startswith("mismatch")]
    assert not mismatches, "\n".join(mismatches[:10])
    found = re.search(r"kernel-test model_shapes cases (\d+) mismatches (\d+)", output)
    assert found, output
    assert int(found.group(1)) >= 50 and int(found.group(2)) == 0
    # The random cases (odd widths, padding, stride 2, multiplier 0, shifts at both ends) ran too.
    summaries = dict(re.findall(r"kernel-test (\S+) cases (\d+) mismatches 0", output))
    assert {"requant_edges", "conv2d", "conv2d_max_pool", "fully_connected"} <= set(summaries), output
    assert status == 0 and "result PASS" in output


@pytest.mark.qemu
@requires_qemu
def test_dsp_few_channel_first_layers_match_portable(kernel_test_output):
    """The few-channel im2col path (1 to 4 input channels, windows up to 64 taps: 3x3, 5x5, 10x4, 8x8,
    stride 1 and 2, SAME and VALID, odd widths, output channels not multiples of 4, several filter
    blocks) with the fast requantization and without it (relu6-like clamp, multiplier 0, shifts -1,
    -2, -31, a left shift, a bias too large for it): bit-exact with the portable kernel."""
    _, output = kernel_test_output
    found = re.search(r"kernel-test few_channel cases (\d+) mismatches (\d+)", output)
    assert found, output
    assert int(found.group(1)) == 90 and int(found.group(2)) == 0, output


@pytest.mark.qemu
@requires_qemu
def test_dsp_kernels_match_portable_at_o0(tmp_path):
    """A debug build (-O0: no inlining, every value on the stack, the frame pointer in r7) gives the
    same bytes: the naked assembly loops keep the AAPCS whatever the caller's code looks like."""
    status, output = _run_kernel_test(tmp_path, "-O0")
    mismatches = [line for line in output.splitlines() if line.startswith("mismatch")]
    assert not mismatches, "\n".join(mismatches[:10])
    assert status == 0 and "result PASS" in output


@pytest.mark.qemu
@requires_qemu
def test_seed_dsp_engine_code_fits_12_kb(firmware_assets, tmp_path):
    """The seed model's engine in the DSP build: model.o as a product compiles it (no per-layer
    tables) and the kernels as linked (after --gc-sections, from the link map), cross-checked
    against arm-none-eabi-size of those objects."""
    elf = build_firmware(firmware_assets, tmp_path, "mps2_an386", "dsp", "-O2")
    memory = qemu.memory_report(elf, elf.with_suffix(".map"))
    engine = memory["flash_code_bytes"]
    assert 0 < engine <= ENGINE_CODE_LIMIT_BYTES, engine
    product_model = qemu.product_model_object(elf)
    symbols = subprocess.run(["arm-none-eabi-nm", str(product_model)], capture_output=True, text=True, check=True).stdout
    assert " si4_model_invoke_with_arena\n" in symbols and "si4_model_layer" not in symbols
    # The objects' own sizes bound the linked figure from above (gc-sections only removes code).
    objects = sorted(Path(elf.parent, "obj").glob("si4_*.o")) + [product_model]
    sizes = subprocess.run(["arm-none-eabi-size", *map(str, objects)], capture_output=True, text=True, check=True)
    linked_kernels = {"si4_conv2d_max_pool_s8.o", "si4_fully_connected_s8.o", "si4_softmax_s8.o", "model.o"}
    text_data = {Path(line.split()[-1]).name: int(line.split()[0]) + int(line.split()[1])
                 for line in sizes.stdout.splitlines()[1:]}
    assert linked_kernels <= set(text_data)
    assert sum(text_data[name] for name in linked_kernels) <= engine + 1024  # + libgcc helpers, rodata
