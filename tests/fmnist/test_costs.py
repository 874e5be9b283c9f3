"""A built model's costs: multiply-adds counted layer by layer (checked by hand on a small
model), latencies measured on this machine, and a run refused before training."""

from __future__ import annotations

import numpy as np

from fmnist import costs


def _small():
    from fmnist.runtime import keras

    layers = keras.layers
    x_in = keras.Input((28, 28, 1))
    x = layers.Conv2D(4, 3, padding="same")(x_in)  # 28*28 positions * 3*3*1*4
    x = layers.BatchNormalization()(x)  # not counted
    x = layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 14*14 * 3*3*4*1
    x = layers.Conv2D(8, 1)(x)  # 14*14 * 1*1*4*8
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(10)(x)  # 8*10
    return keras.Model(x_in, out)


def test_multiply_adds_are_each_kernel_times_the_positions_it_is_applied_at():
    assert costs.macs(_small()) == 28 * 28 * 36 + 14 * 14 * 36 + 14 * 14 * 32 + 80


def test_a_nested_model_is_counted_through():
    from fmnist.runtime import keras

    inner = _small()
    outer = keras.Sequential([keras.Input((28, 28, 1)), inner])
    assert costs.macs(outer) == costs.macs(inner)


def test_measure_gives_every_cost_from_the_untrained_model():
    m = _small()
    c = costs.measure(m)
    assert set(c) == set(costs.COSTS)
    assert c["params"] == m.count_params() and c["macs"] == costs.macs(m)
    assert 0 < c["latency_ms"] < 1000 and c["images_per_s"] > 0
    # the file holds each float32 weight once, and a little more (config, zip): no optimizer
    assert 4 * c["params"] / 1e6 <= c["size_mb"] < 4 * c["params"] / 1e6 + 0.05
    assert set(costs.measure(m, timed=False)) == {"params", "macs", "size_mb"}


def test_a_model_refused_when_built_is_not_trained():
    from types import SimpleNamespace

    from fmnist import train

    seen = []
    x, y = np.zeros((32, 28, 28), np.uint8), np.zeros(32, np.uint8)
    split = SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y)
    r = train.train("lenet5", split, {"max_epochs": 2, "batch_size": 16},
                    on_built=lambda model: seen.append(model.count_params()) or True)
    assert r.stop_reason == "not_trained" and r.history == [] and r.epochs == 0
    assert seen == [r.params]
