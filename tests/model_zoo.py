"""Small int8 TFLite models built inside the test suite, for the lowering and codegen tests.

Each builder makes a tiny Keras model with seeded random weights and converts
it with TFLiteConverter to full int8 (int8 input and output), calibrated on
seeded random images. Untrained weights are enough: the tests check structure
and bit-exactness, not accuracy. Conversion takes a few seconds, so the test
files wrap these in session-scoped fixtures (and results are cached per
process here).
"""

from __future__ import annotations

import functools
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _keras():
    import keras

    return keras


def convert_to_int8(
    model, input_shape: tuple[int, ...], seed: int = 0, samples: int = 64, per_channel: bool = True
) -> bytes:
    """Full-integer post-training quantization with int8 input and output.

    per_channel=False asks the converter for per-tensor conv and dense weights
    (the other quantization path TFLM supports).
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = rng.random((samples, *input_shape), dtype=np.float32)

    def representative_dataset():
        for image in images:
            yield [image[None, ...]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    if not per_channel:
        converter._experimental_disable_per_channel = True
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected": int8 input is intended
        return bytes(converter.convert())


def _seeded(seed: int):
    keras = _keras()
    keras.utils.set_random_seed(seed)
    return keras


@functools.cache
def seed_model_tflite() -> bytes:
    """The course notebook's network (232,650 parameters), untrained."""
    keras = _seeded(1)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPool2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPool2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    return convert_to_int8(model, (28, 28, 1), seed=1)


def _second_model():
    keras = _seeded(2)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, (3, 3), strides=2, padding="same", activation="relu6"),
            layers.DepthwiseConv2D((3, 3), padding="same", depth_multiplier=2, activation="relu"),
            layers.AveragePooling2D((2, 2)),
            layers.Conv2D(12, (3, 3), padding="valid"),
            layers.MaxPool2D((2, 2), strides=2, padding="same"),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


@functools.cache
def second_model_tflite() -> bytes:
    """A different small network: SAME padding, stride 2, average pooling, RELU6, depthwise conv,
    a max pool with SAME padding after a conv (fused with window clipping)."""
    return convert_to_int8(_second_model(), (28, 28, 1), seed=2)


@functools.cache
def second_model_per_tensor_tflite() -> bytes:
    """The second network with per-tensor conv and dense weights."""
    return convert_to_int8(_second_model(), (28, 28, 1), seed=2, per_channel=False)


@functools.cache
def asymmetric_model_tflite() -> bytes:
    """Non-square input with 2 channels, uneven strides and kernels, a bias-free conv, no softmax.

    (Keras dilated convolutions are converted to SPACE_TO_BATCH_ND + CONV_2D +
    BATCH_TO_SPACE_ND, which si4tool rejects; dilation inside CONV_2D is
    lowered but not produced by this converter.)"""
    keras = _seeded(4)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((12, 10, 2)),
            layers.Conv2D(6, (3, 3), strides=2, padding="same", activation="relu"),
            layers.Conv2D(5, (2, 3), strides=(2, 1), use_bias=False),
            layers.Flatten(),
            layers.Dense(7),
        ]
    )
    return convert_to_int8(model, (12, 10, 2), seed=4)


@functools.cache
def tanh_model_tflite() -> bytes:
    """A small model with a standalone TANH (supported since issue 10: a table kernel)."""
    keras = _seeded(3)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(4, (3, 3)),
            layers.Activation("tanh", name="squash"),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )
    return convert_to_int8(model, (8, 8, 1), seed=3)


@functools.cache
def unsupported_model_tflite() -> bytes:
    """A model with an operator si4tool does not support (REDUCE_MAX, from a global max pooling)."""
    keras = _seeded(3)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(4, (3, 3)),
            layers.GlobalMaxPooling2D(name="pick_max"),
            layers.Dense(10),
        ]
    )
    return convert_to_int8(model, (8, 8, 1), seed=3)


@functools.cache
def float_input_model_tflite() -> bytes:
    """int8 weights and activations but float32 input and output (QUANTIZE/DEQUANTIZE at the edges)."""
    import tensorflow as tf

    keras = _seeded(5)
    layers = keras.layers
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(2, (3, 3)), layers.Flatten(), layers.Dense(3)])
    rng = np.random.default_rng(5)
    images = rng.random((16, 6, 6, 1), dtype=np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in images)
    return bytes(converter.convert())


def reference_forward(graph, image: np.ndarray) -> dict[str, np.ndarray]:
    """Run a Graph with the NumPy references of its operators (the registry's OpSpec.reference);
    every tensor, by name (flat int8).

    A conv2d_max_pool layer is computed as the conv followed by the pool, the meaning the
    fused C kernel must reproduce.
    """
    from si4tool.compiler import ops

    values = {graph.input: np.asarray(image, dtype=np.int8).reshape(-1)}
    for layer in graph.layers:
        output = ops.spec(layer.op).reference(layer, [values[name] for name in layer.inputs])
        values[layer.output] = np.asarray(output, dtype=np.int8).reshape(-1)
    return values


def random_images(count: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(count, *shape), dtype=np.int8)


