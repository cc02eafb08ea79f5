"""Issue 10's binary and structural operators end to end: SUB, MUL, ADD (with a constant operand),
MEAN, PAD, PADV2, CONCATENATION, each in a small Keras-built model (random weights, converted to
full int8 on random calibration data) lowered by si4tool, compiled into the host engine and
compared bit-exact with TFLite Micro on every output and every intermediate tensor. Edge cases
as TFLM's kernel tests have them: broadcast shapes ([1,H,W,C] with [1,1,1,C], [1,H,1,C] and
scalars, either operand), zero points at -128 and 127, saturating scales. Then one refusal per
operator's unsupported variant through the CLI: exit code 2, one sentence, no files written."""

from __future__ import annotations

import functools

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

import model_zoo  # noqa: E402
from ops_harness import with_quantization  # noqa: E402
from si4tool.compiler import codegen, passes, planner  # noqa: E402
from si4tool.compiler.lowering import lower_tflite  # noqa: E402
from si4tool.compiler.tflite_reader import read_tflite  # noqa: E402

IMAGES = 64  # random inputs per model, every output compared
TRACED = 4  # of which every intermediate tensor is compared too


def _keras():
    return model_zoo._seeded(10)


def _tflm(tflite: bytes):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(tflite, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)


def _ops_of(tflite: bytes) -> list[str]:
    return [operator.name for operator in read_tflite(tflite).operators]


def assert_bit_exact(tflite: bytes, tmp_path, seed: int = 0):
    """Lower, plan, render, compile; every output on IMAGES random inputs and every layer's
    output on the first TRACED identical to TFLite Micro's. Returns (layers, outputs)."""
    from si4tool.targets.host_engine import build_host_engine

    graph = passes.run_passes(lower_tflite(tflite))
    plan = planner.plan_memory(graph)
    assets = tmp_path / "assets"
    assets.mkdir(exist_ok=True)
    for name, text in codegen.render_model_sources(graph, plan, "0" * 64).items():
        (assets / name).write_text(text)
    engine = build_host_engine(assets, tmp_path / "build")
    images = model_zoo.random_images(IMAGES, graph.tensors[graph.input].shape, seed=seed)
    interpreter = _tflm(tflite)
    actual = engine.run(images)
    for number, image in enumerate(images):
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        expected = np.array(interpreter.get_output(0)).reshape(-1)
        assert np.array_equal(actual[number], expected), f"output of input {number}"
        if number < TRACED:
            for layer, c_values in zip(graph.layers, engine.run_layers(image)):
                tensor = graph.tensors[layer.output]
                reference = np.asarray(interpreter.GetTensor(tensor.tflite_index, 0)["tensor_data"]).reshape(-1)
                assert np.array_equal(c_values, reference.astype(np.int8)), f"{layer.name} on input {number}"
            numpy_values = model_zoo.reference_forward(graph, image)
            assert np.array_equal(numpy_values[graph.output], actual[number])
    return graph.layers, actual


def _retuned(tflite: bytes, op: str | tuple[str, ...], zero_point: int, scale_factor: float = 1.0) -> bytes:
    """The model with every tensor `op` reads or writes given `zero_point` (constants too), and the
    scale of its outputs multiplied by scale_factor (< 1 saturates): extremes the converter does
    not produce from random data."""
    model = read_tflite(tflite)
    changes = {}
    for operator in model.operators:
        if operator.name not in ((op,) if isinstance(op, str) else op):
            continue
        for index in (*operator.inputs, *operator.outputs):
            tensor = model.tensors[index] if index >= 0 else None
            if tensor is None or tensor.quantization is None or len(tensor.quantization.scale) != 1:
                continue
            factor = scale_factor if index in operator.outputs else 1.0
            changes[index] = (float(tensor.quantization.scale[0]) * factor, zero_point)
    return with_quantization(tflite, changes)


# ----------------------------------------------------------------------------
# SUB and MUL, broadcasting every way, fused activations


