"""Models with float32 input/output around int8 internals (QUANTIZE first, DEQUANTIZE last).

The converter gives such a model when inference_input_type/inference_output_type are left
at their float default. The engine stays int8: lowering drops the two edge ops and keeps
their quantization as the engine's input/output quantization; the references feed TFLite
the float images and read back the int8 tensor before the DEQUANTIZE.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import model_zoo
from si4tool.compiler.lowering import engine_edges, lower_tflite
from si4tool.compiler.tflite_reader import read_tflite


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


# ---- end to end: a 28x28 float-I/O model through the assets, validate-host and the trace ---------


def _float_io_mnist_tflite(x_train: np.ndarray, y_train: np.ndarray) -> bytes:
    """A small MNIST network trained for two short epochs, converted the converter's default way:
    Optimize.DEFAULT, a representative dataset, int8 builtins only, input/output types left at
    float32 (so a QUANTIZE comes first and a DEQUANTIZE last)."""
    import warnings

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(7)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, (3, 3), strides=2, activation="relu"),
            layers.MaxPool2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images = x_train[:6000, ..., None].astype(np.float32) / 255.0
    model.fit(images, y_train[:6000], epochs=2, batch_size=64, verbose=0)

    def representative_dataset():
        for image in images[:100]:
            yield [image[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bytes(converter.convert())


@pytest.fixture(scope="session")
def float_io_tflite(mnist) -> bytes:
    return _float_io_mnist_tflite(mnist.x_train, mnist.y_train)


@pytest.fixture(scope="session")
def float_io_assets(float_io_tflite, mnist_path, reference_cache_dir, tmp_path_factory):
    from si4tool.assets import build_firmware_assets

    folder = tmp_path_factory.mktemp("float_io")
    model_path = folder / "float_io.tflite"
    model_path.write_bytes(float_io_tflite)
    result = build_firmware_assets(
        folder / "assets", model_path=model_path, data_path=mnist_path, vectors=20, cache_dir=reference_cache_dir, quiet=True
    )
    return result


def test_float_io_model_really_has_float_edges(float_io_tflite):
    model = read_tflite(float_io_tflite)
    assert model.operators[0].name == "QUANTIZE" and model.operators[-1].name == "DEQUANTIZE"
    assert model.tensors[model.inputs[0]].type_name == "FLOAT32"
    assert model.tensors[model.outputs[0]].type_name == "FLOAT32"


def test_assets_of_a_float_io_model_are_int8_with_the_edge_quantization(float_io_assets, float_io_tflite, mnist):
    from si4tool.frontend.quantize import quantize_input

    manifest = float_io_assets.manifest
    edges = engine_edges(float_io_tflite)
    quantization = manifest.quantization
    assert quantization["float_edges"] == {"input": True, "output": True}
    assert (quantization["input"]["scale"], quantization["input"]["zero_point"]) == edges.input_quantization
    assert (quantization["output"]["scale"], quantization["output"]["zero_point"]) == edges.output_quantization
    assert quantization["output"]["shape"] == [10]
    model_h = float_io_assets.files["model.h"].decode()
    assert f"#define SI4_MODEL_INPUT_ZERO_POINT ({edges.input_quantization[1]})" in model_h
    assert f"#define SI4_MODEL_OUTPUT_ZERO_POINT ({edges.output_quantization[1]})" in model_h
    assert "int si4_model_invoke(const int8_t *input, int8_t *output)" in model_h
    # The embedded vectors are the float images quantized as TFLite's QUANTIZE op does.
    vectors = re.sub(r"/\*.*?\*/", "", float_io_assets.files["test_vectors.c"].decode())
    first_image = quantize_input(mnist.x_test[:1].astype(np.float32) / 255.0, *edges.input_quantization).reshape(-1)
    body = vectors[vectors.index("si4_test_inputs[") :]
    body = body[body.index("= {") + 3 :].lstrip()
    numbers = [int(v) for v in body[body.index("{") + 1 : body.index("}")].replace(",", " ").split()]
    assert numbers == first_image.tolist()


def test_float_io_model_validates_bit_exact_with_tflm(float_io_assets, mnist_path, reference_cache_dir, tmp_path):
    from si4tool.validation.validate import validate_host

    result = validate_host(
        float_io_assets.out_dir, data_path=mnist_path, out_dir=tmp_path / "validation", build_dir=tmp_path / "build",
        cache_dir=reference_cache_dir, images=300, quiet=True,
    )
    assert result.passed, result.failures
    assert result.images == 300 and result.bit_exact == 300
    assert result.firmware.bit_exact == result.firmware.vectors == 20
    assert result.c_accuracy > 0.5  # trained briefly: well above chance
    for figures in result.litert.values():
        assert figures["top1_agreement"] >= 290


def test_trace_of_a_float_io_model(float_io_assets, mnist, tmp_path):
    from si4tool.validation.trace import trace_layers

    images = mnist.x_test[:3, ..., None].astype(np.float32) / 255.0
    result = trace_layers(float_io_assets.out_dir, images, [0, 1, 2], tmp_path)
    assert result.first_difference is None
    assert len(result.layers) == len(float_io_assets.manifest.layers)


def test_float_output_is_recovered_exactly_as_the_int8_tensor_before_dequantize(float_io_tflite, mnist):
    """Inverting the DEQUANTIZE gives the very int8 tensor TFLM computed before it (read with all tensors preserved)."""
    from si4tool.validation.reference import tflm_outputs
    from si4tool.validation.trace import _tflm_tensor_reader

    images = mnist.x_test[:40, ..., None].astype(np.float32) / 255.0
    outputs = tflm_outputs(float_io_tflite, images, use_cache=False, quiet=True)
    edges = engine_edges(float_io_tflite)
    run, tensor = _tflm_tensor_reader(float_io_tflite)
    for index in range(len(images)):
        run(images[index : index + 1])
        np.testing.assert_array_equal(outputs[index], tensor(edges.output_index).reshape(-1).astype(np.int8))


def test_interpreter_inputs_for_both_kinds_of_model(float_io_tflite, mnist, tmp_path):
    from si4tool.frontend.quantize import quantize_input
    from si4tool.validation.reference import interpreter_inputs, tflm_outputs

    images = mnist.x_test[:8, ..., None].astype(np.float32) / 255.0
    # A float-input model gets the float images themselves; int8 ones are refused.
    np.testing.assert_array_equal(interpreter_inputs(float_io_tflite, images), images)
    with pytest.raises(ValueError, match="float32 input"):
        interpreter_inputs(float_io_tflite, np.zeros((1, 28, 28, 1), dtype=np.int8))
    # An int8-input model gets them quantized as the firmware does; int8 images pass through,
    # and both ways share one cache entry (the key is what the interpreter is fed).
    int8_model = model_zoo.seed_model_tflite()
    q = engine_edges(int8_model).input_quantization
    quantized = quantize_input(images, *q)
    np.testing.assert_array_equal(interpreter_inputs(int8_model, images), quantized)
    np.testing.assert_array_equal(interpreter_inputs(int8_model, quantized), quantized)
    from_float = tflm_outputs(int8_model, images, cache_dir=tmp_path, quiet=True)
    from_int8 = tflm_outputs(int8_model, quantized, cache_dir=tmp_path, quiet=True)
    np.testing.assert_array_equal(from_float, from_int8)
    assert len(list(tmp_path.glob("tflm-*.npz"))) == 1


def test_a_requantizing_quantize_is_a_layer_of_its_own(small_float_edges_tflite, monkeypatch):
    """An int8 -> int8 QUANTIZE with a new scale is not an edge op: it runs the requantize kernel."""
    import dataclasses

    from si4tool.compiler import lowering
    from si4tool.compiler.tflite_reader import TENSOR_TYPE_INT8, Quantization

    model = read_tflite(small_float_edges_tflite)
    # Make the model's float input an int8 tensor with another scale: its QUANTIZE now requantizes.
    tensors = list(model.tensors)
    tensors[model.inputs[0]] = dataclasses.replace(
        tensors[model.inputs[0]], type=TENSOR_TYPE_INT8, quantization=Quantization((0.5,), (0,), 0)
    )
    requantizing = dataclasses.replace(model, tensors=tuple(tensors))
    monkeypatch.setattr(lowering, "read_tflite", lambda data, source="the model", option_layouts=(): requantizing)
    graph = lower_tflite(small_float_edges_tflite)
    first = graph.layers[0]
    assert first.op == "quantize" and first.inputs == (graph.input,)
    assert first.params.input_zero_point == 0 and first.params.output_multiplier > 0


def test_bench_latency_handles_a_float_io_model(float_io_assets, mnist, tmp_path):
    """The bench feeds each interpreter what its input takes and compares int8 outputs with the C engine."""
    from si4tool.reporting.latency import litert_timer, measure_latency, tflm_timer
    from si4tool.targets.host_engine import build_host_engine
    from si4tool.frontend.data import normalize
    from si4tool.frontend.quantize import quantize_input

    assets = float_io_assets.out_dir
    manifest = json.loads((assets / "manifest.json").read_text())
    q = manifest["quantization"]["input"]
    x_int8 = quantize_input(normalize(mnist.x_test[:20]), q["scale"], q["zero_point"])
    tflite = (assets / "model_int8.tflite").read_bytes()
    timers = {
        "c_engine": build_host_engine(assets, tmp_path),
        "litert_reference": litert_timer(tflite, "reference"),
        "tflm": tflm_timer(tflite),
    }
    latency = measure_latency(timers, x_int8, repetitions=1, warmup=1)
    assert latency["tflm"]["identical_outputs_to_c"] == 20
    assert latency["litert_reference"]["identical_outputs_to_c"] >= 19
