"""One training run: compile, fit with the run's callbacks, and the result."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import models
from fmnist.errors import ConfigError
from fmnist.runtime import keras, tf
from fmnist.train import augment, schedules, state
from fmnist.train.callbacks import EMAWeights, EpochEnd, EpochRecorder, Stopped, StopWhenAsked
from fmnist.train.knobs import split_hp
from fmnist.train.swa import SWA

# images per execution when a caller polls for a stop: one execution is the longest stretch
# between two polls, which must end well within the wait sweeps/trial.py gives Tune (120 s)
STOP_POLL_IMAGES = 2048


@dataclass
class TrainResult:
    """What ``train`` returns. ``history`` has one dict per epoch (see ``EpochRecorder``)."""

    model: Any
    history: list[dict[str, float]]
    # "max_epochs", "early_stop", "external", "diverged" (a NaN/inf loss) or "not_trained"
    # (``on_built`` refused the model)
    stop_reason: str
    seconds: float
    params: int
    hp: dict[str, Any]  # training knobs as resolved
    model_hp: dict[str, Any]  # the family's hyperparameters as resolved (empty for a Model)
    best_epoch: int
    swa_snapshots: list[list[np.ndarray]] = field(default_factory=list, repr=False)
    # val/loss and val/acc of the returned model where an epoch's validation already measured
    # them (its best epoch's weights, or the last epoch's); None after SWA's averaging or a
    # mid-epoch stop, whose weights were never validated
    final_val: dict[str, float] | None = None
    resumed_from: int = 0  # the epoch of the ``resume_from`` state it went on after; 0: none
    # the epoch its schedule ended at: hp's max_epochs, or fewer where ``finish_by`` moved it
    max_epochs: int = 0

    @property
    def epochs(self) -> int:
        return len(self.history)

    def summary(self) -> dict[str, float]:
        best = self.history[self.best_epoch - 1]
        return {"epochs": self.epochs, "best_epoch": self.best_epoch,
                "val/acc_best": best["val/acc_best"], "train_s": round(self.seconds, 3),
                "params": self.params}


def configure_runtime(hp: Mapping[str, Any]) -> None:
    """Seed Python, NumPy and the backend; op determinism and thread pools as ``hp`` asks.
    Thread counts take effect only before TensorFlow's first operation in the process (a fresh
    Ray worker, a CLI run); otherwise a ``RuntimeWarning`` says they were not applied."""
    keras.utils.set_random_seed(hp["seed"])
    if hp["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    for want, setter, getter in (
        (hp["threads"], tf.config.threading.set_intra_op_parallelism_threads,
         tf.config.threading.get_intra_op_parallelism_threads),
        (hp["inter_threads"], tf.config.threading.set_inter_op_parallelism_threads,
         tf.config.threading.get_inter_op_parallelism_threads),
    ):
        if want and getter() != want:
            try:
                setter(want)
            except RuntimeError:
                warnings.warn(f"TensorFlow is already running; thread count {want} not applied.",
                              RuntimeWarning, stacklevel=2)


# The order Keras calls a run's callbacks in, each after those it depends on: the recorder
# first (every later one reads the epoch's metrics it keeps); TerminateOnNaN (a NaN/inf loss ends
# the run at that batch: "diverged"); a caller's stop; early stopping and the plateau schedule;
# SWA; the EMA after early stopping (which keeps the average as an epoch's weights); ``end``
# last (``EpochEnd``: early stopping and the plateau schedule have seen the epoch before it is
# handed on, and its state saved).
CALLBACK_ORDER = ("flip", "recorder", "nan", "stop", "early_stopping", "plateau", "swa", "ema",
                  "end")


def in_order(callbacks: Mapping[str, Any]) -> list[Any]:
    """The run's callbacks (``CALLBACK_ORDER``'s names; None: not in this run) in that order."""
    unknown = set(callbacks) - set(CALLBACK_ORDER)
    if unknown:
        raise ValueError(f"callbacks {sorted(unknown)} have no place in CALLBACK_ORDER")
    return [callbacks[k] for k in CALLBACK_ORDER if callbacks.get(k) is not None]


def _loss_and_metric(label_smoothing: float):
    if label_smoothing > 0:  # Keras smooths only one-hot labels
        return (keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                keras.metrics.CategoricalAccuracy(name="accuracy"))
    return (keras.losses.SparseCategoricalCrossentropy(),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"))


def train(
    model_or_family: Any,
    split: Any,
    hp: Mapping[str, Any] | None = None,
    *,
    preset: str | None = None,
    on_epoch: Callable[[dict[str, Any]], bool | None] | None = None,
    on_built: Callable[[Any], bool | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    epoch_state: bool = False,
    resume_from: str | Path | None = None,
    finish_by: float | None = None,
    fill: Callable[[int], int] | None = None,
    verbose: int = 0,
) -> TrainResult:
    """Train a model on ``split.x_train`` and select on ``split.x_val``; never touches the test
    images.

    Args:
        model_or_family: a ``keras.Model``, or a family name built with ``hp`` and ``preset``.
        split: an object with uint8 ``x_train``/``x_val`` (N, 28, 28) and label arrays
            ``y_train``/``y_val`` (``fmnist.data.Split``).
        hp: training knobs (``knobs.HYPERPARAMETERS``) and the family's hyperparameters.
        on_epoch: sees each epoch's metrics; a true return stops training ("external").
        on_built: sees the model built (and seeded), before it is compiled: a true return
            ends the run there, untrained ("not_trained", no history). Where a sweep measures
            its costs (``fmnist.costs``).
        should_stop: polled before every execution of the compiled training or validation step
            (at most ``STOP_POLL_IMAGES`` images apart unless ``steps_per_execution`` is set);
            once true, training ends at once, mid-epoch and without validating ("external").
        epoch_state: hand ``on_epoch`` each epoch's state folder under ``state.STATE_KEY``
            (every epoch but the last; not with SWA, whose snapshots are not saved).
        resume_from: such a folder; training goes on from the epoch after it, with the same
            ``hp`` (with SWA it starts over).
        finish_by: a ``time.time()`` to end by: after each epoch, the run's last epoch (and
            its schedule's) moves to the epochs that end by then at the run's pace,
            never past ``max_epochs`` (``callbacks.EpochEnd``); ``TrainResult.max_epochs``
            says where it ended.
        fill: with ``finish_by``, after the second epoch: the epochs to train of those that end
            by then at its pace (a trial that may fill a budget takes a part of them), never
            past ``max_epochs`` (``callbacks.EpochEnd``).

    Returns:
        A ``TrainResult``: the model holds early stopping's best weights (or SWA's mean).

    Raises:
        ConfigError: an unknown knob, a value outside its declaration, or a batch larger than
            the training images.
    """
    family = model_or_family if isinstance(model_or_family, str) else None
    thp, model_hp = split_hp(family, hp, preset)
    n_train = len(split.y_train)
    if thp["batch_size"] > n_train:
        raise ConfigError(f"train: `batch_size <= training images` must hold, but got "
                          f"batch_size={thp['batch_size']} for {n_train} images.")
    configure_runtime(thp)

    model = models.build(family, model_hp) if family else model_or_family
    if on_built is not None and on_built(model):
        return TrainResult(model=model, history=[], stop_reason="not_trained", seconds=0.0,
                           params=model.count_params(), hp=thp, model_hp=model_hp,
                           best_epoch=0, max_epochs=thp["max_epochs"])
    steps = math.ceil(n_train / thp["batch_size"])
    # several steps per call into the compiled function keep a small model from being bound
    # by per-step overhead
    spe = thp["steps_per_execution"] or min(32, steps)
    if should_stop is not None and not thp["steps_per_execution"]:
        spe = max(1, min(spe, STOP_POLL_IMAGES // thp["batch_size"]))
    smooth = thp["label_smoothing"] > 0
    loss, acc = _loss_and_metric(thp["label_smoothing"])
    lr = schedules.learning_rate_schedule(thp, steps)
    model.compile(optimizer=schedules.optimizer(thp, lr),
                  loss=loss, metrics=[acc], steps_per_execution=spe, jit_compile=False)

    seed = thp["seed"]
    alternate = (augment.AlternateFlip(n_train, seed)
                 if thp["flip"] and thp["flip_alternate"] else None)
    train_ds = augment.dataset(split.x_train, split.y_train, thp["batch_size"], thp["shuffle"],
                               seed, augment.augmenter(thp, seed, alternate), smooth,
                               indexed=alternate is not None)
    val_ds = augment.dataset(split.x_val, split.y_val, max(thp["batch_size"], 512), False, seed,
                             None, smooth)

    recorder = EpochRecorder(n_train)
    stopper = plateau = None
    if thp["early_stopping"]:
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=thp["patience"], mode="min",
            restore_best_weights=not thp["swa_epochs"])
    if thp["schedule"] == "plateau":
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=thp["step_factor"], patience=thp["plateau_patience"])
    swa = SWA(thp["swa_epochs"], split.x_train, thp["batch_size"]) if thp["swa_epochs"] else None
    resume = None
    if resume_from is not None and not thp["swa_epochs"]:
        resume = state.load(model, Path(resume_from))
        recorder.history = list(resume["history"])
    ema = (EMAWeights(thp["ema"], stopper if not thp["swa_epochs"] else None, resume)
           if thp["ema"] else None)
    end = EpochEnd(recorder, on_epoch, thp["max_epochs"], stopper, plateau,
                   save_state=epoch_state and not thp["swa_epochs"], resume=resume, ema=ema,
                   finish_by=finish_by, schedule=lr, fill=fill)
    callbacks = in_order({
        "flip": alternate, "recorder": recorder,
        "nan": keras.callbacks.TerminateOnNaN(),
        "stop": StopWhenAsked(should_stop) if should_stop is not None else None,
        "early_stopping": stopper, "plateau": plateau, "swa": swa, "ema": ema, "end": end})
    initial_epoch = resume["epoch"] if resume else 0

    t0 = time.perf_counter()
    interrupted = False
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=thp["max_epochs"],
                  initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                  shuffle=False)  # the dataset shuffles itself, seeded
    except Stopped:
        recorder.external = interrupted = True
        swa = None  # an interrupted run has no final averaging
    seconds = time.perf_counter() - t0

    hist = recorder.history
    if hist and not math.isfinite(hist[-1].get("train/loss", 0.0)):
        reason = "diverged"
    elif recorder.external:
        reason = "external"
    elif stopper is not None and stopper.stopped_epoch > 0:
        reason = "early_stop"
    else:
        reason = "max_epochs"
    if stopper is not None and not swa and hist and stopper.best_weights is not None:
        best_epoch = 1 + stopper.best_epoch  # the epoch whose weights it restored
    else:
        best_epoch = len(hist)
    final_val = None
    if hist and not interrupted and not swa:
        final_val = {k: hist[best_epoch - 1][k] for k in ("val/loss", "val/acc")}
    return TrainResult(model=model, history=hist, stop_reason=reason, seconds=seconds,
                       params=model.count_params(), hp=thp, model_hp=model_hp,
                       best_epoch=best_epoch, swa_snapshots=list(swa.snapshots) if swa else [],
                       final_val=final_val, resumed_from=initial_epoch,
                       max_epochs=end.max_epochs)
