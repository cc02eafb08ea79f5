"""CONV_2D and DEPTHWISE_CONV_2D: per-channel int8 convolutions (TFLM ConvPerChannel, DepthwiseConvPerChannel).

Both share the window, the padding and the per-channel requantization
(PopulateConvolutionQuantizationParams, kernel_util.cc); they differ in the filter layout
(OHWI against 1HWO, so the per-channel scales lie on axis 0 or 3) and the depth multiplier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler import fixed_point, quant_math
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.tflite_reader import TENSOR_TYPE_INT8, OptionLayout

CONV_2D_OPTIONS = OptionLayout(1, "Conv2DOptions", (
    ("padding", 0, "b", 0), ("stride_w", 1, "i", 0), ("stride_h", 2, "i", 0), ("activation", 3, "b", 0),
    ("dilation_w", 4, "i", 1), ("dilation_h", 5, "i", 1),
))  # fmt: skip
DEPTHWISE_CONV_2D_OPTIONS = OptionLayout(2, "DepthwiseConv2DOptions", (
    ("padding", 0, "b", 0), ("stride_w", 1, "i", 0), ("stride_h", 2, "i", 0), ("depth_multiplier", 3, "i", 0),
    ("activation", 4, "b", 0), ("dilation_w", 5, "i", 1), ("dilation_h", 6, "i", 1),
))  # fmt: skip

CONSTANTS = (("filter", "int8_t"), ("bias", "int32_t"), ("output_multiplier", "int32_t"), ("output_shift", "int32_t"))


@dataclass(frozen=True)
class Conv2DParams:
    input_height: int
    input_width: int
    input_channels: int
    output_height: int
    output_width: int
    output_channels: int
    kernel_height: int
    kernel_width: int
    stride_height: int
    stride_width: int
    dilation_height: int
    dilation_width: int
    pad_top: int
    pad_left: int
    input_offset: int
    output_offset: int
    activation_min: int
    activation_max: int
    per_channel: int


@dataclass(frozen=True)
class DepthwiseConv2DParams:
    input_height: int
    input_width: int
    input_channels: int
    output_height: int
    output_width: int
    output_channels: int
    depth_multiplier: int
    kernel_height: int
    kernel_width: int
    stride_height: int
    stride_width: int
    dilation_height: int
    dilation_width: int
    pad_top: int
    pad_left: int
    input_offset: int
    output_offset: int
    activation_min: int
    activation_max: int
    per_channel: int


def constants(weights: np.ndarray, bias: np.ndarray, multipliers, shifts) -> dict[str, np.ndarray]:
    """The kernel's constant arrays, in the C element types (shared with fully_connected)."""
    return {
        "filter": np.ascontiguousarray(weights, dtype=np.int8),
        "bias": np.ascontiguousarray(bias, dtype=np.int32),
        "output_multiplier": np.asarray(multipliers, dtype=np.int32),
        "output_shift": np.asarray(shifts, dtype=np.int32),
    }


# ----------------------------------------------------------------------------------------------
# Lowering


