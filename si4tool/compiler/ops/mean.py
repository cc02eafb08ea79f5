"""MEAN over contiguous axes (global average pooling), int8: TFLM reference_ops::QuantizedMeanOrSum.

Prepare (micro/kernels/reduce_common.cc PrepareMeanOrSumHelper): (M, s) =
QuantizeMultiplier((double)input_scale / (double)output_scale). Eval folds
1/n into it (reduce.h): k = min(floor(log2 n), 32, 31 + s),
M' = (int64(M) << k) / n (truncating), s' = s - k; then per output
out = clamp(MBQM(sum(x) - input_zp * n, M', s') + output_zp). That folding
happens once here. keep_dims changes only the output shape, not the bytes.
The lowering accepts what models use MEAN for, global average pooling: axes 1 and 2
(height and width) of a 4-D NHWC tensor, keep_dims either way. C: si4_mean_s8.c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.fixed_point import clamp_int8, mbqm, wrap_int32
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.quant_math import quantize_multiplier
from si4tool.compiler.tflite_reader import TENSOR_TYPE_INT32, OptionLayout
from si4tool.errors import UserError

REDUCER_OPTIONS = OptionLayout(27, "ReducerOptions", (("keep_dims", 0, "B", 0),))


# n * 255 must fit the kernel's int32 sum.
MAX_REDUCED_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class MeanParams:
    outer_size: int
    reduced_size: int
    inner_size: int
    sum_offset: int
    output_multiplier: int
    output_shift: int
    output_zero_point: int


def mean_output_shape(input_shape, axes, keep_dims: bool) -> tuple[int, ...]:
    rank = len(input_shape)
    resolved = {a % rank for a in axes}
    if keep_dims:
        return tuple(1 if d in resolved else n for d, n in enumerate(input_shape))
    return tuple(n for d, n in enumerate(input_shape) if d not in resolved)


def prepare_mean(input_shape, axes, input_scale: float, input_zero_point: int, output_scale: float,
                 output_zero_point: int) -> MeanParams:  # fmt: skip
    shape = tuple(int(d) for d in input_shape)
    rank = len(shape)
    if any(not -rank <= a < rank for a in axes):
        raise UserError(f"MEAN over axes {tuple(axes)} of a {rank}-dimensional tensor")
    resolved = sorted({a % rank for a in axes})
    if not resolved or resolved != list(range(resolved[0], resolved[-1] + 1)):
        raise UserError(f"MEAN over axes {tuple(axes)}: si4tool reduces one run of adjacent axes only")
    outer = int(np.prod(shape[: resolved[0]], dtype=np.int64))
    reduced = int(np.prod(shape[resolved[0] : resolved[-1] + 1], dtype=np.int64))
    inner = int(np.prod(shape[resolved[-1] + 1 :], dtype=np.int64))
    if not 0 < reduced <= MAX_REDUCED_ELEMENTS:
        raise UserError(f"MEAN over {reduced} elements: si4tool averages at most {MAX_REDUCED_ELEMENTS}")
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    if shift > 30:
        raise UserError("MEAN's input/output rescale is >= 2^31, which TFLite's MultiplyByQuantizedMultiplier rejects")
    k = min(reduced.bit_length() - 1, 32, 31 + shift)
    folded = (multiplier << k) // reduced  # both non-negative: C++'s truncation is floor here
    return MeanParams(outer, reduced, inner, -input_zero_point * reduced, folded, shift - k, output_zero_point)


def reference_mean(params: MeanParams, input) -> np.ndarray:
    x = np.asarray(input, dtype=np.int64).reshape(params.outer_size, params.reduced_size, params.inner_size)
    total = x.sum(axis=1) + params.sum_offset
    value = wrap_int32(mbqm(total, params.output_multiplier, params.output_shift) + params.output_zero_point)
    return clamp_int8(value).reshape(-1)


SPATIAL_AXES = [1, 2]


def lower_mean(ctx, operator):
    source = ctx.input_activation(operator, 0)
    output = ctx.output_activation(operator)
    axis_tensor = ctx.tensor(operator, 1)
    axes = [int(a) for a in ctx.constant(operator, axis_tensor, TENSOR_TYPE_INT32, np.int32, "axis tensor").reshape(-1)]
    full_shape = (1, *source.shape)
    rank = len(full_shape)
    resolved = sorted({a % rank for a in axes if -rank <= a < rank})
    if rank != 4 or len(resolved) != len(set(axes)) or resolved != SPATIAL_AXES:
        raise ctx.fail(
            operator,
            f"averages axes {axes} of a {rank}-D tensor; si4tool's MEAN reduces height and width only "
            "(axes [1, 2] of an NHWC tensor, global average pooling)",
        )
    keep_dims = bool(operator.options.get("keep_dims", 0))
    expected = mean_output_shape(full_shape, axes, keep_dims)
    if expected[1:] != tuple(output.shape):
        raise ctx.fail(operator, f"has output shape {[1, *output.shape]}, but axes {axes} give {list(expected)}")
    params = ctx.quantized(
        operator, prepare_mean, full_shape, axes, source.scale, source.zero_point, output.scale, output.zero_point
    )
    return ctx.layer("mean", operator, [source], output, params)


SPEC = OpSpec(
    op="mean",
    summary="average over height and width (global average pooling)",
    builtins=("MEAN",),
    params_type=MeanParams,
    kernel="si4_mean_s8",
    lower=lower_mean,
    reference=lambda layer, inputs: reference_mean(layer.params, inputs[0]),
    data_inputs=1,
    options=(REDUCER_OPTIONS,),
    macs=lambda layer: layer.params.outer_size * layer.params.reduced_size * layer.params.inner_size,
    keras_layers=("GlobalAveragePooling2D",),
    constraints=Constraints(
        dtypes="int8",
        notes="axes [1, 2] of NHWC (height and width), keep_dims true or false; other axes are refused",
    ),
)
