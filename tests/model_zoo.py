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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _keras():
    import keras

    return keras


def convert_to_int8(model, input_shape: tuple[int, ...], seed: int = 0, samples: int = 64) -> bytes:
    """Full-integer post-training quantization with int8 input and output."""
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


@functools.cache
def second_model_tflite() -> bytes:
    """A different small network: SAME padding, stride 2, average pooling, RELU6, depthwise conv."""
    keras = _seeded(2)
    layers = keras.layers
    model = keras.Sequential(
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
    return convert_to_int8(model, (28, 28, 1), seed=2)


@functools.cache
def tanh_model_tflite() -> bytes:
    """A model with an operator si4tool does not support (TANH)."""
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
