"""TANH, int8: TFLM reference_integer_ops::Tanh, evaluated into a table.

Prepare (micro/kernels/tanh.cc) scales the input to Q4.27 exactly as LOGISTIC
does (see logistic.q4_input_scaling). Eval, per d = x - input_zp: -128 when
d <= -radius, 127 when d >= radius, else
clamp(RoundingDivideByPOT(gemmlowp::tanh(Q4.27 MBQM(d)), 24)). TFLM adds no
output zero point (it assumes 0, scale 1/128). gemmlowp::tanh goes through
exp_on_negative_values on Q5.26 (ExactMulByPot<1>) and
one_minus_x_over_one_plus_x_for_x_in_0_1. C: si4_tanh_s8.c reads the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler import fixed_point
from si4tool.compiler.ops.softmax import exp_on_negative_values, one_over_one_plus_x_for_x_in_0_1
from si4tool.compiler.fixed_point import INT8_VALUES, apply_int8_table, as_int8_table, mbqm
from si4tool.compiler.ops.logistic import q4_input_scaling
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.unary import TABLE_CONSTANTS, prepared, table_call, unary_tensors


@dataclass(frozen=True)
class TanhParams:
    C_STRUCT = "si4_table_params"  # not annotated: a class attribute, not a field

    size: int


def _one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    total = a + fixed_point.INT32_MAX
    total += 1 if total >= 0 else -1
    half_denominator = total // 2 if total >= 0 else -((-total) // 2)  # RoundingHalfSum truncates
    x = fixed_point.wrap(1515870810 + fixed_point.srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 * d, Q2.29
    for _ in range(3):
        one_minus = fixed_point.wrap((1 << 29) - fixed_point.srdhm(half_denominator, x))
        x = fixed_point.wrap(x + fixed_point.saturating_rounding_multiply_by_pot(fixed_point.srdhm(x, one_minus), 2))
    return fixed_point.saturating_rounding_multiply_by_pot(fixed_point.wrap(x - (1 << 29)), 2)


def gemmlowp_tanh(a: int) -> int:
    """gemmlowp::tanh on a Q4.27 raw value, Q0.31 result."""
    if a == 0:
        return 0
    n = a if a < 0 else fixed_point.wrap(-a)
    t = _one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, 5))
    return fixed_point.wrap(-t) if a < 0 else t


def tanh_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    scaling = q4_input_scaling(input_scale, input_zero_point, "TANH")
    results = []
    for x in INT8_VALUES:
        d = int(x) - scaling.zero_point
        if d <= -scaling.range_radius:
            results.append(-128)
        elif d >= scaling.range_radius:
            results.append(127)
        else:
            q4 = int(mbqm(d, scaling.multiplier, scaling.left_shift))
            results.append(min(max(fixed_point.rdbpot(gemmlowp_tanh(q4), 31 - 7), -128), 127))
    return as_int8_table(results)


def prepare_tanh(size: int, input_scale: float, input_zero_point: int) -> tuple[TanhParams, np.ndarray]:
    return TanhParams(size), tanh_table(input_scale, input_zero_point)


def reference_tanh(params: TanhParams, table: np.ndarray, input) -> np.ndarray:
    return apply_int8_table(table, np.asarray(input).reshape(-1)[: params.size]).reshape(np.shape(input))


def lower_tanh(ctx, operator):
    source, output = unary_tensors(ctx, operator)
    params, table = prepared(ctx, operator, prepare_tanh, source.size_bytes, source.scale, source.zero_point)
    return ctx.layer("tanh", operator, [source], output, params, {"table": table})


SPEC = OpSpec(
    op="tanh",
    summary="tanh(x), by a 256-byte table",
    builtins=("TANH",),
    params_type=TanhParams,
    kernel="si4_tanh_s8",
    lower=lower_tanh,
    reference=lambda layer, inputs: reference_tanh(layer.params, layer.constants["table"], inputs[0]),
    constants=TABLE_CONSTANTS,
    constraints=Constraints(dtypes="int8", notes="output on scale 1/128, zero point 0, as TFLM computes it; table of 256 bytes in flash; may run in place"),
    in_place=True,
    render_call=table_call,
)
