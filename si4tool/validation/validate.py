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

from si4tool.versions import installed_tflite_micro_version
from si4tool.artefacts import FirmwareCheck, HostValidation, Manifest
from si4tool.errors import UserError
from si4tool.targets.firmware import build_firmware, run_host_firmware

# The int8 model may lose this much top-1 accuracy against the float model.
MAX_ACCURACY_DROP_PP = 0.3


def accuracy_drop_limit_pp(images: int) -> float:
    """0.3 pp, or one image when fewer than 334 are compared: on 200 images a single image that
    flips in quantization is 0.5 pp, noise rather than a sign of a broken quantization."""
    return max(MAX_ACCURACY_DROP_PP, 100.0 / images) if images else MAX_ACCURACY_DROP_PP
# Random or user inputs: every layer's output is compared with TFLite Micro's on this many first inputs.
INTERMEDIATE_INPUTS = 20


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

    names = manifest.names  # the files are named as the manifest says (--name)
    missing = [names.file(name) for name in C_ASSET_FILES if not (assets_dir / names.file(name)).is_file()]
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
    inputs_spec: str | Path | None = None,
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
    # --inputs, else what the assets were built on (their dataset unless --dataset/--data say otherwise,
    # or random inputs from the recorded seed); loaded first, so a bad file is reported before any C is built.
    from si4tool.frontend.inputs import inputs_of_assets

    inputs, inputs_note = inputs_of_assets(
        manifest, inputs_spec, images,
        load_dataset=lambda: data.load_dataset_of_assets(manifest.data, dataset_name, data_path),
    )
    if inputs_note is not None and console is not None and not quiet:
        console.print(inputs_note, highlight=False)

    step("building the firmware stub for the host (-std=c99 -O2 -Wall -Wextra -Werror -pedantic) and running it", spinner=True)
    firmware = run_host_firmware(build_firmware(assets_dir, build_dir, "host"))
    step.finish()
    if console is not None and not quiet:
        console.print(
            f"  firmware stub: accuracy {'n/a (no labels)' if firmware.correct is None else f'{firmware.correct}/{firmware.vectors}'}, "
            f"bit-exact {firmware.bit_exact}/{firmware.vectors}"
        )

    count = len(inputs)
    labels = inputs.labels  # None for random or unlabelled inputs: no accuracy then
    if labels is not None and manifest.output_count > 1:
        # argmax over several concatenated outputs means nothing: bit-exactness only
        labels = None
        if console is not None and not quiet:
            console.print(
                f"  accuracy: n/a (the model has {manifest.output_count} outputs; argmax needs one)", highlight=False
            )
    x_float = inputs.x  # float in model units, or int8 (random inputs): the references take either
    x_int8 = inputs.x if inputs.x.dtype == np.int8 else quantize_input(x_float, *manifest.input_quantization)

    step(f"compiling the C engine as a host library and running it on {count} test images", spinner=True)
    engine = build_host_engine(assets_dir, build_dir)
    start = time.perf_counter()
    c_out = engine.run(x_int8)
    c_seconds = time.perf_counter() - start

    step(f"TensorFlow Lite Micro on {count} inputs ({inputs.description})", spinner=False)
    # The references take the float images: an int8-input model's are quantized exactly as above,
    # a float-input model's go through TFLite's own QUANTIZE (the firmware must match it).
    tflm_out = reference.tflm_outputs(tflite_bytes, x_float, cache_dir=cache_dir, quiet=quiet).reshape(count, -1)
    bit_exact = int(np.sum(np.all(c_out == tflm_out, axis=1)))
    first_mismatch = None if bit_exact == count else int(np.argmin(np.all(c_out == tflm_out, axis=1)))

    litert = {}
    step("LiteRT, default and reference kernels", spinner=False)
    for resolver in ("default", "reference"):
        # A secondary reference: one that cannot run the model is reported as skipped; TFLite Micro decides.
        lite_out, skipped = reference.secondary_outputs(reference.litert_outputs, tflite_bytes, x_float, op_resolver=resolver)
        if lite_out is None:
            litert[resolver] = {"skipped": skipped}
            continue
        lite_out = lite_out.reshape(count, -1)
        litert[resolver] = {
            "identical_outputs": int(np.sum(np.all(c_out == lite_out, axis=1))),
            "top1_agreement": (
                None if manifest.output_count > 1 else int(np.sum(np.argmax(c_out, 1) == np.argmax(lite_out, 1)))
            ),
            "accuracy": None if labels is None else float(np.mean(np.argmax(lite_out, 1) == labels)),
        }

    c_pred = np.argmax(c_out, axis=1)
    classes = c_out.shape[1]
    result = HostValidation(
        model_sha256=manifest.model_sha256,
        images=count,
        bit_exact=bit_exact,
        first_mismatch=first_mismatch,
        c_accuracy=None if labels is None else float(np.mean(c_pred == labels)),
        tflm_accuracy=None if labels is None else float(np.mean(np.argmax(tflm_out, 1) == labels)),
        litert=litert,
        arena_bytes=engine.arena_bytes,
        tflm_arena_bytes=reference.tflm_arena_bytes(tflite_bytes),
        c_seconds=round(c_seconds, 4),
        c_ms_per_image=round(1000 * c_seconds / count, 4),
        confusion_matrix_c=None if labels is None else confusion_matrix(labels, c_pred, classes).tolist(),
        # The test images the C engine gets wrong (index, true, predicted), for the report's grid.
        misclassified=[] if labels is None else [[int(i), int(labels[i]), int(c_pred[i])] for i in np.flatnonzero(c_pred != labels)],
        firmware=FirmwareCheck(
            vectors=firmware.vectors, correct=firmware.correct, bit_exact=firmware.bit_exact,
            arena_bytes=firmware.arena_bytes,
        ),
        passed=False,
        failures=[],
        tflite_micro_version=installed_tflite_micro_version(),  # the build the references above came from
    )
    # --- H5 (issue 10): what the inputs were, and for random or user inputs every intermediate tensor.
    from si4tool.validation.trace import intermediates_record

    result.inputs = {**inputs.record, "count": count, "labels": labels is not None}
    if inputs.kind != "dataset":
        step(f"every layer's output against TFLite Micro's tensors on the first {min(count, INTERMEDIATE_INPUTS)} inputs", spinner=True)
        result.intermediates = intermediates_record(assets_dir, x_float, INTERMEDIATE_INPUTS, build_dir / "trace")
    # --- end H5

    keras_candidates = [Path(keras_model_path)] if keras_model_path else [assets_dir / "model.keras", assets_dir / "model.h5"]
    keras_path = next((path for path in keras_candidates if path.is_file()), None)
    if keras_path is not None and labels is not None and x_float.dtype != np.int8:
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
    if result.intermediates and result.intermediates["tensors_identical"] != result.intermediates["tensors"]:
        failures.append(f"intermediate tensors differ from TFLite Micro's: {result.intermediates['first_difference']}")
    if result.keras_accuracy is not None:
        drop_pp = 100 * (result.keras_accuracy - result.c_accuracy)
        result.accuracy_drop_pp = round(drop_pp, 4)
        limit_pp = accuracy_drop_limit_pp(count)
        if drop_pp > limit_pp + 1e-9:
            failures.append(f"int8 accuracy is {drop_pp:.2f} pp below the float model (limit {limit_pp:.2g} pp on {count} images)")
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
        *intermediate_rows(result),
        ("C engine accuracy", _pct(result.c_accuracy)),
        ("TFLite Micro accuracy", _pct(result.tflm_accuracy)),
        ("Keras float accuracy", _pct(result.keras_accuracy)),
        ("top-1 agreement with Keras", _pct(result.keras_top1_agreement)),
    ]
    for resolver, figures in result.litert.items():
        value = f"skipped: {figures['skipped']}" if "skipped" in figures else f"{figures['identical_outputs']}/{n}"
        rows.append((f"LiteRT ({resolver} kernels) identical outputs", value))
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


def intermediate_rows(result: HostValidation) -> list[tuple[str, str]]:
    """H5 (issue 10): the inputs' kind and the look inside, for the summary table."""
    rows = []
    record = result.inputs or {}
    if record.get("kind") == "random":
        rows.append(("inputs", f"{result.images} seeded random int8 (seed {record.get('seed')})"))
    elif record.get("kind") == "file":
        rows.append(("inputs", f"{result.images} from {record.get('name')}"))
    check = result.intermediates
    if check:
        rows.append(("intermediate tensors identical to TFLite Micro",
                     f"{check['tensors_identical']}/{check['tensors']} ({check['layers']} layers x {check['inputs']} inputs)"))
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
