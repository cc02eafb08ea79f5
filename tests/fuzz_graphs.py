"""Random small graphs for the differential fuzzer (tests/test_fuzz.py), as plain data.

A *description* is a JSON-able dict:

    {"input_shape": [H, W, C] or [N], "seed": int, "calibration": [low, high],
     "per_channel": bool (optional, default true: per-channel conv and dense weights),
     "memory": "fast" | "balanced" | "small" | "smallest" (optional, default fast: the `--memory`
               choice whose schedule the engine is planned and rendered with, "smallest" being
               `--memory small --max-slowdown inf`; not part of the .tflite),
     "layers": [{"op": "conv2d", "inputs": [0], ...options...}, ...]}

Node 0 is the model input and node k + 1 the output of layers[k]; a layer's "inputs" are node
numbers, so residual ADDs and CONCATENATIONs are edges back to earlier nodes. The last layer is
the model's output. `graphs()` draws descriptions (hypothesis) and `build_tflite()` turns one
into a full-int8 .tflite: a Keras functional model with seeded random weights and biases,
calibrated on seeded random data in the description's range, so one description always gives
the same flatbuffer (cached under build/fuzz_cache by the description and this file's text).

Each operator is one `Generator` entry in GENERATORS: which TFLite builtins it produces (the
entry is drawn only while si4tool's registry lowers all of them: `ops.for_builtin`), which
nodes it can read, how to draw its options, its output shape, and its Keras layer. Adding an
operator is one entry.

`compare_with_tflm()` is the differential check itself (also used by
tests/test_kernels_extreme.py): the lowered graph rendered, compiled for the host against kernel
objects built once, and every layer output compared with TFLite Micro's tensor. It plans the
engine with the description's `--memory` choice (schedule.choose_plan), so random graphs run every
schedule the planner builds for them (in place, row-streamed) against TFLite Micro; a layer whose
output a streamed schedule never materialises is compared through the NumPy reference only (its
values reach TFLite Micro's through the following layers).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from hypothesis import strategies as st

from si4tool.compiler.schedule import MEMORY_CHOICES as CLI_MEMORY_CHOICES

# The --memory choices a description may name, and "smallest": small without its 1.3x bound, the
# smallest arena of all (--max-slowdown inf), so the fuzzer reaches every schedule.
MEMORY_CHOICES = (*CLI_MEMORY_CHOICES, "smallest")


def choose_plan(graph, memory: str):
    """schedule.choose_plan for a description's memory choice (see MEMORY_CHOICES)."""
    from si4tool.compiler import schedule

    if memory == "smallest":
        return schedule.choose_plan(graph, "small", max_slowdown=float("inf"))
    return schedule.choose_plan(graph, memory)

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / "build" / "fuzz_cache"

Shape = tuple[int, ...]
ACTIVATIONS = (None, "relu", "relu6")


# ----------------------------------------------------------------------------
# shapes


