"""The JSON files the stages hand to each other, as typed records: one writer, one reader each.

| file | record | written by | read by |
|---|---|---|---|
| `<assets>/manifest.json` | `Manifest` | build-firmware-assets | validate-host, validate-qemu, trace, report, bench |
| `<validation>/host.json` | `HostValidation` | validate-host | report, bench |
| `<validation>/qemu.json` | `QemuValidation` (a `QemuRun` per target and kernel variant) | validate-qemu | report, bench |
| `<bench>/bench.json` | `BenchResult` | bench | you, CI |

Every file carries `schema_version`. A reader refuses a file written under a newer schema and one
that lacks a field it needs (each with one sentence naming the command that writes it again); keys
it does not know are ignored, so a newer writer that only adds keys does not break it. A file with
no `schema_version` was written before versioning, whose layout is version 1.

The nested records (a manifest's layers, quantization, totals; a run's per-layer counts) are plain
JSON objects whose one writer is named at the field: `codegen.layer_summaries` for the layers,
`assets.build_firmware_assets` for the rest of the manifest.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from si4tool.errors import UserError

SCHEMA_VERSION = 1

T = TypeVar("T", bound="_Record")


class ArtefactError(UserError):
    """An artefact file that is missing, unreadable, or not what its reader expects."""


class _Record:
    """to_dict / to_json / from_dict / from_json / read / write for the dataclasses below."""

    # What the file is and which command writes it, for the one-sentence errors.
    DESCRIPTION: ClassVar[str] = ""
    WRITTEN_BY: ClassVar[str] = ""
    schema_version: int

    def to_dict(self) -> dict[str, Any]:
        record = {"schema_version": self.schema_version}
        if hasattr(self, "tool"):  # "tool" names the writer: second, as before versioning
            record["tool"] = self.tool
        for item in dataclasses.fields(self):
            if item.name not in record:
                record[item.name] = _plain(getattr(self, item.name))
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls: type[T], record: object, source: str = "") -> T:
        where = source or cls.DESCRIPTION
        if not isinstance(record, dict):
            raise ArtefactError(f"{where} is not {cls.DESCRIPTION} (not a JSON object); run `{cls.WRITTEN_BY}` again")
        version = record.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ArtefactError(
                f"{where} has schema version {version!r}, newer than this si4tool reads ({SCHEMA_VERSION}); "
                f"upgrade si4tool or run `{cls.WRITTEN_BY}` again"
            )
        known = {item.name: item for item in dataclasses.fields(cls)}
        required = [
            name for name, item in known.items()
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in record]
        if missing:
            raise ArtefactError(
                f"{where} is not {cls.DESCRIPTION} (no {', '.join(missing[:3])}); run `{cls.WRITTEN_BY}` again"
            )
        values = {name: value for name, value in record.items() if name in known}
        values["schema_version"] = version
        return cls._from_values(values, where)

    @classmethod
    def _from_values(cls: type[T], values: dict[str, Any], where: str) -> T:
        return cls(**values)

    @classmethod
    def from_json(cls: type[T], text: str, source: str = "") -> T:
        try:
            record = json.loads(text)
        except ValueError as error:
            raise ArtefactError(
                f"{source or cls.DESCRIPTION} is not readable JSON ({error}); run `{cls.WRITTEN_BY}` again"
            ) from None
        return cls.from_dict(record, source)

    @classmethod
    def read(cls: type[T], path: Path) -> T:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ArtefactError(f"{path} does not exist: run `{cls.WRITTEN_BY}` first") from None
        except OSError as error:
            raise ArtefactError(f"{path} cannot be read ({error.strerror or error})") from None
        return cls.from_json(text, str(path))

    @classmethod
    def read_if_present(cls: type[T], path: Path) -> T | None:
        return cls.read(path) if Path(path).is_file() else None

    def write(self, path: Path) -> Path:
        from si4tool.render import write_file_atomically

        write_file_atomically(Path(path), self.to_json().encode())
        return Path(path)


def _plain(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@dataclass
class Manifest(_Record):
    """manifest.json: what build-firmware-assets made, from what, and what it measured."""

    DESCRIPTION: ClassVar[str] = "a si4tool manifest"
    WRITTEN_BY: ClassVar[str] = "si4tool build-firmware-assets"

    tool_version: str
    source_model: dict  # {"path": file name or "trained by si4tool", "sha256"}
    int8_model: dict  # {"sha256", "bytes"}
    data: dict | None  # {"dataset", "source", "sha256"}: no machine path; None when no dataset was used
    training: dict | None  # recipe, epochs, batch_size, seed, best_epoch, seconds_per_epoch; None for a given model
    layers: list  # codegen.layer_summaries: one record per layer
    totals: dict  # parameters, macs, weight_bytes, arena_bytes, model_tflite_bytes
    accuracy: dict  # {"test_images", "float", "int8_tflm"}
    quantization: dict  # {"input": {scale, zero_point, shape}, "output": {...}, "float_edges": {input, output}}
    test_vectors: int
    files: dict  # file name -> {"bytes", "sha256"}
    tool: str = "si4tool"
    tflite_micro_version: str | None = None  # the tflite-micro build the references came from (si4tool.versions)
    schema_version: int = SCHEMA_VERSION
    # H5 (issue 10): what the test vectors ran on, frontend/inputs.py's record: {"kind": "dataset" | "random"
    # | "file", "seed", "distribution", "shape" | "name", "sha256", "labels", "count"}; None: the dataset.
    inputs: dict | None = None
    # Issue 12: the --memory choice and what it picked: {"choice": "fast" | "balanced" | "small",
    # "max_slowdown": --max-slowdown or None,
    # "schedule": "layer by layer" | "row-streamed", "candidates": [schedule.ScheduleCandidate dicts]};
    # None: written before schedules existed (layer by layer).
    memory: dict | None = None
    # issue 13: --name, the prefix of the model's files, symbols and macros (codegen.ModelNames);
    # None: the default names (model.h, si4_model_invoke, SI4_MODEL_*).
    name: str | None = None

    @property
    def names(self):
        """The model's C names, as codegen rendered them."""
        from si4tool.compiler.codegen import ModelNames

        return ModelNames(self.name)

    @property
    def model_sha256(self) -> str:
        return self.int8_model["sha256"]

    @property
    def input_quantization(self) -> tuple[float, int]:
        record = self.quantization["input"]
        return float(record["scale"]), int(record["zero_point"])

    @property
    def output_quantization(self) -> tuple[float, int]:
        record = self.quantization["output"]
        return float(record["scale"]), int(record["zero_point"])

    @property
    def output_count(self) -> int:
        """How many outputs the engine writes (manifests before multi-output support: one)."""
        return len(self.quantization.get("outputs") or [None])

    @property
    def layer_names(self) -> list[str]:
        return [str(layer["name"]) for layer in self.layers]

    @classmethod
    def _from_values(cls, values: dict[str, Any], where: str) -> "Manifest":
        manifest = cls(**values)
        problems = []
        if not isinstance(manifest.layers, list) or not all(isinstance(layer, dict) for layer in manifest.layers):
            problems.append("no layer list")
        if not (isinstance(manifest.int8_model, dict) and "sha256" in manifest.int8_model):
            problems.append("no int8 model sha256")
        quantization = manifest.quantization
        if not (
            isinstance(quantization, dict)
            and all(isinstance(quantization.get(side), dict) and {"scale", "zero_point"} <= set(quantization[side])
                    for side in ("input", "output"))
        ):
            problems.append("no input/output quantization")
        if problems:
            raise ArtefactError(f"{where} is not {cls.DESCRIPTION} ({', '.join(problems)}); build the assets again")
        return manifest


