"""Generated model.h/.c and model_weights.h/.c: strict C99, deterministic, bit-exact with TFLite Micro."""

from __future__ import annotations

import ctypes
import dataclasses
import re
import subprocess

import numpy as np
import pytest

import model_zoo
from si4tool.compiler import codegen
from si4tool.compiler import passes
from si4tool.compiler import planner
from si4tool.compiler.lowering import lower_tflite
from si4tool.render import generated_banner
from si4tool.targets.toolchain import (
    STRICT_C_FLAGS,
    compile_shared_library,
    host_compiler,
    kernel_include_dir,
    portable_kernel_sources,
)

SHA = "0123456789abcdef" * 4
FILES = ("model.h", "model.c", "model_weights.h", "model_weights.c")


def _build(tflite: bytes, with_passes: bool = True):
    graph = lower_tflite(tflite)
    if with_passes:
        graph = passes.run_passes(graph)
    plan = planner.plan_memory(graph)
    return graph, plan, codegen.render_model_sources(graph, plan, SHA)


def _write(directory, sources):
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture(scope="module")
def seed_sources(tmp_path_factory):
    graph, plan, sources = _build(model_zoo.seed_model_tflite())
    return graph, plan, sources, _write(tmp_path_factory.mktemp("seed_sources"), sources)


def test_files_and_banner(seed_sources):
    _graph, _plan, sources, _ = seed_sources
    assert sorted(sources) == sorted(FILES)
    for name, text in sources.items():
        assert text.startswith(generated_banner(SHA) + "\n"), name
        assert "#include <stdint.h>" in text, name
        assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}", text), f"{name} looks timestamped"
    for header in ("model.h", "model_weights.h"):
        guard = header.upper().replace(".", "_")
        assert f"#ifndef SI4_{guard}\n#define SI4_{guard}\n" in sources[header]


def test_rendering_is_byte_identical(seed_sources):
    _graph, _plan, sources, _ = seed_sources
    assert codegen.render_model_sources(*_build(model_zoo.seed_model_tflite())[:2], SHA) == sources


@pytest.mark.parametrize("name", FILES)
def test_each_file_compiles_strictly(seed_sources, name, tmp_path):
    *_, directory = seed_sources
    source = directory / name
    if name.endswith(".h"):  # a header must compile on its own
        source = tmp_path / f"include_{name}.c"
        source.write_text(f'#include "{name}"\n')
    args = [host_compiler(), *STRICT_C_FLAGS, f"-I{directory}", f"-I{kernel_include_dir()}", "-c", str(source),
            "-o", str(tmp_path / "out.o")]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_model_header_contract(seed_sources):
    graph, plan, sources, _ = seed_sources
    header = sources["model.h"]
    for macro, value in [
        ("SI4_MODEL_INPUT_HEIGHT", "28"), ("SI4_MODEL_INPUT_WIDTH", "28"), ("SI4_MODEL_INPUT_CHANNELS", "1"),
        ("SI4_MODEL_INPUT_SIZE", "784"), ("SI4_MODEL_OUTPUT_SIZE", "10"), ("SI4_MODEL_ARENA_BYTES", str(plan.arena_bytes)),
        ("SI4_MODEL_LAYER_COUNT", "6"), ("SI4_MODEL_OUTPUT_ZERO_POINT", "(-128)"),
    ]:
        assert re.search(rf"^#define {macro} {re.escape(value)}(\s|$)", header, re.M), macro
    assert "int si4_model_invoke(const int8_t *input, int8_t *output);" in header
    assert "extern const si4_layer_fn si4_model_layers[SI4_MODEL_LAYER_COUNT];" in header
    # The tables are for tracing and per-layer counts only: declared and defined under one macro.
    assert header.index("#ifdef SI4_LAYER_TABLES") < header.index("extern const si4_layer_fn si4_model_layers")
    model_c = sources["model.c"]
    assert "static void layer_0_conv2d_max_pool(const int8_t *input, int8_t *output)" in model_c
    assert "malloc" not in model_c
    weights_h = sources["model_weights.h"]
    assert "#define SI4_CONV2D_0_OUTPUT_CHANNELS 32" in weights_h
    assert "#define SI4_CONV2D_1_POOL_OUTPUT_HEIGHT 5" in weights_h
    assert "extern const int8_t si4_fully_connected_0_filter[SI4_FULLY_CONNECTED_0_FILTER_SIZE];" in weights_h
    assert "SI4_WEIGHTS_ALIGN = {" in sources["model_weights.c"]


