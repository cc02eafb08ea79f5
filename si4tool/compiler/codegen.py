"""Render the planned IR into model.h / model.c / model_weights.h / model_weights.c.

All arithmetic happens here; the templates only place values into C that
reads like the C they produce. model.c is the network as a straight
sequence of kernel calls (one static function per layer) over one static
arena; model_weights.* hold every constant as a const (flash) array or macro.
"""

from __future__ import annotations

import numpy as np

from si4tool.compiler import ops
from si4tool.compiler.ir import Graph, Layer
from si4tool.compiler.ops import CallBuffers, c_struct_name, params_fields
from si4tool.compiler.planner import ARENA_ALIGNMENT, MemoryPlan, scratch_name
from si4tool.render import generated_banner, render_template


def c_int(value: int) -> str:
    """An integer for a macro body: negative values parenthesised so the macro expands safely."""
    value = int(value)
    if value == -(1 << 31):
        return "(-2147483647 - 1)"
    return f"({value})" if value < 0 else str(value)


def c_float(value: float) -> str:
    """A float literal that round-trips the float32 value."""
    text = f"{float(np.float32(value)):.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def c_comment_text(text: str) -> str:
    """Text safe inside a /* */ comment: TFLite tensor names are arbitrary strings.

    Non-ASCII and control characters become "_", and so does "?" (C99
    trigraphs like "??/" would otherwise be live, even in comments).
    """
    safe = "".join(ch if ch.isprintable() and ord(ch) < 128 and ch != "?" else "_" for ch in text)
    return safe.replace("*/", "*_/").replace("/*", "/_*")


def _macro_prefix(layer: Layer) -> str:
    return f"SI4_{layer.name.upper()}"


def _array_name(layer: Layer, key: str) -> str:
    return f"si4_{layer.name}_{key}"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _input_macros(prefix: str, graph: Graph, layer: Layer) -> list[tuple[str, str]]:
    """Zero point and size of each input: INPUT_* for the first, INPUT2_* ... for the others."""
    macros = []
    for position, tensor in enumerate(layer.inputs):
        info = graph.tensors[tensor]
        stem = "INPUT" if position == 0 else f"INPUT{position + 1}"
        macros += [(f"{prefix}_{stem}_ZERO_POINT", c_int(info.zero_point)), (f"{prefix}_{stem}_SIZE", c_int(info.size_bytes))]
    return macros


def _weights_layer(graph: Graph, layer: Layer) -> dict:
    """What model_weights.h/.c say about one layer: macros and const arrays."""
    prefix = _macro_prefix(layer)
    output = graph.tensors[layer.output]
    macros = []
    if layer.params is not None:
        macros += [(f"{prefix}_{name.upper()}", c_int(value)) for name, value in params_fields(layer.params)]
    if layer.pool_params is not None:
        macros += [(f"{prefix}_POOL_{name.upper()}", c_int(value)) for name, value in params_fields(layer.pool_params)]
    defined = {name for name, _ in macros}
    inputs = _input_macros(prefix, graph, layer)
    sizes = [
        (f"{prefix}_OUTPUT_ZERO_POINT", c_int(output.zero_point)),
        (f"{prefix}_OUTPUT_SIZE", c_int(output.size_bytes)),
    ]
    # The first input's zero point before the output's, then the sizes (a fully-connected
    # layer's params already say its sizes).
    ordered = inputs[:1] + sizes[:1] + inputs[1:2] + sizes[1:] + inputs[2:]
    macros += [(name, value) for name, value in ordered if name not in defined]
    arrays = []
    for key, c_type in ops.spec(layer.op).constants:
        values = layer.constants[key]
        size_macro = f"{prefix}_{key.upper()}_SIZE"
        macros.append((size_macro, c_int(values.size)))
        arrays.append({"c_type": c_type, "name": _array_name(layer, key), "size_macro": size_macro, "data": values})
    shapes = ", ".join(_shape_text(graph.tensors[tensor].shape) for tensor in layer.inputs)
    return {
        "name": layer.name,
        "description": c_comment_text(f"{layer.op}: {layer.describe_source()}"),
        "shapes": f"{shapes} -> {_shape_text(output.shape)}",
        "macros": macros,
        "arrays": arrays,
    }


