"""The portable C int8 kernels against the NumPy reference (and TFLM for softmax).

Every kernel is compared, on random shapes, strides, dilations, paddings,
zero points, multipliers (including left shifts and large right shifts) and
clamps, with the NumPy reference of its operator module (si4tool/compiler/ops/),
which restates TFLM's reference arithmetic independently; outputs must be
identical byte for byte.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kernel_lib
import tflite_oracle as oracle
from si4tool.compiler import fixed_point
from si4tool.compiler.ops.conv2d import Conv2DParams, DepthwiseConv2DParams, reference_conv2d, reference_depthwise_conv2d
from si4tool.compiler.ops.fully_connected import FullyConnectedParams, reference_fully_connected
from si4tool.compiler.ops.pooling import PoolParams, reference_avg_pool, reference_max_pool
from si4tool.compiler.ops.softmax import SoftmaxParams, reference_softmax
from si4tool.targets.toolchain import STRICT_C_FLAGS, host_compiler, kernel_include_dir, portable_kernel_sources

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

KERNEL_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

int32s = st.integers(INT32_MIN, INT32_MAX)


# ----------------------------------------------------------------------------
# The header and the ctypes mirror agree


def _header_struct_fields() -> dict[str, list[str]]:
    structs = {}
    for header_file in sorted(kernel_include_dir().glob("si4_nn*.h")):  # si4_nn.h and si4_nn_ops.h
        header = re.sub(r"/\*.*?\*/", "", header_file.read_text(), flags=re.S)
        for body, name in re.findall(r"typedef struct\s*\{(.*?)\}\s*(\w+)\s*;", header, flags=re.S):
            structs[name] = re.findall(r"int32_t\s+(\w+)\s*;", body)
    return structs


def test_ctypes_structs_mirror_the_header_field_for_field():
    from si4tool.compiler import ops

    header = _header_struct_fields()
    # every registered operator's struct is declared, and every params dataclass with a C
    # struct of its name matches it field for field
    assert {spec.c_struct for spec in ops.registry() if spec.params_type is not None} <= set(header)
    shared = set(header) & set(kernel_lib.STRUCTS)
    assert {"si4_conv2d_params", "si4_add_params", "si4_softmax_params"} <= shared
    for name in shared:
        assert [field for field, _ in kernel_lib.STRUCTS[name]._fields_] == header[name], name


@pytest.mark.parametrize(
    "target_flags",
    [["-mcpu=cortex-m0plus", "-mthumb"], ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]],
)
def test_kernels_compile_warning_free_for_cortex_m(tmp_path, target_flags):
    compiler = shutil.which("arm-none-eabi-gcc")
    if compiler is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    for source in portable_kernel_sources():
        result = subprocess.run(
            [compiler, *target_flags, *STRICT_C_FLAGS, "-O2", f"-I{kernel_include_dir()}", "-c", str(source),
             "-o", str(tmp_path / (source.stem + ".o"))],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------
# Requantization helpers (si4_requant.h) on edge values


def _round_half_away(value: Fraction) -> int:
    return math.floor(abs(value) + Fraction(1, 2)) * (1 if value >= 0 else -1)


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def test_saturating_rounding_doubling_high_mul_edges():
    lib = kernel_lib.requant_library()
    assert lib.export_srdhm(INT32_MIN, INT32_MIN) == INT32_MAX  # the one overflow saturates
    assert lib.export_srdhm(INT32_MIN, INT32_MAX) == -INT32_MAX
    assert lib.export_srdhm(INT32_MAX, INT32_MAX) == INT32_MAX - 1
    # exact ties (a*b/2^31 = k + 1/2) round up, toward +infinity, for both
    # signs: gemmlowp's nudge is 2^30 for a positive product but 1 - 2^30 for
    # a negative one before a truncating division (ARM's SQRDMULH)
    assert lib.export_srdhm(1, 1 << 30) == 1  # 0.5 -> 1
    assert lib.export_srdhm(-1, 1 << 30) == 0  # -0.5 -> 0
    assert lib.export_srdhm(3, 1 << 30) == 2  # 1.5 -> 2
    assert lib.export_srdhm(-3, 1 << 30) == -1  # -1.5 -> -1
    assert lib.export_srdhm(-5, 1 << 30) == -2  # -2.5 -> -2
    assert lib.export_srdhm(-7, 1 << 29) == -2  # -1.75 -> -2
    assert lib.export_srdhm(0, INT32_MIN) == 0


def test_rounding_divide_by_pot_edges():
    lib = kernel_lib.requant_library()
    assert lib.export_rdbpot(5, 1) == 3 and lib.export_rdbpot(-5, 1) == -3  # +-2.5 away from zero
    assert lib.export_rdbpot(6, 2) == 2 and lib.export_rdbpot(-6, 2) == -2  # +-1.5
    assert lib.export_rdbpot(-7, 2) == -2 and lib.export_rdbpot(7, 2) == 2  # +-1.75
    assert lib.export_rdbpot(-5, 2) == -1 and lib.export_rdbpot(5, 2) == 1  # +-1.25
    assert lib.export_rdbpot(12345, 0) == 12345
    assert lib.export_rdbpot(INT32_MIN, 31) == -1
    assert lib.export_rdbpot(INT32_MAX, 31) == 1
    assert lib.export_rdbpot(-(1 << 30), 31) == -1  # -0.5 -> -1
    assert lib.export_rdbpot((1 << 30) - 1, 31) == 0


@settings(max_examples=500, deadline=None)
@given(a=int32s, b=int32s, exponent=st.integers(0, 31))
def test_requant_primitives_match_exact_rational_arithmetic(a, b, exponent):
    lib = kernel_lib.requant_library()
    expected_high = INT32_MAX if a == b == INT32_MIN else _round_half_up(Fraction(a * b, 2**31))
    assert lib.export_srdhm(a, b) == expected_high == int(fixed_point.saturating_rounding_doubling_high_mul(a, b))
    expected_div = _round_half_away(Fraction(a, 2**exponent))
    assert lib.export_rdbpot(a, exponent) == expected_div == int(fixed_point.rounding_divide_by_pot(a, exponent))


@settings(max_examples=500, deadline=None)
@given(x=int32s, multiplier=st.integers(0, INT32_MAX), shift=st.integers(-31, 7))
def test_multiply_by_quantized_multiplier_matches_reference(x, multiplier, shift):
    lib = kernel_lib.requant_library()
    got = lib.export_mbqm(x, multiplier, shift)
    assert got == int(fixed_point.multiply_by_quantized_multiplier(x, multiplier, shift))
    if shift <= 0:
        # TFLM's double rounding: round(x*m/2^31) (ties up), then round(/2^-shift) (ties away from 0)
        high = _round_half_up(Fraction(x * multiplier, 2**31))
        assert got == _round_half_away(Fraction(high, 2**-shift))


def test_multiply_by_quantized_multiplier_rounds_twice_like_tflm():
    """5 * 0.25: TFLM's default path rounds the high multiply (2.5 -> 3) and
    then the right shift (1.5 -> 2); single rounding (TFLITE_SINGLE_ROUNDING,
    not what TFLM ships) would give round(1.25) = 1."""
    lib = kernel_lib.requant_library()
    multiplier, shift = oracle.quantize_multiplier(0.25)
    assert (multiplier, shift) == (1 << 30, -1)
    assert lib.export_mbqm(5, multiplier, shift) == 2
    # -5 * 0.5 = -2.5 rounds up to -2 in the high multiply, -2 / 2 is exact
    assert lib.export_mbqm(-5, multiplier, shift) == -1


def test_quantize_multiplier_matches_tflite_rules():
    assert oracle.quantize_multiplier(0.0) == (0, 0)
    assert oracle.quantize_multiplier(0.5) == (1 << 30, 0)
    assert oracle.quantize_multiplier(1.0) == (1 << 30, 1)
    assert oracle.quantize_multiplier(3.0) == (3 << 29, 2)
    # mantissa rounding up to 2^31 is folded into the shift
    assert oracle.quantize_multiplier(1.0 - 2.0**-40) == (1 << 30, 1)
    # below 2^-32 the multiplier is flushed to zero
    assert oracle.quantize_multiplier(2.0**-33) == (0, 0)
    assert oracle.quantize_multiplier(2.0**-32) == (1 << 30, -31)


@settings(max_examples=300, deadline=None)
@given(exponent=st.floats(-6.0, math.log10(4.0)))
def test_quantize_multiplier_represents_the_real_scale(exponent):
    real = 10.0**exponent
    multiplier, shift = oracle.quantize_multiplier(real)
    assert (1 << 30) <= multiplier <= INT32_MAX
    assert abs(multiplier * 2.0 ** (shift - 31) - real) <= real * 2.0**-30


def test_softmax_scaling_as_tflm_prepares_it():
    # beta * scale * 2^26 capped at 2^31 - 1, then QuantizeMultiplierGreaterThanOne
    multiplier, shift = oracle.preprocess_softmax_scaling(1.0, 2.0**-4)
    assert (multiplier, shift) == (1 << 30, 23)
    assert oracle.calculate_input_radius(5, shift) == (31 << 26) >> 23  # 248
    capped = oracle.preprocess_softmax_scaling(1.0, 1e6)
    assert capped == oracle.quantize_multiplier(2.0**31 - 1)
    assert oracle.calculate_input_radius(5, 31) == 0


def test_compute_padding_matches_tflite():
    assert oracle.compute_padding("VALID", 28, 3, 1) == (26, 0)
    assert oracle.compute_padding("VALID", 26, 2, 2) == (13, 0)
    assert oracle.compute_padding("VALID", 11, 2, 2) == (5, 0)
    assert oracle.compute_padding("SAME", 28, 3, 1) == (28, 1)
    assert oracle.compute_padding("SAME", 28, 3, 2) == (14, 0)  # total padding 1: none before
    assert oracle.compute_padding("SAME", 7, 4, 1) == (7, 1)  # total 3: 1 before, 2 after
    assert oracle.compute_padding("SAME", 9, 3, 1, dilation=2) == (9, 2)


# ----------------------------------------------------------------------------
# Random cases

# Log-uniform real scales in [1e-6, 4], plus powers of two, whose short
# multipliers make rounding ties (both signs) frequent.
real_scales = st.one_of(
    st.floats(-6.0, math.log10(4.0)).map(lambda e: 10.0**e),
    st.integers(-8, 2).map(lambda e: 2.0**e),
)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def quantization(draw, channels: int):
    per_channel = draw(st.booleans())
    scales = draw(st.lists(real_scales, min_size=channels, max_size=channels)) if per_channel else [draw(real_scales)]
    pairs = [oracle.quantize_multiplier(s) for s in scales]
    return int(per_channel), [m for m, _ in pairs], [s for _, s in pairs]


@st.composite
def activation_range(draw, output_offset: int):
    kind = draw(st.sampled_from(["none", "relu", "relu6", "random"]))
    if kind == "none":
        return -128, 127
    if kind == "relu":
        return max(output_offset, -128), 127
    if kind == "relu6":
        return max(output_offset, -128), min(output_offset + draw(st.integers(0, 100)), 127)
    low = draw(st.integers(-128, 127))
    return low, draw(st.integers(low, 127))


@st.composite
def spatial(draw, kernel_max=4, size_max=10, stride_max=3, dilation_max=3):
    """(input, kernel, stride, dilation, output, pad) for one axis, VALID or SAME."""
    kernel = draw(st.integers(1, kernel_max))
    stride = draw(st.integers(1, stride_max))
    dilation = draw(st.integers(1, dilation_max))
    padding = draw(st.sampled_from(["VALID", "SAME"]))
    effective = (kernel - 1) * dilation + 1
    size = draw(st.integers(effective if padding == "VALID" else 1, effective + size_max))
    output, pad = oracle.compute_padding(padding, size, kernel, stride, dilation)
    return size, kernel, stride, dilation, output, pad, padding


@st.composite
def spatial_3x3(draw):
    """spatial() for a 3x3 kernel, maps of 1 to 12, dilation 1 mostly, padding of 0..2 on either side."""
    stride = draw(st.integers(1, 2))
    dilation = draw(st.sampled_from([1, 1, 1, 2]))
    size = draw(st.integers(1, 12))
    pad_before = draw(st.integers(0, 2))
    pad_after = draw(st.integers(0, 2))
    output = (size + pad_before + pad_after - 2 * dilation - 1) // stride + 1
    assume(output >= 1)
    return size, 3, stride, dilation, output, pad_before, "EXPLICIT"


@st.composite
def conv_cases(draw, max_channels=6, kernel_max=4):
    height = draw(spatial(kernel_max=kernel_max))
    width = draw(spatial(kernel_max=kernel_max))
    input_channels = draw(st.integers(1, max_channels))
    output_channels = draw(st.integers(1, max_channels))
    input_zero_point = draw(st.integers(-128, 127))
    output_offset = draw(st.integers(-128, 127))
    activation_min, activation_max = draw(activation_range(output_offset))
    per_channel, multipliers, shifts = draw(quantization(output_channels))
    params = Conv2DParams(
        input_height=height[0], input_width=width[0], input_channels=input_channels,
        output_height=height[4], output_width=width[4], output_channels=output_channels,
        kernel_height=height[1], kernel_width=width[1], stride_height=height[2], stride_width=width[2],
        dilation_height=height[3], dilation_width=width[3], pad_top=height[5], pad_left=width[5],
        input_offset=-input_zero_point, output_offset=output_offset,
        activation_min=activation_min, activation_max=activation_max, per_channel=per_channel,
    )  # fmt: skip
    rng = np.random.default_rng(draw(seeds))
    bias_magnitude = draw(st.sampled_from([0, 1 << 8, 1 << 16, 1 << 22]))
    arrays = dict(
        input=rng.integers(-128, 128, size=(params.input_height, params.input_width, input_channels)),
        filter=rng.integers(-127, 128, size=(output_channels, params.kernel_height, params.kernel_width, input_channels)),
        bias=rng.integers(-bias_magnitude, bias_magnitude + 1, size=output_channels),
        output_multiplier=multipliers,
        output_shift=shifts,
    )  # fmt: skip
    valid = height[6] == "VALID" and width[6] == "VALID"
    return params, arrays, valid


@KERNEL_SETTINGS
@given(case=conv_cases())
def test_conv2d_matches_reference(case):
    params, arrays, _ = case
    expected = reference_conv2d(params, **arrays)
    assert np.array_equal(kernel_lib.conv2d_s8(params, **arrays), expected)


@KERNEL_SETTINGS
@given(case=conv_cases(max_channels=17, kernel_max=1), bias=st.booleans())
def test_pointwise_conv2d_matches_reference(case, bias):
    """The 1x1 path (two positions, four channels at a time): odd channel counts and position counts,
    strides up to 3, with and without bias."""
    params, arrays, _ = case
    arrays = arrays if bias else {**arrays, "bias": None}
    assert np.array_equal(kernel_lib.conv2d_s8(params, **arrays), reference_conv2d(params, **arrays))


@KERNEL_SETTINGS
@given(case=conv_cases())
def test_conv2d_without_bias(case):
    params, arrays, _ = case
    arrays = {**arrays, "bias": None}
    assert np.array_equal(kernel_lib.conv2d_s8(params, **arrays), reference_conv2d(params, **arrays))


@KERNEL_SETTINGS
@given(case=conv_cases())
def test_conv2d_with_input_offset_folded_into_bias(case):
    """For VALID convolutions the lowering may fold input_offset * sum(filter)
    into the bias and pass input_offset 0; the result must not change."""
    params, arrays, valid = case
    assume(valid)
    filter_sums = arrays["filter"].reshape(params.output_channels, -1).sum(axis=1)
    folded_bias = arrays["bias"] + params.input_offset * filter_sums
    folded_params = Conv2DParams(**{**params.__dict__, "input_offset": 0})
    folded = kernel_lib.conv2d_s8(folded_params, **{**arrays, "bias": folded_bias})
    assert np.array_equal(folded, reference_conv2d(params, **arrays))


def test_conv2d_saturates_at_both_clamps():
    params = Conv2DParams(4, 4, 2, 2, 2, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, -128, 127, 0)
    multiplier, shift = oracle.quantize_multiplier(4.0)
    x = np.full((4, 4, 2), 127)
    w = np.stack([np.full((3, 3, 2), 127), np.full((3, 3, 2), -127), np.zeros((3, 3, 2), dtype=int)])
    out = kernel_lib.conv2d_s8(params, x, w, [0, 0, 5], [multiplier], [shift])
    assert np.array_equal(out[..., 0], np.full((2, 2), 127))
    assert np.array_equal(out[..., 1], np.full((2, 2), -128))
    assert np.array_equal(out[..., 2], np.full((2, 2), 20))
    assert np.array_equal(out, reference_conv2d(params, x, w, [0, 0, 5], [multiplier], [shift]))


@st.composite
def pool_over(draw, height: int, width: int, channels: int):
    def axis(size):
        kernel = draw(st.integers(1, min(size, 3)))
        stride = draw(st.integers(1, 3))
        padding = draw(st.sampled_from(["VALID", "SAME"]))
        output, pad = oracle.compute_padding(padding, size, kernel, stride)
        return kernel, stride, output, pad

    fy, sy, oy, py = axis(height)
    fx, sx, ox, px = axis(width)
    low = draw(st.integers(-128, 127))
    high = draw(st.integers(low, 127))
    if draw(st.booleans()):
        low, high = -128, 127
    return PoolParams(height, width, channels, oy, ox, fy, fx, sy, sx, py, px, low, high)


@st.composite
def pool_cases(draw):
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    channels = draw(st.integers(1, 6))
    params = draw(pool_over(height, width, channels))
    rng = np.random.default_rng(draw(seeds))
    return params, rng.integers(-128, 128, size=(height, width, channels))


@KERNEL_SETTINGS
@given(case=pool_cases())
def test_max_pool_matches_reference(case):
    params, x = case
    assert np.array_equal(kernel_lib.max_pool_s8(params, x), reference_max_pool(params, x))


@KERNEL_SETTINGS
@given(case=pool_cases())
def test_avg_pool_matches_reference(case):
    params, x = case
    assert np.array_equal(kernel_lib.avg_pool_s8(params, x), reference_avg_pool(params, x))


def test_avg_pool_rounds_ties_away_from_zero_and_counts_only_valid_positions():
    # 2x2 SAME window at the bottom-right corner sees one value only.
    params = PoolParams(3, 3, 1, 2, 2, 2, 2, 2, 2, 0, 0, -128, 127)
    x = np.array([[1, 2, -7], [0, 1, -6], [5, -3, 9]]).reshape(3, 3, 1)
    # windows: {1,2,0,1}=4/4=1; {-7,-6}=-13/2=-6.5->-7; {5,-3}=1; {9}=9
    expected = np.array([[1, -7], [1, 9]], dtype=np.int8).reshape(2, 2, 1)
    assert np.array_equal(reference_avg_pool(params, x), expected)
    assert np.array_equal(kernel_lib.avg_pool_s8(params, x), expected)


@KERNEL_SETTINGS
@given(case=conv_cases(), data=st.data())
def test_fused_conv_max_pool_equals_conv_then_max_pool(case, data):
    conv_params, arrays, _ = case
    pool_params = data.draw(
        pool_over(conv_params.output_height, conv_params.output_width, conv_params.output_channels)
    )
    expected = reference_max_pool(pool_params, reference_conv2d(conv_params, **arrays))
    unfused_c = kernel_lib.max_pool_s8(pool_params, kernel_lib.conv2d_s8(conv_params, **arrays))
    fused_c = kernel_lib.conv2d_max_pool_s8(conv_params, pool_params, **arrays)
    assert np.array_equal(unfused_c, expected)
    assert np.array_equal(fused_c, expected)


def test_fused_conv_max_pool_seed_model_shapes():
    """The seed model's second block: 13x13x32 -> conv 3x3x64 VALID (11x11) -> 2x2/2 pool (5x5)."""
    rng = np.random.default_rng(7)
    conv_params = Conv2DParams(13, 13, 32, 11, 11, 64, 3, 3, 1, 1, 1, 1, 0, 0, 128, -128, -128, 127, 1)
    pool_params = PoolParams(11, 11, 64, 5, 5, 2, 2, 2, 2, 0, 0, -128, 127)
    pairs = [oracle.quantize_multiplier(s) for s in rng.uniform(0.0005, 0.003, size=64)]
    arrays = dict(
        input=rng.integers(-128, 128, size=(13, 13, 32)),
        filter=rng.integers(-127, 128, size=(64, 3, 3, 32)),
        bias=rng.integers(-5000, 5000, size=64),
        output_multiplier=[m for m, _ in pairs],
        output_shift=[s for _, s in pairs],
    )
    expected = reference_max_pool(pool_params, reference_conv2d(conv_params, **arrays))
    assert len(np.unique(expected)) > 50  # not all clamped: a meaningful comparison
    assert np.array_equal(kernel_lib.conv2d_max_pool_s8(conv_params, pool_params, **arrays), expected)


