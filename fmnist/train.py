"""One training run: the write-ups' recipes as declared knobs, metrics epoch by epoch.

Example::

    from fmnist import data, train
    split = data.load_split(subset=6000)
    result = train.train("lenet5", split, {"max_epochs": 2, "learning_rate": 1e-3})
    result.history[-1]["val/acc"], result.stop_reason

``hp`` mixes the family's hyperparameters (see ``fmnist.models``) and the training knobs of
``HYPERPARAMETERS`` below; every value is checked against its declaration. ``on_epoch`` sees each
epoch's metrics as they come and may return True to stop training (stop reason "external").
With ``epoch_state=True`` it also gets, under ``STATE_KEY``, a folder holding the training state
after that epoch, from which ``train(..., resume_from=folder)`` goes on where it was.

The data stays in memory as uint8; the model scales its own pixels. Keras runs
``steps_per_execution`` steps per call into the compiled training function, which is what keeps a
small model from being bound by per-step overhead.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import compat, models
from fmnist.errors import ConfigError
from fmnist.hparams import HP, did_you_mean
from fmnist.runtime import keras, tf

ops = keras.ops

SCHEDULES = ("constant", "step", "cosine", "onecycle", "cyclic", "plateau")

HYPERPARAMETERS: dict[str, HP] = {h.name: h for h in [
    HP("optimizer", "choice", "adam", choices=("adam", "adamw", "sgd")),
    HP("learning_rate", "float", 1e-3, 1e-7, 10.0, help="peak learning rate"),
    HP("momentum", "float", 0.9, 0.0, 0.999, help="SGD momentum"),
    HP("nesterov", "bool", True, help="SGD with Nesterov momentum"),
    HP("weight_decay", "float", 0.0, 0.0, 1.0),
    HP("label_smoothing", "float", 0.0, 0.0, 0.5),
    HP("schedule", "choice", "constant", choices=SCHEDULES),
    HP("step_epochs", "int", 10, 1, 10_000, help="step: epochs between drops"),
    HP("step_factor", "float", 0.1, 1e-4, 1.0, help="step and plateau: factor of each drop"),
    HP("cycle_epochs", "int", 4, 1, 10_000, help="cyclic: epochs per triangle"),
    HP("plateau_patience", "int", 3, 0, 10_000, help="plateau: epochs without improvement"),
    HP("batch_size", "int", 64, 1, 1 << 20, help="000: 64"),
    HP("shuffle", "bool", True, help="reshuffle the training images every epoch"),
    HP("early_stopping", "bool", True, help="stop on val/loss and restore the best weights"),
    HP("patience", "int", 10, 0, 10_000, help="early stopping: epochs without improvement"),
    HP("max_epochs", "int", 20, 1, 100_000),
    HP("flip", "float", 0.0, 0.0, 1.0, help="probability of a horizontal flip"),
    HP("zoom", "float", 0.0, 0.0, 0.5, help="random zoom range (fraction)"),
    HP("translate", "float", 0.0, 0.0, 0.5, help="random translation range (fraction)"),
    HP("erase", "float", 0.0, 0.0, 1.0, help="probability of random erasing"),
    HP("swa_epochs", "int", 0, 0, 10_000, help="average the weights of the last N epochs"),
    HP("seed", "int", 0, 0, 2**31 - 1),
    HP("deterministic", "bool", False, help="TensorFlow op determinism (slower)"),
    HP("threads", "int", 0, 0, 1024, help="intra-op threads (0: TensorFlow's choice)"),
    HP("inter_threads", "int", 0, 0, 1024, help="inter-op threads (0: TensorFlow's choice)"),
    HP("steps_per_execution", "int", 0, 0, 4096, help="0: min(32, steps per epoch)"),
]}


@dataclass
class TrainResult:
    model: Any
    history: list[dict[str, float]]
    stop_reason: str  # "max_epochs", "early_stop" or "external"
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

    @property
    def epochs(self) -> int:
        return len(self.history)

    def summary(self) -> dict[str, float]:
        best = self.history[self.best_epoch - 1]
        return {"epochs": self.epochs, "best_epoch": self.best_epoch,
                "val/acc_best": best["val/acc_best"], "train_s": round(self.seconds, 3),
                "params": self.params}


def split_hp(family: str | None, hp: Mapping[str, Any] | None,
             preset: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resolve ``hp`` into (training knobs, the family's hyperparameters), each checked."""
    hp = dict(hp or {})
    family_hps = models.hyperparameters(family) if family else {}
    clash = set(family_hps) & set(HYPERPARAMETERS)
    if clash:  # a family must not shadow a training knob
        raise ValueError(f"{family}: hyperparameters {sorted(clash)} clash with training knobs.")
    train_part = {k: v for k, v in hp.items() if k in HYPERPARAMETERS}
    model_part = {k: v for k, v in hp.items() if k in family_hps}
    for key in hp.keys() - train_part.keys() - model_part.keys():
        known = [*HYPERPARAMETERS, *family_hps]
        raise ConfigError(f"{family or 'train'}: unknown hyperparameter `{key}`"
                         f"{did_you_mean(key, known)}; training knobs: "
                         f"{', '.join(HYPERPARAMETERS)}; {family or 'the model'}'s: "
                         f"{', '.join(family_hps) or '-'}.")
    resolved = {k: h.default for k, h in HYPERPARAMETERS.items()}
    for k, v in train_part.items():
        resolved[k] = HYPERPARAMETERS[k].check("train", v)
    model_resolved = models.resolve(family, model_part, preset) if family else {}
    return resolved, model_resolved