def _struct(name: str, prefix: str, params) -> dict:
    fields = [(field, f"{prefix}_{field.upper()}") for field, _ in params_fields(params)]
    return {"c_type": c_struct_name(type(params)), "name": name, "fields": fields}


ARENA_SYMBOL = "si4_model_arena"  # the one place model.c's arena pointers are spelled


def _arena_pointer(offset: int) -> str:
    return f"{ARENA_SYMBOL} + {offset}"


def _buffer_expression(graph: Graph, plan: MemoryPlan, tensor: str) -> str:
    if tensor == graph.input:
        return "input"
    if tensor == graph.output:
        return "output"
    return _arena_pointer(plan.allocations[tensor].offset)


def _model_layer(graph: Graph, plan: MemoryPlan, index: int, layer: Layer) -> dict:
    """What model.c says about one layer: its params structs and the kernel call."""
    spec = ops.spec(layer.op)
    prefix = _macro_prefix(layer)

    def buffer(tensor: str) -> str:
        return _buffer_expression(graph, plan, tensor)

    structs = []
    params = []
    if layer.params is not None:
        structs.append(_struct(f"{layer.name}_params", prefix, layer.params))
        params.append(f"&{layer.name}_params")
    if layer.pool_params is not None:
        structs.append(_struct(f"{layer.name}_pool_params", f"{prefix}_POOL", layer.pool_params))
        params.append(f"&{layer.name}_pool_params")
    scratch = plan.allocations.get(scratch_name(layer.name))
    buffers = CallBuffers(
        params=tuple(params),
        inputs=tuple(buffer(tensor) for tensor in layer.inputs),
        constants=tuple(_array_name(layer, key) for key, _ in spec.constants),
        scratch=None if scratch is None else _arena_pointer(scratch.offset),
        output=buffer(layer.output),
        size_macro=f"{prefix}_OUTPUT_SIZE",
    )
    call = spec.render_call(layer, buffers) if spec.render_call is not None else spec.default_call(buffers)
    used = set(buffers.inputs) | {buffers.output} if call is not None else set()
    return {
        "function": f"layer_{index}_{layer.op}",
        "name": layer.name,
        "description": c_comment_text(layer.describe_source()),
        "structs": structs,
        "unused": [name for name in ("input", "output") if name not in used],
        "call": call,
        "aliases": None if call is not None else c_comment_text(f"{layer.output} is {layer.inputs[0]}'s bytes"),
        "stream": None,  # a row-streamed chain's last layer (stream_codegen.py)
        "in_place": None,  # a layer run over its own input (stream_codegen.py)
        "streamed": None,  # a layer that runs inside such a chain
    }


def arena_declaration_bytes(plan: MemoryPlan) -> int:
    """C has no zero-length arrays: a model that needs no arena still declares one aligned block."""
    return max(plan.arena_bytes, ARENA_ALIGNMENT)


def _layer_output_offset(graph: Graph, plan: MemoryPlan, layer: Layer) -> int:
    """Where the layer's output lives: an arena offset, or -1 for the caller's output buffer
    (and for a streamed layer, whose output is never materialised: its size is 0)."""
    if layer.output == graph.output or layer.output not in plan.allocations:
        return -1
    return plan.allocations[layer.output].offset


def _layer_output_size(graph: Graph, plan: MemoryPlan, layer: Layer) -> int:
    """Bytes a tracer may read after the layer: 0 for a tensor a row-streamed schedule never materialises."""
    if layer.output != graph.output and layer.output not in plan.allocations:
        return 0
    return graph.tensors[layer.output].size_bytes


