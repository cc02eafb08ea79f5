"""The `si4tool` command line: thin Typer commands over the pipeline's plain functions.

Exit codes: 0 success, 1 validation failed, 2 usage or input error.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

# TensorFlow's C++ logging (oneDNN notices, XNNPACK delegate lines) would bury
# our output; set before anything imports TensorFlow. A user can override both.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "3")

from si4tool import __version__  # noqa: E402
from si4tool.errors import UserError, ValidationFailed  # noqa: E402

try:  # Typer 0.2x carries its own copy of click; older Typer depends on click itself
    from typer._click.exceptions import ClickException  # noqa: E402
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException  # noqa: E402

# Where the commands read and write when no option says otherwise: the library functions take
# every path from here, so running si4tool from another folder never writes into this one's build/.
DEFAULT_ASSETS = Path("build/firmware_assets")
DEFAULT_VALIDATION = Path("build/validation")
DEFAULT_FIRMWARE_BUILD = Path("build/firmware")
DEFAULT_QEMU_BUILD = Path("build/qemu")
DEFAULT_REPORT = Path("build/report")
DEFAULT_BENCH = Path("build/bench")
DEFAULT_BENCH_MODELS = DEFAULT_BENCH / "models" / "models.json"  # bench-models' results, which `report` reads
# TFLite Micro/LiteRT outputs, cached by model and inputs (reference.CACHE_DIR_ENV_VAR overrides it).
DEFAULT_REFERENCE_CACHE = Path("build/cache")

app = typer.Typer(
    name="si4tool",
    help="Train a Keras CNN, quantize it to int8, and emit C for a microcontroller, validated bit for bit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Tables keep their width when output goes to a file or a CI log (Rich would use 80 columns).
console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)
error_console = Console(stderr=True)

_state = {"debug": False}

DataOption = Annotated[
    Optional[Path],
    typer.Option(
        "--data",
        help="The file (a Keras-layout .npz) or folder (the four IDX files) to read --dataset from, instead of its "
        "default place: for mnist $SI4_MNIST, else the Keras downloader; for fashion-mnist $SI4_FASHION_MNIST, else "
        "Debian's dataset-fashion-mnist files, else the Keras downloader.",
    ),
]
DatasetOption = Annotated[
    Optional[str],
    typer.Option(
        "--dataset",
        help="mnist (default), fashion-mnist, or the PATH of a Keras-layout .npz (x_train, y_train, x_test, y_test) "
        "or of a folder of IDX files: any 28x28 grey-scale, 10-class dataset. --data only overrides where a named "
        "dataset is read from.",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the final line.")]
ReportOption = Annotated[bool, typer.Option("--report/--no-report", help="Write the report (into --report-dir) at the end.")]
ReportDirOption = Annotated[
    Path, typer.Option("--report-dir", help="Where --report writes report.md, report.html and the plots.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts and CI) instead of tables.")]
ClockOption = Annotated[
    float, typer.Option("--clock-mhz", min=0.001, help="Core clock for the estimated milliseconds (cycles are an estimate).")
]


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"si4tool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug or bool(os.environ.get("SI4_DEBUG"))


# --- commands are registered below, one thin function each ---------------------


# --- pipeline: train, quantize, export-csv ----------------------------------------

@app.command("train")
def train_command(
    dataset_name: DatasetOption = None,
    data: DataOption = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 15,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per gradient step.")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same machine, same model.")] = 0,
    recipe: Annotated[
        str, typer.Option("--recipe", help="default (cosine LR, shifts, best validation epoch) or notebook (exactly the notebook).")
    ] = "default",
    out: Annotated[Path, typer.Option("--out", help="Output folder for model.keras, mnist_lenet5.h5, history.json.")] = Path(
        "build/train"
    ),
    quiet: QuietOption = False,
) -> None:
    """Train the notebook's CNN on MNIST; print the test accuracy and the confusion matrix."""
    from si4tool.frontend.data import load_dataset
    from si4tool.frontend.train import confusion_matrix_table, save_training_outputs, train_model

    dataset = load_dataset(dataset_name, data)
    if not quiet:
        console.print(f"[cyan]→[/] training {epochs} epochs, batch {batch_size}, recipe {recipe}, seed {seed} on {dataset.source}", soft_wrap=True)
    result = train_model(dataset, epochs=epochs, batch_size=batch_size, seed=seed, recipe=recipe, quiet=quiet, console=console)
    paths = save_training_outputs(result, out, dataset)
    if not quiet:
        console.print(confusion_matrix_table(result.confusion_matrix))
        if result.best_epoch is not None and result.recipe == "default":
            console.print(f"kept epoch {result.best_epoch} (best validation accuracy); {result.seconds_per_epoch:.1f} s/epoch", soft_wrap=True)
        console.print(f"wrote {paths['model']}, {paths['h5']}, {paths['history']}", soft_wrap=True)
    console.print(f"test accuracy {100 * result.test_accuracy:.2f}% ({dataset.test_size} images)", soft_wrap=True)