def _defined_symbols(obj) -> set[str]:
    listing = subprocess.run(["nm", "--defined-only", str(obj)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in listing.splitlines() if line.strip()}


def test_product_model_c_carries_no_layer_tables(seed_sources, tmp_path):
    """Without -DSI4_LAYER_TABLES model.o holds the invoke functions and the params, and no table,
    name string or out-of-line layer function (each is called once and inlined); with it, all four
    tables are there for the tracer and main.c's per-layer counts."""
    *_, directory = seed_sources
    tables = {"si4_model_layers", "si4_model_layer_names", "si4_model_layer_output_offsets", "si4_model_layer_output_sizes"}
    objects = {}
    for flags in ([], [codegen.LAYER_TABLES_FLAG]):
        obj = tmp_path / f"model{len(flags)}.o"
        subprocess.run([host_compiler(), *STRICT_C_FLAGS, "-O2", *flags, f"-I{directory}", f"-I{kernel_include_dir()}",
                        "-c", str(directory / "model.c"), "-o", str(obj)], check=True)  # fmt: skip
        objects[bool(flags)] = _defined_symbols(obj)
    assert tables <= objects[True]
    assert not tables & objects[False]
    assert "si4_model_invoke_with_arena" in objects[False]
    assert not any(symbol.startswith("layer_") for symbol in objects[False])
    names = (directory / "model.c").read_text()
    assert '"conv2d_0"' in names and names.index("#ifdef SI4_LAYER_TABLES") < names.index('"conv2d_0"')


def test_identical_params_structs_are_shared():
    """A later layer whose struct equals an earlier one's field for field calls the kernel with the
    earlier struct and defines none; a different struct, a streamed entry and literal structs stay."""
    def entry(name, fields, call=True):
        struct = {"c_type": "si4_conv2d_params", "name": f"{name}_params", "fields": [],
                  "key": ("si4_conv2d_params", tuple(fields))}
        return {"name": name, "structs": [struct], "call": f"si4_conv2d_s8(&{name}_params, x)" if call else None}

    shape = (("input_height", 6), ("output_channels", 128))
    entries = codegen.share_identical_structs([
        entry("conv2d_7", shape), entry("conv2d_8", shape), entry("conv2d_9", (("input_height", 3),)),
        entry("conv2d_10", shape, call=False), entry("conv2d_11", shape),
        {"name": "conv2d_12", "structs": [{"c_type": "si4_conv2d_params", "name": "conv2d_12_band_0_params", "fields": []}],
         "call": None},
    ])  # fmt: skip
    assert [[s["name"] for s in e["structs"]] for e in entries] == [
        ["conv2d_7_params"], [], ["conv2d_9_params"], ["conv2d_10_params"], [], ["conv2d_12_band_0_params"]]
    assert entries[1]["call"] == "si4_conv2d_s8(&conv2d_7_params, x)" and entries[1]["shared_structs"] == ["conv2d_7_params"]
    assert entries[4]["call"] == "si4_conv2d_s8(&conv2d_7_params, x)"
    assert entries[2]["call"] == "si4_conv2d_s8(&conv2d_9_params, x)" and entries[2]["shared_structs"] == []


def test_layer_summaries(seed_sources):
    graph, plan, _sources, _ = seed_sources
    summaries = codegen.layer_summaries(graph, plan)
    assert [s["op"] for s in summaries] == [layer.op for layer in graph.layers]
    assert sum(s["parameters"] for s in summaries) == 232_650
    assert summaries[0]["input_shape"] == [28, 28, 1] and summaries[0]["output_shape"] == [13, 13, 32]
    assert summaries[0]["macs"] == 26 * 26 * 32 * 9
    assert summaries[0]["arena_size"] == 5408 and summaries[0]["live_range"] == [0, 1]
    assert summaries[-1]["arena_offset"] is None  # the softmax writes the caller's output
    assert "CONV_2D" in summaries[0]["source"] and "MAX_POOL_2D" in summaries[0]["source"]
    # filter + bias + per-channel multiplier and shift: 32*9 int8 + 3 * 32 int32
    assert summaries[0]["weight_bytes"] == 32 * 9 + 3 * 4 * 32
    assert summaries[-1]["weight_bytes"] == 0  # softmax has no constants
    assert sum(s["weight_bytes"] for s in summaries) == sum(layer.weight_bytes() for layer in graph.layers)


class CompiledModel:
    """model.c + model_weights.c + the portable kernels as a shared library, called through ctypes."""

    def __init__(self, directory, graph):
        library = compile_shared_library(
            [directory / "model.c", directory / "model_weights.c", *portable_kernel_sources()],
            directory / "libmodel.so",
            include_dirs=[directory, kernel_include_dir()],
        )
        self.lib = ctypes.CDLL(str(library))
        self.output_size = graph.tensors[graph.output].size_bytes

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = np.ascontiguousarray(image, dtype=np.int8)
        output = np.zeros(self.output_size, dtype=np.int8)
        status = self.lib.si4_model_invoke(image.ctypes.data_as(ctypes.c_void_p), output.ctypes.data_as(ctypes.c_void_p))
        assert status == 0
        return output


def _tflm_outputs(tflite: bytes, images: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite)
    outputs = []
    for image in images:
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)).reshape(-1))
    return np.stack(outputs)


