"""Stage 1: the MNIST loader accepts the Keras layout and refuses every bad file in one sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from si4tool.frontend.data import DATA_ENV_VAR, Dataset, load_dataset, load_mnist, load_npz_dataset, normalize, one_hot
from si4tool.errors import UserError


def small_arrays(train: int = 20, test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=test, dtype=np.uint8),
    }


def write_npz(path: Path, **overrides) -> Path:
    arrays = small_arrays()
    arrays.update(overrides)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def test_real_mnist_has_the_keras_layout(mnist: Dataset, mnist_path: Path):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.y_train.shape == (60000,) and mnist.y_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28) and mnist.y_test.shape == (10000,)
    assert set(np.unique(mnist.y_test)) == set(range(10))
    assert mnist.path == str(mnist_path) and mnist.source == f"MNIST ({mnist_path.name})"
    assert len(mnist.sha256) == 64
    assert (mnist.train_size, mnist.test_size) == (60000, 10000)


def test_small_valid_file_loads(tmp_path):
    dataset = load_npz_dataset(write_npz(tmp_path / "ok.npz"))
    assert dataset.train_size == 20 and dataset.test_size == 10


def test_path_resolution_explicit_then_environment(tmp_path, monkeypatch):
    from_env = write_npz(tmp_path / "env.npz")
    explicit = write_npz(tmp_path / "explicit.npz", x_test=np.zeros((3, 28, 28), np.uint8), y_test=np.zeros(3, np.uint8))
    monkeypatch.setenv(DATA_ENV_VAR, str(from_env))
    assert load_mnist(None).path == str(from_env)
    assert load_mnist(explicit).test_size == 3
    assert load_dataset(explicit).path == str(explicit)


def test_download_failure_offline_says_how_to_pass_data(monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(UserError) as error:
        load_mnist(None)
    message = str(error.value)
    assert "--data" in message and DATA_ENV_VAR in message and "download" in message


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_mnist(tmp_path / "nope.npz")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(UserError, match="not a file"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("content", [b"", b"this is not a zip archive at all", b"PK\x03\x04" + b"\x00" * 40])
def test_corrupt_archive(tmp_path, content):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a readable .npz"):
        load_mnist(path)


def test_truncated_archive(tmp_path):
    whole = write_npz(tmp_path / "whole.npz").read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match="not a readable .npz"):
        load_mnist(truncated)


def test_missing_keys(tmp_path):
    path = write_npz(tmp_path / "keys.npz", y_test=None)
    with pytest.raises(UserError, match="lacks the key"):
        load_mnist(path)


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        ({"x_train": np.zeros((20, 28, 27), np.uint8)}, r"x_train .* shape \(20, 28, 27\)"),
        ({"x_test": np.zeros((10, 784), np.uint8)}, r"x_test .* expected \(N, 28, 28\)"),
        ({"y_train": np.zeros((20, 10), np.uint8)}, r"y_train .* class indices"),
        ({"y_test": np.zeros(9, np.uint8)}, r"10 x_test images but 9 y_test labels"),
        ({"x_train": np.zeros((0, 28, 28), np.uint8), "y_train": np.zeros(0, np.uint8)}, "no images"),
    ],
)
def test_wrong_shapes(tmp_path, overrides, pattern):
    with pytest.raises(UserError, match=pattern):
        load_mnist(write_npz(tmp_path / "shape.npz", **overrides))


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        ({"x_train": np.zeros((20, 28, 28), np.float32)}, "x_train .* dtype float32; expected uint8"),
        ({"x_test": np.zeros((10, 28, 28), np.int16)}, "x_test .* dtype int16"),
        ({"y_train": np.zeros(20, np.int64)}, "y_train .* dtype int64"),
    ],
)
def test_wrong_dtypes(tmp_path, overrides, pattern):
    with pytest.raises(UserError, match=pattern):
        load_mnist(write_npz(tmp_path / "dtype.npz", **overrides))


def test_labels_outside_0_to_9(tmp_path):
    labels = np.zeros(10, np.uint8)
    labels[4] = 10
    with pytest.raises(UserError, match=r"label 10; labels must be in 0..9"):
        load_mnist(write_npz(tmp_path / "labels.npz", y_test=labels))


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    arrays = small_arrays()
    arrays["y_train"] = np.array([object()] * 20, dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(UserError, match="not a readable .npz"):
        load_mnist(path)


def test_normalize_and_one_hot_match_the_notebook():
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
    images = images.astype(np.uint8)
    scaled = normalize(images)
    assert scaled.shape == (2, 28, 28, 1) and scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, (images.astype("float32") / 255).reshape(2, 28, 28, 1))
    encoded = one_hot(np.array([3, 0, 9], np.uint8))
    assert encoded.dtype == np.float32 and encoded.shape == (3, 10)
    np.testing.assert_array_equal(encoded.argmax(axis=1), [3, 0, 9])
    np.testing.assert_array_equal(encoded.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "command", [["train"], ["quantize", "--model", "build/does-not-matter.keras"], ["export-csv"]]
)
def test_cli_bad_data_file_exits_2_without_traceback(tmp_path, si4tool_cli, command):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"garbage")
    model_option = []
    if command[0] == "quantize":
        # A model that exists, so the data file is what fails.
        model_file = tmp_path / "model.keras"
        model_file.write_bytes(b"not a model either")
        model_option = ["--model", str(model_file)]
        command = ["quantize"]
    result = si4tool_cli(*command, *model_option, "--data", str(corrupt), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr


def test_cli_missing_data_file_exits_2(tmp_path, si4tool_cli):
    result = si4tool_cli("export-csv", "--data", str(tmp_path / "missing.npz"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
