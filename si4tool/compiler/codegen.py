"""Render the planned IR into model.h / model.c / model_weights.h / model_weights.c.

All arithmetic happens here; the templates only place values into C that
reads like the C they produce. model.c is the network as a straight
sequence of kernel calls (one static function per layer, called once, so the
compiler inlines it) over one static arena; model_weights.* hold every constant
as a const (flash) array or macro. The per-layer tables for tracing and timing
layer by layer are compiled only with -DSI4_LAYER_TABLES (LAYER_TABLES_MACRO).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from si4tool.compiler import ops
from si4tool.compiler.ir import Graph, Layer
from si4tool.compiler.ops import CallBuffers, c_struct_name, params_fields
from si4tool.compiler.planner import ARENA_ALIGNMENT, MemoryPlan, scratch_name
from si4tool.errors import UserError
from si4tool.render import generated_banner, render_template

# C99's keywords, and C11's (a header must also compile as C11 and C++, so C++'s too).
C_KEYWORDS = frozenset(
    """auto break case char const continue default do double else enum extern float for goto if inline int long
    register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
    _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local
    alignas alignof and and_eq asm bitand bitor bool catch char16_t char32_t class compl constexpr const_cast
    decltype delete dynamic_cast explicit export false friend mutable namespace new noexcept not not_eq nullptr
    operator or or_eq private protected public reinterpret_cast static_assert static_cast template this
    thread_local throw true try typeid typename using virtual wchar_t xor xor_eq""".split()
)
# Standard library names a prefix must not be: several are macros (stdin, errno, assert, bool),
# which the preprocessor would expand inside every <name>_... token built from them.
C_LIBRARY_NAMES = frozenset(
    """assert errno stdin stdout stderr NULL EOF BUFSIZ FILE offsetof setjmp longjmp va_arg va_start va_end
    va_copy va_list bool true false complex imaginary I main malloc free size_t ptrdiff_t wchar_t""".split()
)
_C_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class ModelNames:
    """Every public name of one model's generated files, computed once and used by every template.

    name None (no --name) keeps the historical names: si4_model_invoke, SI4_MODEL_*, model.h,
    si4_conv2d_0_filter, si4_test_inputs. With --name kws: kws_invoke, KWS_*, kws_model.h,
    kws_conv2d_0_filter, kws_test_inputs; so two models link into one firmware, sharing the
    si4_*_s8 kernels. Symbols private to one model.c are static and need no prefix.
    """

    name: str | None = None

    @property
    def prefix(self) -> str:
        """The model's symbols: <prefix>_invoke, <prefix>_arena, <prefix>_layers, <prefix>_tflite."""
        return self.name or "si4_model"

    @property
    def macro(self) -> str:
        """The model's macros: <macro>_ARENA_BYTES, <macro>_INPUT_SIZE."""
        return self.prefix.upper()

    @property
    def short(self) -> str:
        """Per-layer arrays and the test vectors: <short>_conv2d_0_filter, <short>_test_inputs."""
        return self.name or "si4"

    @property
    def short_macro(self) -> str:
        """Per-layer macros and the test vectors' macros: <SHORT>_CONV2D_0_*, <SHORT>_TEST_VECTOR_COUNT."""
        return self.short.upper()

    @property
    def arena(self) -> str:
        """The static arena array (absent under <MACRO>_NO_STATIC_ARENA)."""
        return f"{self.prefix}_arena"

    @property
    def arena_base(self) -> str:
        """What every layer in model.c addresses its buffers from (static to model.c): the static
        arena, or the caller's since the last <prefix>_invoke_with_arena."""
        return "active_arena"

    def file(self, base: str) -> str:
        """model.h -> kws_model.h; test_vectors.c -> kws_test_vectors.c."""
        return f"{self.name}_{base}" if self.name else base

    def guard(self, base: str) -> str:
        """The include guard of a header: SI4_MODEL_H, KWS_MODEL_WEIGHTS_H."""
        return f"{self.short_macro}_{base.rsplit('.', 1)[0].upper()}_H"

    # si4tool export: the library around the model's files.
    @property
    def library(self) -> str:
        """The library's name: si4::<library> (CMake), si4_<library> (Arduino, Zephyr, the .mk)."""
        return self.name or "model"

    @property
    def library_header(self) -> str:
        """The header an exported library's user includes: si4_model_library.h, kws_library.h."""
        return f"{self.prefix}_library.h"

    @property
    def self_check(self) -> str:
        """The exported self-check function (si4_model_self_check, kws_self_check); its file and
        result type are <short>_self_check.h/.c and <short>_self_check_result."""
        return f"{self.prefix}_self_check"

    def binding_flags(self) -> list[str]:
        """The -D flags of firmware_stub/si4_model_binding.h, for programs written against the
        default names (main.c, the host runner); none for the default names. For argv lists: the
        quotes are the C string's, not the shell's."""
        if self.name is None:
            return []
        return [
            f"-DSI4_BIND_NAME={self.name}",
            f"-DSI4_BIND_NAME_UPPER={self.short_macro}",
            f'-DSI4_BIND_MODEL_H="{self.file("model.h")}"',
            f'-DSI4_BIND_VECTORS_H="{self.file("test_vectors.h")}"',
        ]

    @property
    def files(self) -> dict[str, str]:
        """Default file name -> this model's file name, for every generated C file."""
        return {base: self.file(base) for base in C_ASSET_BASES}


