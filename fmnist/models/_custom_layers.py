"""The two custom layers (channel split, shake-shake), registered with Keras for loading saved
models under ``fmnist>ChannelSplit`` and ``fmnist>ShakeShake``.

This module imports Keras (through ``fmnist.runtime``), and ``fmnist.runtime`` imports it in turn
as soon as Keras is in: a saved ShuffleNet or ShakeShake loads wherever ``fmnist`` brought Keras
in, without a model being built first. ``fmnist.models._layers`` names both classes too.
"""

from __future__ import annotations

from fmnist.runtime import keras

layers, ops = keras.layers, keras.ops


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
