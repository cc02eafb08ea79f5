"""Keras models beyond the notebook's: BatchNormalization (folded by the converter into the layer
before it), Dropout (dropped), ReLU6, DepthwiseConv2D. Unsupported layers fail early, by name.

The end-to-end tests train each small model for one epoch on an MNIST subset (6,000 training,
1,000 test images, given to the pipeline as a Keras-layout .npz: `--dataset PATH`), then run
build_firmware_assets and validate_host: the C engine must match TFLite Micro bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from si4tool.errors import UserError
from si4tool.frontend.model import SUPPORTED_LAYERS, check_model_supported

SUBSET_TRAIN = 6_000
SUBSET_TEST = 1_000


def _sequential(*layers, input_shape=(28, 28, 1)):
    import keras

    return keras.Sequential([keras.Input(input_shape), *layers])


def batch_norm_model():
    """Conv -> BN -> ReLU6, a bias-free conv -> BN -> relu6, Dropout, Dense -> BN -> ReLU, softmax.
    (momentum 0.9: the moving statistics settle within the one short epoch these tests train.)"""
    import keras
    from keras import layers

    keras.utils.set_random_seed(11)
    return _sequential(
        layers.Conv2D(8, 3, name="conv1"),
        layers.BatchNormalization(momentum=0.9, name="bn1"),
        layers.ReLU(max_value=6.0, name="relu6_1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(16, 3, use_bias=False, name="conv2"),
        layers.BatchNormalization(momentum=0.9, name="bn2"),
        layers.Activation("relu6", name="relu6_2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dropout(0.25, name="dropout"),
        layers.Dense(32, name="dense1"),
        layers.BatchNormalization(momentum=0.9, name="bn3"),
        layers.ReLU(name="relu"),
        layers.Dense(10, activation="softmax", name="output"),
    )


def depthwise_model():
    """Conv, DepthwiseConv2D (multiplier 2, fused relu6), SAME-padded DepthwiseConv2D -> BN -> ReLU."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(12)
    return _sequential(
        layers.Conv2D(8, 3, activation="relu", name="conv1"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu6", name="depthwise1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.DepthwiseConv2D(3, padding="same", name="depthwise2"),
        layers.BatchNormalization(momentum=0.9, name="bn"),
        layers.ReLU(name="relu"),
        layers.AveragePooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dropout(0.2, name="dropout"),
        layers.Dense(10, activation="softmax", name="output"),
    )


# --- early checks ------------------------------------------------------------------------------


def test_the_new_layers_are_accepted():
    check_model_supported(batch_norm_model())
    check_model_supported(depthwise_model())
    for kind in ("BatchNormalization", "DepthwiseConv2D", "Dropout", "ReLU", "Activation"):
        assert kind in SUPPORTED_LAYERS


@pytest.mark.parametrize(
    "make_layers, pattern",
    [
        (
            lambda L: [L.Conv2D(4, 3, activation="relu", name="c"), L.BatchNormalization(name="bn")],
            "'bn' is a BatchNormalization after 'c', whose activation is 'relu'.*put the activation after",
        ),
        (
            lambda L: [L.BatchNormalization(name="bn_first"), L.Conv2D(4, 3)],
            "'bn_first' is a BatchNormalization after the model input",
        ),
        (
            lambda L: [L.Conv2D(4, 3), L.MaxPooling2D(2, name="p"), L.BatchNormalization(name="bn")],
            r"after 'p' \(MaxPooling2D\).*Conv2D, DepthwiseConv2D, Dense",
        ),
        (lambda L: [L.DepthwiseConv2D(3, dilation_rate=2, name="dw")], "'dw' uses dilation"),
        (lambda L: [L.DepthwiseConv2D(3, activation="tanh", name="dw")], "'dw' uses the activation 'tanh'"),
        (lambda L: [L.Conv2D(4, 3), L.LayerNormalization(name="ln")], r"'ln' is a LayerNormalization.*supported: .*DepthwiseConv2D"),
        (lambda L: [L.Conv2D(4, 3), L.UpSampling2D(name="up")], "'up' is a UpSampling2D"),
    ],
)
def test_unsupported_patterns_fail_early_by_name(make_layers, pattern):
    from keras import layers

    built = make_layers(layers)
    tail = [] if any(type(layer).__name__ == "GlobalAveragePooling2D" for layer in built) else [layers.Flatten()]
    model = _sequential(*built, *tail, layers.Dense(10))
    with pytest.raises(UserError, match=pattern):
        check_model_supported(model)


def test_unsupported_layer_fails_before_quantization(tmp_path, monkeypatch):
    """build_firmware_assets refuses the model by name before the converter ever runs."""
    from keras import layers

    from si4tool.frontend import quantize
    from si4tool.assets import build_firmware_assets

    def must_not_run(*args, **kwargs):
        raise AssertionError("quantize_model ran on an unsupported model")

    path = tmp_path / "up.keras"
    _sequential(layers.Conv2D(4, 3), layers.UpSampling2D(name="up"), layers.Flatten(), layers.Dense(10)).save(path)
    monkeypatch.setattr(quantize, "quantize_model", must_not_run)
    with pytest.raises(UserError, match="'up' is a UpSampling2D"):
        build_firmware_assets(tmp_path / "out", model_path=path, dataset_name=str(_tiny_npz(tmp_path)), vectors=5, quiet=True)
    assert not (tmp_path / "out").exists()


def _tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 20, dtype=np.uint8),
        x_test=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 5, dtype=np.uint8),
    )
    return path


