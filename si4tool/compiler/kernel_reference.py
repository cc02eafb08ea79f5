"""Independent NumPy reference implementations of the int8 kernels.

Each function here restates, from TensorFlow Lite Micro's reference kernels
(tensorflow/lite/kernels/internal/reference/integer_ops/ and
reference/softmax.h, with gemmlowp's fixedpoint.h), the exact integer
arithmetic the C kernels in firmware_stub/kernels/ must reproduce. They are
written independently of the C code (vectorised over positions, int64
intermediates, explicit int32 wrap-around where TFLM relies on it) so that a
test comparing the two can catch a mistake in either.

Also here: the build-time parameter maths TFLite does at prepare time
(`quantize_multiplier`, `preprocess_softmax_scaling`, `calculate_input_radius`,
`compute_padding`), used by the IR lowering so that every constant emitted
into C is computed exactly as TFLM would compute it.

Params dataclasses mirror the C structs in si4_nn.h field for field, in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


# ----------------------------------------------------------------------------
# Parameter structs (same fields, same order as si4_nn.h)


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


@dataclass(frozen=True)
class SoftmaxParams:
    rows: int
    row_size: int
    input_multiplier: int
    input_left_shift: int
    diff_min: int


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


# ----------------------------------------------------------------------------
# Build-time parameter maths (tensorflow/lite/kernels/internal/quantization_util.cc,
# tensorflow/lite/kernels/padding.h)


def _round_half_away_from_zero(value: float) -> int:
    """TfLiteRound / std::round on a double."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = multiplier * 2^(shift - 31).

    frexp gives real = q * 2^shift with q in [0.5, 1); q * 2^31 is rounded half
    away from zero; a rounding up to 2^31 is folded back into the shift; a
    shift below -31 flushes the multiplier to zero.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q_fixed = _round_half_away_from_zero(mantissa * float(1 << 31))
    assert q_fixed <= 1 << 31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    assert q_fixed <= INT32_MAX
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def preprocess_softmax_scaling(beta: float, input_scale: float, integer_bits: int = 5) -> tuple[int, int]:
    """TFLite's PreprocessSoftmaxScaling (double-rounding build).

    beta * input_scale * 2^(31 - integer_bits), computed in double and capped
    at 2^31 - 1, quantized with QuantizeMultiplierGreaterThanOne. TFLM passes
    the float32 `beta` and tensor scale widened to double: pass the float32
    values (e.g. np.float32(scale)) to get its bits.
    """
    max_real_multiplier = float((1 << 31) - 1)
    real = min(float(beta) * float(input_scale) * float(1 << (31 - integer_bits)), max_real_multiplier)
    assert real > 1.0, "QuantizeMultiplierGreaterThanOne needs a multiplier above 1"
    return quantize_multiplier(real)


def calculate_input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite's CalculateInputRadius: the largest input difference whose
    rescaled value still fits the Q(integer_bits) format; TFLM's softmax uses
    diff_min = -radius."""
    max_input_rescaled = (
        1.0 * ((1 << integer_bits) - 1) * float(1 << (total_signed_bits - integer_bits)) / float(1 << left_shift)
    )
    return int(math.floor(max_input_rescaled))


def compute_padding(padding: str, input_size: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(output_size, pad_before) as TFLite computes them (padding.h):
    SAME pads so that output = ceil(input / stride), the smaller half before."""
    effective_kernel = (kernel_size - 1) * dilation + 1
    if padding == "SAME":
        output_size = (input_size + stride - 1) // stride
    elif padding == "VALID":
        output_size = (input_size - effective_kernel + stride) // stride
    else:
        raise ValueError(f"unknown padding {padding!r}")
    total_padding = max((output_size - 1) * stride + effective_kernel - input_size, 0)
    return output_size, total_padding // 2


# ----------------------------------------------------------------------------
# Fixed-point primitives, vectorised over int64 arrays holding int32 values


