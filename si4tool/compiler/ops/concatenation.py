"""CONCATENATION along any axis, int8: TFLM micro/kernels/concatenation.cc (bytes copied).

TFLM's int8 Prepare requires every input to have the output's scale and zero
point ("no re-scaling needed for Int8"); it does not requantize, so neither
does si4tool: differing quantizations are refused. One params struct per
input; the kernel copies that input's rows into its columns of the output.
C: si4_concatenation_s8.c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.errors import UserError


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
