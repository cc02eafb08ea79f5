"""The MLPerf Tiny reference models that use only operators si4tool lowers (kws: DS-CNN on a 49x10
spectrogram, vww: MobileNetV1 on 96x96 RGB, ad01: a [1, 640] FC autoencoder), end to end and
bit-exact with TensorFlow Lite Micro on seeded random int8 inputs:

- host: every output on 1,000 inputs, every layer's output on the first 20, the embedded vectors
  through the firmware stub;
- QEMU mps2-an386 (Cortex-M4): the firmware's self-check on 20 embedded vectors, portable and DSP
  kernels; the portable build must not need more instructions per inference than TFLite Micro's
  reference kernels on the same emulated board (issue 10's table);
- the `--memory small` schedule (issue 12: the smallest arena the planner builds within 1.3x
  fast's estimated instructions, in place or streamed) under QEMU too, both kernel builds, on a
  few vectors.

The models are in <repo>/../shared/models/mlperf_tiny/ (see its README); the tests skip when it is
absent. ResNet-8 needs ADD over a graph and is not covered here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from si4tool.frontend.inputs import random_int8

MLPERF_DIR = Path(__file__).resolve().parents[1].parent / "shared/models/mlperf_tiny"
# Random inputs per model on the host: TFLite Micro's Python runtime takes about 20 ms per
# ResNet-8 or vww inference, so those two run 300 (the QEMU, schedule and intermediate checks add more).
HOST_INPUTS = {"kws": 1000, "ad01": 1000, "resnet8": 300, "vww": 300}
INTERMEDIATE_INPUTS = 20
QEMU_VECTORS = 20
SMALL_SCHEDULE_VECTORS = 2  # the self-check of --memory small: exactness per vector, few vectors keep it fast

pytestmark = pytest.mark.skipif(
    not MLPERF_DIR.is_dir(), reason=f"MLPerf Tiny models not found at {MLPERF_DIR} (the shared folder beside the repository)"
)


@dataclass(frozen=True)
class TinyModel:
    file: str
    input_shape: tuple[int, ...]
    output_size: int
    layers: int  # C layers after the passes (each compared with TFLite Micro's tensor)
    default_vectors: int  # from the 256 KiB flash budget: (input + output + 1) bytes per vector
    tflm_reference_instructions: int  # issue 10: TFLite Micro, reference kernels, QEMU mps2-an386


MODELS = {
    "kws": TinyModel("kws_ref_model.tflite", (49, 10, 1), 12, 12, 250, 43_040_000),
    "vww": TinyModel("vww_96_int8.tflite", (96, 96, 3), 2, 30, 9, 100_250_000),
    "ad01": TinyModel("ad01_int8.tflite", (640,), 640, 10, 204, 1_950_000),
    # ResNet-8: three residual ADDs, lowered through the graph IR.
    "resnet8": TinyModel("pretrainedResnet_quant.tflite", (32, 32, 3), 10, 15, 85, 107_400_000),
}


@pytest.fixture(scope="module")
def tiny_assets(tmp_path_factory):
    """Assets per (model, vector count), built once for the module."""
    from si4tool.assets import build_firmware_assets

    built: dict[tuple[str, int | None, str], Path] = {}
    root = tmp_path_factory.mktemp("mlperf_tiny")
    cache = root / "cache"

    def get(name: str, vectors: int | None = None, memory: str = "fast") -> Path:
        key = (name, vectors, memory)
        if key not in built:
            out = root / f"{name}_{vectors or 'default'}_{memory}" / "assets"
            build_firmware_assets(out, model_path=MLPERF_DIR / MODELS[name].file, vectors=vectors, seed=0,
                                  cache_dir=cache, quiet=True, memory=memory)
            built[key] = out
        return built[key]

    return get


@pytest.mark.parametrize("name", sorted(MODELS))
def test_assets_take_the_models_shapes_and_random_inputs(tiny_assets, name):
    model = MODELS[name]
    assets = tiny_assets(name)
    manifest = json.loads((assets / "manifest.json").read_text())
    assert manifest["quantization"]["input"]["shape"] == list(model.input_shape)
    assert int(np.prod(manifest["quantization"]["output"]["shape"])) == model.output_size
    assert manifest["inputs"]["kind"] == "random" and manifest["inputs"]["seed"] == 0
    assert manifest["test_vectors"] == model.default_vectors
    assert manifest["accuracy"]["int8_tflm"] is None and manifest["data"] is None
    header = (assets / "test_vectors.h").read_text()
    size = int(np.prod(model.input_shape))
    assert f"#define SI4_TEST_VECTOR_COUNT {model.default_vectors}\n" in header
    assert f"#define SI4_TEST_VECTOR_INPUT_SIZE {size}\n" in header
    assert f"#define SI4_TEST_VECTOR_OUTPUT_SIZE {model.output_size}\n" in header
    assert "#define SI4_TEST_VECTOR_HAS_LABELS 0\n" in header
    # The embedded inputs are the head of the seeded stream validate-host regenerates.
    body = (assets / "test_vectors.c").read_text()
    first = body[body.index("/* 0 */") + len("/* 0 */") : body.index("},")]
    values = [int(v) for v in first.replace(",", " ").split()]
    assert values == random_int8(model.input_shape, 1, seed=0).reshape(-1).tolist()
    model_h = (assets / "model.h").read_text()
    assert f"#define SI4_MODEL_INPUT_SIZE {size}\n" in model_h


# Issue 11's code size: each CONV_2D calls the kernel of its shape class, so a model links only the
# DSP paths it runs (the first layer few channels, pointwise layers 1x1, 3x3 layers the general one).
CONV_KERNELS = {
    "kws": {"si4_conv2d_few_channels_s8": 1, "si4_conv2d_1x1_s8": 4},
    "vww": {"si4_conv2d_few_channels_s8": 1, "si4_conv2d_1x1_s8": 13},
    "ad01": {},
    "resnet8": {"si4_conv2d_few_channels_s8": 1, "si4_conv2d_s8": 6, "si4_conv2d_1x1_s8": 2},
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_convolution_calls_its_shape_class_kernel(tiny_assets, name):
    import re

    model_c = (tiny_assets(name) / "model.c").read_text()
    calls = re.findall(r"\b(si4_conv2d\w*_s8)\(", model_c)
    assert {kernel: calls.count(kernel) for kernel in set(calls)} == CONV_KERNELS[name]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_host_bit_exact_on_random_inputs_and_every_intermediate_on_20(tiny_assets, name, tmp_path, monkeypatch):
    from si4tool.validation import reference
    from si4tool.validation.validate import validate_host

    model = MODELS[name]

    # LiteRT is a secondary reference (agreement only) and half the run time on vww: not run here.
    def litert_not_run(*args, **kwargs):
        raise RuntimeError("not run by this test")

    monkeypatch.setattr(reference, "litert_outputs", litert_not_run)
    result = validate_host(
        tiny_assets(name), out_dir=tmp_path / "validation", build_dir=tmp_path / "build", cache_dir=tmp_path / "cache",
        images=HOST_INPUTS[name], quiet=True,
    )
    assert result.images == HOST_INPUTS[name]
    assert result.bit_exact == HOST_INPUTS[name], result.failures
    check = result.intermediates
    assert check["inputs"] == INTERMEDIATE_INPUTS and check["layers"] == model.layers
    assert check["tensors_identical"] == check["tensors"] == INTERMEDIATE_INPUTS * model.layers, check["first_difference"]
    assert result.firmware.bit_exact == result.firmware.vectors == model.default_vectors
    assert result.firmware.correct is None and result.c_accuracy is None
    assert result.inputs["kind"] == "random" and result.inputs["seed"] == 0
    # Fair memory comparison: TFLite Micro's arena holds its input tensor, ours reads the caller's buffer.
    assert result.arena_bytes + int(np.prod(model.input_shape)) < result.tflm_arena_bytes
    assert result.passed, result.failures
    saved = json.loads((tmp_path / "validation" / "host.json").read_text())
    assert saved["intermediates"] == check


@pytest.mark.qemu
@pytest.mark.parametrize("name", sorted(MODELS))
def test_qemu_self_check_on_20_vectors_both_kernel_variants(tiny_assets, name, tmp_path):
    from si4tool.targets import qemu

    if not qemu.toolchain_available():
        pytest.skip("arm-none-eabi-gcc/newlib or qemu-system-arm missing")
    model = MODELS[name]
    result = qemu.validate_qemu(
        tiny_assets(name, QEMU_VECTORS), out_dir=tmp_path / "validation", build_dir=tmp_path / "qemu",
        kernels=("portable", "dsp"), quiet=True,
    )
    runs = {run.kernel: run for run in result.runs}
    assert set(runs) == {"portable", "dsp"}
    for run in runs.values():
        assert run.vectors == QEMU_VECTORS and run.bit_exact == QEMU_VECTORS, run.mismatched_vectors
        assert run.correct is None and run.accuracy is None
    assert runs["portable"].instructions_per_inference < model.tflm_reference_instructions


def test_user_inputs_with_labels_give_accuracy_and_the_same_bit_exactness(tmp_path, monkeypatch):
    """--inputs PATH: float32 inputs in model units with labels, on kws; a LiteRT that cannot run the
    model is reported as skipped and the validation goes on (TFLite Micro decides)."""
    from si4tool.assets import build_firmware_assets
    from si4tool.validation import reference
    from si4tool.validation.validate import validate_host

    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 20.0, size=(30, 49, 10, 1)).astype(np.float32)
    y = rng.integers(0, 12, size=30)
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    assets = tmp_path / "assets"
    built = build_firmware_assets(
        assets, model_path=MLPERF_DIR / MODELS["kws"].file, inputs_spec=tmp_path / "mine.npz", cache_dir=tmp_path / "cache", quiet=True
    )
    assert built.manifest.inputs["kind"] == "file" and built.manifest.inputs["name"] == "mine.npz"
    assert built.manifest.test_vectors == 30
    assert 0.0 <= built.manifest.accuracy["int8_tflm"] <= 1.0
    assert "#define SI4_TEST_VECTOR_HAS_LABELS 1" in (assets / "test_vectors.h").read_text()

    def litert_rejects(*args, **kwargs):
        raise RuntimeError("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'")

    monkeypatch.setattr(reference, "litert_outputs", litert_rejects)
    result = validate_host(
        assets, out_dir=tmp_path / "validation", build_dir=tmp_path / "build", cache_dir=tmp_path / "cache",
        quiet=True, inputs_spec=tmp_path / "mine.npz",
    )
    assert result.litert["default"] == {"skipped": "RuntimeError: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'"}
    assert result.bit_exact == 30 and result.intermediates["tensors_identical"] == 20 * MODELS["kws"].layers
    assert result.c_accuracy == result.tflm_accuracy == built.manifest.accuracy["int8_tflm"]
    assert result.firmware.correct == round(result.c_accuracy * 30)
    assert result.passed, result.failures


@pytest.mark.qemu
@pytest.mark.parametrize("name", sorted(MODELS))
def test_qemu_self_check_of_the_small_schedule_both_kernel_variants(tiny_assets, name, tmp_path):
    from si4tool.targets import qemu

    if not qemu.toolchain_available():
        pytest.skip("arm-none-eabi-gcc/newlib or qemu-system-arm missing")
    assets = tiny_assets(name, SMALL_SCHEDULE_VECTORS, memory="small")
    memory = json.loads((assets / "manifest.json").read_text())["memory"]
    chosen = next(candidate for candidate in memory["candidates"] if candidate["schedule"] == memory["schedule"])
    assert memory["choice"] == "small"
    if memory["schedule"] == memory["candidates"][0]["schedule"]:
        pytest.skip(f"{name}'s small schedule is fast's ({memory['schedule']}): the 20-vector test runs it")
    result = qemu.validate_qemu(
        assets, out_dir=tmp_path / "validation", build_dir=tmp_path / "qemu", kernels=("portable", "dsp"), quiet=True,
    )
    runs = {run.kernel: run for run in result.runs}
    assert set(runs) == {"portable", "dsp"}
    for run in runs.values():
        assert run.vectors == SMALL_SCHEDULE_VECTORS and run.bit_exact == SMALL_SCHEDULE_VECTORS, (
            memory["schedule"], run.kernel, run.mismatched_vectors,
        )
        assert run.arena_bytes == chosen["arena_bytes"]  # the board ran the small schedule's engine, not fast's
