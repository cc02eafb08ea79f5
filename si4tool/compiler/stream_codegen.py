"""model.c for row-streamed chains (schedule.RowStream): the values templates/model_stream.c.j2 places.

Kept apart from codegen.py so the layer-by-layer rendering is untouched: codegen builds its
per-layer entries as always, and apply_row_streams replaces the entries of a stream's layers (its
inner layers become empty functions, its last layer's function runs the whole chain).
"""

from __future__ import annotations

from si4tool.compiler import ops
from si4tool.compiler.codegen import (
    ModelNames,
    _arena_pointer,
    _array_name,
    _buffer_expression,
    _macro_prefix,
    _struct,
    c_comment_text,
    c_int,
)
from si4tool.compiler.ir import Graph
from si4tool.compiler.ops import c_struct_name, params_fields
from si4tool.compiler.planner import MemoryPlan
from si4tool.compiler.schedule import RowStream


def _literal_struct(name: str, params) -> dict:
    """A params struct written with its values (a band's struct differs from the layer's macros)."""
    fields = [(field, c_int(value)) for field, value in params_fields(params)]
    return {"c_type": c_struct_name(type(params)), "name": name, "fields": fields}


def _constants(graph: Graph, index: int, names: ModelNames) -> str:
    layer = graph.layers[index]
    return ", ".join(_array_name(layer, key, names) for key, _ in ops.spec(layer.op).layer_constants(layer))


def _stream_entry(graph: Graph, plan: MemoryPlan, stream: RowStream, function: str, names: ModelNames) -> dict:
    a, b, f = (graph.layers[i] for i in (stream.producer, stream.consumer, stream.dense))
    buffers = stream.buffer_names(graph)
    offsets = {key: plan.allocations[name].offset for key, name in buffers.items()}
    # The producer's bands, one struct per distinct band (the interior rows share one).
    band_structs: list[dict] = []
    band_names: dict = {}
    band_refs = []
    for band in stream.producer_bands:
        if band.conv not in band_names:
            band_names[band.conv] = f"{a.name}_band_{len(band_names)}_params"
            band_structs.append(_literal_struct(band_names[band.conv], band.conv))
        band_refs.append(f"&{band_names[band.conv]}")
    band_pools = {band.pool for band in stream.producer_bands}
    assert len(band_pools) == 1, "every producer band pools one row the same way"
    a_input = graph.tensors[a.inputs[0]]
    input_row_bytes = a_input.shape[1] * (a_input.shape[2] if len(a_input.shape) > 2 else 1)
    structs = band_structs + [_literal_struct(f"{a.name}_band_pool_params", band_pools.pop())]
    if stream.split_windows:
        structs += [
            _literal_struct(f"{b.name}_row_params", stream.row_conv),
            _literal_struct(f"{b.name}_row_pool_params", stream.row_pool),
        ]
    structs += [
        _literal_struct(f"{b.name}_pixel_params", stream.pixel_conv),
        _literal_struct(f"{b.name}_pixel_pool_params", stream.pixel_pool),
        _struct(f"{f.name}_params", _macro_prefix(f, names), f.params),
    ]
    return {
        "function": function,
        "name": f.name,
        "description": c_comment_text(
            f"{a.name} -> {b.name} -> {f.name}, {stream.schedule}: {f.describe_source()}"
        ),
        "structs": structs,
        "stream": {
            "producer": a.name,
            "consumer": b.name,
            "dense": f.name,
            "band_refs": band_refs,
            "band_input_offsets": [band.input_row * input_row_bytes for band in stream.producer_bands],
            "band_count": len(stream.producer_bands),
            "producer_input": _buffer_expression(graph, plan, a.inputs[0], names),
            "producer_constants": _constants(graph, stream.producer, names),
            "consumer_constants": _constants(graph, stream.consumer, names),
            "dense_filter": _array_name(f, "filter", names),
            "dense_finish_constants": ", ".join(
                _array_name(f, key, names) for key in ("bias", "output_multiplier", "output_shift")
            ),
            "dense_output": _buffer_expression(graph, plan, f.output, names),
            "ring": _arena_pointer(offsets["ring"], names),
            "split_windows": stream.split_windows,
            "pooled_row": _arena_pointer(offsets["pooled_row"], names) if stream.split_windows else None,
            "pixel": _arena_pointer(offsets["pixel"], names),
            "sums": _arena_pointer(offsets["sums"], names),
            "ring_rows": stream.ring_rows,
            "ring_row_bytes": stream.ring_row_bytes,
            "steps": stream.steps,
            "ring_advance": stream.ring_advance,
            "pool_rows": stream.pool_filter_height,
            "pooled_width": stream.pooled_width,
            "pixel_bytes": stream.pixel_bytes,
            "pixel_input_step": stream.pixel_input_step,
            "pooled_row_bytes": stream.pooled_row_bytes,
        },
        "unused": [name for name, used in (("input", a.inputs[0] == graph.input), ("output", f.output in graph.outputs)) if not used],
        "call": None,
        "aliases": None,
        "streamed": None,
        "in_place": None,
    }


