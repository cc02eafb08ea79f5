"""RELU6, int8: TFLM Relu6Quantized with the constants of Relu6Prepare.

out = clamp(x, input_zp, FloatToQuantizedType<int8>(6.0f, input_scale, input_zp)).
TFLM does not requantize: the output tensor's own scale and zero point are
ignored (the converter gives RELU6 an output quantization of its own, yet TFLM
writes the clamped input bytes). C: si4_relu6_s8.c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.unary import prepared, unary_tensors
from si4tool.compiler.quant_math import round_half_away_from_zero
from si4tool.errors import UserError


@dataclass(frozen=True)
class Relu6Params:
    size: int
    lower: int
    upper: int


def prepare_relu6(size: int, input_scale: float, input_zero_point: int) -> Relu6Params:
    # FloatToQuantizedType: round(value / scale) in float32, + zero point, clamped to int8.
    quotient = float(np.float32(6.0) / np.float32(input_scale))
    if not np.isfinite(quotient):
        raise UserError(f"RELU6 with input scale {input_scale} cannot represent 6.0")
    six = round_half_away_from_zero(quotient) + input_zero_point
    six = min(127, max(-128, six))
    return Relu6Params(size, input_zero_point, six)


def reference_relu6(params: Relu6Params, input) -> np.ndarray:
    return np.clip(np.asarray(input, dtype=np.int64), params.lower, params.upper).astype(np.int8)


def lower_relu6(ctx, operator):
    source, output = unary_tensors(ctx, operator)
    params = prepared(ctx, operator, prepare_relu6, source.size_bytes, source.scale, source.zero_point)
    return ctx.layer("relu6", operator, [source], output, params)


SPEC = OpSpec(
    op="relu6",
    summary="min(max(x, 0), 6) on the input's scale (TFLM does not requantize)",
    builtins=("RELU6",),
    params_type=Relu6Params,
    kernel="si4_relu6_s8",
    lower=lower_relu6,
    reference=lambda layer, inputs: reference_relu6(layer.params, inputs[0]),
    constraints=Constraints(
        dtypes="int8", notes="a standalone RELU6; the output bytes are on the input's scale, as TFLM; may run in place"
    ),
    in_place=True,
)