# --- end to end, bit-exact -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_subset(mnist, tmp_path_factory):
    """The first 6,000 training and 1,000 test images of MNIST as a Keras-layout .npz."""
    path = tmp_path_factory.mktemp("mnist_subset") / "mnist_subset.npz"
    np.savez(
        path,
        x_train=mnist.x_train[:SUBSET_TRAIN], y_train=mnist.y_train[:SUBSET_TRAIN],
        x_test=mnist.x_test[:SUBSET_TEST], y_test=mnist.y_test[:SUBSET_TEST],
    )
    return path


def _train_briefly(model, subset_path):
    from si4tool.frontend.data import load_dataset, normalize, one_hot

    dataset = load_dataset(str(subset_path))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(normalize(dataset.x_train), one_hot(dataset.y_train), epochs=1, batch_size=64, verbose=0)
    return model


def _end_to_end(model, subset_path, tmp_path, cache_dir) -> tuple[dict, dict]:
    from si4tool.assets import build_firmware_assets
    from si4tool.frontend.quantize import operator_list
    from si4tool.validation.validate import validate_host

    model_path = tmp_path / "model.keras"
    _train_briefly(model, subset_path).save(model_path)
    assets = tmp_path / "assets"
    result = build_firmware_assets(
        assets, model_path=model_path, dataset_name=str(subset_path), vectors=50, calibration_samples=500,
        cache_dir=cache_dir, quiet=True,
    )
    operators = operator_list((assets / "model_int8.tflite").read_bytes())
    host = validate_host(
        assets, dataset_name=str(subset_path), out_dir=tmp_path / "validation", build_dir=tmp_path / "firmware",
        cache_dir=cache_dir, images=SUBSET_TEST, quiet=True,
    )
    assert host.bit_exact == host.images == SUBSET_TEST
    assert host.firmware.bit_exact == host.firmware.vectors == 50
    assert host.passed, host.failures
    assert result.manifest.data["dataset"] == "custom"
    print(
        f"{model.name}: Keras {host.keras_accuracy:.3f}, C engine {host.c_accuracy:.3f}, "
        f"bit-exact {host.bit_exact}/{host.images}; operators {' '.join(operators)}"
    )
    return {"operators": operators, "manifest": result.manifest}, host


@pytest.mark.slow
def test_batch_norm_model_end_to_end_bit_exact(mnist_subset, tmp_path, reference_cache_dir):
    built, host = _end_to_end(batch_norm_model(), mnist_subset, tmp_path, reference_cache_dir)
    # Every BatchNormalization was folded into the conv or dense before it: no MUL/ADD left.
    assert not {"MUL", "ADD", "SUB"} & set(built["operators"]), built["operators"]
    ops = [layer["op"] for layer in built["manifest"].layers]
    assert ops.count("conv2d_max_pool") == 2 and ops.count("fully_connected") == 2, ops
    assert host.c_accuracy >= 0.85, host.c_accuracy


@pytest.mark.slow
def test_depthwise_model_end_to_end_bit_exact(mnist_subset, tmp_path, reference_cache_dir):
    built, host = _end_to_end(depthwise_model(), mnist_subset, tmp_path, reference_cache_dir)
    assert built["operators"].count("DEPTHWISE_CONV_2D") == 2, built["operators"]
    assert not {"MUL", "ADD"} & set(built["operators"])
    ops = [layer["op"] for layer in built["manifest"].layers]
    assert ops.count("depthwise_conv2d") == 2 and "avg_pool" in ops, ops
    assert host.c_accuracy >= 0.80, host.c_accuracy
