"""FULLY_CONNECTED (TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel).

TFLite flattens every dimension of the input but the last into rows ("batches"): TFLM takes
batches = the output's elements / its last dimension (the filter's rows) and reads the input as
batches rows of the filter's columns. The model's batch dimension is 1; the rows come from the
other leading dimensions: an input [1, N, K] with keep_num_dims gives an output [1, N, O], the
converter's form of a Dense over a sequence (N rows); without keep_num_dims the output is
[rows, O] (a tensor of one inference whose first dimension counts rows, read only by operators
that take flat rows: LoweringContext.activation), and an input [1, H, W, C] that is one row
(H*W*C = K) gives [1, O]. The C kernel loops over the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler import fixed_point, quant_math
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.ops.conv2d import CONSTANTS, constants
from si4tool.compiler.tflite_reader import TENSOR_TYPE_INT8, OptionLayout

FULLY_CONNECTED_OPTIONS = OptionLayout(8, "FullyConnectedOptions", (
    ("activation", 0, "b", 0), ("weights_format", 1, "b", 0), ("keep_num_dims", 2, "B", 0),
))  # fmt: skip


@dataclass(frozen=True)
class FullyConnectedParams:
    input_size: int
    output_size: int
    input_offset: int
    filter_offset: int
    output_offset: int
    activation_min: int
    activation_max: int
    per_channel: int
    batches: int  # rows of the input, each input_size values, each giving output_size outputs


# TFLM's Prepare (GetQuantizedConvolutionMultipler) refuses a per-tensor FULLY_CONNECTED whose bias
# scale strays from input scale x filter scale by more than this fraction of the output scale: the
# kernel adds the bias as if it had the product's scale.
MAX_BIAS_SCALE_DIFFERENCE = 0.02


def _check_bias_scale(ctx, operator, product_scale: float, output_scale: float) -> None:
    bias = ctx.tensor(operator, 2, optional=True)
    if bias is None or bias.quantization is None or not bias.quantization.scale:
        return
    # In double precision from the float32 scales, as TFLM computes it.
    product = float(np.float32(np.float32(product_scale)))
    difference = abs(product - float(np.float32(bias.quantization.scale[0])))
    if difference / float(np.float32(output_scale)) > MAX_BIAS_SCALE_DIFFERENCE:
        raise ctx.fail(
            operator,
            f"has a bias scale of {bias.quantization.scale[0]:g} where input scale x filter scale is {product:g}; "
            f"TFLite Micro refuses a difference above {MAX_BIAS_SCALE_DIFFERENCE:g} of the output scale",
        )


def lower_fully_connected(ctx, operator):
    # Rows: [rows, inputs] in and [rows, outputs] out without keep_num_dims (ctx.activation).
    source = ctx.input_activation(operator, rows_ok=True)
    output = ctx.output_activation(operator, rows_ok=True)
    if operator.options.get("weights_format", 0) != 0:
        raise ctx.fail(operator, "uses shuffled weights; only the DEFAULT weights format is supported")
    filter_tensor = ctx.tensor(operator, 1)
    weights = ctx.constant(operator, filter_tensor, TENSOR_TYPE_INT8, np.int8, "filter")
    if weights.ndim != 2:
        raise ctx.fail(operator, f"has a filter of shape {list(weights.shape)}, expected [outputs, inputs]")
    output_size, input_size = weights.shape
    # TFLM: batches = the output's elements / its last dimension; the input is batches rows of input_size.
    output_depth = output.shape[-1] if output.shape else 1
    batches = output.size_bytes // output_size if output_depth == output_size else 0
    if batches < 1 or output.size_bytes != batches * output_size or source.size_bytes != batches * input_size:
        raise ctx.fail(
            operator,
            f"maps an input of shape {[1, *source.shape]} to an output of shape {[1, *output.shape]} with a "
            f"{output_size}x{input_size} filter; TFLite needs the input as rows of {input_size} values and the "
            f"output as as many rows of {output_size}",
        )
    scales = ctx.filter_scales(operator, filter_tensor, output_size, axis=0)
    if len(scales) > 1:
        multipliers, shifts = ctx.quantized(operator, quant_math.per_channel_multipliers, source.scale, scales, output.scale)
    else:
        _check_bias_scale(ctx, operator, source.scale * scales[0], output.scale)
        multiplier, shift = ctx.quantized(
            operator, quant_math.fully_connected_multiplier, source.scale, scales[0], output.scale
        )
        multipliers, shifts = [multiplier], [shift]
    activation_min, activation_max = ctx.clamp(operator, output)
    params = FullyConnectedParams(
        input_size=input_size, output_size=output_size,
        input_offset=-source.zero_point, filter_offset=0, output_offset=output.zero_point,
        activation_min=activation_min, activation_max=activation_max, per_channel=int(len(scales) > 1),
        batches=batches,
    )  # fmt: skip
    arrays = constants(weights, ctx.bias(operator, output_size), multipliers, shifts)
    return ctx.layer("fully_connected", operator, [source], output, params, arrays)


def reference_fully_connected(p: FullyConnectedParams, input, filter, bias, output_multiplier, output_shift) -> np.ndarray:
    """TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel, p.batches rows, flat output."""
    x = np.asarray(input, dtype=np.int64).reshape(p.batches, p.input_size) + p.input_offset
    w = np.asarray(filter, dtype=np.int64).reshape(p.output_size, p.input_size) + p.filter_offset
    acc = x @ w.T  # [batches, output_size]
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64).reshape(-1)[: p.output_size]
    multiplier, shift = fixed_point.channel_quantization(output_multiplier, output_shift, p.output_size, p.per_channel)
    return fixed_point.requantize(acc, multiplier, shift, p.output_offset, p.activation_min, p.activation_max).reshape(-1)


# The DSP build's per-tensor class (kernels/dsp/si4_dsp_util.h si4_dsp_fc_per_tensor_fits).
PER_TENSOR_MAX_INPUT = 256
PER_TENSOR_MAX_RIGHT_SHIFT = 22


def per_tensor_fits(layer) -> bool:
    """si4_dsp_fc_per_tensor_fits: the DSP per-tensor kernel's fused loop takes this layer."""
    p = layer.params
    multiplier = int(layer.constants["output_multiplier"][0])
    right_shift = -int(layer.constants["output_shift"][0])
    return (not p.per_channel and p.filter_offset == 0 and p.input_size % 4 == 0
            and 4 <= p.input_size <= PER_TENSOR_MAX_INPUT and 1 <= right_shift <= PER_TENSOR_MAX_RIGHT_SHIFT
            and multiplier >= 0 and -128 <= p.output_offset <= 127)


