"""Each pass rewrites the IR as intended and keeps its output bit for bit (NumPy reference kernels)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import model_zoo
from si4tool.compiler import passes
from si4tool.compiler.lowering import lower_tflite

MODELS = {
    "seed": model_zoo.seed_model_tflite,
    "second": model_zoo.second_model_tflite,
    "second_per_tensor": model_zoo.second_model_per_tensor_tflite,
    "asymmetric": model_zoo.asymmetric_model_tflite,
}


@pytest.fixture(scope="session", params=sorted(MODELS))
def graph(request):
    return lower_tflite(MODELS[request.param]())


def _outputs(graph, images):
    return np.stack([model_zoo.reference_forward(graph, image)[graph.output] for image in images])


def _images(graph, count=6):
    return model_zoo.random_images(count, graph.tensors[graph.input].shape, seed=7)


def test_passes_are_listed_in_order():
    assert [name for name, _ in passes.PASSES] == [
        "drop_noop_reshapes",
        "fuse_conv2d_max_pool",
        "fold_input_offset_into_bias",
    ]


@pytest.mark.parametrize("name, rewrite", passes.PASSES, ids=[name for name, _ in passes.PASSES])
def test_each_pass_keeps_the_outputs(graph, name, rewrite):
    images = _images(graph)
    before = _outputs(graph, images)
    # Run the passes before this one first, so each pass sees the graph it sees in the pipeline.
    earlier = passes.PASSES[: [n for n, _ in passes.PASSES].index(name)]
    prepared = passes.run_passes(graph, earlier)
    snapshot = [(layer.op, layer.inputs, layer.outputs, layer.params) for layer in prepared.layers]
    rewritten = rewrite(prepared)
    np.testing.assert_array_equal(_outputs(rewritten, images), before)
    # a pass returns a new graph and leaves the one it was given alone
    assert [(layer.op, layer.inputs, layer.outputs, layer.params) for layer in prepared.layers] == snapshot


def test_run_passes_on_the_seed_model():
    graph = passes.run_passes(lower_tflite(model_zoo.seed_model_tflite()))
    assert [(layer.name, layer.op) for layer in graph.layers] == [
        ("conv2d_0", "conv2d_max_pool"),
        ("conv2d_1", "conv2d_max_pool"),
        ("fully_connected_0", "fully_connected"),
        ("fully_connected_1", "fully_connected"),
        ("fully_connected_2", "fully_connected"),
        ("softmax_0", "softmax"),
    ]
    assert [graph.tensors[layer.output].shape for layer in graph.layers] == [
        (13, 13, 32), (5, 5, 64), (128,), (64,), (10,), (10,)
    ]
    assert sum(layer.parameter_count() for layer in graph.layers) == 232_650
    # every layer of the seed model reads all its input positions: the offsets all fold into biases
    assert all(getattr(layer.params, "input_offset", 0) == 0 for layer in graph.layers)
    fused = graph.layers[0]
    assert [ref.builtin for ref in fused.source] == ["CONV_2D", "MAX_POOL_2D"]
    assert fused.params.output_height == 26 and fused.pool_params.output_height == 13


def test_drop_noop_reshapes_aliases_the_tensor():
    graph = lower_tflite(model_zoo.seed_model_tflite())
    reshape = next(layer for layer in graph.layers if layer.op == "reshape")
    rewritten = passes.drop_noop_reshapes(graph)
    assert all(layer.op != "reshape" for layer in rewritten.layers)
    assert reshape.output not in rewritten.tensors
    reader = next(layer for layer in rewritten.layers if layer.op == "fully_connected")
    assert reader.inputs == reshape.inputs


def test_reshape_writing_the_graph_output_is_kept():
    graph = lower_tflite(model_zoo.seed_model_tflite())
    cut = [layer.op for layer in graph.layers].index("reshape") + 1
    truncated = graph.replace(layers=graph.layers[:cut], output=graph.layers[cut - 1].output)
    assert passes.drop_noop_reshapes(truncated).layers[-1].op == "reshape"


def test_conv_read_twice_is_not_fused():
    graph = passes.drop_noop_reshapes(lower_tflite(model_zoo.seed_model_tflite()))
    conv = graph.layers[0]
    # a second reader of the conv output (never executed here, only structure matters)
    extra = dataclasses.replace(graph.layers[1], name="max_pool_extra", outputs=("extra",))
    branched = graph.replace(layers=[graph.layers[0], graph.layers[1], extra, *graph.layers[2:]])
    fused = passes.fuse_conv2d_max_pool(branched)
    assert fused.layers[0].op == "conv2d" and fused.layers[0].output == conv.output


def test_padded_convolutions_keep_their_input_offset():
    graph = passes.run_passes(lower_tflite(model_zoo.second_model_tflite()))
    by_name = {layer.name: layer for layer in graph.layers}
    # SAME, stride 2 on 28 rows: the last window row hangs over the bottom edge (padding after).
    assert by_name["conv2d_0"].params.input_offset != 0
    assert by_name["depthwise_conv2d_0"].params.input_offset != 0  # SAME, pad 1 all around
    assert by_name["conv2d_1"].params.input_offset == 0  # VALID
    assert all(layer.params.input_offset == 0 for layer in graph.layers if layer.op == "fully_connected")


def test_fold_changes_the_bias_exactly():
    graph = passes.fuse_conv2d_max_pool(passes.drop_noop_reshapes(lower_tflite(model_zoo.seed_model_tflite())))
    folded = passes.fold_input_offset_into_bias(graph)
    for before, after in zip(graph.layers, folded.layers):
        if "filter" not in before.constants:
            continue
        offset = before.params.input_offset
        sums = before.constants["filter"].astype(np.int64).reshape(before.constants["filter"].shape[0], -1).sum(axis=1)
        np.testing.assert_array_equal(after.constants["bias"], before.constants["bias"] + offset * sums)
        np.testing.assert_array_equal(after.constants["filter"], before.constants["filter"])


def _conv_then_pool(bias: int) -> "Graph":
    """input (2, 1, 1) -> 1x1 conv (weight 1, multiplier 2^30 with shift 1: x2 x 0.5) -> 2x1 max pool."""
    from si4tool.compiler.ir import Graph, Layer, OperatorRef, TensorInfo
    from si4tool.compiler.ops.conv2d import Conv2DParams
    from si4tool.compiler.ops.pooling import PoolParams

    tensors = {name: TensorInfo(name, shape, 1.0, 0, i) for i, (name, shape) in enumerate(
        [("x", (2, 1, 1)), ("conv", (2, 1, 1)), ("pool", (1, 1, 1))])}  # fmt: skip
    conv = Layer(
        "conv2d_0", "conv2d", (OperatorRef("CONV_2D", 0, "conv"),), ("x",), ("conv",),
        Conv2DParams(2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, -128, 127, 0),
        {"filter": np.ones((1, 1, 1, 1), np.int8), "bias": np.array([bias], np.int32),
         "output_multiplier": np.array([1 << 30], np.int32), "output_shift": np.array([1], np.int32)},
    )  # fmt: skip
    pool = Layer(
        "max_pool_0", "max_pool", (OperatorRef("MAX_POOL_2D", 1, "pool"),), ("conv",), ("pool",),
        PoolParams(2, 1, 1, 1, 1, 2, 1, 2, 1, 0, 0, -128, 127),
    )
    return Graph([conv, pool], tensors, "x", "pool")


def test_fusion_needs_a_bound_that_rules_out_int32_wrap():
    """acc << 1 wraps for accumulators of 2^30 or more: pooling accumulators then picks the wrong one."""
    import kernel_lib

    risky = _conv_then_pool(bias=(1 << 30) - 50)
    image = np.array([100, -100], dtype=np.int8)  # accumulators 2^30 + 50 (wraps) and 2^30 - 150
    expected = model_zoo.reference_forward(risky, image)["pool"]  # conv, then pool: what TFLM computes
    assert expected.tolist() == [127]
    conv, pool = risky.layers
    fused_kernel = kernel_lib.conv2d_max_pool_s8(conv.params, pool.params, image, **{
        "filter": conv.constants["filter"], "bias": conv.constants["bias"],
        "output_multiplier": conv.constants["output_multiplier"], "output_shift": conv.constants["output_shift"]})  # fmt: skip
    assert fused_kernel.reshape(-1).tolist() == [-128]  # why the pass must not fuse this one
    assert [layer.op for layer in passes.fuse_conv2d_max_pool(risky).layers] == ["conv2d", "max_pool"]
    safe = _conv_then_pool(bias=1000)
    fused = passes.fuse_conv2d_max_pool(safe)
    assert [layer.op for layer in fused.layers] == ["conv2d_max_pool"]
    assert np.array_equal(model_zoo.reference_forward(fused, image)["pool"], model_zoo.reference_forward(safe, image)["pool"])
