"""Read an int8 .tflite flatbuffer into plain Python objects, without TensorFlow.

TensorFlow's generated schema module is not importable in every build and the
`flatbuffers` package carries no TFLite schema, so this module reads the few
tables si4tool needs directly. Field ids and enum values follow
tensorflow/compiler/mlir/lite/schema/schema.fbs (TFLite schema version 3).

Flatbuffer layout, in one paragraph: the file starts with a uoffset (u32) to
the root table; bytes 4..8 are the file identifier "TFL3". A table starts with
an soffset (i32) back to its vtable; the vtable holds its own size (u16), the
table's size (u16) and one u16 offset per field (0 = absent, use the default).
Offsets to sub-tables, vectors and strings are u32, relative to where they are
stored. A vector is a u32 length followed by its elements. A union field takes
two ids: its type (u8) and then its value (an offset to the table).

Every read is bounds-checked: a truncated or mutated file raises UserError,
never IndexError or struct.error (this reader is fuzzed in the tests).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from si4tool.errors import UserError

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"

# enum TensorType
TENSOR_TYPE_NAMES = {
    0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING", 6: "BOOL", 7: "INT16",
    8: "COMPLEX64", 9: "INT8", 10: "FLOAT64", 11: "COMPLEX128", 12: "UINT64", 13: "RESOURCE", 14: "VARIANT",
    15: "UINT32", 16: "UINT16", 17: "INT4", 18: "BFLOAT16", 19: "INT2", 20: "UINT4",
    21: "FLOAT8_E4M3FN", 22: "FLOAT8_E5M2",
}
TENSOR_TYPE_INT8 = 9
TENSOR_TYPE_INT32 = 2
TENSOR_TYPE_FLOAT32 = 0

# enum ActivationFunctionType
ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

# enum BuiltinOperator (names for messages; the lowering matches on these names)
BUILTIN_OPERATOR_NAMES = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 7: "EMBEDDING_LOOKUP", 8: "FLOOR", 9: "FULLY_CONNECTED",
    10: "HASHTABLE_LOOKUP", 11: "L2_NORMALIZATION", 12: "L2_POOL_2D", 13: "LOCAL_RESPONSE_NORMALIZATION",
    14: "LOGISTIC", 15: "LSH_PROJECTION", 16: "LSTM", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU",
    20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 24: "RNN", 25: "SOFTMAX",
    26: "SPACE_TO_DEPTH", 27: "SVDF", 28: "TANH", 29: "CONCAT_EMBEDDINGS", 30: "SKIP_GRAM", 31: "CALL",
    32: "CUSTOM", 33: "EMBEDDING_LOOKUP_SPARSE", 34: "PAD", 35: "UNIDIRECTIONAL_SEQUENCE_RNN", 36: "GATHER",
    37: "BATCH_TO_SPACE_ND", 38: "SPACE_TO_BATCH_ND", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 42: "DIV",
    43: "SQUEEZE", 44: "UNIDIRECTIONAL_SEQUENCE_LSTM", 45: "STRIDED_SLICE", 46: "BIDIRECTIONAL_SEQUENCE_RNN",
    47: "EXP", 48: "TOPK_V2", 49: "SPLIT", 50: "LOG_SOFTMAX", 51: "DELEGATE",
    52: "BIDIRECTIONAL_SEQUENCE_LSTM", 53: "CAST", 54: "PRELU", 55: "MAXIMUM", 56: "ARG_MAX", 57: "MINIMUM",
    58: "LESS", 59: "NEG", 60: "PADV2", 61: "GREATER", 62: "GREATER_EQUAL", 63: "LESS_EQUAL", 64: "SELECT",
    65: "SLICE", 66: "SIN", 67: "TRANSPOSE_CONV", 68: "SPARSE_TO_DENSE", 69: "TILE", 70: "EXPAND_DIMS",
    71: "EQUAL", 72: "NOT_EQUAL", 73: "LOG", 74: "SUM", 75: "SQRT", 76: "RSQRT", 77: "SHAPE", 78: "POW",
    79: "ARG_MIN", 80: "FAKE_QUANT", 81: "REDUCE_PROD", 82: "REDUCE_MAX", 83: "PACK", 84: "LOGICAL_OR",
    85: "ONE_HOT", 86: "LOGICAL_AND", 87: "LOGICAL_NOT", 88: "UNPACK", 89: "REDUCE_MIN", 90: "FLOOR_DIV",
    91: "REDUCE_ANY", 92: "SQUARE", 93: "ZEROS_LIKE", 94: "FILL", 95: "FLOOR_MOD", 96: "RANGE",
    97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU", 99: "SQUARED_DIFFERENCE", 100: "MIRROR_PAD", 101: "ABS",
    102: "SPLIT_V", 103: "UNIQUE", 104: "CEIL", 105: "REVERSE_V2", 106: "ADD_N", 107: "GATHER_ND", 108: "COS",
    109: "WHERE", 110: "RANK", 111: "ELU", 112: "REVERSE_SEQUENCE", 113: "MATRIX_DIAG", 114: "QUANTIZE",
    115: "MATRIX_SET_DIAG", 116: "ROUND", 117: "HARD_SWISH", 118: "IF", 119: "WHILE",
    120: "NON_MAX_SUPPRESSION_V4", 121: "NON_MAX_SUPPRESSION_V5", 122: "SCATTER_ND", 123: "SELECT_V2",
    124: "DENSIFY", 125: "SEGMENT_SUM", 126: "BATCH_MATMUL", 127: "PLACEHOLDER_FOR_GREATER_OP_CODES",
    128: "CUMSUM", 129: "CALL_ONCE", 130: "BROADCAST_TO", 131: "RFFT2D", 132: "CONV_3D", 133: "IMAG",
    134: "REAL", 135: "COMPLEX_ABS", 136: "HASHTABLE", 137: "HASHTABLE_FIND", 138: "HASHTABLE_IMPORT",
    139: "HASHTABLE_SIZE", 140: "REDUCE_ALL", 141: "CONV_3D_TRANSPOSE", 142: "VAR_HANDLE",
    143: "READ_VARIABLE", 144: "ASSIGN_VARIABLE", 145: "BROADCAST_ARGS", 146: "RANDOM_STANDARD_NORMAL",
    147: "BUCKETIZE", 148: "RANDOM_UNIFORM", 149: "MULTINOMIAL", 150: "GELU", 151: "DYNAMIC_UPDATE_SLICE",
    152: "RELU_0_TO_1", 153: "UNSORTED_SEGMENT_PROD", 154: "UNSORTED_SEGMENT_MAX",
    155: "UNSORTED_SEGMENT_SUM", 156: "ATAN2", 157: "UNSORTED_SEGMENT_MIN", 158: "SIGN", 159: "BITCAST",
    160: "BITWISE_XOR", 161: "RIGHT_SHIFT", 162: "STABLEHLO_LOGISTIC", 163: "STABLEHLO_ADD",
    164: "STABLEHLO_DIVIDE", 165: "STABLEHLO_MULTIPLY", 166: "STABLEHLO_MAXIMUM", 167: "STABLEHLO_RESHAPE",
    168: "STABLEHLO_CLAMP", 169: "STABLEHLO_CONCATENATE", 170: "STABLEHLO_BROADCAST_IN_DIM",
    171: "STABLEHLO_CONVOLUTION", 172: "STABLEHLO_SLICE", 173: "STABLEHLO_CUSTOM_CALL",
    174: "STABLEHLO_REDUCE", 175: "STABLEHLO_ABS", 176: "STABLEHLO_AND", 177: "STABLEHLO_COSINE",
    178: "STABLEHLO_EXPONENTIAL", 179: "STABLEHLO_FLOOR", 180: "STABLEHLO_LOG", 181: "STABLEHLO_MINIMUM",
    182: "STABLEHLO_NEGATE", 183: "STABLEHLO_OR", 184: "STABLEHLO_POWER", 185: "STABLEHLO_REMAINDER",
    186: "STABLEHLO_RSQRT", 187: "STABLEHLO_SELECT", 188: "STABLEHLO_SUBTRACT", 189: "STABLEHLO_TANH",
    190: "STABLEHLO_SCATTER", 191: "STABLEHLO_COMPARE", 192: "STABLEHLO_CONVERT",
    193: "STABLEHLO_DYNAMIC_SLICE", 194: "STABLEHLO_DYNAMIC_UPDATE_SLICE", 195: "STABLEHLO_PAD",
    196: "STABLEHLO_IOTA", 197: "STABLEHLO_DOT_GENERAL", 198: "STABLEHLO_REDUCE_WINDOW",
    199: "STABLEHLO_SORT", 200: "STABLEHLO_WHILE", 201: "STABLEHLO_GATHER", 202: "STABLEHLO_TRANSPOSE",
    203: "DILATE", 204: "STABLEHLO_RNG_BIT_GENERATOR", 205: "REDUCE_WINDOW", 206: "STABLEHLO_COMPOSITE",
    207: "STABLEHLO_SHIFT_LEFT", 208: "STABLEHLO_CBRT", 209: "STABLEHLO_CASE",
}



@dataclass(frozen=True)
class OptionLayout:
    """One builtin options table of schema.fbs, as far as si4tool reads it.

    union_type is the table's id in `union BuiltinOptions`; each field is (name, field id,
    struct code, default): "b"/"B" for byte enums and bools, "i" int32, "f" float32, and
    "[i" a vector of int32. The operator modules declare the layouts they need
    (si4tool/compiler/ops/), so the reader knows no operator.
    """

    union_type: int
    table: str  # e.g. "Conv2DOptions", for messages
    fields: tuple[tuple[str, int, str, object], ...]


# Keep a fuzzed length from allocating gigabytes before the bounds check fails.
_MAX_VECTOR_LENGTH = 1 << 28


class _Malformed(Exception):
    """Internal: the bytes do not form the flatbuffer we expect (becomes a UserError)."""


@dataclass(frozen=True)
class Quantization:
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type: int
    buffer: int
    quantization: Quantization | None
    data: bytes | None  # constant contents, None for activations

    @property
    def type_name(self) -> str:
        return TENSOR_TYPE_NAMES.get(self.type, f"type {self.type}")


@dataclass(frozen=True)
class Operator:
    index: int
    builtin_code: int
    custom_code: str | None
    inputs: tuple[int, ...]  # tensor indices, -1 = optional input absent
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.custom_code is not None:
            return f"CUSTOM({self.custom_code})"
        return BUILTIN_OPERATOR_NAMES.get(self.builtin_code, f"BUILTIN_{self.builtin_code}")


@dataclass(frozen=True)
class TfliteModel:
    version: int
    tensors: tuple[Tensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[Operator, ...]


class _Reader:
    """Bounds-checked access to flatbuffer tables, vectors and strings in `data`."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def _unpack(self, fmt: str, pos: int):
        width = struct.calcsize(fmt)
        if pos < 0 or pos + width > self.size:
            raise _Malformed(f"read of {width} bytes at offset {pos} is past the end ({self.size} bytes)")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def root(self) -> int:
        return self.table_at(self.u32(0))

    def table_at(self, pos: int) -> int:
        vtable = pos - self._unpack("<i", pos)
        vtable_size = self._unpack("<H", vtable)
        if vtable_size < 4 or vtable_size % 2:
            raise _Malformed(f"vtable at offset {vtable} has an invalid size {vtable_size}")
        self._unpack("<H", vtable + vtable_size - 2)  # the whole vtable is inside the file
        return pos

    def _field_pos(self, table: int, field_id: int) -> int | None:
        vtable = table - self._unpack("<i", table)
        vtable_size = self._unpack("<H", vtable)
        slot = 4 + 2 * field_id
        if slot + 2 > vtable_size:
            return None
        offset = self._unpack("<H", vtable + slot)
        return table + offset if offset else None

    def scalar(self, table: int, field_id: int, fmt: str, default):
        pos = self._field_pos(table, field_id)
        return default if pos is None else self._unpack(fmt, pos)

    def _indirect(self, table: int, field_id: int) -> int | None:
        pos = self._field_pos(table, field_id)
        return None if pos is None else pos + self.u32(pos)

    def table(self, table: int, field_id: int) -> int | None:
        pos = self._indirect(table, field_id)
        return None if pos is None else self.table_at(pos)

    def _vector(self, table: int, field_id: int, element_size: int) -> tuple[int, int] | None:
        pos = self._indirect(table, field_id)
        if pos is None:
            return None
        length = self.u32(pos)
        if length > _MAX_VECTOR_LENGTH or pos + 4 + length * element_size > self.size:
            raise _Malformed(f"vector of {length} elements at offset {pos} runs past the end of the file")
        return pos + 4, length

    def scalars(self, table: int, field_id: int, code: str) -> tuple:
        vector = self._vector(table, field_id, struct.calcsize(code))
        if vector is None:
            return ()
        start, length = vector
        return struct.unpack_from(f"<{length}{code}", self.data, start)

    def raw_bytes(self, table: int, field_id: int) -> bytes | None:
        vector = self._vector(table, field_id, 1)
        if vector is None:
            return None
        start, length = vector
        return bytes(self.data[start : start + length])

    def string(self, table: int, field_id: int) -> str | None:
        raw = self.raw_bytes(table, field_id)
        return None if raw is None else raw.decode("utf-8", errors="replace")

    def tables(self, table: int, field_id: int) -> list[int]:
        vector = self._vector(table, field_id, 4)
        if vector is None:
            return []
        start, length = vector
        return [self.table_at(start + 4 * i + self.u32(start + 4 * i)) for i in range(length)]


