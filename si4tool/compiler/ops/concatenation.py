"""CONCATENATION along any axis, int8: TFLM micro/kernels/concatenation.cc (bytes copied).

TFLM's int8 Prepare requires every input to have the output's scale and zero
point ("no re-scaling needed for Int8"); it does not requantize, so neither
does si4tool: differing quantizations are refused. One params struct per
input (Layer.extra_params "part0", "part1", ...); the kernel copies that input's rows into
its columns of the output, and model.c calls it once per input. C: si4_concatenation_s8.c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.tflite_reader import OptionLayout
from si4tool.errors import UserError

CONCATENATION_OPTIONS = OptionLayout(10, "ConcatenationOptions", (("axis", 0, "i", 0), ("activation", 1, "b", 0)))


@dataclass(frozen=True)
class ConcatenationParams:
    outer_size: int
    copy_size: int
    output_row_size: int
    output_offset: int


def prepare_concatenation(input_shapes, axis: int, input_quantizations, output_quantization,
                          activation: int = 0) -> list[ConcatenationParams]:  # fmt: skip
    shapes = [tuple(int(d) for d in s) for s in input_shapes]
    rank = len(shapes[0])
    if not -rank <= axis < rank:
        raise UserError(f"CONCATENATION along axis {axis} of {rank}-dimensional tensors")
    axis %= rank
    if activation != 0:
        raise UserError("CONCATENATION with a fused activation is not supported by TFLite Micro's int8 kernel")
    for shape in shapes:
        if len(shape) != rank or shape[:axis] != shapes[0][:axis] or shape[axis + 1 :] != shapes[0][axis + 1 :]:
            raise UserError(f"CONCATENATION of shapes {shapes} along axis {axis}: the other dimensions differ")
    out_scale, out_zero_point = output_quantization
    for scale, zero_point in input_quantizations:
        if np.float32(scale) != np.float32(out_scale) or zero_point != out_zero_point:
            raise UserError(
                "CONCATENATION of inputs quantized differently from its output: TFLite Micro's int8 kernel "
                "rejects it (it copies bytes and never requantizes)"
            )
    outer = int(np.prod(shapes[0][:axis], dtype=np.int64))
    inner = int(np.prod(shapes[0][axis + 1 :], dtype=np.int64))
    row = sum(s[axis] for s in shapes) * inner
    params, offset = [], 0
    for shape in shapes:
        params.append(ConcatenationParams(outer, shape[axis] * inner, row, offset))
        offset += shape[axis] * inner
    return params


def reference_concatenation(params: list[ConcatenationParams], inputs) -> np.ndarray:
    outer = params[0].outer_size
    rows = [np.asarray(x, dtype=np.int8).reshape(outer, p.copy_size) for p, x in zip(params, inputs)]
    return np.concatenate(rows, axis=1).reshape(-1)


def lower_concatenation(ctx, operator):
    sources = [ctx.input_activation(operator, position) for position in range(len(operator.inputs))]
    output = ctx.output_activation(operator)
    rank = len(output.shape) + 1
    axis = int(operator.options.get("axis", 0))
    if not -rank <= axis < rank or axis % rank == 0:
        raise ctx.fail(
            operator, f"concatenates along axis {axis} of {rank}-D tensors; si4tool has batch 1, axes 1 to {rank - 1}"
        )
    if any(len(s.shape) != len(output.shape) for s in sources):
        raise ctx.fail(operator, f"has inputs of shapes {[[1, *s.shape] for s in sources]} and ranks unlike its output's")
    parts = ctx.quantized(
        operator, prepare_concatenation, [s.shape for s in sources], axis % rank - 1,
        [(s.scale, s.zero_point) for s in sources], (output.scale, output.zero_point),
        operator.options.get("activation", 0),
    )  # fmt: skip
    expected = list(sources[0].shape)
    expected[axis % rank - 1] = sum(s.shape[axis % rank - 1] for s in sources)
    if tuple(expected) != tuple(output.shape):
        raise ctx.fail(operator, f"has output shape {[1, *output.shape]}, but its inputs give {[1, *expected]}")
    extra = tuple((f"part{index}", part) for index, part in enumerate(parts))
    return ctx.layer("concatenation", operator, sources, output, None, extra_params=extra)


def _render_concatenation(layer, buffers) -> str:
    """One call per input: each copies its slab into its columns of the output."""
    calls = [
        f"si4_concatenation_s8({params}, {source}, {buffers.output})"
        for params, source in zip(buffers.params, buffers.inputs)
    ]
    return ";\n    ".join(calls)


SPEC = OpSpec(
    op="concatenation",
    summary="concatenation of several tensors along one axis",
    builtins=("CONCATENATION",),
    params_type=ConcatenationParams,
    kernel="si4_concatenation_s8",
    lower=lower_concatenation,
    reference=lambda layer, inputs: reference_concatenation([part for _, part in layer.extra_params], inputs),
    options=(CONCATENATION_OPTIONS,),
    keras_layers=("Concatenate",),
    constraints=Constraints(
        dtypes="int8 (every input quantized as the output, as TFLite Micro requires)",
        activations="NONE",
        notes="any axis but the batch; any number of inputs (one kernel call each)",
    ),
    render_call=_render_concatenation,
)
