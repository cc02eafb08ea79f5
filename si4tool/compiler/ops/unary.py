"""What the elementwise one-input operators share (RELU, RELU6, LEAKY_RELU, QUANTIZE, LOGISTIC,
TANH, HARD_SWISH): reading their one input and one output, turning a refusal of their prepare
step into one sentence naming the operator, and the call of the table kernels.

Every such kernel reads element i before it writes element i, so each may write its output over
its input (OpSpec.in_place) when the planner finds that input's last reader is this layer.
"""

from __future__ import annotations

from si4tool.compiler import quant_math
from si4tool.errors import UserError

# The 256-byte look-up table of LOGISTIC, TANH and HARD_SWISH: one const int8 array in model_weights.c.
TABLE_CONSTANTS = (("table", "int8_t"),)


def unary_tensors(ctx, operator):
    """(input, output) TensorInfos of an elementwise operator; refuses differing shapes."""
    source = ctx.input_activation(operator, 0, rows_ok=True)  # elementwise: any leading dimension
    output = ctx.output_activation(operator, rows_ok=True)
    if source.shape != output.shape:
        raise ctx.fail(
            operator, f"maps an input of shape {[1, *source.shape]} to an output of shape {[1, *output.shape]}; "
            "an elementwise operator keeps its shape",
        )  # fmt: skip
    return source, output


def prepared(ctx, operator, prepare, *args):
    """prepare(*args), with the refusals of the operator's prepare step (quantizations TFLite Micro
    rejects or the C cannot apply) raised as one sentence naming the operator."""
    try:
        return prepare(*args)
    except (quant_math.QuantizationError, UserError) as error:
        raise ctx.fail(operator, f"cannot be compiled: {error}") from None


def table_call(layer, buffers) -> str:
    """si4_<op>_s8(&params, table, input, output): the table kernels take the table before the input."""
    (params,) = buffers.params
    (table,) = buffers.constants
    (source,) = buffers.inputs
    return f"si4_{layer.op}_s8({params},\n        {table},\n        {source},\n        {buffers.output})"
