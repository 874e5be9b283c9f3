"""Every private API the project leans on still works with the libraries installed: a guarded
path that stopped working would otherwise only show as a silent slowdown."""

from __future__ import annotations

import pytest

from fmnist import compat


def test_every_guarded_private_path_still_works():
    broken = [name for name, ok in compat.checks().items() if not ok]
    assert broken == [], (f"these private paths stopped working (checked against "
                          f"{compat.CHECKED}): {broken}; see fmnist/compat.py")


def test_the_layer_walk_finds_nested_layers_with_and_without_keras_internals():
    from fmnist.runtime import keras

    inner = keras.Sequential([keras.layers.Dense(2), keras.layers.BatchNormalization()])
    model = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1)])
    names = [type(la).__name__ for la in compat.flatten_layers(model)]
    assert names.count("BatchNormalization") == 1 and names.count("Dense") >= 2
    assert "Sequential" in names and model not in compat.flatten_layers(model)

    class NoInternals:  # the public fallback
        layers = [inner]

    assert [type(la).__name__ for la in compat.flatten_layers(NoInternals())] == [
        "Sequential", "Dense", "BatchNormalization"]


def test_outside_a_trial_there_is_no_stop_to_poll():
    pytest.importorskip("ray")
    assert compat.tune_stop_requested() is None
