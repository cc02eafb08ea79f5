"""Stages 2 and 3: the seed network layer for layer, what the pipeline refuses, and an
honest short training run whose test accuracy is asserted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from si4tool.errors import UserError
from si4tool.frontend.model import SEED_MODEL_PARAMS, build_seed_model, check_model_supported, load_float_model
from si4tool.frontend.train import INITIAL_LEARNING_RATE

SEED_LAYERS = [
    ("conv1", "Conv2D", (None, 26, 26, 32), 320),
    ("pool1", "MaxPooling2D", (None, 13, 13, 32), 0),
    ("conv2", "Conv2D", (None, 11, 11, 64), 18_496),
    ("pool2", "MaxPooling2D", (None, 5, 5, 64), 0),
    ("flatten", "Flatten", (None, 1600), 0),
    ("dense1", "Dense", (None, 128), 204_928),
    ("dense2", "Dense", (None, 64), 8_256),
    ("output", "Dense", (None, 10), 650),
]


def test_seed_model_is_the_notebook_network():
    model = build_seed_model()
    layers = [(layer.name, type(layer).__name__, tuple(layer.output.shape), layer.count_params()) for layer in model.layers]
    assert layers == SEED_LAYERS
    assert model.count_params() == SEED_MODEL_PARAMS == 232_650
    activations = [getattr(layer, "activation", None) for layer in model.layers]
    assert [a.__name__ for a in activations if a is not None] == ["relu", "relu", "relu", "relu", "softmax"]
    check_model_supported(model)


def _sequential(*layers, input_shape=(28, 28, 1)):
    import keras

    return keras.Sequential([keras.Input(shape=input_shape), *layers])


def test_refuses_wrong_input_shape():
    from keras import layers

    with pytest.raises(UserError, match="28x28x1"):
        check_model_supported(_sequential(layers.Flatten(), layers.Dense(10), input_shape=(32, 32, 3)))


def test_refuses_unsupported_layer_by_name():
    from keras import layers

    model = _sequential(layers.Conv2D(4, 3), layers.UpSampling2D(name="pad_here"), layers.Flatten(), layers.Dense(10))
    with pytest.raises(UserError, match=r"'pad_here' is a UpSampling2D.*supported: InputLayer, .*Conv2D"):
        check_model_supported(model)


@pytest.mark.parametrize(
    "make_layer, pattern",
    [
        (lambda L: L.Conv2D(4, 3, activation="tanh", name="c"), "'c' uses the activation 'tanh'"),
        (lambda L: L.Activation("sigmoid", name="a"), "'a' is the activation 'sigmoid'"),
        (lambda L: L.ReLU(negative_slope=0.1, name="leaky"), "'leaky' is a leaky"),
        (lambda L: L.Conv2D(4, 3, dilation_rate=2, name="d"), "'d' uses dilation"),
    ],
)
def test_refuses_unsupported_options(make_layer, pattern):
    from keras import layers

    model = _sequential(make_layer(layers), layers.Flatten(), layers.Dense(10))
    with pytest.raises(UserError, match=pattern):
        check_model_supported(model)


def test_accepts_the_other_supported_layers():
    from keras import layers

    model = _sequential(
        layers.Conv2D(4, 3, padding="same", strides=2, activation="relu6"),
        layers.AveragePooling2D(2),
        layers.ReLU(max_value=6.0),
        layers.Reshape((7 * 7 * 4,)),
        layers.Dropout(0.2),
        layers.Dense(10),
        layers.Activation("softmax"),
    )
    check_model_supported(model)


def test_refuses_nan_weights():
    model = build_seed_model()
    kernel = model.get_layer("dense2").kernel
    values = kernel.numpy()
    values[0, 0] = np.nan
    kernel.assign(values)
    with pytest.raises(UserError, match="NaN or infinite"):
        check_model_supported(model)


def test_load_float_model_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_float_model(tmp_path / "missing.keras")
    wrong_suffix = tmp_path / "model.onnx"
    wrong_suffix.write_bytes(b"x")
    with pytest.raises(UserError, match="not a .keras or .h5"):
        load_float_model(wrong_suffix)
    for name in ("corrupt.keras", "corrupt.h5"):
        corrupt = tmp_path / name
        corrupt.write_bytes(b"definitely not a model")
        with pytest.raises(UserError, match="could not be loaded"):
            load_float_model(corrupt)


def test_trained_seed_model_accuracy_and_history(seed_training_result, mnist):
    result = seed_training_result
    # A short, honest run (1 epoch of the default recipe, batches of 32): the bar the issue sets.
    assert result.test_accuracy >= 0.97
    assert result.confusion_matrix.shape == (10, 10)
    assert result.confusion_matrix.sum() == mnist.test_size
    assert np.trace(result.confusion_matrix) / mnist.test_size == pytest.approx(result.test_accuracy)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert len(result.history[key]) == result.epochs, key
    assert result.history["lr"][-1] < INITIAL_LEARNING_RATE / 100  # cosine decay, to near zero by the end
    assert 1 <= result.best_epoch <= result.epochs


def test_save_training_outputs(seed_training_result, mnist, tmp_path):
    from si4tool.frontend.train import save_training_outputs

    paths = save_training_outputs(seed_training_result, tmp_path / "train", mnist)
    assert {path.name for path in paths.values()} == {"model.keras", "mnist_lenet5.h5", "history.json"}
    record = json.loads(paths["history"].read_text())
    assert record["test_accuracy"] == seed_training_result.test_accuracy
    assert np.array(record["confusion_matrix"]).sum() == mnist.test_size
    assert record["data"]["sha256"] == mnist.sha256
    for path in (paths["model"], paths["h5"]):
        reloaded = load_float_model(path)
        check_model_supported(reloaded)
        np.testing.assert_array_equal(reloaded.get_layer("conv1").kernel.numpy(),
                                      seed_training_result.model.get_layer("conv1").kernel.numpy())


def test_same_seed_same_weights(mnist):
    """--seed makes a run reproducible on the same machine (checked on a small run)."""
    from si4tool.frontend.train import train_model

    epochs_seen = []
    first = train_model(mnist, epochs=1, seed=3, quiet=True, train_limit=6000,
                        on_epoch=lambda epoch, logs: epochs_seen.append((epoch, sorted(logs))))
    assert epochs_seen == [(1, ["accuracy", "loss", "lr", "val_accuracy", "val_loss"])]
    second = train_model(mnist, epochs=1, seed=3, quiet=True, train_limit=6000)
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_shift_images_moves_content_within_bounds():
    from si4tool.frontend.train import shift_images

    image = np.zeros((1, 28, 28, 1), np.float32)
    image[0, 10:18, 10:18, 0] = 1.0
    shifted = shift_images(np.repeat(image, 50, axis=0), np.random.default_rng(0))
    assert shifted.shape == (50, 28, 28, 1)
    np.testing.assert_array_equal(shifted.sum(axis=(1, 2, 3)), 64.0)  # nothing lost, nothing added
    rows = np.nonzero(shifted[..., 0].any(axis=2))
    assert rows[1].min() >= 8 and rows[1].max() <= 19


def test_confusion_matrix_layout():
    from si4tool.frontend.train import confusion_matrix

    counts = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 2, 1, 2]), num_classes=3)
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


@pytest.mark.parametrize("kwargs, pattern", [({"recipe": "fancy"}, "unknown recipe"), ({"epochs": 0}, "--epochs")])
def test_train_model_bad_options(mnist, kwargs, pattern):
    from si4tool.frontend.train import train_model

    with pytest.raises(UserError, match=pattern):
        train_model(mnist, quiet=True, **kwargs)


@pytest.mark.parametrize("options", [["--recipe", "fancy"], ["--epochs", "0"], ["--batch-size", "0"]])
def test_cli_train_bad_options_exit_2(si4tool_cli, mnist_path, tmp_path, options):
    result = si4tool_cli("train", "--data", str(mnist_path), "--out", str(tmp_path), *options)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "error:" in result.stderr


def test_cli_quantize_bad_model_exits_2(si4tool_cli, mnist_path, tmp_path):
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(b"not a zip")
    for model in (tmp_path / "missing.keras", corrupt):
        result = si4tool_cli("quantize", "--model", str(model), "--data", str(mnist_path), "--out", str(tmp_path / "q"))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "model file" in result.stderr
