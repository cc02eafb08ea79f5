"""Stage 2, model: the notebook's CNN, loading a saved float model, and checking that
the pipeline can lower it (28x28x1 input, supported layers, finite weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from si4tool.errors import UserError

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
SEED_MODEL_PARAMS = 232_650
FLOAT_MODEL_SUFFIXES = (".keras", ".h5")

# Keras layer class -> what the pipeline does with it. Anything else is refused
# before quantization, with the layer's name, rather than failing deep in lowering.
SUPPORTED_LAYERS = (
    "InputLayer",
    "Conv2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "Flatten",
    "Reshape",
    "Dense",
    "Dropout",
    "Activation",
    "ReLU",
)
# Activations that TFLite fuses into the op (or lowers to SOFTMAX at the end).
FUSED_ACTIVATIONS = ("linear", "relu", "relu6")
STANDALONE_ACTIVATIONS = ("relu", "relu6", "softmax")


def build_seed_model():
    """The notebook's network, layer for layer (232,650 parameters), with readable names."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="image"),
            layers.Conv2D(32, (3, 3), activation="relu", name="conv1"),
            layers.MaxPooling2D((2, 2), name="pool1"),
            layers.Conv2D(64, (3, 3), activation="relu", name="conv2"),
            layers.MaxPooling2D((2, 2), name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense1"),
            layers.Dense(64, activation="relu", name="dense2"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="output"),
        ],
        name="mnist_lenet5",
    )
    return model


def load_float_model(path: Path | str):
    """Load a float Keras model from .keras or .h5; missing or corrupt files are a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model file {path} does not exist; train one with `si4tool train` or pass --model PATH.")
    if not path.is_file():
        raise UserError(f"model path {path} is not a file; pass a .keras or .h5 file with --model.")
    if path.suffix.lower() not in FLOAT_MODEL_SUFFIXES:
        raise UserError(f"model file {path} is not a .keras or .h5 Keras model.")
    import keras

    try:
        # compile=False: only the weights and graph matter here, and it avoids
        # failing on optimizer state saved by other Keras versions.
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py, zipfile and Keras raise many unrelated types
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"model file {path} could not be loaded as a Keras model ({reason[:200]}).") from None
    return model


def _activation_name(activation) -> str:
    name = getattr(activation, "__name__", None) or str(activation)
    return name.lower()


def check_model_supported(model) -> None:
    """Refuse, in one sentence, models the int8 pipeline cannot lower."""
    input_shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if input_shape != INPUT_SHAPE:
        raise UserError(f"model input has shape {input_shape}; the pipeline needs 28x28x1 images {INPUT_SHAPE}.")
    supported = ", ".join(SUPPORTED_LAYERS)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED_LAYERS:
            raise UserError(f"layer '{layer.name}' is a {kind}, which the pipeline cannot handle; supported: {supported}.")
        _check_layer_options(layer, kind)
    for weight in model.weights:
        values = np.asarray(weight.numpy())
        if not np.all(np.isfinite(values)):
            raise UserError(f"weight '{weight.path}' holds NaN or infinite values; retrain the model.")
    output_shape = tuple(model.outputs[0].shape[1:])
    if len(output_shape) != 1:
        raise UserError(f"model output has shape {output_shape}; the pipeline needs a vector of class scores.")


def _check_layer_options(layer, kind: str) -> None:
    config = layer.get_config()
    if kind in ("Conv2D", "Dense"):
        activation = _activation_name(layer.activation)
        allowed = FUSED_ACTIVATIONS + (("softmax",) if kind == "Dense" else ())
        if activation not in allowed:
            raise UserError(
                f"layer '{layer.name}' uses the activation '{activation}'; supported: {', '.join(allowed)}."
            )
    if kind == "Conv2D":
        if config.get("data_format", "channels_last") != "channels_last":
            raise UserError(f"layer '{layer.name}' is channels_first; the pipeline needs channels_last.")
        if tuple(config.get("dilation_rate", (1, 1))) != (1, 1) or config.get("groups", 1) != 1:
            raise UserError(f"layer '{layer.name}' uses dilation or groups, which the pipeline cannot handle.")
    if kind == "Activation":
        activation = _activation_name(layer.activation)
        if activation not in STANDALONE_ACTIVATIONS:
            raise UserError(
                f"layer '{layer.name}' is the activation '{activation}'; "
                f"supported: {', '.join(STANDALONE_ACTIVATIONS)}."
            )
    if kind == "ReLU":
        max_value = config.get("max_value")
        if config.get("negative_slope", 0.0) != 0.0 or config.get("threshold", 0.0) != 0.0 or max_value not in (
            None,
            6.0,
        ):
            raise UserError(
                f"layer '{layer.name}' is a leaky, thresholded or capped ReLU; only ReLU and ReLU6 are supported."
            )
