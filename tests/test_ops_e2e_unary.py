"""Issue 10's one-input operators end to end: a Keras-built model (random weights, full int8 with
random calibration) through si4tool's lowering, planner, codegen and host engine, every output
and every intermediate tensor bit-exact with TFLite Micro.

- RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH in one chain (as converted), and each on
  its own with zero points moved to -128 / 127 and saturating scales (edits of the flatbuffer: the
  corners TFLM's own kernel tests cover); inputs span all 256 int8 values, so every table entry
  is read. QUANTIZE int8 -> int8 (Keras has no such layer: a RELU model whose operator is turned
  into a QUANTIZE, as tests/test_ops_activations.py does).
- FULLY_CONNECTED over rank-3 and rank-4 inputs (keep_num_dims: one row per leading position) and a
  rank-4 input flattened to one row.
- CONV_2D and DEPTHWISE_CONV_2D with dilation 2 and 3, SAME and VALID (Keras dilation_rate, batch 1).
- Refusals through the CLI: exit code 2, one sentence naming the operator, its index and its
  output tensor, pointing to `si4tool ops`, and no file written.

Engines are compiled at -O0: these tests are about the arithmetic, not the speed.
"""

from __future__ import annotations

import numpy as np
import pytest

import ops_harness as h
from si4tool.compiler import codegen, ops, passes, planner
from si4tool.compiler.lowering import lower_tflite
from si4tool.compiler.tflite_reader import read_tflite

pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
keras = pytest.importorskip("keras")

ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
TRACED_INPUTS = 3  # inputs on which every intermediate tensor is compared


