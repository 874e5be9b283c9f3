"""Learning-rate schedules as functions of the (fractional) epoch, one function each, and the
optimizer that runs on them.

Each schedule function takes ``e`` (a backend tensor: the step over steps per epoch), the peak
rate ``base``, ``max_epochs`` (the epoch the schedule ends at: a number or a backend tensor) and
the schedule's own knobs, and returns the rate. ``EpochSchedule`` turns one into a Keras
``LearningRateSchedule`` of the optimizer's step, whose last epoch a run may move while it
trains (``set_horizon``: a budgeted run fits its schedule to its time).

Example::

    from fmnist.train import schedules
    lr = schedules.learning_rate_schedule({"schedule": "cosine", "learning_rate": 0.1,
                                           "max_epochs": 10, ...}, steps_per_epoch=750)
    lr(7500)  # 0.0 at the end of epoch 10
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fmnist.runtime import keras

ops = keras.ops


def step(e, base, max_epochs, step_factor=0.1, step_epochs=10, **_):
    """``base`` times ``step_factor`` every ``step_epochs`` epochs."""
    return base * step_factor ** ops.floor(e / step_epochs)


def cosine(e, base, max_epochs, **_):
    """Half a cosine from ``base`` to 0 at ``max_epochs``."""
    return base * 0.5 * (1.0 + ops.cos(math.pi * ops.minimum(e / max_epochs, 1.0)))


def onecycle(e, base, max_epochs, **_):
    """Linear warm-up over 30% of the epochs from base/25, then a cosine to base/1e4."""
    warm, low, end = 0.3 * max_epochs, base / 25.0, base / 1e4
    up = low + (base - low) * e / warm
    frac = ops.minimum((e - warm) / (max_epochs - warm), 1.0)
    down = end + (base - end) * 0.5 * (1.0 + ops.cos(math.pi * frac))
    return ops.where(e < warm, up, down)


def cyclic(e, base, max_epochs, cycle_epochs=4, **_):
    """Triangles between base/10 and ``base``, ``cycle_epochs`` long."""
    pos = e / cycle_epochs - ops.floor(e / cycle_epochs)
    return base / 10.0 + (base - base / 10.0) * (1.0 - ops.abs(2.0 * pos - 1.0))


def triangle(e, base, max_epochs, peak_at=0.23, **_):
    """Linear from base/5 up to ``base`` at ``peak_at`` of the epochs, then linear down to 0 at
    the end (the CIFAR-10 speed runs' schedule)."""
    peak = ops.maximum(peak_at * max_epochs, 1e-6)
    up = base * (0.2 + 0.8 * e / peak)
    down = base * ops.maximum(max_epochs - e, 0.0) / ops.maximum(max_epochs - peak, 1e-6)
    return ops.where(e < peak, up, down)


# the schedules of the step; "constant" and "plateau" are a plain float (plateau's drops are
# ReduceLROnPlateau's, which needs a float rate)
BY_NAME = {"step": step, "cosine": cosine, "onecycle": onecycle, "cyclic": cyclic,
           "triangle": triangle}


@keras.saving.register_keras_serializable(package="fmnist")
class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """One of ``BY_NAME``'s schedules as a Keras schedule of the optimizer's step.

    Fully described by its config, so a saved model (a trial's checkpoint, the logged model)
    loads back with its optimizer. ``horizon`` (the epoch the schedule ends at, ``max_epochs``
    at first) is a variable the compiled step reads: ``set_horizon`` moves it mid-run.
    """

    def __init__(self, kind, base, steps_per_epoch, max_epochs, step_factor=0.1,
                 step_epochs=10, cycle_epochs=4, peak_at=0.23):
        if kind not in BY_NAME:
            raise ValueError(f"EpochSchedule: kind must be one of {sorted(BY_NAME)}, "
                             f"but got {kind!r}.")
        self.kind, self.base = kind, float(base)
        self.steps_per_epoch, self.max_epochs = int(steps_per_epoch), int(max_epochs)
        self.step_factor, self.step_epochs = float(step_factor), step_epochs
        self.cycle_epochs, self.peak_at = cycle_epochs, float(peak_at)
        self.horizon = keras.Variable(float(self.max_epochs), dtype="float32", trainable=False,
                                      name="schedule_horizon")

    def set_horizon(self, epochs: int) -> None:
        """End the schedule at ``epochs`` (a budgeted run's fit to its time left)."""
        self.max_epochs = int(epochs)
        self.horizon.assign(float(epochs))

    def __call__(self, step):
        e = ops.cast(step, "float32") / float(self.steps_per_epoch)
        return BY_NAME[self.kind](e, self.base, ops.cast(self.horizon, "float32"),
                                  step_factor=self.step_factor, step_epochs=self.step_epochs,
                                  cycle_epochs=self.cycle_epochs, peak_at=self.peak_at)

    def get_config(self):
        return {"kind": self.kind, "base": self.base, "steps_per_epoch": self.steps_per_epoch,
                "max_epochs": self.max_epochs, "step_factor": self.step_factor,
                "step_epochs": self.step_epochs, "cycle_epochs": self.cycle_epochs,
                "peak_at": self.peak_at}


def learning_rate_schedule(hp: Mapping[str, Any], steps_per_epoch: int):
    """The rate for ``hp`` (resolved training knobs): an ``EpochSchedule``, or a float for the
    constant and plateau schedules."""
    if hp["schedule"] in ("constant", "plateau"):
        return hp["learning_rate"]
    return EpochSchedule(hp["schedule"], hp["learning_rate"], steps_per_epoch, hp["max_epochs"],
                         hp["step_factor"], hp["step_epochs"], hp["cycle_epochs"], hp["peak_at"])


def optimizer(hp: Mapping[str, Any], lr):
    """The optimizer ``hp`` names (adam, adamw or sgd) with rate ``lr`` and its weight decay."""
    wd = hp["weight_decay"] or None
    if hp["optimizer"] == "sgd":
        return keras.optimizers.SGD(lr, momentum=hp["momentum"], nesterov=hp["nesterov"],
                                    weight_decay=wd)
    if hp["optimizer"] == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=hp["weight_decay"])
    return keras.optimizers.Adam(lr, weight_decay=wd)
