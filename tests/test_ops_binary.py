"""MUL and SUB (with broadcasting): C == NumPy == TFLite Micro.

(a) C kernels against the NumPy references on random shapes (broadcast in
    any dimension, up to six), zero points and multipliers;
(b) references, params read from the .tflite, against TFLite Micro on
    single-op Keras models: same shapes, broadcasts like TFLM's own kernel
    tests (a row, a channel vector, a scalar-like [1, 1]), a fused RELU,
    zero points moved to -128 / 127 and a saturating output scale;
(c) extreme parameters: multiplier 0, shifts -31 and +30, 1x1 inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ops_harness as h
from si4tool.compiler.ops import broadcast, mul, sub
from si4tool.errors import UserError

pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

FEW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_structs_match_the_dataclasses():
    structs = h.header_structs()
    assert list(broadcast.BroadcastParams.__dataclass_fields__) == structs["si4_broadcast_params"]
    assert list(mul.MulParams.__dataclass_fields__) == structs["si4_mul_params"]
    assert list(sub.SubParams.__dataclass_fields__) == structs["si4_sub_params"]


@st.composite
def broadcast_shapes(draw):
    rank = draw(st.integers(1, 6))
    out = [draw(st.integers(1, 4)) for _ in range(rank)]
    shape1 = [d if draw(st.booleans()) else 1 for d in out]
    shape2 = [d if draw(st.booleans()) else 1 for d in out]
    # Inputs of lower rank than the output, as TFLite allows.
    shape2 = shape2[draw(st.integers(0, rank - 1)) :]
    return tuple(shape1), tuple(shape2)


def _run(op: str, params, bparams, x1, x2):
    size = int(np.prod(bparams.output_shape))
    return h.call(f"si4_{op}_s8", [h.struct_of(params), h.struct_of(bparams)], [x1, x2], size)


@FEW
@given(shapes=broadcast_shapes(), zp1=st.integers(-128, 127), zp2=st.integers(-128, 127),
       zpo=st.integers(-128, 127), m=st.one_of(st.just(0), st.integers(1 << 30, (1 << 31) - 1)),
       shift=st.integers(-31, 30), seed=st.integers(0, 2**16))  # fmt: skip
def test_mul_c_matches_reference(shapes, zp1, zp2, zpo, m, shift, seed):
    rng = np.random.default_rng(seed)
    bparams, _ = broadcast.prepare_broadcast(*shapes, "MUL")
    x1 = rng.integers(-128, 128, shapes[0]).astype(np.int8)
    x2 = rng.integers(-128, 128, shapes[1]).astype(np.int8)
    p = mul.MulParams(-zp1, -zp2, zpo, m, shift, -128, 127)
    expected = mul.reference_mul(p, bparams, x1, x2)
    np.testing.assert_array_equal(_run("mul", p, bparams, x1, x2), expected)
    if m == 0:
        assert set(expected.tolist()) == {zpo}


@FEW
@given(shapes=broadcast_shapes(), zp1=st.integers(-128, 127), zp2=st.integers(-128, 127),
       zpo=st.integers(-128, 127), s1=st.floats(1e-3, 1.0), s2=st.floats(1e-3, 1.0), so=st.floats(1e-3, 2.0),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_sub_c_matches_reference(shapes, zp1, zp2, zpo, s1, s2, so, seed):
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-128, 128, shapes[0]).astype(np.int8)
    x2 = rng.integers(-128, 128, shapes[1]).astype(np.int8)
    p, bparams = sub.prepare_sub(shapes[0], s1, zp1, shapes[1], s2, zp2, so, zpo)
    np.testing.assert_array_equal(_run("sub", p, bparams, x1, x2), sub.reference_sub(p, bparams, x1, x2))


def test_broadcast_reference_is_numpy_broadcasting():
    bparams, out_shape = broadcast.prepare_broadcast((2, 1, 3), (4, 1), "MUL")
    assert out_shape == (2, 4, 3)
    a = np.arange(6).reshape(2, 1, 3)
    b = np.arange(4).reshape(4, 1) * 10
    x, y = broadcast.broadcast_inputs(bparams, a, b)
    np.testing.assert_array_equal(x.reshape(out_shape), np.broadcast_to(a, out_shape))
    np.testing.assert_array_equal(y.reshape(out_shape), np.broadcast_to(b, out_shape))
    with pytest.raises(UserError):
        broadcast.prepare_broadcast((2, 3), (4, 3), "MUL")


def test_sub_extremes():
    one = np.array([127], np.int8), np.array([-128], np.int8)
    # Very different scales: one input's multiplier is tiny (shift -31 region), the output saturates.
    p, bp = sub.prepare_sub((1,), 1.0, 0, (1,), 1e-9, 0, 1e-3, 0)
    assert _run("sub", p, bp, *one)[0] == sub.reference_sub(p, bp, *one)[0] == 127
    with pytest.raises(UserError):
        sub.prepare_sub((1,), 1.0, 0, (1,), 1.0, 0, 1e-9, 0)  # output rescale >= 1: TFLM aborts


# ----------------------------------------------------------------------------
# (b) against TFLite Micro

CASES = {
    # name: (op, shape a, shape b, fused relu)
    "mul_same": ("MUL", (4, 4, 3), (4, 4, 3), False),
    "mul_row": ("MUL", (4, 4, 3), (1, 4, 3), False),
    "mul_channels": ("MUL", (4, 4, 5), (1, 1, 5), False),
    "mul_scalar_like": ("MUL", (3, 5), (1, 1), False),
    "mul_both_ways": ("MUL", (4, 1, 3), (1, 5, 1), False),
    "mul_relu": ("MUL", (4, 4, 3), (1, 4, 3), True),
    "mul_5d": ("MUL", (2, 3, 1, 4), (1, 3, 5, 1), False),
    "sub_same": ("SUB", (4, 4, 3), (4, 4, 3), False),
    "sub_row": ("SUB", (4, 4, 3), (4, 1, 3), False),
    "sub_channels": ("SUB", (2, 3, 7), (1, 1, 7), False),
    "sub_relu": ("SUB", (4, 4, 3), (4, 4, 3), True),
    "sub_5d": ("SUB", (2, 1, 3, 4), (2, 5, 1, 4), False),
}


@pytest.fixture(scope="module")
def models():
    import keras

    built = {}
    for name, (op, shape_a, shape_b, relu) in CASES.items():
        a, b = keras.Input(shape_a, name="a"), keras.Input(shape_b, name="b")
        y = keras.layers.Multiply()([a, b]) if op == "MUL" else keras.layers.Subtract()([a, b])
        if relu:
            y = keras.layers.ReLU()(y)
        built[name] = h.single_op_tflite(keras.Model([a, b], y), [shape_a, shape_b])
    return built


EDGES = {
    "converted": None,
    "zero_points_at_extremes": ((0.03, -128), (0.05, 127), (0.04, -128)),
    "zero_points_other_way": ((0.02, 127), (0.01, -128), (0.05, 127)),
    "saturating_output": ((0.1, 3), (0.2, -7), (1e-4, 0)),
}


def _check(tflite: bytes, op: str, seed: int) -> None:
    view = h.op_of(tflite, op)
    t1, t2 = view.inputs
    tout = view.outputs[0]
    prepare = mul.prepare_mul if op == "MUL" else sub.prepare_sub
    params, bparams = prepare(t1.shape, view.scale(t1), view.zero_point(t1), t2.shape, view.scale(t2),
                              view.zero_point(t2), view.scale(tout), view.zero_point(tout),
                              view.operator.options.get("activation", 0))  # fmt: skip
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-128, 128, t1.shape).astype(np.int8)
    x2 = rng.integers(-128, 128, t2.shape).astype(np.int8)
    for x, extremes in ((x1, (-128, 127)), (x2, (127, -128))):  # both ends of int8 in every case
        x.reshape(-1)[: min(2, x.size)] = extremes[: min(2, x.size)]
    order = h.model_input_order(tflite, view)
    feeds = [None, None]
    feeds[order[0]], feeds[order[1]] = x1, x2
    (tflm,) = h.run_tflm(tflite, feeds)
    reference = mul.reference_mul if op == "MUL" else sub.reference_sub
    expected = reference(params, bparams, x1, x2)
    np.testing.assert_array_equal(expected, tflm.reshape(-1))
    np.testing.assert_array_equal(_run(op.lower(), params, bparams, x1, x2), tflm.reshape(-1))
    return params


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("case", list(CASES))
def test_bit_exact_with_tflite_micro(models, case, edge):
    op, _, _, relu = CASES[case]
    tflite = models[case]
    view = h.op_of(tflite, op)
    if relu and edge == "converted":
        assert view.operator.options.get("activation") == 1  # the converter fused the RELU
    if EDGES[edge] is not None:
        tensors = [view.inputs[0], view.inputs[1], view.outputs[0]]
        tflite = h.with_quantization(tflite, {t.index: q for t, q in zip(tensors, EDGES[edge])})
    for seed in range(2):
        _check(tflite, op, seed)


@pytest.mark.parametrize(
    "real", [2.0**-33, 1.5 * 2.0**-32, 1.5 * 2.0**29], ids=["multiplier_0", "shift_-31", "shift_+30"]
)
def test_mul_extreme_multipliers_match_tflite_micro(models, real):
    tflite = models["mul_row"]
    view = h.op_of(tflite, "MUL")
    changes = {view.inputs[0].index: (1.0, 0), view.inputs[1].index: (1.0, -5), view.outputs[0].index: (1.0 / real, 9)}
    params = _check(h.with_quantization(tflite, changes), "MUL", seed=7)
    assert params.output_shift == {2.0**-33: 0, 1.5 * 2.0**-32: -31, 1.5 * 2.0**29: 30}[real]


@pytest.mark.parametrize("case,shape", [("mul_scalar_like", (1,)), ("mul_channels", (5,)), ("sub_channels", (7,)),
                                        ("sub_channels", (1,))])  # fmt: skip
def test_lower_rank_operand_matches_tflite_micro(models, case, shape):
    """A [1] or [C] operand against a rank-3/4 one, as TFLM's own broadcast tests use (the Keras
    models have equal ranks; the operand's shape is rewritten in the flatbuffer)."""
    op = CASES[case][0]
    tflite = models[case]
    view = h.op_of(tflite, op)
    tflite = h.with_quantization(tflite, {}, shapes={view.inputs[1].index: shape})
    assert h.op_of(tflite, op).inputs[1].shape == shape
    for seed in range(2):
        _check(tflite, op, seed)
