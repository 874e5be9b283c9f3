"""One training run: the write-ups' recipes as declared knobs, metrics epoch by epoch.

Example::

    from fmnist import data, train
    split = data.load_split(subset=6000)
    result = train.train("lenet5", split, {"max_epochs": 2, "learning_rate": 1e-3})
    result.history[-1]["val/acc"], result.stop_reason

Modules: ``knobs`` (the declared training knobs), ``schedules`` (learning rates, the optimizer),
``augment`` (augmentation, tf.data), ``callbacks``, ``state`` (an epoch's saved state), ``swa``
(weight averaging) and ``loop`` (``train`` itself).

The names below come in on first use (PEP 562): ``fmnist.train.HYPERPARAMETERS``, ``split_hp``
and ``from fmnist.train import knobs`` read the declared knobs without TensorFlow, which comes
in with ``train``, ``TrainResult`` and the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fmnist.train.knobs import HYPERPARAMETERS, SCHEDULES, split_hp
    from fmnist.train.loop import STOP_POLL_IMAGES, TrainResult, configure_runtime, train
    from fmnist.train.schedules import EpochSchedule, learning_rate_schedule
    from fmnist.train.state import STATE_KEY
    from fmnist.train.swa import update_batch_norm

__all__ = ["HYPERPARAMETERS", "SCHEDULES", "STATE_KEY", "STOP_POLL_IMAGES", "EpochSchedule",
           "TrainResult", "configure_runtime", "learning_rate_schedule", "split_hp", "train",
           "update_batch_norm"]

# public name -> the module of this package that defines it
_LAZY = {"HYPERPARAMETERS": "knobs", "SCHEDULES": "knobs", "split_hp": "knobs",
         "STOP_POLL_IMAGES": "loop", "TrainResult": "loop", "configure_runtime": "loop",
         "train": "loop", "EpochSchedule": "schedules", "learning_rate_schedule": "schedules",
         "STATE_KEY": "state", "update_batch_norm": "swa"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