@app.command("quantize")
def quantize_command(
    model: Annotated[Path, typer.Option("--model", help="Float Keras model (.keras or .h5).")] = Path("build/train/model.keras"),
    dataset_name: DatasetOption = None,
    data: DataOption = None,
    calibration_samples: Annotated[
        int, typer.Option("--calibration-samples", help="Training images used to calibrate the int8 ranges.")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed choosing the calibration images.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Output folder for model_int8.tflite and quantization.json.")] = Path(
        "build/quant"
    ),
    quiet: QuietOption = False,
) -> None:
    """Full-int8 post-training quantization; float and int8 (TFLite Micro) accuracy on all test images."""
    import hashlib

    from si4tool.frontend.data import load_dataset
    from si4tool.frontend.model import load_float_model
    from si4tool.frontend.quantize import evaluate_quantization, quantize_model, save_quantization_outputs

    float_model = load_float_model(model)
    dataset = load_dataset(dataset_name, data)
    if not quiet:
        console.print(f"[cyan]→[/] quantizing {model} with {calibration_samples} calibration images", soft_wrap=True)
    tflite_bytes = quantize_model(float_model, dataset, calibration_samples=calibration_samples, seed=seed)
    report = evaluate_quantization(
        float_model, tflite_bytes, dataset, calibration_samples, seed,
        source_model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(), quiet=quiet,
    )
    paths = save_quantization_outputs(tflite_bytes, report, out)
    if not quiet:
        console.print(f"operators: {' '.join(report.operators)}", soft_wrap=True)
        console.print(
            f"input scale {report.input_quantization['scale']:.9g} zero point {report.input_quantization['zero_point']}; "
            f"TFLite Micro arena {report.tflm_arena_bytes} bytes; model {report.tflite_bytes} bytes",
            soft_wrap=True,
        )
        console.print(f"wrote {paths['tflite']}, {paths['report']}", soft_wrap=True)
    console.print(
        f"float accuracy {100 * report.float_test_accuracy:.2f}%, int8 accuracy (TFLite Micro) "
        f"{100 * report.int8_test_accuracy:.2f}% on {report.test_images} images ({-report.accuracy_drop_pp:+.2f} pp)",
        soft_wrap=True,
    )


@app.command("export-csv")
def export_csv_command(
    dataset_name: DatasetOption = None,
    data: DataOption = None,
    count: Annotated[int, typer.Option("--count", help="Number of test images (1..test-set size).")] = 250,
    out: Annotated[Path, typer.Option("--out", help="Output folder for x_test.csv and y_test.csv.")] = Path("build/csv"),
    quiet: QuietOption = False,
) -> None:
    """Write the first test images and one-hot labels as CSV, exactly as the notebook does."""
    from si4tool.frontend.csv_export import export_csv
    from si4tool.frontend.data import load_dataset

    paths = export_csv(load_dataset(dataset_name, data), count=count, out_dir=out)
    console.print(f"wrote {paths['x']} and {paths['y']} ({count} rows)", soft_wrap=True)


# --- firmware assets and validation ---------------------------------------------

AssetsOption = Annotated[
    Path, typer.Option("--assets", help="Folder written by build-firmware-assets.")
]