def wrap_int32(values):
    """Two's complement wrap of integers to int32 (what int32 overflow does in practice)."""
    values = np.asarray(values, dtype=np.int64)
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _truncating_divide_by_2_31(values: np.ndarray) -> np.ndarray:
    return np.where(values >= 0, values >> 31, -((-values) >> 31))


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a*b / 2^31), ties toward +inf."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    product = a * b
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = _truncating_divide_by_2_31(product + nudge)
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, nearest, ties away from 0."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    assert np.all((exponent >= 0) & (exponent <= 31))
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (int32 x, double rounding, no
    TFLITE_SINGLE_ROUNDING): left shift for shift > 0 (int32, wraps), high
    multiply, then rounding right shift for shift < 0."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left_shift = np.maximum(shift, 0)
    right_shift = np.maximum(-shift, 0)
    shifted = wrap_int32(x << left_shift)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift)


def _requantize(acc: np.ndarray, multiplier, shift, output_offset: int, activation_min: int, activation_max: int):
    assert np.all((acc >= INT32_MIN) & (acc <= INT32_MAX)), "int32 accumulator overflow (TFLM would overflow too)"
    scaled = multiply_by_quantized_multiplier(acc, multiplier, shift)
    shifted = wrap_int32(scaled + output_offset)
    return np.clip(shifted, activation_min, activation_max).astype(np.int8)


def _channel_quantization(multiplier, shift, channels: int, per_channel: int):
    multiplier = np.asarray(multiplier, dtype=np.int64).reshape(-1)
    shift = np.asarray(shift, dtype=np.int64).reshape(-1)
    if per_channel:
        return multiplier[:channels], shift[:channels]
    return np.full(channels, multiplier[0]), np.full(channels, shift[0])


# ----------------------------------------------------------------------------
# Convolutions


def _padded_offset_input(x: np.ndarray, pad_top: int, pad_left: int, rows_needed: int, cols_needed: int):
    """Input plus offset, zero outside the image: a zero there contributes
    nothing, which is exactly TFLM's skipping of padding positions."""
    height, width, channels = x.shape
    bottom = max(0, rows_needed - pad_top - height)
    right = max(0, cols_needed - pad_left - width)
    padded = np.zeros((pad_top + height + bottom, pad_left + width + right, channels), dtype=np.int64)
    padded[pad_top : pad_top + height, pad_left : pad_left + width] = x
    return padded


def conv2d_accumulators(p: Conv2DParams, input, filter, bias) -> np.ndarray:
    """int32 accumulators of TFLM's ConvPerChannel (bias included), shape
    (output_height, output_width, output_channels), as int64."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_height, p.input_width, p.input_channels)
    w = np.asarray(filter, dtype=np.int64).reshape(
        p.output_channels, p.kernel_height, p.kernel_width, p.input_channels
    )
    rows_needed = (p.output_height - 1) * p.stride_height + (p.kernel_height - 1) * p.dilation_height + 1
    cols_needed = (p.output_width - 1) * p.stride_width + (p.kernel_width - 1) * p.dilation_width + 1
    padded = _padded_offset_input(x + p.input_offset, p.pad_top, p.pad_left, rows_needed, cols_needed)
    acc = np.zeros((p.output_height, p.output_width, p.output_channels), dtype=np.int64)
    out_rows = np.arange(p.output_height) * p.stride_height
    out_cols = np.arange(p.output_width) * p.stride_width
    for ky in range(p.kernel_height):
        for kx in range(p.kernel_width):
            patch = padded[out_rows + ky * p.dilation_height][:, out_cols + kx * p.dilation_width]
            acc += patch @ w[:, ky, kx, :].T
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64).reshape(-1)[: p.output_channels]
    return acc


def conv2d_s8(p: Conv2DParams, input, filter, bias, output_multiplier, output_shift) -> np.ndarray:
    """TFLM reference_integer_ops::ConvPerChannel, NHWC batch 1 -> (OH, OW, OC) int8."""
    acc = conv2d_accumulators(p, input, filter, bias)
    multiplier, shift = _channel_quantization(output_multiplier, output_shift, p.output_channels, p.per_channel)
    return _requantize(acc, multiplier, shift, p.output_offset, p.activation_min, p.activation_max)


def depthwise_conv2d_s8(p: DepthwiseConv2DParams, input, filter, bias, output_multiplier, output_shift) -> np.ndarray:
    """TFLM reference_integer_ops::DepthwiseConvPerChannel: output channel
    oc = ic * depth_multiplier + m sees only input channel ic."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_height, p.input_width, p.input_channels)
    w = np.asarray(filter, dtype=np.int64).reshape(p.kernel_height, p.kernel_width, p.output_channels)
    rows_needed = (p.output_height - 1) * p.stride_height + (p.kernel_height - 1) * p.dilation_height + 1
    cols_needed = (p.output_width - 1) * p.stride_width + (p.kernel_width - 1) * p.dilation_width + 1
    padded = _padded_offset_input(x + p.input_offset, p.pad_top, p.pad_left, rows_needed, cols_needed)
    # Each output channel reads input channel oc // depth_multiplier.
    padded = np.repeat(padded, p.depth_multiplier, axis=2)
    acc = np.zeros((p.output_height, p.output_width, p.output_channels), dtype=np.int64)
    out_rows = np.arange(p.output_height) * p.stride_height
    out_cols = np.arange(p.output_width) * p.stride_width
    for ky in range(p.kernel_height):
        for kx in range(p.kernel_width):
            patch = padded[out_rows + ky * p.dilation_height][:, out_cols + kx * p.dilation_width]
            acc += patch * w[ky, kx, :]
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64).reshape(-1)[: p.output_channels]
    multiplier, shift = _channel_quantization(output_multiplier, output_shift, p.output_channels, p.per_channel)
    return _requantize(acc, multiplier, shift, p.output_offset, p.activation_min, p.activation_max)


