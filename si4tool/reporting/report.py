"""Stage 9, report: what the firmware costs and how well it does, as report.md, report.html and PNG plots.

Reads what the earlier stages wrote (the assets' manifest.json and history.json,
validate-host's host.json, validate-qemu's qemu.json, and the test images for
the misclassified digits); only the manifest is required, every other input
adds its section when present and a one-line note when not. All figures are
computed here; the templates only lay them out. Plots use matplotlib's Agg
canvas with no timestamps in the PNGs, so the same inputs give the same files.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from si4tool.artefacts import HostValidation, Manifest, QemuRun, QemuValidation
from si4tool.errors import UserError
from si4tool.reporting.plots import (
    plot_confusion_matrices,
    plot_instructions_per_layer,
    plot_memory_timeline,
    plot_misclassified,
    plot_ram_vs_instructions,
    plot_training_curves,
)

REPORT_MARKDOWN = "report.md"
REPORT_HTML = "report.html"
PLOT_TRAINING = "training_curves.png"
PLOT_CONFUSION = "confusion_matrices.png"
PLOT_MEMORY = "memory_timeline.png"
PLOT_MISCLASSIFIED = "misclassified.png"
PLOT_QEMU_LAYERS = "qemu_instructions_per_layer.png"
PLOT_SCHEDULES = "schedules.png"
# Every file the report writes; an --out folder holding anything else is not ours to replace.
REPORT_FILES = (
    REPORT_MARKDOWN, REPORT_HTML, PLOT_TRAINING, PLOT_CONFUSION, PLOT_MEMORY, PLOT_MISCLASSIFIED, PLOT_QEMU_LAYERS,
    PLOT_SCHEDULES,
)
KERNELS = ("portable", "dsp")



@dataclass
class ReportInputs:
    """Everything the report is made of; None for an input that does not exist (yet)."""

    assets_dir: Path
    manifest: Manifest
    history: dict | None = None  # per-epoch lists: loss, accuracy, val_loss, val_accuracy, lr
    training: dict | None = None  # best_epoch, recipe, ... (the manifest's record and history.json's settings)
    training_confusion: list | None = None  # the float model's confusion matrix from training
    host: HostValidation | None = None
    qemu: list[QemuRun] | None = None
    test_images: np.ndarray | None = None  # (N, 28, 28) uint8, for the misclassified grid
    # bench-models' schedule records (models.json "schedules") of this model, when it measured it
    bench_schedules: list[dict] | None = None
    bench_models_path: Path | None = None
    notes: dict[str, str] = field(default_factory=dict)  # section -> why it is missing


# --- reading the inputs ---------------------------------------------------------


def _read_history(path: Path) -> dict | None:
    """train.save_training_outputs' history.json (settings, "history", "confusion_matrix"), or None when absent."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path} (the training history) is not readable JSON ({error}); build the assets again") from None
    if not (isinstance(record, dict) and isinstance(record.get("history"), dict)):
        raise UserError(f"{path} is not a si4tool training history (no per-epoch record); build the assets again")
    return record


def _load_test_images(manifest: Manifest, data_path: Path | None) -> tuple[np.ndarray | None, str | None]:
    """The test images the validation indexed: the dataset the manifest names, read from --data or
    the dataset's usual local place ($SI4_MNIST for MNIST). Never downloads: a report must not need
    the network."""
    from si4tool.frontend import data

    record = manifest.data
    if record is None:  # H5: random or user inputs (frontend/inputs.py), no dataset to draw from
        return None, "the assets' inputs are not a dataset's images"
    try:
        dataset = data.load_dataset_of_assets(record, None, data_path, allow_download=False)
    except UserError as error:
        return None, f"the test images are not available to draw them ({str(error).rstrip('.')})"
    expected_sha = record.get("sha256")
    if expected_sha and dataset.sha256 != expected_sha:
        return None, f"{dataset.source} is not the dataset the assets were built from (its sha256 differs)"
    return dataset.x_test, None