def _read_quantization(reader: _Reader, tensor: int) -> Quantization | None:
    # table QuantizationParameters: min 0, max 1, scale 2, zero_point 3, details 4-5, quantized_dimension 6
    table = reader.table(tensor, 4)
    if table is None:
        return None
    scale = reader.scalars(table, 2, "f")
    if not scale:
        return None
    zero_point = reader.scalars(table, 3, "q")
    return Quantization(tuple(scale), tuple(zero_point), reader.scalar(table, 6, "<i", 0))


def _read_options(reader: _Reader, operator: int, layouts: dict[int, OptionLayout]) -> dict:
    """The builtin options of an operator whose options table is in `layouts`; others are ignored."""
    # table Operator: builtin_options_type 3 (u8), builtin_options 4
    kind = reader.scalar(operator, 3, "<B", 0)
    layout = layouts.get(kind)
    table = reader.table(operator, 4)
    if layout is None or table is None:
        return {}
    options = {}
    for name, field_id, code, default in layout.fields:
        if code.startswith("["):
            options[name] = tuple(reader.scalars(table, field_id, code[1:]))
        else:
            value = reader.scalar(table, field_id, "<" + code, default)
            options[name] = bool(value) if code == "B" else value
    return options


def _read_buffers(reader: _Reader, model: int) -> list[bytes | None]:
    # table Buffer: data 0, offset 1, size 2. offset/size (models over 2 GB) point
    # into the file past the flatbuffer; the offset is only meaningful when > 1.
    buffers: list[bytes | None] = []
    for buffer in reader.tables(model, 4):
        data = reader.raw_bytes(buffer, 0)
        offset = reader.scalar(buffer, 1, "<Q", 0)
        size = reader.scalar(buffer, 2, "<Q", 0)
        if offset > 1:
            if offset + size > reader.size:
                raise _Malformed(f"buffer {len(buffers)} ({size} bytes at offset {offset}) is past the end of the file")
            data = bytes(reader.data[offset : offset + size])
        buffers.append(data if data else None)
    return buffers


