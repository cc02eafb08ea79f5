"""Build-time helpers shared by the operator modules of issue 10 (H4's kernels).

`checked_multiplier` is TFLite's QuantizeMultiplier with si4tool's refusal of
multipliers the C kernels cannot apply without undefined behaviour (a left
shift of 32 or more, i.e. a real multiplier >= 2^31). `as_int8_table` turns the
per-value result of an elementwise int8 operator into the 256-byte table the
look-up kernels read (index = the input byte as uint8).
"""

from __future__ import annotations

import numpy as np

from si4tool.compiler.fixed_point import multiply_by_quantized_multiplier
from si4tool.compiler.quant_math import quantize_multiplier
from si4tool.errors import UserError

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)


def checked_multiplier(real_multiplier: float, what: str) -> tuple[int, int]:
    multiplier, shift = quantize_multiplier(real_multiplier)
    if shift > 31:
        raise UserError(f"{what} needs a real multiplier of {real_multiplier:g} (>= 2^31), which si4tool refuses")
    return multiplier, shift


def mbqm(x, multiplier: int, shift: int) -> np.ndarray:
    """TFLM MultiplyByQuantizedMultiplier, elementwise on int64 arrays."""
    return multiply_by_quantized_multiplier(np.asarray(x, dtype=np.int64), multiplier, shift).astype(np.int64)


def clamp_int8(values) -> np.ndarray:
    return np.clip(np.asarray(values, dtype=np.int64), -128, 127).astype(np.int8)


def wrap_int32(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def as_int8_table(values_for_minus128_to_127) -> np.ndarray:
    """Reorder results for inputs -128..127 into table[(uint8_t)x] order."""
    values = np.asarray(values_for_minus128_to_127, dtype=np.int8)
    if values.shape != (256,):
        raise RuntimeError("an int8 look-up table needs one value for each of the 256 inputs")
    return np.concatenate([values[128:], values[:128]])


def apply_int8_table(table: np.ndarray, input) -> np.ndarray:
    x = np.asarray(input, dtype=np.int8)
    return table[x.view(np.uint8)]
