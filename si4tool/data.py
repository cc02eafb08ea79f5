"""Stage 1, data: load and validate a 28x28 grayscale digit dataset (MNIST by default).

Every problem a user can cause (missing file, corrupt archive, wrong keys, shapes,
dtypes or labels) is reported as one `UserError` sentence that says how to fix it.
Later datasets with the same Keras layout (Fashion-MNIST, any 28x28 npz) plug in
through `load_dataset`.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from si4tool.errors import UserError

IMAGE_HEIGHT = 28
IMAGE_WIDTH = 28
NUM_CLASSES = 10
# Keys of the Keras `mnist.npz` layout; any dataset in this layout can be loaded.
DATASET_KEYS = ("x_train", "y_train", "x_test", "y_test")
DATA_ENV_VAR = "SI4_MNIST"
DATA_HELP = f"pass a local MNIST .npz with --data PATH or set {DATA_ENV_VAR}=PATH"


@dataclass(frozen=True)
class Dataset:
    """Images (N, 28, 28) uint8 and labels (N,) uint8, as in the Keras `mnist.npz`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where it came from, for reports
    sha256: str  # of the .npz file, for manifests and caches

    @property
    def train_size(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def test_size(self) -> int:
        return int(self.x_test.shape[0])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_mnist(path: Path | str | None = None) -> Dataset:
    """Load MNIST from `path`, else $SI4_MNIST, else the Keras downloader (needs internet)."""
    if path is None and os.environ.get(DATA_ENV_VAR):
        path = os.environ[DATA_ENV_VAR]
    if path is None:
        path = _download_keras_mnist()
    return load_npz_dataset(Path(path))


def load_dataset(name_or_path: str | Path | None = None) -> Dataset:
    """Entry point for other datasets later: "mnist" (or None) or a path to a Keras-layout .npz."""
    if name_or_path is None or str(name_or_path).lower() == "mnist":
        return load_mnist(None)
    return load_npz_dataset(Path(name_or_path))


def _download_keras_mnist() -> Path:
    """Fetch mnist.npz into the Keras cache; offline this fails with the way out."""
    try:
        from keras.utils import get_file

        # Same origin and cache name as keras.datasets.mnist.load_data(); we only
        # need the file, which is then validated like a local one.
        downloaded = get_file(
            fname="mnist.npz",
            origin="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
            file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
        )
    except Exception as error:  # network errors come in many types (URLError, OSError, ...)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"could not download MNIST with Keras ({reason}); {DATA_HELP}."
        ) from None
    return Path(downloaded)


def load_npz_dataset(path: Path) -> Dataset:
    """Load and validate a Keras-layout .npz directly with numpy (no download hash check)."""
    if not path.exists():
        raise UserError(f"data file {path} does not exist; {DATA_HELP}.")
    if not path.is_file():
        raise UserError(f"data path {path} is not a file; {DATA_HELP}.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in DATASET_KEYS if key not in archive.files]
            if missing:
                raise UserError(
                    f"data file {path} lacks the key(s) {', '.join(missing)} "
                    f"(found {', '.join(archive.files) or 'none'}); it needs {', '.join(DATASET_KEYS)} "
                    "as in the Keras mnist.npz."
                )
            arrays = {key: archive[key] for key in DATASET_KEYS}
    except UserError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise UserError(
            f"data file {path} is not a readable .npz archive ({type(error).__name__}: {error}); "
            "re-download it or pass another file with --data."
        ) from None
    _validate_arrays(arrays, path)
    return Dataset(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        source=str(path),
        sha256=file_sha256(path),
    )


def _validate_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_HEIGHT, IMAGE_WIDTH):
            raise UserError(
                f"x_{split} in {path} has shape {images.shape}; expected (N, {IMAGE_HEIGHT}, {IMAGE_WIDTH})."
            )
        if images.shape[0] == 0:
            raise UserError(f"x_{split} in {path} holds no images.")
        if labels.ndim != 1:
            raise UserError(f"y_{split} in {path} has shape {labels.shape}; expected (N,) class indices.")
        if labels.shape[0] != images.shape[0]:
            raise UserError(
                f"{path} has {images.shape[0]} x_{split} images but {labels.shape[0]} y_{split} labels; "
                "they must match."
            )
        # Strict on purpose: pixel values are 0..255 by contract and the int8
        # pipeline depends on that, so a float or int16 image array is refused.
        if images.dtype != np.uint8:
            raise UserError(f"x_{split} in {path} has dtype {images.dtype}; expected uint8 pixels 0..255.")
        if labels.dtype != np.uint8:
            raise UserError(f"y_{split} in {path} has dtype {labels.dtype}; expected uint8 class indices.")
        if labels.size and int(labels.max()) >= NUM_CLASSES:
            bad = int(labels.max())
            raise UserError(f"y_{split} in {path} holds the label {bad}; labels must be in 0..{NUM_CLASSES - 1}.")


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], exactly as the notebook does."""
    scaled = images.astype("float32") / 255
    return scaled.reshape((images.shape[0], IMAGE_HEIGHT, IMAGE_WIDTH, 1))


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Class indices -> float32 one-hot rows (same values as keras to_categorical)."""
    encoded = np.zeros((labels.shape[0], num_classes), dtype="float32")
    encoded[np.arange(labels.shape[0]), labels.astype(np.int64)] = 1.0
    return encoded
