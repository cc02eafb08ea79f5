"""PAD and PADV2 (constant), int8: TFLM reference_ops::Pad (micro/kernels/pad.cc, pad_common.cc).

Bytes are moved, not requantized: the pad value is the output zero point for
PAD and the constant_values byte for PADV2 (TFLM requires that tensor's
quantization to equal the output's, and checks nothing about the input's).
Up to five dimensions (PadKernelMaxDimensionCount). The paddings (int32) and PADV2's
constant_values (one int8) must be constant tensors; the batch dimension is not padded.
C: si4_pad_s8.c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.tflite_reader import TENSOR_TYPE_INT8, TENSOR_TYPE_INT32
from si4tool.errors import UserError

PAD_DIMS = 5


@dataclass(frozen=True)
class PadParams:
    input_shape0: int
    input_shape1: int
    input_shape2: int
    input_shape3: int
    input_shape4: int
    pad_before0: int
    pad_before1: int
    pad_before2: int
    pad_before3: int
    pad_before4: int
    pad_after0: int
    pad_after1: int
    pad_after2: int
    pad_after3: int
    pad_after4: int
    pad_value: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(getattr(self, f"input_shape{d}") for d in range(PAD_DIMS))

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(getattr(self, f"input_shape{d}") + getattr(self, f"pad_before{d}") + getattr(self, f"pad_after{d}")
                     for d in range(PAD_DIMS))  # fmt: skip


def prepare_pad(input_shape, paddings, output_zero_point: int, constant_value: int | None = None,
                constant_quantization: tuple[float, int] | None = None,
                output_scale: float | None = None) -> PadParams:  # fmt: skip
    """paddings: one (before, after) pair per input dimension (the PAD `paddings` tensor).
    constant_value / constant_quantization: PADV2's constant_values byte and its (scale, zero point)."""
    shape = tuple(int(d) for d in input_shape)
    pairs = np.asarray(paddings, dtype=np.int64).reshape(-1, 2)
    if len(shape) > PAD_DIMS:
        raise UserError(f"PAD of a {len(shape)}-dimensional tensor: TFLite Micro pads at most {PAD_DIMS} dimensions")
    if pairs.shape[0] != len(shape):
        raise UserError(f"PAD has {pairs.shape[0]} padding pairs for a {len(shape)}-dimensional input")
    if np.any(pairs < 0):
        raise UserError("PAD with negative paddings (cropping) is not supported")
    if constant_value is None:
        if not -128 <= output_zero_point <= 127:
            raise UserError(f"PAD's output zero point {output_zero_point} is not an int8 value")
        value = output_zero_point
    else:
        if constant_quantization is not None and (
            constant_quantization[1] != output_zero_point
            or (output_scale is not None and np.float32(constant_quantization[0]) != np.float32(output_scale))
        ):
            raise UserError(
                "PADV2's constant value is quantized differently from its output, which TFLite Micro rejects"
            )
        value = int(np.int8(constant_value))
    lead = PAD_DIMS - len(shape)
    full_shape = (1,) * lead + shape
    before = [0] * lead + [int(p) for p in pairs[:, 0]]
    after = [0] * lead + [int(p) for p in pairs[:, 1]]
    return PadParams(*full_shape, *before, *after, value)


def reference_pad(params: PadParams, input) -> np.ndarray:
    x = np.asarray(input, dtype=np.int8).reshape(params.input_shape)
    widths = [(getattr(params, f"pad_before{d}"), getattr(params, f"pad_after{d}")) for d in range(PAD_DIMS)]
    return np.pad(x, widths, mode="constant", constant_values=np.int8(params.pad_value)).reshape(-1)


def lower_pad(ctx, operator):
    """PAD (pad with the output zero point) and PADV2 (pad with its constant_values byte)."""
    source = ctx.input_activation(operator, 0)
    output = ctx.output_activation(operator)
    paddings_tensor = ctx.tensor(operator, 1)
    if paddings_tensor.data is None:
        raise ctx.fail(operator, "has paddings computed at run time; si4tool needs a constant paddings tensor")
    paddings = ctx.constant(operator, paddings_tensor, TENSOR_TYPE_INT32, np.int32, "paddings tensor")
    full_shape = (1, *source.shape)
    pairs = paddings.reshape(-1, 2) if paddings.size % 2 == 0 else paddings.reshape(-1, 1)
    if pairs.shape != (len(full_shape), 2):
        raise ctx.fail(operator, f"has paddings of shape {list(paddings.shape)} for a {len(full_shape)}-D input")
    if pairs[0].any():
        raise ctx.fail(operator, "pads the batch dimension; si4tool supports batch 1 only")
    value = quantization = None
    if operator.name == "PADV2" and ctx.tensor(operator, 2, optional=True) is not None:
        constant = ctx.tensor(operator, 2)
        if constant.data is None:
            raise ctx.fail(operator, "has a pad value computed at run time; si4tool needs a constant")
        values = ctx.constant(operator, constant, TENSOR_TYPE_INT8, np.int8, "pad value").reshape(-1)
        if values.size != 1:
            raise ctx.fail(operator, f"has {values.size} pad values; TFLite pads with one")
        value = int(values[0])
        q = constant.quantization
        quantization = None if q is None or not q.scale else (float(q.scale[0]), int(q.zero_point[0]))
    params = ctx.quantized(operator, prepare_pad, full_shape, pairs, output.zero_point, value, quantization, output.scale)
    padded = params.output_shape[PAD_DIMS - len(full_shape) + 1 :]
    if tuple(padded) != tuple(output.shape):
        raise ctx.fail(operator, f"has output shape {[1, *output.shape]}, but its paddings give {[1, *padded]}")
    return ctx.layer("pad", operator, [source], output, params)


SPEC = OpSpec(
    op="pad",
    summary="constant padding (PAD: the zero point; PADV2: a constant value)",
    builtins=("PAD", "PADV2"),
    params_type=PadParams,
    kernel="si4_pad_s8",
    lower=lower_pad,
    reference=lambda layer, inputs: reference_pad(layer.params, inputs[0]),
    data_inputs=1,
    keras_layers=("ZeroPadding2D",),
    constraints=Constraints(
        dtypes="int8",
        paddings="constant int32 paddings, up to 5 dimensions, none on the batch",
        notes="PADV2's pad value: one constant int8 quantized as the output",
    ),
)