def _read_bench_schedules(path: Path, model_sha256: str) -> list[dict] | None:
    """bench-models' schedule records of this model (models.json), or None when it holds none."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path} (bench-models' results) is not readable JSON ({error}); run `si4tool bench-models` again") from None
    rows = [row for row in record.get("schedules", []) if isinstance(row, dict) and row.get("model_sha256") == model_sha256]
    return rows or None


def load_report_inputs(
    assets_dir: Path, validation_dir: Path, data_path: Path | None = None, need_images: bool = True,
    bench_models_path: Path | None = None,
) -> ReportInputs:
    assets_dir = Path(assets_dir)
    validation_dir = Path(validation_dir)
    manifest_path = assets_dir / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(
            f"{assets_dir} has no manifest.json: run `si4tool build-firmware-assets --out {assets_dir}` first"
        )
    inputs = ReportInputs(assets_dir=assets_dir, manifest=Manifest.read(manifest_path))
    manifest = inputs.manifest

    history = _read_history(assets_dir / "history.json")
    # The manifest's training record and history.json's settings describe the same run; merge what is known.
    training = dict(manifest.training or {})
    if history is not None:
        inputs.history = history["history"]
        inputs.training_confusion = history.get("confusion_matrix")
        settings = {k: v for k, v in history.items() if k not in ("history", "confusion_matrix")}
        training.update({key: value for key, value in settings.items() if value is not None})
    else:
        inputs.notes["training"] = "no training history: the model was given with --model, so there are no curves to draw"
    inputs.training = training or None

    host_path = validation_dir / "host.json"
    inputs.host = HostValidation.read_if_present(host_path)
    if inputs.host is None:
        inputs.notes["host"] = f"no {host_path}: run `si4tool validate-host` for the host figures"
    elif inputs.host.model_sha256 != manifest.model_sha256:
        # A validation of an earlier model must not be reported as this one's.
        inputs.host = None
        inputs.notes["host"] = f"{host_path} validates another model: run `si4tool validate-host` again for these assets"

    qemu_path = validation_dir / "qemu.json"
    qemu = QemuValidation.read_if_present(qemu_path)
    if qemu is None:
        inputs.notes["qemu"] = f"no {qemu_path}: run `si4tool validate-qemu` for the Cortex-M figures"
    elif qemu.model_sha256 != manifest.model_sha256:
        inputs.notes["qemu"] = f"{qemu_path} measures another model: run `si4tool validate-qemu` again for these assets"
    else:
        inputs.qemu = qemu.runs or None

    if bench_models_path is not None and Path(bench_models_path).is_file():
        inputs.bench_models_path = Path(bench_models_path)
        inputs.bench_schedules = _read_bench_schedules(bench_models_path, manifest.model_sha256)
    if inputs.bench_schedules is None and (manifest.memory or {}).get("candidates"):
        where = bench_models_path or "models.json"
        inputs.notes["schedules"] = (
            f"no measured instructions per schedule in {where}: run `si4tool bench-models` (or validate-qemu on a "
            "build of each --memory choice) to measure them"
        )

    if need_images and inputs.host and inputs.host.misclassified:
        inputs.test_images, note = _load_test_images(manifest, data_path)
        if note:
            inputs.notes["misclassified"] = note
    return inputs


# --- the figures (numbers) --------------------------------------------------------


def _int(value) -> int | None:
    return None if value is None else int(value)


def _short_source(source) -> str | None:
    """"CONV_2D (operator 0, output tensor '<long TF name>') + ..." -> "CONV_2D (operator 0) + ..."."""
    if not source:
        return None
    return re.sub(r", output tensor '[^']*'", "", str(source))


def layer_rows(manifest: Manifest) -> list[dict]:
    """One row per layer of the manifest (codegen.layer_summaries' records), with the keys the report prints."""
    rows = []
    for index, layer in enumerate(manifest.layers):
        in_arena = layer["arena_offset"] is not None
        rows.append(
            {
                "index": index,
                "name": str(layer["name"]),
                "op": str(layer["op"]),
                "source": _short_source(layer["source"]),
                "output_in": layer["output_in"],
                "input_shape": layer["input_shape"],
                "output_shape": layer["output_shape"],
                "parameters": int(layer["parameters"]),
                "macs": int(layer["macs"]),
                "weight_bytes": int(layer["weight_bytes"]),
                "arena_offset": _int(layer["arena_offset"]),
                "arena_bytes": int(layer["arena_size"]) if in_arena else None,
                "scratch_offset": _int(layer["scratch_offset"]),
                "scratch_bytes": _int(layer["scratch_bytes"]),
                "live_range": tuple(layer["live_range"]) if layer["live_range"] is not None else None,
            }
        )
    return rows


def arena_buffers(rows: list[dict], stream_buffers: list[dict] = ()) -> list[dict]:
    """The arena's buffers for the memory timeline: name, offset, bytes, first and last layer index.

    Each layer output in the arena lives over its planned live range; a scratch buffer only during its layer;
    a row-streamed schedule's ring, partial row and sums (manifest.memory["stream_buffers"]) during the layer
    that runs the stream.
    """
    buffers = [dict(buffer) for buffer in stream_buffers]
    for row in rows:
        if row["arena_offset"] is not None and row["arena_bytes"]:
            first, last = row["live_range"]
            buffers.append(
                {"name": row["name"], "offset": row["arena_offset"], "bytes": row["arena_bytes"], "first": first, "last": last}
            )
        if row["scratch_offset"] is not None and row["scratch_bytes"]:
            buffers.append(
                {"name": f"{row['name']} scratch", "offset": row["scratch_offset"], "bytes": row["scratch_bytes"],
                 "first": row["index"], "last": row["index"]}
            )
    return buffers


def _shape_elements(shape) -> int:
    return int(np.prod([int(d) for d in shape]))


def memory_figures(inputs: ReportInputs) -> dict:
    """Flash and RAM: what si4tool's engine needs next to what TFLite Micro needs for the same model."""
    manifest, host = inputs.manifest, inputs.host
    totals = manifest.totals
    input_size = _shape_elements(manifest.quantization["input"]["shape"])
    output_size = _shape_elements(manifest.quantization["output"]["shape"])
    vectors = manifest.test_vectors
    model_array = manifest.int8_model["bytes"]
    # Each embedded test vector: the int8 image, the expected int8 output, and a one-byte label.
    vector_bytes = vectors * (input_size + output_size + 1)
    return {
        "weight_bytes": int(totals["weight_bytes"]),
        "model_array_bytes": int(model_array),
        "vectors": vectors,
        "input_bytes": input_size,
        "output_bytes": output_size,
        "vector_item_bytes": input_size + output_size + 1,
        "test_vector_bytes": vector_bytes,
        "si4_flash_bytes": int(totals["weight_bytes"]) + vector_bytes,
        "tflm_flash_bytes": int(model_array) + vector_bytes,
        "arena_bytes": int(totals["arena_bytes"]),
        "tflm_arena_bytes": host.tflm_arena_bytes if host else None,
    }


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f} %"


