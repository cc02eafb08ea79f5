"""build-firmware-assets and validate-host refuse bad input with one sentence and exit code 2.

Each case fails before any training, so these run in seconds.
"""

from __future__ import annotations

import os
import stat

import pytest


def _assert_user_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout[-1000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in message, message


def test_missing_model_file(si4tool_cli, mnist_path, tmp_path):
    result = si4tool_cli("build-firmware-assets", "--model", str(tmp_path / "nope.keras"), "--data", str(mnist_path),
                         "--out", str(tmp_path / "out"))
    _assert_user_error(result, "nope.keras", "does not exist")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "model.tflite"])
def test_corrupt_model_file(si4tool_cli, mnist_path, tmp_path, name):
    model = tmp_path / name
    model.write_bytes(b"\x00garbage, not a model" * 10)
    result = si4tool_cli("build-firmware-assets", "--model", str(model), "--data", str(mnist_path), "--out", str(tmp_path / "out"))
    _assert_user_error(result, name)
    assert not (tmp_path / "out").exists()


def test_unknown_model_suffix(si4tool_cli, mnist_path, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    result = si4tool_cli("build-firmware-assets", "--model", str(model), "--data", str(mnist_path), "--out", str(tmp_path / "o"))
    _assert_user_error(result, ".keras", ".tflite")


def _save(model, path):
    model.save(path)
    return path


def test_model_with_wrong_input_shape(si4tool_cli, mnist_path, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    path = _save(model, tmp_path / "rgb.keras")
    result = si4tool_cli("build-firmware-assets", "--model", str(path), "--data", str(mnist_path), "--out", str(tmp_path / "o"))
    _assert_user_error(result, "28")


def test_model_with_unsupported_layer_names_it(si4tool_cli, mnist_path, tmp_path):
    import keras

    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Reshape((28, 28)),
        keras.layers.LSTM(8, name="my_lstm"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    path = _save(model, tmp_path / "lstm.keras")
    result = si4tool_cli("build-firmware-assets", "--model", str(path), "--data", str(mnist_path), "--out", str(tmp_path / "o"))
    _assert_user_error(result, "my_lstm")


@pytest.mark.parametrize("vectors", ["0", "10001", "-5"])
def test_vectors_out_of_range(si4tool_cli, mnist_path, tmp_path, vectors):
    result = si4tool_cli("build-firmware-assets", "--vectors", vectors, "--data", str(mnist_path), "--out", str(tmp_path / "o"))
    _assert_user_error(result, "--vectors")


@pytest.mark.skipif(os.geteuid() == 0 and not os.environ.get("SI4_TEST_AS_USER"), reason="root can write anywhere")
def test_unwritable_output_folder_as_user(si4tool_cli, mnist_path, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    result = si4tool_cli("build-firmware-assets", "--data", str(mnist_path), "--out", str(locked / "assets"))
    _assert_user_error(result, "cannot write")


def test_output_path_that_is_a_file(si4tool_cli, mnist_path, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = si4tool_cli("build-firmware-assets", "--data", str(mnist_path), "--out", str(blocker))
    _assert_user_error(result, "not a folder")
    result = si4tool_cli("build-firmware-assets", "--data", str(mnist_path), "--out", str(blocker / "assets"))
    _assert_user_error(result, "cannot write")


def test_validate_host_without_assets(si4tool_cli, tmp_path):
    result = si4tool_cli("validate-host", "--assets", str(tmp_path / "none"))
    _assert_user_error(result, "build-firmware-assets")


def test_usage_error_exits_2(si4tool_cli):
    result = si4tool_cli("build-firmware-assets", "--no-such-option")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_version(si4tool_cli):
    from si4tool import __version__

    result = si4tool_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_validate_qemu_without_assets(si4tool_cli, tmp_path):
    from si4tool.targets.qemu import toolchain_available

    result = si4tool_cli("validate-qemu", "--assets", str(tmp_path / "none"), "--out", str(tmp_path / "validation"))
    # Without the cross toolchain the first sentence says what to install; with it, what to build.
    _assert_user_error(result, "build-firmware-assets" if toolchain_available() else "apt-get install")
    assert not (tmp_path / "validation").exists()


def test_report_of_a_folder_that_is_not_assets(si4tool_cli, tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "manifest.json").write_text('{"tool": "something else"}')
    result = si4tool_cli("report", "--assets", str(tmp_path / "assets"), "--out", str(tmp_path / "report"))
    _assert_user_error(result, "manifest.json is not a si4tool manifest", "build-firmware-assets")
    assert not (tmp_path / "report").exists()


def test_bad_option_value_is_a_usage_error(si4tool_cli):
    result = si4tool_cli("bench", "--images", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--images" in result.stderr
