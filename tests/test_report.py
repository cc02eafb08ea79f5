"""The report: report.md, a self-contained report.html and PNG plots, from fake but realistic stage outputs.

The fixture writes what build-firmware-assets, training, validate-host and
validate-qemu write, with figures shaped like the seed model's, so these tests
run in seconds without training anything.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from si4tool.errors import UserError
from si4tool.reporting.report import (
    PLOT_CONFUSION, PLOT_MEMORY, PLOT_MISCLASSIFIED, PLOT_QEMU_LAYERS, PLOT_SCHEDULES, PLOT_TRAINING, write_report,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ARENA_BYTES = 7008
TFLM_ARENA_BYTES = 32496
WEIGHT_BYTES = 233_384
MODEL_ARRAY_BYTES = 246_208
VECTORS = 250
MODEL_SHA256 = "cd" * 32

# The seed model after the passes (docs/architecture.md):
# name, op, TFLite operators, input shape, output shape, parameters, MACs, arena offset, arena bytes, live range
SEED_LAYERS = [
    ("conv2d_0", "conv2d_max_pool", "CONV_2D (operator 0) + MAX_POOL_2D (operator 1)", [28, 28, 1], [13, 13, 32],
     320, 26 * 26 * 32 * 9, 0, 5408, [0, 1]),
    ("conv2d_1", "conv2d_max_pool", "CONV_2D (operator 2) + MAX_POOL_2D (operator 3)", [13, 13, 32], [5, 5, 64],
     18_496, 11 * 11 * 64 * 288, 5408, 1600, [1, 2]),
    ("fully_connected_0", "fully_connected", "FULLY_CONNECTED (operator 5)", [1600], [128], 204_928, 204_800, 0, 128, [2, 3]),
    ("fully_connected_1", "fully_connected", "FULLY_CONNECTED (operator 6)", [128], [64], 8_256, 8_192, 128, 64, [3, 4]),
    ("fully_connected_2", "fully_connected", "FULLY_CONNECTED (operator 7)", [64], [10], 650, 640, 0, 10, [4, 5]),
    ("softmax_0", "softmax", "SOFTMAX (operator 8)", [10], [10], 0, 0, None, 0, None),
]
QEMU_LAYER_SHARES = (0.30, 0.55, 0.12, 0.015, 0.004, 0.011)


def _confusion(rng: np.random.Generator, errors: int) -> list[list[int]]:
    matrix = np.diag(rng.integers(950, 1130, size=10))
    for _ in range(errors):
        true, predicted = rng.choice(10, size=2, replace=False)
        matrix[true, predicted] += 1
    return matrix.tolist()


def _test_images() -> tuple[np.ndarray, np.ndarray]:
    if SHARED_MNIST.is_file():
        with np.load(SHARED_MNIST) as archive:
            return archive["x_test"][:300], archive["y_test"][:300]
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(300, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=300).astype(np.uint8)


def _layer_record(index, name, op, source, input_shape, output_shape, parameters, macs, offset, size, live) -> dict:
    """A layer as codegen.layer_summaries records it in the manifest."""
    in_arena = offset is not None
    return {
        "index": index,
        "name": name,
        "op": op,
        "source": source.replace(")", f", output tensor 'sequential/{name}/out')", 1),
        "tflite_operators": [int(n) for n in re.findall(r"operator (\d+)", source)],
        "input": f"tensor_{index}",
        "output": f"tensor_{index + 1}",
        "input_shape": input_shape,
        "output_shape": output_shape,
        "parameters": parameters,
        "macs": macs,
        "weight_bytes": parameters + 8 * output_shape[-1] if parameters else 0,
        "output_bytes": int(np.prod(output_shape)),
        "scratch_bytes": 0,
        "scratch_offset": None,
        "output_in": "arena" if in_arena else "caller's output buffer",
        "arena_offset": offset,
        "arena_size": size,
        "live_range": live,
    }


class _SavedModel:
    """Stands in for the Keras model train.save_training_outputs saves (it only calls save())."""

    def save(self, path):
        Path(path).write_bytes(b"model")


@pytest.fixture
def fake_run(tmp_path: Path) -> dict[str, Path]:
    """What the pipeline writes, written by its own writers (Manifest, HostValidation, QemuValidation,
    train.save_training_outputs) with figures shaped like the seed model's: assets, validation, a small dataset."""
    from si4tool.artefacts import FirmwareCheck, HostValidation, Manifest, QemuRun, QemuValidation
    from si4tool.frontend.train import TrainResult, save_training_outputs

    rng = np.random.default_rng(0)
    assets = tmp_path / "assets"
    validation = tmp_path / "validation"

    images, labels = _test_images()
    data_path = tmp_path / "digits.npz"
    np.savez(data_path, x_train=images[:50], y_train=labels[:50], x_test=images, y_test=labels)

    layers = [_layer_record(index, *layer) for index, layer in enumerate(SEED_LAYERS)]
    Manifest(
        tool_version="0.1.0",
        source_model={"path": "trained by si4tool", "sha256": "ab" * 32},
        int8_model={"sha256": MODEL_SHA256, "bytes": MODEL_ARRAY_BYTES},
        data={"dataset": str(data_path), "source": str(data_path), "sha256": None},
        training={"recipe": "default", "epochs": 15, "batch_size": 128, "seed": 0, "best_epoch": 13,
                  "seconds_per_epoch": 11.5},
        layers=layers,
        totals={
            "parameters": 232_650,
            "macs": sum(layer["macs"] for layer in layers),
            "weight_bytes": WEIGHT_BYTES,
            "arena_bytes": ARENA_BYTES,
            "model_tflite_bytes": MODEL_ARRAY_BYTES,
        },
        accuracy={"test_images": 10_000, "float": 0.9931, "int8_tflm": 0.9927},
        quantization={
            "input": {"scale": 0.00392156862745098, "zero_point": -128, "shape": [28, 28, 1]},
            "output": {"scale": 0.00390625, "zero_point": -128, "shape": [10]},
            "float_edges": {"input": False, "output": False},
        },
        test_vectors=VECTORS,
        files={},
    ).write(assets / "manifest.json")

    epochs = 15
    history = {
        "loss": list(np.linspace(0.35, 0.02, epochs)),
        "accuracy": list(np.linspace(0.90, 0.995, epochs)),
        "val_loss": list(np.linspace(0.08, 0.03, epochs)),
        "val_accuracy": list(np.linspace(0.975, 0.993, epochs)),
        "lr": [1e-3 * 0.8**e for e in range(epochs)],
    }
    training = TrainResult(
        model=_SavedModel(), history=history, test_accuracy=0.9931, confusion_matrix=np.asarray(_confusion(rng, 69)),
        epochs=epochs, best_epoch=13, seconds_per_epoch=11.5,
    )
    save_training_outputs(training, assets)
    (assets / "model.keras").unlink()
    (assets / "mnist_lenet5.h5").unlink()

    misclassified = [[int(i), int(labels[i]), int((labels[i] + 3) % 10)] for i in range(0, 300, 13)]
    HostValidation(
        model_sha256=MODEL_SHA256,
        images=10_000,
        bit_exact=10_000,
        first_mismatch=None,
        c_accuracy=0.9927,
        tflm_accuracy=0.9927,
        litert={
            "default": {"identical_outputs": 9_874, "top1_agreement": 9_998, "accuracy": 0.9926},
            "reference": {"identical_outputs": 10_000, "top1_agreement": 10_000, "accuracy": 0.9927},
        },
        arena_bytes=ARENA_BYTES,
        tflm_arena_bytes=TFLM_ARENA_BYTES,
        c_seconds=3.21,
        c_ms_per_image=0.321,
        confusion_matrix_c=_confusion(rng, 73),
        misclassified=misclassified,
        firmware=FirmwareCheck(vectors=VECTORS, correct=249, bit_exact=VECTORS, arena_bytes=ARENA_BYTES),
        passed=True,
        failures=[],
        keras_accuracy=0.9931,
        keras_top1_agreement=0.9989,
        confusion_matrix_keras=_confusion(rng, 69),
        accuracy_drop_pp=0.04,
        rmse=0.00123,
        mae=0.000321,
        l2r=0.00456,
        cos=0.999987,
    ).write(validation / "host.json")

    runs = [
        QemuRun(
            target="mps2_an386", cpu="Cortex-M4 (MPS2 AN386)", machine="mps2-an386", kernel=kernel,
            compiler_flags="-O2", model_sha256=MODEL_SHA256, model_sha256_short=MODEL_SHA256[:8],
            counter_unit="instructions", vectors=VECTORS, correct=249, accuracy=249 / VECTORS, bit_exact=VECTORS,
            mismatched_vectors=[], exit_status=0, instructions_per_inference=total, instructions_min=total - 40,
            instructions_max=total + 40,
            instructions_per_layer=[
                {"layer": layer[0], "instructions": int(total * share)} for layer, share in zip(SEED_LAYERS, QEMU_LAYER_SHARES)
            ],
            arena_bytes=ARENA_BYTES, stack_bytes=712, engine_static_bytes=580, ram_bytes=ARENA_BYTES + 712 + 580,
            flash_bytes=WEIGHT_BYTES + VECTORS * 795 + 9_876 + 8_000, flash_weights_bytes=WEIGHT_BYTES,
            flash_vectors_bytes=VECTORS * 795, flash_code_bytes=9_876, flash_platform_bytes=8_000,
            elf=f"build/qemu/mps2_an386-{kernel}/si4_firmware.elf",
        )
        for kernel, total in (("portable", 13_456_789), ("dsp", 4_987_654))
    ]
    QemuValidation(model_sha256=MODEL_SHA256, runs=runs).write(validation / "qemu.json")
    return {"assets": assets, "validation": validation, "data": data_path, "out": tmp_path / "report"}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _report(run: dict[str, Path]) -> dict:
    return write_report(run["assets"], out_dir=run["out"], validation_dir=run["validation"], data_path=run["data"])


