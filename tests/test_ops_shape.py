"""PAD / PADV2, MEAN (global average pooling) and CONCATENATION: C == NumPy == TFLite Micro.

(a) C kernels against the NumPy references on random shapes and parameters;
(b) references, params read from the .tflite, against TFLite Micro on
    single-op Keras models (ZeroPadding2D and keras.ops.pad with a constant
    -> PAD / PADV2; GlobalAveragePooling2D with and without keepdims and a
    mean over one axis -> MEAN; Concatenate along channels, rows and columns),
    with zero points moved to -128 / 127 and saturating scales;
(c) extremes: 1x1 and 7x7 means, multiplier 0, channels not a multiple of 4,
    and TFLM's refusal of concatenating differently quantized inputs.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ops_harness as h
from si4tool.compiler.ops import concatenation, mean, pad
from si4tool.errors import UserError

pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

FEW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_structs_match_the_dataclasses():
    structs = h.header_structs()
    assert list(pad.PadParams.__dataclass_fields__) == structs["si4_pad_params"]
    assert list(mean.MeanParams.__dataclass_fields__) == structs["si4_mean_params"]
    assert list(concatenation.ConcatenationParams.__dataclass_fields__) == structs["si4_concatenation_params"]


# ----------------------------------------------------------------------------
# (a), (c): C == NumPy


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=5), data=st.data(), value=st.integers(-128, 127))
def test_pad_c_matches_reference(shape, data, value):
    paddings = [(data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))) for _ in shape]
    p = pad.prepare_pad(shape, paddings, 0, constant_value=value)
    x = np.random.default_rng(len(shape)).integers(-128, 128, shape).astype(np.int8)
    expected = pad.reference_pad(p, x)
    np.testing.assert_array_equal(expected, np.pad(x, paddings, constant_values=np.int8(value)).reshape(-1))
    np.testing.assert_array_equal(h.call("si4_pad_s8", [h.struct_of(p)], [x], expected.size), expected)


@FEW
@given(outer=st.integers(1, 3), reduced=st.integers(1, 60), inner=st.integers(1, 9), zp_in=st.integers(-128, 127),
       zp_out=st.integers(-128, 127), s_in=st.floats(1e-4, 1.0), s_out=st.floats(1e-4, 1.0),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_mean_c_matches_reference(outer, reduced, inner, zp_in, zp_out, s_in, s_out, seed):
    p = mean.prepare_mean((outer, reduced, inner), (1,), s_in, zp_in, s_out, zp_out)
    x = np.random.default_rng(seed).integers(-128, 128, (outer, reduced, inner)).astype(np.int8)
    expected = mean.reference_mean(p, x)
    np.testing.assert_array_equal(h.call("si4_mean_s8", [h.struct_of(p)], [x], expected.size), expected)


def test_mean_extremes():
    x = np.full((1, 7, 7, 5), 127, np.int8)
    # multiplier 0 (a real multiplier below 2^-32): every output is the output zero point.
    p = mean.prepare_mean(x.shape, (1, 2), 1e-12, 0, 1.0, -9)
    assert p.output_multiplier == 0
    np.testing.assert_array_equal(h.call("si4_mean_s8", [h.struct_of(p)], [x], 5), np.full(5, -9))
    # 1x1: the mean is the input, requantized.
    p = mean.prepare_mean((1, 1, 1, 3), (1, 2), 0.5, 0, 0.5, 0)
    one = np.array([-128, 5, 127], np.int8)
    np.testing.assert_array_equal(h.call("si4_mean_s8", [h.struct_of(p)], [one], 3), one)
    with pytest.raises(UserError):
        mean.prepare_mean((1, 4, 4, 3), (1, 3), 0.1, 0, 0.1, 0)  # not adjacent axes


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(), count=st.integers(1, 4))
def test_concatenation_c_matches_reference(shape, data, count):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    shapes = []
    for _ in range(count):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 5))
        shapes.append(tuple(s))
    params = concatenation.prepare_concatenation(shapes, axis, [(0.1, 3)] * count, (0.1, 3))
    rng = np.random.default_rng(count)
    inputs = [rng.integers(-128, 128, s).astype(np.int8) for s in shapes]
    expected = np.concatenate(inputs, axis=axis).reshape(-1)
    np.testing.assert_array_equal(concatenation.reference_concatenation(params, inputs), expected)
    out = np.zeros(expected.size, np.int8)
    for p, x in zip(params, inputs):
        h.kernels().si4_concatenation_s8(ctypes.byref(h.struct_of(p)), h.ptr(h.int8(x)), h.ptr(out))
    np.testing.assert_array_equal(out, expected)


# ----------------------------------------------------------------------------
# (b) against TFLite Micro


@pytest.fixture(scope="module")
def models():
    import keras

    def one(shape, fn):
        x = keras.Input(shape)
        return h.single_op_tflite(keras.Model(x, fn(x)), [shape])

    def two(shapes, fn):
        a, b = keras.Input(shapes[0], name="a"), keras.Input(shapes[1], name="b")
        return h.single_op_tflite(keras.Model([a, b], fn([a, b])), list(shapes))

    def three(shapes, fn):
        xs = [keras.Input(s, name=n) for s, n in zip(shapes, "abc")]
        return h.single_op_tflite(keras.Model(xs, fn(xs)), list(shapes))

    return {
        "pad_image": one((5, 4, 3), keras.layers.ZeroPadding2D(((1, 2), (0, 3)))),
        "pad_channels": one((3, 3, 5), lambda x: keras.ops.pad(x, ((0, 0), (0, 0), (1, 1), (2, 0)))),
        "padv2": one((4, 4, 3), lambda x: keras.ops.pad(x, ((0, 0), (1, 1), (2, 2), (0, 0)), constant_values=1.5)),
        "mean_keepdims": one((4, 4, 3), keras.layers.GlobalAveragePooling2D(keepdims=True)),
        "mean_flat": one((7, 7, 5), keras.layers.GlobalAveragePooling2D()),
        "mean_one_axis": one((6, 10), lambda x: keras.ops.mean(x, axis=1)),
        "mean_1x1": one((1, 1, 7), keras.layers.GlobalAveragePooling2D()),
        "concat_channels": two(((4, 4, 3), (4, 4, 5)), keras.layers.Concatenate(axis=-1)),
        "concat_rows": two(((2, 4, 3), (5, 4, 3)), keras.layers.Concatenate(axis=1)),
        "concat_columns": two(((4, 1, 3), (4, 6, 3)), keras.layers.Concatenate(axis=2)),
        "concat_three": three(((3, 2, 1), (3, 2, 4), (3, 2, 2)), keras.layers.Concatenate(axis=-1)),
    }


OP_OF_CASE = {"pad": "PAD", "padv2": "PADV2", "mean": "MEAN", "concat": "CONCATENATION"}

EDGES = ["converted", "zero_point_-128", "zero_point_127", "saturating", "same_quantization"]


def _quant(view, t):
    return view.scale(t), view.zero_point(t)


def _edit(tflite, case, edge):
    if edge == "converted":
        return tflite
    op = OP_OF_CASE[case.split("_")[0]]
    view = h.op_of(tflite, op)
    zp = {"zero_point_-128": -128, "zero_point_127": 127, "saturating": 5, "same_quantization": -17}[edge]
    if op == "MEAN" and edge == "same_quantization":  # older TFLM took another (truncating) path here
        return h.with_quantization(tflite, {view.inputs[0].index: (0.05, zp), view.outputs[0].index: (0.05, zp)})
    if op == "MEAN":
        s_in, s_out = (0.05, 0.001) if edge == "saturating" else (0.05, 0.02)
        return h.with_quantization(tflite, {view.inputs[0].index: (s_in, zp), view.outputs[0].index: (s_out, -zp // 2)})
    if op == "PADV2":
        return h.with_quantization(tflite, {view.inputs[2].index: (0.04, zp), view.outputs[0].index: (0.04, zp),
                                            view.inputs[0].index: (0.04, zp)})  # fmt: skip
    tensors = [t for t in view.inputs if t is not None and t.quantization is not None] + view.outputs
    return h.with_quantization(tflite, {t.index: (0.03, zp) for t in tensors})


CASES = ["pad_image", "pad_channels", "padv2", "mean_keepdims", "mean_flat", "mean_one_axis", "mean_1x1",
         "concat_channels", "concat_rows", "concat_columns", "concat_three"]  # fmt: skip


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("case", CASES)
def test_bit_exact_with_tflite_micro(models, case, edge):
    op = OP_OF_CASE[case.split("_")[0]]
    tflite = _edit(models[case], case, edge)
    view = h.op_of(tflite, op)
    out = view.outputs[0]
    rng = np.random.default_rng(len(case))
    data_inputs = [t for t in view.inputs if t is not None and t.data is None]
    xs = [rng.integers(-128, 128, t.shape).astype(np.int8) for t in data_inputs]
    order = [list(view.model.inputs).index(t.index) for t in data_inputs]
    feeds = [None] * len(xs)
    for k, x in zip(order, xs):
        feeds[k] = x
    (tflm,) = h.run_tflm(tflite, feeds)
    tflm = tflm.reshape(-1)
    if op in ("PAD", "PADV2"):
        paddings = np.frombuffer(view.inputs[1].data, dtype=np.int32).reshape(-1, 2)
        if op == "PAD":
            p = pad.prepare_pad(view.inputs[0].shape, paddings, view.zero_point(out))
        else:
            constant = view.inputs[2]
            p = pad.prepare_pad(view.inputs[0].shape, paddings, view.zero_point(out),
                                constant_value=int(np.frombuffer(constant.data, np.int8)[0]),
                                constant_quantization=_quant(view, constant), output_scale=view.scale(out))  # fmt: skip
        expected = pad.reference_pad(p, xs[0])
        c_out = h.call("si4_pad_s8", [h.struct_of(p)], xs, expected.size)
        assert (expected == p.pad_value).sum() > 0
    elif op == "MEAN":
        axes = tuple(int(a) for a in np.frombuffer(view.inputs[1].data, dtype=np.int32))
        keep_dims = view.operator.options.get("keep_dims", False)
        assert mean.mean_output_shape(view.inputs[0].shape, axes, keep_dims) == out.shape
        p = mean.prepare_mean(view.inputs[0].shape, axes, *_quant(view, view.inputs[0]), *_quant(view, out))
        expected = mean.reference_mean(p, xs[0])
        c_out = h.call("si4_mean_s8", [h.struct_of(p)], xs, expected.size)
    else:
        params = concatenation.prepare_concatenation(
            [t.shape for t in view.inputs], view.operator.options.get("axis", 0),
            [_quant(view, t) for t in view.inputs], _quant(view, out), view.operator.options.get("activation", 0),
        )  # fmt: skip
        expected = concatenation.reference_concatenation(params, xs)
        c_out = np.zeros(expected.size, np.int8)
        for p, x in zip(params, xs):
            h.kernels().si4_concatenation_s8(ctypes.byref(h.struct_of(p)), h.ptr(h.int8(x)), h.ptr(c_out))
    np.testing.assert_array_equal(expected, tflm)
    np.testing.assert_array_equal(c_out, tflm)


def test_concatenation_of_differently_quantized_inputs_is_refused_like_tflite_micro(models):
    tflite = models["concat_channels"]
    view = h.op_of(tflite, "CONCATENATION")
    edited = h.with_quantization(tflite, {view.inputs[1].index: (view.scale(view.inputs[1]) * 2, 3)})
    with pytest.raises(Exception):  # TFLM's Prepare fails: "no re-scaling needed for Int8"
        h.run_tflm(edited, [np.zeros(t.shape, np.int8) for t in view.inputs])
    view = h.op_of(edited, "CONCATENATION")
    with pytest.raises(UserError, match="quantized differently"):
        quantizations = [_quant(view, t) for t in view.inputs]
        output = _quant(view, view.outputs[0])
        concatenation.prepare_concatenation([t.shape for t in view.inputs], -1, quantizations, output)


@pytest.mark.parametrize("real", [2.0**-33, 1.5 * 2.0**-20, 1.5 * 2.0**29], ids=["multiplier_0", "small", "shift_+30"])
def test_mean_extreme_multipliers_match_tflite_micro(models, real):
    """7x7 mean (n = 49 folded into the multiplier) at the multiplier corners, run by TFLite Micro."""
    tflite = models["mean_flat"]
    view = h.op_of(tflite, "MEAN")
    tflite = h.with_quantization(tflite, {view.inputs[0].index: (1.0, -100), view.outputs[0].index: (1.0 / real, 11)})
    view = h.op_of(tflite, "MEAN")
    x = np.random.default_rng(5).integers(-128, 128, view.inputs[0].shape).astype(np.int8)
    (tflm,) = h.run_tflm(tflite, [x])
    p = mean.prepare_mean(view.inputs[0].shape, (1, 2), *_quant(view, view.inputs[0]), *_quant(view, view.outputs[0]))
    np.testing.assert_array_equal(mean.reference_mean(p, x), tflm.reshape(-1))
    np.testing.assert_array_equal(h.call("si4_mean_s8", [h.struct_of(p)], [x], 5), tflm.reshape(-1))
