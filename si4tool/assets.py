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

from si4tool.compiler.codegen import C_ASSET_BASES, DEFAULT_NAMES, ModelNames, model_names

# The files the C side of the product needs, in the order they are described (default names;
# a model built with --name NAME has NAME_model.h ..., ModelNames.file).
C_ASSET_FILES = C_ASSET_BASES
# Every file an assets folder can hold besides its C files.
OTHER_ASSET_FILES = (
    "model_int8.tflite",
    "manifest.json",
    "model.keras",
    "model.h5",
    "mnist_lenet5.h5",
    "history.json",
)
ASSET_FILE_NAMES = C_ASSET_FILES + OTHER_ASSET_FILES


def asset_file_names(names: ModelNames) -> tuple[str, ...]:
    """What an assets folder of this model holds: an existing --out folder is replaced as a whole
    only when it holds nothing else (so a user's own sources are never deleted). The default
    names are always replaceable, so a folder may change from one name to another."""
    return tuple(dict.fromkeys((*C_ASSET_FILES, *(names.file(base) for base in C_ASSET_FILES), *OTHER_ASSET_FILES)))


# Test images embedded for the on-device check by default: the seed notebook's x_test.csv holds 250.
DEFAULT_VECTORS = 250
# Flash the embedded vectors (input, expected output, label) may take by default: half of the
# smallest board the stub supports (Nucleo-F446RE, 512 KiB flash). MNIST's 250 take 198 KB; vww's
# 27,650-byte vectors give 9; --vectors N asks for more (QEMU's mps2-an386 has 4 MiB).
VECTOR_FLASH_BUDGET_BYTES = 256 * 1024