# The generated C files under their default names (assets.C_ASSET_FILES is this tuple).
C_ASSET_BASES = (
    "model.h",
    "model.c",
    "model_weights.h",
    "model_weights.c",
    "model_data.h",
    "model_data.c",
    "test_vectors.h",
    "test_vectors.c",
)
DEFAULT_NAMES = ModelNames()


def model_names(name: str | None) -> ModelNames:
    """The names of a model called `name` (--name), or UserError in one sentence when it cannot be one."""
    if name is None:
        return DEFAULT_NAMES
    if not _C_IDENTIFIER.match(name):
        raise UserError(
            f"--name {name!r} is not a C identifier: use letters, digits and _, starting with a letter, such as kws"
        )
    if name in C_KEYWORDS:
        raise UserError(f"--name {name!r} is a C or C++ keyword; choose another name, such as {name}_model")
    if name in C_LIBRARY_NAMES:
        raise UserError(
            f"--name {name!r} is a name of the C standard library (often a macro, which would rewrite every "
            f"generated symbol); choose another name, such as {name}_model"
        )
    if name.lower().startswith("si4"):
        raise UserError(
            f"--name {name!r} would clash with si4tool's own names (si4_* kernels, SI4_* macros); "
            "choose one that does not start with si4, or leave --name out for the default si4_model names"
        )
    return ModelNames(name)


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


def _macro_prefix(layer: Layer, names: ModelNames) -> str:
    return f"{names.short_macro}_{layer.name.upper()}"


def _array_name(layer: Layer, key: str, names: ModelNames) -> str:
    return f"{names.short}_{layer.name}_{key}"


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


def _weights_layer(graph: Graph, layer: Layer, names: ModelNames) -> dict:
    """What model_weights.h/.c say about one layer: macros and const arrays."""
    prefix = _macro_prefix(layer, names)
    output = graph.tensors[layer.output]
    macros = []
    if layer.params is not None:
        macros += [(f"{prefix}_{name.upper()}", c_int(value)) for name, value in params_fields(layer.params)]
    if layer.pool_params is not None:
        macros += [(f"{prefix}_POOL_{name.upper()}", c_int(value)) for name, value in params_fields(layer.pool_params)]
    for struct_name, extra in layer.extra_params:
        stem = f"{prefix}_{struct_name.upper()}"
        macros += [(f"{stem}_{name.upper()}", c_int(value)) for name, value in params_fields(extra)]
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
    for key, c_type in ops.spec(layer.op).layer_constants(layer):
        values = layer.constants[key]
        size_macro = f"{prefix}_{key.upper()}_SIZE"
        macros.append((size_macro, c_int(values.size)))
        arrays.append({"c_type": c_type, "name": _array_name(layer, key, names), "size_macro": size_macro, "data": values})
    shapes = ", ".join(_shape_text(graph.tensors[tensor].shape) for tensor in layer.inputs)
    return {
        "name": layer.name,
        "description": c_comment_text(f"{layer.op}: {layer.describe_source()}"),
        "shapes": f"{shapes} -> {_shape_text(output.shape)}",
        "macros": macros,
        "arrays": arrays,
    }