@st.composite
def depthwise_cases(draw, three_by_three=False):
    if three_by_three:  # the portable kernel's interior path: 3x3 windows wholly inside the input
        height = draw(spatial_3x3())
        width = draw(spatial_3x3())
    else:
        height = draw(spatial())
        width = draw(spatial())
    input_channels = draw(st.integers(1, 5) if not three_by_three else st.sampled_from([1, 2, 3, 4, 6, 10, 16]))
    depth_multiplier = draw(st.integers(1, 3))
    output_channels = input_channels * depth_multiplier
    input_zero_point = draw(st.integers(-128, 127))
    output_offset = draw(st.integers(-128, 127))
    activation_min, activation_max = draw(activation_range(output_offset))
    per_channel, multipliers, shifts = draw(quantization(output_channels))
    params = DepthwiseConv2DParams(
        input_height=height[0], input_width=width[0], input_channels=input_channels,
        output_height=height[4], output_width=width[4], output_channels=output_channels,
        depth_multiplier=depth_multiplier, kernel_height=height[1], kernel_width=width[1],
        stride_height=height[2], stride_width=width[2], dilation_height=height[3], dilation_width=width[3],
        pad_top=height[5], pad_left=width[5], input_offset=-input_zero_point, output_offset=output_offset,
        activation_min=activation_min, activation_max=activation_max, per_channel=per_channel,
    )  # fmt: skip
    rng = np.random.default_rng(draw(seeds))
    bias_magnitude = draw(st.sampled_from([0, 1 << 8, 1 << 16, 1 << 22]))
    arrays = dict(
        input=rng.integers(-128, 128, size=(params.input_height, params.input_width, input_channels)),
        filter=rng.integers(-127, 128, size=(1, params.kernel_height, params.kernel_width, output_channels)),
        bias=rng.integers(-bias_magnitude, bias_magnitude + 1, size=output_channels),
        output_multiplier=multipliers,
        output_shift=shifts,
    )  # fmt: skip
    return params, arrays


