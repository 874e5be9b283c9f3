"""Training augmentation and the tf.data pipelines.

``augmenter(hp, seed)`` returns a batched map, uint8 (B, 28, 28) -> float32 (B, 28, 28, 1) with
pixels 0..255, or None when ``hp`` asks for no augmentation; ``dataset`` builds the shuffled,
batched, prefetched pipeline around it. The images stay uint8 in memory; the model scales them.
``AlternateFlip`` (the ``flip_alternate`` knob) flips each image in every other epoch, as
airbench does: a seeded half in the first epoch, the other half in the next, and so on; it is
also the Keras callback that tells the pipeline the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fmnist.runtime import keras, tf

KNOBS = ("flip", "zoom", "translate", "crop", "erase")


class AlternateFlip(keras.callbacks.Callback):
    """Each of ``n`` images flipped in every other epoch: image i in epoch e iff its seeded bit
    differs from e's parity (airbench's alternating flip: every image is seen both ways in any
    two epochs in a row, without the repeats of independent coin flips). Put it first among a
    run's callbacks: it sets the epoch before the pipeline makes the epoch's batches."""

    def __init__(self, n: int, seed: int):
        super().__init__()
        self.bits = tf.constant(np.random.default_rng(seed).integers(0, 2, n), tf.int64)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)

    def mask(self, index):
        """Whether each image of ``index`` (positions in the training images) is flipped."""
        return tf.not_equal(tf.gather(self.bits, index), self.epoch % 2)


def augmenter(hp: Mapping[str, Any], seed: int, alternate: AlternateFlip | None = None):
    """The augmentation ``hp``'s flip, zoom, translate and erase knobs ask for, or None. With
    ``alternate`` the flips are its (the map then takes each image's position too)."""
    if not any(hp[k] for k in KNOBS):
        return None
    geometric = []
    if hp["zoom"]:
        geometric.append(keras.layers.RandomZoom(hp["zoom"], fill_mode="constant", seed=seed))
    if hp["translate"]:
        geometric.append(keras.layers.RandomTranslation(hp["translate"], hp["translate"],
                                                        fill_mode="constant", seed=seed + 1))

    def augment(x, y, index=None):
        x = tf.cast(x, tf.float32)[..., None]
        n = tf.shape(x)[0]
        if hp["flip"]:
            flip = (alternate.mask(index)[:, None, None, None] if alternate is not None
                    else tf.random.uniform((n, 1, 1, 1)) < hp["flip"])
            x = tf.where(flip, tf.reverse(x, axis=[2]), x)
        if hp["crop"]:
            x = random_crop(x, hp["crop"], seed + 2)
        for layer in geometric:
            x = layer(x, training=True)
        if hp["erase"]:
            x = random_erase(x, hp["erase"])
        return x, y

    return augment


def random_crop(x, pad: int, seed: int | None = None):
    """Each image moved by whole pixels, up to ``pad`` each way: a random 28x28 window of the
    image zero-padded by ``pad`` (two gathers: no interpolation). ``x``: float (B, 28, 28, 1)."""
    n = tf.shape(x)[0]
    size = x.shape[1]
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.uniform((n, 2), 0, 2 * pad + 1, dtype=tf.int32, seed=seed)
    rows = offsets[:, :1] + tf.range(size)[None, :]
    cols = offsets[:, 1:] + tf.range(size)[None, :]
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def random_erase(x, probability: float):
    """Random erasing (Zhong et al. 2017): with ``probability``, a rectangle of 2-33% of the
    area, aspect 0.3-3.3, filled with uniform noise. ``x``: float (B, 28, 28, 1)."""
    n = tf.shape(x)[0]
    area = tf.random.uniform((n,), 0.02, 0.33) * 784.0
    aspect = tf.exp(tf.random.uniform((n,), math.log(0.3), math.log(1 / 0.3)))
    h = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1, 28)
    w = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1, 28)
    top = tf.floor(tf.random.uniform((n,)) * (29.0 - h))
    left = tf.floor(tf.random.uniform((n,)) * (29.0 - w))
    rows = tf.range(28.0)[None, :, None]
    cols = tf.range(28.0)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None]))
    apply = (tf.random.uniform((n,)) < probability)[:, None, None]
    noise = tf.random.uniform(tf.shape(x)[:3], 0.0, 255.0)
    return tf.where((inside & apply)[..., None], noise[..., None], x)


def dataset(x, y, batch_size: int, shuffle: bool, seed: int, augment=None, one_hot=False,
            indexed: bool = False):
    """A tf.data pipeline of (images, labels) batches: reshuffled every pass when ``shuffle``
    (seeded), mapped through ``augment`` (given each image's position too where ``indexed``),
    labels one-hot when ``one_hot``, prefetched."""
    ds = tf.data.Dataset.from_tensor_slices(
        (x, y, np.arange(len(x), dtype=np.int64)) if indexed else (x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    if one_hot:
        ds = ds.map(lambda a, b: (a, tf.one_hot(tf.cast(b, tf.int32), 10)))
    return ds.prefetch(tf.data.AUTOTUNE)