# Defining it when compiling model.c (and whatever reads the tables) adds the per-layer tables
# <prefix>_layers, _layer_names, _layer_output_offsets and _layer_output_sizes: the host tracer,
# main.c's per-layer counts and the callgrind bench use them; a product build leaves them out.
LAYER_TABLES_MACRO = "SI4_LAYER_TABLES"
LAYER_TABLES_FLAG = f"-D{LAYER_TABLES_MACRO}"


def _struct(name: str, prefix: str, params) -> dict:
    fields = [(field, f"{prefix}_{field.upper()}") for field, _ in params_fields(params)]
    # "key": the struct's bytes, so layers with the same shapes and quantization share one.
    key = (c_struct_name(type(params)), tuple(params_fields(params)))
    return {"c_type": c_struct_name(type(params)), "name": name, "fields": fields, "key": key}


def share_identical_structs(model_layers: list[dict]) -> list[dict]:
    """Layers whose params struct equals an earlier layer's, field for field, call the kernel with
    the earlier struct and define none (vww: five depthwise and five pointwise 6x6x128 layers, about
    80 bytes each). Only layers rendered as a plain kernel call give theirs up; the struct they
    point to is always one that model.c defines (streamed and in-place entries are in place)."""
    defined: dict[tuple, str] = {}
    entries = []
    for entry in model_layers:
        kept, shared, call = [], [], entry.get("call")
        for struct in entry.get("structs", []):
            key = struct.get("key")
            reference = re.compile(rf"&{re.escape(struct['name'])}\b")
            # Shared only where the call takes the struct's address and nothing else names it.
            if call is not None and key in defined and reference.search(call) and call.count(struct["name"]) == len(reference.findall(call)):
                call = reference.sub(f"&{defined[key]}", call)
                shared.append(defined[key])
                continue
            if key is not None:
                defined.setdefault(key, struct["name"])
            kept.append(struct)
        entries.append({**entry, "structs": kept, "shared_structs": shared, "call": call})
    return entries


def _arena_pointer(offset: int, names: ModelNames) -> str:
    """The one place model.c's arena pointers are spelled (the base is names.arena_base)."""
    return f"{names.arena_base} + {offset}"


def _buffer_expression(graph: Graph, plan: MemoryPlan, tensor: str, names: ModelNames) -> str:
    if tensor == graph.input:  # the caller's buffer, or (input_in_arena) the first layer's copy of it
        return _arena_pointer(plan.allocations[tensor].offset, names) if plan.input_in_arena else "input"
    output_offsets = graph.output_offsets()
    if tensor in output_offsets:  # graph outputs live in the caller's buffer, concatenated
        return "output" if output_offsets[tensor] == 0 else f"output + {output_offsets[tensor]}"
    return _arena_pointer(plan.allocations[tensor].offset, names)


def _model_layer(graph: Graph, plan: MemoryPlan, index: int, layer: Layer, names: ModelNames) -> dict:
    """What model.c says about one layer: its params structs and the kernel call."""
    spec = ops.spec(layer.op)
    prefix = _macro_prefix(layer, names)
    def buffer(tensor: str) -> str:
        return _buffer_expression(graph, plan, tensor, names)

    structs = []
    params = []
    if layer.params is not None:
        structs.append(_struct(f"{layer.name}_params", prefix, layer.params))
        params.append(f"&{layer.name}_params")
    if layer.pool_params is not None:
        structs.append(_struct(f"{layer.name}_pool_params", f"{prefix}_POOL", layer.pool_params))
        params.append(f"&{layer.name}_pool_params")
    for struct_name, extra in layer.extra_params:
        structs.append(_struct(f"{layer.name}_{struct_name}_params", f"{prefix}_{struct_name.upper()}", extra))
        params.append(f"&{layer.name}_{struct_name}_params")
    scratch = plan.allocations.get(scratch_name(layer.name))
    buffers = CallBuffers(
        params=tuple(params),
        inputs=tuple(buffer(tensor) for tensor in layer.inputs),
        constants=tuple(_array_name(layer, key, names) for key, _ in spec.layer_constants(layer)),
        scratch=None if scratch is None else _arena_pointer(scratch.offset, names),
        output=buffer(layer.output),
        size_macro=f"{prefix}_OUTPUT_SIZE",
    )
    call = spec.render_call(layer, buffers) if spec.render_call is not None else spec.default_call(layer, buffers)
    used = {text.split(" + ")[0] for text in (*buffers.inputs, buffers.output)} if call is not None else set()
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
    """Where the layer's output lives: an arena offset (>= 0), or -1 - k for byte k of the caller's
    output buffer (-1 for a single-output model's output, as before), and -1 for a streamed layer,
    whose output is never materialised (its size is 0)."""
    output_offsets = graph.output_offsets()
    if layer.output in output_offsets:
        return -1 - output_offsets[layer.output]
    if layer.output not in plan.allocations:
        return -1
    return plan.allocations[layer.output].offset