def _needs_kernels():
    if not portable_kernel_sources():
        pytest.skip("firmware_stub/kernels/src has no kernels yet")


@pytest.mark.parametrize(
    "model, with_passes, count",
    [
        ("second_model_tflite", True, 300),
        ("second_model_tflite", False, 100),
        ("second_model_per_tensor_tflite", True, 200),
        ("asymmetric_model_tflite", True, 200),
        ("seed_model_tflite", True, 100),
    ],
)
def test_bit_exact_with_tflite_micro(model, with_passes, count, tmp_path):
    _needs_kernels()
    tflite = getattr(model_zoo, model)()
    graph, _plan, sources = _build(tflite, with_passes)
    engine = CompiledModel(_write(tmp_path, sources), graph)
    images = model_zoo.random_images(count, graph.tensors[graph.input].shape, seed=11)
    expected = _tflm_outputs(tflite, images)
    actual = np.stack([engine(image) for image in images])
    mismatched = np.flatnonzero((actual != expected).any(axis=1))
    assert mismatched.size == 0, f"{mismatched.size}/{count} outputs differ, first image {mismatched[:1]}"
    # also each layer against the NumPy reference kernels, for the first image
    reference = model_zoo.reference_forward(graph, images[0])
    np.testing.assert_array_equal(actual[0], reference[graph.output])


@pytest.mark.slow
def test_trained_seed_model_bit_exact_on_mnist(seed_int8_tflite, mnist, tmp_path):
    """The suite's trained seed model: lowered, compiled, and equal to TFLM on 500 test images."""
    _needs_kernels()
    graph, plan, sources = _build(seed_int8_tflite)
    assert plan.arena_bytes <= 8192
    engine = CompiledModel(_write(tmp_path, sources), graph)
    source = graph.tensors[graph.input]
    images = mnist.x_test[:500].astype(np.float32) / 255.0
    quantized = np.clip(np.round(images / source.scale) + source.zero_point, -128, 127).astype(np.int8)[..., None]
    expected = _tflm_outputs(seed_int8_tflite, quantized)
    actual = np.stack([engine(image) for image in quantized])
    assert int((actual == expected).all(axis=1).sum()) == 500
    accuracy = float(np.mean(actual.argmax(axis=1) == mnist.y_test[:500]))
    assert accuracy >= 0.95


