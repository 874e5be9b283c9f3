"""Stochastic weight averaging and the batch-norm recompute it needs."""

from __future__ import annotations

from collections import deque

import numpy as np

from fmnist import compat
from fmnist.runtime import keras

ops = keras.ops

# training images whose batch statistics set BatchNormalization's after weight averaging
BN_IMAGES = 8192


class SWA(keras.callbacks.Callback):
    """Keeps the weights of the last ``n`` epochs; at the end of training sets their mean and
    recomputes the BatchNormalization statistics for it (``update_batch_norm``).

    ``snapshots`` holds the kept weights (oldest first).
    """

    def __init__(self, n: int, x_train: np.ndarray, batch_size: int):
        super().__init__()
        self.snapshots: deque[list[np.ndarray]] = deque(maxlen=n)
        self.x_train, self.batch_size = x_train, batch_size

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots.append([np.array(w) for w in self.model.get_weights()])

    def on_train_end(self, logs=None):
        if self.snapshots:
            mean = [np.mean(ws, axis=0) for ws in zip(*self.snapshots, strict=True)]
            self.model.set_weights(mean)
            # the mean of the epochs' running statistics does not describe the activations of
            # the mean weights (PyTorch's swa_utils.update_bn does the same)
            update_batch_norm(self.model, self.x_train, self.batch_size)


def update_batch_norm(model, x: np.ndarray, batch_size: int, max_images: int = BN_IMAGES) -> None:
    """Set every BatchNormalization layer's moving statistics to the average of its batch
    statistics over (up to ``max_images`` of) ``x``, in forward passes in training mode. Each
    layer's momentum is as it was afterwards."""
    bns = [la for la in compat.flatten_layers(model)
           if isinstance(la, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [la.momentum for la in bns]
    for la in bns:
        la.moving_mean.assign(ops.zeros_like(la.moving_mean))
        la.moving_variance.assign(ops.ones_like(la.moving_variance))
    try:
        for k, start in enumerate(range(0, min(len(x), max_images), batch_size)):
            for la in bns:  # momentum k / (k + 1): the running value is the mean of k + 1 batches
                la.momentum = k / (k + 1)
            model(x[start:start + batch_size], training=True)
    finally:
        for la, m in zip(bns, saved, strict=True):
            la.momentum = m