@pytest.fixture(scope="module")
def binary_broadcast_tflite() -> bytes:
    """SUB and MUL over [1,H,W,C] with the same shape, [1,1,1,C], [1,H,1,C] and a [1,1,1,1]
    scalar, the broadcast operand first and second, RELU and RELU6 fused."""
    keras = _keras()
    layers = keras.layers
    image = keras.Input((6, 5, 4))
    y = layers.Conv2D(4, (1, 1))(image)
    same = layers.Subtract()([image, y])  # same shapes
    pooled = layers.AveragePooling2D((6, 5))(image)  # [1,1,1,C]
    rows = layers.AveragePooling2D((1, 5))(y)  # [1,H,1,C]
    scalar = layers.Conv2D(1, (1, 1))(pooled)  # [1,1,1,1]
    x = layers.Subtract()([same, pooled])
    x = layers.ReLU()(layers.Multiply()([x, rows]))  # fused RELU
    x = layers.Multiply()([scalar, x])  # scalar first
    x = layers.Subtract()([pooled, x])  # [1,1,1,C] first
    x = layers.ReLU(6.0)(layers.Multiply()([x, same]))  # fused RELU6, same shapes
    x = layers.Subtract()([x, scalar])
    return model_zoo.convert_to_int8(keras.Model(image, x), (6, 5, 4), seed=10)


def test_sub_and_mul_broadcast_bit_exact_with_tflite_micro(binary_broadcast_tflite, tmp_path):
    operators = _ops_of(binary_broadcast_tflite)
    assert operators.count("SUB") == 4 and operators.count("MUL") == 3, operators
    layers, _ = assert_bit_exact(binary_broadcast_tflite, tmp_path)
    assert {layer.op for layer in layers} >= {"sub", "mul"}


@functools.cache
def _edge_model_tflite(kind: str) -> bytes:
    """Only convolutions feed the `kind` layers (Subtract or Multiply), so any tensor they touch
    can be requantized (_retuned) without breaking another operator's constraints: the same
    broadcasts as above, from [1,1,1,C], [1,H,1,C] and [1,1,1,1] convolutions."""
    keras = _keras()
    layers = keras.layers
    merge = getattr(layers, kind)
    image = keras.Input((6, 5, 4))
    full = layers.Conv2D(4, (1, 1))(image)
    channels = layers.Conv2D(4, (6, 5))(image)  # [1,1,1,C]
    rows = layers.Conv2D(4, (1, 5))(image)  # [1,H,1,C]
    scalar = layers.Conv2D(1, (6, 5))(image)  # [1,1,1,1]
    x = merge()([image, full])
    x = merge()([x, channels])
    x = merge()([rows, x])
    x = merge()([x, scalar])
    x = merge()([scalar, x])
    return model_zoo.convert_to_int8(keras.Model(image, x), (6, 5, 4), seed=11)


@pytest.mark.parametrize("kind, op", [("Subtract", "SUB"), ("Multiply", "MUL")])
@pytest.mark.parametrize("zero_point, scale_factor", [(-128, 1.0), (127, 0.02)])
def test_sub_and_mul_at_extreme_zero_points_and_saturation(tmp_path, kind, op, zero_point, scale_factor):
    # scale_factor < 1 on the op's outputs: the differences and products saturate
    tflite = _retuned(_edge_model_tflite(kind), op, zero_point, scale_factor)
    assert _ops_of(tflite).count(op) == 5
    _, outputs = assert_bit_exact(tflite, tmp_path, seed=zero_point & 7)
    if scale_factor < 1:
        assert np.isin(outputs, (-128, 127)).mean() > 0.2  # the saturating path is exercised


# ----------------------------------------------------------------------------
# ADD, SUB, MUL with a constant operand


@pytest.fixture(scope="module")
def constant_operand_tflite() -> bytes:
    """Each binary operator with a constant: a per-channel vector, a scalar, a [H,1,C] tensor,
    the constant first (c - x) and second. Max pools between them keep the converter from
    folding the constants into each other."""
    keras = _keras()
    layers = keras.layers
    ops = keras.ops
    rng = np.random.default_rng(12)
    image = keras.Input((6, 5, 4))
    vector = rng.uniform(-1, 1, 4).astype(np.float32)
    plane = rng.uniform(0.5, 2, (6, 1, 4)).astype(np.float32)
    pool = lambda: layers.MaxPooling2D((2, 2), strides=1, padding="same")  # noqa: E731
    x = layers.Lambda(lambda t: t + vector)(image)  # ADD [C]
    x = layers.Lambda(lambda t: t * plane)(pool()(x))  # MUL [H,1,C]
    x = layers.Lambda(lambda t: 0.75 - t)(pool()(x))  # SUB, scalar first
    x = layers.Lambda(lambda t: ops.multiply(t, 1.5))(pool()(x))  # MUL scalar
    x = layers.Lambda(lambda t: t - vector)(pool()(x))  # SUB [C] second
    x = layers.Lambda(lambda t: plane + t)(pool()(x))  # ADD, constant first
    return model_zoo.convert_to_int8(keras.Model(image, x), (6, 5, 4), seed=12)


