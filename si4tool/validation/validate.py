"""`validate-host`: prove on this machine that the generated C gives TFLite Micro's answers.

1. Build the firmware stub for the host with the strict flags and run it on the
   test vectors embedded in the assets (what a board would do).
2. Run the same engine sources, as a shared library, over every test image and
   compare with TFLite Micro (bit for bit), LiteRT (default and reference
   kernels, agreement reported) and the Keras float model (accuracy, top-1
   agreement, and STM32Cube.AI's error metrics on the dequantized outputs).

The results are an artefacts.HostValidation, written as host.json (and host.md);
whether a failed check ends the command is the caller's to decide.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from si4tool.artefacts import FirmwareCheck, HostValidation, Manifest
from si4tool.errors import UserError
from si4tool.targets.firmware import build_firmware, run_host_firmware

# The int8 model may lose this much top-1 accuracy against the float model.
MAX_ACCURACY_DROP_PP = 0.3


def error_metrics(dequantized: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The metrics STM32Cube.AI's validation prints, over all outputs of all images.

    rmse, mae: root-mean-square and mean absolute error; l2r: L2 relative error
    ||c - ref|| / ||ref||; cos: cosine similarity of the flattened outputs.
    """
    c = dequantized.astype(np.float64).ravel()
    ref = reference.astype(np.float64).ravel()
    diff = c - ref
    return {
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "mae": float(np.mean(np.abs(diff))),
        "l2r": float(np.linalg.norm(diff) / max(np.linalg.norm(ref), 1e-30)),
        "cos": float(np.dot(c, ref) / max(np.linalg.norm(c) * np.linalg.norm(ref), 1e-30)),
    }


def load_assets(assets_dir: Path) -> tuple[Manifest, bytes]:
    """The assets' manifest and int8 model, or one sentence saying how to make them."""
    assets_dir = Path(assets_dir)
    manifest_path = assets_dir / "manifest.json"
    model_path = assets_dir / "model_int8.tflite"
    if not manifest_path.is_file() or not model_path.is_file():
        raise UserError(f"{assets_dir} holds no firmware assets: run `si4tool build-firmware-assets --out {assets_dir}` first")
    manifest = Manifest.read(manifest_path)
    # An incomplete or foreign folder is the user's to fix: say so before make or the C compiler does.
    from si4tool.assets import C_ASSET_FILES

    missing = [name for name in C_ASSET_FILES if not (assets_dir / name).is_file()]
    if missing:
        raise UserError(f"{assets_dir} lacks {', '.join(missing)}: run `si4tool build-firmware-assets --out {assets_dir}` again")
    return manifest, model_path.read_bytes()