@KERNEL_SETTINGS
@given(case=depthwise_cases())
def test_depthwise_conv2d_matches_reference(case):
    params, arrays = case
    expected = reference_depthwise_conv2d(params, **arrays)
    assert np.array_equal(kernel_lib.depthwise_conv2d_s8(params, **arrays), expected)


@KERNEL_SETTINGS
@given(case=depthwise_cases(three_by_three=True))
def test_depthwise_conv2d_3x3_matches_reference(case):
    """3x3 kernels: the interior path (no clipping, input offset folded into the bias) and the edges."""
    params, arrays = case
    expected = reference_depthwise_conv2d(params, **arrays)
    assert np.array_equal(kernel_lib.depthwise_conv2d_s8(params, **arrays), expected)


def test_depthwise_conv2d_3x3_extreme_values():
    """Weights and inputs at the int8 ends, biases near the int32 ends (the sums still fit), offsets at both
    ends of their range: the folded bias (bias + input offset * sum of weights) gives the reference's sums."""
    rng = np.random.default_rng(11)
    for input_offset in (-127, 128, 0):
        params = DepthwiseConv2DParams(7, 6, 3, 7, 6, 6, 2, 3, 3, 1, 1, 1, 1, 1, 1, input_offset, -5, -128, 127, 1)
        pairs = [oracle.quantize_multiplier(s) for s in rng.uniform(1e-6, 0.5, size=6)]
        arrays = dict(
            input=rng.choice([-128, 127], size=(7, 6, 3)),
            filter=rng.choice([-128, 127], size=(1, 3, 3, 6)),
            bias=[INT32_MAX - 300_000, INT32_MIN + 300_000, 1 << 24, -1, 0, -(1 << 24)],
            output_multiplier=[m for m, _ in pairs],
            output_shift=[s for _, s in pairs],
        )
        expected = reference_depthwise_conv2d(params, **arrays)
        assert np.array_equal(kernel_lib.depthwise_conv2d_s8(params, **arrays), expected), input_offset