def lower_convolution(ctx, operator, depthwise: bool):
    source = ctx.input_activation(operator)
    output = ctx.output_activation(operator)
    in_h, in_w, in_c = ctx.spatial(operator, source)
    out_h, out_w, out_c = ctx.spatial(operator, output)
    filter_tensor = ctx.tensor(operator, 1)
    weights = ctx.constant(operator, filter_tensor, TENSOR_TYPE_INT8, np.int8, "filter")
    if depthwise:
        layout_ok = weights.ndim == 4 and weights.shape[0] == 1 and weights.shape[3] == out_c and out_c % in_c == 0
    else:
        layout_ok = weights.ndim == 4 and weights.shape[0] == out_c and weights.shape[3] == in_c
    if not layout_ok:
        raise ctx.fail(operator, f"has filter shape {list(weights.shape)} for {in_c} -> {out_c} channels")
    kernel_h, kernel_w = weights.shape[1], weights.shape[2]
    options = operator.options
    dilation = (options.get("dilation_h", 1), options.get("dilation_w", 1))
    pad_top, pad_left = ctx.window(operator, (in_h, in_w), (kernel_h, kernel_w), (out_h, out_w), dilation)
    scales = ctx.filter_scales(operator, filter_tensor, out_c, axis=3 if depthwise else 0)
    multipliers, shifts = ctx.quantized(operator, quant_math.per_channel_multipliers, source.scale, scales, output.scale)
    activation_min, activation_max = ctx.clamp(operator, output)
    common = dict(
        input_height=in_h, input_width=in_w, input_channels=in_c,
        output_height=out_h, output_width=out_w, output_channels=out_c,
        kernel_height=kernel_h, kernel_width=kernel_w,
        stride_height=options["stride_h"], stride_width=options["stride_w"],
        dilation_height=dilation[0], dilation_width=dilation[1],
        pad_top=pad_top, pad_left=pad_left,
        input_offset=-source.zero_point, output_offset=output.zero_point,
        activation_min=activation_min, activation_max=activation_max,
        per_channel=int(len(scales) > 1),
    )  # fmt: skip
    if depthwise:
        params = DepthwiseConv2DParams(depth_multiplier=out_c // in_c, **common)
    else:
        params = Conv2DParams(**common)
    arrays = constants(weights, ctx.bias(operator, out_c), multipliers, shifts)
    return ctx.layer("depthwise_conv2d" if depthwise else "conv2d", operator, [source], output, params, arrays)


def lower_conv2d(ctx, operator):
    return lower_convolution(ctx, operator, depthwise=False)


def lower_depthwise_conv2d(ctx, operator):
    return lower_convolution(ctx, operator, depthwise=True)


# ----------------------------------------------------------------------------------------------
# NumPy references


def _padded_offset_input(x: np.ndarray, pad_top: int, pad_left: int, rows_needed: int, cols_needed: int):
    """Input plus offset, zero outside the image: a zero there contributes nothing, which is
    exactly TFLM's skipping of padding positions. A negative pad_top (an in-place band that holds
    rows above its first window) drops the rows no window reaches."""
    if pad_top < 0:
        x, pad_top = x[-pad_top:], 0
    height, width, channels = x.shape
    bottom = max(0, rows_needed - pad_top - height)
    right = max(0, cols_needed - pad_left - width)
    padded = np.zeros((pad_top + height + bottom, pad_left + width + right, channels), dtype=np.int64)
    padded[pad_top : pad_top + height, pad_left : pad_left + width] = x
    return padded


def _windows(p, x: np.ndarray):
    """(ky, kx, patch): the padded, offset input under each filter tap, over all output positions."""
    rows_needed = (p.output_height - 1) * p.stride_height + (p.kernel_height - 1) * p.dilation_height + 1
    cols_needed = (p.output_width - 1) * p.stride_width + (p.kernel_width - 1) * p.dilation_width + 1
    padded = _padded_offset_input(x + p.input_offset, p.pad_top, p.pad_left, rows_needed, cols_needed)
    if isinstance(p, DepthwiseConv2DParams):
        padded = np.repeat(padded, p.depth_multiplier, axis=2)  # output channel oc reads oc // multiplier
    out_rows = np.arange(p.output_height) * p.stride_height
    out_cols = np.arange(p.output_width) * p.stride_width
    for ky in range(p.kernel_height):
        for kx in range(p.kernel_width):
            yield ky, kx, padded[out_rows + ky * p.dilation_height][:, out_cols + kx * p.dilation_width]


def conv2d_accumulators(p: Conv2DParams, input, filter, bias) -> np.ndarray:
    """int32 accumulators of TFLM's ConvPerChannel (bias included), (OH, OW, OC), as int64."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_height, p.input_width, p.input_channels)
    w = np.asarray(filter, dtype=np.int64).reshape(p.output_channels, p.kernel_height, p.kernel_width, p.input_channels)
    acc = np.zeros((p.output_height, p.output_width, p.output_channels), dtype=np.int64)
    for ky, kx, patch in _windows(p, x):
        acc += patch @ w[:, ky, kx, :].T
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64).reshape(-1)[: p.output_channels]
    return acc


def reference_conv2d(p: Conv2DParams, input, filter, bias, output_multiplier, output_shift) -> np.ndarray:
    """TFLM reference_integer_ops::ConvPerChannel, NHWC batch 1 -> (OH, OW, OC) int8."""
    acc = conv2d_accumulators(p, input, filter, bias)
    multiplier, shift = fixed_point.channel_quantization(output_multiplier, output_shift, p.output_channels, p.per_channel)
    return fixed_point.requantize(acc, multiplier, shift, p.output_offset, p.activation_min, p.activation_max)


def reference_depthwise_conv2d(p: DepthwiseConv2DParams, input, filter, bias, output_multiplier, output_shift) -> np.ndarray:
    """TFLM reference_integer_ops::DepthwiseConvPerChannel: output channel oc = ic * depth_multiplier + m
    sees only input channel ic."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_height, p.input_width, p.input_channels)
    w = np.asarray(filter, dtype=np.int64).reshape(p.kernel_height, p.kernel_width, p.output_channels)
    acc = np.zeros((p.output_height, p.output_width, p.output_channels), dtype=np.int64)
    for ky, kx, patch in _windows(p, x):
        acc += patch * w[ky, kx, :]
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64).reshape(-1)[: p.output_channels]
    multiplier, shift = fixed_point.channel_quantization(output_multiplier, output_shift, p.output_channels, p.per_channel)
    return fixed_point.requantize(acc, multiplier, shift, p.output_offset, p.activation_min, p.activation_max)