def fully_connected_kernel(layer) -> str:
    """The per-tensor class's kernel where it applies (so that a model whose dense layers all
    fit links only its loop), else the general one; both give the same bytes for any layer."""
    return "si4_fully_connected_per_tensor_s8" if per_tensor_fits(layer) else "si4_fully_connected_s8"


SPEC = OpSpec(
    op="fully_connected",
    summary="dense layer over the input's rows, filter [outputs][inputs]",
    builtins=("FULLY_CONNECTED",),
    params_type=FullyConnectedParams,
    kernel="si4_fully_connected_s8",
    choose_kernel=fully_connected_kernel,
    lower=lower_fully_connected,
    reference=lambda layer, inputs: reference_fully_connected(
        layer.params, inputs[0], *[layer.constants[key] for key, _ in CONSTANTS]
    ),
    constants=CONSTANTS,
    options=(FULLY_CONNECTED_OPTIONS,),
    macs=lambda layer: layer.params.batches * layer.params.input_size * layer.params.output_size,
    keras_layers=("Dense",),
    constraints=Constraints(
        dtypes="int8 activations, int8 symmetric weights (per-channel or per-tensor), int32 bias",
        activations="NONE, RELU, RELU6, RELU_N1_TO_1 (fused)",
        notes="any input rank: all but the last dimension are rows (keep_num_dims keeps them in the output shape); "
        "DEFAULT weights format",
    ),
)