def _progress_printer(quiet: bool):
    from si4tool.progress import StepReporter

    return StepReporter(console, quiet=quiet)


# --inputs (frontend/inputs.py): what the test vectors and the validation feed a model.
InputsOption = Annotated[
    Optional[str],
    typer.Option(
        "--inputs",
        help="random (seeded uniform int8, seed from --seed) or an .npy (N, *input shape) / .npz (x, optional y labels); "
        "default: the dataset when the model takes 28x28x1 images, else random.",
    ),
]
AssetsInputsOption = Annotated[
    Optional[str],
    typer.Option(
        "--inputs",
        help="random (seeded uniform int8, the seed recorded in the manifest) or an .npy (N, *input shape) / .npz "
        "(x, optional y labels); default: what the assets were built on (their dataset, or random from their seed).",
    ),
]


NameOption = Annotated[
    Optional[str],
    typer.Option(
        "--name",
        help="Prefix of the model's files, symbols and macros (kws: kws_model.h, kws_invoke, KWS_ARENA_BYTES), "
        "so several models link into one firmware; a C identifier. Default: model.h, si4_model_*, SI4_MODEL_*.",
    ),
]


@app.command("build-firmware-assets")
def build_firmware_assets_command(
    model: Annotated[
        Optional[Path],
        typer.Option("--model", help="A .keras/.h5 float model (quantized here) or an int8 .tflite; default: train one."),
    ] = None,
    dataset_name: DatasetOption = None,
    data: DataOption = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs when no --model is given.")] = 15,
    vectors: Annotated[
        Optional[int],
        typer.Option("--vectors", help="Test inputs embedded for the on-device check: 250, fewer when the inputs hold fewer or 250 would exceed a 256 KiB flash budget."),
    ] = None,
    inputs: InputsOption = None,
    images: Annotated[
        Optional[int],
        typer.Option("--images", min=1, help="Measure accuracy and TFLite Micro's outputs on the first N test inputs "
                     "(default: all; the embedded vectors are the first of them)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder (replaced atomically).")] = Path("build/firmware_assets"),
    seed: Annotated[int, typer.Option("--seed", help="Random seed for training and calibration.")] = 0,
    recipe: Annotated[str, typer.Option("--recipe", help="Training recipe: default or notebook.")] = "default",
    calibration_samples: Annotated[
        int, typer.Option("--calibration-samples", min=1, help="Training images used to calibrate int8 ranges.")
    ] = 1000,
    memory: Annotated[
        str,
        typer.Option(
            "--memory",
            help="Schedule: fast (layer by layer), small (the smallest arena within 1.3x fast's estimated "
            "instructions: row-streamed or in place where the model allows) or balanced (the smallest arena within "
            "1.1x fast's estimated instructions and multiply-accumulates).",
        ),
    ] = "fast",
    max_slowdown: Annotated[
        Optional[float],
        typer.Option(
            "--max-slowdown",
            min=1.0,
            help="With --memory small or balanced: the smallest arena whose estimated instructions (DSP build: "
            "multiply-accumulates plus each extra kernel call's set-up) are at most this multiple of fast's; fast "
            "when none is. Default: 1.3 for small, 1.1 for balanced; inf: the smallest arena whatever it costs. "
            "validate-qemu measures the result.",
        ),
    ] = None,
    report: ReportOption = True,
    report_dir: ReportDirOption = DEFAULT_REPORT,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    name: NameOption = None,
) -> None:
    """Train (or load) the CNN, quantize it to int8 and render the C assets a firmware needs."""
    import json

    from si4tool.assets import build_firmware_assets

    quiet = quiet or json_output

    result = build_firmware_assets(
        out_dir=out,
        model_path=model,
        data_path=data,
        dataset_name=dataset_name,
        epochs=epochs,
        vectors=vectors,
        seed=seed,
        recipe=recipe,
        calibration_samples=calibration_samples,
        inputs_spec=inputs,
        images=images,
        name=name,
        quiet=quiet,
        console=console,
        progress=_progress_printer(quiet),
        memory=memory,
        max_slowdown=max_slowdown,
    )
    manifest = result.manifest
    accuracy = manifest.accuracy
    if not quiet:
        _print_assets_summary(manifest, out)
    if report:
        _write_report(out, quiet=quiet, out=report_dir)
    if json_output:
        print(json.dumps({"out": str(out), **manifest.to_dict()}))
        return
    float_text = "n/a" if accuracy["float"] is None else f"{100 * accuracy['float']:.2f} %"
    int8_text = "n/a (no labels)" if accuracy["int8_tflm"] is None else f"{100 * accuracy['int8_tflm']:.2f} %"
    console.print(
        f"assets in {out}: float accuracy {float_text}, int8 accuracy (TFLite Micro) "
        f"{int8_text}, arena {manifest.totals['arena_bytes']:,} bytes"
    )
    schedule_line = _schedule_choice_line(manifest.memory)
    if schedule_line:
        console.print(schedule_line, highlight=False)


