"""Stage 2, model: the notebook's CNN, loading a saved float model, and checking that
the pipeline can lower it (28x28x1 input, supported layers, finite weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from si4tool.compiler import ops
from si4tool.errors import UserError

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
SEED_MODEL_PARAMS = 232_650
FLOAT_MODEL_SUFFIXES = (".keras", ".h5")

# Keras layer classes the pipeline lowers. Anything else is refused before
# quantization, with the layer's name, rather than failing deep in lowering.
# The layers that convert to an operator come from the operator registry
# (si4tool/compiler/ops/: OpSpec.keras_layers); these convert to none of their own:
# - BatchNormalization: the TFLite converter folds it into the Conv2D,
#   DepthwiseConv2D or Dense right before it (checked below: that layer must
#   have no activation of its own, or the fold is impossible);
# - Dropout, SpatialDropout2D: identity at inference, dropped at export;
# - ReLU (also ReLU(max_value=6)), Activation relu/relu6: fused into the op before.
FOLDED_LAYERS = ("BatchNormalization", "Dropout", "SpatialDropout2D", "Activation", "ReLU")
SUPPORTED_LAYERS = ("InputLayer", *ops.keras_layers(), *FOLDED_LAYERS)
# Layers a BatchNormalization can be folded into, and layers that are no-ops at inference.
BATCH_NORM_HOSTS = ("Conv2D", "DepthwiseConv2D", "Dense")
INFERENCE_NO_OPS = ("Dropout", "SpatialDropout2D")
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
    """Refuse, in one sentence, models the int8 pipeline cannot lower (before any quantization)."""
    input_shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if input_shape != INPUT_SHAPE:
        raise UserError(f"model input has shape {input_shape}; the pipeline needs 28x28x1 images {INPUT_SHAPE}.")
    supported = ", ".join(SUPPORTED_LAYERS)
    previous = None  # the last layer that computes something, for BatchNormalization folding
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED_LAYERS:
            raise UserError(f"layer '{layer.name}' is a {kind}, which the pipeline cannot handle; supported: {supported}.")
        _check_layer_options(layer, kind)
        if kind == "BatchNormalization":
            _check_batch_norm_foldable(layer, previous)
        if kind not in INFERENCE_NO_OPS and kind != "InputLayer":
            previous = layer
    for weight in model.weights:
        values = np.asarray(weight.numpy())
        if not np.all(np.isfinite(values)):
            raise UserError(f"weight '{weight.path}' holds NaN or infinite values; retrain the model.")
    output_shape = tuple(model.outputs[0].shape[1:])
    if len(output_shape) != 1:
        raise UserError(f"model output has shape {output_shape}; the pipeline needs a vector of class scores.")


def _check_batch_norm_foldable(layer, previous) -> None:
    """The converter folds BatchNormalization into the conv or dense layer before it, which is exact
    only when that layer's output reaches the normalization unchanged (no activation in between)."""
    host_kinds = ", ".join(BATCH_NORM_HOSTS)
    if previous is None or type(previous).__name__ not in BATCH_NORM_HOSTS:
        after = "the model input" if previous is None else f"'{previous.name}' ({type(previous).__name__})"
        raise UserError(
            f"layer '{layer.name}' is a BatchNormalization after {after}; the pipeline folds a BatchNormalization "
            f"into the {host_kinds} layer right before it, so put it directly after one."
        )
    activation = _activation_name(previous.activation)
    if activation != "linear":
        raise UserError(
            f"layer '{layer.name}' is a BatchNormalization after '{previous.name}', whose activation is '{activation}'; "
            "to fold the normalization into that layer, give it no activation and put the activation after the "
            "BatchNormalization."
        )
    axis = layer.get_config().get("axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    rank = len(layer.input.shape) if getattr(layer, "input", None) is not None else None
    if len(axes) != 1 or axes[0] not in (-1, None if rank is None else rank - 1):
        raise UserError(f"layer '{layer.name}' normalizes the axis {axis}; only the channel (last) axis can be folded.")


def _check_layer_options(layer, kind: str) -> None:
    config = layer.get_config()
    if kind in ("Conv2D", "DepthwiseConv2D", "Dense"):
        activation = _activation_name(layer.activation)
        allowed = FUSED_ACTIVATIONS + (("softmax",) if kind == "Dense" else ())
        if activation not in allowed:
            raise UserError(
                f"layer '{layer.name}' uses the activation '{activation}'; supported: {', '.join(allowed)}."
            )
    if kind in ("Conv2D", "DepthwiseConv2D"):
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