def _count(value) -> str:
    return "n/a" if value is None else f"{int(value):,}"


def _bytes_text(value) -> str:
    return "n/a" if value is None else f"{int(value):,} B"


def _ratio(part, whole) -> str:
    return "n/a" if part is None or whole is None else f"{int(part):,}/{int(whole):,}"


def accuracy_rows(inputs: ReportInputs) -> list[dict]:
    """Each engine's top-1 accuracy, with what it was measured on."""
    manifest_accuracy = inputs.manifest.accuracy
    host = inputs.host
    images = host.images if host else manifest_accuracy["test_images"]
    on_test = f"{_count(images)} test images"
    keras = host.keras_accuracy if host and host.keras_accuracy is not None else manifest_accuracy["float"]
    tflm = host.tflm_accuracy if host else manifest_accuracy["int8_tflm"]
    rows = [
        {"engine": "Keras float32 (host)", "accuracy": keras, "measured_on": on_test},
        {"engine": "TensorFlow Lite Micro int8 (host)", "accuracy": tflm, "measured_on": on_test},
    ]
    if host:
        rows.append({"engine": "si4 C engine int8 (host)", "accuracy": host.c_accuracy, "measured_on": on_test})
        for resolver, litert in sorted(host.litert.items()):
            rows.append(
                {"engine": f"LiteRT int8, {resolver} op resolver (host)", "accuracy": litert.get("accuracy"), "measured_on": on_test}
            )
        firmware = host.firmware
        rows.append(
            {
                "engine": "firmware stub (host build)",
                "accuracy": None if firmware.correct is None else firmware.correct / firmware.vectors,
                "measured_on": f"{firmware.vectors:,} embedded test vectors",
            }
        )
    for run in inputs.qemu or []:
        rows.append(
            {
                "engine": f"si4 C engine on {run.cpu}, {run.kernel} kernels (QEMU)",
                "accuracy": run.accuracy,
                "measured_on": f"{run.vectors:,} embedded test vectors",
            }
        )
    for row in rows:
        row["accuracy_text"] = _percent(row["accuracy"])
    return rows


