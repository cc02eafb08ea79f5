"""The operator registry: one module per operator, and everything that lists operators derives from it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import model_zoo
from si4tool.compiler import ops
from si4tool.compiler.lowering import lower_tflite, operator_table, supported_operators
from si4tool.compiler.ops.base import c_struct_name
from si4tool.errors import UserError
from si4tool.frontend.model import SUPPORTED_LAYERS
from si4tool.targets.toolchain import firmware_stub_dir, kernel_include_dir

REPO = Path(__file__).resolve().parents[1]


def test_struct_names_follow_the_class_names():
    from si4tool.compiler.ops.add import AddParams
    from si4tool.compiler.ops.conv2d import Conv2DParams, DepthwiseConv2DParams
    from si4tool.compiler.ops.fully_connected import FullyConnectedParams

    assert c_struct_name(Conv2DParams) == "si4_conv2d_params"
    assert c_struct_name(DepthwiseConv2DParams) == "si4_depthwise_conv2d_params"
    assert c_struct_name(FullyConnectedParams) == "si4_fully_connected_params"
    assert c_struct_name(AddParams) == "si4_add_params"
    assert c_struct_name(type("LeakyReluParams", (), {})) == "si4_leaky_relu_params"
    assert c_struct_name(type("HardSwishParams", (), {})) == "si4_hard_swish_params"


def test_every_kernel_has_its_file_and_declaration():
    # si4_nn.h (the network kernels) and si4_nn_ops.h (the elementwise, shape and reduction ones).
    header = "\n".join(path.read_text() for path in sorted(kernel_include_dir().glob("si4_nn*.h")))
    for spec in ops.registry():
        if spec.kernel is None:
            assert spec.shape_only, spec.op  # only shape-only ops call no kernel
            continue
        assert (firmware_stub_dir() / "kernels" / "src" / f"{spec.kernel}.c").is_file(), spec.kernel
        assert re.search(rf"\bvoid {spec.kernel}\(", header), spec.kernel
        assert spec.dsp == (firmware_stub_dir() / "kernels" / "dsp" / f"{spec.kernel}.c").is_file()
        if spec.params_type is not None:
            assert f"}} {spec.c_struct};" in header, spec.c_struct
    assert {spec.op for spec in ops.registry() if spec.dsp} >= {"conv2d", "conv2d_max_pool", "fully_connected", "max_pool",
                                                               "depthwise_conv2d", "avg_pool", "add"}


def test_builtins_and_option_tables_are_registered_once():
    builtins = [builtin for spec in ops.registry() for builtin in spec.builtins]
    assert len(builtins) == len(set(builtins))
    layouts = ops.option_layouts()
    assert len({layout.union_type for layout in layouts}) == len(layouts)
    assert set(supported_operators()) == set(builtins) | {"QUANTIZE", "DEQUANTIZE"}
    assert {"ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SQUEEZE", "EXPAND_DIMS"} <= set(builtins)


def test_keras_precheck_derives_from_the_registry():
    for spec in ops.registry():
        for layer in spec.keras_layers:
            assert layer in SUPPORTED_LAYERS
    assert "Add" in SUPPORTED_LAYERS and "Conv2D" in SUPPORTED_LAYERS


def test_unsupported_operator_points_at_si4tool_ops():
    with pytest.raises(UserError) as error:
        lower_tflite(model_zoo.unsupported_model_tflite())
    message = str(error.value)
    assert "REDUCE_MAX" in message and "`si4tool ops`" in message
    assert all(builtin in message for builtin in supported_operators())


def test_ops_command_lists_the_registry():
    result = subprocess.run(
        [sys.executable, "-m", "si4tool", "ops", "--json"], capture_output=True, text=True, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "SI4_DEBUG": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["operators"]
    assert [row["tflite_operator"] for row in rows] == [row["tflite_operator"] for row in operator_table()]
    by_name = {row["tflite_operator"]: row for row in rows}
    assert by_name["CONV_2D"]["kernel"] == "si4_conv2d_s8" and by_name["CONV_2D"]["dsp"] is True
    assert by_name["SOFTMAX"]["kernel"] == "si4_softmax_s8" and by_name["SOFTMAX"]["dsp"] is False
    assert by_name["CONV_2D"]["paddings"] == "SAME, VALID"
    table = subprocess.run(
        [sys.executable, "-m", "si4tool", "ops"], capture_output=True, text=True, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )  # fmt: skip
    assert table.returncode == 0 and "DEPTHWISE_CONV_2D" in table.stdout and "si4_softmax_s8" in table.stdout


def test_operators_reference_is_generated_from_the_registry():
    result = subprocess.run([sys.executable, str(REPO / "tools" / "operators_reference.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_conv2d_kernel_follows_the_dsp_kernels_shape_tests():
    """ops/conv2d.py's ports of the DSP kernels' own tests (the 1x1 kernel's pw_layer_fits and
    pw_channel_form, few_fits) pick each layer's shape-class kernel; the C kernels compute any
    shape exactly, so these cases pin what the generator sends where."""
    from types import SimpleNamespace

    import numpy as np

    from si4tool.compiler.ops.conv2d import Conv2DParams, _pointwise_channel_form, conv2d_kernel

    def layer(kernel=(3, 3), in_c=3, out_c=8, pad=(0, 0), dilation=(1, 1), multiplier=1 << 30, shift=-8, bias=0,
              input_offset=128):
        params = Conv2DParams(
            input_height=8, input_width=8, input_channels=in_c, output_height=6, output_width=6, output_channels=out_c,
            kernel_height=kernel[0], kernel_width=kernel[1], stride_height=1, stride_width=1,
            dilation_height=dilation[0], dilation_width=dilation[1], pad_top=pad[0], pad_left=pad[1],
            input_offset=input_offset, output_offset=-128, activation_min=-128, activation_max=127, per_channel=1,
        )  # fmt: skip
        constants = {"bias": np.full(out_c, bias), "output_multiplier": np.full(out_c, multiplier),
                     "output_shift": np.full(out_c, shift)}  # fmt: skip
        return SimpleNamespace(params=params, constants=constants)

    assert conv2d_kernel(layer(kernel=(1, 1), in_c=16)) == "si4_conv2d_1x1_s8"
    assert conv2d_kernel(layer(kernel=(1, 1), in_c=6)) == "si4_conv2d_s8"  # not whole words
    assert conv2d_kernel(layer(kernel=(1, 1), in_c=292)) == "si4_conv2d_s8"  # more than the block
    assert conv2d_kernel(layer(kernel=(1, 1), in_c=16, pad=(0, 1))) == "si4_conv2d_s8"
    assert conv2d_kernel(layer(kernel=(1, 1), in_c=16, shift=-32)) == "si4_conv2d_s8"  # neither form
    assert conv2d_kernel(layer(kernel=(1, 1), in_c=16, input_offset=129)) == "si4_conv2d_s8"
    assert conv2d_kernel(layer(in_c=3)) == "si4_conv2d_few_channels_s8"  # 27 taps
    assert conv2d_kernel(layer(kernel=(10, 4), in_c=1)) == "si4_conv2d_few_channels_s8"  # kws: 40 taps
    assert conv2d_kernel(layer(in_c=1)) == "si4_conv2d_1ch_3x3_s8"
    assert conv2d_kernel(layer(in_c=1, dilation=(2, 1))) == "si4_conv2d_s8"  # 9 taps but dilated
    assert conv2d_kernel(layer(kernel=(5, 5), in_c=3)) == "si4_conv2d_s8"  # 75 taps
    assert conv2d_kernel(layer(kernel=(1, 3), in_c=2)) == "si4_conv2d_s8"  # 6 taps
    assert conv2d_kernel(layer(in_c=3, dilation=(2, 2))) == "si4_conv2d_s8"
    assert conv2d_kernel(layer(in_c=16)) == "si4_conv2d_s8"
    # pw_channel_form at its edges: short needs shift -1..-22 and |bias| below 2^30 - bound.
    assert _pointwise_channel_form(0, 5, 0, 0) == 1
    assert _pointwise_channel_form(1 << 30, -22, (1 << 30) - 101, 100) == 1
    assert _pointwise_channel_form(1 << 30, -22, (1 << 30) - 100, 100) == 2
    assert _pointwise_channel_form(1 << 30, -1, (1 << 30) - 100, 100) == 0  # wide needs -2..-31
    assert _pointwise_channel_form(1 << 30, -31, 0, 0) == 2 and _pointwise_channel_form(-1, -31, 0, 0) == 0
