"""The Keras callbacks of a training run: per-epoch metrics with the project's names, the
hand-off of each epoch (with its saved state) to the caller, and a stop on request."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fmnist.runtime import keras
from fmnist.train import state

ops = keras.ops


class EpochRecorder(keras.callbacks.Callback):
    """Appends each epoch's metrics to ``history``: epoch, train/loss, train/acc, val/loss,
    val/acc, val/acc_best, epoch_s, images_per_s (training images over training time, without
    validation) and lr (the epoch's rate). Put it first, before a callback that changes the rate.

    ``external`` is set when the caller stopped the run.
    """

    def __init__(self, n_train: int):
        super().__init__()
        self.n_train = n_train
        self.history: list[dict[str, float]] = []
        self.external = False
        self._t0 = self._t_train = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._t_train = 0.0

    def on_test_begin(self, logs=None):
        if not self._t_train:
            self._t_train = time.perf_counter() - self._t0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        epoch_s = time.perf_counter() - self._t0
        train_s = self._t_train or epoch_s
        m = {
            "epoch": epoch + 1,
            "train/loss": float(logs["loss"]),
            "train/acc": float(logs["accuracy"]),
            "val/loss": float(logs["val_loss"]),
            "val/acc": float(logs["val_accuracy"]),
            "epoch_s": epoch_s,
            "images_per_s": self.n_train / train_s,
            "lr": float(ops.convert_to_numpy(self.model.optimizer.learning_rate)),
        }
        m["val/acc_best"] = max([m["val/acc"], *(h["val/acc"] for h in self.history)])
        self.history.append(m)


def fitting_epochs(done: int, epoch_s: float, left_s: float, max_epochs: int) -> int:
    """The last epoch of a run that has trained ``done`` epochs, the latest in ``epoch_s``
    seconds, with ``left_s`` seconds left: as many more as end within them at that pace, never
    past ``max_epochs``, never before ``done``."""
    more = math.floor(left_s / epoch_s) if epoch_s > 0 else max_epochs
    return max(done, min(max_epochs, done + more))


class EpochEnd(keras.callbacks.Callback):
    """Last of the callbacks. Hands each epoch's metrics to ``on_epoch``, with the run's last
    epoch as ``m["max_epochs"]``; a true return stops training (and sets ``recorder.external``).

    With ``finish_by`` (a ``time.time()``), the run's last epoch moves after every epoch to the
    epochs that end by then at the run's pace (``_pace``, ``fitting_epochs``), never past
    ``max_epochs``, and so does the ``schedule``'s (``EpochSchedule.set_horizon``): a run given
    less time than its epochs need anneals its rate within that time instead of being cut off
    at a high one (budgeted training). The run stops, complete, at that epoch. With ``fill``
    as well, at the second epoch's end (the first traces the compiled step) the run's limit
    becomes ``fill(epochs the time holds)``
    (no more than ``max_epochs``): a run given a whole budget takes as many epochs of it as
    ``fill`` says, and fits them to the time from then on.

    With ``save_state``, every epoch but the last is handed on with ``m[state.STATE_KEY]``: a
    temporary folder holding the state after it (``state.write``), removed once ``on_epoch``
    returns. With ``resume`` (``state.load``'s result), early stopping's and the plateau
    schedule's counters are put back after their own ``on_train_begin`` has reset them.
    """

    def __init__(self, recorder: EpochRecorder, on_epoch, max_epochs: int, stopper=None,
                 plateau=None, save_state: bool = False, resume: dict[str, Any] | None = None,
                 ema: EMAWeights | None = None, finish_by: float | None = None, schedule=None,
                 fill=None):
        super().__init__()
        self.fill = fill
        self.ema = ema
        self.recorder, self.on_epoch, self.max_epochs = recorder, on_epoch, max_epochs
        self.limit, self.finish_by, self.schedule = max_epochs, finish_by, schedule
        self.stopper, self.plateau = stopper, plateau
        self.save_state, self.resume = save_state, resume

    def on_train_begin(self, logs=None):
        if self.resume is not None:
            state.restore(self.resume, self.stopper, self.plateau)

    def on_epoch_end(self, epoch, logs=None):
        m = dict(self.recorder.history[-1])
        if self.finish_by is not None:
            self._fit_the_time(epoch + 1, self._pace())
        m["max_epochs"] = self.max_epochs
        if not self.save_state or epoch + 1 >= self.max_epochs or self.model.stop_training:
            self._hand_on(m)  # no state, or training ends here: none to go on from
            return
        with tempfile.TemporaryDirectory(prefix="fmnist-state-") as tmp:
            state.write(Path(tmp), self.model, epoch + 1, self.recorder.history,
                        self.stopper, self.plateau, self.ema)
            self._hand_on({**m, state.STATE_KEY: tmp})

    def _pace(self) -> float:
        """Seconds an epoch: the median of the run's epochs after its first (which traces the
        compiled step), so one slow or fast epoch does not move the run's end."""
        times = [h["epoch_s"] for h in self.recorder.history]
        return float(np.median(times[1:] if len(times) > 1 else times))

    def _fit_the_time(self, done: int, epoch_s: float) -> None:
        last = fitting_epochs(done, epoch_s, self.finish_by - time.time(), self.limit)
        if self.fill is not None and len(self.recorder.history) >= 2:  # once, at the pace
            part = self.fill(last)  # after the first epoch (which traces): a part of the time
            if part < last:  # (all of it: fitted to it as before)
                self.limit = last = max(done, part)
            self.fill = None
        if last != self.max_epochs and hasattr(self.schedule, "set_horizon"):
            self.schedule.set_horizon(last)
        self.max_epochs = last
        if done >= last:
            self.model.stop_training = True

    def _hand_on(self, m: dict[str, Any]) -> None:
        if self.on_epoch is not None and self.on_epoch(m):
            self.recorder.external = True
            self.model.stop_training = True


class EMAWeights(keras.callbacks.Callback):
    """An exponential moving average of all the model's weights (batch-norm statistics
    included), which validates each epoch and is the model training returns.

    Updated after every execution of the compiled step (``steps_per_execution`` steps), by
    ``decay`` per step, warmed up as timm's ``ModelEmaV3`` (at most (1 + n) / (10 + n) after n
    updates). Before each validation the average goes into the model and stays through the
    epoch-end callbacks before this one (early stopping keeps it as the epoch's weights); this
    one puts the raw weights back, so training and a saved state go on from them. At the end
    the model holds the average, or the best epoch's that ``stopper`` restored.

    ``weights`` and ``updates`` are the average's state (``state.write`` saves them).
    """

    def __init__(self, decay: float, stopper=None, resume: dict[str, Any] | None = None):
        super().__init__()
        self.decay, self.stopper = decay, stopper
        self.weights = resume["ema_weights"] if resume else None
        self.updates = resume.get("ema_updates", 0) if resume else 0
        self._raw = None
        self._last_batch = -1

    def on_train_begin(self, logs=None):
        if self.weights is None:
            self.weights = [np.array(w) for w in self.model.get_weights()]

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = -1

    def on_train_batch_end(self, batch, logs=None):
        steps, self._last_batch = batch - self._last_batch, batch
        d = min(self.decay ** max(steps, 1), (1 + self.updates) / (10 + self.updates))
        for avg, w in zip(self.weights, self.model.get_weights(), strict=True):
            avg *= d
            avg += (1 - d) * w
        self.updates += 1

    def on_test_begin(self, logs=None):
        if self._raw is None:
            self._raw = self.model.get_weights()
            self.model.set_weights(self.weights)

    def on_epoch_end(self, epoch, logs=None):
        if self._raw is not None:
            self.model.set_weights(self._raw)
            self._raw = None

    def on_train_end(self, logs=None):
        if not (self.stopper is not None and self.stopper.best_weights is not None):
            self.model.set_weights(self.weights)


class Stopped(Exception):
    """Raised by ``StopWhenAsked`` out of ``fit``; the loop catches it."""


class StopWhenAsked(keras.callbacks.Callback):
    """Raises ``Stopped`` before a training or validation step once ``should_stop()`` is true.
    On batch *begin*, so Keras keeps dispatching batch ends asynchronously."""

    def __init__(self, should_stop: Callable[[], bool]):
        super().__init__()
        self.should_stop = should_stop

    def on_train_batch_begin(self, batch, logs=None):
        if self.should_stop():
            raise Stopped

    on_test_batch_begin = on_train_batch_begin
