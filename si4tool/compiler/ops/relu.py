"""RELU, int8: TFLM ReluQuantized with the constants of CalculateReluOpData.

out = clamp(output_zp + MBQM(x - input_zp, M, s), max(-128, output_zp), 127),
M * 2^(s - 31) = (double)(input_scale / output_scale), the quotient taken in
float32 first (micro/kernels/activations_common.cc). C: si4_relu_s8.c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.fixed_point import clamp_int8, mbqm, wrap_int32
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.unary import prepared, unary_tensors
from si4tool.compiler.quant_math import checked_multiplier


@dataclass(frozen=True)
class ReluParams:
    size: int
    input_zero_point: int
    output_zero_point: int
    output_multiplier: int
    output_shift: int
    activation_min: int
    activation_max: int


def prepare_relu(size: int, input_scale: float, input_zero_point: int, output_scale: float,
                 output_zero_point: int) -> ReluParams:  # fmt: skip
    real = float(np.float32(input_scale) / np.float32(output_scale))
    multiplier, shift = checked_multiplier(real, "RELU")
    # roundf(0.0f / output_scale) is 0: the clamp starts at the output's zero point.
    activation_min = max(-128, output_zero_point)
    return ReluParams(size, input_zero_point, output_zero_point, multiplier, shift, activation_min, 127)


def reference_relu(params: ReluParams, input) -> np.ndarray:
    x = np.asarray(input, dtype=np.int64)
    # int32 wrap-around of the zero-point addition, as TFLM (and si4_requantize_s8) in practice.
    value = wrap_int32(params.output_zero_point + mbqm(x - params.input_zero_point, params.output_multiplier,
                                                       params.output_shift))
    return clamp_int8(np.clip(value, params.activation_min, params.activation_max))


def lower_relu(ctx, operator):
    source, output = unary_tensors(ctx, operator)
    params = prepared(ctx, operator, prepare_relu, source.size_bytes, source.scale, source.zero_point, output.scale,
                      output.zero_point)  # fmt: skip
    return ctx.layer("relu", operator, [source], output, params)


SPEC = OpSpec(
    op="relu",
    summary="max(x, 0), requantized to the output's scale",
    builtins=("RELU",),
    params_type=ReluParams,
    kernel="si4_relu_s8",
    lower=lower_relu,
    reference=lambda layer, inputs: reference_relu(layer.params, inputs[0]),
    constraints=Constraints(dtypes="int8", notes="a standalone RELU (one the converter did not fuse); may run in place"),
    in_place=True,
)
