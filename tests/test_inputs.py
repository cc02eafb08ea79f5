"""frontend/inputs.py: what the test vectors and the validation feed a model of any input shape."""

from __future__ import annotations

import numpy as np
import pytest

from si4tool.assets import VECTOR_FLASH_BUDGET_BYTES, default_vector_count, render_test_vectors
from si4tool.errors import UserError
from si4tool.frontend import inputs
from si4tool.frontend.data import Dataset
from si4tool.frontend.quantize import quantize_input

SPECTROGRAM = inputs.ModelInput(shape=(49, 10, 1), scale=0.5, zero_point=-3)
VECTOR = inputs.ModelInput(shape=(640,), scale=0.25, zero_point=10)


def _tiny_dataset() -> Dataset:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = np.arange(6, dtype=np.uint8) % 10
    return Dataset(images, labels, images, labels, source="tiny (test)", sha256="0" * 64, name="mnist")


def test_random_inputs_are_seeded_uniform_int8_and_the_head_does_not_depend_on_the_count():
    many = inputs.random_int8((49, 10, 1), 400, seed=7)
    few = inputs.random_int8((49, 10, 1), 3, seed=7)
    assert many.dtype == np.int8 and many.shape == (400, 49, 10, 1)
    assert np.array_equal(many[:3], few)
    assert not np.array_equal(inputs.random_int8((49, 10, 1), 3, seed=8), few)
    assert many.min() == -128 and many.max() == 127
    # Uniform: each of the 256 values holds about 1/256 of 196,000 draws (766 expected).
    counts = np.bincount(many.astype(np.int64).ravel() + 128, minlength=256)
    assert counts.min() > 600 and counts.max() < 950


def test_random_inputs_for_a_float_input_model_quantize_back_to_the_same_int8():
    model_input = inputs.ModelInput(shape=(8, 8, 3), scale=0.0173, zero_point=-7, float_input=True)
    chosen = inputs.random_inputs(model_input, 50, seed=1)
    assert chosen.x.dtype == np.float32
    assert np.array_equal(quantize_input(chosen.x, 0.0173, -7), inputs.random_int8((8, 8, 3), 50, seed=1))


def test_default_is_random_with_one_line_when_the_model_does_not_take_the_dataset():
    def no_dataset():
        raise AssertionError("a 49x10 model must not load the 28x28 dataset")

    chosen, note = inputs.choose_inputs(None, SPECTROGRAM, 12, seed=5, random_count=30, load_dataset=no_dataset)
    assert chosen.kind == "random" and len(chosen) == 30 and chosen.labels is None
    assert chosen.record == {"kind": "random", "seed": 5, "distribution": inputs.RANDOM_DISTRIBUTION, "shape": [49, 10, 1]}
    assert "49x10x1" in note and "seed 5" in note and "\n" not in note


def test_default_is_the_dataset_when_the_model_takes_28x28x1():
    mnist_input = inputs.ModelInput(shape=(28, 28, 1), scale=1 / 255, zero_point=-128)
    chosen, note = inputs.choose_inputs(None, mnist_input, 10, seed=0, random_count=30, load_dataset=_tiny_dataset)
    assert note is None and chosen.kind == "dataset" and len(chosen) == 6
    assert chosen.x.shape == (6, 28, 28, 1) and chosen.x.dtype == np.float32
    assert list(chosen.labels) == [0, 1, 2, 3, 4, 5]
    forced, _ = inputs.choose_inputs("random", mnist_input, 10, seed=0, random_count=4, load_dataset=_tiny_dataset)
    assert forced.kind == "random" and forced.x.shape == (4, 28, 28, 1)


def test_npy_and_npz_inputs(tmp_path):
    floats = np.random.default_rng(0).normal(size=(5, 640)).astype(np.float32)
    np.save(tmp_path / "x.npy", floats)
    chosen = inputs.load_input_file(tmp_path / "x.npy", VECTOR, classes=640)
    assert chosen.kind == "file" and chosen.labels is None and np.array_equal(chosen.x, floats)
    assert chosen.record["name"] == "x.npy" and len(chosen.record["sha256"]) == 64
    assert np.array_equal(chosen.engine_int8(VECTOR), quantize_input(floats, 0.25, 10))

    values = np.random.default_rng(1).integers(-128, 128, size=(3, 49, 10, 1), dtype=np.int8)
    np.savez(tmp_path / "s.npz", x=values, y=np.array([0, 11, 4]))
    chosen = inputs.load_input_file(tmp_path / "s.npz", SPECTROGRAM, classes=12)
    assert chosen.x.dtype == np.int8 and np.array_equal(chosen.engine_int8(SPECTROGRAM), values)
    assert list(chosen.labels) == [0, 11, 4] and chosen.record["labels"] is True


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((3, 49, 10), np.float32)}, "shape (3, 49, 10); the model needs (N, 49, 10, 1)"),
        ({"x": np.zeros((3, 49, 10, 1), np.int32)}, "dtype int32"),
        ({"x": np.full((1, 49, 10, 1), np.nan, np.float32)}, "NaN"),
        ({"x": np.zeros((2, 49, 10, 1), np.float32), "y": np.array([0, 12])}, "outside 0..11"),
        ({"x": np.zeros((2, 49, 10, 1), np.float32), "y": np.array([0.5, 1.0])}, "integer class indices"),
        ({"images": np.zeros((2, 49, 10, 1), np.float32)}, "has no array 'x'"),
    ],
)
def test_bad_input_files_are_one_sentence_user_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        inputs.load_input_file(path, SPECTROGRAM, classes=12)


