"""RELU, RELU6, LEAKY_RELU, QUANTIZE (int8 -> int8), LOGISTIC, TANH, HARD_SWISH: C == NumPy == TFLite Micro.

(a) the C kernels against the NumPy references on random parameters,
(b) the references, with params read from the .tflite by si4tool's reader,
    against TFLite Micro on every one of the 256 int8 inputs, for single-op
    Keras models and for the same models with zero points moved to -128 / 127
    and output scales that saturate,
(c) the C kernels at extreme multipliers and shifts.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ops_harness as h
from si4tool.compiler.ops import hard_swish, leaky_relu, logistic, quantize, relu, relu6, tanh
from si4tool.compiler.fixed_point import as_int8_table
from si4tool.compiler.quant_math import QuantizationError

pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
SHAPE = (16, 16, 1)  # 256 elements: every int8 value once

zero_points = st.integers(-128, 127)
multipliers = st.one_of(st.just(0), st.integers(1 << 30, (1 << 31) - 1))
shifts = st.integers(-31, 30)


def test_structs_match_the_dataclasses():
    structs = h.header_structs()
    for params, name in [
        (relu.ReluParams, "si4_relu_params"), (relu6.Relu6Params, "si4_relu6_params"),
        (leaky_relu.LeakyReluParams, "si4_leaky_relu_params"), (quantize.QuantizeParams, "si4_quantize_params"),
        (logistic.LogisticParams, "si4_table_params"), (tanh.TanhParams, "si4_table_params"),
        (hard_swish.HardSwishParams, "si4_table_params"),
    ]:  # fmt: skip
        assert [f for f in params.__dataclass_fields__] == structs[name], name


# ----------------------------------------------------------------------------
# (a) and (c): C == NumPy


@FEW
@given(zp_in=zero_points, zp_out=zero_points, m=multipliers, s=shifts)
def test_relu_and_quantize_c_match_reference(zp_in, zp_out, m, s):
    p = relu.ReluParams(256, zp_in, zp_out, m, s, max(-128, zp_out), 127)
    np.testing.assert_array_equal(
        h.call("si4_relu_s8", [h.struct_of(p)], [ALL_INT8], 256), relu.reference_relu(p, ALL_INT8)
    )
    q = quantize.QuantizeParams(256, zp_in, zp_out, m, s)
    np.testing.assert_array_equal(
        h.call("si4_quantize_s8", [h.struct_of(q)], [ALL_INT8], 256), quantize.reference_quantize(q, ALL_INT8)
    )


@FEW
@given(zp_in=zero_points, zp_out=zero_points, m1=multipliers, s1=shifts, m2=multipliers, s2=shifts,
       negative=st.booleans())  # fmt: skip
def test_leaky_relu_c_matches_reference(zp_in, zp_out, m1, s1, m2, s2, negative):
    p = leaky_relu.LeakyReluParams(256, zp_in, zp_out, m1, s1, -m2 if negative else m2, s2)
    np.testing.assert_array_equal(
        h.call("si4_leaky_relu_s8", [h.struct_of(p)], [ALL_INT8], 256), leaky_relu.reference_leaky_relu(p, ALL_INT8)
    )


@FEW
@given(lower=st.integers(-128, 127), width=st.integers(0, 255), size=st.integers(1, 300))
def test_relu6_c_matches_reference(lower, width, size):
    p = relu6.Relu6Params(size, lower, min(127, lower + width))
    x = np.resize(ALL_INT8, size)
    np.testing.assert_array_equal(h.call("si4_relu6_s8", [h.struct_of(p)], [x], size), relu6.reference_relu6(p, x))


@pytest.mark.parametrize("name", ["si4_logistic_s8", "si4_tanh_s8", "si4_hard_swish_s8"])
def test_table_kernels_read_the_table_by_input_byte(name):
    table_values = np.random.default_rng(1).integers(-128, 128, 256).astype(np.int8)  # result for x = -128..127
    table = as_int8_table(table_values)
    x = np.resize(ALL_INT8, 301)  # not a multiple of 4
    out = np.zeros(301, dtype=np.int8)
    struct = h.struct_of(logistic.LogisticParams(301))
    getattr(h.kernels(), name)(ctypes.byref(struct), h.ptr(table), h.ptr(h.int8(x)), h.ptr(out))
    np.testing.assert_array_equal(out, table_values[x.astype(np.int64) + 128])


def test_extreme_parameters_saturate_as_expected():
    one = np.array([5], dtype=np.int8)
    # multiplier 0: every output is the zero point (then the clamp).
    p = quantize.QuantizeParams(1, 0, 7, 0, 0)
    assert h.call("si4_quantize_s8", [h.struct_of(p)], [one], 1)[0] == 7
    # shift +30 with the largest multiplier: 5 * 2^30 * (2^31-1)/2^31 wraps in int32 exactly as TFLM's x * (1 << 30).
    p = quantize.QuantizeParams(1, 0, 0, (1 << 31) - 1, 30)
    assert h.call("si4_quantize_s8", [h.struct_of(p)], [one], 1)[0] == quantize.reference_quantize(p, one)[0]
    # shift -31: everything rounds to 0 (+ zero point).
    p = quantize.QuantizeParams(1, -128, 3, (1 << 31) - 1, -31)
    assert h.call("si4_quantize_s8", [h.struct_of(p)], [np.array([127], np.int8)], 1)[0] == 3
    with pytest.raises(QuantizationError, match=">= 2\\^31"):
        quantize.prepare_quantize(1, 2.0**40, 0, 1.0, 0)


# ----------------------------------------------------------------------------
# (b) NumPy (and so C) == TFLite Micro


def _unary_model(layer):
    import keras

    x = keras.Input(SHAPE)
    return keras.Model(x, layer(x))


@pytest.fixture(scope="module")
def base_models():
    import keras

    layers = {
        "RELU": keras.layers.ReLU(),
        "RELU6": keras.layers.ReLU(6.0),
        "LEAKY_RELU": keras.layers.LeakyReLU(negative_slope=0.2),
        "LOGISTIC": keras.layers.Activation("sigmoid"),
        "TANH": keras.layers.Activation("tanh"),
        "HARD_SWISH": keras.layers.Activation("hard_swish"),
    }
    return {name: h.single_op_tflite(_unary_model(layer), [SHAPE]) for name, layer in layers.items()}


# (input scale, input zp, output scale, output zp) overrides; None keeps the converter's value.
EDGES = {
    "converted": None,
    "zero_points_at_minus_128": (0.05, -128, 0.02, -128),
    "zero_points_at_127": (0.05, 127, 0.03, 127),
    "saturating_output": (0.1, -3, 0.001, 5),
    "coarse_output": (0.004, 10, 0.5, -20),
}


def _model(base_models, name, edge):
    tflite = base_models[name]
    if EDGES[edge] is None:
        return tflite
    view = h.op_of(tflite, name)
    s_in, zp_in, s_out, zp_out = EDGES[edge]
    if name == "LOGISTIC":
        s_out, zp_out = 1 / 256, -128  # TFLM's int8 LOGISTIC requires this output quantization
    if name == "TANH":
        s_out, zp_out = 1 / 128, 0
    return h.with_quantization(tflite, {view.inputs[0].index: (s_in, zp_in), view.outputs[0].index: (s_out, zp_out)})


def _reference_from_model(tflite: bytes, name: str, x: np.ndarray) -> np.ndarray:
    view = h.op_of(tflite, name)
    tin, tout = view.inputs[0], view.outputs[0]
    s_in, zp_in, s_out, zp_out = view.scale(tin), view.zero_point(tin), view.scale(tout), view.zero_point(tout)
    size = x.size
    if name == "RELU":
        p = relu.prepare_relu(size, s_in, zp_in, s_out, zp_out)
        return relu.reference_relu(p, x), h.call("si4_relu_s8", [h.struct_of(p)], [x], size)
    if name == "RELU6":
        p = relu6.prepare_relu6(size, s_in, zp_in)
        return relu6.reference_relu6(p, x), h.call("si4_relu6_s8", [h.struct_of(p)], [x], size)
    if name == "LEAKY_RELU":
        p = leaky_relu.prepare_leaky_relu(size, view.operator.options["alpha"], s_in, zp_in, s_out, zp_out)
        return leaky_relu.reference_leaky_relu(p, x), h.call("si4_leaky_relu_s8", [h.struct_of(p)], [x], size)
    if name == "QUANTIZE":
        p = quantize.prepare_quantize(size, s_in, zp_in, s_out, zp_out)
        return quantize.reference_quantize(p, x), h.call("si4_quantize_s8", [h.struct_of(p)], [x], size)
    if name == "LOGISTIC":
        p, table = logistic.prepare_logistic(size, s_in, zp_in, s_out, zp_out)
        expected = logistic.reference_logistic(p, table, x)
    elif name == "TANH":
        p, table = tanh.prepare_tanh(size, s_in, zp_in)
        expected = tanh.reference_tanh(p, table, x)
    else:
        p, table = hard_swish.prepare_hard_swish(size, s_in, zp_in, s_out, zp_out)
        expected = hard_swish.reference_hard_swish(p, table, x)
    out = np.zeros(size, dtype=np.int8)
    kernel = getattr(h.kernels(), f"si4_{name.lower()}_s8")
    kernel(ctypes.byref(h.struct_of(p)), h.ptr(table), h.ptr(h.int8(x)), h.ptr(out))
    return expected, out


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("name", ["RELU", "RELU6", "LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH", "QUANTIZE"])
def test_bit_exact_with_tflite_micro_on_all_256_inputs(base_models, name, edge):
    if name == "QUANTIZE":
        # Keras has no int8 -> int8 QUANTIZE layer: the RELU model with its operator turned into
        # QUANTIZE, which TFLite Micro runs as reference_ops::Requantize.
        relu_model = _model(base_models, "RELU", edge)
        view = h.op_of(relu_model, "RELU")
        tflite = h.with_quantization(relu_model, {view.outputs[0].index: (view.scale(view.outputs[0]) * 1.37,
                                                                          view.zero_point(view.outputs[0]))},
                                     builtin_code=114)  # fmt: skip
    else:
        tflite = _model(base_models, name, edge)
    x = ALL_INT8.reshape(1, *SHAPE)
    (tflm,) = h.run_tflm(tflite, [x])
    expected, c_out = _reference_from_model(tflite, name, x)
    np.testing.assert_array_equal(expected.reshape(-1), tflm.reshape(-1))
    np.testing.assert_array_equal(c_out, tflm.reshape(-1))
    if edge == "converted":  # the converter's quantization maps the 256 inputs onto many outputs
        assert len(np.unique(tflm)) > 16


def test_tables_match_tflite_micro_over_input_scales(base_models):
    """LOGISTIC and TANH radii from a few codes to all 256, HARD_SWISH's reluish shift left and right:
    a seeded sweep of input scales 2^-12 .. 2^3 and zero points."""
    rng = np.random.default_rng(10)
    x = ALL_INT8.reshape(1, *SHAPE)
    for _ in range(8):
        log2_scale = rng.uniform(-12.0, 3.0)
        zero_point, out_zero_point = (int(v) for v in rng.integers(-128, 128, 2))
        # HARD_SWISH: output multiplier input_scale / 128 / output_scale in [2^-15, 1], as TFLM needs.
        hard_swish_out = 2.0 ** (log2_scale - 7 + rng.uniform(0.0, 8.0))
        for name in ("LOGISTIC", "TANH", "HARD_SWISH"):
            tflite = base_models[name]
            view = h.op_of(tflite, name)
            out_q = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}.get(name, (hard_swish_out, out_zero_point))
            edited = h.with_quantization(tflite, {view.inputs[0].index: (2.0**log2_scale, zero_point),
                                                  view.outputs[0].index: out_q})  # fmt: skip
            (tflm,) = h.run_tflm(edited, [x])
            expected, c_out = _reference_from_model(edited, name, x)
            np.testing.assert_array_equal(expected.reshape(-1), tflm.reshape(-1), err_msg=f"{name} 2^{log2_scale}")
            np.testing.assert_array_equal(c_out, tflm.reshape(-1), err_msg=name)


@pytest.mark.parametrize("alpha", [-0.3, 0.0, 1.7])
def test_leaky_relu_alphas_outside_keras_match_tflite_micro(base_models, alpha):
    """Negative alpha (TFLM negates the magnitude's product), zero, and above one."""
    tflite = h.with_quantization(base_models["LEAKY_RELU"], {}, options={"alpha": alpha})
    assert h.op_of(tflite, "LEAKY_RELU").operator.options["alpha"] == pytest.approx(alpha)
    x = ALL_INT8.reshape(1, *SHAPE)
    (tflm,) = h.run_tflm(tflite, [x])
    expected, c_out = _reference_from_model(tflite, "LEAKY_RELU", x)
    np.testing.assert_array_equal(expected.reshape(-1), tflm.reshape(-1))
    np.testing.assert_array_equal(c_out, tflm.reshape(-1))


# Real multipliers that give multiplier 0 (flushed below 2^-32), shift -31, and shift +30.
EXTREME_RATIOS = {"multiplier_0": 2.0**-33, "shift_-31": 1.5 * 2.0**-32, "shift_+30": 1.5 * 2.0**29}


@pytest.mark.parametrize("ratio", list(EXTREME_RATIOS))
@pytest.mark.parametrize("name", ["QUANTIZE", "RELU", "LEAKY_RELU"])
def test_extreme_multipliers_match_tflite_micro(base_models, name, ratio):
    """The multiplier/shift corners, run by TFLite Micro itself; +30 makes TFLM's x * (1 << 30) wrap."""
    real = EXTREME_RATIOS[ratio]
    source = "LEAKY_RELU" if name == "LEAKY_RELU" else "RELU"
    view = h.op_of(base_models[source], source)
    changes = {view.inputs[0].index: (1.0, 3), view.outputs[0].index: (1.0 / real, -7)}
    tflite = h.with_quantization(base_models[source], changes, builtin_code=114 if name == "QUANTIZE" else None)
    x = ALL_INT8.reshape(1, *SHAPE)
    (tflm,) = h.run_tflm(tflite, [x])
    expected, c_out = _reference_from_model(tflite, name, x)
    np.testing.assert_array_equal(expected.reshape(-1), tflm.reshape(-1))
    np.testing.assert_array_equal(c_out, tflm.reshape(-1))
    q = quantize.prepare_quantize(1, 1.0, 3, 1.0 / real, -7)
    multiplier, shift = q.output_multiplier, q.output_shift
    # The corner was reached (the float32 scale moves the multiplier's last bits, not its shift).
    corners = {"multiplier_0": (True, 0), "shift_-31": (False, -31), "shift_+30": (False, 30)}
    assert (multiplier == 0, shift) == corners[ratio]
