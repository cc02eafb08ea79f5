"""ADD, the two-input operator: the C kernel against the NumPy reference (broadcasting, extreme
zero points, saturation, in place), and a Keras residual model through the host engine bit-exact
with TFLite Micro, every intermediate tensor included."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernel_lib
import model_zoo
from si4tool.compiler import codegen, passes, planner, quant_math
from si4tool.compiler.lowering import lower_tflite
from si4tool.compiler.ops.add import BroadcastError, broadcast_loops, prepare_add, reference_add

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tensor(shape, scale, zero_point):
    return SimpleNamespace(shape=tuple(shape), scale=float(np.float32(scale)), zero_point=zero_point)


@st.composite
def add_cases(draw):
    rank = draw(st.integers(1, 4))
    output_shape = draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank))
    # each input keeps or broadcasts (1) each dimension, and may have a lower rank
    shape1 = [d if draw(st.booleans()) else 1 for d in output_shape][draw(st.integers(0, rank - 1)) :]
    shape2 = [d if draw(st.booleans()) else 1 for d in output_shape][draw(st.integers(0, rank - 1)) :]
    padded1 = [1] * (rank - len(shape1)) + shape1
    padded2 = [1] * (rank - len(shape2)) + shape2
    output_shape = [max(a, b) for a, b in zip(padded1, padded2)]
    zero_points = st.sampled_from([-128, -127, -1, 0, 1, 5, 126, 127])
    scales = st.floats(1e-3, 2.0).map(lambda s: float(np.float32(s)))
    input1 = _tensor(shape1, draw(scales), draw(zero_points))
    input2 = _tensor(shape2, draw(scales), draw(zero_points))
    # an output scale small enough to saturate now and then
    output = _tensor(output_shape, draw(st.floats(1e-3, 4.0)), draw(zero_points))
    activation = draw(st.sampled_from([0, 1, 2, 3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x1 = rng.integers(-128, 128, size=int(np.prod(shape1)), dtype=np.int8)
    x2 = rng.integers(-128, 128, size=int(np.prod(shape2)), dtype=np.int8)
    return prepare_add(input1, input2, output, activation), x1, x2


@SETTINGS
@given(case=add_cases())
def test_add_kernel_matches_the_reference(case):
    params, x1, x2 = case
    expected = reference_add(params, x1, x2)
    assert np.array_equal(kernel_lib.add_s8(params, x1, x2), expected)


@SETTINGS
@given(case=add_cases())
def test_add_kernel_in_place_over_a_full_size_input(case):
    params, x1, x2 = case
    expected = reference_add(params, x1, x2)
    for position, (mine, other) in enumerate(((x1, x2), (x2, x1))):
        if mine.size != expected.size:
            continue
        buffer = np.ascontiguousarray(mine.copy())
        inputs = (buffer, other) if position == 0 else (other, buffer)
        kernel_lib.add_s8(params, *inputs, output=buffer)
        assert np.array_equal(buffer, expected)


def test_add_saturates_and_clamps():
    a, b = _tensor((4,), 1.0, 0), _tensor((4,), 1.0, 0)
    params = prepare_add(a, b, _tensor((4,), 1.0, 0), quant_math.ACTIVATION_RELU6)
    x1 = np.array([127, -128, 3, 100], dtype=np.int8)
    x2 = np.array([127, -128, 2, -101], dtype=np.int8)
    out = kernel_lib.add_s8(params, x1, x2)
    assert out.tolist() == [6, 0, 5, 0]  # 254 and -256 clamp to RELU6's [0, 6]
    assert np.array_equal(out, reference_add(params, x1, x2))


def test_broadcast_loops_merge_dimensions_that_broadcast_alike():
    assert broadcast_loops((4, 5, 6), (4, 5, 6), (4, 5, 6)) == ([1, 1, 1, 120], [0, 0, 0, 1], [0, 0, 0, 1])
    # (H, W, C) + (1, 1, C): H and W merge, the second input steps through C only
    assert broadcast_loops((3, 4, 8), (1, 1, 8), (3, 4, 8)) == ([1, 1, 12, 8], [0, 0, 8, 1], [0, 0, 0, 1])
    assert broadcast_loops((), (), ()) == ([1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(BroadcastError, match="5 dimensions"):
        broadcast_loops((2, 1, 2, 1, 2), (1, 2, 1, 2, 1), (2, 2, 2, 2, 2))
    with pytest.raises(BroadcastError, match="cannot broadcast"):
        broadcast_loops((3,), (4,), (4,))


def test_add_refuses_an_output_scale_tflm_rejects():
    # real output multiplier 2 * max(s1, s2) / (2^20 * s_out) >= 1: TFLM's Prepare aborts
    with pytest.raises(quant_math.QuantizationError, match=r"\(0, 1\)"):
        prepare_add(_tensor((2,), 1.0, 0), _tensor((2,), 1.0, 0), _tensor((2,), 1e-7, 0), 0)


def _tflm(tflite: bytes):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(tflite, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)


def test_residual_model_bit_exact_with_tflite_micro_through_the_host_engine(tmp_path):
    from si4tool.targets.host_engine import build_host_engine

    tflite = model_zoo.residual_model_tflite()
    graph = passes.run_passes(lower_tflite(tflite))
    assert [layer.op for layer in graph.layers].count("add") == 3
    skip_from_input = next(layer for layer in graph.layers if graph.input in layer.inputs and layer.op == "add")
    assert len(skip_from_input.inputs) == 2
    plan = planner.plan_memory(graph)
    assert plan.shares  # the ADDs write over the input they read last
    assets = tmp_path / "assets"
    assets.mkdir()
    for name, text in codegen.render_model_sources(graph, plan, "0" * 64).items():
        (assets / name).write_text(text)
    engine = build_host_engine(assets, tmp_path / "build")
    images = model_zoo.random_images(300, graph.tensors[graph.input].shape, seed=21)
    interpreter = _tflm(tflite)
    expected = []
    for image in images:
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        expected.append(np.array(interpreter.get_output(0)).reshape(-1))
    actual = engine.run(images)
    assert int((actual == np.stack(expected)).all(axis=1).sum()) == 300
    # every layer's output against the TFLM tensor it stands for, on the first 5 inputs
    for image in images[:5]:
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        for layer, c_values in zip(graph.layers, engine.run_layers(image)):
            tensor = graph.tensors[layer.output]
            reference = np.asarray(interpreter.GetTensor(tensor.tflite_index, 0)["tensor_data"]).reshape(-1)
            assert np.array_equal(c_values, reference.astype(np.int8)), layer.name
        reference_values = model_zoo.reference_forward(graph, image)
        assert np.array_equal(reference_values[graph.output], engine.run(image[None])[0])
