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


def _tflm_tensor_reader(tflite_bytes: bytes):
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(
        tflite_bytes, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )

    def run(image: np.ndarray) -> None:
        interpreter.set_input(image, 0)
        interpreter.invoke()

    def tensor(index: int) -> np.ndarray:
        details = interpreter.GetTensor(index, 0)  # {"tensor_data", "shape", "dtype"}
        return np.asarray(details["tensor_data"]).reshape(tuple(int(d) for d in details["shape"]))

    return run, tensor


def trace_layers(assets_dir: Path, images: np.ndarray, image_indices: list[int], build_dir: Path) -> TraceResult:
    """Compare every layer output for the given images; stop at the first difference.

    images: float in the model's units (x / 255), or int8 already quantized for the engine
    (int8-input models only). The C engine gets them quantized as the firmware does; TFLite
    Micro gets what its input tensor takes (the float images for a model with a QUANTIZE
    first, see reference.interpreter_inputs)."""
    from si4tool.compiler import passes
    from si4tool.targets.host_engine import build_host_engine
    from si4tool.compiler.lowering import lower_tflite
    from si4tool.frontend.quantize import quantize_input
    from si4tool.validation.reference import interpreter_inputs

    assets_dir = Path(assets_dir)
    tflite_bytes = (assets_dir / "model_int8.tflite").read_bytes()
    graph = passes.run_passes(lower_tflite(tflite_bytes))
    engine = build_host_engine(assets_dir, build_dir)
    layer_names = [layer.name for layer in graph.layers]
    if engine.layer_names != layer_names:
        raise UserError(
            f"the C sources in {assets_dir} do not match its model_int8.tflite; build the assets again"
        )
    run_reference, reference_tensor = _tflm_tensor_reader(tflite_bytes)
    engine_input = graph.tensors[graph.input]
    for image_index in image_indices:
        image = np.asarray(images[image_index : image_index + 1])
        engine_image = image if image.dtype == np.int8 else quantize_input(image, engine_input.scale, engine_input.zero_point)
        c_outputs = engine.run_layers(engine_image)
        run_reference(interpreter_inputs(tflite_bytes, image))
        for layer_index, (layer, c_flat) in enumerate(zip(graph.layers, c_outputs)):
            tensor = graph.tensors[layer.output]
            reference = reference_tensor(tensor.tflite_index).astype(np.int8)
            shape = reference.shape[1:] if reference.ndim > 1 and reference.shape[0] == 1 else reference.shape
            c_values = c_flat.reshape(shape)
            reference = reference.reshape(shape)
            differs = c_values != reference
            if np.any(differs):
                position = tuple(int(i) for i in np.argwhere(differs)[0])
                return TraceResult(
                    images=list(image_indices),
                    layers=layer_names,
                    first_difference=LayerDifference(
                        image=image_index,
                        layer_index=layer_index,
                        layer_name=layer.name,
                        source=layer.describe_source(),
                        position=position,
                        c_value=int(c_values[position]),
                        reference_value=int(reference[position]),
                        differing_values=int(np.sum(differs)),
                    ),
                )
    return TraceResult(images=list(image_indices), layers=layer_names, first_difference=None)