def validate_host(
    assets_dir: Path,
    out_dir: Path,
    build_dir: Path,
    data_path: Path | None = None,
    cache_dir: Path | None = None,
    keras_model_path: Path | None = None,
    images: int | None = None,
    quiet: bool = False,
    console=None,
    dataset_name: str | None = None,
) -> HostValidation:
    """Run every check; write host.json and host.md into out_dir; return the results.

    The caller raises ValidationFailed when `passed` is false (the results are written first).
    cache_dir: where reference outputs are cached (None: reference.py's default)."""
    from si4tool.frontend import data
    from si4tool.compiler.quant_math import quantize_input
    from si4tool.frontend.train import confusion_matrix
    from si4tool.progress import StepReporter
    from si4tool.targets.host_engine import build_host_engine
    from si4tool.validation import reference

    step = StepReporter(console, quiet=quiet)

    assets_dir = Path(assets_dir)
    manifest, tflite_bytes = load_assets(assets_dir)
    # The assets' own dataset unless --dataset/--data say otherwise; loaded first, so a bad
    # data file is reported before any C is built.
    dataset = data.load_dataset_of_assets(manifest.data, dataset_name, data_path)

    step("building the firmware stub for the host (-std=c99 -O2 -Wall -Wextra -Werror -pedantic) and running it", spinner=True)
    firmware = run_host_firmware(build_firmware(assets_dir, build_dir, "host"))
    step.finish()
    if console is not None and not quiet:
        console.print(
            f"  firmware stub: accuracy {'n/a (no labels)' if firmware.correct is None else f'{firmware.correct}/{firmware.vectors}'}, "
            f"bit-exact {firmware.bit_exact}/{firmware.vectors}"
        )

    count = len(dataset.x_test) if images is None else min(images, len(dataset.x_test))
    labels = dataset.y_test[:count]
    x_float = data.normalize(dataset.x_test[:count])
    x_int8 = quantize_input(x_float, *manifest.input_quantization)

    step(f"compiling the C engine as a host library and running it on {count} test images", spinner=True)
    engine = build_host_engine(assets_dir, build_dir)
    start = time.perf_counter()
    c_out = engine.run(x_int8)
    c_seconds = time.perf_counter() - start

    step(f"TensorFlow Lite Micro on {count} test images", spinner=False)
    # The references take the float images: an int8-input model's are quantized exactly as above,
    # a float-input model's go through TFLite's own QUANTIZE (the firmware must match it).
    tflm_out = reference.tflm_outputs(tflite_bytes, x_float, cache_dir=cache_dir, quiet=quiet)
    bit_exact = int(np.sum(np.all(c_out == tflm_out, axis=1)))
    first_mismatch = None if bit_exact == count else int(np.argmin(np.all(c_out == tflm_out, axis=1)))

    litert = {}
    step("LiteRT, default and reference kernels", spinner=False)
    for resolver in ("default", "reference"):
        lite_out = reference.litert_outputs(tflite_bytes, x_float, op_resolver=resolver)
        litert[resolver] = {
            "identical_outputs": int(np.sum(np.all(c_out == lite_out, axis=1))),
            "top1_agreement": int(np.sum(np.argmax(c_out, 1) == np.argmax(lite_out, 1))),
            "accuracy": float(np.mean(np.argmax(lite_out, 1) == labels)),
        }

    c_pred = np.argmax(c_out, axis=1)
    classes = c_out.shape[1]
    result = HostValidation(
        model_sha256=manifest.model_sha256,
        images=count,
        bit_exact=bit_exact,
        first_mismatch=first_mismatch,
        c_accuracy=float(np.mean(c_pred == labels)),
        tflm_accuracy=float(np.mean(np.argmax(tflm_out, 1) == labels)),
        litert=litert,
        arena_bytes=engine.arena_bytes,
        tflm_arena_bytes=reference.tflm_arena_bytes(tflite_bytes),
        c_seconds=round(c_seconds, 4),
        c_ms_per_image=round(1000 * c_seconds / count, 4),
        confusion_matrix_c=confusion_matrix(labels, c_pred, classes).tolist(),
        # The test images the C engine gets wrong (index, true, predicted), for the report's grid.
        misclassified=[[int(i), int(labels[i]), int(c_pred[i])] for i in np.flatnonzero(c_pred != labels)],
        firmware=FirmwareCheck(
            vectors=firmware.vectors, correct=firmware.correct, bit_exact=firmware.bit_exact,
            arena_bytes=firmware.arena_bytes,
        ),
        passed=False,
        failures=[],
    )

    keras_candidates = [Path(keras_model_path)] if keras_model_path else [assets_dir / "model.keras", assets_dir / "model.h5"]
    keras_path = next((path for path in keras_candidates if path.is_file()), None)
    if keras_path is not None:
        from si4tool.frontend.model import load_float_model

        step("running the Keras float model", spinner=True)
        keras_probs = reference.keras_outputs(load_float_model(keras_path), x_float)
        keras_pred = np.argmax(keras_probs, axis=1)
        scale, zero_point = manifest.output_quantization
        dequantized = (c_out.astype(np.float64) - zero_point) * scale
        metrics = error_metrics(dequantized, keras_probs)
        result.keras_accuracy = float(np.mean(keras_pred == labels))
        result.keras_top1_agreement = float(np.mean(keras_pred == c_pred))
        result.confusion_matrix_keras = confusion_matrix(labels, keras_pred, classes).tolist()
        result.rmse, result.mae, result.l2r, result.cos = (metrics[key] for key in ("rmse", "mae", "l2r", "cos"))

    step.finish()
    failures = []
    if bit_exact != count:
        failures.append(f"{count - bit_exact} of {count} images differ from TFLite Micro (first: image {first_mismatch}); run with --trace")
    if firmware.bit_exact != firmware.vectors:
        failures.append(f"the firmware stub matched only {firmware.bit_exact}/{firmware.vectors} embedded vectors")
    if result.keras_accuracy is not None:
        drop_pp = 100 * (result.keras_accuracy - result.c_accuracy)
        result.accuracy_drop_pp = round(drop_pp, 4)
        if drop_pp > MAX_ACCURACY_DROP_PP:
            failures.append(f"int8 accuracy is {drop_pp:.2f} pp below the float model (limit {MAX_ACCURACY_DROP_PP} pp)")
    result.passed = not failures
    result.failures = failures

    from si4tool.render import write_file_atomically

    out_dir = Path(out_dir)
    try:
        result.write(out_dir / "host.json")
        write_file_atomically(out_dir / "host.md", host_markdown(result).encode())
    except OSError as error:
        raise UserError(f"cannot write the host validation into {out_dir} ({error.strerror or error}); choose another --out") from None
    return result


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def summary_rows(result: HostValidation) -> list[tuple[str, str]]:
    n = result.images
    firmware = result.firmware
    rows = [
        ("images", str(n)),
        ("bit-exact with TFLite Micro", f"{result.bit_exact}/{n}"),
        ("firmware stub (embedded vectors)", f"{firmware.bit_exact}/{firmware.vectors} bit-exact"),
        ("C engine accuracy", _pct(result.c_accuracy)),
        ("TFLite Micro accuracy", _pct(result.tflm_accuracy)),
        ("Keras float accuracy", _pct(result.keras_accuracy)),
        ("top-1 agreement with Keras", _pct(result.keras_top1_agreement)),
    ]
    for resolver, figures in result.litert.items():
        rows.append((f"LiteRT ({resolver} kernels) identical outputs", f"{figures['identical_outputs']}/{n}"))
    if result.rmse is not None:
        rows += [
            ("RMSE vs Keras", f"{result.rmse:.6f}"),
            ("MAE vs Keras", f"{result.mae:.6f}"),
            ("L2 relative error", f"{result.l2r:.6f}"),
            ("cosine similarity", f"{result.cos:.6f}"),
        ]
    rows += [
        ("arena (si4tool)", f"{result.arena_bytes:,} bytes"),
        ("arena (TFLite Micro)", f"{result.tflm_arena_bytes:,} bytes"),
        ("C engine time", f"{result.c_seconds:.3f} s ({result.c_ms_per_image:.4f} ms/image)"),
        ("result", "PASS" if result.passed else "FAIL"),
    ]
    return rows


def host_markdown(result: HostValidation) -> str:
    lines = ["# Host validation", "", "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in summary_rows(result)]
    for failure in result.failures:
        lines.append(f"\n**Failure:** {failure}")
    for matrix, title in ((result.confusion_matrix_c, "C engine"), (result.confusion_matrix_keras, "Keras float")):
        if matrix is not None:
            lines += ["", f"## Confusion matrix, {title} (rows: true class, columns: predicted)", ""]
            lines.append("| | " + " | ".join(str(i) for i in range(len(matrix))) + " |")
            lines.append("|---" * (len(matrix) + 1) + "|")
            lines += [f"| **{i}** | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(matrix)]
    return "\n".join(lines) + "\n"
