"""`validate-host --trace`: find the first layer where the C engine and TFLite Micro part ways.

The C engine runs one layer at a time (si4_model_layers[] in model.c) and each
layer's output is read from wherever the planner put it; TFLite Micro runs
with every tensor preserved. The IR records, for each C layer, the TFLite
tensor its output corresponds to, so the two can be compared tensor by tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from si4tool.errors import UserError


@dataclass
class LayerDifference:
    image: int
    layer_index: int
    layer_name: str
    source: str
    position: tuple[int, ...]
    c_value: int
    reference_value: int
    differing_values: int


@dataclass
class TraceResult:
    images: list[int]
    layers: list[str]
    first_difference: LayerDifference | None
    reference: str = "TFLite Micro (all tensors preserved)"
    compared: int | None = None  # layers compared: fewer than `layers` when a schedule streams some

    @property
    def streamed(self) -> int:
        """Layers whose output a row-streamed schedule never materialises (so nothing to compare)."""
        return 0 if self.compared is None else len(self.layers) - self.compared


def _tflm_tensor_reader(tflite_bytes: bytes):
    from tflite_micro.python.tflite_micro import runtime

    # With every tensor preserved, small weightless models outgrow the runtime's default arena
    # (10 times the model's size): "Failed to allocate tail memory". A megabyte floor fits them.
    interpreter = runtime.Interpreter.from_bytes(
        tflite_bytes, arena_size=max(1 << 20, 10 * len(tflite_bytes)),
        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors,
    )

    def run(image: np.ndarray) -> None:
        interpreter.set_input(image, 0)
        interpreter.invoke()

    def tensor(index: int) -> np.ndarray:
        details = interpreter.GetTensor(index, 0)  # {"tensor_data", "shape", "dtype"}
        return np.asarray(details["tensor_data"]).reshape(tuple(int(d) for d in details["shape"]))

    return run, tensor


@dataclass
class IntermediateCheck:
    """Every layer output of the C engine against TFLite Micro's tensor, on the first inputs."""

    inputs: int  # inputs compared layer by layer
    inputs_identical: int  # of which every layer output was identical
    tensors: int  # layer outputs compared (inputs x layers)
    tensors_identical: int
    layers: int
    first_difference: LayerDifference | None


class _LayerComparer:
    """The C engine and TFLite Micro (all tensors preserved) on one input at a time, layer by layer."""

    def __init__(self, assets_dir: Path, build_dir: Path):
        from si4tool.compiler import passes
        from si4tool.compiler.lowering import lower_tflite
        from si4tool.targets.host_engine import build_host_engine

        assets_dir = Path(assets_dir)
        self.tflite_bytes = (assets_dir / "model_int8.tflite").read_bytes()
        self.graph = passes.run_passes(lower_tflite(self.tflite_bytes))
        self.engine = build_host_engine(assets_dir, build_dir)
        self.layer_names = [layer.name for layer in self.graph.layers]
        if self.engine.layer_names != self.layer_names:
            raise UserError(
                f"the C sources in {assets_dir} do not match its model_int8.tflite; build the assets again"
            )
        self._run_reference, self._reference_tensor = _tflm_tensor_reader(self.tflite_bytes)

    def differences(self, images: np.ndarray, image_index: int):
        """(layer index, difference or None) for every layer, on images[image_index]."""
        from si4tool.frontend.quantize import quantize_input
        from si4tool.validation.reference import interpreter_inputs

        engine_input = self.graph.tensors[self.graph.input]
        image = np.asarray(images[image_index : image_index + 1])
        engine_image = image if image.dtype == np.int8 else quantize_input(image, engine_input.scale, engine_input.zero_point)
        c_outputs = self.engine.run_layers(engine_image)
        self._run_reference(interpreter_inputs(self.tflite_bytes, image))
        for layer_index, (layer, c_flat) in enumerate(zip(self.graph.layers, c_outputs)):
            tensor = self.graph.tensors[layer.output]
            if c_flat.size == 0 and tensor.size_bytes > 0:
                continue  # a row-streamed schedule never materialises this tensor: nothing to compare
            reference = self._reference_tensor(tensor.tflite_index).astype(np.int8)
            shape = reference.shape[1:] if reference.ndim > 1 and reference.shape[0] == 1 else reference.shape
            c_values = c_flat.reshape(shape)
            reference = reference.reshape(shape)
            differs = c_values != reference
            if not np.any(differs):
                yield layer_index, None
                continue
            position = tuple(int(i) for i in np.argwhere(differs)[0])
            yield layer_index, LayerDifference(
                image=image_index,
                layer_index=layer_index,
                layer_name=layer.name,
                source=layer.describe_source(),
                position=position,
                c_value=int(c_values[position]),
                reference_value=int(reference[position]),
                differing_values=int(np.sum(differs)),
            )


def trace_layers(assets_dir: Path, images: np.ndarray, image_indices: list[int], build_dir: Path) -> TraceResult:
    """Compare every layer output for the given images; stop at the first difference.

    images: float in the model's units (x / 255), or int8 already quantized for the engine
    (int8-input models only). The C engine gets them quantized as the firmware does; TFLite
    Micro gets what its input tensor takes (the float images for a model with a QUANTIZE
    first, see reference.interpreter_inputs)."""
    comparer = _LayerComparer(assets_dir, build_dir)
    compared: set[int] = set()
    for image_index in image_indices:
        for layer_index, difference in comparer.differences(images, image_index):
            compared.add(layer_index)
            if difference is not None:
                return TraceResult(list(image_indices), comparer.layer_names, difference, compared=len(compared))
    return TraceResult(list(image_indices), comparer.layer_names, None, compared=len(compared))


def check_intermediates(assets_dir: Path, images: np.ndarray, count: int, build_dir: Path) -> IntermediateCheck:
    """validate-host's look inside: on the first `count` inputs, every layer's output against TFLite
    Micro's tensor (random inputs saturate real models' outputs, so equal outputs alone prove little).
    Unlike trace_layers it does not stop at a difference: it counts them, and keeps the first."""
    comparer = _LayerComparer(assets_dir, build_dir)
    count = min(int(count), len(images))
    inputs_identical = tensors_identical = compared = 0
    first_difference = None
    for image_index in range(count):
        differences = [difference for _, difference in comparer.differences(images, image_index)]
        compared += len(differences)
        tensors_identical += sum(difference is None for difference in differences)
        inputs_identical += all(difference is None for difference in differences)
        if first_difference is None:
            first_difference = next((difference for difference in differences if difference is not None), None)
    layers = len(comparer.layer_names)
    return IntermediateCheck(
        inputs=count,
        inputs_identical=inputs_identical,
        tensors=compared,  # count x layers, less the tensors a streamed schedule never materialises
        tensors_identical=tensors_identical,
        layers=layers,
        first_difference=first_difference,
    )


def intermediates_record(assets_dir: Path, images: np.ndarray, count: int, build_dir: Path) -> dict:
    """check_intermediates as host.json's "intermediates" record."""
    check = check_intermediates(assets_dir, images, count, build_dir)
    first = check.first_difference
    return {
        "inputs": check.inputs,
        "inputs_identical": check.inputs_identical,
        "layers": check.layers,
        "tensors": check.tensors,
        "tensors_identical": check.tensors_identical,
        "first_difference": None if first is None else (
            f"input {first.image}, layer {first.layer_index} '{first.layer_name}' ({first.source}): "
            f"{first.differing_values} values differ, first at {first.position} (C {first.c_value}, "
            f"TFLite Micro {first.reference_value})"
        ),
    }