def validation_rows(host: HostValidation | None) -> list[tuple[str, str]]:
    """The host validation's metrics as (label, value) pairs, in the order they are explained."""
    if not host:
        return []
    images = host.images
    rows = [
        ("images compared", _count(images)),
        ("C engine outputs identical to TFLite Micro", _ratio(host.bit_exact, images)),
    ]
    for resolver, litert in sorted(host.litert.items()):
        # A LiteRT that could not run the model is {"skipped": reason}.
        value = f"skipped: {litert['skipped']}" if "skipped" in litert else _ratio(litert["identical_outputs"], images)
        rows.append((f"identical to LiteRT ({resolver} op resolver)", value))
    if host.intermediates:  # H5: random or user inputs, every layer's output on the first inputs
        check = host.intermediates
        rows.append(("intermediate tensors identical to TFLite Micro", _ratio(check["tensors_identical"], check["tensors"])))
    rows.append(("firmware stub: embedded vectors bit-exact", _ratio(host.firmware.bit_exact, host.firmware.vectors)))
    rows.append(("top-1 agreement with the Keras float model", _percent(host.keras_top1_agreement)))
    if host.accuracy_drop_pp is not None:
        rows.append(("accuracy drop, float to int8", f"{host.accuracy_drop_pp:.2f} pp"))
    for key, label in (("rmse", "RMSE"), ("mae", "MAE"), ("l2r", "L2 relative error"), ("cos", "cosine similarity")):
        value = getattr(host, key)
        rows.append((f"{label} (int8 dequantized vs float softmax)", "n/a" if value is None else f"{value:.6f}"))
    rows.append(("C engine wall time on the host", f"{host.c_seconds:.3f} s ({host.c_ms_per_image:.3f} ms per image)"))
    rows.append(("result", "PASS" if host.passed else "FAIL: " + "; ".join(host.failures)))
    return rows


def qemu_rows(qemu: list[QemuRun] | None, macs: int) -> list[dict]:
    return [
        {
            "target": run.cpu,
            "per_mac": f"{run.instructions_per_inference / macs:.2f}" if macs else "n/a",
            "kernel": run.kernel,
            "correct": _ratio(run.correct, run.vectors),
            "bit_exact": _ratio(run.bit_exact, run.vectors),
            "instructions": _count(run.instructions_per_inference),
            "arena": _count(run.arena_bytes),
            "stack": _count(run.stack_bytes),
            "ram": _count(run.ram_bytes),
            "flash": _count(run.flash_bytes),
            "flash_weights": _count(run.flash_weights_bytes),
            "flash_vectors": _count(run.flash_vectors_bytes),
            "flash_code": _count(run.flash_code_bytes),
            "flash_other": _count(run.flash_platform_bytes),
        }
        for run in qemu or []
    ]


def qemu_layer_table(qemu: list[QemuRun] | None, rows: list[dict]) -> dict | None:
    """Instructions per layer, one column per run, with instructions per MAC where the layer has MACs."""
    runs = [run for run in qemu or [] if len(run.layer_instructions) == len(rows)]
    if not runs:
        return None
    table_rows = []
    for index, row in enumerate(rows):
        cells = []
        for run in runs:
            count = run.layer_instructions[index]
            text = f"{count:,}"
            if row["macs"]:
                text += f" ({count / row['macs']:.2f}/MAC)"
            cells.append(text)
        table_rows.append({"name": row["name"], "op": row["op"], "cells": cells})
    return {"headers": [f"{run.kernel} kernels, {run.cpu}" for run in runs], "rows": table_rows}