def test_hostile_tensor_names_stay_inside_comments(tmp_path):
    graph = lower_tflite(model_zoo.second_model_tflite())
    hostile = "evil */ int x = 1; /* ??/\n\u00e9"
    renamed = {name: f"{name}{hostile}" for name in graph.tensors}

    def rename(layer):
        source = tuple(dataclasses.replace(ref, output=renamed.get(ref.output, ref.output)) for ref in layer.source)
        return dataclasses.replace(
            layer, inputs=tuple(renamed[t] for t in layer.inputs), outputs=tuple(renamed[t] for t in layer.outputs), source=source
        )

    graph = graph.replace(
        layers=[rename(layer) for layer in graph.layers],
        tensors={renamed[n]: dataclasses.replace(t, name=renamed[n]) for n, t in graph.tensors.items()},
        input=renamed[graph.input],
        output=renamed[graph.output],
    )
    graph = passes.run_passes(graph)
    plan = planner.plan_memory(graph)
    directory = _write(tmp_path, codegen.render_model_sources(graph, plan, SHA))
    for name in ("model.c", "model_weights.c"):
        args = [host_compiler(), *STRICT_C_FLAGS, f"-I{directory}", f"-I{kernel_include_dir()}", "-c",
                str(directory / name), "-o", str(tmp_path / "out.o")]
        result = subprocess.run(args, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_a_kernel_with_scratch_gets_its_arena_buffer_before_the_output():
    graph = passes.run_passes(lower_tflite(model_zoo.seed_model_tflite()))
    index = 2  # fully_connected_0
    graph.layers[index] = dataclasses.replace(graph.layers[index], scratch_bytes=48)
    plan = planner.plan_memory(graph)
    scratch = plan.allocations[planner.scratch_name("fully_connected_0")]
    assert (scratch.size, scratch.first_layer, scratch.last_layer) == (48, index, index)
    planner.check_no_overlap(plan)
    model_c = codegen.render_model_sources(graph, plan, SHA)["model.c"]
    call = model_c[model_c.index("si4_fully_connected_s8(&fully_connected_0_params") :].split(";")[0]
    arguments = [argument.strip() for argument in call.split("(", 1)[1].rstrip(")").split(",")]
    arena = codegen.DEFAULT_NAMES.arena_base  # the static arena, or the caller's (invoke_with_arena)
    assert arguments[-2] == f"{arena} + {scratch.offset}"
    assert arguments[-1] == f"{arena} + {plan.allocations[graph.layers[index].output].offset}"
    assert "fully_connected_0.scratch" in model_c  # in the arena map


def test_dense_layers_of_the_per_tensor_class_call_its_kernel():
    """The generator sends per-tensor dense layers with whole-word inputs of up to 256 values to
    si4_fully_connected_per_tensor_s8 (so a model of only such layers links only its DSP loop),
    and every other dense layer, per-channel ones included, to si4_fully_connected_s8."""
    from si4tool.compiler import ops
    from si4tool.compiler.ops.fully_connected import PER_TENSOR_MAX_INPUT

    graph = passes.run_passes(lower_tflite(model_zoo.seed_model_tflite()))
    dense = [layer for layer in graph.layers if layer.op == "fully_connected"]
    spec = ops.spec("fully_connected")
    # today's converter quantizes dense layers per channel: the general kernel
    assert all(layer.params.per_channel for layer in dense)
    assert {spec.kernel_for(layer) for layer in dense} == {"si4_fully_connected_s8"}
    fc2 = dense[1]  # 128 inputs, made per-tensor
    constants = {**fc2.constants, "output_multiplier": fc2.constants["output_multiplier"][:1],
                 "output_shift": fc2.constants["output_shift"][:1]}
    layer = dataclasses.replace(fc2, params=dataclasses.replace(fc2.params, per_channel=0), constants=constants)
    assert spec.kernel_for(layer) == "si4_fully_connected_per_tensor_s8"
    graph.layers[graph.layers.index(fc2)] = layer
    model_c = codegen.render_model_sources(graph, planner.plan_memory(graph), "0" * 64)["model.c"]
    assert model_c.count("si4_fully_connected_per_tensor_s8(") == 1
    for change in ({"filter_offset": 3}, {"input_size": 126}, {"input_size": PER_TENSOR_MAX_INPUT + 4},
                   {"output_offset": 200}):
        assert spec.kernel_for(dataclasses.replace(layer, params=dataclasses.replace(layer.params, **change))) == (
            "si4_fully_connected_s8"), change
    for shift in (1, -23):  # a left shift; a right shift past the fused requantization's range
        shifted = {**constants, "output_shift": np.array([shift], dtype=np.int32)}
        assert spec.kernel_for(dataclasses.replace(layer, constants=shifted)) == "si4_fully_connected_s8"
