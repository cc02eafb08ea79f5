"""SUB, int8, with broadcasting: TFLM reference_ops::Sub / BroadcastQuantSubSlow.

Both inputs are brought to a common scale with 20 bits of headroom, then
subtracted and rescaled (CalculateOpDataSub, micro/kernels/sub_common.cc;
in double precision, see prepare_sub):
  twice_max = 2 * max(s1, s2); real1 = s1 / twice_max; real2 = s2 / twice_max;
  real_out = twice_max / ((1 << 20) * s_out), each QuantizeMultiplierSmallerThanOneExp'd.
Per element: v_i = MBQM((x_i - zp_i) << 20, real_i); out = clamp(MBQM(v1 - v2,
real_out) + output_zp, act_min, act_max). The same arithmetic as ADD with a
minus. C: si4_sub_s8.c, called with the params and the BroadcastParams structs
(Layer.extra_params). Either operand may be a constant tensor (broadcast.binary_operands).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.fixed_point import clamp_int8, mbqm, wrap_int32
from si4tool.compiler.ops import broadcast as binary
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.broadcast import BroadcastParams, broadcast_inputs, prepare_broadcast
from si4tool.compiler.tflite_reader import OptionLayout
from si4tool.compiler.quant_math import activation_range, quantize_multiplier
from si4tool.errors import UserError

SUB_OPTIONS = OptionLayout(28, "SubOptions", (("activation", 0, "b", 0),))

LEFT_SHIFT = 20  # int8 (TFLM uses 15 for int16)


@dataclass(frozen=True)
class SubParams:
    input1_offset: int
    input2_offset: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    output_offset: int
    activation_min: int
    activation_max: int


def _smaller_than_one(real: float, what: str) -> tuple[int, int]:
    # QuantizeMultiplierSmallerThanOneExp: TFLM aborts outside (0, 1).
    if not 0.0 < real < 1.0:
        raise UserError(f"SUB's {what} rescale is {real:g}, outside (0, 1) where TFLite Micro's int8 SUB works")
    return quantize_multiplier(real)


def prepare_sub(input1_shape, input1_scale: float, input1_zero_point: int, input2_shape, input2_scale: float,
                input2_zero_point: int, output_scale: float, output_zero_point: int,
                activation: int = 0) -> tuple[SubParams, BroadcastParams]:  # fmt: skip
    broadcast, _ = prepare_broadcast(input1_shape, input2_shape, "SUB")
    # In double precision, as the tflite-micro build the tests run does (and TFLite's
    # PrepareGeneralSubOp); TFLM 90b983c2's sub_common.cc divides in float32 first, which
    # differs by one in the last bit of a multiplier (seen: 1288490141 vs 1288490112).
    s1, s2, s_out = (float(np.float32(s)) for s in (input1_scale, input2_scale, output_scale))
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = _smaller_than_one(s1 / twice_max, "first input")
    m2, sh2 = _smaller_than_one(s2 / twice_max, "second input")
    mo, sho = _smaller_than_one(twice_max / ((1 << LEFT_SHIFT) * s_out), "output")
    low, high = activation_range(activation, output_scale, output_zero_point)
    params = SubParams(-input1_zero_point, -input2_zero_point, LEFT_SHIFT, m1, sh1, m2, sh2, mo, sho,
                       output_zero_point, low, high)  # fmt: skip
    return params, broadcast


def reference_sub(params: SubParams, broadcast: BroadcastParams, input1, input2) -> np.ndarray:
    a, b = broadcast_inputs(broadcast, input1, input2)
    scaled1 = mbqm((a + params.input1_offset) << params.left_shift, params.input1_multiplier, params.input1_shift)
    scaled2 = mbqm((b + params.input2_offset) << params.left_shift, params.input2_multiplier, params.input2_shift)
    raw = wrap_int32(scaled1 - scaled2)
    value = wrap_int32(mbqm(raw, params.output_multiplier, params.output_shift) + params.output_offset)
    return clamp_int8(np.clip(value, params.activation_min, params.activation_max)).reshape(-1)


lower_sub = binary.broadcast_lowering("sub", prepare_sub)


SPEC = OpSpec(
    op="sub",
    summary="elementwise difference of two tensors, with broadcasting",
    builtins=("SUB",),
    params_type=SubParams,
    kernel="si4_sub_s8",
    lower=lower_sub,
    reference=binary.broadcast_reference(reference_sub),
    constants=binary.BINARY_CONSTANTS,
    optional_constants=("input1", "input2"),
    options=(SUB_OPTIONS,),
    keras_layers=("Subtract",),
    constraints=Constraints(
        dtypes="int8 (two activations, or an activation and a constant tensor)",
        activations="NONE, RELU, RELU6, RELU_N1_TO_1 (fused)",
        notes="broadcasting as TFLite (up to 6 dimensions); may write over an input of the output's shape",
    ),
    in_place=True,
    render_call=binary.binary_call("si4_sub_s8"),
)
