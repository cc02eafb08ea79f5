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

from si4tool.compiler import ops, quant_math
from si4tool.compiler.ir import Graph, Layer
from si4tool.compiler.ops.conv2d_max_pool import fusion_is_exact


def drop_noop_reshapes(graph: Graph) -> Graph:
    """Remove shape-only layers (RESHAPE, SQUEEZE, EXPAND_DIMS): a tensor is contiguous, so they
    change only its shape.

    The layer's output becomes an alias of its input: every later reader reads the input
    tensor directly. One that produces the graph output is kept (the caller's output buffer
    must still be written).
    """
    layers: list[Layer] = []
    renamed: dict[str, str] = {}
    for layer in graph.layers:
        inputs = tuple(renamed.get(name, name) for name in layer.inputs)
        if ops.spec(layer.op).shape_only and layer.output not in graph.outputs:
            renamed[layer.output] = inputs[0]
            continue
        layers.append(dataclasses.replace(layer, inputs=inputs))
    tensors = {name: info for name, info in graph.tensors.items() if name not in renamed}
    return graph.replace(layers=layers, tensors=tensors)


def fuse_conv2d_max_pool(graph: Graph) -> Graph:
    """Fuse a conv2d and the max_pool that is its only reader into one conv2d_max_pool layer.

    The fused kernel (si4_conv2d_max_pool_s8) pools the int32 accumulators and requantizes
    once per pooled output, so the full-resolution convolution output never exists in RAM.
    That is exact while requantization is monotonic non-decreasing: a non-negative
    multiplier, and no int32 wrap in `acc << left_shift` or the zero-point addition, which
    ops.conv2d_max_pool.fusion_is_exact proves from a static bound on the accumulators
    (bias, weights, every input in [-128, 127]); otherwise the two layers stay. The kernel
    clips pool windows at the borders as TFLM's MaxPool does and applies the pool's own clamp
    after the conv's. The fused layer takes the conv's place in the order.
    """
    fused: dict[int, Layer] = {}  # conv index -> fused layer
    dropped: set[int] = set()  # pool indices
    for index, layer in enumerate(graph.layers):
        if layer.op != "conv2d" or layer.output in graph.outputs:
            continue
        readers = [i for i, other in enumerate(graph.layers) if layer.output in other.inputs]
        if len(readers) != 1 or graph.layers[readers[0]].op != "max_pool" or not fusion_is_exact(layer):
            continue
        pool = graph.layers[readers[0]]
        fused[index] = dataclasses.replace(
            layer, op="conv2d_max_pool", source=layer.source + pool.source, outputs=pool.outputs, pool_params=pool.params
        )
        dropped.add(readers[0])
    layers = [fused.get(index, layer) for index, layer in enumerate(graph.layers) if index not in dropped]
    used = {graph.input, *graph.outputs} | {t for layer in layers for t in (*layer.inputs, *layer.outputs)}
    tensors = {name: info for name, info in graph.tensors.items() if name in used}
    return graph.replace(layers=layers, tensors=tensors)


def _reads_every_input_position(layer: Layer) -> bool:
    """True when no filter tap ever falls on padding, so every tap sees input_offset."""
    p = layer.params
    if layer.op == "fully_connected":
        return True
    if layer.op not in ("conv2d", "conv2d_max_pool", "depthwise_conv2d"):
        return False
    for axis in ("height", "width"):
        kernel = getattr(p, f"kernel_{axis}")
        effective_kernel = (kernel - 1) * getattr(p, f"dilation_{axis}") + 1
        if (getattr(p, f"output_{axis}") - 1) * getattr(p, f"stride_{axis}") + effective_kernel > getattr(p, f"input_{axis}"):
            return False
    return p.pad_top == 0 and p.pad_left == 0


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
        offset = getattr(layer.params, "input_offset", 0)
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
        params = dataclasses.replace(layer.params, input_offset=0)
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
        graph.check_order()
    return graph
