"""ADD of two int8 tensors, with broadcasting and a fused activation (TFLM add.cc, reference_integer_ops/add.h).

The worked example of a two-input operator (docs/architecture.md, "How to add an operator").
TFLM rescales both inputs to a common scale with 20 bits of headroom (left_shift = 20), adds,
and rescales the sum to the output:

    x1 = MBQMSmallerThanOneExp((q1 - zp1) << 20, m1, s1)     m1 = s_1 / (2 max(s_1, s_2))
    x2 = MBQMSmallerThanOneExp((q2 - zp2) << 20, m2, s2)     m2 = s_2 / (2 max(s_1, s_2))
    q  = clamp(MBQMSmallerThanOneExp(x1 + x2, m, s) + zp, activation)   m = 2 max(s_1, s_2) / (2^20 s_out)

Broadcasting: TFLM broadcasts any two shapes of up to 6 dimensions (BroadcastAdd6DSlow). Here
the shapes (batch 1 dropped) are collapsed to at most 4 dimensions, merging neighbours that
broadcast alike; each input is read through a stride per dimension (0 where it broadcasts),
so the C kernel is four plain loops. One operand may be a constant tensor (a const array in
model_weights.c, see broadcast.binary_operands). The output may overwrite an input of its own shape
(OpSpec.in_place): element i of the output reads element i of that input before writing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler import fixed_point, quant_math
from si4tool.compiler.ops import broadcast
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.tflite_reader import OptionLayout

ADD_OPTIONS = OptionLayout(11, "AddOptions", (("activation", 0, "b", 0),))

LEFT_SHIFT = 20  # TFLM's headroom for int8 inputs (15 for int16)
MAX_DIMS = 4


@dataclass(frozen=True)
class AddParams:
    input1_offset: int  # minus the zero point of input 1
    input1_multiplier: int
    input1_shift: int  # <= 0: a rounding right shift
    input2_offset: int
    input2_multiplier: int
    input2_shift: int
    left_shift: int  # 20
    output_offset: int  # the output zero point
    output_multiplier: int
    output_shift: int
    activation_min: int
    activation_max: int
    # The output as up to 4 nested loops (outermost first) and each input's stride per loop
    # (0 where it broadcasts).
    dim_0: int
    dim_1: int
    dim_2: int
    dim_3: int
    input1_stride_0: int
    input1_stride_1: int
    input1_stride_2: int
    input1_stride_3: int
    input2_stride_0: int
    input2_stride_1: int
    input2_stride_2: int
    input2_stride_3: int


class BroadcastError(ValueError):
    """Shapes that do not broadcast, or need more loops than the kernel has."""


def broadcast_loops(shape1, shape2, output_shape) -> tuple[list[int], list[int], list[int]]:
    """(dims, strides of input 1, strides of input 2): the output as at most MAX_DIMS nested loops."""
    rank = len(output_shape)
    padded1 = (1,) * (rank - len(shape1)) + tuple(shape1)
    padded2 = (1,) * (rank - len(shape2)) + tuple(shape2)
    if len(padded1) != rank or len(padded2) != rank:
        raise BroadcastError(f"has inputs of shapes {list(shape1)} and {list(shape2)} for an output of {list(output_shape)}")
    for d1, d2, out in zip(padded1, padded2, output_shape):
        if max(d1, d2) != out or min(d1, d2) not in (1, out):
            raise BroadcastError(f"cannot broadcast shapes {list(shape1)} and {list(shape2)} to {list(output_shape)}")

    def strides(padded):
        result, step = [], 1
        for size in reversed(padded):
            result.append(step if size > 1 else 0)
            step *= size
        return result[::-1]

    loops = [(out, s1, s2) for out, s1, s2 in zip(output_shape, strides(padded1), strides(padded2)) if out > 1]
    merged: list[tuple[int, int, int]] = []
    for out, s1, s2 in loops:
        if merged:
            previous_out, previous_s1, previous_s2 = merged[-1]
            # An outer loop folds into this one when both inputs step through it contiguously.
            if previous_s1 == s1 * out and previous_s2 == s2 * out:
                merged[-1] = (previous_out * out, s1, s2)
                continue
        merged.append((out, s1, s2))
    if len(merged) > MAX_DIMS:
        raise BroadcastError(f"broadcasts {list(shape1)} and {list(shape2)} over {len(merged)} dimensions; the kernel has {MAX_DIMS}")
    merged = [(1, 0, 0)] * (MAX_DIMS - len(merged)) + merged
    return [m[0] for m in merged], [m[1] for m in merged], [m[2] for m in merged]


def prepare_add(input1, input2, output, activation: int) -> AddParams:
    """AddParams from the three tensors (scale, zero_point, shape) as TFLM's CalculateOpDataAdd computes them."""
    twice_max_input_scale = 2 * float(max(np.float32(input1.scale), np.float32(input2.scale)))
    real_input1 = float(np.float32(input1.scale)) / twice_max_input_scale
    real_input2 = float(np.float32(input2.scale)) / twice_max_input_scale
    real_output = twice_max_input_scale / ((1 << LEFT_SHIFT) * float(np.float32(output.scale)))
    m1, s1 = quant_math.quantize_multiplier_smaller_than_one_exp(real_input1)
    m2, s2 = quant_math.quantize_multiplier_smaller_than_one_exp(real_input2)
    m, s = quant_math.quantize_multiplier_smaller_than_one_exp(real_output)
    activation_min, activation_max = quant_math.activation_range(activation, output.scale, output.zero_point)
    try:
        dims, strides1, strides2 = broadcast_loops(input1.shape, input2.shape, output.shape)
    except BroadcastError as error:
        raise quant_math.QuantizationError(str(error)) from None
    return AddParams(
        -input1.zero_point, m1, s1, -input2.zero_point, m2, s2, LEFT_SHIFT, output.zero_point, m, s,
        activation_min, activation_max, *dims, *strides1, *strides2,
    )


