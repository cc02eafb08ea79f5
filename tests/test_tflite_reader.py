"""The flatbuffer reader: the fields si4tool needs, checked against LiteRT, and robust to bad bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import model_zoo
from si4tool.errors import UserError
from si4tool.compiler import ops
from si4tool.compiler.tflite_reader import TENSOR_TYPE_INT8, float_operators, operator_names, read_tflite


@pytest.fixture(scope="session")
def seed_tflite() -> bytes:
    return model_zoo.seed_model_tflite()


@pytest.fixture(scope="session")
def small_tflite() -> bytes:
    return model_zoo.tanh_model_tflite()


def test_seed_model_operators(seed_tflite):
    model = read_tflite(seed_tflite, option_layouts=ops.option_layouts())
    assert model.version == 3
    names = [op.name for op in model.operators]
    assert operator_names(seed_tflite) == names
    assert names[:4] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D"]
    assert names[-4:] == ["FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    assert "RESHAPE" in names
    conv = model.operators[0]
    assert conv.options["padding"] == 1  # VALID
    assert (conv.options["stride_h"], conv.options["stride_w"]) == (1, 1)
    assert conv.options["activation"] == 1  # RELU
    pool = model.operators[1]
    assert (pool.options["filter_h"], pool.options["filter_w"]) == (2, 2)
    assert model.operators[-1].options["beta"] == pytest.approx(1.0)
    filter_tensor = model.tensors[conv.inputs[1]]
    assert filter_tensor.shape == (32, 3, 3, 1)
    assert filter_tensor.type == TENSOR_TYPE_INT8
    assert len(filter_tensor.data) == 32 * 9
    assert len(filter_tensor.quantization.scale) == 32  # per-channel
    assert model.tensors[model.inputs[0]].shape == (1, 28, 28, 1)
    assert model.tensors[model.outputs[0]].shape == (1, 10)
    # without option layouts the reader reads no options (it knows no operator itself)
    assert all(operator.options == {} for operator in read_tflite(seed_tflite, option_layouts=()).operators)


def test_operator_names_match_litert(seed_tflite):
    """si4tool's own reader lists the same operators as LiteRT (whose list is private API)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=seed_tflite)
    assert operator_names(seed_tflite) == [op["op_name"] for op in interpreter._get_ops_details()]
    assert float_operators(seed_tflite) == []  # full int8


def test_float_operators_of_a_float_edged_model():
    data = model_zoo.float_input_model_tflite()
    assert float_operators(data) == ["QUANTIZE", "DEQUANTIZE"]


def test_tensors_match_litert(seed_tflite):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=seed_tflite)
    model = read_tflite(seed_tflite)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    for tensor in model.tensors:
        detail = details[tensor.index]
        assert detail["name"] == tensor.name
        assert tuple(detail["shape"]) == tensor.shape
        q = detail["quantization_parameters"]
        if tensor.quantization is None:
            assert len(q["scales"]) == 0
            continue
        np.testing.assert_array_equal(np.float32(q["scales"]), np.float32(tensor.quantization.scale))
        np.testing.assert_array_equal(q["zero_points"], tensor.quantization.zero_point)
        assert q["quantized_dimension"] == tensor.quantization.quantized_dimension
    conv = model.operators[0]
    weights = interpreter.get_tensor(conv.inputs[1])
    np.testing.assert_array_equal(weights, np.frombuffer(model.tensors[conv.inputs[1]].data, np.int8).reshape(weights.shape))


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "only 0 bytes"),
        (b"\x00" * 7, "only 7 bytes"),
        (b"\x10\x00\x00\x00PK\x03\x04" + b"\x00" * 32, "file identifier"),
        (b"\xff\xff\xff\x7fTFL3" + b"\x00" * 8, "past the end"),
    ],
)
def test_malformed_headers(data, fragment):
    with pytest.raises(UserError, match=fragment):
        read_tflite(data, source="model.tflite")


def test_error_names_the_source():
    with pytest.raises(UserError, match=r"^bad\.tflite is not a valid TFLite model: "):
        read_tflite(b"not a model at all", source="bad.tflite")


def test_every_truncation_is_a_user_error(small_tflite):
    step = max(1, len(small_tflite) // 300)
    for length in range(0, len(small_tflite) - 1, step):
        try:
            read_tflite(small_tflite[:length])
        except UserError:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_bytes_give_a_model_or_a_user_error(small_tflite, data):
    mutated = bytearray(small_tflite)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    try:
        read_tflite(bytes(mutated))
    except UserError:
        pass