def test_constant_operands_bit_exact_with_tflite_micro(constant_operand_tflite, tmp_path):
    print(_ops_of(constant_operand_tflite))
    layers, _ = assert_bit_exact(constant_operand_tflite, tmp_path)
    with_constants = [layer for layer in layers if layer.op in ("add", "sub", "mul") and layer.constants]
    assert len(with_constants) >= 4, [(layer.op, sorted(layer.constants)) for layer in layers]
    assert any("input1" in layer.constants for layer in with_constants)  # the constant first
    assert all(len(layer.inputs) == 1 for layer in with_constants)


# ----------------------------------------------------------------------------
# MEAN, PAD, PADV2, CONCATENATION


@pytest.fixture(scope="module")
def structural_tflite() -> bytes:
    """MEAN over H and W with keep_dims true (then a broadcast MUL) and false (then a Dense),
    ZeroPadding2D (PAD), a pad with a non-zero value (PADV2), CONCATENATION along H, W and C
    with two and three inputs."""
    keras = _keras()
    layers = keras.layers
    ops = keras.ops
    image = keras.Input((6, 5, 4))
    x = layers.Conv2D(4, (1, 1))(image)
    x = layers.ZeroPadding2D(((1, 2), (0, 1)))(x)  # PAD -> 9x6x4
    x = layers.Lambda(lambda t: ops.pad(t, ((0, 0), (1, 0), (0, 2), (0, 0)), constant_values=0.4))(x)  # PADV2 -> 10x8x4
    a = layers.Conv2D(3, (1, 1))(x)
    b = layers.Conv2D(5, (1, 1))(x)
    x = layers.Concatenate(axis=-1)([a, x, b])  # C: 3 inputs -> 10x8x12
    x = layers.Concatenate(axis=1)([x, x])  # H -> 20x8x12
    y = layers.Conv2D(12, (1, 3))(x)  # 20x6x12
    x = layers.Concatenate(axis=2)([y, x])  # W -> 20x14x12
    gap = layers.GlobalAveragePooling2D(keepdims=True)(x)  # MEAN, keep_dims
    x = layers.Multiply()([x, gap])
    x = layers.GlobalAveragePooling2D()(x)  # MEAN
    x = layers.Dense(3)(x)
    return model_zoo.convert_to_int8(keras.Model(image, x), (6, 5, 4), seed=13)


def test_mean_pad_concatenation_bit_exact_with_tflite_micro(structural_tflite, tmp_path):
    print(_ops_of(structural_tflite))
    layers, _ = assert_bit_exact(structural_tflite, tmp_path)
    ops_used = [layer.op for layer in layers]
    assert ops_used.count("mean") == 2 and ops_used.count("pad") == 2 and ops_used.count("concatenation") == 3, ops_used



@functools.cache
def _structural_edge_tflite() -> bytes:
    """PAD, CONCATENATION and MEAN (both keep_dims) fed only by convolutions, so _retuned may
    requantize every tensor they touch."""
    keras = _keras()
    layers = keras.layers
    image = keras.Input((6, 5, 4))
    x = layers.ZeroPadding2D(((1, 0), (2, 1)))(layers.Conv2D(4, (1, 1))(image))  # 7x8x4
    x = layers.Concatenate(axis=-1)([layers.Conv2D(4, (1, 1))(x), layers.Conv2D(3, (1, 1))(x)])
    kept = layers.Conv2D(2, (1, 1))(layers.GlobalAveragePooling2D(keepdims=True)(x))
    dropped = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    x = layers.Add()([layers.Flatten()(kept), dropped])
    return model_zoo.convert_to_int8(keras.Model(image, x), (6, 5, 4), seed=15)


@pytest.mark.parametrize("zero_point, mean_scale", [(-128, 1.0), (127, 0.02)])
def test_pad_concatenation_mean_at_extreme_zero_points(tmp_path, zero_point, mean_scale):
    # every tensor PAD, CONCATENATION and MEAN touch at zero point -128 or 127; MEAN's outputs
    # at 1/50 of their scale saturate
    tflite = _retuned(_structural_edge_tflite(), ("PAD", "CONCATENATION"), zero_point)
    tflite = _retuned(tflite, "MEAN", zero_point, mean_scale)
    layers, _ = assert_bit_exact(tflite, tmp_path, seed=3)
    assert [layer.op for layer in layers].count("mean") == 2


