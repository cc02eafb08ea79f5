"""Host latency per image, side by side: the C engine and the interpreters, timed around one inference each.

The C engine times itself in C (targets.host_engine.HostEngine.time_images); an interpreter is timed
here with time.perf_counter_ns around invoke() alone. Every timer has `time_images(x_int8, warmup)`
returning a host_engine.TimedPass, so measure_latency treats them alike.
"""

from __future__ import annotations

import time

import numpy as np

from si4tool.targets.host_engine import TimedPass

# Untimed inferences before each timed pass (caches, lazy allocation, XNNPACK packing).
WARMUP_IMAGES = 10


class InterpreterTimer:
    """A Python interpreter timed around invoke() alone; set/get of tensors are outside the clock."""

    def __init__(self, set_input, invoke, get_output, tflite_bytes: bytes):
        from si4tool.compiler.lowering import engine_edges
        from si4tool.validation.reference import engine_output_reader

        self._set_input = set_input
        self._invoke = invoke
        self._get_output = get_output
        self._edges = engine_edges(tflite_bytes)
        self._engine_output = engine_output_reader(tflite_bytes)

    def _interpreter_images(self, x_int8: np.ndarray) -> np.ndarray:
        """A float-input model (QUANTIZE first) takes the dequantized engine input: its
        own QUANTIZE turns that back into exactly the same int8 values."""
        if not self._edges.float_input:
            return x_int8
        scale, zero_point = self._edges.input_quantization
        return ((x_int8.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)

    def time_images(self, x_int8: np.ndarray, warmup: int) -> TimedPass:
        x_int8 = self._interpreter_images(x_int8)
        count = len(x_int8)
        for _ in range(warmup if count else 0):
            self._set_input(x_int8[0:1])
            self._invoke()
        ns = np.zeros(count, dtype=np.int64)
        outputs = None
        clock = time.perf_counter_ns
        for index in range(count):
            self._set_input(x_int8[index : index + 1])
            start = clock()
            self._invoke()
            ns[index] = clock() - start
            output = self._engine_output(np.asarray(self._get_output())).reshape(-1)
            if outputs is None:
                outputs = np.zeros((count, output.size), dtype=np.int8)
            outputs[index] = output
        return TimedPass(ns, outputs if outputs is not None else np.zeros((0, 0), dtype=np.int8))


def litert_timer(tflite_bytes: bytes, op_resolver: str) -> InterpreterTimer:
    from si4tool.validation.reference import litert_interpreter

    interpreter = litert_interpreter(tflite_bytes, op_resolver)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    return InterpreterTimer(
        lambda image: interpreter.set_tensor(input_index, image),
        interpreter.invoke,
        lambda: interpreter.get_tensor(output_index),
        tflite_bytes,
    )


def tflm_timer(tflite_bytes: bytes) -> InterpreterTimer:
    from si4tool.validation.reference import tflm_interpreter

    interpreter = tflm_interpreter(tflite_bytes)
    return InterpreterTimer(
        lambda image: interpreter.set_input(image, 0), interpreter.invoke, lambda: interpreter.get_output(0), tflite_bytes
    )


def measure_latency(timers: dict, x_int8: np.ndarray, repetitions: int, warmup: int = WARMUP_IMAGES) -> dict:
    """Per runtime: median µs per image (median of the repetitions' medians), the
    repetitions' medians, and how many outputs are identical to the C engine's."""
    rep_medians: dict[str, list[float]] = {name: [] for name in timers}
    last_outputs: dict[str, np.ndarray] = {}
    for _ in range(repetitions):
        # Interleaved: a slow spell of a shared machine hits every runtime, not one.
        for name, timer in timers.items():
            timed = timer.time_images(x_int8, warmup)
            rep_medians[name].append(float(np.median(timed.ns_per_image)) / 1000.0)
            last_outputs[name] = timed.outputs
    baseline = last_outputs.get("c_engine")
    results = {}
    for name, medians in rep_medians.items():
        entry = {
            "median_us": float(np.median(medians)),
            "repetition_medians_us": [round(m, 3) for m in medians],
        }
        if baseline is not None and last_outputs[name].shape == baseline.shape:
            entry["identical_outputs_to_c"] = int(np.sum(np.all(last_outputs[name] == baseline, axis=1)))
        results[name] = entry
    return results
