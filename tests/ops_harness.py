"""Shared plumbing of the tests of issue 10's operator kernels (tests/test_ops_*.py).

- `kernels()`: the portable C kernels compiled with the strict flags into one
  shared library; `struct_of(params)` turns a params dataclass into the ctypes
  struct of si4_nn_ops.h (same fields, same order); `header_structs()` reads
  those structs from the header so a test can check the mirror.
- `single_op_tflite(...)`: a Keras model converted to full int8 with random
  calibration data; `run_tflm(...)`: TFLite Micro's output for int8 inputs;
  `op_of(...)`: the one operator of a given name with its tensors (read with
  si4tool's own reader).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import re
from pathlib import Path

import numpy as np

from si4tool.compiler.tflite_reader import read_tflite
from si4tool.targets.toolchain import compile_shared_library, kernel_include_dir, portable_kernel_sources

BUILD_DIR = Path(__file__).resolve().parent.parent / "build" / "test_ops"


@functools.cache
def kernels() -> ctypes.CDLL:
    path = compile_shared_library(
        portable_kernel_sources(), BUILD_DIR / "libsi4_ops.so", include_dirs=[kernel_include_dir()]
    )
    return ctypes.CDLL(str(path))


@functools.cache
def _struct_type(cls) -> type[ctypes.Structure]:
    fields = [(f.name, ctypes.c_int32) for f in dataclasses.fields(cls)]
    return type(cls.__name__, (ctypes.Structure,), {"_fields_": fields})


def struct_of(params):
    return _struct_type(type(params))(**dataclasses.asdict(params))


def header_structs() -> dict[str, list[str]]:
    header = (kernel_include_dir() / "si4_nn_ops.h").read_text()
    header = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    return {
        name: re.findall(r"int32_t\s+(\w+)\s*;", body)
        for body, name in re.findall(r"typedef struct\s*\{(.*?)\}\s*(\w+)\s*;", header, flags=re.S)
    }


def int8(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.int8).reshape(-1))


def ptr(array: np.ndarray):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))


def call(name: str, structs: list, inputs: list[np.ndarray], output_size: int) -> np.ndarray:
    """Run kernel `name`(&struct..., input..., output) and return the int8 output."""
    out = np.zeros(output_size, dtype=np.int8)
    held = [int8(x) for x in inputs]
    args = [ctypes.byref(s) for s in structs] + [ptr(x) for x in held] + [ptr(out)]
    getattr(kernels(), name)(*args)
    return out


# ----------------------------------------------------------------------------
# Keras -> int8 TFLite -> TFLite Micro


def single_op_tflite(model, input_shapes: list[tuple[int, ...]], seed: int = 0, low: float = -3.0,
                     high: float = 3.0, samples: int = 16) -> bytes:  # fmt: skip
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    # One range per input (different scales and zero points per input).
    ranges = [(low * (1 + i), high * (1 + 0.5 * i)) for i in range(len(input_shapes))]

    names = [x.name for x in model.inputs]

    def representative():
        # By input name when there are several: the converter orders the inputs its own way.
        for _ in range(samples):
            values = [rng.uniform(lo, hi, (1, *s)).astype(np.float32) for (lo, hi), s in zip(ranges, input_shapes)]
            yield dict(zip(names, values)) if len(values) > 1 else values

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def run_tflm(tflite: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite)
    for index, x in enumerate(inputs):
        interpreter.set_input(np.asarray(x, dtype=np.int8), index)
    interpreter.invoke()
    outputs = []
    index = 0
    while True:
        try:
            outputs.append(np.array(interpreter.get_output(index)))
        except Exception:  # noqa: BLE001 - the runtime signals "no such output" this way only
            break
        index += 1
    return outputs


@dataclasses.dataclass(frozen=True)
class OpView:
    operator: object
    inputs: list  # Tensor or None
    outputs: list
    model: object

    def scale(self, tensor) -> float:
        return tensor.quantization.scale[0]

    def zero_point(self, tensor) -> int:
        return int(tensor.quantization.zero_point[0])


def op_of(tflite: bytes, name: str) -> OpView:
    model = read_tflite(tflite)
    matches = [op for op in model.operators if op.name == name]
    assert len(matches) == 1, [op.name for op in model.operators]
    op = matches[0]
    tensors = model.tensors
    return OpView(op, [tensors[i] if i >= 0 else None for i in op.inputs], [tensors[i] for i in op.outputs], model)


def model_input_order(tflite: bytes, view: OpView) -> list[int]:
    """For each input of the operator, its position among the model's inputs (converters reorder them)."""
    model = read_tflite(tflite)
    return [list(model.inputs).index(t.index) if t is not None and t.index in model.inputs else -1 for t in view.inputs]


def with_quantization(tflite: bytes, changes: dict[int, tuple[float, int]], builtin_code: int | None = None,
                      options: dict | None = None, shapes: dict[int, tuple[int, ...]] | None = None) -> bytes:  # fmt: skip
    """The same model with some tensors' (scale, zero point) replaced, and optionally its only
    operator turned into another builtin (options dropped), or some of its options set: edge cases
    the converter would not produce from random data (zero points at -128 and 127, saturating
    scales, negative LEAKY_RELU alphas)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    tensors = model.subgraphs[0].tensors
    for index, (scale, zero_point) in changes.items():
        tensors[index].quantization.scale = [float(scale)]
        tensors[index].quantization.zeroPoint = [int(zero_point)]
    if builtin_code is not None:
        (code,) = model.operatorCodes
        code.builtinCode = builtin_code
        code.deprecatedBuiltinCode = min(builtin_code, 127)
        for op in model.subgraphs[0].operators:
            op.builtinOptionsType = 0
            op.builtinOptions = None
    for index, shape in (shapes or {}).items():  # a model input of another rank (broadcast corners)
        tensors[index].shape = list(shape)
        tensors[index].shapeSignature = list(shape)
    for name, value in (options or {}).items():  # e.g. {"alpha": -0.3} on LEAKY_RELU's options table
        for op in model.subgraphs[0].operators:
            setattr(op.builtinOptions, name, value)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
