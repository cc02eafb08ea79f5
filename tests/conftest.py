"""Shared, expensive fixtures (session scope): the MNIST data, a seed model trained in the
suite, and its int8 TFLite flatbuffer. Other test modules build on these names.

`make test` runs the suite on every core (pytest-xdist, see the Makefile), and each worker
is its own process with its own session. The fixtures that train or build are therefore made
once, by whichever worker asks first under a file lock, and kept under build/test-cache/<key>/; the key
hashes everything they depend on (si4tool's code, templates and C, this file, the MNIST file,
the installed key packages), so a cache made by other code or data is never read.
SI4_TEST_CACHE=0 makes every run build them afresh (in a run-private folder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared offline copy sits beside the repository: ../shared/data/mnist.npz.
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared/data/mnist.npz"

# Training the suite's model: 1 epoch of the default recipe on the full training set in batches
# of 32 (98.7 % in about 35 s here; 2 epochs of 128 took 49 s for 98.5 %, 1 epoch of 128 lands
# only just above the 97 % bar).
SEED_MODEL_EPOCHS = 1
SEED_MODEL_BATCH_SIZE = 32
SEED_MODEL_SEED = 0
SEED_CALIBRATION_SAMPLES = 500
# The suite's assets measure accuracy (and keep TFLite Micro's outputs) on the first 2,000 MNIST
# test images, not all 10,000: TFLite Micro's Python runtime takes about 35 s for 10,000.
SEED_ASSET_IMAGES = 2000


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


# --- the on-disk cache shared by the workers of one machine --------------------------

TEST_CACHE_ROOT = REPO_ROOT / "build" / "test-cache"
# Compiled kernel objects (toolchain.kernel_object_cache): named by a hash of everything that goes
# into them, so never stale, and shared by the workers and by the CLI runs the tests start.
os.environ.setdefault("SI4_KERNEL_OBJECTS", str(TEST_CACHE_ROOT / "kernel-objects"))
_KEYED_SOURCES = (("si4tool", "*.py"), ("templates", "*"), ("firmware_stub", "*"))


def _cache_key(mnist_file: Path) -> str:
    from si4tool.versions import reference_versions

    digest = hashlib.sha256()
    for folder, pattern in _KEYED_SOURCES:
        for path in sorted((REPO_ROOT / folder).rglob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(hashlib.sha256(mnist_file.read_bytes()).digest())
    digest.update(repr(sorted(reference_versions().items())).encode() + sys.version.encode())
    return digest.hexdigest()[:24]


@pytest.fixture(scope="session")
def test_cache_dir(mnist_path, tmp_path_factory) -> Path:
    """The folder where the session's expensive artefacts are built once for all workers."""
    if os.environ.get("SI4_TEST_CACHE") == "0":
        # This run's own temporary folder, shared by its workers (xdist gives each worker a
        # sub-folder of it), never by a later run.
        base = tmp_path_factory.getbasetemp()
        return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "si4-test-cache"
    return TEST_CACHE_ROOT / _cache_key(mnist_path)


@contextlib.contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def built_once(cache_dir: Path, name: str, build) -> Path:
    """cache_dir/name, made by build(temporary_path) unless it is there already.

    The first worker builds under the lock and renames the result into place, so the others
    wait and read a complete artefact, never a half-written one."""
    target = cache_dir / name
    with _locked(cache_dir):
        if not target.exists():
            temporary = cache_dir / f".{name}.partial"
            if temporary.is_dir():
                shutil.rmtree(temporary)
            temporary.unlink(missing_ok=True)
            build(temporary)
            os.replace(temporary, target)
    return target


# A cache of other code is never read again, but a run of that code may still be using it
# (two runs of one checkout while it is being edited): only caches left alone this long go.
STALE_CACHE_SECONDS = 6 * 3600


def _prune_stale_keys(current: Path) -> None:
    """Remove the caches of other code or data nobody has used for STALE_CACHE_SECONDS (best effort)."""
    if current.parent != TEST_CACHE_ROOT:
        return
    current.mkdir(parents=True, exist_ok=True)
    os.utime(current)  # in use: no other run prunes it
    now = time.time()
    kernel_objects = Path(os.environ["SI4_KERNEL_OBJECTS"])  # never stale (see above): kept
    for other in TEST_CACHE_ROOT.iterdir():
        if other in (current, kernel_objects) or not other.is_dir():
            continue
        if now - other.stat().st_mtime > STALE_CACHE_SECONDS:
            shutil.rmtree(other, ignore_errors=True)