def test_depthwise_conv2d_channel_mapping():
    """Output channel ic * depth_multiplier + m reads input channel ic only."""
    params = DepthwiseConv2DParams(1, 1, 2, 1, 1, 4, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, -128, 127, 0)
    multiplier, shift = oracle.quantize_multiplier(1.0)
    out = kernel_lib.depthwise_conv2d_s8(params, [10, -20], [1, 2, 3, 4], [0, 0, 0, 0], [multiplier], [shift])
    assert out.reshape(-1).tolist() == [10, 20, -60, -80]


@st.composite
def fully_connected_cases(draw):
    input_size = draw(st.integers(1, 300))
    output_size = draw(st.integers(1, 24))
    output_offset = draw(st.integers(-128, 127))
    activation_min, activation_max = draw(activation_range(output_offset))
    per_channel, multipliers, shifts = draw(quantization(output_size))
    filter_offset = draw(st.one_of(st.just(0), st.integers(-127, 127)))
    batches = draw(st.integers(1, 3))
    params = FullyConnectedParams(
        input_size=input_size, output_size=output_size, input_offset=draw(st.integers(-127, 128)),
        filter_offset=filter_offset, output_offset=output_offset,
        activation_min=activation_min, activation_max=activation_max, per_channel=per_channel, batches=batches,
    )  # fmt: skip
    rng = np.random.default_rng(draw(seeds))
    bias_magnitude = draw(st.sampled_from([0, 1 << 8, 1 << 16, 1 << 22]))
    arrays = dict(
        input=rng.integers(-128, 128, size=batches * input_size),
        filter=rng.integers(-127, 128, size=(output_size, input_size)),
        bias=rng.integers(-bias_magnitude, bias_magnitude + 1, size=output_size),
        output_multiplier=multipliers,
        output_shift=shifts,
    )
    return params, arrays