def configure_runtime(hp: Mapping[str, Any]) -> None:
    """Seeds (Python, NumPy, backend), determinism and thread pools. Thread counts only take
    effect before TensorFlow's first operation in the process (a fresh Ray worker, a CLI run)."""
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


@keras.saving.register_keras_serializable(package="fmnist")
class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate as a function of the epoch (step / steps_per_epoch). Registered and
    fully described by its config, so a saved model (a trial's checkpoint, the logged model)
    loads back with its optimizer."""

    def __init__(self, kind, base, steps_per_epoch, max_epochs, step_factor=0.1,
                 step_epochs=10, cycle_epochs=4):
        self.kind, self.base = kind, float(base)
        self.steps_per_epoch, self.max_epochs = int(steps_per_epoch), int(max_epochs)
        self.step_factor, self.step_epochs = float(step_factor), step_epochs
        self.cycle_epochs = cycle_epochs

    def __call__(self, step):
        base, kind = self.base, self.kind
        e = ops.cast(step, "float32") / float(self.steps_per_epoch)
        total = float(self.max_epochs)
        if kind == "step":
            return base * self.step_factor ** ops.floor(e / self.step_epochs)
        if kind == "cosine":
            return base * 0.5 * (1.0 + ops.cos(math.pi * ops.minimum(e / total, 1.0)))
        if kind == "onecycle":  # linear warm-up over 30% from base/25, then cosine to base/1e4
            warm, low, end = 0.3 * total, base / 25.0, base / 1e4
            up = low + (base - low) * e / warm
            frac = ops.minimum((e - warm) / (total - warm), 1.0)
            down = end + (base - end) * 0.5 * (1.0 + ops.cos(math.pi * frac))
            return ops.where(e < warm, up, down)
        # cyclic: triangles between base/10 and base, `cycle_epochs` long
        pos = e / self.cycle_epochs - ops.floor(e / self.cycle_epochs)
        return base / 10.0 + (base - base / 10.0) * (1.0 - ops.abs(2.0 * pos - 1.0))

    def get_config(self):
        return {"kind": self.kind, "base": self.base, "steps_per_epoch": self.steps_per_epoch,
                "max_epochs": self.max_epochs, "step_factor": self.step_factor,
                "step_epochs": self.step_epochs, "cycle_epochs": self.cycle_epochs}


def learning_rate_schedule(hp: Mapping[str, Any], steps_per_epoch: int):
    """The learning rate as a Keras schedule of the step, or a float (constant, plateau)."""
    if hp["schedule"] in ("constant", "plateau"):
        return hp["learning_rate"]
    return EpochSchedule(hp["schedule"], hp["learning_rate"], steps_per_epoch, hp["max_epochs"],
                         hp["step_factor"], hp["step_epochs"], hp["cycle_epochs"])


def _optimizer(hp: Mapping[str, Any], lr):
    wd = hp["weight_decay"] or None
    if hp["optimizer"] == "sgd":
        return keras.optimizers.SGD(lr, momentum=hp["momentum"], nesterov=hp["nesterov"],
                                    weight_decay=wd)
    if hp["optimizer"] == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=hp["weight_decay"])
    return keras.optimizers.Adam(lr, weight_decay=wd)


def _augmenter(hp: Mapping[str, Any], seed: int):
    """A batched tf.data map: uint8 (B, 28, 28) -> float32 (B, 28, 28, 1), pixels 0..255."""
    if not any(hp[k] for k in ("flip", "zoom", "translate", "erase")):
        return None
    geometric = []
    if hp["zoom"]:
        geometric.append(keras.layers.RandomZoom(hp["zoom"], fill_mode="constant", seed=seed))
    if hp["translate"]:
        geometric.append(keras.layers.RandomTranslation(hp["translate"], hp["translate"],
                                                        fill_mode="constant", seed=seed + 1))

    def augment(x, y):
        x = tf.cast(x, tf.float32)[..., None]
        n = tf.shape(x)[0]
        if hp["flip"]:
            flip = tf.random.uniform((n, 1, 1, 1)) < hp["flip"]
            x = tf.where(flip, tf.reverse(x, axis=[2]), x)
        for layer in geometric:
            x = layer(x, training=True)
        if hp["erase"]:  # random erasing (Zhong et al. 2017): area 2-33%, aspect 0.3-3.3
            area = tf.random.uniform((n,), 0.02, 0.33) * 784.0
            aspect = tf.exp(tf.random.uniform((n,), math.log(0.3), math.log(1 / 0.3)))
            h = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1, 28)
            w = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1, 28)
            top = tf.floor(tf.random.uniform((n,)) * (29.0 - h))
            left = tf.floor(tf.random.uniform((n,)) * (29.0 - w))
            rows = tf.range(28.0)[None, :, None]
            cols = tf.range(28.0)[None, None, :]
            inside = ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
                      & (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None]))
            apply = (tf.random.uniform((n,)) < hp["erase"])[:, None, None]
            noise = tf.random.uniform(tf.shape(x)[:3], 0.0, 255.0)
            x = tf.where((inside & apply)[..., None], noise[..., None], x)
        return x, y

    return augment


def _dataset(x, y, batch_size: int, shuffle: bool, seed: int, augment=None, one_hot=False):
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    if one_hot:
        ds = ds.map(lambda a, b: (a, tf.one_hot(tf.cast(b, tf.int32), 10)))
    return ds.prefetch(tf.data.AUTOTUNE)


def train(
    model_or_family: Any,
    split: Any,
    hp: Mapping[str, Any] | None = None,
    *,
    preset: str | None = None,
    on_epoch: Callable[[dict[str, Any]], bool | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    epoch_state: bool = False,
    resume_from: str | Path | None = None,
    verbose: int = 0,
) -> TrainResult:
    """Train a model (a ``keras.Model``, or a family name built here with ``hp``) on
    ``split.x_train`` and select on ``split.x_val``; the test images are not touched.

    ``should_stop`` is polled before every call into the compiled training or validation
    function (every ``steps_per_execution`` steps, which it caps at ``STOP_POLL_IMAGES`` images
    unless set); once it returns True training ends at once, mid-epoch and without validating,
    with stop reason "external" and the epochs completed so far.

    ``epoch_state``: before ``on_epoch`` sees an epoch (the last one excepted), the training
    state is written to a temporary folder, passed as ``m[STATE_KEY]`` and removed once
    ``on_epoch`` returns: the model with its optimizer (``model.keras``: weights, moments and
    step, on which the learning-rate schedules run), the history, and the state of early
    stopping (with its best weights) and of the plateau schedule. ``resume_from``: such a
    folder; training goes on from the epoch after it, with the same ``hp``. Not with SWA
    (``swa_epochs``), whose snapshots are not saved: it starts over."""
    family = model_or_family if isinstance(model_or_family, str) else None
    thp, model_hp = split_hp(family, hp, preset)
    n_train = len(split.y_train)
    if thp["batch_size"] > n_train:
        raise ConfigError(f"train: `batch_size <= training images` must hold, but got "
                         f"batch_size={thp['batch_size']} for {n_train} images.")
    configure_runtime(thp)

    model = models.build(family, model_hp) if family else model_or_family
    steps = math.ceil(n_train / thp["batch_size"])
    spe = thp["steps_per_execution"] or min(32, steps)
    if should_stop is not None and not thp["steps_per_execution"]:
        # one execution is the longest stretch between two polls: keep it short enough that a
        # stopped trial ends well within Tune's wait for it (TUNE_FUNCTION_THREAD_TIMEOUT_S)
        spe = max(1, min(spe, STOP_POLL_IMAGES // thp["batch_size"]))
    smooth = thp["label_smoothing"] > 0
    if smooth:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=thp["label_smoothing"])
        acc = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        acc = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=_optimizer(thp, learning_rate_schedule(thp, steps)), loss=loss,
                  metrics=[acc], steps_per_execution=spe, jit_compile=False)

    seed = thp["seed"]
    train_ds = _dataset(split.x_train, split.y_train, thp["batch_size"], thp["shuffle"], seed,
                        _augmenter(thp, seed), smooth)
    val_ds = _dataset(split.x_val, split.y_val, max(thp["batch_size"], 512), False, seed,
                      None, smooth)

    recorder = _EpochRecorder(n_train)
    callbacks: list[Any] = [recorder]
    if should_stop is not None:
        callbacks.append(_StopWhenAsked(should_stop))
    stopper = plateau = None
    if thp["early_stopping"]:
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=thp["patience"], mode="min",
            restore_best_weights=not thp["swa_epochs"])
        callbacks.append(stopper)
    if thp["schedule"] == "plateau":
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=thp["step_factor"], patience=thp["plateau_patience"])
        callbacks.append(plateau)
    swa = (_SWA(thp["swa_epochs"], split.x_train, thp["batch_size"]) if thp["swa_epochs"]
           else None)
    if swa:
        callbacks.append(swa)
    resume = None
    if resume_from is not None and not thp["swa_epochs"]:
        resume = _load_state(model, Path(resume_from))
        recorder.history = list(resume["history"])
    # last: early stopping and the plateau schedule have seen the epoch before it is handed on
    callbacks.append(_EpochEnd(recorder, on_epoch, thp["max_epochs"], stopper, plateau,
                               save_state=epoch_state and not thp["swa_epochs"], resume=resume))
    initial_epoch = resume["epoch"] if resume else 0

    t0 = time.perf_counter()
    interrupted = False
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=thp["max_epochs"],
                  initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                  shuffle=False)  # the dataset shuffles itself, seeded
    except _Stopped:
        recorder.external = interrupted = True
        swa = None  # an interrupted run has no final averaging
    seconds = time.perf_counter() - t0

    if recorder.external:
        reason = "external"
    elif stopper is not None and stopper.stopped_epoch > 0:
        reason = "early_stop"
    else:
        reason = "max_epochs"
    hist = recorder.history
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
                       final_val=final_val, resumed_from=initial_epoch)


def _keras_callback():
    return keras.callbacks.Callback


class _EpochRecorder(_keras_callback()):  # type: ignore[misc]
    """Per-epoch metrics with the project's names (first of the callbacks: the learning rate
    is the epoch's, before a plateau schedule changes it)."""

    def __init__(self, n_train: int):
        super().__init__()
        self.n_train = n_train
        self.history: list[dict[str, float]] = []
        self.external = False  # set by _EpochEnd when on_epoch asked to stop
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
        lr = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
        m = {
            "epoch": epoch + 1,
            "train/loss": float(logs["loss"]),
            "train/acc": float(logs["accuracy"]),
            "val/loss": float(logs["val_loss"]),
            "val/acc": float(logs["val_accuracy"]),
            "epoch_s": epoch_s,
            "images_per_s": self.n_train / train_s,
            "lr": lr,
        }
        m["val/acc_best"] = max([m["val/acc"], *(h["val/acc"] for h in self.history)])
        self.history.append(m)


# the key of an epoch's metrics under which ``on_epoch`` finds the training state's folder
STATE_KEY = "state_dir"


class _EpochEnd(keras.callbacks.Callback):
    """Last of the callbacks. Hands each epoch's metrics to ``on_epoch``, which may ask training
    to stop; with ``save_state``, after writing the training state (see ``train``'s
    ``epoch_state``) for every epoch but the last. With a ``resume`` state (``_load_state``), it
    puts back early stopping's and the plateau schedule's state after their own
    ``on_train_begin`` has reset it."""

    def __init__(self, recorder: _EpochRecorder, on_epoch, max_epochs: int, stopper, plateau,
                 save_state: bool, resume: dict[str, Any] | None):
        super().__init__()
        self.recorder, self.on_epoch, self.max_epochs = recorder, on_epoch, max_epochs
        self.stopper, self.plateau = stopper, plateau
        self.save_state, self.resume = save_state, resume

    def _kept(self):
        """(key in state.json, callback, {attribute training goes on from: its JSON type})."""
        return [(key, cb, attrs) for key, cb, attrs in (
            ("early_stopping", self.stopper, {"best": float, "wait": int, "best_epoch": int}),
            ("plateau", self.plateau, {"best": float, "wait": int, "cooldown_counter": int}))
            if cb is not None]

    def on_train_begin(self, logs=None):
        if self.resume is None:
            return
        for key, cb, _ in self._kept():
            for attr, value in self.resume.get(key, {}).items():
                setattr(cb, attr, value)
        if self.stopper is not None and self.resume.get("early_stopping"):
            self.stopper.best_weights = self.resume["best_weights"]

    def on_epoch_end(self, epoch, logs=None):
        m = dict(self.recorder.history[-1])
        if not self.save_state or epoch + 1 >= self.max_epochs or self.model.stop_training:
            self._hand_on(m)  # no state, or training ends here: none to go on from
            return
        with tempfile.TemporaryDirectory(prefix="fmnist-state-") as tmp:
            self._write_state(Path(tmp), epoch + 1)
            self._hand_on({**m, STATE_KEY: tmp})

    def _hand_on(self, m: dict[str, Any]) -> None:
        if self.on_epoch is not None and self.on_epoch(m):
            self.recorder.external = True
            self.model.stop_training = True

    def _write_state(self, folder: Path, epoch: int) -> None:
        self.model.save(folder / "model.keras")  # weights, and the optimizer's variables
        state: dict[str, Any] = {"epoch": epoch, "history": self.recorder.history}
        for key, cb, attrs in self._kept():
            values = {a: getattr(cb, a) for a in attrs}
            state[key] = {a: None if v is None else attrs[a](v) for a, v in values.items()}
        if self.stopper is not None and self.stopper.best_weights is not None:
            np.savez(folder / "best_weights.npz", *self.stopper.best_weights)
        (folder / "state.json").write_text(json.dumps(state))


def _load_state(model, folder: Path) -> dict[str, Any]:
    """Load into ``model`` a state ``_EpochEnd`` wrote; returns the rest of it (epoch, history,
    the callbacks' state and early stopping's best weights)."""
    state = json.loads((folder / "state.json").read_text())
    model.optimizer.build(model.trainable_variables)  # its variables exist to be loaded into
    model.load_weights(folder / "model.keras")
    state["best_weights"] = None
    if (folder / "best_weights.npz").exists():
        with np.load(folder / "best_weights.npz") as f:
            state["best_weights"] = [f[f"arr_{i}"] for i in range(len(f.files))]
    return state


# training images whose batch statistics set BatchNormalization's after weight averaging
SWA_BN_IMAGES = 8192

# images per execution when a caller polls for a stop: about 3 s of training for skipcnn on one
# core of this machine (700 images/s), well within the wait sweeps/trial.py gives Tune (120 s)
STOP_POLL_IMAGES = 2048


class _Stopped(Exception):
    pass


class _StopWhenAsked(keras.callbacks.Callback):
    """Ends ``fit`` between two executions when ``should_stop()`` says so. On batch *begin*, so
    Keras keeps dispatching batch ends asynchronously."""

    def __init__(self, should_stop: Callable[[], bool]):
        super().__init__()
        self.should_stop = should_stop

    def on_train_batch_begin(self, batch, logs=None):
        if self.should_stop():
            raise _Stopped

    on_test_batch_begin = on_train_batch_begin


class _SWA(keras.callbacks.Callback):
    """Stochastic weight averaging: keep the weights of the last N epochs, set their mean at the
    end, then recompute the BatchNormalization statistics for the averaged weights (as PyTorch's
    ``swa_utils.update_bn`` does): the mean of N epochs' running statistics does not describe
    the activations of the mean weights, and a model with it can score far below either epoch."""

    def __init__(self, n: int, x_train: np.ndarray, batch_size: int):
        super().__init__()
        self.snapshots: deque[list[np.ndarray]] = deque(maxlen=n)
        self.x_train, self.batch_size = x_train, batch_size

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots.append([np.array(w) for w in self.model.get_weights()])

    def on_train_end(self, logs=None):
        if self.snapshots:
            mean = [np.mean(ws, axis=0) for ws in zip(*self.snapshots, strict=True)]
            self.model.set_weights(mean)
            update_batch_norm(self.model, self.x_train, self.batch_size)


def update_batch_norm(model, x: np.ndarray, batch_size: int,
                      max_images: int = SWA_BN_IMAGES) -> None:
    """Set every BatchNormalization layer's moving statistics to the average of its batch
    statistics over (up to ``max_images`` of) ``x``, in forward passes in training mode."""
    bns = [la for la in compat.flatten_layers(model)
           if isinstance(la, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [la.momentum for la in bns]
    for la in bns:
        la.moving_mean.assign(ops.zeros_like(la.moving_mean))
        la.moving_variance.assign(ops.ones_like(la.moving_variance))
    try:
        for k, start in enumerate(range(0, min(len(x), max_images), batch_size)):
            for la in bns:  # momentum k / (k + 1): the running value is the mean of k + 1 batches
                la.momentum = k / (k + 1)
            model(x[start:start + batch_size], training=True)
    finally:
        for la, m in zip(bns, saved, strict=True):
            la.momentum = m