def test_full_report_holds_the_figures_of_the_run(fake_run):
    written = _report(fake_run)
    markdown = written["markdown"].read_text()
    assert written["markdown"] == fake_run["out"] / "report.md"
    assert written["html"] == fake_run["out"] / "report.html"

    # Memory: the arena next to TFLM's, and the flash split.
    assert f"{ARENA_BYTES:,} B" in markdown
    assert f"{TFLM_ARENA_BYTES:,} B" in markdown
    assert f"{WEIGHT_BYTES:,} B" in markdown
    assert f"{MODEL_ARRAY_BYTES:,} B" in markdown
    assert f"{VECTORS * (784 + 10 + 1):,} B" in markdown
    assert written["figures"]["test_vector_bytes"] == VECTORS * 795
    assert written["figures"]["arena_bytes"] == ARENA_BYTES
    assert written["figures"]["tflm_arena_bytes"] == TFLM_ARENA_BYTES

    # Accuracies of every engine, and the validation metrics.
    for text in ("99.31 %", "99.27 %", "99.60 %", "Keras float32", "TensorFlow Lite Micro int8", "si4 C engine int8 (host)"):
        assert text in markdown, text
    assert "| si4 C engine on Cortex-M4 (MPS2 AN386), dsp kernels (QEMU) | 99.60 % | 250 embedded test vectors |" in markdown
    assert f"| {4_987_654 / 2_638_592:.2f} |" in markdown  # instructions per MAC
    conv_macs = SEED_LAYERS[1][6]
    conv_dsp = int(4_987_654 * 0.55)
    assert f"{conv_dsp:,} ({conv_dsp / conv_macs:.2f}/MAC)" in markdown  # per-layer instructions table
    assert "10,000/10,000" in markdown
    assert "0.999987" in markdown and "0.001230" in markdown
    assert "4,987,654" in markdown and "13,456,789" in markdown

    # The layer table: every layer with its arena offset, size and live range; the totals.
    for index, (name, op, source, _in, shape, params, macs, offset, size, live) in enumerate(SEED_LAYERS):
        line = next(row for row in markdown.splitlines() if row.startswith(f"| {index} | {name} | {op} | {source} |"))
        assert f"| {params:,} | {macs:,} |" in line
        if offset is not None:
            assert line.endswith(f"| {offset:,} | {size:,} | {live[0]}–{live[1]} |")
        else:
            assert line.endswith("| caller's output buffer | - | - |")
    assert "**232,650**" in markdown

    # Every plot exists, is referenced from the Markdown, and is a PNG of a sensible size.
    expected = {PLOT_TRAINING, PLOT_CONFUSION, PLOT_MEMORY, PLOT_MISCLASSIFIED, PLOT_QEMU_LAYERS}
    assert set(written["plots"]) == expected
    for name, path in written["plots"].items():
        assert f"]({name})" in markdown
        width, height = _png_size(path.read_bytes())
        assert 400 <= width <= 3000 and 150 <= height <= 2000, (name, width, height)
    assert not written["figures"]["notes"]


