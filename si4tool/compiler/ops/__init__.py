"""The operator registry: every operator si4tool compiles, one module each (see base.py).

Each module of this package that defines `SPEC` (an OpSpec) or `SPECS` (a tuple of them) is
registered here, in module-name order; nothing else lists operators. Everything that does
derives from this registry: the lowering (`for_builtin`), the reader's option tables
(`option_layouts`), codegen (`spec`), the planner (`OpSpec.shape_only`, `in_place`),
`si4tool ops` and docs/operators.md (`operator_table`), the Keras pre-check (`keras_layers`)
and the tests' reference forward pass and ctypes structs.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil

from si4tool.compiler.ops.base import CallBuffers, Constraints, OpSpec, c_struct_name, ctypes_struct, params_fields

__all__ = [
    "CallBuffers", "Constraints", "OpSpec", "c_struct_name", "ctypes_struct", "params_fields",
    "registry", "spec", "for_builtin", "supported_builtins", "option_layouts", "keras_layers",
    "params_types", "operator_table", "layer_macs",
]  # fmt: skip


@functools.cache
def registry() -> tuple[OpSpec, ...]:
    """Every registered operator, in module-name order."""
    specs: list[OpSpec] = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found = getattr(module, "SPECS", None) or ((module.SPEC,) if hasattr(module, "SPEC") else ())
        specs.extend(found)
    seen_ops: set[str] = set()
    seen_builtins: dict[str, str] = {}
    for entry in specs:
        if entry.op in seen_ops:
            raise RuntimeError(f"two operator modules register the op {entry.op!r}")
        seen_ops.add(entry.op)
        for builtin in entry.builtins:
            if builtin in seen_builtins:
                raise RuntimeError(f"{builtin} is lowered by both {seen_builtins[builtin]!r} and {entry.op!r}")
            seen_builtins[builtin] = entry.op
    return tuple(specs)


@functools.cache
def _by_op() -> dict[str, OpSpec]:
    return {entry.op: entry for entry in registry()}


@functools.cache
def _by_builtin() -> dict[str, OpSpec]:
    return {builtin: entry for entry in registry() for builtin in entry.builtins}


def spec(op: str) -> OpSpec:
    """The OpSpec of a Layer.op (KeyError for an op nothing registers: a bug, not a user error)."""
    return _by_op()[op]


def for_builtin(builtin: str) -> OpSpec | None:
    """The OpSpec that lowers a TFLite builtin, or None when si4tool does not support it."""
    return _by_builtin().get(builtin)


def supported_builtins() -> tuple[str, ...]:
    return tuple(sorted(_by_builtin()))


@functools.cache
def option_layouts():
    """The builtin options tables of every registered operator, and any other OptionLayout an
    ops module declares at module level (a table its SPEC does not list), for tflite_reader.read_tflite."""
    from si4tool.compiler.tflite_reader import OptionLayout

    layouts = {}
    for entry in registry():
        for layout in entry.options:
            layouts[layout.union_type] = layout
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, OptionLayout):
                layouts.setdefault(value.union_type, value)
    return tuple(layouts[key] for key in sorted(layouts))


def keras_layers() -> tuple[str, ...]:
    """Keras layer classes that convert to a registered operator."""
    return tuple(dict.fromkeys(layer for entry in registry() for layer in entry.keras_layers))


def params_types() -> dict[str, type]:
    """C struct name -> params dataclass, over every `*Params` dataclass of the ops modules
    (registered or not yet: the header check covers kernels whose operator is not wired yet)."""
    registry()  # imports every module
    found: dict[str, type] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and name.endswith("Params")
                and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__
            ):
                found[c_struct_name(value)] = value
    return found


def layer_macs(layer) -> int:
    """Multiply-accumulates of one layer (0 for ops without a weighted sum)."""
    return int(spec(layer.op).macs(layer))


def operator_table() -> list[dict]:
    """One row per supported TFLite builtin: what `si4tool ops` prints and docs/operators.md shows."""
    rows = []
    for entry in registry():
        for builtin in entry.builtins:
            rows.append(
                {
                    "tflite_operator": builtin,
                    "op": entry.op,
                    "summary": entry.summary,
                    "keras_layers": list(entry.keras_layers),
                    "kernel": entry.kernel or "none (aliases its input)",
                    "dsp": entry.dsp,
                    "dtypes": entry.constraints.dtypes,
                    "paddings": entry.constraints.paddings,
                    "strides": entry.constraints.strides,
                    "activations": entry.constraints.activations,
                    "notes": entry.constraints.notes,
                }
            )
    return sorted(rows, key=lambda row: row["tflite_operator"])
