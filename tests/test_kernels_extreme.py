"""The kernels through the host engine against TFLite Micro at extreme parameters: requantization
multiplier 0, shifts at -31, +30 and +31, 7x7 kernels and windows, 1x1 inputs, channel counts not a
multiple of 4, zero points at -128 and 127; pools and MEAN (global average) over 7x7 and 1x1.

Each case is a tiny Keras model converted to int8 (tests/ops_harness.single_op_tflite), whose
quantization parameters are then edited (ops_harness.with_quantization) so that TFLite's
QuantizeMultiplier gives the wanted (multiplier, shift); the test checks the lowered layer really
carries those numbers, then compares every tensor with TFLite Micro (fuzz_graphs.compare_with_tflm).
A left shift of 32 or more is refused at lowering on purpose (undefined behaviour in C): one
sentence naming the operator, as a UserError.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fuzz_graphs
import ops_harness as h
from si4tool.compiler import quant_math
from si4tool.errors import UserError

pytest.importorskip("tflite_micro.python.tflite_micro.runtime", reason="TFLite Micro's Python runtime is not installed")
# int8 input without statistics is what these models are meant to have
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _keras_model(kind: str):
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(11)
    layers = keras.layers
    shapes = {
        "conv_7x7": (7, 7, 5),  # kernel 7x7 over the whole input: one output pixel
        "conv_7x7_on_1x1": (1, 1, 3),  # SAME padding: 48 of the 49 taps read padding
        "conv_1x1_on_1x1": (1, 1, 1),
        "depthwise_7x7": (7, 7, 3),
        "depthwise_7x7_on_1x1": (1, 1, 7),
        "dense_7_to_5": (7,),
        "max_pool_7x7": (7, 7, 5),
        "max_pool_7x7_on_1x1": (1, 1, 3),
        "avg_pool_7x7": (7, 7, 5),
        "avg_pool_7x7_on_1x1": (1, 1, 3),
        "mean_7x7": (7, 7, 5),
        "mean_on_1x1": (1, 1, 3),
    }
    builders = {
        "conv_7x7": lambda: layers.Conv2D(3, (7, 7)),
        "conv_7x7_on_1x1": lambda: layers.Conv2D(5, (7, 7), padding="same"),
        "conv_1x1_on_1x1": lambda: layers.Conv2D(7, (1, 1)),
        "depthwise_7x7": lambda: layers.DepthwiseConv2D((7, 7)),
        "depthwise_7x7_on_1x1": lambda: layers.DepthwiseConv2D((7, 7), padding="same", depth_multiplier=2),
        "dense_7_to_5": lambda: layers.Dense(5),
        "max_pool_7x7": lambda: layers.MaxPool2D((7, 7)),
        "max_pool_7x7_on_1x1": lambda: layers.MaxPool2D((7, 7), padding="same"),
        "avg_pool_7x7": lambda: layers.AveragePooling2D((7, 7)),
        "avg_pool_7x7_on_1x1": lambda: layers.AveragePooling2D((7, 7), padding="same"),
        "mean_7x7": lambda: layers.GlobalAveragePooling2D(keepdims=True),
        "mean_on_1x1": lambda: layers.GlobalAveragePooling2D(),
    }
    image = keras.Input(shapes[kind])
    model = keras.Model(image, builders[kind]()(image))
    rng = np.random.default_rng(3)
    # random biases too (the initializers leave them zero), so the bias path counts
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    return model, shapes[kind]


_MODELS: dict[str, bytes] = {}


def _tflite(kind: str) -> bytes:
    if kind not in _MODELS:
        model, shape = _keras_model(kind)
        _MODELS[kind] = h.single_op_tflite(model, [shape], seed=5)
    return _MODELS[kind]


BUILTIN = {"conv": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D", "dense": "FULLY_CONNECTED",
           "max": "MAX_POOL_2D", "avg": "AVERAGE_POOL_2D", "mean": "MEAN"}  # fmt: skip


def _operator(tflite: bytes, kind: str):
    return h.op_of(tflite, BUILTIN[kind.split("_")[0]])


# the real multiplier input_scale * filter_scale / output_scale each regime asks for, and the
# (multiplier, shift) TFLite's QuantizeMultiplier makes of it
REGIMES = {
    "multiplier_0": 2.0**-34,  # shift below -31: flushed to (0, 0), every output is the zero point
    "shift_minus_31": 0.75 * 2.0**-31,
    "shift_plus_30": 0.75 * 2.0**30,
    "shift_plus_31": 0.75 * 2.0**31,  # the largest left shift the C does (int32 products wrap as TFLM's)
}


def _with_multiplier(tflite: bytes, kind: str, real: float, input_zero_point: int | None = None,
                     output_zero_point: int | None = None, bias_matches: bool = True) -> bytes:  # fmt: skip
    """One per-tensor filter scale and an output scale that make the real multiplier `real`."""
    view = _operator(tflite, kind)
    activation, weights, output = view.inputs[0], view.inputs[1], view.outputs[0]
    # powers of two near the converter's scales: input x filter is then exact in float32, so the
    # bias scale can match it exactly (TFLM's FULLY_CONNECTED compares them relative to the output scale)
    s_in = 2.0 ** round(np.log2(view.scale(activation)))
    s_w = 2.0 ** round(np.log2(max(weights.quantization.scale)))
    s_out = float(np.float32(s_in * s_w / real))
    zp_in = view.zero_point(activation) if input_zero_point is None else input_zero_point
    zp_out = view.zero_point(output) if output_zero_point is None else output_zero_point
    changes = {activation.index: (s_in, zp_in), weights.index: (s_w, 0), output.index: (s_out, zp_out)}
    bias = view.inputs[2] if len(view.inputs) > 2 else None
    if bias is not None and bias_matches:
        # the bias scale TFLite expects (input x filter): TFLM's FULLY_CONNECTED refuses a bias scale
        # off by more than 2 % of the output scale (kernel_util.cc GetQuantizedConvolutionMultipler)
        changes[bias.index] = (s_in * s_w, 0)
    return h.with_quantization(tflite, changes)


def _images(tflite: bytes, count: int = 12) -> np.ndarray:
    graph = fuzz_graphs.lower(tflite)
    source = graph.tensors[graph.input]
    rng = np.random.default_rng(17)
    shape = source.shape
    fixed = [np.full(shape, v, np.int8) for v in (-128, 127, source.zero_point)]
    return np.concatenate([np.stack(fixed), rng.integers(-128, 128, (count, *shape), dtype=np.int8)])


def _compare(tflite: bytes, tmp_path) -> object:
    graph = fuzz_graphs.lower(tflite)
    compared = fuzz_graphs.compare_with_tflm(tflite, graph, _images(tflite), tmp_path)
    assert compared == len(graph.layers) * len(_images(tflite))
    return graph


WEIGHTED = ["conv_7x7", "conv_7x7_on_1x1", "conv_1x1_on_1x1", "depthwise_7x7", "depthwise_7x7_on_1x1", "dense_7_to_5"]
POOLS = ["max_pool_7x7", "max_pool_7x7_on_1x1", "avg_pool_7x7", "avg_pool_7x7_on_1x1", "mean_7x7", "mean_on_1x1"]


def _registered(kind: str) -> None:
    from si4tool.compiler import ops

    builtin = BUILTIN[kind.split("_")[0]]
    if ops.for_builtin(builtin) is None:
        pytest.skip(f"{builtin} is not registered yet")


@pytest.mark.parametrize("kind", WEIGHTED + POOLS)
def test_as_converted(kind, tmp_path):
    _registered(kind)
    _compare(_tflite(kind), tmp_path)


@pytest.mark.parametrize("zero_point", [-128, 127])
@pytest.mark.parametrize("kind", POOLS)
def test_windows_with_zero_points_at_the_extremes(kind, zero_point, tmp_path):
    """Pools and MEAN keep the input's quantization (MEAN may rescale): both ends moved together."""
    _registered(kind)
    view = _operator(_tflite(kind), kind)
    source, output = view.inputs[0], view.outputs[0]
    changes = {source.index: (view.scale(source), zero_point), output.index: (view.scale(output), zero_point)}
    _compare(h.with_quantization(_tflite(kind), changes), tmp_path)


