"""ctypes access to the portable C kernels, for the kernel tests.

The kernels are compiled (strict C99 flags) into a shared library once per
source hash; each wrapper takes the same params dataclass and arrays as the
NumPy reference of its operator module (si4tool/compiler/ops/) and returns
the int8 output. The ctypes structs are derived from the params dataclasses.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
from pathlib import Path

import numpy as np

from si4tool.compiler import ops
from si4tool.compiler.ops.add import AddParams
from si4tool.compiler.ops.conv2d import Conv2DParams, DepthwiseConv2DParams
from si4tool.compiler.ops.fully_connected import FullyConnectedParams
from si4tool.compiler.ops.pooling import PoolParams
from si4tool.compiler.ops.softmax import SoftmaxParams
from si4tool.targets.toolchain import compile_shared_library, kernel_include_dir, portable_kernel_sources

BUILD_DIR = Path(__file__).resolve().parent.parent / "build" / "test_kernels"

_I32 = ctypes.c_int32

# C struct name -> ctypes mirror, one per params dataclass of the ops modules (test_kernels
# checks each against si4_nn.h).
STRUCTS = {name: ops.ctypes_struct(params_type) for name, params_type in ops.params_types().items()}


def _to_struct(params):
    return STRUCTS[ops.c_struct_name(type(params))](**dataclasses.asdict(params))


def _int8(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=np.int8)


def _int32(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=np.int32)


def _ptr(array: np.ndarray, ctype):
    return array.ctypes.data_as(ctypes.POINTER(ctype))


@functools.cache
def library() -> ctypes.CDLL:
    path = compile_shared_library(
        portable_kernel_sources(), BUILD_DIR / "libsi4_kernels.so", include_dirs=[kernel_include_dir()]
    )
    return ctypes.CDLL(str(path))


@functools.cache
def requant_library() -> ctypes.CDLL:
    """The static inline helpers of si4_requant.h, exported for unit tests."""
    source = BUILD_DIR / "requant_exports.c"
    source.parent.mkdir(parents=True, exist_ok=True)
    text = (
        '#include "si4_requant.h"\n'
        "int32_t export_srdhm(int32_t a, int32_t b) { return si4_saturating_rounding_doubling_high_mul(a, b); }\n"
        "int32_t export_rdbpot(int32_t x, int32_t e) { return si4_rounding_divide_by_pot(x, e); }\n"
        "int32_t export_mbqm(int32_t x, int32_t m, int32_t s) "
        "{ return si4_multiply_by_quantized_multiplier(x, m, s); }\n"
    )
    if not source.exists() or source.read_text() != text:
        source.write_text(text)
    path = compile_shared_library([source], BUILD_DIR / "librequant.so", include_dirs=[kernel_include_dir()])
    lib = ctypes.CDLL(str(path))
    for name, argc in (("export_srdhm", 2), ("export_rdbpot", 2), ("export_mbqm", 3)):
        fn = getattr(lib, name)
        fn.argtypes = [_I32] * argc
        fn.restype = _I32
    return lib


def _quant_arrays(multiplier, shift, bias):
    bias_array = None if bias is None else _int32(bias)
    return _int32(multiplier), _int32(shift), bias_array


def _bias_ptr(bias_array):
    return None if bias_array is None else _ptr(bias_array, ctypes.c_int32)


def conv2d_s8(p: Conv2DParams, input, filter, bias, output_multiplier, output_shift) -> np.ndarray:
    x, w = _int8(input), _int8(filter)
    m, s, b = _quant_arrays(output_multiplier, output_shift, bias)
    out = np.zeros((p.output_height, p.output_width, p.output_channels), dtype=np.int8)
    struct = _to_struct(p)
    library().si4_conv2d_s8(
        ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8), _bias_ptr(b),
        _ptr(m, ctypes.c_int32), _ptr(s, ctypes.c_int32), _ptr(out, ctypes.c_int8),
    )  # fmt: skip
    return out


def conv2d_max_pool_s8(
    conv: Conv2DParams, pool: PoolParams, input, filter, bias, output_multiplier, output_shift
) -> np.ndarray:
    x, w = _int8(input), _int8(filter)
    m, s, b = _quant_arrays(output_multiplier, output_shift, bias)
    out = np.zeros((pool.output_height, pool.output_width, conv.output_channels), dtype=np.int8)
    conv_struct = _to_struct(conv)
    pool_struct = _to_struct(pool)
    library().si4_conv2d_max_pool_s8(
        ctypes.byref(conv_struct), ctypes.byref(pool_struct), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8),
        _bias_ptr(b), _ptr(m, ctypes.c_int32), _ptr(s, ctypes.c_int32), _ptr(out, ctypes.c_int8),
    )  # fmt: skip
    return out


def depthwise_conv2d_s8(
    p: DepthwiseConv2DParams, input, filter, bias, output_multiplier, output_shift
) -> np.ndarray:
    x, w = _int8(input), _int8(filter)
    m, s, b = _quant_arrays(output_multiplier, output_shift, bias)
    out = np.zeros((p.output_height, p.output_width, p.output_channels), dtype=np.int8)
    struct = _to_struct(p)
    library().si4_depthwise_conv2d_s8(
        ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8), _bias_ptr(b),
        _ptr(m, ctypes.c_int32), _ptr(s, ctypes.c_int32), _ptr(out, ctypes.c_int8),
    )  # fmt: skip
    return out


def fully_connected_s8(
    p: FullyConnectedParams, input, filter, bias, output_multiplier, output_shift
) -> np.ndarray:
    x, w = _int8(input), _int8(filter)
    m, s, b = _quant_arrays(output_multiplier, output_shift, bias)
    out = np.zeros(p.batches * p.output_size, dtype=np.int8)
    struct = _to_struct(p)
    library().si4_fully_connected_s8(
        ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8), _bias_ptr(b),
        _ptr(m, ctypes.c_int32), _ptr(s, ctypes.c_int32), _ptr(out, ctypes.c_int8),
    )  # fmt: skip
    return out


def _pool(name: str, p: PoolParams, input) -> np.ndarray:
    x = _int8(input)
    out = np.zeros((p.output_height, p.output_width, p.channels), dtype=np.int8)
    struct = _to_struct(p)
    getattr(library(), name)(ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(out, ctypes.c_int8))
    return out


def max_pool_s8(p: PoolParams, input) -> np.ndarray:
    return _pool("si4_max_pool_s8", p, input)


def avg_pool_s8(p: PoolParams, input) -> np.ndarray:
    return _pool("si4_avg_pool_s8", p, input)


def softmax_s8(p: SoftmaxParams, input) -> np.ndarray:
    x = _int8(input)
    out = np.zeros((p.rows, p.row_size), dtype=np.int8)
    struct = _to_struct(p)
    library().si4_softmax_s8(ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(out, ctypes.c_int8))
    return out


def add_s8(p: AddParams, input1, input2, output=None) -> np.ndarray:
    """si4_add_s8; pass `output` (one of the inputs) to run it in place."""
    x1, x2 = _int8(input1), _int8(input2)
    size = p.dim_0 * p.dim_1 * p.dim_2 * p.dim_3
    out = np.zeros(size, dtype=np.int8) if output is None else output
    library().si4_add_s8(ctypes.byref(_to_struct(p)), _ptr(x1, ctypes.c_int8), _ptr(x2, ctypes.c_int8), _ptr(out, ctypes.c_int8))
    return out
