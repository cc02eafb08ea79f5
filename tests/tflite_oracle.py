"""Independent test oracles of TFLite's build-time parameter maths.

si4tool computes these in one place, si4tool/compiler/quant_math.py. This module restates
them a second time, separately, from TFLite's sources (quantization_util.cc, padding.h), so
that the tests can compare the two: it is an oracle for the tests, never imported by si4tool.
"""

from __future__ import annotations

import math

INT32_MAX = 2**31 - 1


def _round_half_away_from_zero(value: float) -> int:
    """TfLiteRound / std::round on a double."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = multiplier * 2^(shift - 31)."""
    real = float(real)
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q_fixed = _round_half_away_from_zero(mantissa * float(1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def preprocess_softmax_scaling(beta: float, input_scale: float, integer_bits: int = 5) -> tuple[int, int]:
    """TFLite's PreprocessSoftmaxScaling (double-rounding build); pass float32 values for TFLM's bits."""
    max_real_multiplier = float((1 << 31) - 1)
    real = min(float(beta) * float(input_scale) * float(1 << (31 - integer_bits)), max_real_multiplier)
    if not real > 1.0:
        raise ValueError("QuantizeMultiplierGreaterThanOne needs a multiplier above 1")
    return quantize_multiplier(real)


def calculate_input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite's CalculateInputRadius; TFLM's softmax uses diff_min = -radius."""
    max_input_rescaled = (
        1.0 * ((1 << integer_bits) - 1) * float(1 << (total_signed_bits - integer_bits)) / float(1 << left_shift)
    )
    return int(math.floor(max_input_rescaled))


def compute_padding(padding: str, input_size: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(output_size, pad_before) as TFLite computes them (padding.h)."""
    effective_kernel = (kernel_size - 1) * dilation + 1
    if padding == "SAME":
        output_size = (input_size + stride - 1) // stride
    elif padding == "VALID":
        output_size = (input_size - effective_kernel + stride) // stride
    else:
        raise ValueError(f"unknown padding {padding!r}")
    total_padding = max((output_size - 1) * stride + effective_kernel - input_size, 0)
    return output_size, total_padding // 2
