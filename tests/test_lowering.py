"""Lowering an int8 .tflite into the si4 IR, and the TFLM prepare-time arithmetic in quant_math."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import model_zoo
import tflite_oracle
from si4tool.compiler import ops, quant_math
from si4tool.compiler.lowering import lower_tflite
from si4tool.compiler.tflite_reader import read_tflite
from si4tool.errors import UserError


@pytest.fixture(scope="session")
def seed_tflite() -> bytes:
    return model_zoo.seed_model_tflite()


@pytest.fixture(scope="session")
def second_tflite() -> bytes:
    return model_zoo.second_model_tflite()


def test_seed_model_layers(seed_tflite):
    graph = lower_tflite(seed_tflite)
    assert [(layer.name, layer.op) for layer in graph.layers] == [
        ("conv2d_0", "conv2d"),
        ("max_pool_0", "max_pool"),
        ("conv2d_1", "conv2d"),
        ("max_pool_1", "max_pool"),
        ("reshape_0", "reshape"),
        ("fully_connected_0", "fully_connected"),
        ("fully_connected_1", "fully_connected"),
        ("fully_connected_2", "fully_connected"),
        ("softmax_0", "softmax"),
    ]
    shapes = [graph.tensors[layer.output].shape for layer in graph.layers]
    assert shapes == [(26, 26, 32), (13, 13, 32), (11, 11, 64), (5, 5, 64), (1600,), (128,), (64,), (10,), (10,)]
    assert graph.tensors[graph.input].shape == (28, 28, 1)
    assert sum(layer.parameter_count() for layer in graph.layers) == 232_650
    conv = graph.layers[0]
    assert conv.constants["filter"].shape == (32, 3, 3, 1) and conv.constants["filter"].dtype == np.int8
    assert conv.constants["bias"].dtype == np.int32 and conv.constants["bias"].shape == (32,)
    assert conv.constants["output_multiplier"].shape == (32,) and conv.params.per_channel == 1
    assert ops.layer_macs(conv) == 26 * 26 * 32 * 9
    assert ops.layer_macs(graph.layers[5]) == 1600 * 128
    softmax = graph.layers[-1].params
    assert softmax.rows == 1 and softmax.row_size == 10


def test_tensor_names_are_the_tflite_names(seed_tflite):
    model = read_tflite(seed_tflite)
    graph = lower_tflite(seed_tflite)
    for layer in graph.layers:
        info = graph.tensors[layer.output]
        assert model.tensors[info.tflite_index].name == info.name
        assert layer.source[-1].output == info.name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", layer.name)
        assert ops.spec(layer.op).op == layer.op
    assert len({layer.name for layer in graph.layers}) == len(graph.layers)
    assert graph.output == model.tensors[model.outputs[0]].name


def test_second_model_same_padding_stride_and_average_pool(second_tflite):
    graph = lower_tflite(second_tflite)
    layer_ops = [layer.op for layer in graph.layers]
    assert layer_ops == ["conv2d", "depthwise_conv2d", "avg_pool", "conv2d", "max_pool", "reshape",
                   "fully_connected", "fully_connected", "softmax"]
    conv = graph.layers[0].params
    assert (conv.stride_height, conv.output_height, conv.pad_top) == (2, 14, 0)  # SAME 28 -> 14: pad 0 before, 1 after
    depthwise = graph.layers[1].params
    assert (depthwise.depth_multiplier, depthwise.pad_top, depthwise.pad_left) == (2, 1, 1)
    assert graph.layers[1].constants["filter"].shape == (1, 3, 3, 16)
    relu6 = graph.layers[0]
    output = graph.tensors[relu6.output]
    assert relu6.params.activation_max == min(127, output.zero_point + round(6.0 / output.scale))
    pool = graph.layers[4].params
    assert (pool.input_height, pool.output_height, pool.pad_top) == (5, 3, 0)


def test_per_tensor_quantization():
    graph = lower_tflite(model_zoo.second_model_per_tensor_tflite())
    weighted = [layer for layer in graph.layers if "filter" in layer.constants]
    assert weighted
    for layer in weighted:
        assert layer.params.per_channel == 0
        assert layer.constants["output_multiplier"].shape == (1,)


def test_unsupported_operator_is_named():
    with pytest.raises(UserError) as error:
        lower_tflite(model_zoo.unsupported_model_tflite())
    message = str(error.value)
    assert "REDUCE_MAX" in message and "pick_max" in message  # the operator and the Keras layer it came from
    assert "CONV_2D" in message  # lists what is supported


def test_corrupt_model_is_a_user_error():
    with pytest.raises(UserError, match="not a valid TFLite model"):
        lower_tflite(b"\x00" * 64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_models_lower_or_raise_user_error(second_tflite, data):
    mutated = bytearray(second_tflite)
    for _ in range(data.draw(st.integers(1, 6))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    try:
        lower_tflite(bytes(mutated))
    except UserError:
        pass


# ---- quant_math: TFLM's prepare-time arithmetic ------------------------------------------------


@pytest.mark.parametrize(
    "real, expected",
    [
        (0.0, (0, 0)),
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.75, (3 << 29, 0)),
        (1.0 - 2.0**-40, (1 << 30, 1)),  # mantissa * 2^31 rounds up to 2^31: folded into the shift
        (2.0**-40, (0, 0)),  # shift below -31: flushed to zero
        (2.0**-31, (1 << 30, -30)),
    ],
)
def test_quantize_multiplier(real, expected):
    assert quant_math.quantize_multiplier(real) == expected


def test_quantize_multiplier_rounds_half_away_from_zero():
    # mantissa * 2^31 = 2^30 + 0.5 exactly: TfLiteRound gives 2^30 + 1 (Python's round() would give 2^30).
    real = (2**30 + 0.5) / 2**31
    assert quant_math.quantize_multiplier(real) == (2**30 + 1, 0)


def test_quantize_multiplier_agrees_with_the_test_oracle():
    rng = np.random.default_rng(0)
    for real in np.exp(rng.uniform(-25, 5, size=2000)):
        assert quant_math.quantize_multiplier(float(real)) == tflite_oracle.quantize_multiplier(float(real))


def test_per_tensor_fully_connected_multiplies_scales_in_double():
    """TFLM computes (double)input_scale * (double)filter_scale: find scales where a float32 product would differ
    (ad01's last layer is one: tests/test_mlperf_tiny.py)."""
    rng = np.random.default_rng(1)
    found = 0
    for _ in range(20000):
        a, b, c = (np.float32(v) for v in rng.uniform(1e-4, 1e-1, size=3))
        float_product = quant_math.quantize_multiplier(float(a * b) / float(c))
        double_product = quant_math.quantize_multiplier(float(a) * float(b) / float(c))
        if float_product != double_product:
            found += 1
            assert quant_math.fully_connected_multiplier(a, b, c) == double_product
    assert found > 0


def test_activation_ranges():
    assert quant_math.activation_range(quant_math.ACTIVATION_NONE, 0.1, 3) == (-128, 127)
    assert quant_math.activation_range(quant_math.ACTIVATION_RELU, 0.1, 3) == (3, 127)
    assert quant_math.activation_range(quant_math.ACTIVATION_RELU6, 0.1, -128) == (-128, -68)
    assert quant_math.activation_range(quant_math.ACTIVATION_RELU6, 0.01, -100) == (-100, 127)
    assert quant_math.activation_range(quant_math.ACTIVATION_RELU_N1_TO_1, 0.5, 0) == (-2, 2)
    with pytest.raises(quant_math.QuantizationError):  # pure maths: not the CLI's UserError
        quant_math.activation_range(4, 0.1, 0)  # TANH


@pytest.mark.parametrize("beta, scale", [(1.0, 0.1), (1.0, 0.0390625), (0.5, 0.25), (1.0, 1e-3), (2.0, 3.0)])
def test_softmax_parameters_agree_with_the_test_oracle(beta, scale):
    multiplier, shift, diff_min = quant_math.softmax_parameters(beta, scale)
    # TFLM widens the float32 beta and scale to double; quant_math does that itself.
    beta32, scale32 = float(np.float32(beta)), float(np.float32(scale))
    assert (multiplier, shift) == tflite_oracle.preprocess_softmax_scaling(beta32, scale32, 5)
    assert diff_min == -tflite_oracle.calculate_input_radius(5, shift, 31)
    assert multiplier > 0 and shift >= 0 and diff_min < 0


def test_padding_matches_tflite():
    assert quant_math.output_size(quant_math.PADDING_SAME, 28, 3, 2) == 14
    assert quant_math.padding_before(2, 1, 28, 3, 14) == 0
    assert quant_math.output_size(quant_math.PADDING_SAME, 14, 3, 1) == 14
    assert quant_math.padding_before(1, 1, 14, 3, 14) == 1
    assert quant_math.output_size(quant_math.PADDING_VALID, 11, 2, 2) == 5
    assert quant_math.output_size(quant_math.PADDING_VALID, 10, 3, 1, dilation=2) == 6
    assert quant_math.padding_before(1, 2, 10, 3, 10) == 2
    assert math.isclose(quant_math.round_half_away_from_zero(-2.5), -3)


def test_softmax_rows_of_512_are_refused_with_the_reason():
    keras = model_zoo._seeded(7)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(512, activation="softmax")])
    tflite = model_zoo.convert_to_int8(model, (8,), seed=7, samples=8)
    with pytest.raises(UserError, match=r"SOFTMAX \(operator \d+.*rows of 512 values; int8 softmax supports at most 511"):
        lower_tflite(tflite)


def test_a_left_shift_of_32_or_more_is_refused_naming_the_operator(monkeypatch):
    """An output scale 2^-40 times smaller makes the real multiplier >= 2^31: shift >= 32 is UB in C."""
    import dataclasses

    from si4tool.compiler import lowering
    from si4tool.compiler.tflite_reader import Quantization

    tflite = model_zoo.asymmetric_model_tflite()
    model = read_tflite(tflite, option_layouts=ops.option_layouts())
    output = model.tensors[model.outputs[0]]
    tiny = Quantization((output.quantization.scale[0] * 2.0**-40,), output.quantization.zero_point, 0)
    tensors = list(model.tensors)
    tensors[output.index] = dataclasses.replace(output, quantization=tiny)
    patched = dataclasses.replace(model, tensors=tuple(tensors))
    monkeypatch.setattr(lowering, "read_tflite", lambda data, source="the model", option_layouts=(): patched)
    with pytest.raises(UserError, match=r"FULLY_CONNECTED \(operator \d+, output tensor .*output shift of 3\d.*undefined behaviour"):
        lower_tflite(tflite)
