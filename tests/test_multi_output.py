"""Models with several outputs (issue 10, item 1): one input, every output written into the
caller's one output buffer, concatenated in the .tflite's output order.

The model: a conv trunk with three heads, converted to full int8 on random calibration data:
a 1x1 conv (8x8x2), a dense softmax classifier that reads that conv's output (so a graph
output is also read by a later layer, from the caller's buffer), and a max-pooled branch of
the trunk (4x4x4). Checked: the lowering, the model.h macros, the host engine bit-exact with
TFLite Micro on every output and every intermediate tensor, build-firmware-assets and
validate-host through the CLI, one QEMU self-check, float edges (one DEQUANTIZE per output),
and the refusal of a model with two inputs."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

import model_zoo  # noqa: E402
from si4tool.compiler import codegen, passes, planner  # noqa: E402
from si4tool.compiler.lowering import engine_edges, lower_tflite  # noqa: E402
from si4tool.compiler.tflite_reader import read_tflite  # noqa: E402

INPUT_SHAPE = (8, 8, 3)
IMAGES = 32  # random inputs, every output compared
TRACED = 3  # of which every intermediate tensor too


def _three_heads():
    keras = model_zoo._seeded(21)
    layers = keras.layers
    image = keras.Input(INPUT_SHAPE)
    trunk = layers.Conv2D(4, (3, 3), padding="same", activation="relu")(image)
    features = layers.Conv2D(2, (1, 1), name="features")(trunk)
    classes = layers.Dense(5, activation="softmax", name="classes")(layers.Flatten()(features))
    pooled = layers.MaxPooling2D((2, 2), name="pooled")(trunk)
    return keras.Model(image, [classes, features, pooled])


def _convert(model, int8_io: bool) -> bytes:
    import tensorflow as tf

    rng = np.random.default_rng(0)

    def representative():
        for _ in range(32):
            yield [rng.uniform(0.0, 1.0, (1, *INPUT_SHAPE)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@functools.cache
def three_heads_tflite(int8_io: bool = True) -> bytes:
    return _convert(_three_heads(), int8_io)


def _tflm(tflite: bytes):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(tflite, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)


def _render(graph, plan, folder):
    folder.mkdir(parents=True, exist_ok=True)
    sources = codegen.render_model_sources(graph, plan, "0" * 64)
    for name, text in sources.items():
        (folder / name).write_text(text)
    return sources


def _macros(model_h: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (SI4_MODEL_\w+) (\S+)", model_h, flags=re.M))


def test_lowering_keeps_every_output_in_the_models_order():
    tflite = three_heads_tflite()
    model = read_tflite(tflite)
    graph = passes.run_passes(lower_tflite(tflite))
    assert len(model.outputs) == 3
    assert [graph.tensors[name].tflite_index for name in graph.outputs] == list(model.outputs)
    assert graph.output == graph.outputs[0]
    sizes = [graph.tensors[name].size_bytes for name in graph.outputs]
    assert sorted(sizes) == [5, 4 * 4 * 4, 8 * 8 * 2]
    assert graph.output_bytes == sum(sizes)
    # The planner never places a graph output in the arena.
    plan = planner.plan_memory(graph)
    assert not set(graph.outputs) & set(plan.allocations)
    edges = engine_edges(tflite)
    assert edges.outputs_index == tuple(model.outputs) and not edges.float_output


def test_host_engine_is_bit_exact_on_every_output_and_the_macros_place_them(tmp_path):
    from si4tool.targets.host_engine import build_host_engine

    tflite = three_heads_tflite()
    graph = passes.run_passes(lower_tflite(tflite))
    plan = planner.plan_memory(graph)
    sources = _render(graph, plan, tmp_path / "assets")
    macros = _macros(sources["model.h"])
    assert macros["SI4_MODEL_OUTPUT_COUNT"] == "3"
    offset = 0
    for index, name in enumerate(graph.outputs):
        tensor = graph.tensors[name]
        assert int(macros[f"SI4_MODEL_OUTPUT_{index}_OFFSET"]) == offset
        assert int(macros[f"SI4_MODEL_OUTPUT_{index}_SIZE"]) == tensor.size_bytes
        assert macros[f"SI4_MODEL_OUTPUT_{index}_ZERO_POINT"] == codegen.c_int(tensor.zero_point)
        offset += tensor.size_bytes
    assert int(macros["SI4_MODEL_OUTPUT_SIZE"]) == offset
    # The classifier reads the features head from the caller's buffer, where it was written.
    features = next(name for name in graph.outputs if graph.tensors[name].shape == (8, 8, 2))
    assert any(features in layer.inputs for layer in graph.layers)
    assert [f"output + {graph.output_offsets()[name]}" in sources["model.c"] for name in graph.outputs] == [
        graph.output_offsets()[name] > 0 for name in graph.outputs
    ]

    engine = build_host_engine(tmp_path / "assets", tmp_path / "build")
    assert engine.output_size == offset
    images = model_zoo.random_images(IMAGES, INPUT_SHAPE, seed=3)
    actual = engine.run(images)
    interpreter = _tflm(tflite)
    for number, image in enumerate(images):
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        expected = np.concatenate([np.array(interpreter.get_output(i)).reshape(-1) for i in range(3)])
        assert np.array_equal(actual[number], expected), f"outputs of input {number}"
        if number < TRACED:
            for layer, c_values in zip(graph.layers, engine.run_layers(image)):
                reference = interpreter.GetTensor(graph.tensors[layer.output].tflite_index, 0)["tensor_data"]
                assert np.array_equal(c_values, np.asarray(reference).reshape(-1).astype(np.int8)), layer.name
    # The reference module's TFLM outputs are that concatenation too.
    from si4tool.validation.reference import tflm_outputs

    np.testing.assert_array_equal(tflm_outputs(tflite, images[:4], use_cache=False, quiet=True), actual[:4])


def test_float_edges_drop_one_dequantize_per_output(tmp_path):
    from si4tool.frontend.quantize import quantize_input
    from si4tool.targets.host_engine import build_host_engine
    from si4tool.validation.reference import tflm_outputs

    tflite = three_heads_tflite(int8_io=False)
    edges = engine_edges(tflite)
    assert edges.float_input and edges.output_count == 3
    assert all(index is not None for index in edges.outputs_dequantize)
    graph = passes.run_passes(lower_tflite(tflite))
    assert graph.float_output and len(graph.outputs) == 3
    _render(graph, planner.plan_memory(graph), tmp_path / "assets")
    engine = build_host_engine(tmp_path / "assets", tmp_path / "build")
    images = np.random.default_rng(5).uniform(0.0, 1.0, (8, *INPUT_SHAPE)).astype(np.float32)
    source = graph.tensors[graph.input]
    actual = engine.run(quantize_input(images, source.scale, source.zero_point))
    np.testing.assert_array_equal(actual, tflm_outputs(tflite, images, use_cache=False, quiet=True))


def test_build_firmware_assets_and_validate_host_through_the_cli(tmp_path, si4tool_cli):
    from si4tool.assets import build_firmware_assets

    model_path = tmp_path / "three_heads.tflite"
    model_path.write_bytes(three_heads_tflite())
    assets = tmp_path / "assets"
    env = {"SI4_CACHE_DIR": str(tmp_path / "cache")}
    # What `build-firmware-assets --model three_heads.tflite --inputs random --vectors 20` runs
    # (in-process: one interpreter start-up less; the CLI itself is exercised by validate-host below).
    build_firmware_assets(assets, model_path=model_path, inputs_spec="random", vectors=20, seed=0,
                          cache_dir=tmp_path / "cache", quiet=True)  # fmt: skip
    manifest = json.loads((assets / "manifest.json").read_text())
    outputs = manifest["quantization"]["outputs"]
    assert [record["offset"] for record in outputs] == [0, outputs[0]["size"], outputs[0]["size"] + outputs[1]["size"]]
    assert manifest["quantization"]["output"]["shape"] == outputs[0]["shape"]
    assert manifest["accuracy"]["int8_tflm"] is None
    total = sum(record["size"] for record in outputs)
    assert f"#define SI4_TEST_VECTOR_OUTPUT_SIZE {total}\n" in (assets / "test_vectors.h").read_text()

    validated = si4tool_cli(
        "validate-host", "--assets", str(assets), "--images", "40", "--out", str(tmp_path / "validation"),
        "--no-report", "--json", env=env,
    )
    assert validated.returncode == 0, validated.stderr[-2000:]
    figures = json.loads(validated.stdout)
    assert figures["passed"] is True and figures["bit_exact"] == figures["images"] == 40
    assert figures["firmware"]["bit_exact"] == figures["firmware"]["vectors"] == 20
    assert figures["c_accuracy"] is None
    check = figures["intermediates"]
    assert check["tensors_identical"] == check["tensors"] > 0

    from si4tool.targets import qemu

    if not qemu.toolchain_available():
        return  # the host checks above stand alone; the QEMU check needs arm-none-eabi-gcc and qemu-system-arm
    result = qemu.validate_qemu(assets, out_dir=tmp_path / "qemu_validation", build_dir=tmp_path / "qemu",
                                kernels=("portable",), quiet=True)  # fmt: skip
    (run,) = result.runs
    assert run.vectors == run.bit_exact == 20, run.mismatched_vectors


def test_a_model_with_two_inputs_is_refused_with_one_sentence(tmp_path):
    from ops_harness import single_op_tflite
    from si4tool.assets import build_firmware_assets
    from si4tool.errors import UserError

    keras = model_zoo._seeded(22)
    layers = keras.layers
    a, b = keras.Input((4, 4, 2)), keras.Input((4, 4, 2))
    model = keras.Model([a, b], layers.Conv2D(2, (1, 1))(layers.Add()([a, b])))
    model_path = tmp_path / "two_inputs.tflite"
    model_path.write_bytes(single_op_tflite(model, [(4, 4, 2), (4, 4, 2)]))
    out = tmp_path / "assets"
    with pytest.raises(UserError, match="has 2 inputs; si4tool compiles models with one input"):
        build_firmware_assets(out, model_path=model_path, inputs_spec="random", quiet=True)
    assert not out.exists()


def test_graph_checks_every_output_is_written():
    from si4tool.compiler.ir import Graph, GraphError

    graph = passes.run_passes(lower_tflite(three_heads_tflite()))
    assert Graph(graph.layers, graph.tensors, graph.input, graph.output).outputs == (graph.output,)
    assert graph.replace(output=graph.outputs[1]).outputs == (graph.outputs[1],)
    without_pool = graph.replace(layers=[layer for layer in graph.layers if layer.op != "max_pool"])
    with pytest.raises(GraphError, match="no layer writes the graph output"):
        without_pool.check_order()
    with pytest.raises(GraphError, match="distinct outputs"):
        graph.replace(outputs=(graph.output, graph.output))