def report_plots(inputs: ReportInputs, rows: list[dict], buffers: list[dict], memory: dict) -> dict[str, bytes]:
    """Every plot the inputs allow, name -> PNG bytes; a note in inputs.notes for each one left out."""
    plots: dict[str, bytes] = {}
    if inputs.history:
        best = (inputs.training or {}).get("best_epoch")
        plots[PLOT_TRAINING] = plot_training_curves(inputs.history, int(best) if best else None)

    host = inputs.host
    matrices = []
    float_matrix = (host.confusion_matrix_keras if host else None) or inputs.training_confusion
    if float_matrix:
        matrices.append(("Keras float32", np.asarray(float_matrix)))
    if host and host.confusion_matrix_c is not None:  # None: inputs without labels (H5)
        matrices.append(("int8 (si4 C engine = TFLite Micro)", np.asarray(host.confusion_matrix_c)))
    if matrices:
        plots[PLOT_CONFUSION] = plot_confusion_matrices(matrices)
    elif host:
        inputs.notes["confusion"] = "the inputs have no labels: no confusion matrix"
    else:
        inputs.notes["confusion"] = "no confusion matrix yet: run `si4tool validate-host`"

    if buffers:
        plots[PLOT_MEMORY] = plot_memory_timeline(
            buffers, memory["arena_bytes"], [row["name"] for row in rows], memory["tflm_arena_bytes"]
        )
    else:
        inputs.notes["memory"] = "the manifest has no arena offsets or live ranges to draw"

    misclassified = host.misclassified if host else []
    if inputs.test_images is not None:
        # Indices past the dataset mean host.json came from other data; draw only what exists.
        misclassified = [item for item in misclassified if 0 <= int(item[0]) < len(inputs.test_images)]
    if misclassified and inputs.test_images is not None:
        dataset = inputs.manifest.data.get("dataset", "mnist")
        plots[PLOT_MISCLASSIFIED] = plot_misclassified(inputs.test_images, misclassified, dataset=dataset)
    elif host and host.c_accuracy is None:
        inputs.notes["misclassified"] = "the inputs have no labels: no accuracy, bit-exactness only"
    elif host and not host.misclassified:
        inputs.notes["misclassified"] = "every test image is classified correctly"

    if inputs.qemu:
        png = plot_instructions_per_layer(inputs.qemu, [row["name"] for row in rows])
        if png is not None:
            plots[PLOT_QEMU_LAYERS] = png

    model_name = Path(str(inputs.manifest.source_model.get("path") or "this model")).stem
    png = schedule_plot(schedule_rows(inputs.manifest, inputs.qemu, inputs.bench_schedules), model_name)
    if png is not None:
        plots[PLOT_SCHEDULES] = png
    return plots


# --- writing ------------------------------------------------------------------


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _shape_text(shape) -> str:
    return "-" if not shape else "×".join(str(int(d)) for d in shape)


def training_text(training: dict | None) -> str | None:
    """One sentence on how the model was trained, from whichever settings were recorded."""
    if not training:
        return None
    parts = []
    if training.get("recipe"):
        parts.append(f"recipe `{training['recipe']}`")
    if training.get("epochs") is not None:
        parts.append(f"{training['epochs']} epoch{'' if training['epochs'] == 1 else 's'}")
    for key, label in (("batch_size", "batch {}"), ("seed", "seed {}")):
        if training.get(key) is not None:
            parts.append(label.format(training[key]))
    text = ", ".join(parts)
    if training.get("best_epoch"):
        text += f"; weights kept from epoch {training['best_epoch']} (best validation)"
    if training.get("seconds_per_epoch"):
        text += f"; {float(training['seconds_per_epoch']):.1f} s per epoch"
    return text or None


