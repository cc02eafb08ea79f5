"""QUANTIZE int8 -> int8, a requantization: TFLM reference_ops::Requantize.

out = clamp(MBQM(x - input_zp, M, s) + output_zp, -128, 127),
M * 2^(s - 31) = (double)input_scale / (double)output_scale, the quotient in
double (micro/kernels/quantize_common.cc). C: si4_quantize_s8.c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.fixed_point import clamp_int8, mbqm, wrap_int32
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.unary import prepared, unary_tensors
from si4tool.compiler.quant_math import checked_multiplier


@dataclass(frozen=True)
class QuantizeParams:
    size: int
    input_zero_point: int
    output_zero_point: int
    output_multiplier: int
    output_shift: int


def prepare_quantize(size: int, input_scale: float, input_zero_point: int, output_scale: float,
                     output_zero_point: int) -> QuantizeParams:  # fmt: skip
    real = float(np.float32(input_scale)) / float(np.float32(output_scale))
    multiplier, shift = checked_multiplier(real, "QUANTIZE")
    return QuantizeParams(size, input_zero_point, output_zero_point, multiplier, shift)


def reference_quantize(params: QuantizeParams, input) -> np.ndarray:
    x = np.asarray(input, dtype=np.int64) - params.input_zero_point
    return clamp_int8(wrap_int32(mbqm(x, params.output_multiplier, params.output_shift) + params.output_zero_point))


def lower_quantize(ctx, operator):
    """An int8 -> int8 QUANTIZE inside the graph (one with the same scale and zero point is
    dropped before this by the lowering, a float one at the edges too)."""
    source, output = unary_tensors(ctx, operator)
    params = prepared(ctx, operator, prepare_quantize, source.size_bytes, source.scale, source.zero_point,
                      output.scale, output.zero_point)  # fmt: skip
    return ctx.layer("quantize", operator, [source], output, params)


SPEC = OpSpec(
    op="quantize",
    summary="int8 -> int8 requantization to a new scale and zero point",
    builtins=("QUANTIZE",),
    params_type=QuantizeParams,
    kernel="si4_quantize_s8",
    lower=lower_quantize,
    reference=lambda layer, inputs: reference_quantize(layer.params, inputs[0]),
    constraints=Constraints(
        dtypes="int8 -> int8; float32 -> int8 only at the model input (dropped: the caller quantizes)",
        notes="one that changes nothing is dropped; may run in place",
    ),
    in_place=True,
)
