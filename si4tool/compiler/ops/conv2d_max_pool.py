"""conv2d_max_pool: a CONV_2D and the MAX_POOL_2D that reads it, fused by passes.fuse_conv2d_max_pool.

The kernel (si4_conv2d_max_pool_s8) pools the int32 accumulators and requantizes once per pooled
value, so the full-resolution convolution output never exists in RAM. That equals TFLM's
conv-then-pool only while requantization is monotonic non-decreasing: a non-negative
multiplier, and no int32 wrap in `acc << left_shift` or in the zero-point addition.
`fusion_is_exact` proves the latter from a static bound on the accumulators.
"""

from __future__ import annotations

import numpy as np

from si4tool.compiler import fixed_point
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.conv2d import CONSTANTS, Conv2DParams, conv2d_macs, reference_conv2d
from si4tool.compiler.ops.pooling import reference_max_pool


def accumulator_bounds(layer) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, the lowest and highest int32 accumulator the convolution can produce.

    acc = bias + sum over taps of (x + input_offset) * w, with x anywhere in [-128, 127]; a tap
    on padding contributes 0, so each tap's range includes 0."""
    p = layer.params
    weights = layer.constants["filter"].astype(np.int64).reshape(p.output_channels, -1)
    low_input, high_input = -128 + p.input_offset, 127 + p.input_offset
    tap_low = np.minimum(np.minimum(weights * low_input, weights * high_input), 0)
    tap_high = np.maximum(np.maximum(weights * low_input, weights * high_input), 0)
    bias = layer.constants["bias"].astype(np.int64)
    return bias + tap_low.sum(axis=1), bias + tap_high.sum(axis=1)


def fusion_is_exact(layer) -> bool:
    """Whether pooling this conv2d's accumulators before requantizing gives TFLM's result bit for bit."""
    p = layer.params
    multiplier, shift = fixed_point.channel_quantization(
        layer.constants["output_multiplier"], layer.constants["output_shift"], p.output_channels, p.per_channel
    )
    if np.any(multiplier < 0):
        return False
    low, high = accumulator_bounds(layer)
    left_shift = np.maximum(shift, 0)
    if np.any(low < fixed_point.INT32_MIN) or np.any(high > fixed_point.INT32_MAX):
        return False  # the accumulator itself may wrap
    if np.any(low * (1 << left_shift) < fixed_point.INT32_MIN) or np.any(high * (1 << left_shift) > fixed_point.INT32_MAX):
        return False  # acc << left_shift may wrap
    # Without wrap the scaling is monotonic, so its extremes come from the extreme accumulators.
    scaled_low = fixed_point.multiply_by_quantized_multiplier(low, multiplier, shift)
    scaled_high = fixed_point.multiply_by_quantized_multiplier(high, multiplier, shift)
    offset = p.output_offset
    return bool(np.all(scaled_low + offset >= fixed_point.INT32_MIN) and np.all(scaled_high + offset <= fixed_point.INT32_MAX))


def reference_conv2d_max_pool(layer, inputs):
    """The meaning the fused kernel must reproduce: the convolution, then the pooling."""
    conv = reference_conv2d(layer.params, inputs[0], *[layer.constants[key] for key, _ in CONSTANTS])
    return reference_max_pool(layer.pool_params, conv)


SPEC = OpSpec(
    op="conv2d_max_pool",
    summary="CONV_2D + MAX_POOL_2D in one pass (made by a pass, not read from TFLite)",
    builtins=(),
    params_type=Conv2DParams,  # and PoolParams in Layer.pool_params: kernel(&conv, &pool, ...)
    kernel="si4_conv2d_max_pool_s8",
    lower=None,
    reference=reference_conv2d_max_pool,
    constants=CONSTANTS,
    macs=conv2d_macs,
    constraints=Constraints(notes="only when a static accumulator bound proves the fusion exact"),
)