def fully_connected_s8(p: FullyConnectedParams, input, filter, bias, output_multiplier, output_shift) -> np.ndarray:
    """TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel, batch 1."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_size) + p.input_offset
    w = np.asarray(filter, dtype=np.int64).reshape(p.output_size, p.input_size) + p.filter_offset
    acc = w @ x
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64).reshape(-1)[: p.output_size]
    multiplier, shift = _channel_quantization(output_multiplier, output_shift, p.output_size, p.per_channel)
    return _requantize(acc, multiplier, shift, p.output_offset, p.activation_min, p.activation_max)


# ----------------------------------------------------------------------------
# Pooling


def _pool_windows(p: PoolParams):
    """Yield (out_y, out_x, row slice, col slice) with the window clipped to
    the input, as TFLM's pooling computes filter_{x,y}_{start,end}."""
    for out_y in range(p.output_height):
        y0 = out_y * p.stride_height - p.pad_top
        rows = slice(max(y0, 0), min(y0 + p.filter_height, p.input_height))
        for out_x in range(p.output_width):
            x0 = out_x * p.stride_width - p.pad_left
            cols = slice(max(x0, 0), min(x0 + p.filter_width, p.input_width))
            yield out_y, out_x, rows, cols


def max_pool_s8(p: PoolParams, input) -> np.ndarray:
    """TFLM reference_integer_ops::MaxPool: max from -128 over the valid window, then clamp."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_height, p.input_width, p.channels)
    out = np.empty((p.output_height, p.output_width, p.channels), dtype=np.int64)
    for out_y, out_x, rows, cols in _pool_windows(p):
        window = x[rows, cols].reshape(-1, p.channels)
        out[out_y, out_x] = np.max(np.vstack([np.full((1, p.channels), -128), window]), axis=0)
    return np.clip(out, p.activation_min, p.activation_max).astype(np.int8)


def avg_pool_s8(p: PoolParams, input) -> np.ndarray:
    """TFLM reference_integer_ops::AveragePool: (sum +/- count/2) / count,
    truncating division, count = window positions inside the input."""
    x = np.asarray(input, dtype=np.int64).reshape(p.input_height, p.input_width, p.channels)
    out = np.empty((p.output_height, p.output_width, p.channels), dtype=np.int64)
    for out_y, out_x, rows, cols in _pool_windows(p):
        window = x[rows, cols].reshape(-1, p.channels)
        count = window.shape[0]
        assert count > 0, "TFLM rejects a pooling window wholly in the padding"
        total = window.sum(axis=0)
        rounded = np.where(total > 0, total + count // 2, total - count // 2)
        out[out_y, out_x] = np.where(rounded >= 0, rounded // count, -((-rounded) // count))
    return np.clip(out, p.activation_min, p.activation_max).astype(np.int8)


# ----------------------------------------------------------------------------
# Softmax: gemmlowp fixed point on Python ints (scalar; rows are short)


def _srdhm(a: int, b: int) -> int:
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    product = a * b
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    total = product + nudge
    return total >> 31 if total >= 0 else -((-total) >> 31)


def _rdbpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def _wrap(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _saturating_rounding_multiply_by_pot(x: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32."""
    if exponent == 0:
        return x
    if exponent < 0:
        return _rdbpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = _wrap(a + (1 << 28))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _saturating_rounding_multiply_by_pot(x4, -2)
    tail = _saturating_rounding_multiply_by_pot(_wrap(_srdhm(_wrap(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return _wrap(constant_term + _srdhm(constant_term, _wrap(x + tail)))


_EXP_BARREL = (  # (exponent, Q0.31 exp(-2^exponent))
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)


def exp_on_negative_values(a: int, integer_bits: int = 5) -> int:
    """gemmlowp exp_on_negative_values: Q(integer_bits).(31-integer_bits) -> Q0.31."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = _wrap((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = _wrap(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = _srdhm(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    if a == 0:
        result = INT32_MAX
    return result


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """gemmlowp: 1 / (1 + a) for a in [0, 1), Q0.31, three Newton-Raphson steps in Q2.29."""
    # RoundingHalfSum(a, One): (a + b + sign) / 2 in 64 bits, truncating.
    adjusted = a + INT32_MAX + (1 if a + INT32_MAX >= 0 else -1)
    half_denominator = adjusted // 2 if adjusted >= 0 else -((-adjusted) // 2)
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    one_q2 = 1 << 29
    x = _wrap(constant_48_over_17 + _srdhm(half_denominator, constant_neg_32_over_17))
    for _ in range(3):
        half_denominator_times_x = _srdhm(half_denominator, x)
        one_minus_half_denominator_times_x = _wrap(one_q2 - half_denominator_times_x)
        x = _wrap(x + _saturating_rounding_multiply_by_pot(_srdhm(x, one_minus_half_denominator_times_x), 2))
    return _saturating_rounding_multiply_by_pot(x, 1)


def get_reciprocal(x: int, x_integer_digits: int) -> tuple[int, int]:
    """TFLite GetReciprocal: (Q0.31 of 1/(x normalised to [1, 2)), num_bits_over_unit)."""
    assert x > 0
    headroom_plus_one = 32 - int(x).bit_length()  # count leading zeros of uint32
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = _wrap(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def softmax_s8(p: SoftmaxParams, input) -> np.ndarray:
    """TFLM reference_ops::Softmax<int8_t, int8_t> (the path TFLM's SOFTMAX
    kernel takes for int8 in and out): exp of the Q5.26 rescaled difference to
    the row maximum, sum in Q12.19, reciprocal, output scale 1/256, zero
    point -128."""
    scaled_diff_integer_bits = 5
    accumulation_integer_bits = 12
    rows = np.asarray(input, dtype=np.int64).reshape(p.rows, p.row_size)
    out = np.empty((p.rows, p.row_size), dtype=np.int8)
    for r, row in enumerate(rows.tolist()):
        max_in_row = max(row)
        exps = []
        for value in row:
            diff = value - max_in_row
            if diff >= p.diff_min:
                rescaled = _srdhm(_wrap(diff << p.input_left_shift), p.input_multiplier)
                exps.append(exp_on_negative_values(rescaled, scaled_diff_integer_bits))
            else:
                exps.append(None)
        sum_of_exps = 0
        for e in exps:
            if e is not None:
                sum_of_exps = _wrap(
                    sum_of_exps + _saturating_rounding_multiply_by_pot(e, -accumulation_integer_bits)
                )
        shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, accumulation_integer_bits)
        exponent = num_bits_over_unit + 31 - 8
        assert 0 <= exponent <= 31
        for c, e in enumerate(exps):
            if e is None:
                out[r, c] = -128
            else:
                unsat = _rdbpot(_srdhm(shifted_scale, e), exponent)
                out[r, c] = min(max(unsat - 128, -128), 127)
    return out
