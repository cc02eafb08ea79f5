"""SOFTMAX, int8 in and out (TFLM reference_ops::Softmax<int8_t, int8_t> with gemmlowp fixed point)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler import quant_math
from si4tool.compiler.fixed_point import INT32_MAX, rdbpot, saturating_rounding_multiply_by_pot, srdhm, wrap
from si4tool.compiler.ops.base import Constraints, OpSpec
from si4tool.compiler.tflite_reader import OptionLayout

SOFTMAX_OPTIONS = OptionLayout(9, "SoftmaxOptions", (("beta", 0, "f", 0.0),))

# The sum of a row's exponentials is Q12.19; the final rescale shifts right by
# num_bits_over_unit + 23, which reaches 32 (undefined behaviour in C) for rows of 512 values or more.
MAX_ROW_SIZE = 511


@dataclass(frozen=True)
class SoftmaxParams:
    rows: int
    row_size: int
    input_multiplier: int
    input_left_shift: int
    diff_min: int


def lower_softmax(ctx, operator):
    source = ctx.input_activation(operator)
    output = ctx.output_activation(operator)
    if source.shape != output.shape or not source.shape:
        raise ctx.fail(operator, f"maps shape {list(source.shape)} to {list(output.shape)}")
    if output.zero_point != -128 or np.float32(output.scale) != np.float32(1.0 / 256):
        # TFLM's SoftmaxPrepare requires exactly this output quantization for int8.
        raise ctx.fail(operator, "has an int8 output not quantized with scale 1/256 and zero point -128")
    row_size = source.shape[-1]
    if row_size > MAX_ROW_SIZE:
        raise ctx.fail(
            operator,
            f"has rows of {row_size} values; int8 softmax supports at most {MAX_ROW_SIZE} (from 512 on, the rescale of "
            "the sum of exponentials shifts an int32 by 32 or more, and TFLite Micro rejects such rows)",
        )
    multiplier, left_shift, diff_min = ctx.quantized(
        operator, quant_math.softmax_parameters, operator.options.get("beta", 0.0), source.scale
    )
    params = SoftmaxParams(
        rows=source.size_bytes // row_size, row_size=row_size,
        input_multiplier=multiplier, input_left_shift=left_shift, diff_min=diff_min,
    )  # fmt: skip
    return ctx.layer("softmax", operator, [source], output, params)


# ----------------------------------------------------------------------------------------------
# gemmlowp's exp and reciprocal on Python ints (scalar; rows are short)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    tail = saturating_rounding_multiply_by_pot(wrap(srdhm(wrap(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap(constant_term + srdhm(constant_term, wrap(x + tail)))


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
    a_mod_quarter_minus_one_quarter = wrap((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = wrap(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = srdhm(result, multiplier)
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
    x = wrap(constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17))
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus_half_denominator_times_x = wrap(one_q2 - half_denominator_times_x)
        x = wrap(x + saturating_rounding_multiply_by_pot(srdhm(x, one_minus_half_denominator_times_x), 2))
    return saturating_rounding_multiply_by_pot(x, 1)


def get_reciprocal(x: int, x_integer_digits: int) -> tuple[int, int]:
    """TFLite GetReciprocal: (Q0.31 of 1/(x normalised to [1, 2)), num_bits_over_unit)."""
    if x <= 0:
        raise ValueError("GetReciprocal needs a positive sum")
    headroom_plus_one = 32 - int(x).bit_length()  # count leading zeros of uint32
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def reference_softmax(p: SoftmaxParams, input) -> np.ndarray:
    """TFLM reference_ops::Softmax<int8_t, int8_t> (the path TFLM's SOFTMAX kernel takes for int8
    in and out): exp of the Q5.26 rescaled difference to the row maximum, sum in Q12.19,
    reciprocal, output scale 1/256, zero point -128."""
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
                rescaled = srdhm(wrap(diff << p.input_left_shift), p.input_multiplier)
                exps.append(exp_on_negative_values(rescaled, scaled_diff_integer_bits))
            else:
                exps.append(None)
        sum_of_exps = 0
        for e in exps:
            if e is not None:
                sum_of_exps = wrap(sum_of_exps + saturating_rounding_multiply_by_pot(e, -accumulation_integer_bits))
        shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, accumulation_integer_bits)
        exponent = num_bits_over_unit + 31 - 8
        if not 0 <= exponent <= 31:
            raise ValueError(f"softmax rescale by {exponent} bits (rows of 512 values or more)")
        for c, e in enumerate(exps):
            if e is None:
                out[r, c] = -128
            else:
                unsat = rdbpot(srdhm(shifted_scale, e), exponent)
                out[r, c] = min(max(unsat - 128, -128), 127)
    return out


SPEC = OpSpec(
    op="softmax",
    summary="softmax over the last axis, output scale 1/256, zero point -128",
    builtins=("SOFTMAX",),
    params_type=SoftmaxParams,
    kernel="si4_softmax_s8",
    lower=lower_softmax,
    reference=lambda layer, inputs: reference_softmax(layer.params, inputs[0]),
    options=(SOFTMAX_OPTIONS,),
    keras_layers=("Softmax",),
    constraints=Constraints(
        dtypes="int8 in; int8 out with scale 1/256 and zero point -128",
        notes=f"rows of at most {MAX_ROW_SIZE} values; any beta",
    ),
)