def test_mean_with_its_input_quantization_bit_exact(tmp_path):
    """MEAN whose output has its input's scale and zero point (the rescale multiplier is 1)."""
    tflite = _structural_edge_tflite()
    model = read_tflite(tflite)
    changes = {}
    for operator in model.operators:
        if operator.name == "MEAN":
            quantization = model.tensors[operator.inputs[0]].quantization
            changes[operator.outputs[0]] = (float(quantization.scale[0]), int(quantization.zero_point[0]))
    assert len(changes) == 2
    assert_bit_exact(with_quantization(tflite, changes), tmp_path, seed=4)

# ----------------------------------------------------------------------------
# Refusals through the CLI: exit code 2, one sentence naming the operator, no files written


def _single_op_tflite(build, seed: int = 14) -> bytes:
    keras = _keras()
    image = keras.Input((6, 5, 4))
    return model_zoo.convert_to_int8(keras.Model(image, build(keras, image)), (6, 5, 4), seed=seed)


def _refusal_sub(keras, x):
    return keras.layers.Lambda(lambda t: t - np.linspace(-1, 1, 4, dtype=np.float32))(x)


def _refusal_mul(keras, x):
    return keras.layers.Lambda(lambda t: t * np.linspace(0.5, 2, 4, dtype=np.float32))(x)


def _refusal_add(keras, x):
    return keras.layers.Lambda(lambda t: t + np.linspace(-1, 1, 4, dtype=np.float32))(x)


def _refusal_mean(keras, x):
    return keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=-1, keepdims=True))(x)


def _refusal_padv2(keras, x):
    return keras.layers.Lambda(lambda t: keras.ops.pad(t, ((0, 0), (1, 1), (0, 0), (0, 0)), constant_values=0.5))(x)


def _refusal_concatenation(keras, x):
    return keras.layers.Concatenate(axis=-1)([keras.layers.Conv2D(2, (1, 1))(x), x])


def _fused_tanh(tflite: bytes, op: str) -> bytes:
    return with_quantization(tflite, {}, options={"fusedActivationFunction": 4})  # TANH


def _constant_requantized(tflite: bytes, op: str) -> bytes:
    """PADV2's constant_values quantized unlike its output (TFLM's Prepare rejects it)."""
    operator = next(o for o in read_tflite(tflite).operators if o.name == op)
    tensor = read_tflite(tflite).tensors[operator.inputs[2]]
    return with_quantization(tflite, {tensor.index: (float(tensor.quantization.scale[0]) * 2, 3)})


def _first_input_requantized(tflite: bytes, op: str) -> bytes:
    model = read_tflite(tflite)
    operator = next(o for o in model.operators if o.name == op)
    tensor = model.tensors[operator.inputs[0]]
    return with_quantization(tflite, {tensor.index: (float(tensor.quantization.scale[0]) * 3, 5)})


REFUSALS = [
    ("SUB", _refusal_sub, _fused_tanh, "fused TANH activation"),
    ("MUL", _refusal_mul, _fused_tanh, "fused TANH activation"),
    ("ADD", _refusal_add, _fused_tanh, "fused TANH activation"),
    ("MEAN", _refusal_mean, None, "reduces height and width only"),
    ("PADV2", _refusal_padv2, _constant_requantized, "quantized differently from its output"),
    ("CONCATENATION", _refusal_concatenation, _first_input_requantized, "quantized differently from its output"),
]


@pytest.mark.parametrize("op, build, edit, fragment", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_unsupported_variant_is_refused_by_the_cli(op, build, edit, fragment, tmp_path, monkeypatch, capsys):
    # The console entry point in this process (the installed `si4tool` script calls the same
    # main()); a subprocess per case would spend most of this file's time importing TensorFlow.
    import sys

    from si4tool import cli

    tflite = _single_op_tflite(build)
    assert op in _ops_of(tflite)
    if edit is not None:
        tflite = edit(tflite, op)
    model = tmp_path / "model.tflite"
    model.write_bytes(tflite)
    out = tmp_path / "out"
    monkeypatch.setenv("SI4_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SI4_NO_VERSION_WARNING", "1")
    monkeypatch.delenv("SI4_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["si4tool", "build-firmware-assets", "--model", str(model), "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert message.startswith("error: ") and "Traceback" not in message, message
    assert f"{op} (operator " in message and fragment in message, message
    assert message.count(". ") == 0, message  # one sentence
    assert not out.exists() and not (tmp_path / "cache").exists()
