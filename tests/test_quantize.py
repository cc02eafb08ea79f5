"""Stage 4 and the reference runners: the int8 model is fully integer, stays within 0.5 pp
of its float parent under TensorFlow Lite Micro, and the input quantization is TFLite's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from si4tool.frontend.data import normalize
from si4tool.errors import UserError
from si4tool.frontend.quantize import (
    check_fully_int8,
    input_quantization,
    operator_list,
    output_quantization,
    quantize_input,
    quantize_model,
)
from si4tool.validation.reference import keras_outputs, litert_outputs, tflm_arena_bytes, tflm_outputs

ACCURACY_IMAGES = 2000
SEED_OPERATORS = [
    "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE",
    "FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX",
]


@pytest.fixture(scope="module")
def test_images_int8(mnist, seed_int8_tflite):
    return quantize_input(normalize(mnist.x_test[:ACCURACY_IMAGES]), *input_quantization(seed_int8_tflite))


def test_int8_model_has_int8_input_output_and_integer_ops_only(seed_int8_tflite):
    from ai_edge_litert.interpreter import Interpreter

    check_fully_int8(seed_int8_tflite)
    interpreter = Interpreter(model_content=seed_int8_tflite)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 28, 28, 1]
    # The batch-1 export turns Flatten into one plain RESHAPE (no SHAPE/STRIDED_SLICE/PACK).
    assert operator_list(seed_int8_tflite) == SEED_OPERATORS
    for tensor in interpreter.get_tensor_details():
        assert tensor["dtype"] in (np.int8, np.int32), tensor["name"]
    conv_weights = [t for t in interpreter.get_tensor_details() if t["dtype"] == np.int8 and len(t["shape"]) == 4
                    and t["shape"][0] in (32, 64) and t["shape"][1] == 3]
    assert conv_weights and all(len(t["quantization_parameters"]["scales"]) == t["shape"][0] for t in conv_weights)


def test_input_and_output_quantization(seed_int8_tflite):
    scale, zero_point = input_quantization(seed_int8_tflite)
    # [0, 1] inputs map onto the full int8 range.
    assert scale == pytest.approx(1 / 255, rel=1e-6) and zero_point == -128
    assert output_quantization(seed_int8_tflite) == (1 / 256, -128)  # TFLite's fixed softmax output


def test_int8_accuracy_within_half_a_point_of_float(mnist, trained_seed_model, seed_int8_tflite, test_images_int8,
                                                     reference_cache_dir):
    labels = mnist.y_test[:ACCURACY_IMAGES]
    float_accuracy = np.mean(keras_outputs(trained_seed_model, normalize(mnist.x_test[:ACCURACY_IMAGES])).argmax(1) == labels)
    int8_outputs = tflm_outputs(seed_int8_tflite, test_images_int8, cache_dir=reference_cache_dir, quiet=True)
    assert int8_outputs.shape == (ACCURACY_IMAGES, 10) and int8_outputs.dtype == np.int8
    int8_accuracy = np.mean(int8_outputs.argmax(1) == labels)
    assert abs(float_accuracy - int8_accuracy) <= 0.005, (float_accuracy, int8_accuracy)


def test_tflm_outputs_are_cached_by_model_and_inputs(seed_int8_tflite, test_images_int8, tmp_path):
    images = test_images_int8[:20]
    first = tflm_outputs(seed_int8_tflite, images, cache_dir=tmp_path, quiet=True)
    cached_files = list(tmp_path.glob("tflm-*.npz"))
    assert len(cached_files) == 1
    np.testing.assert_array_equal(tflm_outputs(seed_int8_tflite, images, cache_dir=tmp_path), first)
    np.testing.assert_array_equal(tflm_outputs(seed_int8_tflite, images, use_cache=False), first)
    tflm_outputs(seed_int8_tflite, images[:10], cache_dir=tmp_path, quiet=True)  # other inputs, other key
    assert len(list(tmp_path.glob("tflm-*.npz"))) == 2


def test_litert_agrees_with_tflm_on_top1(seed_int8_tflite, test_images_int8):
    images = test_images_int8[:300]
    tflm = tflm_outputs(seed_int8_tflite, images, use_cache=False, quiet=True)
    for resolver in ("default", "reference"):
        lite = litert_outputs(seed_int8_tflite, images, op_resolver=resolver)
        assert lite.shape == tflm.shape and lite.dtype == np.int8
        assert np.mean(lite.argmax(1) == tflm.argmax(1)) >= 0.99, resolver


def test_tflm_arena_bytes_is_the_allocation_report_total(seed_int8_tflite):
    from tflite_micro.python.tflite_micro import runtime

    arena = tflm_arena_bytes(seed_int8_tflite)
    assert 16_000 < arena < 64_000

    def runs_with(arena_size: int) -> bool:
        try:
            interpreter = runtime.Interpreter.from_bytes(seed_int8_tflite, arena_size=arena_size)
            interpreter.set_input(np.zeros((1, 28, 28, 1), np.int8), 0)
            interpreter.invoke()
            return True
        except Exception:
            return False

    # The reported total is enough to run, and 1 KiB less is not.
    assert runs_with(arena)
    assert not runs_with(arena - 1024)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_quantize_input_matches_tflite_quantize_op(trained_seed_model, mnist):
    """Convert the same model with a float input: TFLite adds a QUANTIZE op; its int8
    output must equal quantize_input() for random values, exact .5 ties and clamped values.
    (Values whose quotient overflows int32 are undefined behaviour in TFLite's cast: not compared.)"""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from si4tool.frontend.quantize import _batch_one_model, calibration_images

    images = calibration_images(mnist, 50, seed=1)
    converter = tf.lite.TFLiteConverter.from_keras_model(_batch_one_model(trained_seed_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([images[i : i + 1]] for i in range(images.shape[0]))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_output_type = tf.int8  # input stays float32
    float_input_model = converter.convert()
    # The reference kernels: the default resolver hands QUANTIZE to XNNPACK, which rounds
    # ties to even; TFLite's reference AffineQuantize and TFLite Micro round them away from zero.
    interpreter = Interpreter(model_content=float_input_model, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    quantize_op = next(op for op in interpreter._get_ops_details() if op["op_name"] == "QUANTIZE")
    details = interpreter.get_tensor_details()[quantize_op["outputs"][0]]
    scale, zero_point = details["quantization"]

    rng = np.random.default_rng(0)
    ties = (np.arange(-200, 200, dtype=np.float32) + np.float32(0.5)) * np.float32(scale)
    samples = np.concatenate([rng.uniform(-0.6, 1.6, size=784 * 3).astype(np.float32), ties,
                              np.array([0.0, 1.0, -1.0, 1e3, -1e3], np.float32)])
    samples = np.resize(samples, (samples.size // 784 + 1) * 784).reshape(-1, 1, 28, 28, 1)
    for batch in samples:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
        interpreter.invoke()
        expected = interpreter.get_tensor(quantize_op["outputs"][0])
        np.testing.assert_array_equal(quantize_input(batch, scale, zero_point), expected)


def test_quantize_input_rounds_half_away_from_zero_and_clamps():
    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0, 0.49999997], np.float32)
    np.testing.assert_array_equal(quantize_input(values, 1.0, 0), [1, 2, 3, -1, -2, 127, -128, 0])
    np.testing.assert_array_equal(quantize_input(values, 1.0, -128)[:3], [-127, -126, -125])


@pytest.mark.parametrize("samples", [0, 60_001])
def test_calibration_samples_out_of_range(trained_seed_model, mnist, samples):
    with pytest.raises(UserError, match="--calibration-samples"):
        quantize_model(trained_seed_model, mnist, calibration_samples=samples)


def test_quantization_is_deterministic(trained_seed_model, mnist, seed_int8_tflite):
    assert quantize_model(trained_seed_model, mnist, calibration_samples=500, seed=0) == seed_int8_tflite


def test_evaluate_and_save_quantization_outputs(trained_seed_model, mnist, seed_int8_tflite, tmp_path,
                                                reference_cache_dir):
    from dataclasses import replace

    from si4tool.frontend.quantize import evaluate_quantization, save_quantization_outputs

    small = replace(mnist, x_test=mnist.x_test[:300], y_test=mnist.y_test[:300])
    report = evaluate_quantization(trained_seed_model, seed_int8_tflite, small, 500, cache_dir=reference_cache_dir,
                                   quiet=True)
    assert report.test_images == 300 and report.operators == SEED_OPERATORS
    assert abs(report.accuracy_drop_pp) <= 1.0
    paths = save_quantization_outputs(seed_int8_tflite, report, tmp_path / "quant")
    assert paths["tflite"].read_bytes() == seed_int8_tflite
    record = json.loads(paths["report"].read_text())
    for key in ("float_test_accuracy", "int8_test_accuracy", "input_quantization", "output_quantization",
                "operators", "tflm_arena_bytes", "tflite_sha256", "accuracy_drop_pp"):
        assert key in record, key
    assert record["input_quantization"]["zero_point"] == -128
