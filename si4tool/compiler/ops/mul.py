"""MUL, int8, with broadcasting: TFLM reference_integer_ops::Mul / BroadcastMul6DSlow.

out = clamp(output_zp + MBQM((x1 - zp1) * (x2 - zp2), M, s), act_min, act_max),
M * 2^(s - 31) = (double)s1 * (double)s2 / (double)s_out, the clamp from the
fused activation (CalculateOpDataMul, micro/kernels/mul_common.cc).
C: si4_mul_s8.c. MACs: one multiply per output element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.ops.broadcast import BroadcastParams, broadcast_inputs, prepare_broadcast
from si4tool.compiler.fixed_point import clamp_int8, mbqm, wrap_int32
from si4tool.compiler.quant_math import checked_multiplier
from si4tool.compiler.quant_math import activation_range


@dataclass(frozen=True)
class MulParams:
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    activation_min: int
    activation_max: int


def prepare_mul(input1_shape, input1_scale: float, input1_zero_point: int, input2_shape, input2_scale: float,
                input2_zero_point: int, output_scale: float, output_zero_point: int,
                activation: int = 0) -> tuple[MulParams, BroadcastParams]:  # fmt: skip
    broadcast, _ = prepare_broadcast(input1_shape, input2_shape, "MUL")
    real = float(np.float32(input1_scale)) * float(np.float32(input2_scale)) / float(np.float32(output_scale))
    multiplier, shift = checked_multiplier(real, "MUL")
    low, high = activation_range(activation, output_scale, output_zero_point)
    params = MulParams(-input1_zero_point, -input2_zero_point, output_zero_point, multiplier, shift, low, high)
    return params, broadcast


def reference_mul(params: MulParams, broadcast: BroadcastParams, input1, input2) -> np.ndarray:
    a, b = broadcast_inputs(broadcast, input1, input2)
    product = (a + params.input1_offset) * (b + params.input2_offset)
    value = wrap_int32(params.output_offset + mbqm(product, params.output_multiplier, params.output_shift))
    return clamp_int8(np.clip(value, params.activation_min, params.activation_max)).reshape(-1)


def mul_macs(broadcast: BroadcastParams) -> int:
    return int(np.prod(broadcast.output_shape))