@KERNEL_SETTINGS
@given(case=fully_connected_cases())
def test_fully_connected_matches_reference(case):
    params, arrays = case
    expected = reference_fully_connected(params, **arrays)
    assert np.array_equal(kernel_lib.fully_connected_s8(params, **arrays), expected)


# ----------------------------------------------------------------------------
# Softmax


def _softmax_params(rows: int, row_size: int, beta: float, input_scale: float) -> SoftmaxParams:
    multiplier, left_shift = oracle.preprocess_softmax_scaling(beta, input_scale)
    diff_min = -oracle.calculate_input_radius(5, left_shift)
    return SoftmaxParams(rows, row_size, multiplier, left_shift, diff_min)


@st.composite
def softmax_cases(draw):
    rows = draw(st.integers(1, 4))
    row_size = draw(st.integers(1, 64))
    input_scale = float(np.float32(10.0 ** draw(st.floats(-3.0, 0.5))))
    beta = float(np.float32(draw(st.sampled_from([1.0, 0.5, 2.0, 0.1]))))
    rng = np.random.default_rng(draw(seeds))
    spread = draw(st.sampled_from([256, 32, 4]))  # narrow spreads give many non-trivial outputs
    x = rng.integers(-128, 128 - spread + 1, size=(rows, 1)) + rng.integers(0, spread, size=(rows, row_size))
    return _softmax_params(rows, row_size, beta, input_scale), x


