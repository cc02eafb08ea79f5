"""ctypes access to the portable C kernels, for the kernel tests.

The kernels are compiled (strict C99 flags) into a shared library once per
source hash; each wrapper takes the same params dataclass and arrays as the
NumPy reference in si4tool.compiler.kernel_reference and returns the int8 output.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
from pathlib import Path

import numpy as np

from si4tool.compiler import kernel_reference as ref
from si4tool.targets.toolchain import compile_shared_library, kernel_include_dir, portable_kernel_sources

BUILD_DIR = Path(__file__).resolve().parent.parent / "build" / "test_kernels"

_I32 = ctypes.c_int32


def _struct(name: str, fields: list[str]) -> type[ctypes.Structure]:
    return type(name, (ctypes.Structure,), {"_fields_": [(f, _I32) for f in fields]})


# Field order is that of si4_nn.h; test_kernels checks it against the header.
Conv2DStruct = _struct("si4_conv2d_params", [f.name for f in dataclasses.fields(ref.Conv2DParams)])
PoolStruct = _struct("si4_pool_params", [f.name for f in dataclasses.fields(ref.PoolParams)])
FullyConnectedStruct = _struct(
    "si4_fully_connected_params", [f.name for f in dataclasses.fields(ref.FullyConnectedParams)]
)
SoftmaxStruct = _struct("si4_softmax_params", [f.name for f in dataclasses.fields(ref.SoftmaxParams)])
DepthwiseConv2DStruct = _struct(
    "si4_depthwise_conv2d_params", [f.name for f in dataclasses.fields(ref.DepthwiseConv2DParams)]
)

STRUCTS = {
    "si4_conv2d_params": Conv2DStruct,
    "si4_pool_params": PoolStruct,
    "si4_fully_connected_params": FullyConnectedStruct,
    "si4_softmax_params": SoftmaxStruct,
    "si4_depthwise_conv2d_params": DepthwiseConv2DStruct,
}


def _to_struct(struct_type, params):
    return struct_type(**dataclasses.asdict(params))


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


def conv2d_s8(p: ref.Conv2DParams, input, filter, bias, output_multiplier, output_shift) -> np.ndarray:
    x, w = _int8(input), _int8(filter)
    m, s, b = _quant_arrays(output_multiplier, output_shift, bias)
    out = np.zeros((p.output_height, p.output_width, p.output_channels), dtype=np.int8)
    struct = _to_struct(Conv2DStruct, p)
    library().si4_conv2d_s8(
        ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8), _bias_ptr(b),
        _ptr(m, ctypes.c_int32), _ptr(s, ctypes.c_int32), _ptr(out, ctypes.c_int8),
    )  # fmt: skip
    return out


def conv2d_max_pool_s8(
    conv: ref.Conv2DParams, pool: ref.PoolParams, input, filter, bias, output_multiplier, output_shift
) -> np.ndarray:
    x, w = _int8(input), _int8(filter)
    m, s, b = _quant_arrays(output_multiplier, output_shift, bias)
    out = np.zeros((pool.output_height, pool.output_width, conv.output_channels), dtype=np.int8)
    conv_struct = _to_struct(Conv2DStruct, conv)
    pool_struct = _to_struct(PoolStruct, pool)
    library().si4_conv2d_max_pool_s8(
        ctypes.byref(conv_struct), ctypes.byref(pool_struct), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8),
        _bias_ptr(b), _ptr(m, ctypes.c_int32), _ptr(s, ctypes.c_int32), _ptr(out, ctypes.c_int8),
    )  # fmt: skip
    return out


def depthwise_conv2d_s8(
    p: ref.DepthwiseConv2DParams, input, filter, bias, output_multiplier, output_shift
) -> np.ndarray:
    x, w = _int8(input), _int8(filter)
    m, s, b = _quant_arrays(output_multiplier, output_shift, bias)
    out = np.zeros((p.output_height, p.output_width, p.output_channels), dtype=np.int8)
    struct = _to_struct(DepthwiseConv2DStruct, p)
    library().si4_depthwise_conv2d_s8(
        ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8), _bias_ptr(b),
        _ptr(m, ctypes.c_int32), _ptr(s, ctypes.c_int32), _ptr(out, ctypes.c_int8),
    )  # fmt: skip
    return out


def fully_connected_s8(
    p: ref.FullyConnectedParams, input, filter, bias, output_multiplier, output_shift
) -> np.ndarray:
    x, w = _int8(input), _int8(filter)
    m, s, b = _quant_arrays(output_multiplier, output_shift, bias)
    out = np.zeros(p.output_size, dtype=np.int8)
    struct = _to_struct(FullyConnectedStruct, p)
    library().si4_fully_connected_s8(
        ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8), _bias_ptr(b),
        _ptr(m, ctypes.c_int32), _ptr(s, ctypes.c_int32), _ptr(out, ctypes.c_int8),
    )  # fmt: skip
    return out


def _pool(name: str, p: ref.PoolParams, input) -> np.ndarray:
    x = _int8(input)
    out = np.zeros((p.output_height, p.output_width, p.channels), dtype=np.int8)
    struct = _to_struct(PoolStruct, p)
    getattr(library(), name)(ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(out, ctypes.c_int8))
    return out


def max_pool_s8(p: ref.PoolParams, input) -> np.ndarray:
    return _pool("si4_max_pool_s8", p, input)


def avg_pool_s8(p: ref.PoolParams, input) -> np.ndarray:
    return _pool("si4_avg_pool_s8", p, input)


def softmax_s8(p: ref.SoftmaxParams, input) -> np.ndarray:
    x = _int8(input)
    out = np.zeros((p.rows, p.row_size), dtype=np.int8)
    struct = _to_struct(SoftmaxStruct, p)
    library().si4_softmax_s8(ctypes.byref(struct), _ptr(x, ctypes.c_int8), _ptr(out, ctypes.c_int8))
    return out