def _conv_out(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """TFLite's output size (padding.h): SAME ceil(size / stride), VALID (size - effective + stride) / stride."""
    effective = (kernel - 1) * dilation + 1
    if padding == "same":
        return (size + stride - 1) // stride
    return (size - effective + stride) // stride


def _window_shape(shape: Shape, spec: dict, channels: int) -> Shape:
    h, w, _ = shape
    (kh, kw), (sh, sw), (dh, dw) = spec["kernel"], spec["strides"], spec.get("dilation", (1, 1))
    return (_conv_out(h, kh, sh, spec["padding"], dh), _conv_out(w, kw, sw, spec["padding"], dw), channels)


# ----------------------------------------------------------------------------
# drawing options: each takes hypothesis' draw and the shapes of the nodes it reads


def _draw_window(draw, shape: Shape, max_kernel: int, dilate: bool) -> dict:
    h, w, _ = shape
    padding = draw(st.sampled_from(["same", "valid"]))
    strides = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    dilation = [1, 1]
    if dilate and strides == [1, 1] and padding == "same" and draw(st.booleans()):
        # The converter turns a dilated Keras conv into SPACE_TO_BATCH_ND + CONV_2D +
        # BATCH_TO_SPACE_ND; set_dilations writes the factors into CONV_2D's options instead,
        # which keeps every shape only with stride 1 and SAME padding.
        dilation = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    # VALID needs the (dilated) window inside the input
    limit_h = max_kernel if padding == "same" else max(1, min(max_kernel, (h - 1) // dilation[0] + 1))
    limit_w = max_kernel if padding == "same" else max(1, min(max_kernel, (w - 1) // dilation[1] + 1))
    kernel = [draw(st.integers(1, limit_h)), draw(st.integers(1, limit_w))]
    return {"kernel": kernel, "strides": strides, "padding": padding, "dilation": dilation}


def _draw_conv(draw, shapes):
    options = _draw_window(draw, shapes[0], 7, dilate=True)
    options["filters"] = draw(st.integers(1, 12))
    options["activation"] = draw(st.sampled_from(ACTIVATIONS))
    options["use_bias"] = draw(st.booleans())
    return options


def _draw_depthwise(draw, shapes):
    options = _draw_window(draw, shapes[0], 5, dilate=True)
    options["depth_multiplier"] = draw(st.integers(1, 2))
    options["activation"] = draw(st.sampled_from(ACTIVATIONS))
    options["use_bias"] = draw(st.booleans())
    return options


def _draw_pool(draw, shapes):
    return _draw_window(draw, shapes[0], 3, dilate=False)


def _draw_dense(draw, shapes):
    return {"units": draw(st.integers(1, 24)), "activation": draw(st.sampled_from(ACTIVATIONS)),
            "use_bias": draw(st.booleans())}  # fmt: skip


def _draw_activation(draw, shapes):
    return {"activation": draw(st.sampled_from(ACTIVATIONS))}


def _draw_nothing(draw, shapes):
    return {}


def _draw_leaky(draw, shapes):
    return {"alpha": draw(st.sampled_from([0.01, 0.1, 0.3, 0.5, 0.9]))}


def _draw_pad(draw, shapes):
    return {"padding": [[draw(st.integers(0, 2)), draw(st.integers(0, 2))] for _ in range(2)]}


def _draw_pad_constant(draw, shapes):
    return dict(_draw_pad(draw, shapes), value=draw(st.sampled_from([-2.0, -0.5, 0.25, 1.0, 3.0])))


def _draw_mean(draw, shapes):
    return {"keepdims": draw(st.booleans())}


def _draw_concat(draw, shapes):
    # inputs that differ in one dimension join along it; equal shapes along any axis
    a, b = shapes
    if tuple(a) == tuple(b):
        return {"axis": draw(st.integers(0, len(a) - 1))}
    return {"axis": _concat_axis(shapes)}


# ----------------------------------------------------------------------------
# which nodes an operator can read


def _image(shape: Shape) -> bool:
    return len(shape) == 3


def _one_of(candidates: list[int], draw) -> list[int] | None:
    """Mostly the latest fitting node (a chain grows), sometimes an earlier one (a branch)."""
    if not candidates:
        return None
    return [candidates[-1] if draw(st.integers(0, 3)) else draw(st.sampled_from(candidates))]


def _one_image(shapes: list[Shape], draw) -> list[int] | None:
    return _one_of([i for i, s in enumerate(shapes) if _image(s)], draw)


def _one_any(shapes: list[Shape], draw) -> list[int] | None:
    return _one_of(list(range(len(shapes))), draw)


def _softmax_input(shapes: list[Shape], draw) -> list[int] | None:
    return _one_of([i for i, s in enumerate(shapes) if s[-1] < 512], draw)


def _broadcastable(a: Shape, b: Shape) -> bool:
    if len(a) != len(b):
        return False
    return all(x == y or y == 1 for x, y in zip(a, b))


def _two_alike(shapes: list[Shape], draw) -> list[int] | None:
    """Two nodes of the same shape (a residual edge), or the second broadcast over the first
    (1x1xC against HxWxC); the first is the later node, so the edge usually reaches back."""
    pairs = [(i, j) for i in range(len(shapes)) for j in range(len(shapes)) if i != j and _broadcastable(shapes[i], shapes[j])]
    if not pairs:
        return None
    latest = max(i for i, _ in pairs)
    near = [p for p in pairs if p[0] == latest]
    return list(draw(st.sampled_from(near if draw(st.booleans()) else pairs)))


def _concat_axis(shapes: list[Shape]) -> int:
    a, b = shapes
    differing = [k for k, (x, y) in enumerate(zip(a, b)) if x != y]
    return differing[0] if differing else len(a) - 1


def _two_concatenable(shapes: list[Shape], draw) -> list[int] | None:
    pairs = []
    for i, a in enumerate(shapes):
        for j, b in enumerate(shapes):
            if i != j and len(a) == len(b) and sum(x != y for x, y in zip(a, b)) <= 1:
                pairs.append((i, j))
    if not pairs:
        return None
    latest = max(i for i, _ in pairs)
    near = [p for p in pairs if p[0] == latest]
    return list(draw(st.sampled_from(near if draw(st.booleans()) else pairs)))


# ----------------------------------------------------------------------------
# output shapes


def _same_shape(shapes, options):
    return shapes[0]


def _conv_shape(shapes, options):
    return _window_shape(shapes[0], options, options["filters"])


def _depthwise_shape(shapes, options):
    return _window_shape(shapes[0], options, shapes[0][2] * options["depth_multiplier"])


def _pool_shape(shapes, options):
    return _window_shape(shapes[0], options, shapes[0][2])


def _dense_shape(shapes, options):
    return (options["units"],)


def _flatten_shape(shapes, options):
    return (int(np.prod(shapes[0])),)


def _broadcast_shape(shapes, options):
    return tuple(max(x, y) for x, y in zip(*shapes))


def _concat_shape(shapes, options):
    a, b = shapes
    axis = options["axis"]
    return tuple(x + y if k == axis else x for k, (x, y) in enumerate(zip(a, b)))


def _pad_shape(shapes, options):
    (top, bottom), (left, right) = options["padding"]
    h, w, c = shapes[0]
    return (h + top + bottom, w + left + right, c)


def _mean_shape(shapes, options):
    c = shapes[0][2]
    return (1, 1, c) if options["keepdims"] else (c,)


# ----------------------------------------------------------------------------
# Keras layers


def _keras_conv(layers, options, inputs):
    return layers.Conv2D(options["filters"], tuple(options["kernel"]), strides=tuple(options["strides"]),
                         padding=options["padding"], activation=options["activation"],
                         use_bias=options["use_bias"], name=options["name"])(inputs[0])  # fmt: skip


def _keras_depthwise(layers, options, inputs):
    return layers.DepthwiseConv2D(tuple(options["kernel"]), strides=tuple(options["strides"]),
                                  padding=options["padding"], depth_multiplier=options["depth_multiplier"],
                                  activation=options["activation"], use_bias=options["use_bias"],
                                  name=options["name"])(inputs[0])  # fmt: skip


def _keras_max_pool(layers, options, inputs):
    return layers.MaxPool2D(tuple(options["kernel"]), strides=tuple(options["strides"]), padding=options["padding"])(inputs[0])


def _keras_avg_pool(layers, options, inputs):
    return layers.AveragePooling2D(tuple(options["kernel"]), strides=tuple(options["strides"]),
                                   padding=options["padding"])(inputs[0])  # fmt: skip


def _keras_dense(layers, options, inputs):
    # a Dense over an image flattens it first (RESHAPE + FULLY_CONNECTED, as a classifier head)
    x = inputs[0] if len(inputs[0].shape) == 2 else layers.Flatten()(inputs[0])
    return layers.Dense(options["units"], activation=options["activation"], use_bias=options["use_bias"])(x)


def _keras_flatten(layers, options, inputs):
    return layers.Flatten()(inputs[0])


def _keras_softmax(layers, options, inputs):
    return layers.Softmax()(inputs[0])


def _with_activation(layers, options, x):
    return x if options.get("activation") is None else layers.Activation(options["activation"])(x)


def _keras_add(layers, options, inputs):
    return _with_activation(layers, options, layers.Add()(inputs))


def _keras_sub(layers, options, inputs):
    return _with_activation(layers, options, layers.Subtract()(inputs))


def _keras_mul(layers, options, inputs):
    return _with_activation(layers, options, layers.Multiply()(inputs))


def _keras_concat(layers, options, inputs):
    return layers.Concatenate(axis=options["axis"] + 1)(inputs)  # +1: the batch dimension


def _keras_pad(layers, options, inputs):
    return layers.ZeroPadding2D(tuple(tuple(p) for p in options["padding"]))(inputs[0])


def _keras_pad_constant(layers, options, inputs):
    import keras

    (top, bottom), (left, right) = options["padding"]
    widths, value = [[0, 0], [top, bottom], [left, right], [0, 0]], options["value"]
    return layers.Lambda(lambda x: keras.ops.pad(x, widths, constant_values=value))(inputs[0])


def _keras_mean(layers, options, inputs):
    return layers.GlobalAveragePooling2D(keepdims=options["keepdims"])(inputs[0])


def _keras_relu(layers, options, inputs):
    return layers.ReLU()(inputs[0])


def _keras_relu6(layers, options, inputs):
    return layers.ReLU(max_value=6.0)(inputs[0])


def _keras_leaky_relu(layers, options, inputs):
    return layers.LeakyReLU(negative_slope=options["alpha"])(inputs[0])


def _keras_logistic(layers, options, inputs):
    return layers.Activation("sigmoid")(inputs[0])


def _keras_tanh(layers, options, inputs):
    return layers.Activation("tanh")(inputs[0])


def _keras_hard_swish(layers, options, inputs):
    return layers.Activation("hard_swish")(inputs[0])


# ----------------------------------------------------------------------------
# the generator table


@dataclass(frozen=True)
class Generator:
    op: str  # the description's name
    builtins: tuple[str, ...]  # the TFLite builtins it produces: drawn only while all are registered
    pick_inputs: Callable  # (node shapes, draw) -> node numbers, or None when no node fits
    draw_options: Callable  # (draw, input shapes) -> options dict
    output_shape: Callable  # (input shapes, options) -> shape
    keras: Callable  # (keras.layers, options, input tensors) -> output tensor
    weight: int = 1  # how often it is drawn relative to the others


GENERATORS: tuple[Generator, ...] = (
    Generator("conv2d", ("CONV_2D",), _one_image, _draw_conv, _conv_shape, _keras_conv, weight=4),
    Generator("depthwise_conv2d", ("DEPTHWISE_CONV_2D",), _one_image, _draw_depthwise, _depthwise_shape, _keras_depthwise, weight=2),
    Generator("max_pool", ("MAX_POOL_2D",), _one_image, _draw_pool, _pool_shape, _keras_max_pool, weight=2),
    Generator("avg_pool", ("AVERAGE_POOL_2D",), _one_image, _draw_pool, _pool_shape, _keras_avg_pool),
    Generator("flatten", ("RESHAPE",), _one_image, _draw_nothing, _flatten_shape, _keras_flatten),
    Generator("dense", ("FULLY_CONNECTED", "RESHAPE"), _one_any, _draw_dense, _dense_shape, _keras_dense, weight=2),
    Generator("softmax", ("SOFTMAX",), _softmax_input, _draw_nothing, _same_shape, _keras_softmax),
    Generator("add", ("ADD",), _two_alike, _draw_activation, _broadcast_shape, _keras_add, weight=3),
    Generator("sub", ("SUB",), _two_alike, _draw_activation, _broadcast_shape, _keras_sub),
    Generator("mul", ("MUL",), _two_alike, _draw_activation, _broadcast_shape, _keras_mul),
    Generator("concatenate", ("CONCATENATION",), _two_concatenable, _draw_concat, _concat_shape, _keras_concat, weight=2),
    Generator("pad", ("PAD",), _one_image, _draw_pad, _pad_shape, _keras_pad),
    Generator("pad_constant", ("PADV2",), _one_image, _draw_pad_constant, _pad_shape, _keras_pad_constant),
    Generator("mean", ("MEAN",), _one_image, _draw_mean, _mean_shape, _keras_mean),
    Generator("relu", ("RELU",), _one_any, _draw_nothing, _same_shape, _keras_relu),
    Generator("relu6", ("RELU6",), _one_any, _draw_nothing, _same_shape, _keras_relu6),
    Generator("leaky_relu", ("LEAKY_RELU",), _one_any, _draw_leaky, _same_shape, _keras_leaky_relu),
    Generator("logistic", ("LOGISTIC",), _one_any, _draw_nothing, _same_shape, _keras_logistic),
    Generator("tanh", ("TANH",), _one_any, _draw_nothing, _same_shape, _keras_tanh),
    Generator("hard_swish", ("HARD_SWISH",), _one_any, _draw_nothing, _same_shape, _keras_hard_swish),
)  # fmt: skip

BY_OP = {g.op: g for g in GENERATORS}


def enabled_generators() -> tuple[Generator, ...]:
    """The entries whose every builtin si4tool's registry lowers today."""
    from si4tool.compiler import ops

    return tuple(g for g in GENERATORS if all(ops.for_builtin(b) is not None for b in g.builtins))


def node_shapes(description: dict) -> list[Shape]:
    """The shape of every node (input first), without the batch dimension."""
    shapes: list[Shape] = [tuple(description["input_shape"])]
    for layer in description["layers"]:
        generator = BY_OP[layer["op"]]
        shapes.append(tuple(generator.output_shape([shapes[i] for i in layer["inputs"]], layer)))
    return shapes


# ----------------------------------------------------------------------------
# the hypothesis strategy

MAX_ACTIVATION = 4096  # values per node: keeps conversion and the C build quick


@st.composite
def graphs(draw, max_layers: int = 6, generators: tuple[Generator, ...] | None = None):
    """A description of 1..max_layers layers over the enabled operators (see the module doc)."""
    generators = enabled_generators() if generators is None else generators
    if draw(st.integers(0, 9)) == 0 and any(g.op == "dense" for g in generators):
        input_shape: Shape = (draw(st.integers(1, 40)),)  # a feature vector now and then
    else:
        input_shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(1, 6)))
    low = draw(st.sampled_from([-4.0, -1.0, -0.25, 0.0, 0.5]))
    width = draw(st.sampled_from([0.5, 1.0, 3.0, 8.0]))
    description = {"input_shape": list(input_shape), "seed": draw(st.integers(0, 2**31 - 1)),
                   "calibration": [low, low + width], "per_channel": draw(st.integers(0, 3)) > 0,
                   "layers": []}  # fmt: skip
    shapes: list[Shape] = [input_shape]
    weights = [g.weight for g in generators]
    count = draw(st.integers(1, max_layers))
    attempts = 0
    while len(description["layers"]) < count and attempts < 4 * max_layers:
        attempts += 1
        generator = generators[draw(st.sampled_from([k for k, w in enumerate(weights) for _ in range(w)]))]
        inputs = generator.pick_inputs(shapes, draw)
        if inputs is None:
            continue
        input_shapes = [shapes[i] for i in inputs]
        options = generator.draw_options(draw, input_shapes)
        shape = tuple(generator.output_shape(input_shapes, options))
        if min(shape) < 1 or math.prod(shape) > MAX_ACTIVATION:
            continue
        description["layers"].append({"op": generator.op, "inputs": list(inputs), **options})
        shapes.append(shape)
    if not description["layers"]:
        # nothing fitted (e.g. a feature vector and no dense): one ADD of the input with itself
        description["layers"].append({"op": "add", "inputs": [0, 0], "activation": None})
    # From the drawn seed, not a draw of its own: hypothesis' first examples favour the first
    # choice of a sampled_from (make test's 12 graphs all ran fast), the seed spreads them evenly.
    description["memory"] = MEMORY_CHOICES[description["seed"] % len(MEMORY_CHOICES)]
    return prune(description)


def prune(description: dict) -> dict:
    """The description without the layers the output does not depend on (Keras drops them anyway;
    a kept regression case then lists only what matters)."""
    layers = description["layers"]
    live = {len(layers)}  # node numbers; the output is the last layer's node
    for node in range(len(layers), 0, -1):
        if node in live:
            live.update(layers[node - 1]["inputs"])
    renumber = {0: 0}
    kept = []
    for node in range(1, len(layers) + 1):
        if node in live:
            layer = dict(layers[node - 1], inputs=[renumber[i] for i in layers[node - 1]["inputs"]])
            kept.append(layer)
            renumber[node] = len(kept)
    return dict(description, layers=kept)


# ----------------------------------------------------------------------------
# Keras model and int8 conversion


# the builder's code as imported: a cached .tflite made by other code is never read
_BUILDER_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def description_key(description: dict) -> str:
    """Stable name of a description (and of this builder's code), for caches and failure files."""
    text = json.dumps(description, sort_keys=True) + _BUILDER_DIGEST
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def keras_model(description: dict):
    """The Keras functional model of a description, with seeded random weights and biases (not
    the initializers' zero biases, so that bias paths and zero points get exercised)."""
    import keras

    keras.backend.clear_session()  # layer and tensor names restart: the same flatbuffer every time
    keras.utils.set_random_seed(int(description["seed"]) % 2**31)
    layers = keras.layers
    nodes = [keras.Input(tuple(description["input_shape"]))]
    for number, layer in enumerate(description["layers"]):
        generator = BY_OP[layer["op"]]
        options = dict(layer, name=layer_name(number))
        nodes.append(generator.keras(layers, options, [nodes[i] for i in layer["inputs"]]))
    model = keras.Model(nodes[0], nodes[-1])
    rng = np.random.default_rng(int(description["seed"]))
    weights = []
    for array in model.get_weights():
        fan_in = max(1, int(np.prod(array.shape[:-1]))) if array.ndim > 1 else 4
        weights.append(rng.normal(0.0, 1.0 / math.sqrt(fan_in), array.shape).astype(np.float32))
    model.set_weights(weights)
    return model


def layer_name(number: int) -> str:
    """The Keras name of layers[number]; its TFLite operator's output tensor name contains it."""
    return f"fuzzlayer{number}x"


DILATED_BUILTINS = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D"}  # BuiltinOperator codes in schema.fbs


def set_dilations(tflite: bytes, description: dict) -> bytes:
    """Write each layer's dilation into its CONV_2D / DEPTHWISE_CONV_2D options (see _draw_window)."""
    dilated = {layer_name(k): layer["dilation"] for k, layer in enumerate(description["layers"])
               if layer.get("dilation", [1, 1]) != [1, 1]}  # fmt: skip
    if not dilated:
        return tflite
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    (subgraph,) = model.subgraphs
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    found = set()
    for operator in subgraph.operators:
        if codes[operator.opcodeIndex] not in DILATED_BUILTINS:
            continue
        output_name = subgraph.tensors[operator.outputs[0]].name.decode()
        if operator.outputs[0] in list(subgraph.outputs):
            # the converter renames the model's output tensor (StatefulPartitionedCall:0)
            output_name = layer_name(len(description["layers"]) - 1)
        for name, (dilation_h, dilation_w) in dilated.items():
            if name in output_name:
                operator.builtinOptions.dilationHFactor = int(dilation_h)
                operator.builtinOptions.dilationWFactor = int(dilation_w)
                found.add(name)
    assert found == set(dilated), f"no convolution found for {sorted(set(dilated) - found)}"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def convert(description: dict, samples: int = 32) -> bytes:
    import tensorflow as tf

    model = keras_model(description)
    low, high = description["calibration"]
    rng = np.random.default_rng(int(description["seed"]) + 1)
    shape = (1, *description["input_shape"])
    data = [rng.uniform(low, high, shape).astype(np.float32) for _ in range(samples)]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    if not description.get("per_channel", True):  # per-tensor conv and dense weights, TFLM's other path
        converter._experimental_disable_per_channel = True
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return set_dilations(bytes(converter.convert()), description)


def build_tflite(description: dict, cache_dir: Path | None = CACHE_DIR) -> bytes:
    """The description's int8 .tflite (cached: conversion is the slow part of a fuzz example)."""
    if cache_dir is None:
        return convert(description)
    # The memory choice plans the engine, not the model: every choice shares one .tflite.
    graph_only = {key: value for key, value in description.items() if key != "memory"}
    path = Path(cache_dir) / f"{description_key(graph_only)}.tflite"
    if path.is_file():
        return path.read_bytes()
    data = convert(description)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_bytes(data)
    temporary.replace(path)
    return data


# ----------------------------------------------------------------------------
# the differential check: si4tool's host engine against TFLite Micro, tensor by tensor


class FuzzMismatch(AssertionError):
    """The C engine or the NumPy reference differs from TFLite Micro (the message names where)."""


def lower(tflite: bytes):
    """lower_tflite and the passes, as build-firmware-assets runs them (UserError when refused)."""
    from si4tool.compiler import passes
    from si4tool.compiler.lowering import lower_tflite

    return passes.run_passes(lower_tflite(tflite, "the fuzz graph"))


@functools.cache
def kernel_objects() -> tuple[Path, ...]:
    """The portable kernels compiled once (-O2, strict flags, -fPIC) for every graph of the run:
    each graph then compiles only its own model.c and model_weights.c (about 3 s less a graph)."""
    from si4tool.targets.toolchain import (
        STRICT_C_FLAGS, host_compiler, kernel_include_dir, portable_kernel_sources, run_compiler,
    )  # fmt: skip

    sources = portable_kernel_sources()
    digest = hashlib.sha256()
    for path in [*sources, *sorted(kernel_include_dir().glob("*.h"))]:
        digest.update(path.name.encode() + path.read_bytes())
    folder = REPO_ROOT / "build" / "fuzz_kernels" / digest.hexdigest()[:16]
    objects = tuple(folder / f"{source.stem}.o" for source in sources)
    if not all(o.is_file() for o in objects):
        folder.mkdir(parents=True, exist_ok=True)
        for source, obj in zip(sources, objects):
            temporary = obj.with_suffix(f".tmp{os.getpid()}.o")
            run_compiler([host_compiler(), *STRICT_C_FLAGS, "-O2", "-fPIC", "-c", f"-I{kernel_include_dir()}",
                          str(source), "-o", str(temporary)], source.name)  # fmt: skip
            temporary.replace(obj)
    return objects


def host_engine(assets: Path, build_dir: Path):
    """build_host_engine of si4tool.targets.host_engine (same generated files, runner, include
    folders and binding flags), except that the kernels are the objects built once."""
    from si4tool.artefacts import assets_model_names
    from si4tool.compiler.codegen import LAYER_TABLES_FLAG
    from si4tool.targets.host_engine import HostEngine, engine_sources
    from si4tool.targets.toolchain import (
        compile_shared_library, firmware_stub_dir, kernel_include_dir, portable_kernel_sources,
    )  # fmt: skip

    names = assets_model_names(assets)
    kernels = set(portable_kernel_sources())
    model_sources = [source for source in engine_sources(assets) if source not in kernels]
    runner = firmware_stub_dir() / "platform" / "host" / "si4_host_runner.c"
    library = compile_shared_library(
        [*model_sources, runner, *kernel_objects()],
        build_dir / "libsi4_model.so",
        include_dirs=[assets, kernel_include_dir(), firmware_stub_dir()],
        extra_flags=[*names.binding_flags(), LAYER_TABLES_FLAG],
        optimize="-O1",
    )
    return HostEngine(library, names)


# The runtime's default arena is 10 x the model's size: too small for a weightless graph (one RELU
# over a 7x11x6 input fails "Failed to allocate tail memory"), so the check gives it room.
TFLM_ARENA_BYTES = 1 << 20


def tflm_interpreter(tflite: bytes):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(tflite, arena_size=max(TFLM_ARENA_BYTES, 10 * len(tflite)),
                                          intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)  # fmt: skip


def compare_with_tflm(tflite: bytes, graph, images: np.ndarray, work_dir: Path, memory: str = "fast", plan=None) -> int:
    """Plan (with the `--memory` choice `memory`, or take `plan`), render and compile `graph` (lowered from `tflite`),
    run int8 `images` through it layer by layer, and require every layer output, from the C engine
    (where the schedule materialises it) and from the registry's NumPy references, and the model
    output identical to TFLite Micro's tensors. Returns the number of layer outputs compared;
    raises FuzzMismatch at the first difference."""
    import model_zoo
    from si4tool.compiler import codegen

    if plan is None:
        plan, _ = choose_plan(graph, memory)
    assets = Path(work_dir) / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name, text in codegen.render_model_sources(graph, plan, "0" * 64).items():
        (assets / name).write_text(text)
    engine = host_engine(assets, Path(work_dir) / "build")
    assert engine.layer_names == [layer.name for layer in graph.layers]

    interpreter = tflm_interpreter(tflite)
    c_outputs = engine.run(images)
    compared = 0
    for image_index, image in enumerate(images):
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        expected = np.asarray(interpreter.get_output(0)).reshape(-1).astype(np.int8)
        reference = model_zoo.reference_forward(graph, image)
        for layer, c_values in zip(graph.layers, engine.run_layers(image)):
            tensor = graph.tensors[layer.output]
            tflm = np.asarray(interpreter.GetTensor(tensor.tflite_index, 0)["tensor_data"]).reshape(-1).astype(np.int8)
            checks = [("the NumPy reference", reference[layer.output])]
            if c_values.size or not tflm.size:  # empty: a streamed schedule never materialises this tensor
                checks.insert(0, (f"the C engine ({plan.schedule})", c_values))
            for who, values in checks:
                if not np.array_equal(values, tflm):
                    differs = np.flatnonzero(values != tflm)
                    first = int(differs[0])
                    raise FuzzMismatch(
                        f"input {image_index}: {who} differs from TFLite Micro at layer {layer.name} "
                        f"({layer.describe_source()}), tensor {tensor.name} shape {tensor.shape}: "
                        f"{differs.size} of {tflm.size} values, first at flat index {first} "
                        f"({values[first]} vs {tflm[first]})"
                    )
            compared += 1
        if not np.array_equal(c_outputs[image_index], expected):
            raise FuzzMismatch(f"input {image_index}: the model output ({plan.schedule}) differs from TFLite Micro's")
    return compared
