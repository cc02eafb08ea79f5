"""The iteration of a broadcast binary int8 operator (MUL, SUB), as TFLM walks it.

TFLM's BroadcastBinaryOpSimple (kernels/internal/reference/binary_function.h,
reached from BroadcastMul6DSlow and BroadcastQuantSubSlow) extends both input
shapes to six dimensions with leading ones and steps through the output in
row-major order, reading each input at index 0 along a dimension where it has
extent 1: NumPy broadcasting. The C kernels take that as a shape and, per
input, a step per dimension (0 where broadcast), so one loop nest serves the
same-shape case (TFLM's elementwise path gives the same bytes) and every
broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from si4tool.compiler.tflite_reader import TENSOR_TYPE_INT8
from si4tool.errors import UserError

BROADCAST_DIMS = 6


@dataclass(frozen=True)
class BroadcastParams:
    shape0: int
    shape1: int
    shape2: int
    shape3: int
    shape4: int
    shape5: int
    input1_stride0: int
    input1_stride1: int
    input1_stride2: int
    input1_stride3: int
    input1_stride4: int
    input1_stride5: int
    input2_stride0: int
    input2_stride1: int
    input2_stride2: int
    input2_stride3: int
    input2_stride4: int
    input2_stride5: int

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(getattr(self, f"shape{d}") for d in range(BROADCAST_DIMS))


def _steps(shape: tuple[int, ...], output_shape: tuple[int, ...]) -> list[int]:
    steps, step = [0] * BROADCAST_DIMS, 1
    for d in reversed(range(BROADCAST_DIMS)):
        steps[d] = 0 if shape[d] == 1 and output_shape[d] != 1 else step
        step *= shape[d]
    return steps


def prepare_broadcast(input1_shape, input2_shape, what: str) -> tuple[BroadcastParams, tuple[int, ...]]:
    """(params, output shape) for two input shapes; refuses shapes NumPy/TFLite would not broadcast."""
    shape1, shape2 = tuple(int(d) for d in input1_shape), tuple(int(d) for d in input2_shape)
    if max(len(shape1), len(shape2)) > BROADCAST_DIMS:
        raise UserError(f"{what} has an input of more than {BROADCAST_DIMS} dimensions, which TFLite Micro rejects")
    try:
        output_shape = tuple(int(d) for d in np.broadcast_shapes(shape1, shape2))
    except ValueError:
        raise UserError(f"{what}'s input shapes {shape1} and {shape2} do not broadcast") from None
    pad = BROADCAST_DIMS
    full1 = (1,) * (pad - len(shape1)) + shape1
    full2 = (1,) * (pad - len(shape2)) + shape2
    full_out = (1,) * (pad - len(output_shape)) + output_shape
    params = BroadcastParams(*full_out, *_steps(full1, full_out), *_steps(full2, full_out))
    return params, output_shape


def broadcast_inputs(params: BroadcastParams, input1, input2) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as int64 arrays of the six-dimensional output shape (the reference's view)."""
    out = params.output_shape

    def expand(values, prefix):
        steps = [getattr(params, f"{prefix}_stride{d}") for d in range(BROADCAST_DIMS)]
        flat = np.asarray(values, dtype=np.int64).reshape(-1)
        index = np.zeros(out, dtype=np.int64)
        for d, step in enumerate(steps):
            shape = [1] * BROADCAST_DIMS
            shape[d] = out[d]
            index = index + (np.arange(out[d], dtype=np.int64) * step).reshape(shape)
        return flat[index]

    return expand(input1, "input1"), expand(input2, "input2")


# ----------------------------------------------------------------------------
# The operands of a binary operator (ADD, SUB, MUL): activations or one constant tensor


@dataclass(frozen=True)
class ConstantOperand:
    """A constant int8 input of a binary operator (TFLite models often add or multiply by one).

    shape: as broadcasting sees it against the activations, whose batch dimension is dropped:
    a constant of the output's full rank loses its leading 1 too, a lower rank is kept (it
    aligns right). values: flat int8, emitted as a const array in model_weights.c."""

    shape: tuple[int, ...]
    scale: float
    zero_point: int
    values: np.ndarray