def _arrays(layer):
    return [layer.constants[key] for key, _ in CONSTANTS]


def conv2d_macs(layer) -> int:
    p = layer.params
    return p.output_height * p.output_width * p.output_channels * p.kernel_height * p.kernel_width * p.input_channels


def depthwise_macs(layer) -> int:
    p = layer.params
    return p.output_height * p.output_width * p.output_channels * p.kernel_height * p.kernel_width


_CONV_CONSTRAINTS = dict(
    dtypes="int8 activations, int8 symmetric weights (per-channel or per-tensor), int32 bias",
    paddings="SAME, VALID",
    strides="any",
    activations="NONE, RELU, RELU6, RELU_N1_TO_1 (fused)",
)

# ----------------------------------------------------------------------------------------------
# The kernel of each layer's shape class (si4_nn.h): the DSP twins' own tests, ported value for
# value, so each layer links only the paths it runs. A layer sent to a class's kernel is taken
# by its fast path; the C kernels would still compute any other shape exactly (slowly), so a
# disagreement here would cost instructions, never bytes (bench-models shows both).

DSP_COLUMN_TAPS = 4 * 72  # 4 * SI4_DSP_COLUMN_GROUPS (si4_dsp_util.h)
FEW_MAX_CHANNELS = 4  # kernels/dsp/si4_conv2d_few_channels_s8.c
FEW_MIN_TAPS, FEW_MAX_TAPS, FEW_MAX_GROUPS = 8, 64, 16


def _pointwise_channel_form(multiplier: int, shift: int, bias: int, terms_bound: int) -> int:
    """pw_channel_form: 1 short, 2 wide, 0 neither (si4_conv2d_1x1_s8.c says what they are)."""
    limit = (1 << 30) - terms_bound
    if multiplier == 0 or (-22 <= shift <= -1 and -limit < bias < limit):
        return 1
    return 2 if multiplier > 0 and -31 <= shift <= -2 else 0


