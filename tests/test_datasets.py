"""Any 28x28 grey-scale dataset: the IDX reader, --dataset/--data precedence, Fashion-MNIST
(Debian's gzip IDX files) end to end through validate-host, bit-exact."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from si4tool.frontend import data
from si4tool.frontend.data import load_dataset, load_dataset_of_assets
from si4tool.frontend.datasets_idx import IDX_FILE_NAMES, MAX_IDX_BYTES, read_idx, read_idx_folder
from si4tool.errors import UserError

FASHION_TRAIN_LIMIT = 10_000
FASHION_VALIDATE_IMAGES = 1_000
FASHION_ASSET_IMAGES = 2_000  # build-firmware-assets --images: TFLite Micro on 2,000 images, not 10,000


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def small_arrays(train: int = 30, test: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=test, dtype=np.uint8),
    }


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray] | None = None, compress: bool = True) -> Path:
    arrays = arrays or small_arrays()
    folder.mkdir(parents=True, exist_ok=True)
    for key, base in IDX_FILE_NAMES.items():
        content = idx_bytes(arrays[key])
        if compress:
            # mtime=0: the same arrays give the same bytes, hence the same dataset sha256.
            (folder / f"{base}.gz").write_bytes(gzip.compress(content, mtime=0))
        else:
            (folder / base).write_bytes(content)
    return folder


# --- the IDX reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    arrays = small_arrays()
    folder = write_idx_folder(tmp_path / "idx", arrays, compress=compress)
    read, sha256 = read_idx_folder(folder)
    for key in arrays:
        np.testing.assert_array_equal(read[key], arrays[key])
        assert read[key].dtype == np.uint8
    assert len(sha256) == 64
    dataset = data.load_idx_dataset(folder)
    assert dataset.source == ("gzip IDX files in idx" if compress else "IDX files in idx")
    assert (dataset.train_size, dataset.test_size, dataset.name) == (30, 12, "custom")


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"", "truncated"),
        (b"\x00\x00", "truncated"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00\x00\x00\x00", "holds float values"),
        (b"\x00\x00\x42\x01" + struct.pack(">I", 1) + b"\x00", "unknown type 0x42"),
        (b"\x00\x00\x08\x02" + struct.pack(">2I", 1, 1) + b"\x00", "2 dimensions; expected 1"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x01", "truncated: its data of shape \\(5,\\) needs 5"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x00\x01\x02", "bytes after the data"),
        (b"\x00\x00\x08\x01\x00\x00", "truncated: its dimension sizes"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", MAX_IDX_BYTES + 1), "corrupt"),
    ],
)
def test_idx_reader_refuses_malformed_files(tmp_path, content, pattern):
    for path, payload in ((tmp_path / "plain", content), (tmp_path / "packed.gz", gzip.compress(content, mtime=0))):
        path.write_bytes(payload)
        with pytest.raises(UserError, match=pattern):
            read_idx(path, expected_dims=1)


def test_idx_reader_refuses_a_huge_claimed_shape_without_reading(tmp_path):
    # 4 billion images claimed by a 16-byte header: refused from the header alone.
    path = tmp_path / "bomb"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 0xFFFFFFFF, 28, 28))
    with pytest.raises(UserError, match="corrupt"):
        read_idx(path, expected_dims=3)


def test_idx_reader_refuses_damaged_gzip(tmp_path):
    whole = gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)), mtime=0)
    damaged = bytearray(whole)
    damaged[len(damaged) // 2] ^= 0xFF
    for name, payload in (("cut.gz", whole[: len(whole) - 9]), ("damaged.gz", bytes(damaged))):
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(UserError, match="IDX file .* (could not be read|truncated)"):
            read_idx(path, expected_dims=3)


def test_idx_folder_with_bad_shapes_is_refused(tmp_path):
    arrays = small_arrays()
    arrays["x_test"] = np.zeros((12, 28, 27), np.uint8)
    with pytest.raises(UserError, match=r"x_test in .* shape \(12, 28, 27\)"):
        data.load_idx_dataset(write_idx_folder(tmp_path / "idx", arrays))
    arrays = small_arrays()
    arrays["y_train"] = np.full(30, 10, np.uint8)
    with pytest.raises(UserError, match="label 10"):
        data.load_idx_dataset(write_idx_folder(tmp_path / "labels", arrays))


# --- --dataset / --data precedence -----------------------------------------------------------


def _npz(path: Path, seed: int = 0) -> Path:
    np.savez(path, **small_arrays(seed=seed))
    return path


def test_named_datasets_and_their_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_ENV_VAR, raising=False)
    monkeypatch.delenv(data.FASHION_ENV_VAR, raising=False)
    explicit = _npz(tmp_path / "explicit.npz", seed=1)
    from_env = _npz(tmp_path / "env.npz", seed=2)
    fashion_folder = write_idx_folder(tmp_path / "fashion", small_arrays(seed=3))

    # mnist: --data, else $SI4_MNIST.
    monkeypatch.setenv(data.DATA_ENV_VAR, str(from_env))
    assert load_dataset(None).path == str(from_env)
    assert load_dataset("MNIST", explicit).path == str(explicit)
    mnist = load_dataset("mnist")
    assert (mnist.name, mnist.source) == ("mnist", "MNIST (env.npz)")

    # fashion-mnist: --data (npz or IDX folder), else $SI4_FASHION_MNIST, else Debian's folder.
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", fashion_folder)
    debian = load_dataset("fashion-mnist")
    assert (debian.name, debian.source, debian.path) == ("fashion-mnist", "Fashion-MNIST (gzip IDX files)", str(fashion_folder))
    np.testing.assert_array_equal(debian.y_test, small_arrays(seed=3)["y_test"])
    assert load_dataset("fashion-mnist", explicit).source == "Fashion-MNIST (explicit.npz)"
    monkeypatch.setenv(data.FASHION_ENV_VAR, str(explicit))
    assert load_dataset("fashion-mnist").path == str(explicit)

    # A path names its own file; --data beside it is a contradiction, not an override.
    custom = load_dataset(str(explicit))
    assert (custom.name, custom.source) == ("custom", "explicit.npz")
    assert load_dataset(str(fashion_folder)).source == "gzip IDX files in fashion"
    with pytest.raises(UserError, match="already names the file"):
        load_dataset(str(explicit), from_env)
    with pytest.raises(UserError, match="unknown dataset 'cifar10'; choose mnist or fashion-mnist"):
        load_dataset("cifar10")
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))


def test_the_same_files_give_the_same_sha256(tmp_path):
    first = write_idx_folder(tmp_path / "a")
    second = write_idx_folder(tmp_path / "b")
    assert load_dataset(str(first)).sha256 == load_dataset(str(second)).sha256
    third = write_idx_folder(tmp_path / "c", small_arrays(seed=9))
    assert load_dataset(str(third)).sha256 != load_dataset(str(first)).sha256


def test_fashion_mnist_offline_says_what_to_install(tmp_path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.delenv(data.FASHION_ENV_VAR, raising=False)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(UserError) as error:
        load_dataset("fashion-mnist")
    message = str(error.value)
    assert "could not download Fashion-MNIST" in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data" in message
    with pytest.raises(UserError, match="no local Fashion-MNIST files"):
        load_dataset("fashion-mnist", allow_download=False)


def test_fashion_mnist_download_reads_the_keras_cache_as_idx(tmp_path, monkeypatch):
    """The downloader fetches the same four gzip IDX files Keras does and reads them like Debian's."""
    import keras

    cache = write_idx_folder(tmp_path / "keras_cache", small_arrays(seed=4))
    requested = []

    def fake_get_file(fname, origin, cache_subdir):
        requested.append((fname, origin, cache_subdir))
        return str(cache / fname)

    monkeypatch.delenv(data.FASHION_ENV_VAR, raising=False)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "not-installed")
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    dataset = load_dataset("fashion-mnist")
    assert dataset.source == "Fashion-MNIST (gzip IDX files)" and dataset.test_size == 12
    assert {name for name, _, _ in requested} == {f"{base}.gz" for base in IDX_FILE_NAMES.values()}
    assert all(origin.endswith(name) and subdir == "datasets/fashion-mnist" for name, origin, subdir in requested)


