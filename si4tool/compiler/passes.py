"""Named rewrites of the si4 IR, run in the order of PASSES.

Each pass takes a Graph and returns a new Graph that computes bit for bit the
same output (the tests run the NumPy reference kernels before and after each
pass). A pass never mutates the graph it is given.

How to add a pass: write `def my_pass(graph: Graph) -> Graph`, add it to
PASSES at the right place, and add a test in tests/test_passes.py that checks
both the rewrite and that the outputs are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from si4tool.compiler import quant_math
from si4tool.compiler.ir import Graph, Layer


def drop_noop_reshapes(graph: Graph) -> Graph:
    """Remove RESHAPE layers: an NHWC tensor is contiguous, so a reshape changes only its shape.

    The reshape's output becomes an alias of its input: every later reader
    reads the input tensor directly. A reshape that produces the graph output
    is kept (the caller's output buffer must still be written).
    """
    layers: list[Layer] = []
    renamed: dict[str, str] = {}
    for layer in graph.layers:
        layer_input = renamed.get(layer.input, layer.input)
        if layer.op == "reshape" and layer.output != graph.output:
            renamed[layer.output] = layer_input
            continue
        layers.append(dataclasses.replace(layer, input=layer_input))
    tensors = {name: info for name, info in graph.tensors.items() if name not in renamed}
    return graph.replace(layers=layers, tensors=tensors)


def fuse_conv2d_max_pool(graph: Graph) -> Graph:
    """Fuse a conv2d and the max_pool that reads it into one conv2d_max_pool layer.

    The fused kernel (si4_conv2d_max_pool_s8) pools the int32 accumulators
    and requantizes once per pooled output, so the full-resolution
    convolution output never exists in RAM. Exact because requantization with
    a non-negative multiplier, the offset and both clamps are monotonic
    non-decreasing; the kernel clips pool windows at the borders as TFLM's
    MaxPool does and applies the pool's own clamp after the conv's. Only
    done when nothing else reads the conv output.
    """
    layers: list[Layer] = []
    index = 0
    while index < len(graph.layers):
        layer = graph.layers[index]
        following = graph.layers[index + 1] if index + 1 < len(graph.layers) else None
        if (
            layer.op == "conv2d"
            and following is not None
            and following.op == "max_pool"
            and following.input == layer.output
            and layer.output != graph.output
            and len(graph.consumers(layer.output)) == 1
            and all(m >= 0 for m in layer.constants["output_multiplier"])
        ):
            layers.append(
                dataclasses.replace(
                    layer,
                    op="conv2d_max_pool",
                    source=layer.source + following.source,
                    output=following.output,
                    pool_params=dict(following.params),
                )
            )
            index += 2
            continue
        layers.append(layer)
        index += 1
    used = {graph.input, graph.output} | {layer.input for layer in layers} | {layer.output for layer in layers}
    tensors = {name: info for name, info in graph.tensors.items() if name in used}
    return graph.replace(layers=layers, tensors=tensors)


def _reads_every_input_position(layer: Layer) -> bool:
    """True when no filter tap ever falls on padding, so every tap sees input_offset."""
    p = layer.params
    if layer.op == "fully_connected":
        return True
    if layer.op not in ("conv2d", "conv2d_max_pool", "depthwise_conv2d"):
        return False
    for axis, kernel in (("height", "kernel_height"), ("width", "kernel_width")):
        effective_kernel = (p[kernel] - 1) * p[f"dilation_{axis}"] + 1
        if (p[f"output_{axis}"] - 1) * p[f"stride_{axis}"] + effective_kernel > p[f"input_{axis}"]:
            return False
    return p["pad_top"] == 0 and p["pad_left"] == 0


def fold_input_offset_into_bias(graph: Graph) -> Graph:
    """bias[c] += input_offset * sum(filter[c]); input_offset becomes 0.

    The kernel computes sum((x + input_offset) * w) + bias; with every tap on
    real input this equals sum(x * w) + (bias + input_offset * sum(w)), exactly,
    in int32. Not done when a tap can fall on padding: TFLM skips padded
    positions, so their offset term is absent there. Skipped too if the new
    bias would not fit in int32.
    """
    layers: list[Layer] = []
    for layer in graph.layers:
        offset = layer.params.get("input_offset", 0)
        if offset == 0 or not _reads_every_input_position(layer):
            layers.append(layer)
            continue
        weights = layer.constants["filter"].astype(np.int64)
        if layer.op == "depthwise_conv2d":
            # [1][kh][kw][output_channels]: output channel c reads input channel c // depth_multiplier.
            filter_sums = weights.reshape(-1, weights.shape[-1]).sum(axis=0)
        else:
            filter_sums = weights.reshape(weights.shape[0], -1).sum(axis=1)
        bias = layer.constants["bias"].astype(np.int64) + offset * filter_sums
        if bias.min() < quant_math.INT32_MIN or bias.max() > quant_math.INT32_MAX:
            layers.append(layer)
            continue
        constants = dict(layer.constants, bias=bias.astype(np.int32))
        params = dict(layer.params, input_offset=0)
        layers.append(dataclasses.replace(layer, params=params, constants=constants))
    return graph.replace(layers=layers)


# The passes, in the order they run.
PASSES: list[tuple[str, Callable[[Graph], Graph]]] = [
    ("drop_noop_reshapes", drop_noop_reshapes),
    ("fuse_conv2d_max_pool", fuse_conv2d_max_pool),
    ("fold_input_offset_into_bias", fold_input_offset_into_bias),
]


def run_passes(graph: Graph, passes: list[tuple[str, Callable[[Graph], Graph]]] | None = None) -> Graph:
    for _name, rewrite in PASSES if passes is None else passes:
        graph = rewrite(graph)
    return graph
