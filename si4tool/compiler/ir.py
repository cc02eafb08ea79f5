"""The si4 intermediate representation, and the lowering of an int8 .tflite into it.

A Graph is an ordered list of Layers over named int8 activation tensors. A
Layer is one call of one kernel in si4_nn.h: its `params` are the fields of
that kernel's C params struct (same names, same order, plain ints) and its
`constants` are the arrays the kernel reads (filter in the kernel's layout,
int32 bias, per-channel multiplier and shift). Everything the device needs is
computed here, in Python, exactly as TFLite Micro computes it at prepare time
(see quant_math.py); passes.py rewrites the graph, planner.py places its
tensors in one arena, codegen.py renders it.

Tensor names are the TFLite tensor names (made unique if a model repeats
one), and every TensorInfo keeps its TFLite index, so a tracer can fetch the
same tensor from an interpreter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from si4tool.compiler import quant_math
from si4tool.errors import UserError
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

# The ops a Layer can be, each one kernel in si4_nn.h.
LAYER_OPS = (
    "conv2d",
    "conv2d_max_pool",
    "depthwise_conv2d",
    "max_pool",
    "avg_pool",
    "fully_connected",
    "softmax",
    "reshape",
)

SUPPORTED_OPERATORS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "FULLY_CONNECTED",
    "RESHAPE",
    "SOFTMAX",
    "QUANTIZE",
    "DEQUANTIZE",
)

# The largest dimension and tensor we accept; anything bigger is a corrupt file, not a microcontroller model.
_MAX_DIMENSION = 1 << 20
_MAX_ELEMENTS = 1 << 28


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
    """An int8 activation tensor: NHWC shape without the batch dimension, and its quantization."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    tflite_index: int

    @property
    def size_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Layer:
    """One kernel call.

    params: the kernel's params struct (si4_conv2d_params, si4_pool_params, ...), field for field.
    pool_params: for "conv2d_max_pool" only, the si4_pool_params of the fused pooling.
    constants: "filter" (int8, kernel layout), "bias", "output_multiplier", "output_shift" (int32).
    """

    name: str
    op: str
    source: tuple[OperatorRef, ...]
    input: str
    output: str
    params: dict[str, int]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    pool_params: dict[str, int] | None = None
    scratch_bytes: int = 0

    def describe_source(self) -> str:
        return " + ".join(ref.describe() for ref in self.source)

    def parameter_count(self) -> int:
        """Trainable parameters as Keras counts them: filter and bias entries."""
        return sum(int(self.constants[k].size) for k in ("filter", "bias") if k in self.constants)

    def macs(self) -> int:
        p = self.params
        if self.op in ("conv2d", "conv2d_max_pool"):
            per_output = p["kernel_height"] * p["kernel_width"] * p["input_channels"]
            return p["output_height"] * p["output_width"] * p["output_channels"] * per_output
        if self.op == "depthwise_conv2d":
            per_output = p["kernel_height"] * p["kernel_width"]
            return p["output_height"] * p["output_width"] * p["output_channels"] * per_output
        if self.op == "fully_connected":
            return p["input_size"] * p["output_size"]
        return 0

    def weight_bytes(self) -> int:
        """Flash taken by the layer's constant arrays."""
        return sum(int(array.nbytes) for array in self.constants.values())


@dataclass
class Graph:
    layers: list[Layer]
    tensors: dict[str, TensorInfo]
    input: str
    output: str
    # The .tflite model takes float32 and quantizes it with a QUANTIZE op / returns float32 through
    # a DEQUANTIZE op; both ops were dropped: the engine still reads and writes int8 (see ModelEdges).
    float_input: bool = False
    float_output: bool = False

    def replace(self, **changes) -> "Graph":
        return dataclasses.replace(self, **changes)

    def consumers(self, tensor: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.input == tensor]

    def producer(self, tensor: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.output == tensor), None)


# ----------------------------------------------------------------------------------------------
# Lowering


