"""Models with float32 input/output around int8 internals (QUANTIZE first, DEQUANTIZE last).

The converter gives such a model when inference_input_type/inference_output_type are left
at their float default. The engine stays int8: lowering drops the two edge ops and keeps
their quantization as the engine's input/output quantization; the references feed TFLite
the float images and read back the int8 tensor before the DEQUANTIZE.
"""

from __future__ import annotations

import numpy as np
import pytest

import model_zoo
from si4tool.ir import engine_edges, lower_tflite
from si4tool.tflite_reader import read_tflite


@pytest.fixture(scope="session")
def small_float_edges_tflite() -> bytes:
    return model_zoo.float_input_model_tflite()


def test_lowering_drops_the_edge_ops_and_keeps_their_quantization(small_float_edges_tflite):
    model = read_tflite(small_float_edges_tflite)
    quantize = model.operators[0]
    dequantize = model.operators[-1]
    assert (quantize.name, dequantize.name) == ("QUANTIZE", "DEQUANTIZE")

    graph = lower_tflite(small_float_edges_tflite)
    assert graph.float_input and graph.float_output
    assert [layer.op for layer in graph.layers] == ["conv2d", "reshape", "fully_connected"]
    assert all(ref.builtin not in ("QUANTIZE", "DEQUANTIZE") for layer in graph.layers for ref in layer.source)
    # The engine reads the QUANTIZE's int8 output and writes the DEQUANTIZE's int8 input.
    engine_input = graph.tensors[graph.input]
    engine_output = graph.tensors[graph.output]
    assert engine_input.tflite_index == quantize.outputs[0] and engine_input.shape == (6, 6, 1)
    assert engine_output.tflite_index == dequantize.inputs[0] and engine_output.shape == (3,)
    for info in (engine_input, engine_output):
        q = model.tensors[info.tflite_index].quantization
        assert (info.scale, info.zero_point) == (float(q.scale[0]), int(q.zero_point[0]))

    edges = engine_edges(small_float_edges_tflite)
    assert (edges.float_input, edges.float_output) == (True, True)
    assert edges.input_quantization == (engine_input.scale, engine_input.zero_point)
    assert edges.output_quantization == (engine_output.scale, engine_output.zero_point)


def test_int8_model_has_no_float_edges():
    tflite = model_zoo.asymmetric_model_tflite()
    graph = lower_tflite(tflite)
    assert not graph.float_input and not graph.float_output
    model = read_tflite(tflite)
    assert graph.tensors[graph.input].tflite_index == model.inputs[0]
    assert graph.tensors[graph.output].tflite_index == model.outputs[0]
