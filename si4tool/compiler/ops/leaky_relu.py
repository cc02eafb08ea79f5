"""LEAKY_RELU, int8: TFLM reference_ops::QuantizeLeakyRelu, constants of CalculateOpDataLeakyRelu.

d = x - input_zp; out = clamp(output_zp + MBQM(d, identity) for d >= 0, else
output_zp + sign(alpha) * MBQM(d, |alpha|)), with
identity = (double)(input_scale / output_scale) and
alpha = (double)(input_scale * alpha / output_scale), both products and
quotients in float32 (micro/kernels/leaky_relu_common.cc). C: si4_leaky_relu_s8.c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.fixed_point import clamp_int8, mbqm, wrap_int32
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.tflite_reader import OptionLayout
from si4tool.compiler.ops.unary import prepared, unary_tensors
from si4tool.compiler.quant_math import checked_multiplier

LEAKY_RELU_OPTIONS = OptionLayout(75, "LeakyReluOptions", (("alpha", 0, "f", 0.0),))


@dataclass(frozen=True)
class LeakyReluParams:
    size: int
    input_zero_point: int
    output_zero_point: int
    identity_multiplier: int
    identity_shift: int
    alpha_multiplier: int
    alpha_shift: int


def prepare_leaky_relu(size: int, alpha: float, input_scale: float, input_zero_point: int, output_scale: float,
                       output_zero_point: int) -> LeakyReluParams:  # fmt: skip
    scale_in, scale_out = np.float32(input_scale), np.float32(output_scale)
    alpha_real = float(scale_in * np.float32(alpha) / scale_out)
    identity_real = float(scale_in / scale_out)
    alpha_multiplier, alpha_shift = checked_multiplier(alpha_real, "LEAKY_RELU")
    identity_multiplier, identity_shift = checked_multiplier(identity_real, "LEAKY_RELU")
    return LeakyReluParams(size, input_zero_point, output_zero_point, identity_multiplier, identity_shift,
                           alpha_multiplier, alpha_shift)  # fmt: skip


def reference_leaky_relu(params: LeakyReluParams, input) -> np.ndarray:
    d = np.asarray(input, dtype=np.int64) - params.input_zero_point
    identity = mbqm(d, params.identity_multiplier, params.identity_shift)
    sign = -1 if params.alpha_multiplier < 0 else 1
    alpha = sign * mbqm(d, abs(params.alpha_multiplier), params.alpha_shift)
    return clamp_int8(wrap_int32(params.output_zero_point + np.where(d >= 0, identity, alpha)))


def lower_leaky_relu(ctx, operator):
    source, output = unary_tensors(ctx, operator)
    alpha = float(operator.options.get("alpha", 0.0))
    params = prepared(ctx, operator, prepare_leaky_relu, source.size_bytes, alpha, source.scale, source.zero_point,
                      output.scale, output.zero_point)  # fmt: skip
    return ctx.layer("leaky_relu", operator, [source], output, params)


SPEC = OpSpec(
    op="leaky_relu",
    summary="x for x >= 0, alpha * x below, requantized",
    builtins=("LEAKY_RELU",),
    params_type=LeakyReluParams,
    kernel="si4_leaky_relu_s8",
    lower=lower_leaky_relu,
    reference=lambda layer, inputs: reference_leaky_relu(layer.params, inputs[0]),
    options=(LEAKY_RELU_OPTIONS,),
    constraints=Constraints(dtypes="int8", notes="any alpha, negative included; may run in place"),
    in_place=True,
)