def test_assets_are_checked_against_their_own_dataset(tmp_path, monkeypatch):
    fashion_folder = write_idx_folder(tmp_path / "fashion", small_arrays(seed=5))
    monkeypatch.delenv(data.FASHION_ENV_VAR, raising=False)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", fashion_folder)
    record = {"dataset": "fashion-mnist", "source": "Fashion-MNIST (gzip IDX files)", "sha256": "00"}
    assert load_dataset_of_assets(record).name == "fashion-mnist"
    custom = _npz(tmp_path / "mine.npz")
    assert load_dataset_of_assets(record, str(custom)).name == "custom"  # --dataset wins
    with pytest.raises(UserError, match="built on the dataset 'mine.npz'; pass the same file with --dataset"):
        load_dataset_of_assets({"dataset": "custom", "source": "mine.npz"})
    assert load_dataset_of_assets({"dataset": "custom", "source": "mine.npz"}, None, custom).path == str(custom)
    # Manifests from before the dataset record: MNIST.
    monkeypatch.setenv(data.DATA_ENV_VAR, str(custom))
    assert load_dataset_of_assets({"source": "/somewhere/mnist.npz"}).name == "mnist"


def test_cli_dataset_errors_exit_2(si4tool_cli, tmp_path):
    result = si4tool_cli("export-csv", "--dataset", "cifar10", "--out", str(tmp_path / "csv"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown dataset 'cifar10'" in result.stderr
    assert not (tmp_path / "csv").exists()


# --- the real Fashion-MNIST (Debian's dataset-fashion-mnist) ----------------------------------


@pytest.fixture(scope="session")
def fashion_mnist():
    if data.find_idx_files(data.DEBIAN_FASHION_MNIST_DIR) is None:
        pytest.skip("Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
    return load_dataset("fashion-mnist", allow_download=False)


def test_real_fashion_mnist(fashion_mnist):
    assert fashion_mnist.x_train.shape == (60000, 28, 28) and fashion_mnist.x_test.shape == (10000, 28, 28)
    assert set(np.unique(fashion_mnist.y_test)) == set(range(10))
    assert np.bincount(fashion_mnist.y_test).tolist() == [1000] * 10
    assert fashion_mnist.source == "Fashion-MNIST (gzip IDX files)"


def test_cli_export_csv_on_fashion_mnist(si4tool_cli, fashion_mnist, tmp_path):
    result = si4tool_cli("export-csv", "--dataset", "fashion-mnist", "--count", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    labels = np.loadtxt(tmp_path / "y_test.csv", delimiter=",")
    np.testing.assert_array_equal(labels.argmax(axis=1), fashion_mnist.y_test[:3])


@pytest.mark.slow
def test_fashion_mnist_end_to_end_bit_exact(fashion_mnist, tmp_path, reference_cache_dir):
    """A short training run (1 epoch of the notebook recipe on 10,000 images), quantized, lowered,
    rendered, compiled and run by validate-host: bit-exact with TFLite Micro."""
    from si4tool.assets import build_firmware_assets
    from si4tool.frontend.train import train_model
    from si4tool.validation.validate import validate_host

    trained = train_model(fashion_mnist, epochs=1, seed=0, recipe="notebook", quiet=True, train_limit=FASHION_TRAIN_LIMIT)
    assert trained.test_accuracy >= 0.70, trained.test_accuracy
    model_path = tmp_path / "fashion.keras"
    trained.model.save(model_path)

    assets = tmp_path / "assets"
    result = build_firmware_assets(
        assets, model_path=model_path, dataset_name="fashion-mnist", vectors=100, calibration_samples=500,
        images=FASHION_ASSET_IMAGES, cache_dir=reference_cache_dir, quiet=True,
    )
    manifest = result.manifest
    assert manifest.data == {
        "dataset": "fashion-mnist", "source": "Fashion-MNIST (gzip IDX files)", "sha256": fashion_mnist.sha256,
    }
    assert abs(manifest.accuracy["float"] - manifest.accuracy["int8_tflm"]) <= 0.01
    assert manifest.accuracy["test_images"] == FASHION_ASSET_IMAGES
    header = (assets / "test_vectors.h").read_text()
    assert "100 test inputs from Fashion-MNIST (gzip IDX files)" in header and "/usr/share" not in header

    # No --dataset: validate-host takes Fashion-MNIST from the manifest.
    host = validate_host(
        assets, out_dir=tmp_path / "validation", build_dir=tmp_path / "firmware", cache_dir=reference_cache_dir,
        images=FASHION_VALIDATE_IMAGES, quiet=True,
    )
    assert host.bit_exact == host.images == FASHION_VALIDATE_IMAGES
    assert host.firmware.bit_exact == host.firmware.vectors == 100
    assert host.c_accuracy == host.tflm_accuracy
    # Bit-exactness is what this test is about. The accuracy policy (int8 at most 0.3 pp below
    # float) is meant for a fully trained model; a one-epoch model sits on many decision
    # boundaries, so a few images may flip in quantization: only that failure is tolerated.
    assert all("below the float model" in failure for failure in host.failures), host.failures
    assert host.keras_accuracy - host.c_accuracy <= 0.01
    recorded = json.loads((tmp_path / "validation" / "host.json").read_text())
    assert recorded["bit_exact"] == FASHION_VALIDATE_IMAGES
    print(
        f"Fashion-MNIST: float {trained.test_accuracy:.4f}, int8 TFLM {manifest.accuracy['int8_tflm']:.4f} "
        f"({FASHION_ASSET_IMAGES:,} images); C engine {host.c_accuracy:.4f}, bit-exact {host.bit_exact}/{host.images}"
    )
