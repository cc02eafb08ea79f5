"""MUL, int8, with broadcasting: TFLM reference_integer_ops::Mul / BroadcastMul6DSlow.

out = clamp(output_zp + MBQM((x1 - zp1) * (x2 - zp2), M, s), act_min, act_max),
M * 2^(s - 31) = (double)s1 * (double)s2 / (double)s_out, the clamp from the
fused activation (CalculateOpDataMul, micro/kernels/mul_common.cc).
C: si4_mul_s8.c, called with the params and the BroadcastParams structs (Layer.extra_params).
One operand may be a constant tensor (broadcast.binary_operands). MACs: one multiply per
output element.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.fixed_point import clamp_int8, mbqm, wrap_int32
from si4tool.compiler.ops import broadcast as binary
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.broadcast import BroadcastParams, broadcast_inputs, prepare_broadcast
from si4tool.compiler.tflite_reader import OptionLayout
from si4tool.compiler.quant_math import activation_range, checked_multiplier

MUL_OPTIONS = OptionLayout(21, "MulOptions", (("activation", 0, "b", 0),))


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


lower_mul = binary.broadcast_lowering("mul", prepare_mul)


SPEC = OpSpec(
    op="mul",
    summary="elementwise product of two tensors, with broadcasting",
    builtins=("MUL",),
    params_type=MulParams,
    kernel="si4_mul_s8",
    lower=lower_mul,
    reference=binary.broadcast_reference(reference_mul),
    constants=binary.BINARY_CONSTANTS,
    optional_constants=("input1", "input2"),
    options=(MUL_OPTIONS,),
    macs=lambda layer: mul_macs(dict(layer.extra_params)["broadcast"]),
    keras_layers=("Multiply",),
    constraints=Constraints(
        dtypes="int8 (two activations, or an activation and a constant tensor)",
        activations="NONE, RELU, RELU6, RELU_N1_TO_1 (fused)",
        notes="broadcasting as TFLite (up to 6 dimensions); may write over an input of the output's shape",
    ),
    in_place=True,
    render_call=binary.binary_call("si4_mul_s8"),
)