@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("kind", WEIGHTED)
def test_requantization_extremes(kind, regime, tmp_path):
    tflite = _with_multiplier(_tflite(kind), kind, REGIMES[regime])
    graph = _compare(tflite, tmp_path)
    (layer,) = graph.layers
    # the float32 output scale moves the multiplier's low bits, not its shift
    expected_shift = {"multiplier_0": 0, "shift_minus_31": -31, "shift_plus_30": 30, "shift_plus_31": 31}[regime]
    assert set(layer.constants["output_shift"].tolist()) == {expected_shift}
    multipliers = set(layer.constants["output_multiplier"].tolist())
    assert multipliers == {0} if regime == "multiplier_0" else min(multipliers) >= 1 << 30


@pytest.mark.parametrize("zero_points", [(-128, 127), (127, -128), (-128, -128), (127, 127)])
@pytest.mark.parametrize("kind", ["conv_7x7", "depthwise_7x7_on_1x1", "dense_7_to_5"])
def test_zero_points_at_the_extremes(kind, zero_points, tmp_path):
    view = _operator(_tflite(kind), kind)
    real = view.scale(view.inputs[0]) * max(view.inputs[1].quantization.scale) / view.scale(view.outputs[0])
    _compare(_with_multiplier(_tflite(kind), kind, real, *zero_points), tmp_path)


@pytest.mark.parametrize("kind", ["conv_7x7", "depthwise_7x7_on_1x1", "dense_7_to_5"])
def test_a_left_shift_of_32_is_refused_naming_the_operator(kind):
    tflite = _with_multiplier(_tflite(kind), kind, 0.75 * 2.0**32)
    with pytest.raises(UserError) as refused:
        fuzz_graphs.lower(tflite)
    message = str(refused.value)
    assert message.startswith(f"{BUILTIN[kind.split('_')[0]]} (operator 0, output tensor '")
    assert "32" in message and "undefined behaviour" in message
    assert message.count(". ") == 0 and "\n" not in message  # one sentence


def test_a_bias_scale_tflm_refuses_is_refused():
    """TFLite Micro refuses this model at Prepare; si4tool should refuse it too, in one sentence."""
    tflite = _with_multiplier(_tflite("dense_7_to_5"), "dense_7_to_5", 0.75 * 2.0**30, bias_matches=False)
    with pytest.raises(RuntimeError):
        fuzz_graphs.tflm_interpreter(tflite)
    with pytest.raises(UserError, match=r"^FULLY_CONNECTED \(operator 0"):
        fuzz_graphs.lower(tflite)
