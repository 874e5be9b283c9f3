"""Unit tier: test-time augmentation's views, and its prediction with a small real model."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist import tta

pytestmark = pytest.mark.unit


def test_shift_moves_by_whole_pixels_and_fills_with_zeros():
    x = np.arange(1, 17, dtype=np.uint8).reshape(1, 4, 4)
    down_right = tta.shift(x, 1, 1)
    assert down_right.shape == x.shape and down_right.dtype == x.dtype
    assert (down_right[0, 1:, 1:] == x[0, :3, :3]).all()
    assert (down_right[0, 0] == 0).all() and (down_right[0, :, 0] == 0).all()
    assert (tta.shift(down_right, -1, -1)[0, :3, :3] == x[0, :3, :3]).all()


def test_views_weights_sum_to_one_and_an_unknown_mode_is_refused():
    x = np.zeros((2, 28, 28), np.uint8)
    for mode, n in (("none", 1), ("flip", 2), ("flip_shift", 6)):
        vs = tta.views(x, mode)
        assert len(vs) == n and sum(w for w, _ in vs) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="mode must be one of"):
        tta.views(x, "rotate")


class _Model:
    """Probabilities from the left-right asymmetry of each image: a flip swaps the classes."""

    def predict(self, x, batch_size=None, verbose=0):
        x = np.asarray(x, np.float64)
        left, right = x[:, :, :14].sum(axis=(1, 2)), x[:, :, 14:].sum(axis=(1, 2))
        p = (left + 1) / (left + right + 2)
        return np.stack([p, 1 - p], axis=1)


def test_tta_of_a_symmetric_batch_equals_the_plain_prediction():
    rng = np.random.default_rng(0)
    half = rng.integers(0, 255, (5, 28, 14), dtype=np.uint8)
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    plain = _Model().predict(symmetric)
    assert np.allclose(tta.predict(_Model(), symmetric, "flip"), plain)
    lopsided = np.concatenate([half, np.zeros_like(half)], axis=2)
    assert np.allclose(tta.predict(_Model(), lopsided, "flip"), 0.5)  # flip: classes swap
    assert not np.allclose(_Model().predict(lopsided), 0.5)
