"""Lowering: an int8 .tflite -> a Graph of Layers, through the operator registry (ops/).

`lower_tflite` reads the flatbuffer (tflite_reader), finds the int8 tensors the engine reads
and writes (`model_edges`: float QUANTIZE/DEQUANTIZE at the edges are dropped), keeps only the
operators the output depends on through data, and hands each to its operator's `lower`
function (OpSpec.lower) with a LoweringContext: the helpers every operator needs to read its
tensors, options and quantization and to fail with one sentence naming the operator. The
layers come out in the model's execution order, over any DAG (residual branches, several
readers of a tensor); an identity QUANTIZE/DEQUANTIZE only renames a tensor, and an int8 -> int8
QUANTIZE that rescales is a layer of its own (the requantize kernel, ops/quantize.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from si4tool.compiler import ops
from si4tool.compiler import quant_math
from si4tool.compiler.ir import Graph, Layer, OperatorRef, TensorInfo
from si4tool.compiler.tflite_reader import (
    ACTIVATION_NAMES,
    TENSOR_TYPE_FLOAT32,
    TENSOR_TYPE_INT8,
    TENSOR_TYPE_INT32,
    Operator,
    Tensor,
    TfliteModel,
    read_tflite,
)
from si4tool.errors import UserError

# The largest dimension and tensor we accept; anything bigger is a corrupt file, not a microcontroller model.
_MAX_DIMENSION = 1 << 20
_MAX_ELEMENTS = 1 << 28

# Dropped by the lowering (at float edges, or when they change nothing), not kernels of their own.
EDGE_OPERATORS = ("QUANTIZE", "DEQUANTIZE")


def supported_operators() -> tuple[str, ...]:
    """Every TFLite builtin si4tool lowers, for messages and `si4tool ops`."""
    return tuple(sorted(set(ops.supported_builtins()) | set(EDGE_OPERATORS)))


class LoweringContext:
    """State of one lowering: the parsed model, unique tensor names, and a counter per layer op.

    Operator modules read their operator only through these helpers, so that every refusal is a
    UserError naming the operator, its index and its output tensor."""

    def __init__(self, model: TfliteModel):
        self.model = model
        self.names: dict[int, str] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self.counts: dict[str, int] = {}
        # Tensors whose first dimension is a count of rows, not a batch of 1 (a FULLY_CONNECTED
        # without keep_num_dims writes [rows, outputs]), and the model's edges, which never are.
        self.row_tensors: set[str] = set()
        self.edge_tensors: set[int] = set()
        seen: set[str] = set()
        for tensor in model.tensors:
            name = tensor.name if tensor.name not in seen else f"{tensor.name}#{tensor.index}"
            seen.add(name)
            self.names[tensor.index] = name

    def fail(self, operator: Operator, problem: str) -> UserError:
        output = self.names[operator.outputs[0]] if operator.outputs else "?"
        return UserError(f"{operator.name} (operator {operator.index}, output tensor '{output}') {problem}")

    def ref(self, operator: Operator) -> OperatorRef:
        return OperatorRef(operator.name, operator.index, self.names[operator.outputs[0]])

    def layer_name(self, op: str) -> str:
        count = self.counts.get(op, 0)
        self.counts[op] = count + 1
        return f"{op}_{count}"

    def layer(self, op: str, operator: Operator, inputs, output: TensorInfo, params, constants=None, **extra) -> Layer:
        """A Layer for `operator`, named <op>_<n>; inputs are TensorInfos in kernel order."""
        return Layer(
            self.layer_name(op), op, (self.ref(operator),), tuple(info.name for info in inputs), (output.name,),
            params, dict(constants or {}), **extra,
        )

    def quantized(self, operator: Operator, compute: Callable, *args):
        """compute(*args), with a QuantizationError from quant_math, or a UserError from an
        operator's prepare_<name> (what TFLM's Prepare rejects), refused naming the operator."""
        try:
            return compute(*args)
        except quant_math.QuantizationError as error:
            raise self.fail(operator, str(error)) from None
        except UserError as error:
            raise self.fail(operator, f"cannot be compiled: {str(error).rstrip('.')}") from None

    def tensor(self, operator: Operator, position: int, *, optional: bool = False) -> Tensor | None:
        inputs = operator.inputs
        if position >= len(inputs) or inputs[position] < 0:
            if optional:
                return None
            raise self.fail(operator, f"is missing its input {position}")
        return self.model.tensors[inputs[position]]

    def output_tensor(self, operator: Operator) -> Tensor:
        if len(operator.outputs) != 1:
            raise self.fail(operator, f"has {len(operator.outputs)} outputs, expected 1")
        return self.model.tensors[operator.outputs[0]]

    def input_activation(self, operator: Operator, position: int = 0, rows_ok: bool = False) -> TensorInfo:
        return self.activation(operator, self.tensor(operator, position), rows_ok)

    def output_activation(self, operator: Operator, rows_ok: bool = False) -> TensorInfo:
        return self.activation(operator, self.output_tensor(operator), rows_ok)

    def activation(self, operator: Operator, tensor: Tensor, rows_ok: bool = False) -> TensorInfo:
        """Register an int8 activation tensor (batch 1) and return its info.

        rows_ok: the operator reads its tensors as flat rows (FULLY_CONNECTED, the elementwise
        ops, RESHAPE), so a first dimension above 1 inside the graph is rows of one inference
        (TFLite's [rows, outputs] of a FULLY_CONNECTED without keep_num_dims): the TensorInfo's
        shape is then the whole shape, and only such operators may read that tensor."""
        name = self.names[tensor.index]
        if name in self.tensors:
            if name in self.row_tensors and not rows_ok:
                raise self._batch_error(operator, name, tensor.shape)
            return self.tensors[name]
        if tensor.data is not None:
            raise self.fail(operator, f"reads the constant tensor '{name}' where si4tool supports only activations")
        if tensor.type != TENSOR_TYPE_INT8:
            raise self.fail(
                operator,
                f"uses tensor '{name}' of type {tensor.type_name}; si4tool needs a full-integer int8 model "
                "(convert with TFLiteConverter, Optimize.DEFAULT, a representative dataset and int8 input/output; "
                "see `si4tool ops`)",
            )
        quantization = tensor.quantization
        if quantization is None or len(quantization.scale) != 1 or len(quantization.zero_point) != 1:
            raise self.fail(operator, f"uses tensor '{name}' without per-tensor quantization parameters")
        shape = tensor.shape
        rows = bool(shape) and shape[0] != 1 and rows_ok and tensor.index not in self.edge_tensors
        if not shape or (shape[0] != 1 and not rows):
            raise self._batch_error(operator, name, shape)
        self.check_dims(operator, name, shape)
        scale = float(quantization.scale[0])
        if not (np.isfinite(scale) and scale > 0):
            raise self.fail(operator, f"uses tensor '{name}' with an invalid scale {scale}")
        zero_point = int(quantization.zero_point[0])
        if not quant_math.INT8_MIN <= zero_point <= quant_math.INT8_MAX:
            raise self.fail(operator, f"uses tensor '{name}' with an int8 zero point out of range ({zero_point})")
        info = TensorInfo(name, tuple(int(d) for d in (shape if rows else shape[1:])), scale, zero_point, tensor.index)
        self.tensors[name] = info
        if rows:
            self.row_tensors.add(name)
        return info

    def _batch_error(self, operator: Operator, name: str, shape) -> UserError:
        return self.fail(
            operator, f"uses tensor '{name}' of shape {list(shape)}; si4tool supports batch 1 only (see `si4tool ops`)"
        )

    def check_dims(self, operator: Operator, name: str, shape: tuple[int, ...]) -> None:
        if any(d < 1 or d > _MAX_DIMENSION for d in shape) or int(np.prod(shape, dtype=np.int64)) > _MAX_ELEMENTS:
            raise self.fail(operator, f"uses tensor '{name}' with an unsupported shape {list(shape)}")

    def constant(self, operator: Operator, tensor: Tensor, type_code: int, dtype, what: str) -> np.ndarray:
        name = self.names[tensor.index]
        if tensor.type != type_code:
            raise self.fail(operator, f"has a {what} '{name}' of type {tensor.type_name}, expected {np.dtype(dtype).name}")
        self.check_dims(operator, name, tensor.shape)
        count = int(np.prod(tensor.shape, dtype=np.int64))
        data = tensor.data or b""
        if len(data) != count * np.dtype(dtype).itemsize:
            raise self.fail(operator, f"has a {what} '{name}' with {len(data)} bytes of data for shape {list(tensor.shape)}")
        return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(tensor.shape)

    def filter_scales(self, operator: Operator, tensor: Tensor, channels: int, axis: int) -> tuple[float, ...]:
        name = self.names[tensor.index]
        quantization = tensor.quantization
        if quantization is None or not quantization.scale:
            raise self.fail(operator, f"has filter '{name}' without quantization parameters")
        if any(zp != 0 for zp in quantization.zero_point):
            raise self.fail(operator, f"has filter '{name}' with a non-zero zero point (TFLite int8 weights are symmetric)")
        scales = quantization.scale
        if len(scales) > 1 and (len(scales) != channels or quantization.quantized_dimension != axis):
            raise self.fail(operator, f"has filter '{name}' quantized along an unexpected axis")
        if not all(np.isfinite(s) and s >= 0 for s in scales):
            raise self.fail(operator, f"has filter '{name}' with an invalid scale")
        return tuple(float(s) for s in scales)

    def bias(self, operator: Operator, channels: int) -> np.ndarray:
        tensor = self.tensor(operator, 2, optional=True)
        if tensor is None:  # the converter drops an all-zero bias
            return np.zeros(channels, dtype=np.int32)
        bias = self.constant(operator, tensor, TENSOR_TYPE_INT32, np.int32, "bias").reshape(-1)
        if bias.size != channels:
            raise self.fail(operator, f"has {bias.size} bias values for {channels} output channels")
        return bias

    def clamp(self, operator: Operator, output: TensorInfo) -> tuple[int, int]:
        """The int8 clamp of the operator's fused activation (NONE, RELU, RELU6, RELU_N1_TO_1)."""
        activation = operator.options.get("activation", 0)
        if activation not in (0, 1, 2, 3):
            name = ACTIVATION_NAMES.get(activation, str(activation))
            raise self.fail(operator, f"has a fused {name} activation; supported: NONE, RELU, RELU6, RELU_N1_TO_1")
        return self.quantized(operator, quant_math.activation_range, activation, output.scale, output.zero_point)

    def window(self, operator: Operator, in_hw, filter_hw, out_hw, dilation_hw=(1, 1)) -> tuple[int, int]:
        """Check the op's output size and return (pad_top, pad_left) as TFLM computes them."""
        options = operator.options
        padding = options.get("padding", 0)
        strides = (options.get("stride_h", 0), options.get("stride_w", 0))
        if padding not in (quant_math.PADDING_SAME, quant_math.PADDING_VALID):
            raise self.fail(operator, f"has an unknown padding {padding}")
        if min(strides) < 1 or min(dilation_hw) < 1 or min(filter_hw) < 1:
            raise self.fail(operator, f"has invalid strides {strides}, dilations {dilation_hw} or window {filter_hw}")
        pads = []
        for axis in range(2):
            expected = quant_math.output_size(padding, in_hw[axis], filter_hw[axis], strides[axis], dilation_hw[axis])
            if expected != out_hw[axis]:
                raise self.fail(operator, f"has output size {out_hw} but its input and options give {expected} on axis {axis}")
            pads.append(quant_math.padding_before(strides[axis], dilation_hw[axis], in_hw[axis], filter_hw[axis], out_hw[axis]))
        return pads[0], pads[1]

    def spatial(self, operator: Operator, info: TensorInfo) -> tuple[int, int, int]:
        if len(info.shape) != 3:
            raise self.fail(operator, f"needs a 4-D NHWC tensor, but '{info.name}' has shape {[1, *info.shape]}")
        return info.shape  # type: ignore[return-value]


def _check_shifts(context: LoweringContext, operator: Operator, layer: Layer) -> None:
    """No requantization of the layer shifts left by 32 or more (undefined behaviour in the C)."""
    fields = dataclasses.fields(layer.params) if layer.params is not None else ()
    shifts = [(f.name, getattr(layer.params, f.name)) for f in fields if f.name.endswith("shift")]
    if "output_shift" in layer.constants and layer.constants["output_shift"].size:
        shifts.append(("output shift", int(layer.constants["output_shift"].max())))
    for name, value in shifts:
        context.quantized(operator, quant_math.check_left_shift, int(value), name.replace("_", " "))


def _data_operators(model: TfliteModel) -> list[Operator]:
    """The operators the graph output depends on through data, in execution order.

    An operator's shape-only inputs (OpSpec.data_inputs: RESHAPE's new shape, which its output
    tensor already states) are not followed, so the SHAPE -> STRIDED_SLICE -> PACK chain a
    Keras Flatten produces to compute it is folded away.
    """
    producers = {}
    for operator in model.operators:
        for output in operator.outputs:
            producers[output] = operator
    needed: set[int] = set()
    pending = list(model.outputs)
    while pending:
        tensor = pending.pop()
        operator = producers.get(tensor)
        if operator is None or operator.index in needed:
            continue
        needed.add(operator.index)
        spec = ops.for_builtin(operator.name)
        count = spec.data_inputs if spec is not None and spec.data_inputs is not None else len(operator.inputs)
        pending.extend(i for i in operator.inputs[:count] if i >= 0)
    return [operator for operator in model.operators if operator.index in needed]


@dataclass(frozen=True)
class ModelEdges:
    """The int8 tensors the C engine reads and writes, and what the .tflite model puts around them.

    A converter run without inference_input_type/inference_output_type (float I/O, int8
    inside) wraps the int8 network in a QUANTIZE (float32 -> int8) as its first operator and
    a DEQUANTIZE (int8 -> float32) as its last. The engine keeps no float: the QUANTIZE is
    dropped and its int8 output is the engine's input (the caller quantizes with its scale
    and zero point exactly as that op does: quantize.quantize_input); the DEQUANTIZE is
    dropped and its int8 input is the engine's output.
    """

    input_index: int  # TFLite index of the int8 tensor the engine reads
    output_index: int  # TFLite index of the int8 tensor the engine writes
    input_quantization: tuple[float, int]  # (scale, zero_point) of that input tensor
    output_quantization: tuple[float, int]
    input_quantize: int | None = None  # index of the dropped QUANTIZE operator (float input), else None
    output_dequantize: int | None = None  # index of the dropped DEQUANTIZE operator (float output), else None

    @property
    def float_input(self) -> bool:
        return self.input_quantize is not None

    @property
    def float_output(self) -> bool:
        return self.output_dequantize is not None


def _edge_quantization(model: TfliteModel, index: int, source: str) -> tuple[float, int]:
    tensor = model.tensors[index]
    quantization = tensor.quantization
    if quantization is None or len(quantization.scale) != 1 or len(quantization.zero_point) != 1:
        raise UserError(f"{source}: tensor '{tensor.name}' at the model's edge has no per-tensor quantization")
    return float(quantization.scale[0]), int(quantization.zero_point[0])


def model_edges(model: TfliteModel, source: str = "the model") -> ModelEdges:
    """Find the engine's int8 input and output: the model's own, or inside a float QUANTIZE/DEQUANTIZE pair."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"{source} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; si4tool needs one of each")
    input_index, output_index = model.inputs[0], model.outputs[0]
    input_quantize = output_dequantize = None
    if model.tensors[input_index].type == TENSOR_TYPE_FLOAT32:
        readers = [operator for operator in model.operators if input_index in operator.inputs]
        if len(readers) != 1 or readers[0].name != "QUANTIZE" or len(readers[0].outputs) != 1:
            raise UserError(
                f"{source} has a FLOAT32 input ('{model.tensors[input_index].name}') that is not read by one QUANTIZE "
                "operator; si4tool needs int8 inside (convert with Optimize.DEFAULT and a representative dataset)"
            )
        input_quantize, input_index = readers[0].index, readers[0].outputs[0]
    if model.tensors[output_index].type == TENSOR_TYPE_FLOAT32:
        writers = [operator for operator in model.operators if output_index in operator.outputs]
        if len(writers) != 1 or writers[0].name != "DEQUANTIZE" or not writers[0].inputs or writers[0].inputs[0] < 0:
            raise UserError(
                f"{source} has a FLOAT32 output ('{model.tensors[output_index].name}') that is not written by a "
                "DEQUANTIZE operator; si4tool needs int8 inside (convert with Optimize.DEFAULT and a representative dataset)"
            )
        output_dequantize, output_index = writers[0].index, writers[0].inputs[0]
    for index, role in ((input_index, "input"), (output_index, "output")):
        tensor = model.tensors[index]
        if tensor.type != TENSOR_TYPE_INT8:
            raise UserError(
                f"{source} has a {tensor.type_name} {role} ('{tensor.name}'); si4tool needs int8 (or float32 through "
                "QUANTIZE/DEQUANTIZE) input and output (convert with inference_input_type=tf.int8 and "
                "inference_output_type=tf.int8)"
            )
    return ModelEdges(
        input_index,
        output_index,
        _edge_quantization(model, input_index, source),
        _edge_quantization(model, output_index, source),
        input_quantize,
        output_dequantize,
    )


def engine_edges(data: bytes, source: str = "the model") -> ModelEdges:
    """model_edges of a .tflite flatbuffer (reference runners use it to feed and read interpreters)."""
    return model_edges(read_tflite(data, source), source)


def _is_identity_requantize(context: LoweringContext, operator: Operator) -> tuple[TensorInfo, TensorInfo] | None:
    """(input, output) of a QUANTIZE/DEQUANTIZE int8 -> int8 with the same scale and zero point, else None."""
    source = context.input_activation(operator)
    output = context.output_activation(operator)
    if (np.float32(source.scale), source.zero_point) == (np.float32(output.scale), output.zero_point):
        return source, output
    return None


def lower_tflite(data: bytes, source: str = "the model") -> Graph:
    """Read an int8 .tflite (int8 inside; float edges dropped, see ModelEdges) and lower it to a Graph
    (raises UserError for anything unsupported)."""
    model = read_tflite(data, source, ops.option_layouts())
    edges = model_edges(model, source)
    context = LoweringContext(model)
    context.edge_tensors = {edges.input_index, edges.output_index}
    edge_operators = {edges.input_quantize, edges.output_dequantize} - {None}

    aliases: dict[str, str] = {}  # tensor -> the tensor it is identical to (an identity QUANTIZE)
    layers: list[Layer] = []
    for operator in _data_operators(model):
        if operator.index in edge_operators:
            continue  # float32 <-> int8 at the edges: the caller quantizes, the engine stays int8
        spec = ops.for_builtin(operator.name)
        if operator.name in EDGE_OPERATORS:
            identity = _is_identity_requantize(context, operator)
            if identity is not None:
                aliases[identity[1].name] = aliases.get(identity[0].name, identity[0].name)
                continue
            if spec is None:  # DEQUANTIZE: an int8 -> int8 one that rescales is QUANTIZE's job, not its
                source_info, output_info = context.input_activation(operator), context.output_activation(operator)
                raise context.fail(
                    operator,
                    f"requantizes an int8 tensor (scale {source_info.scale:.6g}, zero point {source_info.zero_point} -> "
                    f"scale {output_info.scale:.6g}, zero point {output_info.zero_point}); si4tool drops a DEQUANTIZE "
                    "only at a float32 output or when it changes nothing (see `si4tool ops`)",
                )
            # A rescaling int8 -> int8 QUANTIZE lowers to its kernel (ops/quantize.py) below.
        if spec is None or spec.lower is None:
            raise context.fail(
                operator,
                f"is not supported by si4tool (supported: {', '.join(supported_operators())}; see `si4tool ops`)",
            )
        layer = spec.lower(context, operator)
        scratch = spec.scratch_bytes(layer)
        if scratch:
            layer = dataclasses.replace(layer, scratch_bytes=scratch)
        _check_shifts(context, operator, layer)
        renamed = tuple(aliases.get(name, name) for name in layer.inputs)
        layers.append(layer if renamed == layer.inputs else dataclasses.replace(layer, inputs=renamed))

    input_name = context.names[edges.input_index]
    output_name = aliases.get(context.names[edges.output_index], context.names[edges.output_index])
    if not layers:
        raise UserError(f"{source} has no operators si4tool can compile")
    written = {input_name}
    for layer in layers:
        for tensor in layer.inputs:
            if tensor not in written:
                raise UserError(
                    f"{source}: layer {layer.describe_source()} reads tensor '{tensor}' that neither the model input "
                    "nor an earlier operator provides"
                )
        written.update(layer.outputs)
    if output_name not in written or output_name == input_name:
        raise UserError(f"{source}: no operator writes the model output '{output_name}'")
    tensors = {name: info for name, info in context.tensors.items() if name not in aliases}
    graph = Graph(layers, tensors, input_name, output_name, edges.float_input, edges.float_output)
    graph.check_order()
    return graph



def operator_table() -> list[dict]:
    """Every supported TFLite builtin, one row each (`si4tool ops`, docs/operators.md): the
    registry's operators and the QUANTIZE/DEQUANTIZE the lowering drops."""
    rows = ops.operator_table()
    listed = {row["tflite_operator"] for row in rows}
    for builtin in EDGE_OPERATORS:
        if builtin not in listed:
            rows.append(
                {
                    "tflite_operator": builtin,
                    "op": None,
                    "summary": "dropped: float32 <-> int8 at the model's edges, or int8 -> int8 that changes nothing",
                    "keras_layers": [],
                    "kernel": "none (the caller quantizes; the engine stays int8)",
                    "dsp": False,
                    "dtypes": "float32 <-> int8 at the edges; int8 -> int8 with the same scale and zero point",
                    "paddings": "-",
                    "strides": "-",
                    "activations": "-",
                    "notes": "a rescaling int8 -> int8 QUANTIZE runs the requantize kernel; a rescaling DEQUANTIZE is refused",
                }
            )
    return sorted(rows, key=lambda row: row["tflite_operator"])


def operators_markdown() -> str:
    """docs/operators.md: the operator table as Markdown (tools/operators_reference.py writes it)."""
    lines = [
        "<!-- Generated by tools/operators_reference.py from the operator registry (si4tool/compiler/ops/): "
        "do not edit by hand. -->",
        "",
        "# Supported operators",
        "",
        "What `si4tool ops` prints: every TFLite operator si4tool compiles, the Keras layers that convert to it,",
        "the C kernel it calls (`firmware_stub/kernels/src/`), whether a Cortex-M DSP twin exists",
        "(`firmware_stub/kernels/dsp/`), and what it accepts. Any other operator is refused at lowering, naming",
        "the operator, its index and its output tensor. A CONV_2D followed by a MAX_POOL_2D runs as one fused",
        "kernel (`si4_conv2d_max_pool_s8`) when a static bound on its accumulators proves the fusion exact.",
        "",
        "| TFLite operator | Keras layers | kernel | DSP | dtypes | paddings | strides | fused activations | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in operator_table():
        cells = [
            f"`{row['tflite_operator']}`",
            ", ".join(row["keras_layers"]) or "-",
            f"`{row['kernel']}`" if row["op"] and row["kernel"].startswith("si4_") else row["kernel"],
            "yes" if row["dsp"] else "no",
            row["dtypes"],
            row["paddings"],
            row["strides"],
            row["activations"],
            row["notes"] or "-",
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
