"""model.c for streamed schedules (schedule.RowStream, ResidualStream, ChainStream) and in-place
layers: the values templates/model_stream.c.j2, model_residual.c.j2, model_chain.c.j2 and
model_in_place.c.j2 place.

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
from si4tool.compiler.schedule import ChainStream, ResidualStream, RowStream


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

    def band_ref(params, kind: str = "band") -> str:
        if params not in band_names:
            band_names[params] = f"{a.name}_{kind}_{len(band_names)}_params"
            band_structs.append(_literal_struct(band_names[params], params))
        return f"&{band_names[params]}"

    band_refs = [] if stream.strips else [band_ref(band.conv) for band in stream.producer_bands]
    band_pools = {band.pool for band in stream.producer_bands}
    assert len(band_pools) == 1, "every producer band pools one row the same way"
    strips = []
    for strip in stream.strips:  # column strips: A's bands and B's pixel params per strip
        pools = {band.pool for band in strip.producer_bands}
        assert len(pools) == 1, "every producer band of a strip pools one row the same way"
        strips.append({
            "band_refs": [band_ref(band.conv) for band in strip.producer_bands],
            "pool": band_ref(pools.pop(), "strip_pool"),
            "pixel": band_ref(strip.pixel_conv, "strip_pixel"),
            "input_offset": strip.input_offset,
            "first_x": strip.first_x,
            "pixels": strip.pixels,
            "row_bytes": strip.ring_row_bytes,
        })
    a_input = graph.tensors[a.inputs[0]]
    input_row_bytes = a_input.shape[1] * (a_input.shape[2] if len(a_input.shape) > 2 else 1)
    structs = list(band_structs)  # column strips: each strip's pool and pixel params are among them
    if not stream.strips:
        structs.append(_literal_struct(f"{a.name}_band_pool_params", band_pools.pop()))
    if stream.split_windows:
        structs += [
            _literal_struct(f"{b.name}_row_params", stream.row_conv),
            _literal_struct(f"{b.name}_row_pool_params", stream.row_pool),
        ]
    if not stream.strips:
        structs.append(_literal_struct(f"{b.name}_pixel_params", stream.pixel_conv))
    structs += [
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
            "strips": strips,
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


def _runs_its_own_loop() -> dict:
    """The entry keys of the other forms, empty in an entry whose template runs a stream's own loop."""
    return {"unused": ["input", "output"], "call": None, "aliases": None, "streamed": None, "stream": None,
            "in_place": None}


def _band_table(layer_name: str, bands, row_bytes: int, structs: list[dict]) -> dict:
    """One struct per distinct schedule.RowBand (the interior rows share one), appended to
    `structs`, and the tables of references and first-byte offsets the templates index by unit."""
    names: dict = {}
    refs = []
    for band in bands:
        if band.params not in names:
            names[band.params] = f"{layer_name}_band_{len(names)}_params"
            structs.append(_literal_struct(names[band.params], band.params))
        refs.append(f"&{names[band.params]}")
    return {"refs": refs, "offsets": [band.input_row * row_bytes for band in bands], "count": len(bands)}


def _residual_entry(graph: Graph, plan: MemoryPlan, stream: ResidualStream, function: str, names: ModelNames) -> dict:
    a, b, add = (graph.layers[i] for i in (stream.conv_a, stream.conv_b, stream.add))
    skip = None if stream.skip is None else graph.layers[stream.skip]
    buffers = {key: _arena_pointer(plan.allocations[name].offset, names) for key, name in stream.buffer_names(graph).items()}
    structs: list[dict] = []
    a_table = _band_table(a.name, stream.a_bands, stream.x_row_bytes, structs)
    b_table = _band_table(b.name, stream.b_bands, stream.y_row_bytes, structs)
    skip_table = None if skip is None else _band_table(skip.name, stream.skip_bands, stream.x_row_bytes, structs)
    structs.append(_literal_struct(f"{add.name}_row_params", stream.add_row_params))
    x = a.inputs[0]
    row_inputs = []  # the ADD's two inputs, in its order, as one row's pointers
    for tensor in add.inputs:
        if tensor == x:
            row_inputs.append(f"x + row * {stream.x_row_bytes}")
        elif skip is not None and tensor == skip.output:
            row_inputs.append("skip_row")
        else:
            row_inputs.append("main_row")
    return {
        "function": function,
        "name": add.name,
        "description": c_comment_text(
            f"{a.name} -> {b.name}{'' if skip is None else ' and ' + skip.name} -> {add.name}, {stream.schedule}: "
            f"{add.describe_source()}"
        ),
        "structs": structs,
        "residual": {
            "conv_a": a.name,
            "conv_b": b.name,
            "skip": None if skip is None else skip.name,
            "a_kernel": ops.spec(a.op).kernel_for(a),
            "b_kernel": ops.spec(b.op).kernel_for(b),
            "skip_kernel": None if skip is None else ops.spec(skip.op).kernel_for(skip),
            "a": a_table,
            "b": b_table,
            "skip_bands": skip_table,
            "b_ring_first": [band.input_row for band in stream.b_bands],
            "b_needs": stream.rows_needed(),
            "a_constants": _constants(graph, stream.conv_a, names),
            "b_constants": _constants(graph, stream.conv_b, names),
            "skip_constants": None if skip is None else _constants(graph, stream.skip, names),
            "x": _buffer_expression(graph, plan, x, names),
            "out": _buffer_expression(graph, plan, add.output, names),
            "ring": buffers["ring"],
            "main_row": buffers["main_row"],
            "skip_row": buffers.get("skip_row"),
            "ring_rows": stream.ring_rows,
            "y_row_bytes": stream.y_row_bytes,
            "out_row_bytes": stream.out_row_bytes,
            "rows": len(stream.b_bands),
            "add_inputs": row_inputs,
        },
        **_runs_its_own_loop(),
    }