@pytest.fixture(scope="session")
def seed_training_result(mnist, test_cache_dir):
    """TrainResult of a short, honest run of the default recipe (seed 0)."""
    from si4tool.frontend.train import train_model

    def train(folder: Path) -> None:
        result = train_model(mnist, epochs=SEED_MODEL_EPOCHS, batch_size=SEED_MODEL_BATCH_SIZE, seed=SEED_MODEL_SEED,
                             quiet=True)
        folder.mkdir()
        result.model.save(folder / "model.keras")
        (folder / "result.pickle").write_bytes(pickle.dumps(dataclasses.replace(result, model=None)))

    with _locked(TEST_CACHE_ROOT) if test_cache_dir.parent == TEST_CACHE_ROOT else contextlib.nullcontext():
        _prune_stale_keys(test_cache_dir)
    folder = built_once(test_cache_dir, "seed_training", train)
    import keras

    result = pickle.loads((folder / "result.pickle").read_bytes())
    return dataclasses.replace(result, model=keras.models.load_model(folder / "model.keras"))


@pytest.fixture(scope="session")
def trained_seed_model(seed_training_result):
    """The notebook's network (keras model) trained in the suite."""
    return seed_training_result.model


@pytest.fixture(scope="session")
def seed_int8_tflite(trained_seed_model, mnist, test_cache_dir) -> bytes:
    """Full-int8 .tflite bytes of trained_seed_model, calibrated on 500 training images."""
    from si4tool.frontend.quantize import quantize_model

    def quantize(path: Path) -> None:
        path.write_bytes(quantize_model(trained_seed_model, mnist, calibration_samples=SEED_CALIBRATION_SAMPLES, seed=0))

    return built_once(test_cache_dir, "seed_int8.tflite", quantize).read_bytes()


@pytest.fixture(scope="session")
def reference_cache_dir(test_cache_dir) -> Path:
    """A cache folder for reference outputs that does not touch the checkout's build/cache. Its
    files are keyed by model and inputs and written atomically, so the workers share it."""
    folder = test_cache_dir / "reference_cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
def trained_seed_model_path(seed_training_result, test_cache_dir, tmp_path_factory) -> Path:
    """trained_seed_model saved as .keras, as a user would pass it to --model (this worker's copy)."""
    path = tmp_path_factory.mktemp("seed_model") / "model.keras"
    shutil.copyfile(test_cache_dir / "seed_training" / "model.keras", path)
    return path


@pytest.fixture(scope="session")
def firmware_assets(trained_seed_model_path, mnist_path, reference_cache_dir, test_cache_dir, tmp_path_factory) -> Path:
    """build-firmware-assets run on the suite's trained seed model: the folder of C assets (250 vectors,
    accuracy on SEED_ASSET_IMAGES test images).
    Each worker gets its own copy, so a test that builds in it disturbs no other worker."""
    from si4tool.assets import build_firmware_assets

    def build(folder: Path) -> None:
        build_firmware_assets(
            out_dir=folder,
            model_path=trained_seed_model_path,
            data_path=mnist_path,
            vectors=250,
            calibration_samples=SEED_CALIBRATION_SAMPLES,
            images=SEED_ASSET_IMAGES,
            cache_dir=reference_cache_dir,
            quiet=True,
        )

    built = built_once(test_cache_dir, "firmware_assets", build)
    out = tmp_path_factory.mktemp("assets") / "firmware_assets"
    shutil.copytree(built, out)
    return out


@pytest.fixture(scope="session")
def seed_qemu_validation(firmware_assets, test_cache_dir, tmp_path_factory) -> Path:
    """The folder where validate-qemu wrote qemu.json for firmware_assets (both kernel builds,
    all 250 vectors): run once for the suite, read by test_qemu and by bench's --no-qemu path."""
    from si4tool.targets import qemu

    if not qemu.toolchain_available():
        pytest.skip("arm-none-eabi-gcc/newlib or qemu-system-arm missing")

    def validate(folder: Path) -> None:
        result = qemu.validate_qemu(firmware_assets, out_dir=folder, build_dir=tmp_path_factory.mktemp("qemu-build"),
                                    quiet=True)
        # The returned result is what the file holds (checked once, where it is made).
        assert qemu.QemuValidation.read(folder / "qemu.json") == result

    return built_once(test_cache_dir, "seed_qemu_validation", validate)