def _check_tensor_indices(indices: tuple[int, ...], tensor_count: int, what: str, allow_absent: bool) -> None:
    for index in indices:
        if not (0 <= index < tensor_count or (allow_absent and index == -1)):
            raise _Malformed(f"{what} refers to tensor {index}, but the subgraph has {tensor_count} tensors")


def _parse(data: bytes, layouts: dict[int, OptionLayout]) -> TfliteModel:
    reader = _Reader(data)
    if len(data) < 8:
        raise _Malformed(f"the file is only {len(data)} bytes long")
    if data[4:8] != FILE_IDENTIFIER:
        raise _Malformed(f"the file identifier is {bytes(data[4:8])!r}, expected {FILE_IDENTIFIER!r}")
    model = reader.root()
    # table Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4
    version = reader.scalar(model, 0, "<I", 0)
    if version != SCHEMA_VERSION:
        raise _Malformed(f"schema version {version}, expected {SCHEMA_VERSION}")

    opcodes: list[tuple[int, str | None]] = []
    for code in reader.tables(model, 1):
        # table OperatorCode: deprecated_builtin_code 0 (i8), custom_code 1, version 2, builtin_code 3 (i32).
        # Old writers fill only the deprecated byte, new ones both: TFLite takes the larger.
        builtin = max(reader.scalar(code, 0, "<b", 0), reader.scalar(code, 3, "<i", 0))
        opcodes.append((builtin, reader.string(code, 1) if builtin == 32 else None))

    subgraphs = reader.tables(model, 2)
    if not subgraphs:
        raise _Malformed("it has no subgraph")
    buffers = _read_buffers(reader, model)
    subgraph = subgraphs[0]

    tensors = []
    # table SubGraph: tensors 0, inputs 1, outputs 2, operators 3, name 4
    # table Tensor: shape 0, type 1, buffer 2, name 3, quantization 4
    for index, tensor in enumerate(reader.tables(subgraph, 0)):
        buffer = reader.scalar(tensor, 2, "<I", 0)
        if buffer >= max(len(buffers), 1):
            raise _Malformed(f"tensor {index} refers to buffer {buffer}, but the model has {len(buffers)} buffers")
        tensors.append(
            Tensor(
                index=index,
                name=reader.string(tensor, 3) or f"tensor_{index}",
                shape=tuple(reader.scalars(tensor, 0, "i")),
                type=reader.scalar(tensor, 1, "<b", 0),
                buffer=buffer,
                quantization=_read_quantization(reader, tensor),
                data=buffers[buffer] if buffers else None,
            )
        )

    inputs = tuple(reader.scalars(subgraph, 1, "i"))
    outputs = tuple(reader.scalars(subgraph, 2, "i"))
    _check_tensor_indices(inputs, len(tensors), "the subgraph input", allow_absent=False)
    _check_tensor_indices(outputs, len(tensors), "the subgraph output", allow_absent=False)

    operators = []
    # table Operator: opcode_index 0, inputs 1, outputs 2, builtin_options_type 3, builtin_options 4
    for index, operator in enumerate(reader.tables(subgraph, 3)):
        opcode_index = reader.scalar(operator, 0, "<I", 0)
        if opcode_index >= len(opcodes):
            raise _Malformed(f"operator {index} uses opcode {opcode_index}, but the model has {len(opcodes)}")
        builtin, custom = opcodes[opcode_index]
        op_inputs = tuple(reader.scalars(operator, 1, "i"))
        op_outputs = tuple(reader.scalars(operator, 2, "i"))
        _check_tensor_indices(op_inputs, len(tensors), f"operator {index}", allow_absent=True)
        _check_tensor_indices(op_outputs, len(tensors), f"operator {index}", allow_absent=False)
        operators.append(Operator(index, builtin, custom, op_inputs, op_outputs, _read_options(reader, operator, layouts)))

    return TfliteModel(version, tuple(tensors), inputs, outputs, tuple(operators))


