"""Requantization parameters, computed exactly as TensorFlow Lite Micro computes them at prepare time.

The C kernels only apply these numbers; to be bit-exact with TFLM every value
must come out of the same floating-point expression, in the same precision and
order, as in TFLM's sources:

- quantize_multiplier: QuantizeMultiplier (kernels/internal/quantization_util.cc).
- conv / depthwise / per-channel fully-connected: PopulateConvolutionQuantizationParams
  (kernels/kernel_util.cc) and fully_connected_common.cc:
  (double)input_scale * (double)filter_scale[c] / (double)output_scale.
- per-tensor fully-connected: GetQuantizedConvolutionMultipler (kernel_util.cc):
  (double)input_scale * (double)filter_scale / (double)output_scale, in double throughout
  (older TFLite took the product in float32; the tflite-micro runtime si4tool checks against
  does not: ad01's last layer needs the double product to be bit-exact).
- activation clamps: CalculateActivationRangeQuantized (kernel_util.cc), in float32.
- softmax: PreprocessSoftmaxScaling(beta, input_scale, 5) and CalculateInputRadius
  (quantization_util.cc), as micro/kernels/softmax_common.cc calls them.
- padding and output sizes: ComputePaddingHeightWidth (kernels/padding.h).
- the engine's input: AffineQuantize (TFLite's QUANTIZE, reference/quantize.h), in float32.

This module is the single home of these functions (the tests keep independent
oracles of some of them, written from the TFLite sources, in tests/test_lowering.py).
It is pure maths: a value TFLite cannot represent raises QuantizationError, which the
lowering turns into a UserError naming the operator.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN = -128
INT8_MAX = 127
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# The C requantization shifts int32 values left by `shift` when it is positive: 32 or more is
# undefined behaviour in C (and a real multiplier of 2^31 or more, which no sane model has).
MAX_LEFT_SHIFT = 31


class QuantizationError(ValueError):
    """A quantization TFLite's kernels (or si4tool's C) cannot represent; one sentence."""


# Softmax's scaled input differences are Q5.26 (kScaledDiffIntegerBits in softmax_common.cc).
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5

# enum ActivationFunctionType in the TFLite schema
ACTIVATION_NONE = 0
ACTIVATION_RELU = 1
ACTIVATION_RELU_N1_TO_1 = 2
ACTIVATION_RELU6 = 3

# enum Padding in the TFLite schema
PADDING_SAME = 0
PADDING_VALID = 1


def round_half_away_from_zero(value: float) -> int:
    """std::round / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    magnitude = abs(value)
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:  # exact: the fraction of a double is representable
        whole += 1
    return int(whole) if value >= 0 else -int(whole)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """A real multiplier as (Q31 significand, shift): real = significand * 2^(shift - 31).

    Mirrors TFLite's QuantizeMultiplier: frexp, round the mantissa times 2^31
    half away from zero, fold a rounded-up 2^31 into the exponent, and flush
    multipliers whose shift would be below -31 to (0, 0).
    """
    if real_multiplier == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real_multiplier)
    q_fixed = round_half_away_from_zero(mantissa * (1 << 31))
    if q_fixed == (1 << 31):  # the mantissa rounded up to 1.0
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multiplier_smaller_than_one_exp(real_multiplier: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp: a multiplier in (0, 1) as (Q31 significand,
    shift <= 0). TFLM aborts its Prepare for any other value; si4tool refuses the model."""
    if not 0.0 < real_multiplier < 1.0:
        raise QuantizationError(f"needs a real multiplier in (0, 1) but its scales give {real_multiplier:.6g}")
    return quantize_multiplier(real_multiplier)


def check_left_shift(shift: int, what: str) -> None:
    """Refuse a requantization whose left shift the C kernels cannot do without undefined behaviour."""
    if shift > MAX_LEFT_SHIFT:
        raise QuantizationError(
            f"has a {what} of {shift} (a real multiplier of 2^31 or more): shifting an int32 left by 32 or "
            "more is undefined behaviour in C"
        )


def per_channel_multipliers(
    input_scale: float, filter_scales: list[float] | tuple[float, ...], output_scale: float
) -> tuple[list[int], list[int]]:
    """Per-output-channel (multiplier, shift) lists for conv, depthwise conv and per-channel FC."""
    multipliers, shifts = [], []
    for filter_scale in filter_scales:
        effective = float(np.float32(input_scale)) * float(np.float32(filter_scale)) / float(np.float32(output_scale))
        multiplier, shift = quantize_multiplier(effective)
        multipliers.append(multiplier)
        shifts.append(shift)
    return multipliers, shifts


def fully_connected_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """The per-tensor FULLY_CONNECTED (multiplier, shift), in double as TFLM computes it (see the module doc)."""
    product = float(np.float32(input_scale)) * float(np.float32(filter_scale))
    if product < 0:
        raise QuantizationError("has a negative input or filter scale, which TFLite does not allow")
    return quantize_multiplier(product / float(np.float32(output_scale)))


def _quantize_float32(value: float, scale: float, zero_point: int) -> int:
    # kernel_util.cc Quantize(): TfLiteRound(f / scale) in float32, then the zero point added as an integer.
    quotient = np.float32(value) / np.float32(scale)
    if not np.isfinite(quotient) or abs(float(quotient)) >= 2.0**31:
        raise QuantizationError(f"has an output scale of {scale} that cannot represent the activation bound {value}")
    return zero_point + round_half_away_from_zero(float(quotient))


def activation_range(activation: int, output_scale: float, output_zero_point: int) -> tuple[int, int]:
    """The int8 clamp (min, max) of a fused activation, as CalculateActivationRangeQuantized."""
    if activation == ACTIVATION_RELU:
        return max(INT8_MIN, _quantize_float32(0.0, output_scale, output_zero_point)), INT8_MAX
    if activation == ACTIVATION_RELU6:
        low = max(INT8_MIN, _quantize_float32(0.0, output_scale, output_zero_point))
        return low, min(INT8_MAX, _quantize_float32(6.0, output_scale, output_zero_point))
    if activation == ACTIVATION_RELU_N1_TO_1:
        low = max(INT8_MIN, _quantize_float32(-1.0, output_scale, output_zero_point))
        return low, min(INT8_MAX, _quantize_float32(1.0, output_scale, output_zero_point))
    if activation == ACTIVATION_NONE:
        return INT8_MIN, INT8_MAX
    raise QuantizationError(f"has a fused activation {activation}; supported: NONE, RELU, RELU6, RELU_N1_TO_1")


def softmax_parameters(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) of int8 SOFTMAX, as softmax_common.cc."""
    integer_bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    max_real_multiplier = float((1 << 31) - 1)
    real_multiplier = min(
        float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - integer_bits)), max_real_multiplier
    )
    if not real_multiplier > 1.0:
        # QuantizeMultiplierGreaterThanOne would abort TFLM here.
        raise QuantizationError(f"has beta {beta} times input scale {input_scale}, too small for TFLite's int8 softmax")
    multiplier, left_shift = quantize_multiplier(real_multiplier)  # real > 1: left_shift >= 1
    # CalculateInputRadius(integer_bits, left_shift, total_signed_bits=31)
    max_input_rescaled = 1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift)
    diff_min = -int(math.floor(max_input_rescaled))
    return multiplier, left_shift, diff_min


