"""The operator protocol: everything si4tool knows about one operator, in one `OpSpec`.

One module per operator (or family) in this package, `si4tool/compiler/ops/<name>.py`, holds:

- `<Name>Params`: a frozen dataclass whose fields are the int32 fields of the kernel's C params
  struct in si4_nn.h, same names, same order. The C struct is `si4_<name>_params`, the class
  name in snake case (`AddParams` -> `si4_add_params`, `Conv2DParams` -> `si4_conv2d_params`);
  a class attribute `C_STRUCT: ClassVar[str]` overrides that. tests/test_kernels.py parses
  si4_nn.h and checks every struct against its dataclass; the ctypes struct the kernel tests
  use is derived from the dataclass (`ctypes_struct`). `Layer.params` holds one instance.
- `prepare_<name>(...)`: the params computed from the tensors' shapes and quantization exactly as
  TFLite Micro's Prepare computes them (formulas shared by several operators live in quant_math).
- `reference_<name>(params, *inputs, *constants)`: the NumPy reference of TFLM's reference
  kernel, int8 arrays in, int8 array out (integer helpers in si4tool/compiler/fixed_point.py).
- `lower_<name>(ctx, operator) -> Layer`: reads the TFLite operator through the lowering context
  (`si4tool.compiler.lowering.LoweringContext`: `ctx.activation`, `ctx.constant`, `ctx.clamp`,
  `ctx.window`, `ctx.fail`, `ctx.layer`), checks shapes and options, calls `prepare_<name>`.
- `SPEC = OpSpec(...)` (or `SPECS = (...)` for a family). `si4tool/compiler/ops/__init__.py`
  registers the SPEC/SPECS of every module of this package: adding a module with a SPEC is what
  makes an operator known to the lowering, the passes, the planner, codegen, `si4tool ops`,
  docs/operators.md, the Keras pre-check and the tests' reference forward pass.

The C side of an operator is `firmware_stub/kernels/src/<kernel>.c` (portable C99, one operator
per file, declared in si4_nn.h) and optionally its Cortex-M DSP twin
`firmware_stub/kernels/dsp/<kernel>.c` with the same signature. The default call rendered into
model.c is

    kernel(&params, [&pool_params,] [&extra_params...,] input_0, ..., input_n, constant_0, ..., [scratch,] output)

with the constants in `OpSpec.constants` order (those of `OpSpec.layer_constants`); an operator whose kernel takes something else
gives `render_call`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from si4tool.compiler.tflite_reader import OptionLayout
from si4tool.targets.toolchain import firmware_stub_dir

if TYPE_CHECKING:
    from si4tool.compiler.ir import Layer
    from si4tool.compiler.lowering import LoweringContext
    from si4tool.compiler.tflite_reader import Operator

@dataclass(frozen=True)
class Constraints:
    """What an operator accepts, for `si4tool ops` and docs/operators.md (the lowering enforces it)."""

    dtypes: str = "int8"
    paddings: str = "-"
    strides: str = "-"
    activations: str = "-"
    notes: str = ""


@dataclass(frozen=True)
class CallBuffers:
    """The C expressions of a layer's buffers in model.c, as `render_call` receives them."""

    params: tuple[str, ...]  # "&conv2d_0_params", then "&conv2d_0_pool_params" for a fused pool
    # "active_arena" (ModelNames.arena_base) is the static arena, or the caller's (invoke_with_arena).
    inputs: tuple[str, ...]  # "input" (the caller's) or "active_arena + <offset>"
    constants: tuple[str, ...]  # the const arrays, in OpSpec.constants order
    scratch: str | None  # "active_arena + <offset>" when the layer has scratch bytes
    output: str  # "output" (the caller's) or "active_arena + <offset>"
    size_macro: str  # "<PREFIX>_OUTPUT_SIZE": bytes of the output tensor