def _inputs(shape, count: int = 24, seed: int = 0) -> np.ndarray:
    """`count` random int8 inputs of `shape`, the first holding every int8 value (cycled)."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(-128, 128, size=(count, *shape), dtype=np.int8)
    size = int(np.prod(shape))
    batch[0] = np.resize(ALL_INT8, size).reshape(shape)
    return batch


def _engine(tflite: bytes, tmp_path, name: str):
    from si4tool.targets.host_engine import build_host_engine

    graph = passes.run_passes(lower_tflite(tflite))
    plan = planner.plan_memory(graph)
    assets = tmp_path / name / "assets"
    assets.mkdir(parents=True)
    for file_name, text in codegen.render_model_sources(graph, plan, "0" * 64).items():
        (assets / file_name).write_text(text)
    return graph, plan, build_host_engine(assets, tmp_path / name / "build", extra_flags=["-O0"])


def _assert_bit_exact(tflite: bytes, inputs: np.ndarray, tmp_path, name: str):
    """Every output on every input and every layer's output on the first TRACED_INPUTS inputs equal
    TFLM's; returns (graph, plan, TFLM outputs)."""
    from tflite_micro.python.tflite_micro import runtime

    graph, plan, engine = _engine(tflite, tmp_path, name)
    interpreter = runtime.Interpreter.from_bytes(
        tflite, arena_size=1 << 20, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    actual = engine.run(inputs.reshape(len(inputs), -1))
    expected = []
    for index, x in enumerate(inputs):
        interpreter.set_input(x[None], 0)
        interpreter.invoke()
        expected.append(np.array(interpreter.get_output(0)).reshape(-1).astype(np.int8))
        if index < TRACED_INPUTS:
            for layer, c_values in zip(graph.layers, engine.run_layers(x.reshape(-1))):
                tensor = graph.tensors[layer.output]
                reference = np.asarray(interpreter.GetTensor(tensor.tflite_index, 0)["tensor_data"]).reshape(-1)
                np.testing.assert_array_equal(c_values, reference.astype(np.int8), err_msg=f"{name}: {layer.name}")
    expected = np.stack(expected)
    np.testing.assert_array_equal(actual, expected, err_msg=name)
    return graph, plan, expected


def _edited(tflite: bytes, operators: dict[int, dict] | None = None, shapes: dict[int, tuple] | None = None,
            quantization: dict[int, tuple[float, int]] | None = None) -> bytes:  # fmt: skip
    """The model with some operators' options, tensors' shapes and tensors' (scale, zero point) set."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    subgraph = model.subgraphs[0]
    for index, options in (operators or {}).items():
        for field, value in options.items():
            setattr(subgraph.operators[index].builtinOptions, field, value)
    for index, shape in (shapes or {}).items():
        subgraph.tensors[index].shape = list(shape)
        subgraph.tensors[index].shapeSignature = list(shape)
    for index, (scale, zero_point) in (quantization or {}).items():
        subgraph.tensors[index].quantization.scale = [float(scale)]
        subgraph.tensors[index].quantization.zeroPoint = [int(zero_point)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _convert(model, shape, seed: int = 0) -> bytes:
    keras.utils.set_random_seed(seed)
    return h.single_op_tflite(model, [shape], seed=seed)


# ----------------------------------------------------------------------------
# The unary operators


CHAIN_SHAPE = (16, 16, 1)


@pytest.fixture(scope="module")
def unary_chain_tflite() -> bytes:
    keras.utils.set_random_seed(3)
    layers = keras.layers
    image = keras.Input(CHAIN_SHAPE, batch_size=1)
    x = layers.ReLU()(image)
    x = layers.LeakyReLU(negative_slope=0.2)(layers.Conv2D(3, 3, padding="same")(x))
    x = layers.Activation("hard_swish")(x)
    x = layers.Activation("tanh")(x)
    x = layers.ReLU(6.0)(x)  # after TANH: nothing to fuse into, a RELU6 of its own
    x = layers.DepthwiseConv2D(3, padding="valid")(x)
    x = layers.Activation("sigmoid")(x)
    return _convert(keras.Model(image, x), CHAIN_SHAPE, seed=3)


def test_unary_chain_bit_exact_with_tflite_micro(unary_chain_tflite, tmp_path):
    graph, plan, expected = _assert_bit_exact(unary_chain_tflite, _inputs(CHAIN_SHAPE), tmp_path, "chain")
    assert [layer.op for layer in graph.layers] == [
        "relu", "conv2d", "leaky_relu", "hard_swish", "tanh", "relu6", "depthwise_conv2d", "logistic",
    ]  # fmt: skip
    # The elementwise layers write over the input they read last (OpSpec.in_place).
    in_place = {layer.op for layer in graph.layers if layer.output in plan.shares}
    assert {"leaky_relu", "hard_swish", "tanh", "relu6"} <= in_place
    # The tables hold 256 bytes each, in model_weights.c.
    tables = [layer.constants["table"] for layer in graph.layers if "table" in layer.constants]
    assert [table.shape for table in tables] == [(256,)] * 3
    assert len(np.unique(expected)) > 16  # the output is not saturated into a few codes


def _single_op_models():
    layers = keras.layers
    return {
        "RELU": layers.ReLU(),
        "RELU6": layers.ReLU(6.0),
        "LEAKY_RELU": layers.LeakyReLU(negative_slope=0.2),
        "LOGISTIC": layers.Activation("sigmoid"),
        "TANH": layers.Activation("tanh"),
        "HARD_SWISH": layers.Activation("hard_swish"),
    }


SINGLE_SHAPE = (16, 16, 1)  # 256 elements: every int8 value once in the first input


@pytest.fixture(scope="module")
def single_op_tflites() -> dict[str, bytes]:
    converted = {}
    for name, layer in _single_op_models().items():
        image = keras.Input(SINGLE_SHAPE, batch_size=1)
        converted[name] = _convert(keras.Model(image, layer(image)), SINGLE_SHAPE)
    return converted


# (input scale, input zero point, output scale, output zero point): the zero points at both ends
# of int8, with output scales that saturate (fine) or coarsen (coarse) the result.
EDGES = {"minus_128": (0.05, -128, 0.002, -128), "plus_127": (0.04, 127, 0.5, 127)}
# TFLM fixes these outputs' quantization (LOGISTIC requires it, TANH assumes it).
FIXED_OUTPUT = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}


def _with_edge(tflite: bytes, name: str, edge: str) -> bytes:
    view = h.op_of(tflite, name)
    s_in, zp_in, s_out, zp_out = EDGES[edge]
    if name == "HARD_SWISH":
        s_out = max(s_out, s_in / 100)  # TFLM needs output_scale >= input_scale / 128
    s_out, zp_out = FIXED_OUTPUT.get(name, (s_out, zp_out))
    return _edited(tflite, quantization={view.inputs[0].index: (s_in, zp_in), view.outputs[0].index: (s_out, zp_out)})


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("name", ["RELU", "RELU6", "LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH", "QUANTIZE"])
def test_unary_operator_at_extreme_zero_points(single_op_tflites, name, edge, tmp_path):
    if name == "QUANTIZE":
        relu_model = _with_edge(single_op_tflites["RELU"], "RELU", edge)
        tflite = h.with_quantization(relu_model, {}, builtin_code=114)  # RELU -> QUANTIZE, same tensors
    else:
        tflite = _with_edge(single_op_tflites[name], name, edge)
    graph, _, expected = _assert_bit_exact(tflite, _inputs(SINGLE_SHAPE, count=4), tmp_path, f"{name}_{edge}")
    assert [layer.op for layer in graph.layers] == [ops.for_builtin(name).op]
    if name not in ("LOGISTIC", "TANH"):  # those outputs use TFLM's fixed quantization
        assert {-128, 127} & set(np.unique(expected).tolist())  # the clamp is reached


def test_identity_quantize_is_dropped_and_rescaling_quantize_is_a_layer(single_op_tflites):
    relu_model = single_op_tflites["RELU"]
    view = h.op_of(relu_model, "RELU")
    source = view.inputs[0]
    same = h.with_quantization(
        relu_model, {view.outputs[0].index: (view.scale(source), view.zero_point(source))}, builtin_code=114
    )
    with pytest.raises(Exception, match="no operators si4tool can compile"):
        lower_tflite(same)  # input -> identity QUANTIZE -> output: nothing left to run
    rescaled = h.with_quantization(relu_model, {view.outputs[0].index: (view.scale(source) * 3, 5)}, builtin_code=114)
    (layer,) = lower_tflite(rescaled).layers
    assert layer.op == "quantize" and layer.params.output_zero_point == 5


# ----------------------------------------------------------------------------
# FULLY_CONNECTED over any rank


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 8)])
def test_fully_connected_keeps_leading_dimensions_as_rows(shape, tmp_path):
    keras.utils.set_random_seed(1)
    layers = keras.layers
    sequence = keras.Input(shape, batch_size=1)
    hidden = layers.Dense(6, bias_initializer="random_normal", activation="relu")(sequence)
    tflite = _convert(keras.Model(sequence, layers.Dense(3, bias_initializer="random_normal")(hidden)), shape, seed=1)
    model = read_tflite(tflite, option_layouts=ops.option_layouts())
    assert [op.options["keep_num_dims"] for op in model.operators] == [True, True]
    graph, _, _ = _assert_bit_exact(tflite, _inputs(shape), tmp_path, f"fc_rank{len(shape) + 1}")
    rows = int(np.prod(shape[:-1]))
    assert [layer.params.batches for layer in graph.layers] == [rows, rows]
    assert graph.tensors[graph.output].shape == (*shape[:-1], 3)
    assert ops.layer_macs(graph.layers[0]) == rows * shape[-1] * 6


def test_fully_connected_rows_without_keep_num_dims(tmp_path):
    """A Reshape to [16, 8] and a Dense: the converter writes FULLY_CONNECTED [1, 4, 4, 8] -> [16, 6]
    (keep_num_dims false: the first dimension counts rows), a LOGISTIC on [16, 6], and a RESHAPE
    to [1, 16, 6]."""
    keras.utils.set_random_seed(8)
    image = keras.Input((4, 4, 8), batch_size=1)
    rows = keras.layers.Reshape((16, 8))(image)  # the converter folds it into the FULLY_CONNECTED
    x = keras.layers.Dense(6, bias_initializer="random_normal")(rows)
    tflite = _convert(keras.Model(image, keras.layers.Activation("sigmoid")(x)), (4, 4, 8), seed=8)
    model = read_tflite(tflite, option_layouts=ops.option_layouts())
    fully_connected = next(op for op in model.operators if op.name == "FULLY_CONNECTED")
    assert fully_connected.options["keep_num_dims"] is False
    assert model.tensors[fully_connected.outputs[0]].shape == (16, 6)
    graph, _, _ = _assert_bit_exact(tflite, _inputs((4, 4, 8)), tmp_path, "fc_rows")
    assert [layer.op for layer in graph.layers] == ["fully_connected", "logistic", "reshape"]
    assert graph.layers[0].params.batches == 16


def test_a_rows_tensor_is_refused_by_an_operator_that_reads_dimensions():
    """[rows, outputs] is one inference's tensor only to operators that read flat rows; any other
    (a pooling or a MEAN would take the rows for a batch) is refused, and so is a model input of
    several rows."""
    from si4tool.compiler.lowering import LoweringContext
    from si4tool.errors import UserError

    keras.utils.set_random_seed(8)
    image = keras.Input((4, 4, 8), batch_size=1)
    rows = keras.layers.Dense(6)(keras.layers.Reshape((16, 8))(image))
    model = read_tflite(_convert(keras.Model(image, keras.layers.Activation("sigmoid")(rows)), (4, 4, 8), seed=8),
                        ops.option_layouts())  # fmt: skip
    fully_connected = next(op for op in model.operators if op.name == "FULLY_CONNECTED")
    rows_tensor = model.tensors[fully_connected.outputs[0]]
    assert rows_tensor.shape == (16, 6)
    context = LoweringContext(model)
    assert context.activation(fully_connected, rows_tensor, rows_ok=True).shape == (16, 6)
    with pytest.raises(UserError, match=r"FULLY_CONNECTED \(operator \d+, .*\[16, 6\]; si4tool supports batch 1 only"):
        context.activation(fully_connected, rows_tensor)  # a reader that does not take rows
    context = LoweringContext(model)
    context.edge_tensors = {rows_tensor.index}
    with pytest.raises(UserError, match="batch 1 only"):
        context.activation(fully_connected, rows_tensor, rows_ok=True)  # the engine's edges are batch 1


def test_fully_connected_flattens_a_rank_4_input_into_one_row(tmp_path):
    keras.utils.set_random_seed(2)
    vector = keras.Input((12,), batch_size=1)
    tflite = _convert(keras.Model(vector, keras.layers.Dense(5, bias_initializer="random_normal")(vector)), (12,))
    view = h.op_of(tflite, "FULLY_CONNECTED")
    # TFLite reads any input as rows of the filter's width: [1, 2, 2, 3] is one row of 12.
    flattened = _edited(tflite, shapes={view.inputs[0].index: (1, 2, 2, 3)})
    graph, _, _ = _assert_bit_exact(flattened, _inputs((2, 2, 3)), tmp_path, "fc_flatten")
    assert graph.layers[0].params.batches == 1


def test_fully_connected_refuses_rows_that_do_not_divide(tmp_path):
    keras.utils.set_random_seed(2)
    vector = keras.Input((12,), batch_size=1)
    tflite = _convert(keras.Model(vector, keras.layers.Dense(5)(vector)), (12,))
    view = h.op_of(tflite, "FULLY_CONNECTED")
    broken = _edited(tflite, shapes={view.inputs[0].index: (1, 2, 7)})
    with pytest.raises(Exception, match=r"FULLY_CONNECTED \(operator 0, output tensor '.*'\) maps an input of shape \[1, 2, 7\]"):
        lower_tflite(broken)


# ----------------------------------------------------------------------------
# CONV_2D and DEPTHWISE_CONV_2D with dilation


DILATION_INPUT = (11, 10, 3)


@pytest.mark.parametrize(
    "kind, padding, dilation",
    [("conv", "same", 2), ("conv", "valid", 2), ("conv", "valid", 3),
     ("depthwise", "same", 2), ("depthwise", "valid", 2), ("depthwise", "same", 3)],
)  # fmt: skip
def test_dilated_convolution_bit_exact_with_tflite_micro(kind, padding, dilation, tmp_path):
    keras.utils.set_random_seed(4)
    layers = keras.layers
    # A static batch of 1: the converter then writes one dilated CONV_2D / DEPTHWISE_CONV_2D (with
    # a dynamic batch it writes SPACE_TO_BATCH_ND + convolution + BATCH_TO_SPACE_ND, refused).
    image = keras.Input(DILATION_INPUT, batch_size=1)
    if kind == "conv":
        conv = layers.Conv2D(4, 3, padding=padding, dilation_rate=dilation, bias_initializer="random_normal")
    else:
        conv = layers.DepthwiseConv2D(3, padding=padding, dilation_rate=dilation, depth_multiplier=2,
                                      bias_initializer="random_normal")  # fmt: skip
    tflite = _convert(keras.Model(image, conv(image)), DILATION_INPUT, seed=4)
    model = read_tflite(tflite, option_layouts=ops.option_layouts())
    assert [(op.name, op.options["dilation_h"]) for op in model.operators] == [
        ("CONV_2D" if kind == "conv" else "DEPTHWISE_CONV_2D", dilation)
    ]
    graph, _, _ = _assert_bit_exact(tflite, _inputs(DILATION_INPUT), tmp_path, f"{kind}_{padding}_{dilation}")
    (layer,) = graph.layers
    assert (layer.params.dilation_height, layer.params.dilation_width) == (dilation, dilation)
    height, width = DILATION_INPUT[:2]
    if padding == "same":
        assert (layer.params.pad_top, layer.params.pad_left) == (dilation, dilation)
        assert (layer.params.output_height, layer.params.output_width) == (height, width)
    else:  # the dilated 3x3 window spans 2 * dilation + 1 input positions
        assert (layer.params.output_height, layer.params.output_width) == (height - 2 * dilation, width - 2 * dilation)


# ----------------------------------------------------------------------------
# Refusals through the CLI


def _assert_refused(cli, tflite: bytes, tmp_path, operator: str) -> str:
    model = tmp_path / "model.tflite"
    model.write_bytes(tflite)
    out = tmp_path / "assets"
    code, message = cli("build-firmware-assets", "--model", str(model), "--inputs", "random", "--out", str(out))
    assert code == 2, message
    assert message.startswith("error: ") and message.count(". ") == 0, message  # one sentence, one line
    assert operator in message and "(operator " in message and "output tensor '" in message, message
    assert "`si4tool ops`" in message, message
    assert not out.exists() or not any(out.iterdir())  # refused before any file is written
    return message


@pytest.fixture
def cli(monkeypatch, capsys):
    """`si4tool ARGS` as the console entry point runs it (cli.main), in this process: a subprocess
    would spend most of its time importing TensorFlow again. Returns (exit code, last stderr line)."""
    import sys

    from si4tool import cli as si4tool_cli

    monkeypatch.setenv("SI4_NO_VERSION_WARNING", "1")
    monkeypatch.delenv("SI4_DEBUG", raising=False)

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["si4tool", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_request:
            si4tool_cli.main()
        lines = capsys.readouterr().err.strip().splitlines()
        return exit_request.value.code, lines[-1] if lines else ""

    return run


def test_cli_refuses_an_unsupported_builtin(cli, tmp_path):
    keras.utils.set_random_seed(5)
    image = keras.Input((6, 6, 2), batch_size=1)
    tflite = _convert(keras.Model(image, keras.layers.GlobalMaxPooling2D(name="pick_max")(image)), (6, 6, 2))
    assert "REDUCE_MAX" in [op.name for op in read_tflite(tflite).operators]
    _assert_refused(cli, tflite, tmp_path, "REDUCE_MAX (operator 0")


@pytest.fixture(scope="module")
def relu_tanh_leaky_tflite() -> bytes:
    keras.utils.set_random_seed(6)
    layers = keras.layers
    image = keras.Input((6, 6, 2), batch_size=1)
    x = layers.LeakyReLU(negative_slope=0.1)(layers.Activation("tanh")(layers.ReLU()(image)))
    return _convert(keras.Model(image, x), (6, 6, 2), seed=6)


@pytest.mark.parametrize("type_code, type_name", [(0, "FLOAT32"), (7, "INT16")])
def test_cli_refuses_float_and_int16_activations(cli, relu_tanh_leaky_tflite, type_code, type_name, tmp_path):
    """TANH's output turned into a float32 (a float TANH) or int16 tensor, inside an int8 model."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(relu_tanh_leaky_tflite, 0))
    tensors = model.subgraphs[0].tensors
    (tanh_output,) = h.op_of(relu_tanh_leaky_tflite, "TANH").outputs
    tensors[tanh_output.index].type = type_code
    if type_code == 0:
        tensors[tanh_output.index].quantization = None
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    message = _assert_refused(cli, bytes(builder.Output()), tmp_path, "TANH (operator 1")
    assert f"of type {type_name}" in message