def output_size(padding: int, in_size: int, filter_size: int, stride: int, dilation: int = 1) -> int:
    """Output length of a windowed op, as ComputeOutSizeChecked (TensorFlow's GetWindowedOutputSize)."""
    effective_filter = (filter_size - 1) * dilation + 1
    if padding == PADDING_SAME:
        return (in_size + stride - 1) // stride
    if padding == PADDING_VALID:
        return (in_size + stride - effective_filter) // stride
    raise QuantizationError(f"has padding {padding}; supported: SAME and VALID")


def padding_before(stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> int:
    """Padding before the first row/column, as ComputePaddingWithOffset (the odd extra goes after)."""
    effective_filter = (filter_size - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective_filter - in_size, 0)
    return total // 2


def quantize_input(x_float: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 exactly as TFLite's QUANTIZE (AffineQuantize) does it:
    q = clamp(round(x / scale) + zero_point, -128, 127), with the division in float32
    and std::round's half-away-from-zero rounding (not NumPy's half-to-even)."""
    scaled = np.asarray(x_float, dtype=np.float32) / np.float32(scale)
    # float64 holds |scaled| + 0.5 exactly for any float32 below 2**29, so floor() rounds like std::round.
    magnitude = np.floor(np.abs(scaled).astype(np.float64) + 0.5)
    rounded = np.where(scaled < 0, -magnitude, magnitude)
    return np.clip(rounded + int(zero_point), INT8_MIN, INT8_MAX).astype(np.int8)


def checked_multiplier(real_multiplier: float, what: str) -> tuple[int, int]:
    """quantize_multiplier, refusing what the C kernels cannot apply without undefined behaviour:
    a left shift of 32 or more (a real multiplier >= 2^31)."""
    multiplier, shift = quantize_multiplier(real_multiplier)
    if shift > 31:
        raise QuantizationError(f"{what} needs a real multiplier of {real_multiplier:g} (>= 2^31), which si4tool refuses")
    return multiplier, shift
