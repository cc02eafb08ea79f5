"""The iteration of a broadcast binary int8 operator (MUL, SUB), as TFLM walks it.

TFLM's BroadcastBinaryOpSimple (kernels/internal/reference/binary_function.h,
reached from BroadcastMul6DSlow and BroadcastQuantSubSlow) extends both input
shapes to six dimensions with leading ones and steps through the output in
row-major order, reading each input at index 0 along a dimension where it has
extent 1: NumPy broadcasting. The C kernels take that as a shape and, per
input, a step per dimension (0 where broadcast), so one loop nest serves the
same-shape case (TFLM's elementwise path gives the same bytes) and every
broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.errors import UserError

BROADCAST_DIMS = 6


@dataclass(frozen=True)
class BroadcastParams:
    shape0: int
    shape1: int
    shape2: int
    shape3: int
    shape4: int
    shape5: int
    input1_stride0: int
    input1_stride1: int
    input1_stride2: int
    input1_stride3: int
    input1_stride4: int
    input1_stride5: int
    input2_stride0: int
    input2_stride1: int
    input2_stride2: int
    input2_stride3: int
    input2_stride4: int
    input2_stride5: int

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(getattr(self, f"shape{d}") for d in range(BROADCAST_DIMS))


def _steps(shape: tuple[int, ...], output_shape: tuple[int, ...]) -> list[int]:
    steps, step = [0] * BROADCAST_DIMS, 1
    for d in reversed(range(BROADCAST_DIMS)):
        steps[d] = 0 if shape[d] == 1 and output_shape[d] != 1 else step
        step *= shape[d]
    return steps


def prepare_broadcast(input1_shape, input2_shape, what: str) -> tuple[BroadcastParams, tuple[int, ...]]:
    """(params, output shape) for two input shapes; refuses shapes NumPy/TFLite would not broadcast."""
    shape1, shape2 = tuple(int(d) for d in input1_shape), tuple(int(d) for d in input2_shape)
    if max(len(shape1), len(shape2)) > BROADCAST_DIMS:
        raise UserError(f"{what} has an input of more than {BROADCAST_DIMS} dimensions, which TFLite Micro rejects")
    try:
        output_shape = tuple(int(d) for d in np.broadcast_shapes(shape1, shape2))
    except ValueError:
        raise UserError(f"{what}'s input shapes {shape1} and {shape2} do not broadcast") from None
    pad = BROADCAST_DIMS
    full1 = (1,) * (pad - len(shape1)) + shape1
    full2 = (1,) * (pad - len(shape2)) + shape2
    full_out = (1,) * (pad - len(output_shape)) + output_shape
    params = BroadcastParams(*full_out, *_steps(full1, full_out), *_steps(full2, full_out))
    return params, output_shape


def broadcast_inputs(params: BroadcastParams, input1, input2) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as int64 arrays of the six-dimensional output shape (the reference's view)."""
    out = params.output_shape

    def expand(values, prefix):
        steps = [getattr(params, f"{prefix}_stride{d}") for d in range(BROADCAST_DIMS)]
        flat = np.asarray(values, dtype=np.int64).reshape(-1)
        index = np.zeros(out, dtype=np.int64)
        for d, step in enumerate(steps):
            shape = [1] * BROADCAST_DIMS
            shape[d] = out[d]
            index = index + (np.arange(out[d], dtype=np.int64) * step).reshape(shape)
        return flat[index]

    return expand(input1, "input1"), expand(input2, "input2")
