"""Stage 4, quantize: full-integer post-training quantization of the float model to an
int8 TFLite flatbuffer (int8 weights, activations, input and output; int32 biases;
per-channel weights), calibrated on training images, plus the input quantization
exactly as TFLite's QUANTIZE op computes it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from si4tool.compiler.quant_math import quantize_input  # noqa: F401  (the engine's input, for this stage's callers)
from si4tool.errors import UserError
from si4tool.frontend.data import Dataset, normalize

DEFAULT_CALIBRATION_SAMPLES = 1000


def calibration_images(dataset: Dataset, calibration_samples: int, seed: int = 0) -> np.ndarray:
    """A seeded random subset of the training images, float32 (N, 28, 28, 1) in [0, 1]."""
    if not 1 <= calibration_samples <= dataset.train_size:
        raise UserError(
            f"--calibration-samples must be between 1 and the training-set size {dataset.train_size} "
            f"(got {calibration_samples})."
        )
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(dataset.train_size, size=calibration_samples, replace=False))
    return normalize(dataset.x_train[chosen])


def _batch_one_model(model):
    """Wrap the model with a fixed batch of 1: the converter then emits Flatten as one plain
    RESHAPE instead of the SHAPE/STRIDED_SLICE/PACK/RESHAPE chain a dynamic batch needs,
    which is what a microcontroller runs anyway (one image at a time)."""
    import keras

    image = keras.Input(batch_shape=(1,) + tuple(model.inputs[0].shape[1:]), name="image")
    return keras.Model(image, model(image), name="si4_int8_export")


def quantize_model(model, dataset: Dataset, calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES, seed: int = 0) -> bytes:
    """Full-int8 PTQ with TFLiteConverter; returns the .tflite flatbuffer bytes."""
    import tensorflow as tf

    from si4tool.frontend.model import check_model_supported
    from si4tool.stderr_capture import CapturedStderr

    check_model_supported(model)
    images = calibration_images(dataset, calibration_samples, seed)

    def representative_dataset():
        for index in range(images.shape[0]):
            yield [images[index : index + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(_batch_one_model(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    # Builtin int8 kernels only: conversion fails rather than silently keeping a float op.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # The converter prints its SavedModel export summary on stdout and warns that an
    # int8 input has no float statistics (expected: we quantize the input ourselves).
    # Its C++ side also logs a "fully_quantize: ..." line on file descriptor 2.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), CapturedStderr():
        warnings.simplefilter("ignore")
        try:
            tflite_bytes = bytes(converter.convert())
        except Exception as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(f"TFLite could not quantize the model to int8 ({reason[:200]}).") from None
    check_fully_int8(tflite_bytes)
    return tflite_bytes


def _litert_interpreter(tflite_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter

    try:
        return Interpreter(model_content=tflite_bytes, num_threads=1)
    except Exception as error:
        raise UserError(f"the .tflite model cannot be read ({str(error).splitlines()[0][:200]}).") from None


def operator_list(tflite_bytes: bytes) -> list[str]:
    """The builtin operator names in execution order, e.g. ['CONV_2D', 'MAX_POOL_2D', ...]."""
    from si4tool.compiler.tflite_reader import operator_names

    return operator_names(tflite_bytes, "the quantized model")


def check_fully_int8(tflite_bytes: bytes) -> None:
    """Every op reads and writes integer tensors only, with int8 input and output (si4tool's own reader)."""
    from si4tool.compiler.tflite_reader import TENSOR_TYPE_INT8, float_operators, read_tflite

    floats = float_operators(tflite_bytes, "the quantized model")
    if floats:
        raise UserError(f"the quantized model still has a float {floats[0]} op; it cannot run int8-only.")
    model = read_tflite(tflite_bytes, "the quantized model")
    for indices, side in ((model.inputs, "input"), (model.outputs, "output")):
        if len(indices) != 1 or model.tensors[indices[0]].type != TENSOR_TYPE_INT8:
            raise UserError(f"the quantized model's {side} is not a single int8 tensor.")


def _tensor_quantization(details: dict) -> tuple[float, int]:
    scale, zero_point = details["quantization"]
    return float(scale), int(zero_point)


def input_quantization(tflite_bytes: bytes) -> tuple[float, int]:
    """(scale, zero_point) of the model's int8 input, as stored in the flatbuffer (scale is a float32 value)."""
    return _tensor_quantization(_litert_interpreter(tflite_bytes).get_input_details()[0])


def output_quantization(tflite_bytes: bytes) -> tuple[float, int]:
    """(scale, zero_point) of the model's int8 output."""
    return _tensor_quantization(_litert_interpreter(tflite_bytes).get_output_details()[0])


@dataclass
class QuantizationReport:
    float_test_accuracy: float
    int8_test_accuracy: float  # measured with the TensorFlow Lite Micro interpreter
    test_images: int
    calibration_samples: int
    seed: int
    input_quantization: dict[str, float | int]
    output_quantization: dict[str, float | int]
    operators: list[str]
    tflite_bytes: int
    tflite_sha256: str
    tflm_arena_bytes: int
    source_model_sha256: str | None = None
    data_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy_drop_pp(self) -> float:
        return 100.0 * (self.float_test_accuracy - self.int8_test_accuracy)


def evaluate_quantization(
    model,
    tflite_bytes: bytes,
    dataset: Dataset,
    calibration_samples: int,
    seed: int = 0,
    source_model_sha256: str | None = None,
    cache_dir: Path | None = None,
    quiet: bool = False,
) -> QuantizationReport:
    """Float (Keras) and int8 (TFLM) accuracy over the whole test set, and the model's quantization facts."""
    from si4tool.validation.reference import keras_outputs, tflm_arena_bytes, tflm_outputs

    x_test_float = normalize(dataset.x_test)
    float_predicted = np.argmax(keras_outputs(model, x_test_float), axis=1)
    input_scale, input_zero_point = input_quantization(tflite_bytes)
    output_scale, output_zero_point = output_quantization(tflite_bytes)
    x_test_int8 = quantize_input(x_test_float, input_scale, input_zero_point)
    int8_predicted = np.argmax(tflm_outputs(tflite_bytes, x_test_int8, cache_dir=cache_dir, quiet=quiet), axis=1)
    labels = dataset.y_test.astype(np.int64)
    return QuantizationReport(
        float_test_accuracy=float(np.mean(float_predicted == labels)),
        int8_test_accuracy=float(np.mean(int8_predicted == labels)),
        test_images=int(labels.shape[0]),
        calibration_samples=calibration_samples,
        seed=seed,
        input_quantization={"scale": input_scale, "zero_point": input_zero_point},
        output_quantization={"scale": output_scale, "zero_point": output_zero_point},
        operators=operator_list(tflite_bytes),
        tflite_bytes=len(tflite_bytes),
        tflite_sha256=hashlib.sha256(tflite_bytes).hexdigest(),
        tflm_arena_bytes=tflm_arena_bytes(tflite_bytes),
        source_model_sha256=source_model_sha256,
        data_sha256=dataset.sha256,
    )


def save_quantization_outputs(tflite_bytes: bytes, report: QuantizationReport, out_dir: Path) -> dict[str, Path]:
    """Write model_int8.tflite and quantization.json into out_dir."""
    from si4tool.render import write_file_atomically

    out_dir = Path(out_dir)
    paths = {"tflite": out_dir / "model_int8.tflite", "report": out_dir / "quantization.json"}
    record = asdict(report)
    record.pop("extra")
    record["accuracy_drop_pp"] = round(report.accuracy_drop_pp, 4)
    record["int8_measured_with"] = "tflite-micro Python interpreter"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_file_atomically(paths["tflite"], tflite_bytes)
        write_file_atomically(paths["report"], (json.dumps(record, indent=2) + "\n").encode())
    except OSError as error:
        raise UserError(f"cannot write the quantization outputs into {out_dir} ({error.strerror or error}).") from None
    return paths