def _image_dimensions(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(height, width, channels) of the model input, for the SI4_MODEL_INPUT_* macros."""
    if len(shape) == 1:
        return 1, 1, shape[0]
    if len(shape) == 2:
        return shape[0], shape[1], 1
    return shape[0], shape[1], int(np.prod(shape[2:]))


def render_model_sources(graph: Graph, plan: MemoryPlan, model_sha256: str) -> dict[str, str]:
    """The four engine files, name -> text; the same inputs always give the same bytes."""
    banner = generated_banner(model_sha256)
    source = graph.tensors[graph.input]
    output = graph.tensors[graph.output]
    height, width, channels = _image_dimensions(source.shape)
    model = {
        "input_height": height,
        "input_width": width,
        "input_channels": channels,
        "input_size": source.size_bytes,
        "input_scale": c_float(source.scale),
        "input_zero_point": c_int(source.zero_point),
        "output_size": output.size_bytes,
        "output_scale": c_float(output.scale),
        "output_zero_point": c_int(output.zero_point),
        "arena_bytes": arena_declaration_bytes(plan),
        "arena_alignment": ARENA_ALIGNMENT,
        "layer_count": len(graph.layers),
        "sha256": model_sha256,
        "sha256_short": model_sha256[:8],
    }
    weights_layers = [_weights_layer(graph, layer) for layer in graph.layers]
    in_streams = {i for stream in plan.streams for i in (stream.producer, stream.consumer, stream.dense)}
    model_layers = [
        {"function": f"layer_{index}_{layer.op}", "name": layer.name, "description": c_comment_text(layer.describe_source())}
        if index in in_streams
        else _model_layer(graph, plan, index, layer)  # the stream's entries come from stream_codegen
        for index, layer in enumerate(graph.layers)
    ]
    if plan.streams:
        from si4tool.compiler.stream_codegen import apply_row_streams

        model_layers = apply_row_streams(graph, plan, model_layers)
    if plan.in_place:
        from si4tool.compiler.stream_codegen import apply_in_place

        model_layers = apply_in_place(graph, plan, model_layers)
    layer_table = [
        {
            "function": entry["function"],
            "name": layer.name,
            "output_offset": _layer_output_offset(graph, plan, layer),
            "output_size": _layer_output_size(graph, plan, layer),
        }
        for entry, layer in zip(model_layers, graph.layers)
    ]
    arena_map = [
        {"name": c_comment_text(name), "offset": a.offset, "size": a.size, "first": a.first_layer, "last": a.last_layer}
        for name, a in sorted(plan.allocations.items(), key=lambda item: (item[1].offset, item[1].first_layer))
    ]
    context = {
        "banner": banner,
        "model": model,
        "weights_layers": weights_layers,
        "model_layers": model_layers,
        "layer_table": layer_table,
        "arena_map": arena_map,
        "schedule": plan.schedule,
        "has_streams": bool(plan.streams),
        "has_in_place": bool(plan.in_place),
    }
    return {
        "model.h": render_template("model.h.j2", **context),
        "model.c": render_template("model.c.j2", **context),
        "model_weights.h": render_template("model_weights.h.j2", **context),
        "model_weights.c": render_template("model_weights.c.j2", **context),
    }


def layer_summaries(graph: Graph, plan: MemoryPlan) -> list[dict]:
    """One JSON-ready dict per layer, for the manifest and the reports."""
    summaries = []
    for index, layer in enumerate(graph.layers):
        allocation = plan.allocations.get(layer.output)
        scratch = plan.allocations.get(scratch_name(layer.name))
        summaries.append(
            {
                "index": index,
                "name": layer.name,
                "op": layer.op,
                "source": layer.describe_source(),
                "tflite_operators": [ref.index for ref in layer.source],
                "input": layer.inputs[0],
                "inputs": list(layer.inputs),
                "output": layer.output,
                "input_shape": list(graph.tensors[layer.inputs[0]].shape),
                "input_shapes": [list(graph.tensors[tensor].shape) for tensor in layer.inputs],
                "output_shape": list(graph.tensors[layer.output].shape),
                "parameters": layer.parameter_count(),
                "macs": ops.layer_macs(layer),
                "weight_bytes": layer.weight_bytes(),
                "output_bytes": graph.tensors[layer.output].size_bytes,
                "scratch_bytes": layer.scratch_bytes,
                "scratch_offset": scratch.offset if scratch is not None else None,
                "output_in": "arena" if allocation is not None else (
                    "caller's output buffer" if layer.output == graph.output else "streamed (never materialised)"
                ),
                "arena_offset": allocation.offset if allocation is not None else None,
                "arena_size": allocation.size if allocation is not None else 0,
                "live_range": [allocation.first_layer, allocation.last_layer] if allocation is not None else None,
            }
        )
    return summaries