def apply_row_streams(graph: Graph, plan: MemoryPlan, model_layers: list[dict], names: ModelNames) -> list[dict]:
    entries = list(model_layers)
    for stream in plan.streams:
        function = entries[stream.dense]["function"]
        for index in stream.streamed_layers:
            entries[index] = {
                **entries[index],
                "structs": [],
                "unused": ["input", "output"],
                "call": None,
                "aliases": None,
                "stream": None,
                "in_place": None,
                "streamed": c_comment_text(f"streamed: computed row by row inside {function}, never materialised"),
            }
        entries[stream.dense] = _stream_entry(graph, plan, stream, function, names)
    return entries


def apply_in_place(graph: Graph, plan: MemoryPlan, model_layers: list[dict], names: ModelNames) -> list[dict]:
    """Replace the entries of schedule.InPlaceLayer layers: a loop of row-band kernel calls (or
    of si4_depthwise_conv2d_pixel_s8 calls, one per output pixel) into a ring of output units,
    each copied over its input's bytes once no later unit reads them."""
    entries = list(model_layers)
    for in_place in plan.in_place:
        layer = graph.layers[in_place.index]
        spec = ops.spec(layer.op)
        structs, band_names, refs = [], {}, []
        if in_place.pixel_bands:  # the whole layer's params: the pixel kernel takes the position
            structs.append(_literal_struct(f"{layer.name}_params", layer.params))
        for band in in_place.bands:
            if band.params not in band_names:
                band_names[band.params] = f"{layer.name}_band_{len(band_names)}_params"
                structs.append(_literal_struct(band_names[band.params], band.params))
            refs.append(f"&{band_names[band.params]}")
        entries[in_place.index] = {
            **entries[in_place.index],
            "structs": structs,
            "unused": ["input", "output"],
            "call": None,
            "in_place": {
                "kernel": spec.kernel_for(layer),
                "band_type": c_struct_name(type(layer.params)),
                "band_refs": refs,
                "band_input_offsets": [band.input_row * in_place.input_row_bytes for band in in_place.bands],
                "reverse": in_place.reverse,
                "pixel_bands": in_place.pixel_bands,
                "delay": in_place.delay,
                "rows": in_place.units,
                "output_width": in_place.output_width,
                "params": f"&{layer.name}_params",
                "map": _arena_pointer(plan.allocations[layer.inputs[0]].offset, names),
                "ring": _arena_pointer(plan.allocations[in_place.buffer_name(graph)].offset, names),
                "temp_rows": in_place.temp_rows,
                "row_bytes": in_place.row_bytes,
                "unit_rows": in_place.unit_rows,
                "long_units": in_place.long_units,
                "output_row_bytes": in_place.output_row_bytes,
                "constants": _constants(graph, in_place.index, names),
                "name": layer.name,
            },
        }
    return entries


def apply_input_in_arena(graph: Graph, plan: MemoryPlan, model_layers: list[dict], names: ModelNames) -> list[dict]:
    """An input-in-the-arena plan: the first layer (the input's only reader) starts by copying the
    caller's input to its arena bytes, unless the caller passed those bytes (it wrote the input at
    <MACRO>_INPUT_ARENA_OFFSET), and reads it there; a first layer run in place then writes over it."""
    entries = list(model_layers)
    entries[0] = {
        **entries[0],
        "load_input": {
            "slot": _arena_pointer(plan.allocations[graph.input].offset, names),
            "bytes": graph.tensors[graph.input].size_bytes,
        },
    }
    return entries
