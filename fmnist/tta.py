"""Test-time augmentation: a model's probabilities averaged over flipped and shifted views of
each image, as the CIFAR-10 speed runs evaluate (airbench: identity and flip weighted 1/4 each,
their one-pixel shifts up-left and down-right 1/8 each).

Example::

    from fmnist import tta
    probs = tta.predict(model, split.x_val, "flip_shift")
"""

from __future__ import annotations

import numpy as np

MODES = ("none", "flip", "flip_shift")


def shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images (N, H, W[, C]) moved by whole pixels (down by ``dy``, right by ``dx``), the
    uncovered edge filled with 0 (the background)."""
    out = np.zeros_like(x)
    h, w = x.shape[1], x.shape[2]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def views(x: np.ndarray, mode: str) -> list[tuple[float, np.ndarray]]:
    """(weight, images) for each view ``mode`` averages; the weights sum to 1."""
    if mode not in MODES:
        raise ValueError(f"tta: mode must be one of {list(MODES)}, but got {mode!r}.")
    if mode == "none":
        return [(1.0, x)]
    flipped = x[:, :, ::-1]
    if mode == "flip":
        return [(0.5, x), (0.5, flipped)]
    return [(0.25, x), (0.25, flipped),
            *((0.125, shift(v, d, d)) for v in (x, flipped) for d in (-1, 1))]


def predict(model, x: np.ndarray, mode: str = "none", batch_size: int = 1024) -> np.ndarray:
    """The weighted mean of ``model``'s probabilities over the views of ``x`` (uint8 images)."""
    out = None
    for weight, v in views(x, mode):
        p = weight * np.asarray(model.predict(np.ascontiguousarray(v), batch_size=batch_size,
                                              verbose=0), dtype=np.float64)
        out = p if out is None else out + p
    return out