def _layer_output_size(graph: Graph, plan: MemoryPlan, layer: Layer) -> int:
    """Bytes a tracer may read after the layer: 0 for a tensor a row-streamed schedule never materialises."""
    if layer.output not in graph.outputs and layer.output not in plan.allocations:
        return 0
    return graph.tensors[layer.output].size_bytes


def _image_dimensions(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(height, width, channels) of the model input, for the SI4_MODEL_INPUT_* macros."""
    if len(shape) == 1:
        return 1, 1, shape[0]
    if len(shape) == 2:
        return shape[0], shape[1], 1
    return shape[0], shape[1], int(np.prod(shape[2:]))


def render_model_sources(
    graph: Graph, plan: MemoryPlan, model_sha256: str, names: ModelNames = DEFAULT_NAMES
) -> dict[str, str]:
    """The four engine files, file name (names.file) -> text; the same inputs always give the same bytes."""
    banner = generated_banner(model_sha256)
    source = graph.tensors[graph.input]
    output = graph.tensors[graph.output]
    offsets = graph.output_offsets()
    outputs = [
        {
            "size": graph.tensors[name].size_bytes,
            "offset": offsets[name],
            "scale": c_float(graph.tensors[name].scale),
            "zero_point": c_int(graph.tensors[name].zero_point),
            "shape": _shape_text(graph.tensors[name].shape),
            "name": c_comment_text(name),
        }
        for name in graph.outputs
    ]
    height, width, channels = _image_dimensions(source.shape)
    model = {
        "input_height": height,
        "input_width": width,
        "input_channels": channels,
        "input_size": source.size_bytes,
        "input_scale": c_float(source.scale),
        "input_zero_point": c_int(source.zero_point),
        "output_size": graph.output_bytes,
        "outputs": outputs,
        "output_scale": c_float(output.scale),
        "output_zero_point": c_int(output.zero_point),
        "arena_bytes": arena_declaration_bytes(plan),
        "arena_alignment": ARENA_ALIGNMENT,
        "layer_count": len(graph.layers),
        "sha256": model_sha256,
        "sha256_short": model_sha256[:8],
    }
    weights_layers = [_weights_layer(graph, layer, names) for layer in graph.layers]
    in_streams = {i for stream in plan.streams for i in (*stream.streamed_layers, stream.runs_at)}
    model_layers = [
        {"function": f"layer_{index}_{layer.op}", "name": layer.name, "description": c_comment_text(layer.describe_source())}
        if index in in_streams
        else _model_layer(graph, plan, index, layer, names)  # the stream's entries come from stream_codegen
        for index, layer in enumerate(graph.layers)
    ]
    if plan.streams:
        from si4tool.compiler.stream_codegen import apply_row_streams

        model_layers = apply_row_streams(graph, plan, model_layers, names)
    if plan.in_place:
        from si4tool.compiler.stream_codegen import apply_in_place

        model_layers = apply_in_place(graph, plan, model_layers, names)
    if plan.input_in_arena:
        from si4tool.compiler.stream_codegen import apply_input_in_arena

        model_layers = apply_input_in_arena(graph, plan, model_layers, names)
    model_layers = share_identical_structs(model_layers)
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
        "input_arena_offset": plan.allocations[graph.input].offset if plan.input_in_arena else None,
        "layer_tables_macro": LAYER_TABLES_MACRO,
        "names": names,
    }
    return {
        names.file(base): render_template(f"{base}.j2", **context)
        for base in ("model.h", "model.c", "model_weights.h", "model_weights.c")
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
                    "caller's output buffer" if layer.output in graph.outputs else "streamed (never materialised)"
                ),
                "arena_offset": allocation.offset if allocation is not None else None,
                "arena_size": allocation.size if allocation is not None else 0,
                "live_range": [allocation.first_layer, allocation.last_layer] if allocation is not None else None,
            }
        )
    return summaries