def report_context(inputs: ReportInputs, plots: dict[str, bytes], rows: list[dict], memory: dict) -> dict:
    """All the values the two templates print, already formatted."""
    manifest = inputs.manifest
    totals = manifest.totals
    table = [
        dict(
            row,
            output_shape_text=_shape_text(row["output_shape"]),
            parameters_text=f"{row['parameters']:,}",
            macs_text=f"{row['macs']:,}",
            weight_bytes_text=f"{row['weight_bytes']:,}",
            arena_offset_text=row["output_in"] if row["arena_offset"] is None else f"{row['arena_offset']:,}",
            arena_bytes_text="-" if row["arena_bytes"] is None else f"{row['arena_bytes']:,}",
            live_range_text="-" if row["live_range"] is None else f"{row['live_range'][0]}–{row['live_range'][1]}",
            source_text=str(row["source"]) if row["source"] else "",
        )
        for row in rows
    ]
    q_in, q_out = manifest.quantization["input"], manifest.quantization["output"]
    captions = {
        PLOT_TRAINING: "Training curves: loss and accuracy per epoch, on the training data and the held-out validation split.",
        PLOT_CONFUSION: "Confusion matrices on the test set (rows: true label, columns: predicted; colour on a log scale).",
        PLOT_MEMORY: "Arena occupancy: each rectangle is a buffer, placed at its arena offset for the layers during which it is live.",
        PLOT_MISCLASSIFIED: "Test digits the int8 C engine gets wrong, with the true and the predicted label.",
        PLOT_QEMU_LAYERS: "Instructions per layer on the emulated Cortex-M, per kernel variant.",
        PLOT_SCHEDULES: "Memory schedules: RAM (arena + input) against instructions per inference on the emulated "
        "Cortex-M4, per kernel build (estimated MACs when no schedule was measured).",
    }
    # name -> the image as a data URI and its caption; the HTML places each one in its section.
    figures = {
        name: {"file": name, "caption": captions[name], "data_uri": _data_uri(png)} for name, png in plots.items()
    }
    return {
        "model_sha256": manifest.model_sha256,
        "source_model": manifest.source_model["path"],
        "tool_version": manifest.tool_version,
        "layers": table,
        "totals": {
            "parameters": _count(totals["parameters"]),
            "macs": _count(totals["macs"]),
            "weight_bytes": _count(totals["weight_bytes"]),
        },
        "memory": {
            key: (_bytes_text(value) if key.endswith("_bytes") and key != "vector_item_bytes" else value)
            for key, value in memory.items()
        },
        "arena_saving": (
            f"{memory['tflm_arena_bytes'] / memory['arena_bytes']:.1f}×"
            if memory["arena_bytes"] and memory["tflm_arena_bytes"]
            else None
        ),
        "quantization": {
            "input": f"scale {q_in['scale']}, zero point {q_in['zero_point']}",
            "output": f"scale {q_out['scale']}, zero point {q_out['zero_point']}",
        },
        "training_text": training_text(inputs.training),
        "accuracy_rows": accuracy_rows(inputs),
        "validation_rows": validation_rows(inputs.host),
        "qemu_rows": qemu_rows(inputs.qemu, int(totals["macs"])),
        "qemu_layers": qemu_layer_table(inputs.qemu, rows),
        "figures": figures,
        "plot": {name: name in plots for name in captions},
        "notes": inputs.notes,
        "misclassified_count": len(inputs.host.misclassified) if inputs.host else 0,
        "schedules": schedule_rows(manifest, inputs.qemu, inputs.bench_schedules),
        "schedules_choice": (manifest.memory or {}).get("choice", "fast"),
    }