@functools.cache
def residual_model_tflite() -> bytes:
    """A residual block (conv -> conv -> ADD with the skip, fused RELU) and a second ADD whose skip
    is the model input itself, then a broadcast ADD of a tensor and its global average (1x1xC)."""
    keras = _seeded(6)
    layers = keras.layers
    image = keras.Input((10, 10, 4))
    x = layers.Conv2D(4, (3, 3), padding="same", activation="relu")(image)
    y = layers.Conv2D(4, (3, 3), padding="same")(x)
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.Add()([x, image])
    pooled = layers.AveragePooling2D((10, 10))(x)
    x = layers.Add()([x, pooled])
    x = layers.Conv2D(6, (3, 3), strides=2)(x)
    outputs = layers.Dense(5)(layers.Flatten()(x))
    return convert_to_int8(keras.Model(image, outputs), (10, 10, 4), seed=6)


@functools.cache
def resnet_blocks_tflite() -> bytes:
    """ResNet-8's two kinds of residual block on an odd map (11x9): conv -> conv -> ADD with the
    block's input, then a stride-2 block whose skip path is a 1x1 stride-2 convolution."""
    keras = _seeded(8)
    layers = keras.layers
    image = keras.Input((11, 9, 3))
    x = layers.Conv2D(8, (3, 3), padding="same", activation="relu")(image)
    y = layers.Conv2D(8, (3, 3), padding="same", activation="relu")(x)
    y = layers.Conv2D(8, (3, 3), padding="same")(y)
    x = layers.ReLU()(layers.Add()([x, y]))
    y = layers.Conv2D(12, (3, 3), strides=2, padding="same", activation="relu")(x)
    y = layers.Conv2D(12, (3, 3), padding="same")(y)
    skip = layers.Conv2D(12, (1, 1), strides=2)(x)
    x = layers.ReLU()(layers.Add()([skip, y]))
    x = layers.AveragePooling2D((6, 5))(x)
    outputs = layers.Dense(5)(layers.Flatten()(x))
    return convert_to_int8(keras.Model(image, outputs), (11, 9, 3), seed=8)


@functools.cache
def odd_residual_blocks_tflite() -> bytes:
    """Residual blocks of other shapes on a 9x7 map: 6 channels (not whole words), a stride-2
    block with a 1x1 stride-2 skip on an odd map, and a block whose first convolution is 1x1 and
    second 5x5 (a ring of five rows)."""
    keras = _seeded(9)
    layers = keras.layers
    image = keras.Input((9, 7, 2))
    x = layers.Conv2D(6, (3, 3), padding="same", activation="relu")(image)
    y = layers.Conv2D(6, (3, 3), padding="same", activation="relu")(x)
    x = layers.Add()([x, layers.Conv2D(6, (3, 3), padding="same")(y)])
    y = layers.Conv2D(5, (3, 3), strides=2, padding="same", activation="relu")(x)
    skip = layers.Conv2D(5, (1, 1), strides=2)(x)
    x = layers.ReLU()(layers.Add()([skip, layers.Conv2D(5, (3, 3), padding="same")(y)]))
    y = layers.Conv2D(8, (1, 1), activation="relu")(x)
    x = layers.Add()([x, layers.Conv2D(5, (5, 5), padding="same")(y)])
    outputs = layers.Dense(3)(layers.Flatten()(layers.AveragePooling2D((5, 4))(x)))
    return convert_to_int8(keras.Model(image, outputs), (9, 7, 2), seed=9)


@functools.cache
def conv_chain_tflite() -> bytes:
    """A MobileNet-like stem on an odd map (23x17x3), for chains run depth-first: a stride-2 SAME
    convolution, a depthwise layer of depth multiplier 2, a 1x1 expansion, a stride-2 VALID
    depthwise layer, a 3x3 convolution, a 5x3 convolution, a 1x1 contraction, a global average
    pool and the head."""
    keras = _seeded(10)
    layers = keras.layers
    image = keras.Input((23, 17, 3))
    x = layers.Conv2D(6, (3, 3), strides=2, padding="same", activation="relu")(image)
    x = layers.DepthwiseConv2D((3, 3), padding="same", depth_multiplier=2, activation="relu")(x)
    x = layers.Conv2D(20, (1, 1), activation="relu")(x)
    x = layers.DepthwiseConv2D((3, 3), strides=2, activation="relu")(x)
    x = layers.Conv2D(9, (3, 3), padding="same", activation="relu")(x)
    x = layers.Conv2D(7, (5, 3), padding="same", activation="relu")(x)
    x = layers.Conv2D(4, (1, 1))(x)
    outputs = layers.Dense(3)(layers.Flatten()(layers.AveragePooling2D((5, 4))(x)))
    return convert_to_int8(keras.Model(image, outputs), (23, 17, 3), seed=10)


@functools.cache
def strided_conv_pool_tflite() -> bytes:
    """The seed's conv-pool, conv-pool, dense shape with a stride-2 first convolution on a 41x37x2
    input, odd maps and channels that are not whole words: for row streams in column strips."""
    keras = _seeded(11)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((41, 37, 2)),
            layers.Conv2D(6, (3, 3), strides=2, activation="relu"),
            layers.MaxPool2D((2, 2)),
            layers.Conv2D(5, (3, 3), activation="relu"),
            layers.MaxPool2D((2, 2)),
            layers.Flatten(),
            layers.Dense(4),
        ]
    )
    return convert_to_int8(model, (41, 37, 2), seed=11)
