"""The si4 intermediate representation: a graph of kernel calls over named int8 tensors.

A Graph is a list of Layers in a valid execution order over a DAG of named int8 activation
tensors (a chain is the special case). A Layer is one call of one kernel in si4_nn.h: its
`params` is the operator's frozen params dataclass (the fields of that kernel's C params
struct, same names, same order) and its `constants` are the arrays the kernel reads (filter in
the kernel's layout, int32 bias, per-channel multiplier and shift). Everything the device needs
is computed in Python, exactly as TFLite Micro computes it at prepare time: lowering.py builds
the graph from a .tflite through the operator registry (ops/), passes.py rewrites it,
planner.py places its tensors in one arena, codegen.py renders it.

Tensor names are the TFLite tensor names (made unique if a model repeats one), and every
TensorInfo keeps its TFLite index, so a tracer can fetch the same tensor from an interpreter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class OperatorRef:
    """Where a layer came from: one TFLite operator."""

    builtin: str  # e.g. "CONV_2D"
    index: int  # position in the subgraph's operator list
    output: str  # name of the operator's output tensor

    def describe(self) -> str:
        return f"{self.builtin} (operator {self.index}, output tensor '{self.output}')"


@dataclass(frozen=True)
class TensorInfo:
    """An int8 activation tensor: its shape without the batch dimension, and its quantization."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    tflite_index: int

    @property
    def size_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class Layer:
    """One kernel call.

    inputs / outputs: tensor names, in the order the kernel takes them (every kernel today
    writes one output). params: the op's params dataclass (see ops/base.py). pool_params: for
    "conv2d_max_pool" only, the PoolParams of the fused pooling. extra_params: further params
    structs the kernel takes after those, as (name, params) pairs (MUL and SUB: ("broadcast",
    BroadcastParams); CONCATENATION: one per input); codegen renders each as the C struct
    <layer>_<name>_params with macros <PREFIX>_<NAME>_<FIELD>. constants: the arrays of
    OpSpec.constants ("filter" int8 in the kernel layout, "bias", "output_multiplier",
    "output_shift" int32, ...). scratch_bytes: arena bytes the kernel needs while it runs.
    """

    name: str
    op: str
    source: tuple[OperatorRef, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: Any
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    pool_params: Any = None
    extra_params: tuple[tuple[str, Any], ...] = ()
    scratch_bytes: int = 0

    @property
    def output(self) -> str:
        """The layer's output tensor (every si4_nn.h kernel writes exactly one)."""
        if len(self.outputs) != 1:
            raise ValueError(f"layer {self.name} has {len(self.outputs)} outputs")
        return self.outputs[0]

    def describe_source(self) -> str:
        return " + ".join(ref.describe() for ref in self.source)

    def parameter_count(self) -> int:
        """Trainable parameters as Keras counts them: filter and bias entries."""
        return sum(int(self.constants[k].size) for k in ("filter", "bias") if k in self.constants)

    def weight_bytes(self) -> int:
        """Flash taken by the layer's constant arrays."""
        return sum(int(array.nbytes) for array in self.constants.values())


@dataclass
class Graph:
    """Layers in execution order; `input` is read from the caller's buffer, `output` written to the caller's."""

    layers: list[Layer]
    tensors: dict[str, TensorInfo]
    input: str
    output: str
    # The .tflite model takes float32 and quantizes it with a QUANTIZE op / returns float32 through
    # a DEQUANTIZE op; both ops were dropped: the engine still reads and writes int8 (see lowering.ModelEdges).
    float_input: bool = False
    float_output: bool = False

    def replace(self, **changes) -> "Graph":
        return dataclasses.replace(self, **changes)

    def consumers(self, tensor: str) -> list[Layer]:
        return [layer for layer in self.layers if tensor in layer.inputs]

    def producer(self, tensor: str) -> Layer | None:
        return next((layer for layer in self.layers if tensor in layer.outputs), None)

    def last_reader(self, tensor: str) -> int | None:
        """Index of the last layer that reads `tensor`, or None."""
        readers = [index for index, layer in enumerate(self.layers) if tensor in layer.inputs]
        return readers[-1] if readers else None

    def check_order(self) -> None:
        """Every layer reads only the graph input or tensors written by an earlier layer, each
        tensor is written once, and some layer writes the graph output (an invariant; raises)."""
        written = {self.input}
        for layer in self.layers:
            for tensor in layer.inputs:
                if tensor not in written:
                    raise GraphError(f"layer {layer.name} reads '{tensor}' before any layer writes it")
            for tensor in layer.outputs:
                if tensor in written:
                    raise GraphError(f"layer {layer.name} writes '{tensor}', which is already written")
                written.add(tensor)
        if self.output not in written or self.output == self.input:
            raise GraphError(f"no layer writes the graph output '{self.output}'")


class GraphError(RuntimeError):
    """A graph that breaks the IR's invariants (a bug in a pass or in the lowering, not the user's)."""