def test_html_is_self_contained_with_the_plots_embedded(fake_run):
    written = _report(fake_run)
    html = written["html"].read_text()
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == len(written["plots"])
    embedded = {base64.b64decode(uri) for uri in uris}
    assert embedded == {path.read_bytes() for path in written["plots"].values()}
    # Nothing else is fetched: no external images, stylesheets or scripts.
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert f"{ARENA_BYTES:,} B" in html and f"{TFLM_ARENA_BYTES:,} B" in html and "99.27 %" in html


def test_report_is_deterministic(fake_run):
    first = _report(fake_run)
    first_bytes = {path.name: path.read_bytes() for path in fake_run["out"].iterdir()}
    _report(fake_run)
    assert {path.name: path.read_bytes() for path in fake_run["out"].iterdir()} == first_bytes
    assert len(first_bytes) == 2 + len(first["plots"])


def test_manifest_only_report_notes_what_is_missing(fake_run):
    (fake_run["assets"] / "history.json").unlink()
    empty_validation = fake_run["validation"].parent / "no_validation"
    written = write_report(fake_run["assets"], out_dir=fake_run["out"], validation_dir=empty_validation)
    markdown = written["markdown"].read_text()
    # The memory timeline only needs the manifest; the rest is explained, not drawn.
    assert set(written["plots"]) == {PLOT_MEMORY}
    assert "validate-host" in markdown and "validate-qemu" in markdown
    assert "99.27 %" in markdown  # the manifest's TFLM accuracy still shows
    assert "| RAM: tensor arena | 7,008 B | n/a |" in markdown  # TFLM's arena is only known after validate-host
    assert not (fake_run["out"] / PLOT_TRAINING).exists()
    html = written["html"].read_text()
    assert html.count("data:image/png;base64,") == 1