def pointwise_fits(p: Conv2DParams, bias, multipliers, shifts) -> bool:
    """pw_layer_fits and every channel's pw_channel_form: the DSP 1x1 kernel's fast path takes this layer."""
    channels = p.input_channels
    if (p.kernel_height, p.kernel_width, p.pad_top, p.pad_left) != (1, 1, 0, 0) or channels % 4 or channels > DSP_COLUMN_TAPS:
        return False
    if not (-128 <= p.input_offset <= 128 and -128 <= p.output_offset <= 127 and p.activation_min >= -128 and p.activation_max <= 127):
        return False
    terms_bound = channels * 128 * max(abs(-128 + p.input_offset), abs(127 + p.input_offset))
    for channel in range(p.output_channels):
        index = channel if p.per_channel else 0
        if _pointwise_channel_form(int(multipliers[index]), int(shifts[index]), int(bias[channel]), terms_bound) == 0:
            return False
    return True


def few_channels_fit(p: Conv2DParams) -> bool:
    """few_fits: the DSP few-channel im2col takes this layer (1 to 4 input channels, 8 to 64 taps)."""
    taps = p.kernel_height * p.kernel_width * p.input_channels
    if p.input_channels > FEW_MAX_CHANNELS or (p.dilation_height, p.dilation_width) != (1, 1) or not FEW_MIN_TAPS <= taps <= FEW_MAX_TAPS:
        return False
    run = p.kernel_width * p.input_channels
    pairs = p.kernel_height * 2 * (run >> 2) + (p.kernel_height * (run & 3) + 1) // 2
    return (pairs + 1) // 2 <= FEW_MAX_GROUPS


def conv2d_kernel(layer) -> str:
    """The kernel for a CONV_2D layer, in the order the general kernel's dispatcher used to try
    them: 1x1, then one input channel 3x3, then few channels."""
    p = layer.params
    arrays = layer.constants
    if (p.kernel_height, p.kernel_width) == (1, 1):
        fits = pointwise_fits(p, arrays["bias"], arrays["output_multiplier"], arrays["output_shift"])
        return "si4_conv2d_1x1_s8" if fits else "si4_conv2d_s8"
    one_channel_3x3 = p.input_channels == 1 and (p.kernel_height, p.kernel_width) == (3, 3) and (p.dilation_height, p.dilation_width) == (1, 1)
    if one_channel_3x3:
        return "si4_conv2d_1ch_3x3_s8"
    if few_channels_fit(p):
        return "si4_conv2d_few_channels_s8"
    return "si4_conv2d_s8"


SPECS = (
    OpSpec(
        op="conv2d",
        summary="2-D convolution, NHWC, filter OHWI",
        builtins=("CONV_2D",),
        params_type=Conv2DParams,
        kernel="si4_conv2d_s8",
        choose_kernel=conv2d_kernel,
        lower=lower_conv2d,
        reference=lambda layer, inputs: reference_conv2d(layer.params, inputs[0], *_arrays(layer)),
        constants=CONSTANTS,
        options=(CONV_2D_OPTIONS,),
        macs=conv2d_macs,
        keras_layers=("Conv2D",),
        constraints=Constraints(**_CONV_CONSTRAINTS, notes="dilation inside CONV_2D; fused with a following MAX_POOL_2D when exact"),
    ),
    OpSpec(
        op="depthwise_conv2d",
        summary="depthwise 2-D convolution, any depth multiplier, filter 1HWC",
        builtins=("DEPTHWISE_CONV_2D",),
        params_type=DepthwiseConv2DParams,
        kernel="si4_depthwise_conv2d_s8",
        lower=lower_depthwise_conv2d,
        reference=lambda layer, inputs: reference_depthwise_conv2d(layer.params, inputs[0], *_arrays(layer)),
        constants=CONSTANTS,
        options=(DEPTHWISE_CONV_2D_OPTIONS,),
        macs=depthwise_macs,
        keras_layers=("DepthwiseConv2D",),
        constraints=Constraints(**_CONV_CONSTRAINTS, notes="dilation inside DEPTHWISE_CONV_2D"),
    ),
)
