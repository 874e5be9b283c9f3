"""Building blocks shared by the families: the input stem (the model scales its own pixels), the
classifier head, and the two custom layers (channel split, shake-shake)."""

from __future__ import annotations

import keras
from keras import layers, ops

NUM_CLASSES = 10


def image_input() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """(N, 28, 28, 1) input of pixel values 0..255 (N, 28, 28 is accepted too), scaled to [0, 1]."""
    x_in = keras.Input((28, 28, 1), name="image")
    return x_in, layers.Rescaling(1.0 / 255.0, name="scale")(x_in)


def softmax_head(x: keras.KerasTensor, dropout: float = 0.0) -> keras.KerasTensor:
    if dropout > 0:
        x = layers.Dropout(dropout)(x)
    return layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)


def conv_bn_act(x, filters: int, kernel: int = 3, strides: int = 1, act: str | None = "relu",
                batch_norm: bool = True, padding: str = "same"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding,
                      use_bias=not batch_norm)(x)
    if batch_norm:
        x = layers.BatchNormalization()(x)
    return layers.Activation(act)(x) if act else x


def channel_shuffle(x, groups: int = 2):
    _, h, w, c = x.shape
    x = layers.Reshape((h, w, groups, c // groups))(x)
    x = layers.Permute((1, 2, 4, 3))(x)
    return layers.Reshape((h, w, c))(x)


@keras.saving.register_keras_serializable(package="fmnist")
class ChannelSplit(layers.Layer):
    """Split the channels in two halves (ShuffleNet v2)."""

    def call(self, x):
        return ops.split(x, 2, axis=-1)

    def compute_output_shape(self, shape):
        half = (*shape[:-1], shape[-1] // 2)
        return [half, half]


@keras.saving.register_keras_serializable(package="fmnist")
class ShakeShake(layers.Layer):
    """Shake-shake (Gastaldi, 2017): a random convex mix of two branches per image, with another
    random mix in the backward pass; the plain mean at inference."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        a, b = inputs
        if not training:
            return 0.5 * (a + b)
        shape = (ops.shape(a)[0], 1, 1, 1)
        alpha = keras.random.uniform(shape, seed=self.seed_generator, dtype=a.dtype)
        beta = keras.random.uniform(shape, seed=self.seed_generator, dtype=a.dtype)
        forward = alpha * a + (1.0 - alpha) * b
        backward = beta * a + (1.0 - beta) * b
        return backward + ops.stop_gradient(forward - backward)

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