def test_misclassified_grid_needs_the_dataset(fake_run, monkeypatch):
    monkeypatch.delenv("SI4_MNIST", raising=False)
    manifest_path = fake_run["assets"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["data"] = {"dataset": "mnist", "source": "/nonexistent/mnist.npz", "sha256": "00"}
    manifest_path.write_text(json.dumps(manifest))
    written = write_report(fake_run["assets"], out_dir=fake_run["out"], validation_dir=fake_run["validation"])
    assert PLOT_MISCLASSIFIED not in written["plots"]
    assert "misclassified" in written["figures"]["notes"]
    assert "--data" in written["markdown"].read_text()


def test_missing_manifest_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="build-firmware-assets"):
        write_report(tmp_path / "no_assets", out_dir=tmp_path / "report", validation_dir=tmp_path / "validation")


def test_corrupt_inputs_are_user_errors(fake_run):
    (fake_run["validation"] / "host.json").write_text("{ not json")
    with pytest.raises(UserError, match="host.json is not readable JSON"):
        _report(fake_run)
    (fake_run["validation"] / "qemu.json").write_text(json.dumps([{"kernel": "dsp"}]))  # the layout before versioning
    (fake_run["validation"] / "host.json").unlink()
    with pytest.raises(UserError, match="qemu.json is not validate-qemu's results .*run `si4tool validate-qemu` again"):
        _report(fake_run)
    (fake_run["assets"] / "manifest.json").write_text(json.dumps({"tool": "something else"}))
    with pytest.raises(UserError, match="manifest.json is not a si4tool manifest"):
        _report(fake_run)


def test_out_folder_with_other_files_is_refused(fake_run):
    fake_run["out"].mkdir()
    keep = fake_run["out"] / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(UserError, match="holds notes.txt, which si4tool did not write"):
        _report(fake_run)
    assert keep.read_text() == "mine"


def test_validation_of_another_model_is_not_reported(fake_run):
    host_path = fake_run["validation"] / "host.json"
    host = json.loads(host_path.read_text())
    host["model_sha256"] = "ef" * 32
    host_path.write_text(json.dumps(host))
    written = _report(fake_run)
    markdown = written["markdown"].read_text()
    assert "validates another model" in markdown
    assert f"{TFLM_ARENA_BYTES:,}" not in markdown
    assert written["figures"]["bit_exact"] is None