@KERNEL_SETTINGS
@given(case=softmax_cases())
def test_softmax_matches_reference(case):
    params, x = case
    assert np.array_equal(kernel_lib.softmax_s8(params, x), reference_softmax(params, x))


def test_softmax_known_values():
    params = _softmax_params(3, 4, 1.0, 1.0 / 16)
    x = np.array([[0, 0, 0, 0], [127, -128, -128, -128], [5, 5, -128, -128]])
    out = kernel_lib.softmax_s8(params, x)
    assert out[0].tolist() == [-64, -64, -64, -64]  # 0.25 each = 64/256
    assert out[1].tolist() == [127, -128, -128, -128]  # 1.0 saturates at 255/256
    assert out[2].tolist() == [0, 0, -128, -128]  # 0.5 each
    assert np.array_equal(out, reference_softmax(params, x))


def _tflm_softmax_model(rows: int, row_size: int, float_scale: float) -> bytes:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    inputs = tf.keras.Input(shape=(rows, row_size), batch_size=1)
    model = tf.keras.Model(inputs, tf.keras.layers.Softmax()(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(1)

    def representative():
        for _ in range(16):
            yield [rng.normal(0.0, float_scale, size=(1, rows, row_size)).astype(np.float32)]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.mark.parametrize("float_scale", [0.5, 5.0, 40.0])
def test_softmax_bit_exact_with_tflite_micro(float_scale):
    """A one-op int8 softmax model run by the TFLM interpreter: C and reference agree with it."""
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    rows, row_size = 64, 10
    interpreter = runtime.Interpreter.from_bytes(_tflm_softmax_model(rows, row_size, float_scale))
    details = interpreter.get_input_details(0)
    input_scale = float(np.float32(details["quantization_parameters"]["scales"][0]))
    output_details = interpreter.get_output_details(0)["quantization_parameters"]
    assert output_details["zero_points"][0] == -128 and output_details["scales"][0] == np.float32(1 / 256)
    params = _softmax_params(rows, row_size, 1.0, input_scale)
    rng = np.random.default_rng(int(float_scale * 10))
    for trial in range(12):
        spread = [256, 64, 16, 4][trial % 4]
        x = rng.integers(-128, 128 - spread + 1, size=(rows, 1)) + rng.integers(0, spread, size=(rows, row_size))
        x = x.astype(np.int8).reshape(1, rows, row_size)
        interpreter.set_input(x, 0)
        interpreter.invoke()
        expected = interpreter.get_output(0).reshape(rows, row_size)
        assert np.array_equal(reference_softmax(params, x), expected)
        assert np.array_equal(kernel_lib.softmax_s8(params, x), expected)


# ----------------------------------------------------------------------------
# Sanitizers


def test_kernels_clean_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    compiler = host_compiler()
    driver = Path(__file__).resolve().parent / "kernel_sanitizer_driver.c"
    binary = tmp_path / "kernel_sanitizer_driver"
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
    probe = subprocess.run(
        [compiler, *flags, "-x", "c", "-", "-o", str(tmp_path / "probe")],
        input="int main(void) { return 0; }\n", capture_output=True, text=True,
    )  # fmt: skip
    if probe.returncode != 0 or subprocess.run([str(tmp_path / "probe")]).returncode != 0:
        pytest.skip(f"{compiler} cannot build and run sanitizer binaries here")
    build = subprocess.run(
        [compiler, *STRICT_C_FLAGS, *flags, f"-I{kernel_include_dir()}",
         *map(str, portable_kernel_sources()), str(driver), "-o", str(binary)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary), "2000"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "ok 2000"
    assert "runtime error" not in run.stderr