def binary_operands(ctx, operator) -> tuple[list, list, dict[str, np.ndarray]]:
    """(operands in kernel order: TensorInfo or ConstantOperand, the activations among them,
    Layer.constants: "input1"/"input2" -> int8 values of a constant operand)."""
    output = ctx.output_activation(operator)
    full_rank = len(output.shape) + 1
    operands, activations, constants = [], [], {}
    for position in range(2):
        tensor = ctx.tensor(operator, position)
        if tensor.data is None:
            info = ctx.activation(operator, tensor)
            operands.append(info)
            activations.append(info)
            continue
        name = ctx.names[tensor.index]
        values = ctx.constant(operator, tensor, TENSOR_TYPE_INT8, np.int8, "constant operand")
        quantization = tensor.quantization
        if quantization is None or len(quantization.scale) != 1 or len(quantization.zero_point) != 1:
            raise ctx.fail(operator, f"has a constant operand '{name}' without per-tensor quantization parameters")
        scale, zero_point = float(quantization.scale[0]), int(quantization.zero_point[0])
        if not (np.isfinite(scale) and scale > 0) or not -128 <= zero_point <= 127:
            raise ctx.fail(operator, f"has a constant operand '{name}' with an invalid scale or zero point")
        shape = tuple(int(d) for d in tensor.shape)
        if len(shape) > full_rank or (len(shape) == full_rank and shape[0] != 1):
            raise ctx.fail(operator, f"has a constant operand '{name}' of shape {list(shape)} for an output of "
                           f"shape {[1, *output.shape]}; si4tool supports batch 1 only")  # fmt: skip
        if len(shape) == full_rank:
            shape = shape[1:]
        operands.append(ConstantOperand(shape, scale, zero_point, np.ascontiguousarray(values.reshape(-1))))
        constants[f"input{position + 1}"] = operands[-1].values
    if not activations:
        raise ctx.fail(operator, "has two constant operands (the converter folds such operators; si4tool does not)")
    return operands, activations, constants


def check_output_shape(ctx, operator, operands, output) -> None:
    """TFLM requires the output to have the broadcast shape of the inputs."""
    try:
        expected = tuple(int(d) for d in np.broadcast_shapes(*(operand.shape for operand in operands)))
    except ValueError:
        raise ctx.fail(operator, f"has input shapes {[list(o.shape) for o in operands]} that do not broadcast") from None
    if (1,) * (len(output.shape) - len(expected)) + expected != tuple(output.shape):
        raise ctx.fail(operator, f"has output shape {[1, *output.shape]}, but its inputs broadcast to {[1, *expected]}")


def binary_call(kernel: str):
    """render_call of a binary kernel: its operands in order, each an arena buffer or, for a
    constant operand, its const array; the params structs first."""

    def render(layer, buffers) -> str:
        from si4tool.compiler import ops  # the registry imports this module: resolve at call time

        keys = [key for key, _ in ops.spec(layer.op).layer_constants(layer)]
        arrays = dict(zip(keys, buffers.constants))
        activations = iter(buffers.inputs)
        operands = [arrays[key] if key in arrays else next(activations) for key in ("input1", "input2")]
        return f"{kernel}(" + ",\n        ".join([*buffers.params, *operands, buffers.output]) + ")"

    return render


def binary_reference_inputs(layer, inputs) -> list[np.ndarray]:
    """The two operands of a binary layer for its NumPy reference: activations (Layer.inputs
    order) and constants (Layer.constants) in kernel order."""
    activations = iter(inputs)
    return [layer.constants[key] if key in layer.constants else next(activations) for key in ("input1", "input2")]


BINARY_CONSTANTS = (("input1", "int8_t"), ("input2", "int8_t"))


def broadcast_lowering(op: str, prepare):
    """lower_<op> of SUB and MUL: two operands (activations or constants) broadcast to the output,
    a fused activation, and `prepare(shape1, scale1, zp1, shape2, scale2, zp2, out_scale, out_zp,
    activation) -> (params, BroadcastParams)`; the broadcast params travel as an extra struct."""

    def lower(ctx, operator):
        operands, activations, constants = binary_operands(ctx, operator)
        output = ctx.output_activation(operator)
        check_output_shape(ctx, operator, operands, output)
        ctx.clamp(operator, output)  # refuses activations other than NONE, RELU, RELU6, RELU_N1_TO_1
        a, b = operands
        params, broadcast = ctx.quantized(
            operator, prepare, a.shape, a.scale, a.zero_point, b.shape, b.scale, b.zero_point, output.scale,
            output.zero_point, operator.options.get("activation", 0),
        )  # fmt: skip
        return ctx.layer(op, operator, activations, output, params, constants, extra_params=(("broadcast", broadcast),))

    lower.__name__ = f"lower_{op}"
    return lower


def broadcast_reference(reference):
    """OpSpec.reference of SUB and MUL from `reference(params, broadcast, input1, input2)`."""
    return lambda layer, inputs: reference(layer.params, dict(layer.extra_params)["broadcast"],
                                           *binary_reference_inputs(layer, inputs))