def default_vector_count(vector_bytes: int, available: int) -> int:
    """250 vectors, fewer when the inputs hold fewer or when they would not fit the flash budget (at least 1)."""
    return max(1, min(DEFAULT_VECTORS, available, VECTOR_FLASH_BUDGET_BYTES // max(1, vector_bytes)))


@dataclass
class AssetsResult:
    out_dir: Path
    manifest: Manifest
    files: dict[str, bytes] = field(repr=False)


def _log(progress: Callable[..., None] | None, message: str, spinner: bool = True) -> None:
    """Announce a step; `spinner=False` for steps that draw their own progress bar."""
    if progress is not None:
        progress(message, spinner=spinner)


def render_model_data(tflite_bytes: bytes, model_sha256: str, names: ModelNames = DEFAULT_NAMES) -> dict[str, str]:
    banner = generated_banner(model_sha256)
    context = dict(banner=banner, size=len(tflite_bytes), data=tflite_bytes, names=names)
    return {names.file(base): render_template(f"{base}.j2", **context) for base in ("model_data.h", "model_data.c")}


def render_test_vectors(
    inputs_int8: np.ndarray,
    labels: np.ndarray | None,
    expected_outputs: np.ndarray,
    model_sha256: str,
    input_quantization: tuple[float, int],
    dataset_name: str,
    names: ModelNames = DEFAULT_NAMES,
) -> dict[str, str]:
    """labels None (random or unlabelled inputs): no label array, and main.c checks bit-exactness only."""
    count = len(inputs_int8)
    flat_inputs = inputs_int8.reshape(count, -1)
    expected_outputs = np.asarray(expected_outputs).reshape(count, -1)
    # One C line per image row (28 for MNIST, 10 for a 49x10 spectrogram, W*C for an RGB image), else 16.
    row_width = int(np.prod(inputs_int8.shape[2:])) if inputs_int8.ndim >= 3 else 16
    row_width = row_width if 1 <= row_width <= 32 else 16
    label_values = None if labels is None else [int(v) for v in labels]
    context = dict(
        banner=generated_banner(model_sha256),
        count=count,
        dataset=dataset_name,
        has_labels=label_values is not None,
        label_type="uint8_t" if label_values is None or max(label_values, default=0) <= 255 else "uint16_t",
        input_scale=repr(float(input_quantization[0])),
        input_zero_point=int(input_quantization[1]),
        input_size=flat_inputs.shape[1],
        output_size=expected_outputs.shape[1],
        model_sha256=model_sha256,
        inputs=[row for row in flat_inputs],
        labels=label_values,
        expected_outputs=[[int(v) for v in row] for row in expected_outputs],
        row_width=row_width,
        names=names,
    )
    return {names.file(base): render_template(f"{base}.j2", **context) for base in ("test_vectors.h", "test_vectors.c")}


def file_records(files: dict[str, bytes]) -> dict[str, dict]:
    return {name: {"bytes": len(data), "sha256": sha256_bytes(data)} for name, data in sorted(files.items())}


def _check_output_folder(out_dir: Path, names: ModelNames) -> None:
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

    check_replaceable_folder(out_dir, asset_file_names(names))


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
    inputs_spec: str | Path | None = None,
    images: int | None = None,
    cache_dir: Path | None = None,
    name: str | None = None,
    quiet: bool = False,
    console=None,
    progress: Callable[[str], None] | None = None,
    memory: str = "fast",
    max_slowdown: float | None = None,
) -> AssetsResult:
    """Train (when no model is given), quantize, lower, plan and render the C assets into `out_dir`.

    dataset_name: "mnist" (default), "fashion-mnist" or a path (see data.load_dataset); data_path
    overrides the file a named dataset is read from. inputs_spec (`--inputs`): "random", an .npy/.npz
    path, or None (the dataset when the model takes 28x28x1 images, else random; see frontend.inputs).
    images (`--images`): only the first N of those inputs are run through TFLite Micro (and Keras) for
    the accuracy figures and the reference outputs; default all.
    memory (`--memory`): fast, balanced or small, the schedule rule of compiler/schedule.py;
    max_slowdown (`--max-slowdown`) bounds balanced's and small's estimated instructions against fast's.
    name (`--name`): prefixes the model's files, symbols and macros (codegen.ModelNames); None keeps
    the default si4_model names."""
    from si4tool.compiler import codegen
    from si4tool.frontend import data
    from si4tool.compiler import passes
    from si4tool.compiler import schedule
    from si4tool.frontend import quantize
    from si4tool.validation import reference
    from si4tool.frontend import model as model_stage
    from si4tool.frontend import inputs as inputs_stage
    from si4tool.compiler.lowering import lower_tflite

    out_dir = Path(out_dir)
    names = model_names(name)  # a bad --name is refused before anything runs
    _check_output_folder(out_dir, names)
    if vectors is not None and vectors < 1:
        raise UserError(f"--vectors must be at least 1, not {vectors}")
    inputs_stage.check_spec(inputs_spec)
    if memory not in schedule.MEMORY_CHOICES:
        raise UserError(f"--memory must be one of {', '.join(schedule.MEMORY_CHOICES)}, not {memory!r}")
    if max_slowdown is not None and not max_slowdown >= 1.0:
        raise UserError(f"--max-slowdown must be at least 1.0 (fast's own instructions), not {max_slowdown}")
    # Training and calibration need the dataset; an int8 .tflite needs it only as its inputs (loaded below).
    takes_float_model = model_path is None or Path(model_path).suffix.lower() in (".keras", ".h5", ".hdf5")
    dataset = data.load_dataset(dataset_name, data_path) if takes_float_model else None
    if dataset is not None and inputs_spec is None and vectors is not None and vectors > len(dataset.x_test):
        # Said before hours of training, not after.
        raise UserError(f"--vectors must be between 1 and {len(dataset.x_test)} (the test-set size), not {vectors}")

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
    graph = passes.run_passes(graph)
    plan, schedule_candidates = schedule.choose_plan(graph, memory, max_slowdown)

    input_q = (float(input_tensor.scale), int(input_tensor.zero_point))
    output_tensor = graph.tensors[graph.output]
    output_q = (float(output_tensor.scale), int(output_tensor.zero_point))
    model_input = inputs_stage.ModelInput(tuple(input_tensor.shape), *input_q, float_input=graph.float_input)
    output_tensors = [graph.tensors[name] for name in graph.outputs]
    output_size = graph.output_bytes  # several outputs: concatenated in the caller's one buffer
    # One embedded vector: its input, TFLite Micro's output and (when there are labels) a label byte.
    vector_bytes = model_input.size + output_size + 1
    budget_vectors = default_vector_count(vector_bytes, available=DEFAULT_VECTORS)
    inputs, note = inputs_stage.choose_inputs(
        inputs_spec,
        model_input,
        output_size,
        seed=seed,
        random_count=budget_vectors if vectors is None else vectors,
        load_dataset=lambda: dataset if dataset is not None else data.load_dataset(dataset_name, data_path),
    )
    if note is not None and console is not None and not quiet:
        console.print(note, highlight=False)
    if inputs.kind == "dataset":
        dataset = inputs.dataset
    if images is not None:
        if images < 1:
            raise UserError(f"--images must be at least 1, not {images}")
        inputs = inputs.head(images)
    if vectors is None:
        vectors = default_vector_count(vector_bytes, available=len(inputs))
        if vectors == budget_vectors < DEFAULT_VECTORS and console is not None and not quiet:
            console.print(
                f"embedding {vectors} test vectors ({vector_bytes:,} bytes each, flash budget "
                f"{VECTOR_FLASH_BUDGET_BYTES // 1024} KiB); --vectors N embeds more",
                highlight=False,
            )
    if not 1 <= vectors <= len(inputs):
        raise UserError(f"--vectors must be between 1 and {len(inputs)} (the number of inputs), not {vectors}")
    # The engine's (and the test vectors') input is always int8, quantized as TFLite's QUANTIZE does;
    # the references take float inputs as they are (a float-input model runs its own QUANTIZE on them).
    x_int8 = inputs.engine_int8(model_input)

    _log(progress, f"running TensorFlow Lite Micro on {len(inputs)} inputs ({inputs.description})", spinner=False)
    tflm_out = reference.tflm_outputs(tflite_bytes, inputs.x, cache_dir=cache_dir, quiet=quiet)
    tflm_out = tflm_out.reshape(len(inputs), -1)
    labels = inputs.labels
    # argmax means something for one output only; with several, accuracy is not reported.
    single_output = len(graph.outputs) == 1
    int8_accuracy = None
    if labels is not None and single_output:
        int8_accuracy = float(np.mean(np.argmax(tflm_out, axis=1) == labels))
    float_accuracy = None
    if float_model is not None and labels is not None and single_output and inputs.x.dtype != np.int8:
        float_out = reference.keras_outputs(float_model, inputs.x)
        float_accuracy = float(np.mean(np.argmax(float_out, axis=1) == labels))

    _log(progress, "rendering the C assets")
    sources: dict[str, str] = {}
    sources.update(codegen.render_model_sources(graph, plan, model_sha256, names))
    sources.update(render_model_data(tflite_bytes, model_sha256, names))
    sources.update(
        render_test_vectors(
            x_int8[:vectors],
            None if labels is None or not single_output else labels[:vectors],  # argmax of one output only
            tflm_out[:vectors],
            model_sha256,
            input_q,
            dataset.source if inputs.kind == "dataset" else inputs.description,
            names,
        )
    )
    files = {name: text.encode() for name, text in sources.items()}
    files["model_int8.tflite"] = tflite_bytes
    files.update(extra_files)

    layers = codegen.layer_summaries(graph, plan)
    manifest = Manifest(
        tool_version=__version__,
        name=names.name,
        tflite_micro_version=installed_tflite_micro_version(),  # the build "bit-exact" refers to
        source_model={"path": source_name, "sha256": source_sha256},
        int8_model={"sha256": model_sha256, "bytes": len(tflite_bytes)},
        # No machine path here: "dataset" names it for validate-host, "source" describes it.
        data=None if dataset is None else {"dataset": dataset.name, "source": dataset.source, "sha256": dataset.sha256},
        # What the test vectors (and validate-host, unless told otherwise) run on; see frontend/inputs.py.
        inputs={**inputs.record, "count": len(inputs)},
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
            "test_images": len(inputs),
            "float": float_accuracy,
            "int8_tflm": int8_accuracy,
        },
        quantization={
            "input": {"scale": input_q[0], "zero_point": input_q[1], "shape": list(input_tensor.shape)},
            "output": {"scale": output_q[0], "zero_point": output_q[1], "shape": list(output_tensor.shape)},
            # every output (output 0 is "output" above), as they lie in the engine's output buffer
            "outputs": [
                {
                    "name": name,
                    "scale": float(tensor.scale),
                    "zero_point": int(tensor.zero_point),
                    "shape": list(tensor.shape),
                    "offset": offset,
                    "size": tensor.size_bytes,
                }
                for (name, offset), tensor in zip(graph.output_offsets().items(), output_tensors)
            ],
            # True when the .tflite takes float32 through a QUANTIZE / returns float32 through a DEQUANTIZE:
            # both ops are dropped, the engine's input and output above are the int8 tensors inside them.
            "float_edges": {"input": graph.float_input, "output": graph.float_output},
        },
        test_vectors=vectors,
        files=file_records(files),
        memory={
            "choice": memory,
            "max_slowdown": max_slowdown,
            "schedule": plan.schedule,
            "candidates": [candidate.to_dict() for candidate in schedule_candidates],
            # A streamed schedule's own buffers (ring of rows, partial pooled row, int32 sums), which
            # no layer record holds: the report's memory timeline draws them.
            "stream_buffers": [
                {"name": name, "offset": a.offset, "bytes": a.size, "first": a.first_layer, "last": a.last_layer}
                for stream in plan.streams
                for name in stream.buffer_names(graph).values()
                for a in [plan.allocations[name]]
            ],
        },
    )
    files["manifest.json"] = manifest.to_json().encode()

    from si4tool.render import write_files_atomically

    _log(progress, f"writing {len(files)} files to {out_dir}")
    write_files_atomically(out_dir, files, replaceable_names=asset_file_names(names))
    if hasattr(progress, "finish"):
        progress.finish()
    return AssetsResult(out_dir=out_dir, manifest=manifest, files=files)