def read_tflite(data: bytes, source: str = "the model", option_layouts: tuple[OptionLayout, ...] | None = None) -> TfliteModel:
    """Parse a .tflite flatbuffer; anything malformed raises UserError naming `source`.

    option_layouts: the builtin options tables to read into Operator.options; by default those
    the operator modules declare (si4tool.compiler.ops.option_layouts()), () for none."""
    if option_layouts is None:
        from si4tool.compiler import ops  # the operator modules import this reader

        option_layouts = ops.option_layouts()
    layouts = {layout.union_type: layout for layout in option_layouts}
    try:
        return _parse(memoryview(bytes(data)).tobytes(), layouts)
    except _Malformed as error:
        raise UserError(f"{source} is not a valid TFLite model: {error}") from None
    except (struct.error, IndexError, ValueError, OverflowError, RecursionError, MemoryError) as error:
        # Defence in depth: the checks above should catch every malformed input first.
        raise UserError(f"{source} is not a valid TFLite model: {error}") from None


def operator_names(data: bytes, source: str = "the model") -> list[str]:
    """The builtin names of a .tflite's operators, in execution order (e.g. ["QUANTIZE", "CONV_2D", ...])."""
    return [operator.name for operator in read_tflite(data, source).operators]


FLOAT_TENSOR_TYPES = frozenset({0, 1, 10, 18})  # FLOAT32, FLOAT16, FLOAT64, BFLOAT16


def float_operators(data: bytes, source: str = "the model") -> list[str]:
    """The builtin names of the operators that read or write a floating-point tensor, in order."""
    model = read_tflite(data, source)
    return [
        operator.name
        for operator in model.operators
        if any(index >= 0 and model.tensors[index].type in FLOAT_TENSOR_TYPES for index in (*operator.inputs, *operator.outputs))
    ]
