"""Shared, expensive fixtures (session scope): the MNIST data, a seed model trained in the
suite, and its int8 TFLite flatbuffer. Other test modules build on these names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared offline copy sits beside the repository: ../shared/data/mnist.npz.
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared/data/mnist.npz"

# Training the suite's model: 2 epochs of the default recipe on the full training set
# (about 20 s; one epoch of that recipe lands only just above 97 %, too close to the bar).
SEED_MODEL_EPOCHS = 2
SEED_MODEL_SEED = 0
SEED_CALIBRATION_SAMPLES = 500


def mnist_path_or_none() -> Path | None:
    candidate = Path(os.environ["SI4_MNIST"]) if os.environ.get("SI4_MNIST") else SHARED_MNIST
    return candidate if candidate.is_file() else None


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    path = mnist_path_or_none()
    if path is None:
        pytest.skip(f"MNIST not found: set SI4_MNIST or place mnist.npz at {SHARED_MNIST}")
    return path


@pytest.fixture(scope="session")
def mnist(mnist_path):
    """The full MNIST Dataset (60,000 train, 10,000 test, uint8)."""
    from si4tool.frontend.data import load_mnist

    return load_mnist(mnist_path)


@pytest.fixture(scope="session")
def seed_training_result(mnist):
    """TrainResult of a short, honest run of the default recipe (seed 0)."""
    from si4tool.frontend.train import train_model

    return train_model(mnist, epochs=SEED_MODEL_EPOCHS, seed=SEED_MODEL_SEED, quiet=True)


@pytest.fixture(scope="session")
def trained_seed_model(seed_training_result):
    """The notebook's network (keras model) trained in the suite."""
    return seed_training_result.model


@pytest.fixture(scope="session")
def seed_int8_tflite(trained_seed_model, mnist) -> bytes:
    """Full-int8 .tflite bytes of trained_seed_model, calibrated on 500 training images."""
    from si4tool.frontend.quantize import quantize_model

    return quantize_model(trained_seed_model, mnist, calibration_samples=SEED_CALIBRATION_SAMPLES, seed=0)


@pytest.fixture(scope="session")
def reference_cache_dir(tmp_path_factory) -> Path:
    """A cache folder for reference outputs that does not touch the checkout's build/."""
    return tmp_path_factory.mktemp("reference_cache")


def run_si4tool(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m si4tool ARGS` as a user would; returns the completed process (text output).
    COLUMNS is wide so Rich does not wrap one-sentence errors across lines."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "240", **(env or {})}
    full_env.pop("SI4_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "si4tool", *args], capture_output=True, text=True, env=full_env, cwd=cwd or REPO_ROOT,
        timeout=600,
    )


@pytest.fixture
def si4tool_cli():
    """Callable running the CLI in a subprocess: si4tool_cli("train", "--data", path)."""
    return run_si4tool


@pytest.fixture(scope="session")
def trained_seed_model_path(trained_seed_model, tmp_path_factory) -> Path:
    """trained_seed_model saved as .keras, as a user would pass it to --model."""
    path = tmp_path_factory.mktemp("seed_model") / "model.keras"
    trained_seed_model.save(path)
    return path


@pytest.fixture(scope="session")
def firmware_assets(trained_seed_model_path, mnist_path, reference_cache_dir, tmp_path_factory) -> Path:
    """build-firmware-assets run on the suite's trained seed model: the folder of C assets (250 vectors)."""
    from si4tool.assets import build_firmware_assets

    out = tmp_path_factory.mktemp("assets") / "firmware_assets"
    build_firmware_assets(
        out_dir=out,
        model_path=trained_seed_model_path,
        data_path=mnist_path,
        vectors=250,
        calibration_samples=SEED_CALIBRATION_SAMPLES,
        cache_dir=reference_cache_dir,
        quiet=True,
    )
    return out