@dataclass(frozen=True)
class OpSpec:
    """One operator: how it is lowered, computed in NumPy, called in C, counted and documented."""

    op: str  # Layer.op, e.g. "conv2d"; also the suffix of generated function names
    summary: str  # one line for `si4tool ops`
    builtins: tuple[str, ...]  # TFLite builtins lowered to this op (none for ops made by passes)
    params_type: type | None  # the frozen <Name>Params dataclass (None: the kernel takes no struct)
    kernel: str | None  # portable C function (= file name in kernels/src/); None: no kernel call
    lower: Callable[["LoweringContext", "Operator"], "Layer"] | None
    # reference(layer, inputs) -> output: inputs as flat int8 arrays in Layer.inputs order
    reference: Callable[["Layer", Sequence[np.ndarray]], np.ndarray]
    constants: tuple[tuple[str, str], ...] = ()  # (Layer.constants key, C element type), in call order
    # keys of `constants` a layer may lack (ADD, SUB, MUL: "input1"/"input2", present only when
    # that operand is a constant tensor); every other key must be in Layer.constants
    optional_constants: tuple[str, ...] = ()
    options: tuple[OptionLayout, ...] = ()  # builtin option tables the lowering reads
    data_inputs: int | None = None  # leading operator inputs that carry data (None: all); RESHAPE: 1
    macs: Callable[["Layer"], int] = field(default=lambda layer: 0)
    scratch_bytes: Callable[["Layer"], int] = field(default=lambda layer: 0)
    keras_layers: tuple[str, ...] = ()  # Keras layer classes that convert to this op
    constraints: Constraints = Constraints()
    shape_only: bool = False  # output = the input's bytes (RESHAPE...): the planner aliases them
    in_place: bool = False  # the kernel may write its output over an input of the output's size
    render_call: Callable[["Layer", CallBuffers], str] | None = None
    # layer -> the kernel of its shape class, when the operator has several (CONV_2D: 1x1,
    # few input channels, general); each is a C function with its own file in kernels/src/
    choose_kernel: Callable[["Layer"], str] | None = None

    @property
    def c_struct(self) -> str | None:
        return None if self.params_type is None else c_struct_name(self.params_type)

    @property
    def dsp(self) -> bool:
        """Whether a Cortex-M DSP twin of the kernel exists in firmware_stub/kernels/dsp/."""
        return self.kernel is not None and (firmware_stub_dir() / "kernels" / "dsp" / f"{self.kernel}.c").is_file()

    def layer_constants(self, layer: "Layer") -> tuple[tuple[str, str], ...]:
        """The (key, C type) of the const arrays one layer has, in call order."""
        return tuple(
            (key, c_type) for key, c_type in self.constants if key in layer.constants or key not in self.optional_constants
        )

    def kernel_for(self, layer: "Layer") -> str | None:
        """The C function that computes `layer` (its shape class's, see choose_kernel)."""
        return self.kernel if self.choose_kernel is None else self.choose_kernel(layer)

    def default_call(self, layer: "Layer", buffers: CallBuffers) -> str:
        arguments = [*buffers.params, *buffers.inputs, *buffers.constants]
        if buffers.scratch is not None:
            arguments.append(buffers.scratch)
        arguments.append(buffers.output)
        return f"{self.kernel_for(layer)}(" + ",\n        ".join(arguments) + ")"


def c_struct_name(params_type: type) -> str:
    """`Conv2DParams` -> `si4_conv2d_params`, `LeakyReluParams` -> `si4_leaky_relu_params`."""
    explicit = getattr(params_type, "C_STRUCT", None)
    if explicit:
        return explicit
    stem = params_type.__name__.removesuffix("Params")
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", stem).lower()
    return f"si4_{snake}_params"


def params_fields(params: Any) -> list[tuple[str, int]]:
    """(field, value) of a params dataclass instance, in C struct order."""
    return [(f.name, int(getattr(params, f.name))) for f in dataclasses.fields(params)]


def ctypes_struct(params_type: type) -> type[ctypes.Structure]:
    """The ctypes mirror of a params dataclass: one int32 per field, in order."""
    fields = [(f.name, ctypes.c_int32) for f in dataclasses.fields(params_type)]
    return type(c_struct_name(params_type), (ctypes.Structure,), {"_fields_": fields})
