"""One training run: the write-ups' recipes as declared knobs, metrics epoch by epoch.

Example::

    from fmnist import data, train
    split = data.load_split(subset=6000)
    result = train.train("lenet5", split, {"max_epochs": 2, "learning_rate": 1e-3})
    result.history[-1]["val/acc"], result.stop_reason

Modules: ``knobs`` (the declared training knobs), ``schedules`` (learning rates, the optimizer),
``augment`` (augmentation, tf.data), ``callbacks``, ``state`` (an epoch's saved state), ``swa``
(weight averaging) and ``loop`` (``train`` itself).
"""

from fmnist.train.knobs import HYPERPARAMETERS, SCHEDULES, split_hp
from fmnist.train.loop import STOP_POLL_IMAGES, TrainResult, configure_runtime, train
from fmnist.train.schedules import EpochSchedule, learning_rate_schedule
from fmnist.train.state import STATE_KEY
from fmnist.train.swa import update_batch_norm

__all__ = ["HYPERPARAMETERS", "SCHEDULES", "STATE_KEY", "STOP_POLL_IMAGES", "EpochSchedule",
           "TrainResult", "configure_runtime", "learning_rate_schedule", "split_hp", "train",
           "update_batch_norm"]
