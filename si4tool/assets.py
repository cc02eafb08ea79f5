"""`build-firmware-assets`: the whole pipeline, end to end, into one folder of C assets.

data -> model (train, or load) -> quantize -> lower to IR -> passes -> plan
memory -> render templates -> write atomically. Each stage is a function of
its own module; this one only puts them in order and records what it did.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from si4tool import __version__
from si4tool.artefacts import Manifest
from si4tool.errors import UserError
from si4tool.render import generated_banner, render_template, sha256_bytes
from si4tool.versions import installed_tflite_micro_version

# The files the C side of the product needs, in the order they are described.
C_ASSET_FILES = (
    "model.h",
    "model.c",
    "model_weights.h",
    "model_weights.c",
    "model_data.h",
    "model_data.c",
    "test_vectors.h",
    "test_vectors.c",
)
# Every file an assets folder can hold: an existing --out folder is replaced as a whole
# only when it holds nothing else (so a user's own sources are never deleted).
ASSET_FILE_NAMES = C_ASSET_FILES + (
    "model_int8.tflite",
    "manifest.json",
    "model.keras",
    "model.h5",
    "mnist_lenet5.h5",
    "history.json",
)


# Test images embedded for the on-device check by default: the seed notebook's x_test.csv holds 250.
DEFAULT_VECTORS = 250


@dataclass
class AssetsResult:
    out_dir: Path
    manifest: Manifest
    files: dict[str, bytes] = field(repr=False)


def _log(progress: Callable[..., None] | None, message: str, spinner: bool = True) -> None:
    """Announce a step; `spinner=False` for steps that draw their own progress bar."""
    if progress is not None:
        progress(message, spinner=spinner)


def render_model_data(tflite_bytes: bytes, model_sha256: str) -> dict[str, str]:
    banner = generated_banner(model_sha256)
    context = dict(banner=banner, size=len(tflite_bytes), data=tflite_bytes)
    return {
        "model_data.h": render_template("model_data.h.j2", **context),
        "model_data.c": render_template("model_data.c.j2", **context),
    }


def render_test_vectors(
    inputs_int8: np.ndarray,
    labels: np.ndarray,
    expected_outputs: np.ndarray,
    model_sha256: str,
    input_quantization: tuple[float, int],
    dataset_name: str,
) -> dict[str, str]:
    count = len(inputs_int8)
    flat_inputs = inputs_int8.reshape(count, -1)
    row_width = inputs_int8.shape[2] if inputs_int8.ndim >= 3 else 16
    context = dict(
        banner=generated_banner(model_sha256),
        count=count,
        dataset=dataset_name,
        input_scale=repr(float(input_quantization[0])),
        input_zero_point=int(input_quantization[1]),
        input_size=flat_inputs.shape[1],
        output_size=expected_outputs.shape[1],
        model_sha256=model_sha256,
        inputs=[row for row in flat_inputs],
        labels=[int(v) for v in labels],
        expected_outputs=[[int(v) for v in row] for row in expected_outputs],
        row_width=row_width,
    )
    return {
        "test_vectors.h": render_template("test_vectors.h.j2", **context),
        "test_vectors.c": render_template("test_vectors.c.j2", **context),
    }


def file_records(files: dict[str, bytes]) -> dict[str, dict]:
    return {name: {"bytes": len(data), "sha256": sha256_bytes(data)} for name, data in sorted(files.items())}


def _check_output_folder(out_dir: Path) -> None:
    """Fail before hours of work, not after, when the output folder cannot be written."""
    probe_dir = out_dir if out_dir.exists() else out_dir.parent
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a folder; choose another --out")
    import os

    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {probe_dir}; choose another --out")
    from si4tool.render import check_replaceable_folder

    check_replaceable_folder(out_dir, ASSET_FILE_NAMES)


def build_firmware_assets(
    out_dir: Path,
    model_path: Path | None = None,
    data_path: Path | None = None,
    dataset_name: str | None = None,
    epochs: int = 15,
    vectors: int | None = None,
    seed: int = 0,
    recipe: str = "default",
    batch_size: int = 128,
    calibration_samples: int = 1000,
    cache_dir: Path | None = Path("build/cache"),
    quiet: bool = False,
    console=None,
    progress: Callable[[str], None] | None = None,
) -> AssetsResult:
    """Train (when no model is given), quantize, lower, plan and render the C assets into `out_dir`.

    dataset_name: "mnist" (default), "fashion-mnist" or a path (see data.load_dataset); data_path
    overrides the file a named dataset is read from."""
    from si4tool.compiler import codegen
    from si4tool.frontend import data
    from si4tool.compiler import passes
    from si4tool.compiler import planner
    from si4tool.frontend import quantize
    from si4tool.validation import reference
    from si4tool.frontend import model as model_stage
    from si4tool.compiler.lowering import lower_tflite

    out_dir = Path(out_dir)
    _check_output_folder(out_dir)
    dataset = data.load_dataset(dataset_name, data_path)
    test_count = len(dataset.x_test)
    if vectors is None:  # the seed notebook's 250, or the whole test set when it is smaller
        vectors = min(DEFAULT_VECTORS, test_count)
    if not 1 <= vectors <= test_count:
        raise UserError(f"--vectors must be between 1 and {test_count} (the test-set size), not {vectors}")

    extra_files: dict[str, bytes] = {}
    float_model = None
    training: dict | None = None
    if model_path is None:
        from si4tool.frontend import train

        _log(progress, f"training the seed model for {epochs} epochs", spinner=False)
        result = train.train_model(
            dataset, epochs=epochs, batch_size=batch_size, seed=seed, recipe=recipe, quiet=quiet, console=console
        )
        float_model = result.model
        with tempfile.TemporaryDirectory() as scratch:
            for path in train.save_training_outputs(result, Path(scratch), dataset).values():
                extra_files[path.name] = path.read_bytes()
        source_sha256 = sha256_bytes(extra_files["model.keras"])
        source_name = "trained by si4tool"
        training = {
            "recipe": recipe,
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            "best_epoch": result.best_epoch,
            "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        }
    else:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise UserError(f"model file {model_path} does not exist")
        model_bytes = model_path.read_bytes()
        source_sha256 = sha256_bytes(model_bytes)
        source_name = model_path.name  # the file name only: no machine path in the manifest
        suffix = model_path.suffix.lower()
        if suffix == ".tflite":
            tflite_bytes = model_bytes
        elif suffix in (".keras", ".h5", ".hdf5"):
            float_model = model_stage.load_float_model(model_path)
            # Kept with the assets so validate-host can compare against the float parent later.
            extra_files["model.keras" if suffix == ".keras" else "model.h5"] = model_bytes
        else:
            raise UserError(f"--model must be a .keras, .h5 or .tflite file, not {model_path.name}")

    if float_model is not None:
        model_stage.check_model_supported(float_model)
        _log(progress, f"quantizing to int8 (calibration on {calibration_samples} training images)")
        tflite_bytes = quantize.quantize_model(float_model, dataset, calibration_samples=calibration_samples, seed=seed)

    model_sha256 = sha256_bytes(tflite_bytes)
    _log(progress, "lowering the int8 model to the si4 IR")
    graph = lower_tflite(tflite_bytes, source=source_name if model_path is not None else "the quantized model")
    input_tensor = graph.tensors[graph.input]
    if tuple(input_tensor.shape) != (28, 28, 1):
        raise UserError(f"the model's input is {tuple(input_tensor.shape)}, but si4tool needs 28x28x1 images")
    graph = passes.run_passes(graph)
    plan = planner.plan_memory(graph)

    input_q = (float(input_tensor.scale), int(input_tensor.zero_point))
    output_tensor = graph.tensors[graph.output]
    output_q = (float(output_tensor.scale), int(output_tensor.zero_point))
    x_test_float = data.normalize(dataset.x_test)
    # The engine's (and the test vectors') input is always int8, quantized as TFLite's QUANTIZE does;
    # the references take the float images (a float-input model runs its own QUANTIZE on them).
    x_test_int8 = quantize.quantize_input(x_test_float, *input_q)

    _log(progress, f"running TensorFlow Lite Micro on all {test_count} test images", spinner=False)
    tflm_out = reference.tflm_outputs(tflite_bytes, x_test_float, cache_dir=cache_dir, quiet=quiet)
    int8_accuracy = float(np.mean(np.argmax(tflm_out, axis=1) == dataset.y_test))
    float_accuracy = None
    if float_model is not None:
        float_out = reference.keras_outputs(float_model, x_test_float)
        float_accuracy = float(np.mean(np.argmax(float_out, axis=1) == dataset.y_test))

    _log(progress, "rendering the C assets")
    sources: dict[str, str] = {}
    sources.update(codegen.render_model_sources(graph, plan, model_sha256))
    sources.update(render_model_data(tflite_bytes, model_sha256))
    sources.update(
        render_test_vectors(
            x_test_int8[:vectors],
            dataset.y_test[:vectors],
            tflm_out[:vectors],
            model_sha256,
            input_q,
            dataset.source,
        )
    )
    files = {name: text.encode() for name, text in sources.items()}
    files["model_int8.tflite"] = tflite_bytes
    files.update(extra_files)

    layers = codegen.layer_summaries(graph, plan)
    manifest = Manifest(
        tool_version=__version__,
        tflite_micro_version=installed_tflite_micro_version(),  # the build "bit-exact" refers to
        source_model={"path": source_name, "sha256": source_sha256},
        int8_model={"sha256": model_sha256, "bytes": len(tflite_bytes)},
        # No machine path here: "dataset" names it for validate-host, "source" describes it.
        data={"dataset": dataset.name, "source": dataset.source, "sha256": dataset.sha256},
        training=training,
        layers=layers,
        totals={
            "parameters": int(sum(layer["parameters"] for layer in layers)),
            "macs": int(sum(layer["macs"] for layer in layers)),
            "weight_bytes": int(sum(layer["weight_bytes"] for layer in layers)),
            "arena_bytes": int(plan.arena_bytes),
            # with the input the engine reads from the caller's buffer: comparable with TFLite Micro's arena
            "arena_plus_input_bytes": int(plan.arena_plus_input_bytes),
            "model_tflite_bytes": len(tflite_bytes),
        },
        accuracy={
            "test_images": test_count,
            "float": float_accuracy,
            "int8_tflm": int8_accuracy,
        },
        quantization={
            "input": {"scale": input_q[0], "zero_point": input_q[1], "shape": list(input_tensor.shape)},
            "output": {"scale": output_q[0], "zero_point": output_q[1], "shape": list(output_tensor.shape)},
            # True when the .tflite takes float32 through a QUANTIZE / returns float32 through a DEQUANTIZE:
            # both ops are dropped, the engine's input and output above are the int8 tensors inside them.
            "float_edges": {"input": graph.float_input, "output": graph.float_output},
        },
        test_vectors=vectors,
        files=file_records(files),
    )
    files["manifest.json"] = manifest.to_json().encode()

    from si4tool.render import write_files_atomically

    _log(progress, f"writing {len(files)} files to {out_dir}")
    write_files_atomically(out_dir, files, replaceable_names=ASSET_FILE_NAMES)
    if hasattr(progress, "finish"):
        progress.finish()
    return AssetsResult(out_dir=out_dir, manifest=manifest, files=files)
