"""A run whose loss turns NaN or inf stops at once and says so (real Keras training, tiny);
a run's callbacks in their declared order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np


def _split(n=256):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
    y = np.arange(n) % 10
    return SimpleNamespace(x_train=x, y_train=y, x_val=x[:64], y_val=y[:64])


def test_a_nan_loss_stops_the_run_at_that_epoch_as_diverged():
    from fmnist import train
    from fmnist.runtime import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.Dense(10)(x)
    x = keras.layers.Rescaling(float("inf"))(x)  # logits of inf: a NaN loss at the first batch
    model = keras.Model(inputs, keras.layers.Activation("softmax")(x))
    r = train.train(model, _split(), {"max_epochs": 3, "batch_size": 32,
                                      "early_stopping": False})
    assert r.stop_reason == "diverged"
    assert r.epochs == 1 and not np.isfinite(r.history[0]["train/loss"])


def test_a_runs_callbacks_go_in_the_declared_order_whatever_order_they_are_given_in():
    from fmnist.train import loop

    assert loop.in_order({"end": "E", "ema": "M", "recorder": "R", "stop": None,
                          "early_stopping": "S"}) == ["R", "S", "M", "E"]
    # the alternating flip tells the pipeline the epoch first; the recorder reads the rate
    # before any callback changes it; the end of an epoch is decided last
    assert loop.CALLBACK_ORDER[:2] == ("flip", "recorder") and loop.CALLBACK_ORDER[-1] == "end"
    try:
        loop.in_order({"mystery": object()})
    except ValueError as e:
        assert "mystery" in str(e)
    else:
        raise AssertionError("an undeclared callback must have no place")