def test_artefacts_from_newer_writers_with_extra_keys_still_read(fake_run):
    for path in (fake_run["assets"] / "manifest.json", fake_run["validation"] / "host.json", fake_run["validation"] / "qemu.json"):
        record = json.loads(path.read_text())
        record["added_by_a_newer_si4tool"] = {"anything": 1}
        path.write_text(json.dumps(record))
    written = _report(fake_run)
    assert written["figures"]["bit_exact"] == 10_000 and not written["figures"]["notes"]


SEED_SCHEDULES = [  # the seed's three schedules as the planner records them (docs/memory.md)
    {"schedule": "layer by layer", "arena_bytes": ARENA_BYTES, "arena_plus_input_bytes": ARENA_BYTES + 784,
     "estimated_macs": 2_638_592},
    {"schedule": "row-streamed, whole pool windows", "arena_bytes": 2240, "arena_plus_input_bytes": 3024,
     "estimated_macs": 2_638_592},
    {"schedule": "row-streamed, split pool windows", "arena_bytes": 2144, "arena_plus_input_bytes": 2928,
     "estimated_macs": 2_638_592},
]


def _with_schedules(run: dict[str, Path]) -> None:
    manifest_path = run["assets"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["memory"] = {"choice": "fast", "schedule": "layer by layer", "candidates": SEED_SCHEDULES,
                          "stream_buffers": []}
    manifest_path.write_text(json.dumps(manifest))


def test_schedule_table_shows_measured_instructions_or_labels_the_estimate(fake_run):
    _with_schedules(fake_run)
    # Only validate-qemu of the chosen (fast) build: its instructions, the others' estimated MACs.
    written = write_report(fake_run["assets"], out_dir=fake_run["out"], validation_dir=fake_run["validation"],
                           data_path=fake_run["data"], bench_models_path=fake_run["out"].parent / "no_bench.json")
    markdown = written["markdown"].read_text()
    line = next(row for row in markdown.splitlines() if row.startswith("| layer by layer |"))
    assert "| 13,456,789 | 4,987,654 | 1.00x / 1.00x |" in line and line.endswith("| validate-qemu | yes |")
    line = next(row for row in markdown.splitlines() if row.startswith("| row-streamed, split pool windows |"))
    assert "| 2,144 | 2,928 | - | - | - / - | 2,638,592 | not measured (estimated MACs only) |" in line
    assert "run `si4tool bench-models`" in markdown
    assert PLOT_SCHEDULES in written["plots"] and f"]({PLOT_SCHEDULES})" in markdown

    # bench-models measured every schedule of this model (and another model, which is not shown).
    bench = fake_run["out"].parent / "models.json"
    records = [
        {"model": "seed", "model_sha256": MODEL_SHA256, "schedule": c["schedule"], "choices": [choice],
         "instructions": {"portable": portable, "dsp": dsp}}
        for c, choice, portable, dsp in zip(SEED_SCHEDULES, ("fast", "balanced", "small"),
                                            (13_456_789, 14_000_000, 14_100_000), (4_987_654, 5_100_000, 8_500_000))
    ] + [{"model": "kws", "model_sha256": "ee" * 32, "schedule": "layer by layer", "choices": ["fast"],
          "instructions": {"portable": 1, "dsp": 1}}]
    bench.write_text(json.dumps({"schedules": records}))
    written = write_report(fake_run["assets"], out_dir=fake_run["out"], validation_dir=fake_run["validation"],
                           data_path=fake_run["data"], bench_models_path=bench)
    markdown = written["markdown"].read_text()
    line = next(row for row in markdown.splitlines() if row.startswith("| row-streamed, split pool windows |"))
    assert f"| 14,100,000 | 8,500,000 | {14_100_000 / 13_456_789:.2f}x / {8_500_000 / 4_987_654:.2f}x |" in line
    assert "| bench-models |" in line
    assert "run `si4tool bench-models`" not in markdown
    html = written["html"].read_text()
    assert "RAM and speed per memory schedule" in html and "8,500,000" in html


def test_schedule_plot_draws_the_estimate_when_nothing_is_measured(fake_run):
    _with_schedules(fake_run)
    written = write_report(fake_run["assets"], out_dir=fake_run["out"], validation_dir=fake_run["out"].parent / "none")
    assert PLOT_SCHEDULES in written["plots"]
    width, height = _png_size(written["plots"][PLOT_SCHEDULES].read_bytes())
    assert 300 <= width <= 3000 and 150 <= height <= 2000
    assert "not measured (estimated MACs only)" in written["markdown"].read_text()
