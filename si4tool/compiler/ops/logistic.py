"""LOGISTIC, int8: TFLM reference_integer_ops::Logistic, evaluated into a table.

Prepare (micro/kernels/logistic_common.cc): input_multiplier and
input_left_shift from frexp((double)input_scale * 2^27) (the mantissa rounded
half away from zero, without QuantizeMultiplier's fold of 2^31), the radius
floor(15 * 2^27 / 2^left_shift). Eval, per input d = x - input_zp:
-128 when d <= -radius, 127 when d >= radius, else
clamp(RoundingDivideByPOT(gemmlowp::logistic(Q4.27 MBQM(d)), 23) - 128).
TFLM requires the output zero point -128 (scale 1/256) and writes that scale
whatever the tensor says. The C kernel (si4_logistic_s8.c) reads the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from si4tool.compiler import fixed_point
from si4tool.compiler.ops.softmax import exp_on_negative_values, one_over_one_plus_x_for_x_in_0_1
from si4tool.compiler.fixed_point import INT8_VALUES, apply_int8_table, as_int8_table, mbqm
from si4tool.compiler.quant_math import round_half_away_from_zero
from si4tool.errors import UserError
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.unary import TABLE_CONSTANTS, prepared, table_call, unary_tensors

INPUT_INTEGER_BITS = 4


@dataclass(frozen=True)
class LogisticParams:
    C_STRUCT = "si4_table_params"  # not annotated: a class attribute, not a field

    size: int


@dataclass(frozen=True)
class Q4InputScaling:
    """The input rescaling to Q4.27 that TFLM's int8 LOGISTIC and TANH share."""

    zero_point: int
    multiplier: int
    left_shift: int
    range_radius: int


def q4_input_scaling(input_scale: float, input_zero_point: int, what: str) -> Q4InputScaling:
    real = float(np.float32(input_scale)) * float(1 << (31 - INPUT_INTEGER_BITS))
    mantissa, left_shift = math.frexp(real)
    multiplier = round_half_away_from_zero(mantissa * (1 << 31))
    if multiplier >= 1 << 31 or left_shift < 0:
        # TFLM would overflow the int32 cast, or shift by a negative amount in CalculateInputRadius.
        raise UserError(f"{what} with input scale {input_scale} is outside what TFLite's int8 kernel computes")
    radius = math.floor(1.0 * ((1 << INPUT_INTEGER_BITS) - 1) * (1 << (31 - INPUT_INTEGER_BITS)) / (1 << left_shift))
    return Q4InputScaling(input_zero_point, multiplier, left_shift, radius)


def gemmlowp_logistic(a: int) -> int:
    """gemmlowp::logistic on a Q4.27 raw value, Q0.31 result."""
    if a == 0:
        return 1 << 30
    magnitude = a if a > 0 else fixed_point.wrap(-a)
    positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(fixed_point.wrap(-magnitude), INPUT_INTEGER_BITS))
    return positive if a > 0 else fixed_point.wrap(fixed_point.INT32_MAX - positive)


def logistic_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    scaling = q4_input_scaling(input_scale, input_zero_point, "LOGISTIC")
    results = []
    for x in INT8_VALUES:
        d = int(x) - scaling.zero_point
        if d <= -scaling.range_radius:
            results.append(-128)
        elif d >= scaling.range_radius:
            results.append(127)
        else:
            q4 = int(mbqm(d, scaling.multiplier, scaling.left_shift))
            q23 = fixed_point.rdbpot(gemmlowp_logistic(q4), 31 - 8)
            results.append(min(max(q23 - 128, -128), 127))
    return as_int8_table(results)


def prepare_logistic(size: int, input_scale: float, input_zero_point: int, output_scale: float,
                     output_zero_point: int) -> tuple[LogisticParams, np.ndarray]:  # fmt: skip
    if output_zero_point != -128:
        raise UserError(f"LOGISTIC's output zero point is {output_zero_point}; TFLite Micro requires -128")
    return LogisticParams(size), logistic_table(input_scale, input_zero_point)


def reference_logistic(params: LogisticParams, table: np.ndarray, input) -> np.ndarray:
    return apply_int8_table(table, np.asarray(input).reshape(-1)[: params.size]).reshape(np.shape(input))


def lower_logistic(ctx, operator):
    source, output = unary_tensors(ctx, operator)
    params, table = prepared(ctx, operator, prepare_logistic, source.size_bytes, source.scale, source.zero_point, output.scale, output.zero_point)
    return ctx.layer("logistic", operator, [source], output, params, {"table": table})


SPEC = OpSpec(
    op="logistic",
    summary="1 / (1 + exp(-x)), by a 256-byte table",
    builtins=("LOGISTIC",),
    params_type=LogisticParams,
    kernel="si4_logistic_s8",
    lower=lower_logistic,
    reference=lambda layer, inputs: reference_logistic(layer.params, layer.constants["table"], inputs[0]),
    constants=TABLE_CONSTANTS,
    constraints=Constraints(dtypes="int8", notes="output zero point -128 (scale 1/256), as TFLM requires; table of 256 bytes in flash; may run in place"),
    in_place=True,
    render_call=table_call,
)
