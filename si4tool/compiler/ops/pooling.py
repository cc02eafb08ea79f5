"""MAX_POOL_2D and AVERAGE_POOL_2D (TFLM reference_integer_ops::MaxPool, AveragePool)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.tflite_reader import OptionLayout

POOL_2D_OPTIONS = OptionLayout(5, "Pool2DOptions", (
    ("padding", 0, "b", 0), ("stride_w", 1, "i", 0), ("stride_h", 2, "i", 0),
    ("filter_w", 3, "i", 0), ("filter_h", 4, "i", 0), ("activation", 5, "b", 0),
))  # fmt: skip


@dataclass(frozen=True)
class PoolParams:
    input_height: int
    input_width: int
    channels: int
    output_height: int
    output_width: int
    filter_height: int
    filter_width: int
    stride_height: int
    stride_width: int
    pad_top: int
    pad_left: int
    activation_min: int
    activation_max: int


def lower_pool_2d(ctx, operator, op: str):
    source = ctx.input_activation(operator)
    output = ctx.output_activation(operator)
    in_h, in_w, channels = ctx.spatial(operator, source)
    out_h, out_w, out_c = ctx.spatial(operator, output)
    if out_c != channels:
        raise ctx.fail(operator, f"changes the channel count from {channels} to {out_c}")
    if abs(source.scale - output.scale) > 1e-6 or source.zero_point != output.zero_point:
        # TFLM's PoolingPrepare rejects this too.
        raise ctx.fail(operator, "has different input and output quantization")
    options = operator.options
    filter_hw = (options.get("filter_h", 0), options.get("filter_w", 0))
    pad_top, pad_left = ctx.window(operator, (in_h, in_w), filter_hw, (out_h, out_w))
    activation_min, activation_max = ctx.clamp(operator, output)
    params = PoolParams(
        input_height=in_h, input_width=in_w, channels=channels, output_height=out_h, output_width=out_w,
        filter_height=filter_hw[0], filter_width=filter_hw[1],
        stride_height=options["stride_h"], stride_width=options["stride_w"],
        pad_top=pad_top, pad_left=pad_left, activation_min=activation_min, activation_max=activation_max,
    )  # fmt: skip
    return ctx.layer(op, operator, [source], output, params)


def _pool_windows(p: PoolParams):
    """Yield (out_y, out_x, row slice, col slice) with the window clipped to the input, as TFLM's
    pooling computes filter_{x,y}_{start,end}."""
    for out_y in range(p.output_height):
        y0 = out_y * p.stride_height - p.pad_top
        rows = slice(max(y0, 0), min(y0 + p.filter_height, p.input_height))
        for out_x in range(p.output_width):
            x0 = out_x * p.stride_width - p.pad_left
            cols = slice(max(x0, 0), min(x0 + p.filter_width, p.input_width))
            yield out_y, out_x, rows, cols


def reference_max_pool(p: PoolParams, input) -> np.ndarray:
    """TFLM reference_integer_ops::MaxPool: max from -128 over the valid window, then clamp."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_height, p.input_width, p.channels)
    out = np.empty((p.output_height, p.output_width, p.channels), dtype=np.int64)
    for out_y, out_x, rows, cols in _pool_windows(p):
        window = x[rows, cols].reshape(-1, p.channels)
        out[out_y, out_x] = np.max(np.vstack([np.full((1, p.channels), -128), window]), axis=0)
    return np.clip(out, p.activation_min, p.activation_max).astype(np.int8)


def reference_avg_pool(p: PoolParams, input) -> np.ndarray:
    """TFLM reference_integer_ops::AveragePool: (sum +/- count/2) / count, truncating division,
    count = window positions inside the input."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_height, p.input_width, p.channels)
    out = np.empty((p.output_height, p.output_width, p.channels), dtype=np.int64)
    for out_y, out_x, rows, cols in _pool_windows(p):
        window = x[rows, cols].reshape(-1, p.channels)
        count = window.shape[0]
        if count == 0:
            raise ValueError("a pooling window lies wholly in the padding (TFLM rejects it too)")
        total = window.sum(axis=0)
        rounded = np.where(total > 0, total + count // 2, total - count // 2)
        out[out_y, out_x] = np.where(rounded >= 0, rounded // count, -((-rounded) // count))
    return np.clip(out, p.activation_min, p.activation_max).astype(np.int8)


_CONSTRAINTS = dict(
    dtypes="int8, same input and output quantization",
    paddings="SAME, VALID",
    strides="any",
    activations="NONE, RELU, RELU6, RELU_N1_TO_1 (fused)",
)

SPECS = (
    OpSpec(
        op="max_pool",
        summary="2-D max pooling, window clipped at the borders",
        builtins=("MAX_POOL_2D",),
        params_type=PoolParams,
        kernel="si4_max_pool_s8",
        lower=lambda ctx, operator: lower_pool_2d(ctx, operator, "max_pool"),
        reference=lambda layer, inputs: reference_max_pool(layer.params, inputs[0]),
        options=(POOL_2D_OPTIONS,),
        keras_layers=("MaxPooling2D",),
        constraints=Constraints(**_CONSTRAINTS),
    ),
    OpSpec(
        op="avg_pool",
        summary="2-D average pooling over the window positions inside the input",
        builtins=("AVERAGE_POOL_2D",),
        params_type=PoolParams,
        kernel="si4_avg_pool_s8",
        lower=lambda ctx, operator: lower_pool_2d(ctx, operator, "avg_pool"),
        reference=lambda layer, inputs: reference_avg_pool(layer.params, inputs[0]),
        options=(POOL_2D_OPTIONS,),
        keras_layers=("AveragePooling2D",),
        constraints=Constraints(**_CONSTRAINTS),
    ),
)