def _schedule_choice_line(memory: dict | None) -> str | None:
    """What --memory balanced/small picked against the smallest candidate, by the planner's
    instruction estimate (validate-qemu measures the real figure)."""
    if not memory or memory.get("choice", "fast") == "fast" or not memory.get("candidates"):
        return None
    candidates = memory["candidates"]
    fast = candidates[0].get("estimated_instructions") or 0
    chosen = next((c for c in candidates if c["schedule"] == memory["schedule"]), None)
    smallest = min(candidates, key=lambda c: c["arena_plus_input_bytes"])
    if chosen is None or not fast:
        return None

    def ratio(candidate: dict) -> float:
        return candidate["estimated_instructions"] / fast

    line = (f"--memory {memory['choice']}: {chosen['schedule']}, {chosen['arena_plus_input_bytes']:,} bytes with the "
            f"input, estimated {ratio(chosen):.2f}x fast's instructions")
    if smallest["arena_plus_input_bytes"] < chosen["arena_plus_input_bytes"]:
        enough = math.ceil(ratio(smallest) * 100) / 100  # rounded up: a bound that admits it
        line += (f"; the smallest schedule, {smallest['arena_plus_input_bytes']:,} bytes, is estimated at "
                 f"{ratio(smallest):.2f}x (--max-slowdown {enough:.2f} takes it)")
    return line


def _print_assets_summary(manifest, out: Path) -> None:
    from rich.table import Table

    table = Table(title="Layers", title_justify="left")
    for column in ("layer", "op", "output", "params", "MACs", "weights (B)", "arena offset", "arena (B)"):
        table.add_column(column, justify="right" if column not in ("layer", "op") else "left")
    for layer in manifest.layers:
        table.add_row(
            str(layer["name"]),
            str(layer["op"]),
            "x".join(str(d) for d in layer["output_shape"]),
            f"{layer['parameters']:,}",
            f"{layer['macs']:,}",
            f"{layer['weight_bytes']:,}",
            "-" if layer.get("arena_offset") is None else str(layer["arena_offset"]),
            f"{layer['arena_size']:,}" if layer.get("arena_offset") is not None else "-",
        )
    totals = manifest.totals
    table.add_row("total", "", "", f"{totals['parameters']:,}", f"{totals['macs']:,}", f"{totals['weight_bytes']:,}", "", "")
    console.print(table)
    files = Table(title=f"Files in {out}", title_justify="left")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    files.add_column("sha256")
    for name, record in manifest.files.items():
        files.add_row(name, f"{record['bytes']:,}", record["sha256"][:16])
    console.print(files)


def _write_report(assets: Path, quiet: bool, validation: Path = DEFAULT_VALIDATION, out: Path = DEFAULT_REPORT) -> None:
    """The report at the end of a command (--report): into `out`, from `assets` and `validation`."""
    from si4tool.reporting.report import write_report

    written = write_report(assets_dir=assets, out_dir=out, validation_dir=validation, bench_models_path=DEFAULT_BENCH_MODELS)
    if not quiet:
        console.print(f"report: {written['html']}")