def lower_add(ctx, operator):
    operands, activations, constants = broadcast.binary_operands(ctx, operator)
    output = ctx.output_activation(operator)
    activation = operator.options.get("activation", 0)
    ctx.clamp(operator, output)  # refuses activations other than NONE, RELU, RELU6, RELU_N1_TO_1
    params = ctx.quantized(operator, prepare_add, *operands, output, activation)
    return ctx.layer("add", operator, activations, output, params, constants)


def reference_add(p: AddParams, input1, input2) -> np.ndarray:
    """TFLM reference_integer_ops Add / BroadcastAdd6DSlow for int8, flat output."""
    dims = [p.dim_0, p.dim_1, p.dim_2, p.dim_3]
    grid = np.indices(dims).reshape(MAX_DIMS, -1).astype(np.int64)
    index1 = (np.array([p.input1_stride_0, p.input1_stride_1, p.input1_stride_2, p.input1_stride_3])[:, None] * grid).sum(0)
    index2 = (np.array([p.input2_stride_0, p.input2_stride_1, p.input2_stride_2, p.input2_stride_3])[:, None] * grid).sum(0)
    x1 = np.asarray(input1, dtype=np.int64).reshape(-1)[index1] + p.input1_offset
    x2 = np.asarray(input2, dtype=np.int64).reshape(-1)[index2] + p.input2_offset
    scale = fixed_point.multiply_by_quantized_multiplier_smaller_than_one_exp
    scaled1 = scale(x1 * (1 << p.left_shift), p.input1_multiplier, p.input1_shift)
    scaled2 = scale(x2 * (1 << p.left_shift), p.input2_multiplier, p.input2_shift)
    raw = scale(scaled1 + scaled2, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(raw, p.activation_min, p.activation_max).astype(np.int8)


SPEC = OpSpec(
    op="add",
    summary="elementwise sum of two tensors, with broadcasting",
    builtins=("ADD",),
    params_type=AddParams,
    kernel="si4_add_s8",
    lower=lower_add,
    reference=lambda layer, inputs: reference_add(layer.params, *broadcast.binary_reference_inputs(layer, inputs)),
    constants=broadcast.BINARY_CONSTANTS,
    optional_constants=("input1", "input2"),
    options=(ADD_OPTIONS,),
    keras_layers=("Add",),
    constraints=Constraints(
        dtypes="int8 (two activations, or an activation and a constant tensor)",
        activations="NONE, RELU, RELU6, RELU_N1_TO_1 (fused)",
        notes="broadcasting as TFLite (shapes collapsed to 4 loops); may write over an input of the output's shape",
    ),
    in_place=True,
    render_call=broadcast.binary_call("si4_add_s8"),
)
