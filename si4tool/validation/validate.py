"""`validate-host`: prove on this machine that the generated C gives TFLite Micro's answers.

1. Build the firmware stub for the host with the strict flags and run it on the
   test vectors embedded in the assets (what a board would do).
2. Run the same engine sources, as a shared library, over every test image and
   compare with TFLite Micro (bit for bit), LiteRT (default and reference
   kernels, agreement reported) and the Keras float model (accuracy, top-1
   agreement, and STM32Cube.AI's error metrics on the dequantized outputs).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from si4tool.errors import UserError, ValidationFailed
from si4tool.targets.toolchain import firmware_stub_dir

# The int8 model may lose this much top-1 accuracy against the float model.
MAX_ACCURACY_DROP_PP = 0.3


@dataclass
class FirmwareRun:
    """What the firmware stub printed, parsed."""

    vectors: int
    correct: int
    bit_exact: int
    arena_bytes: int
    counter_unit: str
    counts: list[int] = field(default_factory=list)  # one per vector, in counter units
    layer_counts: list[list[int]] = field(default_factory=list)  # per profiled vector, per layer
    stack_bytes: int | None = None
    passed: bool = False
    mismatched_vectors: list[int] = field(default_factory=list)
    output: str = ""


_SUMMARY_PATTERNS = {
    "accuracy": re.compile(r"^accuracy (\d+)/(\d+) "),
    "bit_exact": re.compile(r"^bit-exact (\d+)/(\d+)$"),
    "arena": re.compile(r"^arena (\d+) bytes$"),
    "stack": re.compile(r"^stack (\d+) bytes$"),
    "result": re.compile(r"^result (PASS|FAIL)$"),
    "header": re.compile(r"^si4 model \S+ layers \d+ vectors \d+ counter (\S+)$"),
    "vector": re.compile(r"^vector (\d+) label (\d+) predicted (\d+) exact ([01]) count (\d+)$"),
    "layers": re.compile(r"^layers (\d+)((?: \d+)+)$"),
}


def parse_firmware_output(text: str) -> FirmwareRun:
    """Parse main.c's lines (host, QEMU or a board's UART log)."""
    found: dict[str, re.Match] = {}
    counts: list[int] = []
    layer_counts: list[list[int]] = []
    mismatched: list[int] = []
    for line in text.splitlines():
        line = line.strip()
        for key, pattern in _SUMMARY_PATTERNS.items():
            match = pattern.match(line)
            if not match:
                continue
            if key == "vector":
                counts.append(int(match.group(5)))
                if match.group(4) == "0":
                    mismatched.append(int(match.group(1)))
            elif key == "layers":
                layer_counts.append([int(v) for v in match.group(2).split()])
            else:
                found[key] = match
            break
    missing = [key for key in ("accuracy", "bit_exact", "arena", "result") if key not in found]
    if missing:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise ValidationFailed(f"the firmware did not print its summary ({', '.join(missing)} missing); last lines:\n{tail}")
    return FirmwareRun(
        vectors=int(found["accuracy"].group(2)),
        correct=int(found["accuracy"].group(1)),
        bit_exact=int(found["bit_exact"].group(1)),
        arena_bytes=int(found["arena"].group(1)),
        counter_unit=found["header"].group(1) if "header" in found else "",
        counts=counts,
        layer_counts=layer_counts,
        stack_bytes=int(found["stack"].group(1)) if "stack" in found else None,
        passed=found["result"].group(1) == "PASS",
        mismatched_vectors=mismatched,
        output=text,
    )


def build_host_firmware(assets_dir: Path, build_dir: Path) -> Path:
    """`make -C firmware_stub host`: -std=c99 -O2 -Wall -Wextra -Werror -pedantic."""
    assets_dir = Path(assets_dir).resolve()
    build_dir = Path(build_dir).resolve()
    args = ["make", "--no-print-directory", "-C", str(firmware_stub_dir()), "host", f"ASSETS={assets_dir}", f"BUILD={build_dir}"]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        first_error = next((line for line in lines if "error" in line), lines[-1] if lines else "")
        raise UserError(f"building the host firmware failed: {first_error}")
    return build_dir / "host" / "si4_firmware"


def run_firmware(binary: Path, timeout_s: float = 300) -> FirmwareRun:
    try:
        result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ValidationFailed(f"{binary} did not finish within {timeout_s:.0f} s") from None
    run = parse_firmware_output(result.stdout)
    if result.returncode not in (0, 1):
        raise ValidationFailed(f"{binary} crashed (exit status {result.returncode})")
    return run


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


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> list[list[int]]:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix.tolist()


def load_assets(assets_dir: Path) -> tuple[dict, bytes]:
    assets_dir = Path(assets_dir)
    manifest_path = assets_dir / "manifest.json"
    model_path = assets_dir / "model_int8.tflite"
    if not manifest_path.is_file() or not model_path.is_file():
        raise UserError(f"{assets_dir} holds no firmware assets: run `si4tool build-firmware-assets --out {assets_dir}` first")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{manifest_path} is not readable JSON ({error}); build the assets again") from None
    # An incomplete or foreign folder is the user's to fix: say so before make or the C compiler does.
    from si4tool.assets import C_ASSET_FILES

    missing = [name for name in C_ASSET_FILES if not (assets_dir / name).is_file()]
    if missing:
        raise UserError(f"{assets_dir} lacks {', '.join(missing)}: run `si4tool build-firmware-assets --out {assets_dir}` again")
    quantization = manifest.get("quantization") if isinstance(manifest, dict) else None
    if not (
        isinstance(quantization, dict)
        and all(isinstance(quantization.get(side), dict) and {"scale", "zero_point"} <= set(quantization[side]) for side in ("input", "output"))
        and isinstance(manifest.get("int8_model"), dict)
        and "sha256" in manifest["int8_model"]
    ):
        raise UserError(f"{manifest_path} is not a si4tool manifest (no quantization or int8_model record); build the assets again")
    return manifest, model_path.read_bytes()


def validate_host(
    assets_dir: Path = Path("build/firmware_assets"),
    data_path: Path | None = None,
    out_dir: Path = Path("build/validation"),
    build_dir: Path = Path("build/firmware"),
    cache_dir: Path | None = Path("build/cache"),
    keras_model_path: Path | None = None,
    images: int | None = None,
    quiet: bool = False,
    console=None,
    dataset_name: str | None = None,
) -> dict:
    """Run every check; write host.json and host.md; raise ValidationFailed on a mismatch or accuracy drop."""
    from si4tool.frontend import data
    from si4tool.validation import reference
    from si4tool.targets.host_engine import build_host_engine
    from si4tool.frontend.quantize import quantize_input

    from si4tool.progress import StepReporter

    step = StepReporter(console, quiet=quiet)

    assets_dir = Path(assets_dir)
    manifest, tflite_bytes = load_assets(assets_dir)
    # The assets' own dataset unless --dataset/--data say otherwise; loaded first, so a bad
    # data file is reported before any C is built.
    dataset = data.load_dataset_of_assets(manifest.get("data"), dataset_name, data_path)

    step("building the firmware stub for the host (-std=c99 -O2 -Wall -Wextra -Werror -pedantic) and running it", spinner=True)
    firmware = run_firmware(build_host_firmware(assets_dir, build_dir))
    step.finish()
    if console is not None and not quiet:
        console.print(
            f"  firmware stub: accuracy {firmware.correct}/{firmware.vectors}, "
            f"bit-exact {firmware.bit_exact}/{firmware.vectors}"
        )

    count = len(dataset.x_test) if images is None else min(images, len(dataset.x_test))
    labels = dataset.y_test[:count]
    q_in = manifest["quantization"]["input"]
    q_out = manifest["quantization"]["output"]
    x_float = data.normalize(dataset.x_test[:count])
    x_int8 = quantize_input(x_float, q_in["scale"], q_in["zero_point"])

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
    result: dict = {
        "images": count,
        "bit_exact": bit_exact,
        "first_mismatch": first_mismatch,
        "c_accuracy": float(np.mean(c_pred == labels)),
        "tflm_accuracy": float(np.mean(np.argmax(tflm_out, 1) == labels)),
        "litert": litert,
        "keras_accuracy": None,
        "keras_top1_agreement": None,
        "rmse": None,
        "mae": None,
        "l2r": None,
        "cos": None,
        "arena_bytes": engine.arena_bytes,
        "tflm_arena_bytes": reference.tflm_arena_bytes(tflite_bytes),
        "c_seconds": round(c_seconds, 4),
        "c_ms_per_image": round(1000 * c_seconds / count, 4),
        "confusion_matrix_c": confusion_matrix(labels, c_pred, classes),
        # The test images the C engine gets wrong (index, true, predicted), for the report's grid.
        "misclassified": [[int(i), int(labels[i]), int(c_pred[i])] for i in np.flatnonzero(c_pred != labels)],
        "firmware": {
            "vectors": firmware.vectors,
            "correct": firmware.correct,
            "bit_exact": firmware.bit_exact,
            "arena_bytes": firmware.arena_bytes,
        },
        "model_sha256": manifest["int8_model"]["sha256"],
    }

    keras_candidates = [Path(keras_model_path)] if keras_model_path else [assets_dir / "model.keras", assets_dir / "model.h5"]
    keras_path = next((path for path in keras_candidates if path.is_file()), None)
    if keras_path is not None:
        from si4tool.frontend.model import load_float_model

        step("running the Keras float model", spinner=True)
        keras_probs = reference.keras_outputs(load_float_model(keras_path), x_float)
        keras_pred = np.argmax(keras_probs, axis=1)
        dequantized = (c_out.astype(np.float64) - q_out["zero_point"]) * q_out["scale"]
        result.update(
            keras_accuracy=float(np.mean(keras_pred == labels)),
            keras_top1_agreement=float(np.mean(keras_pred == c_pred)),
            confusion_matrix_keras=confusion_matrix(labels, keras_pred, classes),
            **error_metrics(dequantized, keras_probs),
        )

    step.finish()
    failures = []
    if bit_exact != count:
        failures.append(f"{count - bit_exact} of {count} images differ from TFLite Micro (first: image {first_mismatch}); run with --trace")
    if firmware.bit_exact != firmware.vectors:
        failures.append(f"the firmware stub matched only {firmware.bit_exact}/{firmware.vectors} embedded vectors")
    if result["keras_accuracy"] is not None:
        drop_pp = 100 * (result["keras_accuracy"] - result["c_accuracy"])
        result["accuracy_drop_pp"] = round(drop_pp, 4)
        if drop_pp > MAX_ACCURACY_DROP_PP:
            failures.append(f"int8 accuracy is {drop_pp:.2f} pp below the float model (limit {MAX_ACCURACY_DROP_PP} pp)")
    result["passed"] = not failures
    result["failures"] = failures

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "host.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "host.md").write_text(host_markdown(result))
    return result


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def summary_rows(result: dict) -> list[tuple[str, str]]:
    n = result["images"]
    rows = [
        ("images", str(n)),
        ("bit-exact with TFLite Micro", f"{result['bit_exact']}/{n}"),
        ("firmware stub (embedded vectors)", f"{result['firmware']['bit_exact']}/{result['firmware']['vectors']} bit-exact"),
        ("C engine accuracy", _pct(result["c_accuracy"])),
        ("TFLite Micro accuracy", _pct(result["tflm_accuracy"])),
        ("Keras float accuracy", _pct(result["keras_accuracy"])),
        ("top-1 agreement with Keras", _pct(result["keras_top1_agreement"])),
    ]
    for resolver, figures in result["litert"].items():
        rows.append((f"LiteRT ({resolver} kernels) identical outputs", f"{figures['identical_outputs']}/{n}"))
    if result["rmse"] is not None:
        rows += [
            ("RMSE vs Keras", f"{result['rmse']:.6f}"),
            ("MAE vs Keras", f"{result['mae']:.6f}"),
            ("L2 relative error", f"{result['l2r']:.6f}"),
            ("cosine similarity", f"{result['cos']:.6f}"),
        ]
    rows += [
        ("arena (si4tool)", f"{result['arena_bytes']:,} bytes"),
        ("arena (TFLite Micro)", f"{result['tflm_arena_bytes']:,} bytes" if result["tflm_arena_bytes"] else "n/a"),
        ("C engine time", f"{result['c_seconds']:.3f} s ({result['c_ms_per_image']:.4f} ms/image)"),
        ("result", "PASS" if result["passed"] else "FAIL"),
    ]
    return rows


def host_markdown(result: dict) -> str:
    lines = ["# Host validation", "", "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in summary_rows(result)]
    for failure in result["failures"]:
        lines.append(f"\n**Failure:** {failure}")
    for key, title in (("confusion_matrix_c", "C engine"), ("confusion_matrix_keras", "Keras float")):
        if key in result:
            matrix = result[key]
            lines += ["", f"## Confusion matrix, {title} (rows: true class, columns: predicted)", ""]
            lines.append("| | " + " | ".join(str(i) for i in range(len(matrix))) + " |")
            lines.append("|---" * (len(matrix) + 1) + "|")
            lines += [f"| **{i}** | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(matrix)]
    return "\n".join(lines) + "\n"