def test_missing_or_foreign_input_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        inputs.load_input_file(tmp_path / "none.npy", VECTOR, classes=640)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(UserError, match="must be an .npy"):
        inputs.load_input_file(tmp_path / "x.csv", VECTOR, classes=640)
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UserError, match="not a readable .npy"):
        inputs.load_input_file(tmp_path / "broken.npy", VECTOR, classes=640)
    float_model = inputs.ModelInput(shape=(640,), scale=0.25, zero_point=10, float_input=True)
    np.save(tmp_path / "q.npy", np.zeros((2, 640), np.int8))
    with pytest.raises(UserError, match="takes float32 input"):
        inputs.load_input_file(tmp_path / "q.npy", float_model, classes=640)


def _manifest(record: dict) -> dict:
    return {
        "quantization": {
            "input": {"scale": 0.5, "zero_point": -3, "shape": [49, 10, 1]},
            "output": {"scale": 1 / 256, "zero_point": -128, "shape": [12]},
            "float_edges": {"input": False, "output": False},
        },
        "inputs": record,
    }


def test_validation_regenerates_the_assets_random_inputs_from_the_recorded_seed():
    built, _ = inputs.choose_inputs(None, SPECTROGRAM, 12, seed=11, random_count=9, load_dataset=_tiny_dataset)
    again, note = inputs.inputs_of_assets(_manifest({**built.record, "count": 9}), None, 1000, load_dataset=_tiny_dataset)
    assert len(again) == 1000 and np.array_equal(again.x[:9], built.x)
    assert "seed 11" in note
    default_count, _ = inputs.inputs_of_assets(_manifest(built.record), None, None, load_dataset=_tiny_dataset)
    assert len(default_count) == inputs.DEFAULT_RANDOM_COUNT


def test_validation_of_assets_built_from_a_file_says_the_file_is_not_kept():
    chosen, note = inputs.inputs_of_assets(
        _manifest({"kind": "file", "name": "mine.npz", "sha256": "0" * 64, "labels": True}), None, 20, load_dataset=_tiny_dataset
    )
    assert chosen.kind == "random" and len(chosen) == 20
    assert "mine.npz" in note and "--inputs mine.npz" in note


def test_default_vector_count_follows_the_flash_budget():
    assert VECTOR_FLASH_BUDGET_BYTES == 256 * 1024
    assert default_vector_count(784 + 10 + 1, available=10_000) == 250  # MNIST: the notebook's 250
    assert default_vector_count(490 + 12 + 1, available=10_000) == 250  # kws
    assert default_vector_count(640 + 640 + 1, available=10_000) == 204  # ad01
    assert default_vector_count(96 * 96 * 3 + 2 + 1, available=10_000) == 9  # vww
    assert default_vector_count(784 + 10 + 1, available=6) == 6
    assert default_vector_count(10_000_000, available=5) == 1


def test_vectors_without_labels_have_no_label_array():
    x = np.arange(2 * 640, dtype=np.int64).reshape(2, 640).astype(np.int8)
    outputs = np.zeros((2, 640), np.int8)
    files = render_test_vectors(x, None, outputs, "a" * 64, (0.25, 10), "seeded uniform int8 (seed 0)")
    assert "#define SI4_TEST_VECTOR_HAS_LABELS 0" in files["test_vectors.h"]
    assert "si4_test_labels" not in files["test_vectors.h"] + files["test_vectors.c"]
    labelled = render_test_vectors(x, np.array([3, 300]), outputs, "a" * 64, (0.25, 10), "mine.npz")
    assert "#define SI4_TEST_VECTOR_HAS_LABELS 1" in labelled["test_vectors.h"]
    assert "const uint16_t si4_test_labels" in labelled["test_vectors.c"]  # 300 does not fit a byte