def schedule_rows(manifest, qemu: list[QemuRun] | None = None, bench: list[dict] | None = None) -> list[dict]:
    """One row per schedule the planner built for the model (manifest.memory, issue 12), the chosen one
    marked, with its instructions per inference on the emulated Cortex-M4 where they were measured:
    validate-qemu's runs (qemu.json) for the chosen schedule, bench-models' (models.json) for any;
    otherwise only the estimated multiply-accumulates, labelled as an estimate."""
    record = manifest.memory
    if not record or not record.get("candidates"):
        return []  # assets from before the schedules: nothing recorded
    measured: dict[str, dict] = {}  # schedule -> {"instructions": {kernel: n}, "source": ...}
    for row in bench or []:
        measured[row["schedule"]] = {"instructions": dict(row["instructions"]), "source": "bench-models",
                                     "choices": list(row.get("choices", []))}
    chosen = next((c for c in record["candidates"] if c["schedule"] == record["schedule"]), None)
    # qemu.json measures the chosen schedule when its arena is this build's (same model, other --memory otherwise).
    runs = [run for run in qemu or [] if chosen is not None and run.arena_bytes == chosen["arena_bytes"]]
    if runs:
        entry = measured.setdefault(record["schedule"], {"instructions": {}, "source": "validate-qemu", "choices": []})
        entry["instructions"].update({run.kernel: run.instructions_per_inference for run in runs})
        entry["source"] = "validate-qemu"
    fast = measured.get(record["candidates"][0]["schedule"], {}).get("instructions", {})
    rows = []
    for candidate in record["candidates"]:
        found = measured.get(candidate["schedule"])
        instructions = found["instructions"] if found else {}
        ratios = [
            f"{instructions[k] / fast[k]:.2f}x" if instructions.get(k) and fast.get(k) else "-" for k in KERNELS
        ]
        rows.append({
            "schedule": candidate["schedule"],
            "chosen": candidate["schedule"] == record["schedule"],
            "arena": _count(candidate["arena_bytes"]),
            "arena_plus_input": _count(candidate["arena_plus_input_bytes"]),
            "estimated_macs": _count(candidate["estimated_macs"]),
            "instructions": {k: _count(instructions[k]) if instructions.get(k) else "-" for k in KERNELS},
            "ratio": " / ".join(ratios),
            "measured_by": found["source"] if found else "not measured (estimated MACs only)",
            "choices": ", ".join(found["choices"]) if found and found["choices"] else "",
            # for the plot
            "ram_bytes": int(candidate["arena_plus_input_bytes"]),
            "values": {k: int(instructions[k]) for k in KERNELS if instructions.get(k)},
            "macs": int(candidate["estimated_macs"]),
        })
    return rows


def schedule_plot(rows: list[dict], model: str) -> bytes | None:
    """RAM against measured instructions per schedule; against estimated MACs when none is measured."""
    if not rows:
        return None
    if any(row["values"] for row in rows):
        points = [(row["schedule"], row["ram_bytes"], row["values"]) for row in rows if row["values"]]
        return plot_ram_vs_instructions({model: points})
    points = [(row["schedule"], row["ram_bytes"], {"portable": row["macs"]}) for row in rows]
    return plot_ram_vs_instructions({model: points}, value_label="estimated MACs (not measured)")


def write_report(assets_dir: Path, out_dir: Path, validation_dir: Path, data_path: Path | None = None,
                 bench_models_path: Path | None = None) -> dict:
    """Write report.md, report.html (images embedded) and the PNG plots into `out_dir`.

    Returns {"markdown": path, "html": path, "plots": {name: path}, "figures": {...}}:
    the paths written and the headline figures, for the CLI's summary and for tests.
    """
    from si4tool.render import check_replaceable_folder, render_template, write_files_atomically

    out_dir = Path(out_dir)
    check_replaceable_folder(out_dir, REPORT_FILES)  # before the plots are drawn
    inputs = load_report_inputs(assets_dir, validation_dir, data_path, bench_models_path=bench_models_path)
    rows = layer_rows(inputs.manifest)
    buffers = arena_buffers(rows, (inputs.manifest.memory or {}).get("stream_buffers", []))
    memory = memory_figures(inputs)
    plots = report_plots(inputs, rows, buffers, memory)
    context = report_context(inputs, plots, rows, memory)

    files: dict[str, bytes] = dict(plots)
    files[REPORT_MARKDOWN] = render_template("report.md.j2", **context).encode()
    files[REPORT_HTML] = render_template("report.html.j2", **context).encode()
    # Replaced as a set: a re-run never leaves plots of an older run beside the new report.
    write_files_atomically(out_dir, files, replaceable_names=REPORT_FILES)

    host = inputs.host
    return {
        "markdown": out_dir / REPORT_MARKDOWN,
        "html": out_dir / REPORT_HTML,
        "plots": {name: out_dir / name for name in plots},
        "figures": {
            "arena_bytes": memory["arena_bytes"],
            "tflm_arena_bytes": memory["tflm_arena_bytes"],
            "weight_bytes": memory["weight_bytes"],
            "model_array_bytes": memory["model_array_bytes"],
            "test_vector_bytes": memory["test_vector_bytes"],
            "accuracy": {row["engine"]: row["accuracy"] for row in context["accuracy_rows"]},
            "bit_exact": host.bit_exact if host else None,
            "images": host.images if host else None,
            "notes": dict(inputs.notes),
        },
    }
