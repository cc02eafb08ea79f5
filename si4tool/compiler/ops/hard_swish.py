"""HARD_SWISH, int8: TFLM reference_ops::HardSwish (int16 fixed point), evaluated into a table.

Prepare (micro/kernels/hard_swish_common.cc), in float32 then double:
hires_input_scale = input_scale / 128; output multiplier = hires / output_scale
and reluish multiplier = hires / (3 / 32768), each QuantizeMultiplier'd then
DownScaleInt32ToInt16Multiplier'd (round the Q31 to Q15). Eval per element:
see _hard_swish_value, a line-by-line restatement with int16 wrap-around where
TFLM stores into int16_t. C: si4_hard_swish_s8.c reads the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.fixed_point import INT8_VALUES, apply_int8_table, as_int8_table
from si4tool.compiler.quant_math import quantize_multiplier
from si4tool.errors import UserError
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.unary import TABLE_CONSTANTS, prepared, table_call, unary_tensors

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


@dataclass(frozen=True)
class HardSwishParams:
    C_STRUCT = "si4_table_params"  # not annotated: a class attribute, not a field

    size: int


@dataclass(frozen=True)
class HardSwishScaling:
    input_zero_point: int
    output_zero_point: int
    output_multiplier_fixedpoint_int16: int
    output_multiplier_exponent: int
    reluish_multiplier_fixedpoint_int16: int
    reluish_multiplier_exponent: int


def _wrap16(x: int) -> int:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def _down_scale_to_int16(multiplier: int) -> int:
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return INT16_MAX
    return (multiplier + (1 << 15)) >> 16


def _srdhm16(a: int, b: int) -> int:
    if a == b == INT16_MIN:
        return INT16_MAX
    product = a * b
    total = product + ((1 << 14) if product >= 0 else 1 - (1 << 14))
    quotient = abs(total) >> 15  # C's division truncates toward zero
    return _wrap16(quotient if total >= 0 else -quotient)


def _sdhm16(a: int, b: int) -> int:
    """SaturatingDoublingHighMul: the product's high half, truncated toward zero."""
    if a == b == INT16_MIN:
        return INT16_MAX
    product = a * b
    quotient = abs(product) >> 15
    return _wrap16(quotient if product >= 0 else -quotient)


def _rdbpot16(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return _wrap16((x >> exponent) + (1 if remainder > threshold else 0))


def _saturating_left_shift16(value: int, amount: int) -> int:
    return min(max(value * (1 << amount), INT16_MIN), INT16_MAX)


def hard_swish_scaling(input_scale: float, input_zero_point: int, output_scale: float,
                       output_zero_point: int) -> HardSwishScaling:  # fmt: skip
    hires_input_scale = np.float32(1.0 / 128.0) * np.float32(input_scale)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    output_multiplier, output_exponent = quantize_multiplier(float(hires_input_scale / np.float32(output_scale)))
    if output_exponent > 0:
        raise UserError("HARD_SWISH's output scale is below input_scale / 128, which TFLite Micro rejects")
    reluish_multiplier, reluish_exponent = quantize_multiplier(float(hires_input_scale / reluish_scale))
    if not -15 <= reluish_exponent <= 15 or output_exponent < -15:
        raise UserError("HARD_SWISH's scales are outside what TFLite's int16 arithmetic can shift")
    return HardSwishScaling(input_zero_point, output_zero_point, _down_scale_to_int16(output_multiplier),
                            output_exponent, _down_scale_to_int16(reluish_multiplier), reluish_exponent)  # fmt: skip


def _hard_swish_value(s: HardSwishScaling, x: int) -> int:
    input_value = _wrap16(x - s.input_zero_point)
    hires = _wrap16(input_value * (1 << 7))
    preshift_output = _srdhm16(hires, s.output_multiplier_fixedpoint_int16)
    reluish = hires
    if s.reluish_multiplier_exponent > 0:
        reluish = _saturating_left_shift16(reluish, s.reluish_multiplier_exponent - 1)
    reluish = _srdhm16(reluish, s.reluish_multiplier_fixedpoint_int16)
    if s.reluish_multiplier_exponent > 0:
        reluish = _saturating_left_shift16(reluish, 1)
    if s.reluish_multiplier_exponent < 0:
        reluish = _rdbpot16(reluish, -s.reluish_multiplier_exponent)
    reluish = _wrap16((reluish + (1 << 15)) >> 1)
    preshift_output_value = _sdhm16(reluish, preshift_output)
    output_value = _rdbpot16(preshift_output_value, -s.output_multiplier_exponent)
    output_value = _wrap16(output_value + s.output_zero_point)
    return min(max(output_value, -128), 127)


def hard_swish_table(input_scale: float, input_zero_point: int, output_scale: float,
                     output_zero_point: int) -> np.ndarray:  # fmt: skip
    scaling = hard_swish_scaling(input_scale, input_zero_point, output_scale, output_zero_point)
    return as_int8_table([_hard_swish_value(scaling, int(x)) for x in INT8_VALUES])


def prepare_hard_swish(size: int, input_scale: float, input_zero_point: int, output_scale: float,
                       output_zero_point: int) -> tuple[HardSwishParams, np.ndarray]:  # fmt: skip
    return HardSwishParams(size), hard_swish_table(input_scale, input_zero_point, output_scale, output_zero_point)


def reference_hard_swish(params: HardSwishParams, table: np.ndarray, input) -> np.ndarray:
    return apply_int8_table(table, np.asarray(input).reshape(-1)[: params.size]).reshape(np.shape(input))


def lower_hard_swish(ctx, operator):
    source, output = unary_tensors(ctx, operator)
    params, table = prepared(ctx, operator, prepare_hard_swish, source.size_bytes, source.scale, source.zero_point, output.scale, output.zero_point)
    return ctx.layer("hard_swish", operator, [source], output, params, {"table": table})


SPEC = OpSpec(
    op="hard_swish",
    summary="x * relu6(x + 3) / 6, by a 256-byte table",
    builtins=("HARD_SWISH",),
    params_type=HardSwishParams,
    kernel="si4_hard_swish_s8",
    lower=lower_hard_swish,
    reference=lambda layer, inputs: reference_hard_swish(layer.params, layer.constants["table"], inputs[0]),
    constants=TABLE_CONSTANTS,
    constraints=Constraints(dtypes="int8", notes="TFLM's int16 fixed-point arithmetic, tabulated; table of 256 bytes in flash; may run in place"),
    in_place=True,
    render_call=table_call,
)
