"""Robustness: fuzzed dataset files load or are refused with one UserError; Ctrl-C and
concurrent runs never leave a half-written or mixed assets folder, nor temporary folders;
NaN/inf weights are refused before quantization; errors print as one unwrapped line.

(The .tflite reader is fuzzed in test_tflite_reader.py.)
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from si4tool import render
from si4tool.frontend.data import load_dataset
from si4tool.frontend.datasets_idx import IDX_FILE_NAMES
from si4tool.errors import UserError
from si4tool.render import write_files_atomically

REPO_ROOT = Path(__file__).resolve().parents[1]
FUZZ_SETTINGS = settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
# One loader call must finish well within this; a hang fails the example instead of the suite.
HANG_SECONDS = 10


# --- fuzzing the dataset loaders ------------------------------------------------------------------


def _small_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 6, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }


def _npz_bytes(compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **_small_arrays())
    return buffer.getvalue()


def _idx_bytes(array: np.ndarray) -> bytes:
    import struct

    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


VALID_NPZ = {False: _npz_bytes(False), True: _npz_bytes(True)}
VALID_IDX = {key: _idx_bytes(array) for key, array in _small_arrays().items()}


@st.composite
def mutations(draw, length: int):
    """A few byte flips, an optional insertion, and an optional truncation of a file of `length` bytes."""
    flips = draw(st.lists(st.tuples(st.integers(0, length - 1), st.integers(0, 255)), max_size=6))
    insert = draw(st.none() | st.tuples(st.integers(0, length), st.binary(min_size=1, max_size=16)))
    cut = draw(st.none() | st.integers(0, length))
    return flips, insert, cut


def _mutate(content: bytes, mutation) -> bytes:
    flips, insert, cut = mutation
    data = bytearray(content)
    for position, value in flips:
        data[position % len(data)] = value
    if insert is not None:
        position, extra = insert
        data[position:position] = extra
    if cut is not None:
        del data[cut:]
    return bytes(data)


@contextmanager
def _no_hang(seconds: int = HANG_SECONDS):
    def on_alarm(signum, frame):
        raise TimeoutError(f"the loader did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _load_or_refuse(folder: Path, target: str) -> None:
    """Loading either succeeds with valid arrays or raises UserError; nothing is written beside the data."""
    before = sorted(os.listdir(folder))
    with _no_hang():
        try:
            dataset = load_dataset(target)
        except UserError as error:
            message = str(error)
            assert message and "\n" not in message and "Traceback" not in message
        else:
            for images, labels in ((dataset.x_train, dataset.y_train), (dataset.x_test, dataset.y_test)):
                assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
                assert labels.dtype == np.uint8 and labels.shape == images.shape[:1] and int(labels.max()) <= 9
    assert sorted(os.listdir(folder)) == before


@FUZZ_SETTINGS
@given(compressed=st.booleans(), mutation=st.data())
def test_fuzzed_npz_loads_or_is_refused(compressed, mutation):
    content = VALID_NPZ[compressed]
    mutated = _mutate(content, mutation.draw(mutations(len(content))))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fuzz.npz"
        path.write_bytes(mutated)
        _load_or_refuse(Path(scratch), str(path))


@FUZZ_SETTINGS
@given(key=st.sampled_from(sorted(IDX_FILE_NAMES)), compress=st.booleans(), mutation=st.data())
def test_fuzzed_idx_loads_or_is_refused(key, compress, mutation):
    content = VALID_IDX[key]
    mutated = _mutate(content, mutation.draw(mutations(len(content))))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, base in IDX_FILE_NAMES.items():
            payload = mutated if name == key else VALID_IDX[name]
            if compress:
                (folder / f"{base}.gz").write_bytes(gzip.compress(payload, mtime=0))
            else:
                (folder / base).write_bytes(payload)
        _load_or_refuse(folder, str(folder))


@FUZZ_SETTINGS
@given(mutation=st.data())
def test_fuzzed_gzip_stream_loads_or_is_refused(mutation):
    """Damage the gzip container itself (header, deflate stream, CRC, length)."""
    packed = gzip.compress(VALID_IDX["x_test"], mtime=0)
    mutated = _mutate(packed, mutation.draw(mutations(len(packed))))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, base in IDX_FILE_NAMES.items():
            payload = mutated if name == "x_test" else gzip.compress(VALID_IDX[name], mtime=0)
            (folder / f"{base}.gz").write_bytes(payload)
        _load_or_refuse(folder, str(folder))


def test_npz_with_a_huge_claimed_shape_is_refused_before_allocation(tmp_path):
    """An .npy header may claim any shape; it is checked before numpy allocates the array."""
    content = VALID_NPZ[False]  # stored, not deflated: the header is plain text in the file
    original = b"'shape': (6, 28, 28), }"
    claimed = b"'shape': (99999999999, 28, 28), }"
    start = content.index(original)
    # Same header length: the longer shape eats into the header's space padding.
    bomb = content[:start] + claimed + content[start + len(claimed) :]
    assert len(bomb) == len(content)
    path = tmp_path / "bomb.npz"
    path.write_bytes(bomb)
    with pytest.raises(UserError, match=r"x_train .* claims the shape \(99999999999, 28, 28\)"):
        load_dataset(str(path))


# --- atomic writes: Ctrl-C, failures, concurrency ----------------------------------------------------


OLD_SET = {"model.c": b"old model\n", "model.h": b"old header\n", "manifest.json": b"{}\n"}
NEW_SET = {"model.c": b"new model\n", "model.h": b"new header\n", "test_vectors.c": b"vectors\n", "manifest.json": b"{ }\n"}


def _folder_contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _leftovers(parent: Path, out_name: str) -> list[str]:
    return sorted(name for name in os.listdir(parent) if name != out_name)


def test_write_replaces_the_set_and_keeps_permissions(tmp_path):
    out = tmp_path / "assets"
    write_files_atomically(out, OLD_SET)
    assert _folder_contents(out) == OLD_SET
    mode = os.stat(out).st_mode & 0o777
    assert mode & 0o055 == 0o055 & ~_umask(), oct(mode)  # not mkdtemp's private 0700
    write_files_atomically(out, NEW_SET)
    assert _folder_contents(out) == NEW_SET
    assert _leftovers(tmp_path, "assets") == []


def _umask() -> int:
    value = os.umask(0o022)
    os.umask(value)
    return value


def test_ctrl_c_while_writing_keeps_the_old_set(tmp_path, monkeypatch):
    out = tmp_path / "assets"
    write_files_atomically(out, OLD_SET)
    written = []
    real_write_bytes = Path.write_bytes

    def interrupted_write(self, data):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(self.name)
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        write_files_atomically(out, NEW_SET)
    monkeypatch.undo()
    assert _folder_contents(out) == OLD_SET
    assert _leftovers(tmp_path, "assets") == []


def test_ctrl_c_or_error_between_the_two_renames_restores_the_old_set(tmp_path, monkeypatch):
    out = tmp_path / "assets"
    write_files_atomically(out, OLD_SET)
    real_replace = os.replace
    for failure in (KeyboardInterrupt(), OSError(28, "No space left on device")):
        calls = []

        def replace_failing_second(source, target, failure=failure, calls=calls):
            calls.append((source, target))
            if len(calls) == 2:  # old folder already set aside, the new one not yet in place
                raise failure
            return real_replace(source, target)

        monkeypatch.setattr(render.os, "replace", replace_failing_second)
        expected = KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else UserError
        with pytest.raises(expected):
            write_files_atomically(out, NEW_SET)
        monkeypatch.undo()
        assert _folder_contents(out) == OLD_SET
        assert _leftovers(tmp_path, "assets") == []


def test_ctrl_c_during_the_swap_is_held_until_the_swap_is_done(tmp_path, monkeypatch):
    out = tmp_path / "assets"
    write_files_atomically(out, OLD_SET)
    real_swap = render._swap_into_place

    def swap_with_ctrl_c(staging, out_dir):
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C right now
        time.sleep(0.05)
        real_swap(staging, out_dir)

    monkeypatch.setattr(render, "_swap_into_place", swap_with_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write_files_atomically(out, NEW_SET)
    assert _folder_contents(out) == NEW_SET  # the swap completed, then the interrupt surfaced
    assert _leftovers(tmp_path, "assets") == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_output_path_that_is_a_file_is_a_user_error(tmp_path):
    target = tmp_path / "assets"
    target.write_text("not a folder")
    with pytest.raises(UserError, match="not a folder"):
        write_files_atomically(target, NEW_SET)
    assert target.read_text() == "not a folder"
    assert _leftovers(tmp_path, "assets") == []


def test_a_folder_holding_other_files_is_never_replaced(tmp_path):
    from si4tool.assets import build_firmware_assets

    out = tmp_path / "src"
    out.mkdir()
    (out / "main.c").write_text("int main(void) { return 0; }\n")
    (out / "model.c").write_text("/* an older model.c */\n")
    with pytest.raises(UserError, match="holds main.c, which si4tool did not write"):
        write_files_atomically(out, NEW_SET, replaceable_names=["model.c", "manifest.json"])
    # build-firmware-assets checks before loading data or training anything.
    with pytest.raises(UserError, match="holds main.c"):
        build_firmware_assets(out, dataset_name=str(tmp_path / "missing.npz"))
    assert sorted(os.listdir(out)) == ["main.c", "model.c"]
    assert _leftovers(tmp_path, "src") == []


@pytest.mark.parametrize("relative", [".", ".."])
def test_the_current_folder_or_its_parent_is_never_replaced(tmp_path, monkeypatch, relative):
    work = tmp_path / "project"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(UserError, match="is the current folder or holds it"):
        write_files_atomically(Path(relative), NEW_SET)
    assert (work / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["project"]


def _numbered_set(tag: str, count: int = 12) -> dict[str, bytes]:
    return {f"file_{i:02d}.c": f"/* {tag} {i} */\n".encode() * 200 for i in range(count)}


def test_concurrent_writers_in_threads_never_mix_sets(tmp_path):
    out = tmp_path / "assets"
    sets = [_numbered_set("A"), _numbered_set("B", count=9)]
    errors: list[BaseException] = []

    def writer(files):
        try:
            for _ in range(25):
                write_files_atomically(out, files)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(files,)) for files in sets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert _folder_contents(out) in sets
    assert _leftovers(tmp_path, "assets") == []


_WRITER_SCRIPT = """
import sys
from pathlib import Path
from si4tool.render import write_files_atomically
tag, count, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
files = {f"file_{i:02d}.c": f"/* {tag} {i} */\\n".encode() * 200 for i in range(count)}
for _ in range(40):
    write_files_atomically(out, files)
