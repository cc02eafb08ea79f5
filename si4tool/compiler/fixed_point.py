"""The integer arithmetic of TFLite Micro's reference kernels, in NumPy and on Python ints.

gemmlowp's fixed-point primitives (third_party/gemmlowp/fixedpoint/fixedpoint.h) and TFLite's
double-rounding MultiplyByQuantizedMultiplier (kernels/internal/common.h, the branch compiled
without TFLITE_SINGLE_ROUNDING, as TFLM ships), restated independently of the C kernels in
firmware_stub/kernels/ so that a test comparing the two can catch a mistake in either. The
vectorised functions work on int64 arrays holding int32 values, with the int32 wrap-around made
explicit where TFLM relies on it; the scalar ones (suffix-free names below the line) serve the
softmax, whose rows are short.

The operator modules (si4tool/compiler/ops/) build their NumPy references from these.
"""

from __future__ import annotations

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


class AccumulatorOverflow(ArithmeticError):
    """An int32 accumulator left int32 in a reference computation (TFLM would overflow too)."""


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
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, nearest, ties away from 0; exponent in [0, 31]."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    if not np.all((exponent >= 0) & (exponent <= 31)):
        raise ValueError(f"RoundingDivideByPOT needs an exponent in [0, 31], got {exponent}")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (int32 x, double rounding): left shift for shift > 0
    (int32, wraps), high multiply, then rounding right shift for shift < 0."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left_shift = np.maximum(shift, 0)
    right_shift = np.maximum(-shift, 0)
    shifted = wrap_int32(x << left_shift)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift)


def multiply_by_quantized_multiplier_smaller_than_one_exp(x, multiplier, left_shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp: high multiply, then a rounding right
    shift by -left_shift (left_shift <= 0)."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -np.asarray(left_shift))


def requantize(acc: np.ndarray, multiplier, shift, output_offset: int, activation_min: int, activation_max: int):
    """TFLM's integer conv / fully-connected epilogue: scale, add the zero point (wrapping), clamp."""
    if not np.all((acc >= INT32_MIN) & (acc <= INT32_MAX)):
        raise AccumulatorOverflow("an int32 accumulator overflows (TFLM would overflow too)")
    scaled = multiply_by_quantized_multiplier(acc, multiplier, shift)
    shifted = wrap_int32(scaled + output_offset)
    return np.clip(shifted, activation_min, activation_max).astype(np.int8)


def channel_quantization(multiplier, shift, channels: int, per_channel: int):
    """(multiplier, shift) arrays of one entry per output channel, from per-channel or per-tensor values."""
    multiplier = np.asarray(multiplier, dtype=np.int64).reshape(-1)
    shift = np.asarray(shift, dtype=np.int64).reshape(-1)
    if per_channel:
        return multiplier[:channels], shift[:channels]
    return np.full(channels, multiplier[0]), np.full(channels, shift[0])


# ----------------------------------------------------------------------------------------------
# Scalar gemmlowp on Python ints


def srdhm(a: int, b: int) -> int:
    """Scalar SaturatingRoundingDoublingHighMul."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    product = a * b
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    total = product + nudge
    return total >> 31 if total >= 0 else -((-total) >> 31)


def rdbpot(x: int, exponent: int) -> int:
    """Scalar RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def wrap(x: int) -> int:
    """Scalar int32 wrap-around."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def saturating_rounding_multiply_by_pot(x: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32."""
    if exponent == 0:
        return x
    if exponent < 0:
        return rdbpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


# ---------------------------------------------------------------------------------------------
# Elementwise helpers of the operators without weights (MUL, SUB, MEAN, activations, requantize)

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)  # every int8 input, in the order tables are built


def mbqm(x, multiplier: int, shift: int) -> np.ndarray:
    """multiply_by_quantized_multiplier on int64 arrays, int64 out."""
    return multiply_by_quantized_multiplier(np.asarray(x, dtype=np.int64), multiplier, shift).astype(np.int64)


def clamp_int8(values) -> np.ndarray:
    return np.clip(np.asarray(values, dtype=np.int64), -128, 127).astype(np.int8)


def as_int8_table(values_for_minus128_to_127) -> np.ndarray:
    """Results for the inputs -128..127 reordered into table[(uint8_t)x], the order the look-up kernels read."""
    values = np.asarray(values_for_minus128_to_127, dtype=np.int8)
    if values.shape != (256,):
        raise RuntimeError("an int8 look-up table needs one value for each of the 256 inputs")
    return np.concatenate([values[128:], values[:128]])


def apply_int8_table(table: np.ndarray, input) -> np.ndarray:
    x = np.asarray(input, dtype=np.int8)
    return table[x.view(np.uint8)]
