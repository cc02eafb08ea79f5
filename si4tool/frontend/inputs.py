"""Stage 1b, inputs: what the test vectors and the validation feed the model.

A model whose input is the dataset's (28x28x1) gets the dataset's test images, as
before. Any other model (a [1, 640] feature vector, a 49x10 spectrogram, a 96x96
RGB image) gets, by default, seeded uniform int8 inputs over [-128, 127]
(`--inputs random`), or the user's own inputs (`--inputs PATH`: an .npy of shape
(N, *input shape), float32 in model units or int8, or an .npz with `x` and
optionally `y`, the labels). The choice is recorded in the manifest ("inputs"),
so validate-host and bench regenerate the same inputs without being told again.

Bit-exactness against TensorFlow Lite Micro needs no labels: any int8 input
exercises every kernel. Accuracy is reported only when labels exist.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from si4tool.errors import UserError

RANDOM = "random"
KINDS = ("dataset", RANDOM, "file")
# The dataset's images, as the model sees them; any other input shape has no dataset.
DATASET_INPUT_SHAPE = (28, 28, 1)
# validate-host and bench on random inputs, when --images does not say otherwise.
DEFAULT_RANDOM_COUNT = 1000
RANDOM_DISTRIBUTION = "uniform int8 over [-128, 127]"
# Files bigger than this are refused before numpy reads them (a corrupt header or the wrong file).
_MAX_FILE_ELEMENTS = 1 << 28


@dataclass(frozen=True)
class ModelInput:
    """The engine's input tensor: shape without the batch dimension and int8 quantization;
    float_input when the .tflite takes float32 through a QUANTIZE (the references then get floats)."""

    shape: tuple[int, ...]
    scale: float
    zero_point: int
    float_input: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def takes_dataset(self) -> bool:
        return tuple(self.shape) == DATASET_INPUT_SHAPE


@dataclass(frozen=True)
class Inputs:
    """x: (N, *input shape), float32 in model units or int8 (already the engine's input);
    labels: (N,) class indices, or None (then no accuracy anywhere)."""

    x: np.ndarray
    labels: np.ndarray | None
    kind: str  # "dataset", "random" or "file"
    description: str  # one phrase for the console and generated files
    record: dict = field(default_factory=dict)  # manifest["inputs"]
    dataset: object | None = None  # the frontend.data.Dataset when kind == "dataset"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def head(self, count: int) -> "Inputs":
        count = min(int(count), len(self))
        labels = None if self.labels is None else self.labels[:count]
        return replace(self, x=self.x[:count], labels=labels)

    def engine_int8(self, model_input: ModelInput) -> np.ndarray:
        """The int8 values the C engine reads, quantized as TFLite's QUANTIZE does when x is float."""
        if self.x.dtype == np.int8:
            return self.x
        from si4tool.frontend.quantize import quantize_input

        return quantize_input(self.x, model_input.scale, model_input.zero_point)


def random_int8(shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    """Seeded uniform int8 over [-128, 127]. NumPy's PCG64 stream fills row after row, so the first
    k inputs are the same for any count: the embedded vectors are the head of validate-host's set."""
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(int(count), *shape), dtype=np.int8)


def random_inputs(model_input: ModelInput, count: int, seed: int) -> Inputs:
    values = random_int8(model_input.shape, count, seed)
    x = values
    if model_input.float_input:
        # A float-input model's QUANTIZE must see real values; these quantize back to `values` exactly.
        x = (np.float32(model_input.scale) * (values.astype(np.float32) - np.float32(model_input.zero_point)))
    return Inputs(
        x=x,
        labels=None,
        kind=RANDOM,
        description=f"seeded {RANDOM_DISTRIBUTION} (seed {seed})",
        record={"kind": RANDOM, "seed": int(seed), "distribution": RANDOM_DISTRIBUTION, "shape": list(model_input.shape)},
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_spec(spec: str | Path | None) -> None:
    """Refuse a missing or foreign --inputs file at once (before any training), not after."""
    if spec is None or str(spec).strip().lower() == RANDOM:
        return
    path = Path(spec)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise UserError(f"--inputs {path.name} must be an .npy (inputs) or an .npz (x, optionally y), or 'random'")
    if not path.is_file():
        raise UserError(f"--inputs {path} does not exist; pass an .npy or .npz file, or 'random'")


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    check_spec(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            x = np.load(path, allow_pickle=False, mmap_mode="r")
            return np.asarray(x), None
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files:
                raise UserError(
                    f"--inputs {path.name} has no array 'x' (found {', '.join(archive.files) or 'none'}); "
                    "it needs x (the inputs) and optionally y (the labels)"
                )
            x = archive["x"]
            y = archive["y"] if "y" in archive.files else None
            return x, y
    except UserError:
        raise
    except Exception as error:  # a damaged file surfaces as many exception types; all mean the same
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise UserError(f"--inputs {path.name} is not a readable {suffix} file ({reason})") from None


def load_input_file(path: Path | str, model_input: ModelInput, classes: int) -> Inputs:
    """The user's inputs: (N, *input shape), float32 in model units or int8; labels 0..classes-1."""
    path = Path(path)
    x, y = _read_arrays(path)
    expected = tuple(model_input.shape)
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise UserError(
            f"--inputs {path.name} holds an array of shape {tuple(x.shape)}; the model needs (N, {', '.join(map(str, expected))})"
        )
    if x.shape[0] == 0 or x.size > _MAX_FILE_ELEMENTS:
        raise UserError(f"--inputs {path.name} holds {x.shape[0]} inputs; give between 1 and {_MAX_FILE_ELEMENTS // max(1, model_input.size):,}")
    if x.dtype == np.int8:
        if model_input.float_input:
            raise UserError(f"--inputs {path.name} is int8, but this model takes float32 input; pass the float values")
    elif np.issubdtype(x.dtype, np.floating):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise UserError(f"--inputs {path.name} holds NaN or infinite values")
    else:
        raise UserError(f"--inputs {path.name} has dtype {x.dtype}; give float32 in the model's units or int8")
    labels = None
    if y is not None:
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"y in --inputs {path.name} must be ({x.shape[0]},) integer class indices, not {y.dtype} {y.shape}")
        if y.size and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise UserError(f"y in --inputs {path.name} holds labels outside 0..{classes - 1} (the model's {classes} outputs)")
        labels = y.astype(np.int64)
    return Inputs(
        x=x,
        labels=labels,
        kind="file",
        description=f"{path.name} ({x.shape[0]} inputs, {x.dtype}{', labelled' if labels is not None else ''})",
        record={"kind": "file", "name": path.name, "sha256": _sha256(path), "labels": labels is not None},
    )


def dataset_inputs(dataset) -> Inputs:
    from si4tool.frontend import data

    return Inputs(
        x=data.normalize(dataset.x_test),
        labels=dataset.y_test,
        kind="dataset",
        description=f"{dataset.source} test images",
        record={"kind": "dataset", "dataset": dataset.name},
        dataset=dataset,
    )


def choose_inputs(
    spec: str | Path | None,
    model_input: ModelInput,
    classes: int,
    *,
    seed: int,
    random_count: int,
    load_dataset: Callable[[], object],
) -> tuple[Inputs, str | None]:
    """`--inputs` resolved: (inputs, the line to print when a default was taken, or None).

    None: the dataset when the model takes its images, otherwise `random_count` random inputs."""
    if spec is not None and str(spec).strip().lower() == RANDOM:
        return random_inputs(model_input, random_count, seed), None
    if spec is not None:
        return load_input_file(Path(spec), model_input, classes), None
    if model_input.takes_dataset:
        return dataset_inputs(load_dataset()), None
    shape = "x".join(str(d) for d in model_input.shape)
    note = (
        f"the model's input is {shape}, not the dataset's 28x28x1: using {random_count} seeded random int8 inputs "
        f"(seed {seed}); pass --inputs PATH for your own"
    )
    return random_inputs(model_input, random_count, seed), note


def inputs_of_assets(
    manifest: dict,
    spec: str | Path | None,
    count: int | None,
    load_dataset: Callable[[], object],
) -> tuple[Inputs, str | None]:
    """The inputs validate-host and bench run on: `--inputs` when given, else what the manifest records
    (the dataset, or random inputs regenerated from the recorded seed; a user file is not kept with the
    assets, so without --inputs its checks run on random inputs, and the returned line says so)."""
    if hasattr(manifest, "to_dict"):  # an artefacts.Manifest
        manifest = manifest.to_dict()
    quantization = manifest["quantization"]
    model_input = ModelInput(
        shape=tuple(int(d) for d in quantization["input"].get("shape") or DATASET_INPUT_SHAPE),
        scale=float(quantization["input"]["scale"]),
        zero_point=int(quantization["input"]["zero_point"]),
        float_input=bool((quantization.get("float_edges") or {}).get("input")),
    )
    classes = int(np.prod(quantization["output"].get("shape") or [10]))
    record = manifest.get("inputs") or {"kind": "dataset"}  # assets from before this record: the dataset
    seed = int(record.get("seed", 0))
    random_count = DEFAULT_RANDOM_COUNT if count is None else int(count)
    note = None
    if spec is None and record.get("kind") == "dataset" and model_input.takes_dataset:
        inputs = dataset_inputs(load_dataset())
    elif spec is None:
        inputs = random_inputs(model_input, random_count, seed)
        if record.get("kind") == "file":
            note = (
                f"the assets' vectors came from {record.get('name')}, which is not kept with them: checking on "
                f"{random_count} seeded random inputs (seed {seed}); pass --inputs {record.get('name')} to use it"
            )
        else:
            note = f"inputs: {random_count} seeded random int8 inputs (seed {seed}, as recorded in the manifest)"
    else:
        inputs, _ = choose_inputs(
            spec, model_input, classes, seed=seed, random_count=random_count, load_dataset=load_dataset
        )
    if count is not None:
        inputs = inputs.head(count)
    return inputs, note