"""


def test_concurrent_writer_processes_never_mix_sets(tmp_path):
    out = tmp_path / "assets"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    processes = [
        subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, tag, str(count), str(out)], env=env, stderr=subprocess.PIPE, text=True)
        for tag, count in (("A", 12), ("B", 9))
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    assert _folder_contents(out) in (_numbered_set("A"), _numbered_set("B", count=9))
    assert _leftovers(tmp_path, "assets") == []


# --- NaN / inf weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_weights_are_refused_before_quantization(tmp_path, monkeypatch, bad_value):
    import keras
    from keras import layers

    from si4tool.frontend import quantize
    from si4tool.assets import build_firmware_assets

    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(2, 3, name="conv"), layers.Flatten(), layers.Dense(10, name="dense")])
    kernel = model.get_layer("dense").kernel
    values = kernel.numpy()
    values[3, 7] = bad_value
    kernel.assign(values)
    path = tmp_path / "bad.keras"
    model.save(path)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the converter ran on a model with non-finite weights")

    monkeypatch.setattr(quantize, "quantize_model", must_not_run)
    rng = np.random.default_rng(0)
    data_file = tmp_path / "tiny.npz"
    np.savez(
        data_file,
        x_train=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 8, dtype=np.uint8),
        x_test=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 4, dtype=np.uint8),
    )
    with pytest.raises(UserError, match="dense.*NaN or infinite"):
        build_firmware_assets(tmp_path / "out", model_path=path, dataset_name=str(data_file), vectors=4, quiet=True)
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()
    # quantize_model itself checks too (the `quantize` command's path).
    with pytest.raises(UserError, match="NaN or infinite"):
        quantize.quantize_model(model, load_dataset(str(data_file)), calibration_samples=4)


# --- the error console -------------------------------------------------------------------------------


def test_errors_print_as_one_unwrapped_line_even_in_a_narrow_terminal(si4tool_cli, tmp_path):
    # A long path with Rich-markup-looking pieces: printed as text, on one line, whatever COLUMNS says.
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "[/bold] [red]not markup[/red]"
    result = si4tool_cli("export-csv", "--data", str(deep / "missing.npz"), "--out", str(tmp_path / "csv"), env={"COLUMNS": "40"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: data file ") and lines[0].endswith("SI4_MNIST=PATH.")
    assert str(deep / "missing.npz") in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_during_a_command_keeps_the_previous_assets(tmp_path, mnist):
    """SIGINT while build-firmware-assets trains (inside Keras' fit): exit 130, the previous folder
    intact, no temporary folders."""
    data_file = tmp_path / "data" / "subset.npz"
    data_file.parent.mkdir()
    np.savez(
        data_file, x_train=mnist.x_train[:6000], y_train=mnist.y_train[:6000], x_test=mnist.x_test[:200], y_test=mnist.y_test[:200]
    )
    out = tmp_path / "work" / "assets"
    write_files_atomically(out, OLD_SET)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "si4tool", "build-firmware-assets", "--dataset", str(data_file), "--epochs", "3",
         "--vectors", "10", "--no-report", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path / "work",
    )
    deadline = time.monotonic() + 180
    for line in process.stdout:
        if line.lstrip().startswith("epoch") or time.monotonic() > deadline:
            break  # the first epoch is done: Keras' fit is running the second one
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "interrupted" in stderr, stderr[-3000:]
    assert _folder_contents(out) == OLD_SET
    assert _leftovers(out.parent, "assets") == []
