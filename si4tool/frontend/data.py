"""Stage 1, data: load and validate a 28x28 grey-scale dataset of 10 classes.

Three datasets, chosen by name or path (`--dataset`):
- "mnist": `--data PATH`, else $SI4_MNIST, else the Keras downloader;
- "fashion-mnist": `--data PATH`, else $SI4_FASHION_MNIST, else the gzip IDX files
  of Debian's `dataset-fashion-mnist` package, else the Keras downloader;
- a path: a Keras-layout .npz (x_train, y_train, x_test, y_test) or a folder
  holding the four MNIST-style IDX files (see datasets_idx.py).
`--data` therefore only overrides the file a named dataset is read from.

Every problem a user can cause (missing file, corrupt archive, wrong keys, shapes,
dtypes or labels) is reported as one `UserError` sentence that says how to fix it.
`Dataset.source` is a short, stable description ("MNIST (mnist.npz)") that goes
into generated files; the machine-specific path stays in `Dataset.path`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from si4tool.frontend.datasets_idx import IDX_FILE_NAMES, find_idx_files, read_idx_folder
from si4tool.errors import UserError
from si4tool.render import sha256_file

IMAGE_HEIGHT = 28
IMAGE_WIDTH = 28
NUM_CLASSES = 10
# Keys of the Keras `mnist.npz` layout; any dataset in this layout can be loaded.
DATASET_KEYS = ("x_train", "y_train", "x_test", "y_test")
DATA_ENV_VAR = "SI4_MNIST"
DATA_HELP = f"pass a local MNIST .npz with --data PATH or set {DATA_ENV_VAR}=PATH"

# Names accepted by --dataset (besides a path), and what each is called in reports.
DATASET_NAMES = ("mnist", "fashion-mnist")
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
# What the ten labels mean, for reports; other datasets show the label numbers.
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}
CUSTOM_DATASET = "custom"  # Dataset.name of a dataset given by path
FASHION_ENV_VAR = "SI4_FASHION_MNIST"
# Where Debian's dataset-fashion-mnist package installs the gzip IDX files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_HELP = (
    "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
    f"pass --data PATH (a Keras-layout .npz or a folder of the four IDX files) or set {FASHION_ENV_VAR}=PATH"
)
CUSTOM_HELP = "pass a Keras-layout .npz (x_train, y_train, x_test, y_test) or a folder of the four IDX files"
_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# Numbers past these in an .npy header are a corrupt file, refused before numpy allocates anything.
_MAX_NPZ_ARRAY_ELEMENTS = 1 << 27


@dataclass(frozen=True)
class Dataset:
    """Images (N, 28, 28) uint8 and labels (N,) uint8, as in the Keras `mnist.npz`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # short, stable description for reports and generated files, e.g. "MNIST (mnist.npz)"
    sha256: str  # of the .npz file (or of the four IDX files' digests), for manifests and caches
    name: str = "mnist"  # "mnist", "fashion-mnist" or "custom" (given by path)
    path: str | None = None  # the file or folder read, on this machine (never written into generated files)

    @property
    def train_size(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def test_size(self) -> int:
        return int(self.x_test.shape[0])


def load_mnist(path: Path | str | None = None) -> Dataset:
    """Load MNIST from `path`, else $SI4_MNIST, else the Keras downloader (needs internet)."""
    return load_dataset("mnist", path)


def load_dataset(
    dataset: str | Path | None = None, data_path: Path | str | None = None, *, allow_download: bool = True
) -> Dataset:
    """Load the dataset `--dataset` names ("mnist" when None, "fashion-mnist", or a path), reading it
    from `data_path` (`--data`) when given. allow_download=False never touches the network."""
    choice = "mnist" if dataset is None else str(dataset)
    key = choice.strip().lower()
    if key == "mnist":
        if data_path is None and os.environ.get(DATA_ENV_VAR):
            data_path = os.environ[DATA_ENV_VAR]
        if data_path is None:
            if not allow_download:
                raise UserError(f"no local MNIST file; {DATA_HELP}.")
            data_path = _download_keras_mnist()
        return _load_path(Path(data_path), "mnist", DATA_HELP)
    if key in ("fashion-mnist", "fashion_mnist"):
        return _load_fashion_mnist(data_path, allow_download)
    path = Path(choice)
    if data_path is not None and Path(data_path) != path:
        raise UserError(
            f"--dataset {choice} already names the file to read; drop --data {data_path} "
            "(--data only overrides the file of --dataset mnist or fashion-mnist)."
        )
    if not path.exists() and path.suffix.lower() != ".npz" and os.sep not in choice:
        raise UserError(
            f"unknown dataset '{choice}'; choose {' or '.join(DATASET_NAMES)}, or give the path of a Keras-layout "
            ".npz file or of a folder of IDX files."
        )
    return _load_path(path, CUSTOM_DATASET, CUSTOM_HELP)


def _load_path(path: Path, name: str, help_text: str) -> Dataset:
    """A .npz file or a folder of IDX files, for the dataset `name`."""
    if path.is_dir():
        if find_idx_files(path) is None:
            expected = ", ".join(f"{base}[.gz]" for base in IDX_FILE_NAMES.values())
            raise UserError(f"data path {path} is not a file, and not a folder holding the IDX files {expected}; {help_text}.")
        return load_idx_dataset(path, name)
    return load_npz_dataset(path, name=name, help_text=help_text)


def _describe(name: str, what: str) -> str:
    """'MNIST (mnist.npz)', 'Fashion-MNIST (gzip IDX files)', or just 'digits.npz' for a custom file."""
    title = DATASET_TITLES.get(name)
    return f"{title} ({what})" if title else what


def _load_fashion_mnist(data_path: Path | str | None, allow_download: bool) -> Dataset:
    if data_path is None and os.environ.get(FASHION_ENV_VAR):
        data_path = os.environ[FASHION_ENV_VAR]
    if data_path is not None:
        return _load_path(Path(data_path), "fashion-mnist", FASHION_HELP)
    if find_idx_files(DEBIAN_FASHION_MNIST_DIR) is not None:
        return load_idx_dataset(DEBIAN_FASHION_MNIST_DIR, "fashion-mnist")
    if not allow_download:
        raise UserError(f"no local Fashion-MNIST files; {FASHION_HELP}.")
    return load_idx_dataset(_download_keras_fashion_mnist(), "fashion-mnist")


def _download_failure(dataset_title: str, error: Exception, help_text: str) -> UserError:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return UserError(f"could not download {dataset_title} with Keras ({reason}); {help_text}.")


def _download_keras_mnist() -> Path:
    """Fetch mnist.npz into the Keras cache; offline this fails with the way out."""
    try:
        from keras.utils import get_file

        # Same origin and cache name as keras.datasets.mnist.load_data(); we only
        # need the file, which is then validated like a local one.
        downloaded = get_file(
            fname="mnist.npz",
            origin=_KERAS_ORIGIN + "mnist.npz",
            file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
        )
    except Exception as error:  # network errors come in many types (URLError, OSError, ...)
        raise _download_failure("MNIST", error, DATA_HELP) from None
    return Path(downloaded)


def _download_keras_fashion_mnist() -> Path:
    """Fetch the four gzip IDX files as keras.datasets.fashion_mnist.load_data() does (same cache folder),
    so they are then read and hashed exactly like Debian's copies."""
    try:
        from keras.utils import get_file

        paths = [
            get_file(f"{base}.gz", origin=f"{_KERAS_ORIGIN}{base}.gz", cache_subdir="datasets/fashion-mnist")
            for base in IDX_FILE_NAMES.values()
        ]
    except Exception as error:  # network errors come in many types (URLError, OSError, ...)
        raise _download_failure("Fashion-MNIST", error, FASHION_HELP) from None
    return Path(paths[0]).parent


def load_idx_dataset(folder: Path, name: str = CUSTOM_DATASET) -> Dataset:
    """Load and validate the four IDX files (gzip or plain) of `folder`."""
    folder = Path(folder)
    arrays, sha256 = read_idx_folder(folder)
    _validate_arrays(arrays, folder)
    compressed = all(path.suffix == ".gz" for path in (find_idx_files(folder) or {}).values())
    what = "gzip IDX files" if compressed else "IDX files"
    return Dataset(
        **{key: arrays[key] for key in DATASET_KEYS},
        source=_describe(name, what if name != CUSTOM_DATASET else f"{what} in {folder.name or folder}"),
        sha256=sha256,
        name=name,
        path=str(folder),
    )


def load_npz_dataset(path: Path, name: str = CUSTOM_DATASET, help_text: str | None = None) -> Dataset:
    """Load and validate a Keras-layout .npz directly with numpy (no download hash check)."""
    path = Path(path)
    help_text = help_text or (DATA_HELP if name == "mnist" else CUSTOM_HELP)
    if not path.exists():
        raise UserError(f"data file {path} does not exist; {help_text}.")
    if not path.is_file():
        raise UserError(f"data path {path} is not a file; {help_text}.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in DATASET_KEYS if key not in archive.files]
            if missing:
                raise UserError(
                    f"data file {path} lacks the key(s) {', '.join(missing)} "
                    f"(found {', '.join(archive.files) or 'none'}); it needs {', '.join(DATASET_KEYS)} "
                    "as in the Keras mnist.npz."
                )
            for key in DATASET_KEYS:
                _check_npy_header(archive, key, path)
            arrays = {key: archive[key] for key in DATASET_KEYS}
    except UserError:
        raise
    except Exception as error:
        # A damaged archive surfaces as any of zipfile.BadZipFile, zlib.error, EOFError,
        # ValueError (bad .npy header, pickled objects), OSError, NotImplementedError
        # (unknown compression), RuntimeError (encrypted member), struct.error, MemoryError:
        # for a data file they all mean the same thing.
        reason = str(error).splitlines()[0][:160] if str(error) else ""
        raise UserError(
            f"data file {path} is not a readable .npz archive ({type(error).__name__}: {reason}); "
            "re-download it or pass another file with --data."
        ) from None
    _validate_arrays(arrays, path)
    return Dataset(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        source=_describe(name, path.name),
        sha256=sha256_file(path),
        name=name,
        path=str(path),
    )


def _check_npy_header(archive, key: str, path: Path) -> None:
    """Read the .npy header of `key` and refuse absurd shapes before numpy allocates the array."""
    member = f"{key}.npy"
    if member not in archive.zip.namelist():
        return  # numpy resolves the name itself; the load that follows reports any problem
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with archive.zip.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in read_header:
            return
        shape, _fortran_order, _dtype = read_header[version](stream)
    elements = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if not 0 <= elements <= _MAX_NPZ_ARRAY_ELEMENTS:
        raise UserError(
            f"{key} in {path} claims the shape {shape}, far more than a 28x28 dataset holds; the file is corrupt."
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


def load_dataset_of_assets(
    data_record: dict | None,
    dataset: str | Path | None = None,
    data_path: Path | str | None = None,
    *,
    allow_download: bool = True,
) -> Dataset:
    """The dataset to check assets against: `--dataset`/`--data` when given, else the dataset the
    manifest's "data" record names (assets from before that record: MNIST)."""
    if dataset is None:
        record = data_record or {}
        recorded = str(record.get("dataset", "mnist"))
        if recorded not in DATASET_NAMES:
            if data_path is None:
                raise UserError(
                    f"the assets were built on the dataset '{record.get('source', recorded)}'; "
                    "pass the same file with --dataset PATH."
                )
            return load_dataset(data_path, allow_download=allow_download)
        dataset = recorded
    return load_dataset(dataset, data_path, allow_download=allow_download)