def assets_model_names(assets_dir: Path):
    """The ModelNames of an assets folder, from its manifest's name; the default names when it has
    no manifest (a folder of rendered sources only, as the tests write) or one from before --name."""
    from si4tool.compiler.codegen import DEFAULT_NAMES, model_names

    path = Path(assets_dir) / "manifest.json"
    if not path.is_file():
        return DEFAULT_NAMES
    try:
        name = json.loads(path.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAMES  # Manifest.read, where the stage reads it, says what is wrong
    return model_names(name) if isinstance(name, str) else DEFAULT_NAMES


@dataclass
class FirmwareCheck:
    """What the firmware stub printed about its embedded vectors (validate-host's host build)."""

    vectors: int
    correct: int | None  # None: the vectors have no labels
    bit_exact: int
    arena_bytes: int


@dataclass
class HostValidation(_Record):
    """host.json: the C engine on this machine against TFLite Micro, LiteRT and Keras."""

    DESCRIPTION: ClassVar[str] = "validate-host's results"
    WRITTEN_BY: ClassVar[str] = "si4tool validate-host"

    model_sha256: str
    images: int
    bit_exact: int  # images whose int8 output is identical to TFLite Micro's
    first_mismatch: int | None
    c_accuracy: float | None  # None: the inputs have no labels (random inputs)
    tflm_accuracy: float | None
    litert: dict  # resolver ("default", "reference") -> {identical_outputs, top1_agreement, accuracy} or {skipped}
    arena_bytes: int
    tflm_arena_bytes: int
    c_seconds: float
    c_ms_per_image: float
    confusion_matrix_c: list | None  # [true][predicted]; None without labels
    misclassified: list  # [index, true, predicted] per test image the C engine gets wrong
    firmware: FirmwareCheck
    passed: bool
    failures: list
    # Only when the float Keras model is among the assets (or given):
    keras_accuracy: float | None = None
    keras_top1_agreement: float | None = None
    confusion_matrix_keras: list | None = None
    accuracy_drop_pp: float | None = None
    # STM32Cube.AI's error metrics of the dequantized int8 outputs against the float ones.
    rmse: float | None = None
    mae: float | None = None
    l2r: float | None = None
    cos: float | None = None
    schema_version: int = SCHEMA_VERSION
    # H5 (issue 10): the inputs (frontend/inputs.py's record, with "count" and "labels"), and for random or
    # user inputs every layer's output against TFLite Micro's tensor (trace.intermediates_record).
    inputs: dict | None = None
    intermediates: dict | None = None
    # issue 13: the tflite-micro build "bit-exact" refers to (si4tool.versions), as the manifest records it.
    tflite_micro_version: str | None = None

    @classmethod
    def _from_values(cls, values: dict[str, Any], where: str) -> "HostValidation":
        firmware = values["firmware"]
        try:
            values["firmware"] = FirmwareCheck(
                **{name: None if firmware[name] is None else int(firmware[name]) for name in FirmwareCheck.__dataclass_fields__}
            )
        except (TypeError, KeyError, ValueError):
            raise ArtefactError(f"{where} has no firmware record; run `{cls.WRITTEN_BY}` again") from None
        return cls(**values)


@dataclass
class QemuRun(_Record):
    """One target and kernel variant of validate-qemu: the board's results, instructions, RAM and flash."""

    DESCRIPTION: ClassVar[str] = "a validate-qemu run"
    WRITTEN_BY: ClassVar[str] = "si4tool validate-qemu"

    target: str  # targets.qemu.TARGETS key, e.g. "mps2_an386"
    cpu: str  # "Cortex-M4 (MPS2 AN386)"
    machine: str  # QEMU -M
    kernel: str  # "portable" or "dsp"
    compiler_flags: str
    model_sha256: str
    model_sha256_short: str  # what the firmware printed
    counter_unit: str
    vectors: int
    correct: int | None  # None: the vectors have no labels
    accuracy: float | None
    bit_exact: int
    mismatched_vectors: list
    exit_status: int
    instructions_per_inference: int  # median over the vectors
    instructions_min: int
    instructions_max: int
    instructions_per_layer: list  # [{"layer": name, "instructions": median over the profiled vectors}]
    arena_bytes: int
    stack_bytes: int
    engine_static_bytes: int
    ram_bytes: int  # arena + peak stack + the engine's other static data
    flash_bytes: int
    flash_weights_bytes: int
    flash_vectors_bytes: int
    flash_code_bytes: int  # model.c + kernels
    flash_platform_bytes: int  # main.c, platform layer, startup, libc
    elf: str
    # targets.cycles.firmware_cycle_estimate: estimated Cortex-M4 cycles, or {"label", "unavailable"}
    cycle_estimate: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def layer_instructions(self) -> list[int]:
        return [int(entry["instructions"]) for entry in self.instructions_per_layer]

    def to_dict(self) -> dict[str, Any]:
        record = super().to_dict()
        del record["schema_version"]  # the file's version covers its runs
        return record


@dataclass
class QemuValidation(_Record):
    """qemu.json: every run of one validate-qemu call."""

    DESCRIPTION: ClassVar[str] = "validate-qemu's results"
    WRITTEN_BY: ClassVar[str] = "si4tool validate-qemu"

    model_sha256: str
    runs: list[QemuRun] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def _from_values(cls, values: dict[str, Any], where: str) -> "QemuValidation":
        runs = values.get("runs")
        if not isinstance(runs, list):
            raise ArtefactError(f"{where} is not {cls.DESCRIPTION} (no run list); run `{cls.WRITTEN_BY}` again")
        values["runs"] = [QemuRun.from_dict(run, f"a run in {where}") for run in runs]
        return cls(**values)

    def run_for(self, kernel: str, target: str = "mps2_an386") -> QemuRun | None:
        return next((run for run in self.runs if run.kernel == kernel and run.target == target), None)


@dataclass
class BenchResult(_Record):
    """bench.json: flat `figures` (one key per figure, None when not measured, with the reason in
    `unavailable` under the key or a prefix of it), the settings, the machine and the details."""

    DESCRIPTION: ClassVar[str] = "si4tool bench results"
    WRITTEN_BY: ClassVar[str] = "si4tool bench"

    created: str
    assets: str
    model_sha256: str
    settings: dict
    model: dict  # {"macs", "layers": names, "parameters"}
    machine: dict
    figures: dict
    unavailable: dict
    details: dict  # latency per runtime, callgrind vectors, the QEMU runs, section seconds
    bench_seconds: float
    tool: str = "si4tool bench"
    schema_version: int = SCHEMA_VERSION