def _chain_entry(graph: Graph, plan: MemoryPlan, stream: ChainStream, function: str, names: ModelNames) -> dict:
    chain = [graph.layers[index] for index in stream.layers]
    buffers = {key: _arena_pointer(plan.allocations[name].offset, names) for key, name in stream.buffer_names(graph).items()}
    rings = [buffers[stream.ring_key(i)] for i in range(len(chain) - 1)]
    structs: list[dict] = []
    steps = []
    for position, (layer, bands) in enumerate(zip(chain, stream.bands)):
        reads_ring = position > 0
        if stream.pool_sink and position == len(chain) - 1:  # no band calls: the sink sums rows
            structs.append(_struct(f"{layer.name}_params", _macro_prefix(layer, names), layer.params))
            table = {"refs": [], "offsets": [], "count": len(bands)}
        else:
            table = _band_table(layer.name, bands, stream.row_bytes[position - 1] if reads_ring else stream.input_row_bytes, structs)
        steps.append({
            "name": layer.name,
            "kernel": ops.spec(layer.op).kernel_for(layer),
            "band_type": c_struct_name(type(layer.params)),
            "bands": table,
            "first_rows": [band.input_row for band in bands],
            "rows_needed": list(stream.rows_needed[position - 1]) if reads_ring else None,
            "constants": _constants(graph, stream.layers[position], names),
            "ring": rings[position] if position < len(rings) else None,
            "ring_rows": stream.ring_rows[position] if position < len(rings) else None,
            "row_bytes": stream.row_bytes[position],
            "rows": len(bands),
        })
    last = chain[-1]
    return {
        "function": function,
        "name": last.name,
        "description": c_comment_text(
            f"{' -> '.join(layer.name for layer in chain)}, {stream.schedule}: {last.describe_source()}"
        ),
        "structs": structs,
        "chain": {
            "steps": steps,
            "x": _buffer_expression(graph, plan, chain[0].inputs[0], names),
            "out": _buffer_expression(graph, plan, last.output, names),
            "over_input": stream.output_over_input,
            "sums": buffers.get("sums"),
            "sink_width": graph.tensors[last.inputs[0]].shape[1] if stream.pool_sink else None,
            "sink_channels": graph.tensors[last.output].shape[-1],
        },
        **_runs_its_own_loop(),
    }


def apply_row_streams(graph: Graph, plan: MemoryPlan, model_layers: list[dict], names: ModelNames) -> list[dict]:
    """Replace the entries of a stream's layers: its inner layers become empty functions, and the
    layer it runs at (a row stream's dense layer, a residual block's ADD) runs the whole chain."""
    entries = list(model_layers)
    for stream in plan.streams:
        function = entries[stream.runs_at]["function"]
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
        if isinstance(stream, ChainStream):
            entries[stream.runs_at] = _chain_entry(graph, plan, stream, function, names)
        elif isinstance(stream, ResidualStream):
            entries[stream.runs_at] = _residual_entry(graph, plan, stream, function, names)
        else:
            entries[stream.runs_at] = _stream_entry(graph, plan, stream, function, names)
    return entries


def apply_in_place(graph: Graph, plan: MemoryPlan, model_layers: list[dict], names: ModelNames) -> list[dict]:
    """Replace the entries of schedule.InPlaceLayer layers: a loop of row-band kernel calls (or
    of si4_depthwise_conv2d_pixel_s8 calls, one per output pixel) into a ring of output units,
    each copied over its input's bytes once no later unit reads them."""
    entries = list(model_layers)
    for in_place in plan.in_place:
        layer = graph.layers[in_place.index]
        spec = ops.spec(layer.op)
        structs = []
        if in_place.pixel_bands:  # the whole layer's params: the pixel kernel takes the position
            structs.append(_literal_struct(f"{layer.name}_params", layer.params))
        bands = _band_table(layer.name, in_place.bands, in_place.input_row_bytes, structs)
        entries[in_place.index] = {
            **entries[in_place.index],
            "structs": structs,
            "unused": ["input", "output"],
            "call": None,
            "in_place": {
                "kernel": spec.kernel_for(layer),
                "band_type": c_struct_name(type(layer.params)),
                "band_refs": bands["refs"],
                "band_input_offsets": bands["offsets"],
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
