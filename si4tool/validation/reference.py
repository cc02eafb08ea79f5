"""Reference runners over batches of images: TensorFlow Lite Micro (the arithmetic a
microcontroller runs), LiteRT (default and reference op resolvers) and Keras (float).

TFLM's Python interpreter takes about 3 ms per image, so its outputs are cached in an
.npz keyed by sha256(model) and sha256(inputs): re-running validation is quick.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import numpy as np

from si4tool.errors import UserError
from si4tool.stderr_capture import CapturedStderr

# The caller says where the cache is (the CLI: build/cache, through this variable); no folder, no cache.
CACHE_DIR_ENV_VAR = "SI4_CACHE_DIR"
# Runs at least this long show a progress bar (TFLM: about 1.5 s).
PROGRESS_MIN_IMAGES = 500
OP_RESOLVERS = ("default", "reference")
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def _cache_path(runner: str, tflite_bytes: bytes, inputs: np.ndarray, cache_dir: Path | None) -> Path | None:
    folder = cache_dir or os.environ.get(CACHE_DIR_ENV_VAR)
    if not folder:
        return None
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(tflite_bytes).digest())
    digest.update(str(inputs.dtype).encode() + str(inputs.shape).encode())
    digest.update(np.ascontiguousarray(inputs).tobytes())
    return Path(folder) / f"{runner}-{digest.hexdigest()[:40]}.npz"


def _load_cached(path: Path, count: int) -> np.ndarray | None:
    try:
        with np.load(path) as archive:
            outputs = archive["outputs"]
    except (OSError, ValueError, KeyError, EOFError):
        return None  # absent or damaged: recompute
    return outputs if outputs.shape[0] == count else None


def _store_cached(path: Path, outputs: np.ndarray) -> None:
    """Best effort and atomic: a read-only or full disk only costs the next run time."""
    from si4tool.render import write_file_atomically

    archive = io.BytesIO()
    np.savez(archive, outputs=outputs)
    try:
        write_file_atomically(path, archive.getvalue())
    except OSError:
        pass


def _check_images(images: np.ndarray) -> np.ndarray:
    """A batch of inputs of any rank: (N, features), (N, H, W, C), ... (batch 1 per inference)."""
    images = np.asarray(images)
    if images.ndim < 2 or not (images.dtype == np.int8 or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"expected int8 or float inputs (N, *input shape), got {images.dtype} {images.shape}")
    return images


def interpreter_inputs(tflite_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """What the model's input tensor takes for these (N, *input shape) inputs.

    images: float in the units the model was trained on (x / 255 for MNIST), or int8 already
    quantized for the engine. An int8-input model gets float images quantized as the firmware
    and the test vectors do (quantize.quantize_input with the engine's input quantization); a
    float-input model (a QUANTIZE first, see lowering.ModelEdges) gets the float32 images themselves,
    so TFLite's own QUANTIZE op runs and the engine is compared with it. int8 images for a
    float-input model are refused: the float values they came from are gone.
    """
    from si4tool.compiler.lowering import engine_edges
    from si4tool.compiler.quant_math import quantize_input

    images = _check_images(images)
    edges = engine_edges(tflite_bytes)
    if edges.float_input:
        if images.dtype == np.int8:
            raise ValueError("this model takes float32 input (QUANTIZE first): pass the float images, not int8")
        return np.ascontiguousarray(images, dtype=np.float32)
    if images.dtype != np.int8:
        images = quantize_input(images, *edges.input_quantization)
    return np.ascontiguousarray(images)


def _int8_reader(scale: float | None, zero_point: int):
    """Identity for an int8 output; the inverse of its DEQUANTIZE for a float one (see engine_output_reader)."""
    if scale is None:
        return lambda output: np.asarray(output)

    def read(output: np.ndarray) -> np.ndarray:
        steps = np.asarray(output, dtype=np.float64) / scale
        q = np.round(steps) + zero_point
        if np.any(np.abs(steps + zero_point - q) > 0.01) or np.any(q < -128) or np.any(q > 127):
            raise RuntimeError("the model's float output is not a dequantized int8 tensor")
        return q.astype(np.int8)

    return read


def engine_output_reader(tflite_bytes: bytes):
    """A function turning the interpreter's output 0 into the engine's int8 output 0.

    For a float-output model (a DEQUANTIZE last) the int8 tensor before the DEQUANTIZE is
    recovered by inverting it: TFLite computes f = float32(scale * (q - zero_point)) with a
    double scale, so f / scale is within 255 * 2**-24 of the integer q - zero_point and
    rounding gives q back exactly (checked on every call: a residual above 0.01 raises).
    """
    return engine_outputs_reader(tflite_bytes)[0]


def engine_outputs_reader(tflite_bytes: bytes) -> list:
    """engine_output_reader for every model output, in the model's output order."""
    from si4tool.compiler.lowering import engine_edges

    edges = engine_edges(tflite_bytes)
    return [
        _int8_reader(None if dequantize is None else quantization[0], quantization[1])
        for quantization, dequantize in zip(edges.outputs_quantization, edges.outputs_dequantize)
    ]


def _concatenated(readers, outputs) -> np.ndarray:
    """The engine's output buffer: every int8 output, flattened, concatenated in the model's order."""
    return np.concatenate([read(output).reshape(-1) for read, output in zip(readers, outputs)])


def _progress(total: int, description: str, quiet: bool):
    """A Rich progress bar on stderr for long runs; a no-op otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    enabled = not quiet and total >= PROGRESS_MIN_IMAGES
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True, disable=not enabled,
    )
    return progress


def _run_per_image(interpreter_step, inputs: np.ndarray, output_shape: tuple[int, ...], description: str, quiet: bool):
    outputs = np.empty((inputs.shape[0],) + output_shape, dtype=np.int8)
    with _progress(inputs.shape[0], description, quiet) as progress:
        task = progress.add_task(description, total=inputs.shape[0])
        for index in range(inputs.shape[0]):
            outputs[index] = interpreter_step(inputs[index : index + 1]).reshape(output_shape)
            if index % 100 == 99 or index == inputs.shape[0] - 1:
                progress.update(task, completed=index + 1)
    return outputs


def tflm_interpreter(tflite_bytes: bytes, arena_size: int | None = None):
    from tflite_micro.python.tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(tflite_bytes, arena_size=arena_size)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"TensorFlow Lite Micro cannot load the .tflite model ({reason[:200]}).") from None


def tflm_outputs(
    tflite_bytes: bytes, images: np.ndarray, cache_dir: Path | None = None, use_cache: bool = True, quiet: bool = False
) -> np.ndarray:
    """(N, H, W, C) images -> (N, classes) int8 engine outputs of the TFLite Micro interpreter, one image at a time
    (a model with several outputs: (N, total), every output flattened and concatenated in the model's order).

    images: float (model units) or int8, see interpreter_inputs; the output is always the int8
    tensor the C engine writes (before a float model's DEQUANTIZE). Cached by model and by the
    exact values fed to the interpreter."""
    inputs = interpreter_inputs(tflite_bytes, images)
    cache = _cache_path("tflm", tflite_bytes, inputs, cache_dir) if use_cache else None
    if cache is not None and (cached := _load_cached(cache, inputs.shape[0])) is not None:
        return cached
    interpreter = tflm_interpreter(tflite_bytes)
    readers = engine_outputs_reader(tflite_bytes)
    shapes = [tuple(int(d) for d in interpreter.get_output_details(i)["shape"][1:]) for i in range(len(readers))]
    # One output: its shape, as always; several: the engine's buffer, (N, total) flat.
    output_shape = shapes[0] if len(shapes) == 1 else (sum(int(np.prod(shape)) for shape in shapes),)

    def step(image: np.ndarray) -> np.ndarray:
        interpreter.set_input(image, 0)
        interpreter.invoke()
        return _concatenated(readers, [interpreter.get_output(i) for i in range(len(readers))])

    outputs = _run_per_image(step, inputs, output_shape, "TFLite Micro", quiet)
    if cache is not None:
        _store_cached(cache, outputs)
    return outputs


def tflm_allocation_report(tflite_bytes: bytes) -> str:
    """The text of TFLM's RecordingMicroAllocator report after one inference (print_allocations())."""
    interpreter = tflm_interpreter(tflite_bytes)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(tuple(details["shape"]), dtype=details["dtype"]), 0)
    interpreter.invoke()
    with CapturedStderr() as captured:
        interpreter.print_allocations()
    return captured.text


def tflm_arena_bytes(tflite_bytes: bytes) -> int:
    """Arena bytes TFLM uses for this model: 'Arena allocation total' of its recording allocator
    (head: planned activation buffers; tail: persistent tensors, node structs, kernel data)."""
    report = tflm_allocation_report(tflite_bytes)
    match = _ARENA_TOTAL.search(report)
    if match is None:
        raise RuntimeError(f"TFLM's allocation report has no arena total: {report[:300]!r}")
    return int(match.group(1))


def litert_interpreter(tflite_bytes: bytes, op_resolver: str = "default"):
    """A LiteRT interpreter on one thread, tensors allocated; op_resolver "reference" selects BUILTIN_REF kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if op_resolver not in OP_RESOLVERS:
        raise ValueError(f"op_resolver must be one of {OP_RESOLVERS}, got {op_resolver!r}")
    resolver = OpResolverType.BUILTIN_REF if op_resolver == "reference" else OpResolverType.AUTO
    with CapturedStderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate" is not for the user
        interpreter = Interpreter(model_content=tflite_bytes, num_threads=1, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    return interpreter


def litert_outputs(
    tflite_bytes: bytes, images: np.ndarray, op_resolver: str = "default", quiet: bool = False
) -> np.ndarray:
    """int8 engine outputs of the LiteRT interpreter, one thread; op_resolver "reference" selects BUILTIN_REF
    kernels. images: float (model units) or int8, as for tflm_outputs."""
    inputs = interpreter_inputs(tflite_bytes, images)
    readers = engine_outputs_reader(tflite_bytes)
    interpreter = litert_interpreter(tflite_bytes, op_resolver)
    input_index = interpreter.get_input_details()[0]["index"]
    details = interpreter.get_output_details()
    shapes = [tuple(int(d) for d in detail["shape"][1:]) for detail in details]
    output_shape = shapes[0] if len(shapes) == 1 else (sum(int(np.prod(shape)) for shape in shapes),)

    def step(image: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(input_index, image)
        interpreter.invoke()
        return _concatenated(readers, [interpreter.get_tensor(detail["index"]) for detail in details])

    return _run_per_image(step, inputs, output_shape, f"LiteRT ({op_resolver})", quiet)


def keras_outputs(model, x_float: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Float outputs (softmax probabilities for the seed model) of the Keras model."""
    return np.asarray(model.predict(np.asarray(x_float, dtype=np.float32), batch_size=batch_size, verbose=0))


def secondary_outputs(runner, *args, **kwargs) -> tuple[np.ndarray | None, str | None]:
    """(outputs, None) from a secondary reference (LiteRT, Keras), or (None, the reason) when it cannot run
    the model: LiteRT rejects some models TFLite Micro runs, and TFLite Micro is the one that decides."""
    try:
        return runner(*args, **kwargs), None
    except Exception as error:  # the interpreters raise RuntimeError, ValueError and their own types
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        return None, f"{type(error).__name__}: {reason}"
