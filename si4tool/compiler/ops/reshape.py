"""RESHAPE, SQUEEZE, EXPAND_DIMS: shape-only operators.

An int8 tensor is contiguous, so these change its shape and not one byte. They are lowered
(so that a model containing them lowers, and a trace can name them) as one `reshape` op that
the memory planner aliases to its input (OpSpec.shape_only) and the `drop_noop_reshapes` pass
removes; only where the bytes must move (the model input into the caller's output buffer, or
an arena tensor into it) does model.c copy them.
"""

from __future__ import annotations

import numpy as np

from si4tool.compiler.ops.base import CallBuffers, Constraints, OpSpec
from si4tool.compiler.tflite_reader import OptionLayout

RESHAPE_OPTIONS = OptionLayout(17, "ReshapeOptions", (("new_shape", 0, "[i", ()),))
SQUEEZE_OPTIONS = OptionLayout(30, "SqueezeOptions", (("squeeze_dims", 0, "[i", ()),))


def lower_reshape(ctx, operator):
    source = ctx.input_activation(operator, rows_ok=True)  # bytes in, the same bytes out
    output = ctx.output_activation(operator, rows_ok=True)
    if source.size_bytes != output.size_bytes:
        raise ctx.fail(operator, f"reshapes {source.size_bytes} values into {output.size_bytes}")
    if (source.scale, source.zero_point) != (output.scale, output.zero_point):
        raise ctx.fail(operator, "changes the quantization of its tensor")
    return ctx.layer("reshape", operator, [source], output, None)


def render_copy(layer, buffers: CallBuffers) -> str | None:
    """No call when the planner gave the output the input's bytes; a copy when they are different buffers."""
    if buffers.output == buffers.inputs[0]:
        return None
    return "memcpy(" + ",\n        ".join((buffers.output, buffers.inputs[0], buffers.size_macro)) + ")"


SPEC = OpSpec(
    op="reshape",
    summary="new shape, same bytes: aliases its input",
    builtins=("EXPAND_DIMS", "RESHAPE", "SQUEEZE"),
    params_type=None,
    kernel=None,
    lower=lower_reshape,
    reference=lambda layer, inputs: np.asarray(inputs[0], dtype=np.int8),
    options=(RESHAPE_OPTIONS, SQUEEZE_OPTIONS),
    data_inputs=1,  # RESHAPE's second input (new shape) and EXPAND_DIMS' axis only state the output shape
    keras_layers=("Flatten", "Reshape"),
    constraints=Constraints(
        dtypes="int8, same input and output quantization",
        notes="no copy: the output aliases the input; Keras Flatten and Reshape give RESHAPE, keras.ops.squeeze and expand_dims the others",
    ),
    shape_only=True,
    render_call=render_copy,
)
