"""Unit tier: the training callbacks driven by hand, as Keras's own callback tests do: a tiny
model, weights set directly, no fit."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist.runtime import keras
from fmnist.train import augment, state
from fmnist.train.callbacks import EMAWeights

pytestmark = pytest.mark.unit


def _model():
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    m.compile(optimizer="sgd", loss="mse")
    return m


def _set(m, value):
    m.set_weights([np.full((2, 1), value, np.float32)])


def _get(m):
    return float(m.get_weights()[0][0, 0])


def _started(decay: float, start: float = 0.0, stopper=None):
    """A model at ``start`` and an EMA on it, as ``fit`` leaves them at an epoch's start."""
    m = _model()
    _set(m, start)
    ema = EMAWeights(decay, stopper)
    ema.set_model(m)
    ema.on_train_begin()
    ema.on_epoch_begin(0)
    return m, ema


def test_ema_averages_validates_with_the_average_and_trains_on_the_raw_weights():
    m, ema = _started(0.5)
    _set(m, 10.0)
    ema.on_train_batch_end(0)  # warm-up: d = min(0.5, 1/10)
    assert ema.weights[0][0, 0] == pytest.approx(9.0) and ema.updates == 1
    _set(m, 20.0)
    ema.on_train_batch_end(1)  # d = min(0.5, 2/11)
    expected = 9.0 * 2 / 11 + 20.0 * 9 / 11
    assert ema.weights[0][0, 0] == pytest.approx(expected)
    ema.on_test_begin()
    assert _get(m) == pytest.approx(expected), "validation sees the average"
    ema.on_test_end()
    assert _get(m) == pytest.approx(expected), "and the epoch-end callbacks before it"
    ema.on_epoch_end(0)
    assert _get(m) == 20.0, "training goes on from the raw weights"
    ema.on_train_end()
    assert _get(m) == pytest.approx(expected), "the model kept is the average"


def test_ema_counts_the_steps_of_each_execution():
    m, ema = _started(0.9)
    ema.updates = 1000  # past the warm-up
    _set(m, 1.0)
    ema.on_train_batch_end(31)  # one execution of 32 steps
    assert ema.weights[0][0, 0] == pytest.approx(1 - 0.9 ** 32)


def test_ema_leaves_early_stoppings_restored_weights_alone():
    m = _model()
    stopper = keras.callbacks.EarlyStopping(restore_best_weights=True)
    stopper.best_weights = [np.full((2, 1), 3.0, np.float32)]
    ema = EMAWeights(0.5, stopper)
    ema.set_model(m)
    ema.on_train_begin()
    _set(m, 3.0)  # what EarlyStopping.on_train_end, before it, restored
    ema.on_train_end()
    assert _get(m) == 3.0


def test_ema_state_round_trips_through_a_saved_state(tmp_path):
    m = _model()
    _set(m, 2.0)
    ema = EMAWeights(0.5)
    ema.set_model(m)
    ema.on_train_begin()
    ema.weights = [np.full((2, 1), 7.0, np.float32)]
    ema.updates = 12
    state.write(tmp_path, m, 3, [{"epoch": 1}], ema=ema)
    loaded = state.load(_model(), tmp_path)
    again = EMAWeights(0.5, resume=loaded)
    assert again.updates == 12 and float(again.weights[0][0, 0]) == 7.0
    assert loaded["epoch"] == 3 and loaded["best_weights"] is None


def test_crop_keeps_the_size_moves_by_whole_pixels_and_is_seeded():
    from fmnist.runtime import tf

    x = np.zeros((64, 28, 28, 1), np.float32)
    x[:, 14, 14, 0] = 255.0
    tf.random.set_seed(0)
    a = augment.random_crop(tf.constant(x), 2, seed=3).numpy()
    tf.random.set_seed(0)
    b = augment.random_crop(tf.constant(x), 2, seed=3).numpy()
    assert a.shape == x.shape and (a == b).all(), "same seeds, same crops"
    assert set(np.unique(a)) == {0.0, 255.0}, "no interpolation"
    rows, cols = np.nonzero(a[..., 0])[1:]
    assert len(rows) == 64, "one pixel each, never cut off"
    assert set(rows - 14) <= {-2, -1, 0, 1, 2} and set(cols - 14) <= {-2, -1, 0, 1, 2}
    assert len(set(zip(rows, cols, strict=True))) > 5, "the shifts vary"