@app.command("validate-host")
def validate_host_command(
    assets: AssetsOption = DEFAULT_ASSETS,
    dataset_name: Annotated[
        Optional[str],
        typer.Option(
            "--dataset",
            help="mnist, fashion-mnist or the PATH of an .npz or IDX folder; default: the dataset the assets were built on.",
        ),
    ] = None,
    data: DataOption = None,
    out: Annotated[Path, typer.Option("--out", help="Where host.json and host.md go.")] = DEFAULT_VALIDATION,
    images: Annotated[
        Optional[int], typer.Option("--images", min=1, help="Validate on the first N test images (default: all).")
    ] = None,
    inputs: AssetsInputsOption = None,
    trace: Annotated[bool, typer.Option("--trace", help="Compare every layer's output with TFLite Micro.")] = False,
    trace_images: Annotated[
        str, typer.Option("--trace-images", help="Comma-separated test image indices for --trace.")
    ] = "0",
    report: ReportOption = True,
    report_dir: ReportDirOption = DEFAULT_REPORT,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Build the engine for this machine and prove it bit-exact with TFLite Micro on every test image."""
    import json

    from si4tool.validation.validate import summary_rows, validate_host

    if trace:
        _trace(assets, data, trace_images, dataset_name, inputs)
        return
    result = validate_host(
        assets_dir=assets, out_dir=out, build_dir=DEFAULT_FIRMWARE_BUILD, data_path=data, images=images,
        quiet=quiet or json_output, console=console, dataset_name=dataset_name, inputs_spec=inputs,
    )
    if json_output:
        print(json.dumps(result.to_dict()))
    elif not quiet:
        from rich.table import Table

        table = Table(title="Host validation", title_justify="left")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name, value in summary_rows(result):
            table.add_row(name, value)
        console.print(table)
    if report:
        _write_report(assets, quiet=quiet or json_output, validation=out, out=report_dir)
    if not result.passed:
        raise ValidationFailed("; ".join(result.failures))
    if not json_output:
        console.print(
            f"validate-host: {result.bit_exact}/{result.images} bit-exact with TFLite Micro, "
            + ("" if result.c_accuracy is None else f"C accuracy {100 * result.c_accuracy:.2f} %, ")
            + f"arena {result.arena_bytes:,} bytes "
            f"(TFLite Micro {result.tflm_arena_bytes:,}), results in {out}/host.json"
        )


def _trace(
    assets: Path, data: Optional[Path], trace_images: str, dataset_name: Optional[str] = None, inputs_spec: Optional[str] = None
) -> None:
    from si4tool.frontend import data as data_stage
    from si4tool.frontend.inputs import inputs_of_assets
    from si4tool.validation.trace import trace_layers
    from si4tool.validation.validate import load_assets

    try:
        indices = [int(part) for part in trace_images.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--trace-images takes comma-separated image indices, not {trace_images!r}") from None
    manifest, _ = load_assets(assets)
    count = max(indices) + 1 if indices and min(indices) >= 0 else None
    chosen, _ = inputs_of_assets(  # the dataset's test images, or the assets' random inputs, or --inputs
        manifest, inputs_spec, count,
        load_dataset=lambda: data_stage.load_dataset_of_assets(manifest.data, dataset_name, data),
    )
    if not indices or min(indices) < 0 or max(indices) >= len(chosen):
        raise UserError(f"--trace-images must be indices between 0 and {len(chosen) - 1}")
    # Float inputs: trace_layers quantizes them for the engine, and a float-input model's TFLite gets them as they are.
    result = trace_layers(assets, chosen.x, indices, DEFAULT_FIRMWARE_BUILD)
    difference = result.first_difference
    if difference is None:
        streamed = f" ({result.streamed} streamed layers never exist whole: nothing to compare)" if result.streamed else ""
        console.print(
            f"trace: all {len(result.layers) - result.streamed} layers identical to {result.reference} on image(s) "
            f"{', '.join(map(str, indices))}{streamed}"
        )
        return
    raise ValidationFailed(
        f"image {difference.image}: layer {difference.layer_index} '{difference.layer_name}' ({difference.source}) "
        f"is the first to differ: at position {difference.position} the C engine gives {difference.c_value}, "
        f"TFLite Micro {difference.reference_value} ({difference.differing_values} values differ)"
    )


@app.command("validate-qemu")
def validate_qemu_command(
    assets: AssetsOption = DEFAULT_ASSETS,
    out: Annotated[Path, typer.Option("--out", help="Where qemu.json goes.")] = DEFAULT_VALIDATION,
    kernels: Annotated[str, typer.Option("--kernels", help="Kernel variants: portable, dsp, or both.")] = "portable,dsp",
    target: Annotated[
        str, typer.Option("--target", help="Emulated board: mps2_an386 (Cortex-M4F), mps2_an385 (Cortex-M3) or netduinoplus2 "
                       "(STM32F405, the NUCLEO-F446RE's code, output on its USART).")
    ] = "mps2_an386",
    report: ReportOption = True,
    report_dir: ReportDirOption = DEFAULT_REPORT,
    clock_mhz: ClockOption = 120.0,
    build_dir: Annotated[
        Path,
        typer.Option("--build-dir", help="Where the firmware is compiled; give each of several runs started at once its "
                     "own (they would otherwise rebuild over each other)."),
    ] = DEFAULT_QEMU_BUILD,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Build the firmware for Cortex-M, run it under QEMU: accuracy, bit-exactness, instructions, estimated cycles, RAM, flash."""
    import json

    from si4tool.targets import cycles
    from si4tool.targets.qemu import failures, validate_qemu

    variants = tuple(part.strip() for part in kernels.split(",") if part.strip())
    if not variants or any(v not in ("portable", "dsp") for v in variants):
        raise UserError(f"--kernels takes portable, dsp or portable,dsp, not {kernels!r}")
    result = validate_qemu(
        assets, out_dir=out, build_dir=build_dir, kernels=variants, targets=(target,), console=console,
        quiet=quiet or json_output,
    )
    if report:
        _write_report(assets, quiet=quiet or json_output, validation=out, out=report_dir)
    if json_output:
        print(json.dumps({**result.to_dict(), "path": str(out / "qemu.json")}))
    else:
        if not quiet:
            cycles.print_cycle_estimates(result.runs, console, clock_mhz)
        for run in result.runs:
            console.print(
                f"validate-qemu {run.target} {run.kernel}: accuracy "
                f"{'n/a (no labels)' if run.correct is None else f'{run.correct}/{run.vectors}'}, "
                f"bit-exact {run.bit_exact}/{run.vectors}, {run.instructions_per_inference:,} instructions/inference"
                f"{cycles.summary_text(run, clock_mhz)}, "
                f"RAM {run.ram_bytes:,} B, flash {run.flash_bytes:,} B (code {run.flash_code_bytes:,} B)"
            )
    failure = failures(result)
    if failure:
        raise ValidationFailed(failure)


@app.command("report")
def report_command(
    assets: AssetsOption = DEFAULT_ASSETS,
    out: Annotated[Path, typer.Option("--out", help="Where report.md, report.html and the plots go.")] = DEFAULT_REPORT,
    validation: Annotated[
        Path, typer.Option("--validation", help="Folder with host.json / qemu.json, when validations ran.")
    ] = DEFAULT_VALIDATION,
    data: DataOption = None,
    bench_models: Annotated[
        Path, typer.Option("--bench-models", help="bench-models' models.json: each memory schedule's measured "
                           "instructions, when it measured this model.")
    ] = DEFAULT_BENCH_MODELS,
    quiet: QuietOption = False,
) -> None:
    """Write report.md and a self-contained report.html with tables and plots of the model, memory and validation."""
    from si4tool.reporting.report import write_report

    written = write_report(assets_dir=assets, out_dir=out, validation_dir=validation, data_path=data,
                           bench_models_path=bench_models)
    console.print(f"report: {written['html']} and {written['markdown']}")


@app.command("bench")
def bench_command(
    assets: AssetsOption = DEFAULT_ASSETS,
    out: Annotated[Path, typer.Option("--out", help="Where bench.json and bench.md go.")] = DEFAULT_BENCH,
    images: Annotated[int, typer.Option("--images", min=1, help="Test images timed per engine.")] = 1000,
    repetitions: Annotated[int, typer.Option("--repetitions", min=1, help="Timed repetitions (median taken).")] = 5,
    qemu: Annotated[
        bool, typer.Option("--qemu/--no-qemu", help="Run the Cortex-M4 firmware under QEMU, or reuse --validation's qemu.json.")
    ] = True,
    validation: Annotated[
        Path, typer.Option("--validation", help="Folder whose qemu.json --no-qemu reuses (when it measured these assets).")
    ] = DEFAULT_VALIDATION,
    clock_mhz: ClockOption = 120.0,
    data: DataOption = None,
    inputs: AssetsInputsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Measure latency, instruction counts, estimated cycles, memory and flash side by side with LiteRT and TFLite Micro."""
    from si4tool.reporting.bench import run_bench

    run_bench(
        assets_dir=assets, out_dir=out, images=images, repetitions=repetitions, data_path=data, qemu=qemu,
        validation_dir=validation, clock_mhz=clock_mhz, console=None if quiet else console, inputs_spec=inputs,
    )
    console.print(f"bench: {out / 'bench.md'} and {out / 'bench.json'}")


@app.command("bench-models")
def bench_models_command(
    assets: Annotated[
        Path, typer.Option("--assets", help="The seed model's assets (make firmware-assets); skipped when absent.")
    ] = DEFAULT_ASSETS,
    models_dir: Annotated[
        Optional[Path], typer.Option("--models-dir", help="Folder of the MLPerf Tiny .tflite files "
                                     "(default: ../shared/models/mlperf_tiny beside the repository).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where models.json, models.md and each model's assets go.")] = DEFAULT_BENCH / "models",
    vectors: Annotated[int, typer.Option("--vectors", min=1, help="Random input vectors embedded per MLPerf model.")] = 10,
    schedules: Annotated[
        str,
        typer.Option("--schedules", help="The --memory choices whose schedules are measured per model, comma-separated, "
                     "and smallest (--memory small --max-slowdown inf) (fast is always measured: the ratios' "
                     "reference; a choice that picks a schedule already measured adds no QEMU run)."),
    ] = "fast,balanced,small,smallest",
    clock_mhz: ClockOption = 120.0,
    quiet: QuietOption = False,
) -> None:
    """Instructions and estimated cycles per inference (portable and DSP) of the seed and MLPerf Tiny models on the emulated Cortex-M4, beside TFLite Micro's, and each memory schedule's RAM and instructions."""
    from si4tool.reporting.model_suite import PLOT_SCHEDULES, parse_schedules, run_model_suite

    run_model_suite(
        seed_assets=assets, models_dir=models_dir, out_dir=out, cache_dir=DEFAULT_REFERENCE_CACHE, vectors=vectors,
        clock_mhz=clock_mhz, console=None if quiet else console, schedules=parse_schedules(schedules),
    )
    console.print(f"bench-models: {out / 'models.md'}, {out / 'models.json'} and {out / PLOT_SCHEDULES}")


@app.command("ops")
def ops_command(json_output: JsonOption = False) -> None:
    """List the TFLite operators si4tool compiles: Keras layers, C kernel, DSP variant, constraints."""
    import json

    from rich.table import Table

    from si4tool.compiler.lowering import operator_table

    rows = operator_table()
    if json_output:
        print(json.dumps({"operators": rows}))
        return
    table = Table(title="Supported operators", title_justify="left")
    for column in ("TFLite operator", "Keras layers", "kernel", "DSP", "constraints"):
        table.add_column(column)
    for row in rows:
        constraints = [row["dtypes"]] + [
            f"{name}: {row[key]}" for name, key in (("padding", "paddings"), ("strides", "strides"), ("activation", "activations"))
            if row[key] != "-"
        ] + ([row["notes"]] if row["notes"] else [])  # fmt: skip
        table.add_row(
            row["tflite_operator"], ", ".join(row["keras_layers"]) or "-", row["kernel"], "yes" if row["dsp"] else "no",
            "; ".join(constraints),
        )
    console.print(table)


@app.command("export")
def export_command(
    assets: AssetsOption = Path("build/firmware_assets"),
    export_format: Annotated[
        str, typer.Option("--format", help="cmake, arduino, zephyr or plain: the library layout and its build files.")
    ] = "cmake",
    out: Annotated[Path, typer.Option("--out", help="The library folder (new, empty, or an earlier export).")] = Path(
        "build/export"
    ),
    kernels: Annotated[
        str,
        typer.Option(
            "--kernels",
            help="portable (C99 only), dsp (the Cortex-M DSP kernels, a DSP core required) or auto (the DSP kernels "
            "where the core has the extension, chosen at compile time by __ARM_FEATURE_DSP).",
        ),
    ] = "auto",
    name: Annotated[
        Optional[str],
        typer.Option(
            "--name",
            help="The model's name, as the assets were built with (build-firmware-assets --name); default: the "
            "manifest's. The library's own files and targets are named after it (kws_library.h, si4::kws).",
        ),
    ] = None,
) -> None:
    """Write the assets as a self-contained library: model, the kernels it calls, a header, a README, build files."""
    from si4tool.targets.export import export_library

    result = export_library(assets, out, export_format=export_format, kernels=kernels, name=name)
    console.print(
        f"export: {result.out_dir} ({result.format}, {result.kernels.choice} kernels: "
        f"{', '.join(result.kernels.called)}; {len(result.files)} files)"
    )


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Import TensorFlow, whenever a stage first needs it, with file descriptor 2 muted.

    Its C++ start-up lines (absl's pre-initialisation warning, the oneDNN notice) are
    written straight to fd 2 on import, whatever TF_CPP_MIN_LOG_LEVEL says, and would stand
    before our own first line. Muting at the first import, not at start-up, keeps every
    command that fails on its arguments (a missing file, a bad option) as fast as --help:
    TensorFlow takes seconds to import and such a command never needs it."""

    _MUTED = ("tensorflow", "keras")

    def find_spec(self, name, path=None, target=None):
        if name not in self._MUTED:
            return None
        sys.meta_path.remove(self)  # the real spec, found without this finder
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_muted(module):
            saved_stderr = os.dup(2)
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
                real_exec(module)
            finally:
                os.dup2(saved_stderr, 2)
                os.close(saved_stderr)

        spec.loader.exec_module = exec_muted
        return spec


def _exit_interrupted() -> None:
    """Say so and leave at once with 130.

    After a Ctrl-C inside Keras' fit, TensorFlow's worker threads may still run while the
    interpreter shuts down, and its destructors then corrupt the heap (seen as glibc's
    "free(): invalid next size" and SIGABRT instead of 130). Every output is already
    written atomically or not at all, so nothing is lost by skipping the shutdown."""
    error_console.print("[bold red]interrupted[/]: previous outputs are left as they were")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _warn_on_untested_versions() -> None:
    """One warning when the key packages differ from the tested ones (SI4_NO_VERSION_WARNING=1 silences it)."""
    from si4tool.versions import version_warning

    warning = None if os.environ.get("SI4_NO_VERSION_WARNING") else version_warning()
    if warning:
        error_console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console entry point: user errors become one sentence and exit code 2."""
    if not os.environ.get("SI4_DEBUG") and "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    _warn_on_untested_versions()
    os.environ.setdefault("SI4_CACHE_DIR", str(DEFAULT_REFERENCE_CACHE))
    try:
        result = app(standalone_mode=False)
    except (UserError, ValidationFailed) as error:
        if _state["debug"]:
            raise
        # soft_wrap: one line however long (Rich would wrap at 80 columns off a terminal);
        # escape: a message holding "[...]" is text, not Rich markup.
        error_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        _exit_interrupted()
    except typer.Abort:
        _exit_interrupted()
    except typer.Exit as exit_request:
        sys.exit(exit_request.exit_code)
    except ClickException as error:  # usage errors: unknown option, bad value
        error.show()
        sys.exit(error.exit_code)
    if result == 130:
        # Typer turns a Ctrl-C into a return value of 130 (not an exception) when not standalone.
        _exit_interrupted()
    sys.exit(result if isinstance(result, int) else 0)