class _Lowering:
    """State of one lowering: the parsed model, tensor names, and a counter per layer kind."""

    def __init__(self, model: TfliteModel):
        self.model = model
        self.names: dict[int, str] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self.counts: dict[str, int] = {}
        seen: set[str] = set()
        for tensor in model.tensors:
            name = tensor.name if tensor.name not in seen else f"{tensor.name}#{tensor.index}"
            seen.add(name)
            self.names[tensor.index] = name

    # -- helpers ---------------------------------------------------------------------------------

    def fail(self, operator: Operator, problem: str) -> UserError:
        output = self.names[operator.outputs[0]] if operator.outputs else "?"
        return UserError(f"{operator.name} (operator {operator.index}, output tensor '{output}') {problem}")

    def ref(self, operator: Operator) -> OperatorRef:
        return OperatorRef(operator.name, operator.index, self.names[operator.outputs[0]])

    def layer_name(self, op: str) -> str:
        count = self.counts.get(op, 0)
        self.counts[op] = count + 1
        return f"{op}_{count}"

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

    def activation(self, operator: Operator, tensor: Tensor) -> TensorInfo:
        """Register an int8 activation tensor (batch 1, NHWC) and return its info."""
        name = self.names[tensor.index]
        if name in self.tensors:
            return self.tensors[name]
        if tensor.type != TENSOR_TYPE_INT8:
            raise self.fail(
                operator,
                f"uses tensor '{name}' of type {tensor.type_name}; si4tool needs a full-integer int8 model "
                "(convert with TFLiteConverter, Optimize.DEFAULT, a representative dataset and int8 input/output)",
            )
        quantization = tensor.quantization
        if quantization is None or len(quantization.scale) != 1 or len(quantization.zero_point) != 1:
            raise self.fail(operator, f"uses tensor '{name}' without per-tensor quantization parameters")
        shape = tensor.shape
        if not shape or shape[0] != 1:
            raise self.fail(operator, f"uses tensor '{name}' of shape {list(shape)}; si4tool supports batch 1 only")
        _check_dims(self, operator, name, shape)
        scale = float(quantization.scale[0])
        if not (np.isfinite(scale) and scale > 0):
            raise self.fail(operator, f"uses tensor '{name}' with an invalid scale {scale}")
        zero_point = int(quantization.zero_point[0])
        if not quant_math.INT8_MIN <= zero_point <= quant_math.INT8_MAX:
            raise self.fail(operator, f"uses tensor '{name}' with an int8 zero point out of range ({zero_point})")
        info = TensorInfo(name, tuple(int(d) for d in shape[1:]), scale, zero_point, tensor.index)
        self.tensors[name] = info
        return info

    def constant(self, operator: Operator, tensor: Tensor, type_code: int, dtype, what: str) -> np.ndarray:
        name = self.names[tensor.index]
        if tensor.type != type_code:
            raise self.fail(operator, f"has a {what} '{name}' of type {tensor.type_name}, expected {np.dtype(dtype).name}")
        _check_dims(self, operator, name, tensor.shape)
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
        activation = operator.options.get("activation", 0)
        if activation not in (0, 1, 2, 3):
            name = ACTIVATION_NAMES.get(activation, str(activation))
            raise self.fail(operator, f"has a fused {name} activation; supported: NONE, RELU, RELU6, RELU_N1_TO_1")
        return quant_math.activation_range(activation, output.scale, output.zero_point)

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

    # -- one method per supported operator -------------------------------------------------------

    def conv_2d(self, operator: Operator) -> Layer:
        return self.convolution(operator, depthwise=False)

    def depthwise_conv_2d(self, operator: Operator) -> Layer:
        return self.convolution(operator, depthwise=True)

    def convolution(self, operator: Operator, depthwise: bool) -> Layer:
        """CONV_2D and DEPTHWISE_CONV_2D share the window, padding and per-channel
        requantization; they differ in the filter layout (OHWI against 1HWO, so the
        per-channel scales lie on axis 0 or 3) and in the depth multiplier."""
        source = self.activation(operator, self.tensor(operator, 0))
        output = self.activation(operator, self.output_tensor(operator))
        in_h, in_w, in_c = self.spatial(operator, source)
        out_h, out_w, out_c = self.spatial(operator, output)
        filter_tensor = self.tensor(operator, 1)
        weights = self.constant(operator, filter_tensor, TENSOR_TYPE_INT8, np.int8, "filter")
        if depthwise:
            layout_ok = weights.ndim == 4 and weights.shape[0] == 1 and weights.shape[3] == out_c and out_c % in_c == 0
        else:
            layout_ok = weights.ndim == 4 and weights.shape[0] == out_c and weights.shape[3] == in_c
        if not layout_ok:
            raise self.fail(operator, f"has filter shape {list(weights.shape)} for {in_c} -> {out_c} channels")
        kernel_h, kernel_w = weights.shape[1], weights.shape[2]
        dilation = (operator.options.get("dilation_h", 1), operator.options.get("dilation_w", 1))
        pad_top, pad_left = self.window(operator, (in_h, in_w), (kernel_h, kernel_w), (out_h, out_w), dilation)
        scales = self.filter_scales(operator, filter_tensor, out_c, axis=3 if depthwise else 0)
        multipliers, shifts = quant_math.per_channel_multipliers(source.scale, scales, output.scale)
        activation_min, activation_max = self.clamp(operator, output)
        params = {
            "input_height": in_h, "input_width": in_w, "input_channels": in_c,
            "output_height": out_h, "output_width": out_w, "output_channels": out_c,
            **({"depth_multiplier": out_c // in_c} if depthwise else {}),
            "kernel_height": kernel_h, "kernel_width": kernel_w,
            "stride_height": operator.options["stride_h"], "stride_width": operator.options["stride_w"],
            "dilation_height": dilation[0], "dilation_width": dilation[1],
            "pad_top": pad_top, "pad_left": pad_left,
            "input_offset": -source.zero_point, "output_offset": output.zero_point,
            "activation_min": activation_min, "activation_max": activation_max,
            "per_channel": int(len(scales) > 1),
        }
        op = "depthwise_conv2d" if depthwise else "conv2d"
        return Layer(
            self.layer_name(op), op, (self.ref(operator),), source.name, output.name, params,
            _constants(weights, self.bias(operator, out_c), multipliers, shifts),
        )

    def pool_2d(self, operator: Operator, op: str) -> Layer:
        source = self.activation(operator, self.tensor(operator, 0))
        output = self.activation(operator, self.output_tensor(operator))
        in_h, in_w, channels = self.spatial(operator, source)
        out_h, out_w, out_c = self.spatial(operator, output)
        if out_c != channels:
            raise self.fail(operator, f"changes the channel count from {channels} to {out_c}")
        if abs(source.scale - output.scale) > 1e-6 or source.zero_point != output.zero_point:
            # TFLM's PoolingPrepare rejects this too.
            raise self.fail(operator, "has different input and output quantization")
        filter_hw = (operator.options.get("filter_h", 0), operator.options.get("filter_w", 0))
        pad_top, pad_left = self.window(operator, (in_h, in_w), filter_hw, (out_h, out_w))
        activation_min, activation_max = self.clamp(operator, output)
        params = {
            "input_height": in_h, "input_width": in_w, "channels": channels,
            "output_height": out_h, "output_width": out_w,
            "filter_height": filter_hw[0], "filter_width": filter_hw[1],
            "stride_height": operator.options["stride_h"], "stride_width": operator.options["stride_w"],
            "pad_top": pad_top, "pad_left": pad_left,
            "activation_min": activation_min, "activation_max": activation_max,
        }
        return Layer(self.layer_name(op), op, (self.ref(operator),), source.name, output.name, params)

    def fully_connected(self, operator: Operator) -> Layer:
        source = self.activation(operator, self.tensor(operator, 0))
        output = self.activation(operator, self.output_tensor(operator))
        if operator.options.get("weights_format", 0) != 0:
            raise self.fail(operator, "uses shuffled weights; only the DEFAULT weights format is supported")
        filter_tensor = self.tensor(operator, 1)
        weights = self.constant(operator, filter_tensor, TENSOR_TYPE_INT8, np.int8, "filter")
        if weights.ndim != 2:
            raise self.fail(operator, f"has a filter of shape {list(weights.shape)}, expected [outputs, inputs]")
        output_size, input_size = weights.shape
        # TFLM flattens the input to [batches, input_size]; the kernel handles batch 1.
        if source.size_bytes != input_size or output.size_bytes != output_size:
            raise self.fail(
                operator,
                f"maps {source.size_bytes} input values to {output.size_bytes} outputs with a {output_size}x{input_size} "
                "filter; only one row (batch 1) is supported",
            )
        scales = self.filter_scales(operator, filter_tensor, output_size, axis=0)
        if len(scales) > 1:
            multipliers, shifts = quant_math.per_channel_multipliers(source.scale, scales, output.scale)
        else:
            multiplier, shift = quant_math.fully_connected_multiplier(source.scale, scales[0], output.scale)
            multipliers, shifts = [multiplier], [shift]
        activation_min, activation_max = self.clamp(operator, output)
        params = {
            "input_size": input_size, "output_size": output_size,
            "input_offset": -source.zero_point, "filter_offset": 0, "output_offset": output.zero_point,
            "activation_min": activation_min, "activation_max": activation_max,
            "per_channel": int(len(scales) > 1),
        }
        return Layer(
            self.layer_name("fully_connected"), "fully_connected", (self.ref(operator),), source.name, output.name,
            params, _constants(weights, self.bias(operator, output_size), multipliers, shifts),
        )

    def softmax(self, operator: Operator) -> Layer:
        source = self.activation(operator, self.tensor(operator, 0))
        output = self.activation(operator, self.output_tensor(operator))
        if source.shape != output.shape or not source.shape:
            raise self.fail(operator, f"maps shape {list(source.shape)} to {list(output.shape)}")
        if output.zero_point != -128 or np.float32(output.scale) != np.float32(1.0 / 256):
            # TFLM's SoftmaxPrepare requires exactly this output quantization for int8.
            raise self.fail(operator, "has an int8 output not quantized with scale 1/256 and zero point -128")
        multiplier, left_shift, diff_min = quant_math.softmax_parameters(operator.options.get("beta", 0.0), source.scale)
        row_size = source.shape[-1]
        params = {
            "rows": source.size_bytes // row_size, "row_size": row_size,
            "input_multiplier": multiplier, "input_left_shift": left_shift, "diff_min": diff_min,
        }
        return Layer(self.layer_name("softmax"), "softmax", (self.ref(operator),), source.name, output.name, params)

    def reshape(self, operator: Operator) -> Layer:
        source = self.activation(operator, self.tensor(operator, 0))
        output = self.activation(operator, self.output_tensor(operator))
        if source.size_bytes != output.size_bytes:
            raise self.fail(operator, f"reshapes {source.size_bytes} values into {output.size_bytes}")
        if (source.scale, source.zero_point) != (output.scale, output.zero_point):
            raise self.fail(operator, "changes the quantization of its tensor")
        params = {"size": source.size_bytes}
        return Layer(self.layer_name("reshape"), "reshape", (self.ref(operator),), source.name, output.name, params)


def _check_dims(lowering: _Lowering, operator: Operator, name: str, shape: tuple[int, ...]) -> None:
    if any(d < 1 or d > _MAX_DIMENSION for d in shape) or int(np.prod(shape, dtype=np.int64)) > _MAX_ELEMENTS:
        raise lowering.fail(operator, f"uses tensor '{name}' with an unsupported shape {list(shape)}")


def _constants(weights: np.ndarray, bias: np.ndarray, multipliers: list[int], shifts: list[int]) -> dict[str, np.ndarray]:
    return {
        "filter": np.ascontiguousarray(weights, dtype=np.int8),
        "bias": np.ascontiguousarray(bias, dtype=np.int32),
        "output_multiplier": np.asarray(multipliers, dtype=np.int32),
        "output_shift": np.asarray(shifts, dtype=np.int32),
    }


def _data_operators(model: TfliteModel) -> list[Operator]:
    """The operators the graph output depends on through data, in execution order.

    A RESHAPE's second input only gives the new shape, which the output
    tensor already states; the SHAPE -> STRIDED_SLICE -> PACK chain a Keras
    Flatten produces to compute it (and any other op that only feeds shapes)
    is folded away by not following that edge.
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
        data_inputs = operator.inputs[:1] if operator.name == "RESHAPE" else operator.inputs
        pending.extend(i for i in data_inputs if i >= 0)
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


def lower_tflite(data: bytes, source: str = "the model") -> Graph:
    """Read an int8 .tflite (int8 inside; float edges dropped, see ModelEdges) and lower it to a Graph
    (raises UserError for anything unsupported)."""
    model = read_tflite(data, source)
    edges = model_edges(model, source)
    lowering = _Lowering(model)
    edge_operators = {edges.input_quantize, edges.output_dequantize} - {None}

    aliases: dict[str, str] = {}  # tensor -> the tensor it is identical to (an identity QUANTIZE)
    layers: list[Layer] = []
    handlers = {
        "CONV_2D": lowering.conv_2d,
        "DEPTHWISE_CONV_2D": lowering.depthwise_conv_2d,
        "MAX_POOL_2D": lambda op: lowering.pool_2d(op, "max_pool"),
        "AVERAGE_POOL_2D": lambda op: lowering.pool_2d(op, "avg_pool"),
        "FULLY_CONNECTED": lowering.fully_connected,
        "SOFTMAX": lowering.softmax,
        "RESHAPE": lowering.reshape,
    }
    for operator in _data_operators(model):
        if operator.index in edge_operators:
            continue  # float32 <-> int8 at the edges: the caller quantizes, the engine stays int8
        if operator.name in ("QUANTIZE", "DEQUANTIZE"):
            source_info = lowering.activation(operator, lowering.tensor(operator, 0))
            output_info = lowering.activation(operator, lowering.output_tensor(operator))
            if (np.float32(source_info.scale), source_info.zero_point) != (np.float32(output_info.scale), output_info.zero_point):
                raise lowering.fail(
                    operator,
                    f"requantizes an int8 tensor (scale {source_info.scale:.6g}, zero point {source_info.zero_point} -> "
                    f"scale {output_info.scale:.6g}, zero point {output_info.zero_point}); si4tool has no requantize "
                    "kernel and drops only QUANTIZE/DEQUANTIZE at float32 edges or ones that change nothing",
                )
            aliases[output_info.name] = aliases.get(source_info.name, source_info.name)
            continue
        handler = handlers.get(operator.name)
        if handler is None:
            raise lowering.fail(
                operator, f"is not supported by si4tool; supported operators: {', '.join(SUPPORTED_OPERATORS)}"
            )
        layer = handler(operator)
        layer.input = aliases.get(layer.input, layer.input)
        layers.append(layer)

    input_name = lowering.names[edges.input_index]
    output_name = aliases.get(lowering.names[edges.output_index], lowering.names[edges.output_index])
    if not layers:
        raise UserError(f"{source} has no operators si4tool can compile")
    if layers[0].input != input_name or layers[-1].output != output_name:
        raise UserError(f"{source} is not a single chain of layers from its input to its output")
    for previous, layer in zip(layers, layers[1:]):
        if layer.input != previous.output:
            raise UserError(
                f"{source}: layer {layer.describe_source()} does not read the output of the layer before it; "
                "si4tool supports sequential models only"
            )
    tensors = {name: info for name, info in lowering.tensors.items() if name not in aliases}
    return Graph(layers, tensors, input_name, output_name, edges.float_input, edges.float_output)
