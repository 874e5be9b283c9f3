"""The training knobs: each declared once (name, kind, default, range), checked the same way in
``fmnist-sweep train --set``, in a spec's ``space`` and in ``train.train``.

Example::

    from fmnist.train import knobs
    thp, model_hp = knobs.split_hp("lenet5", {"max_epochs": 3, "filters": 8})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fmnist import models
from fmnist.errors import ConfigError
from fmnist.hparams import HP, did_you_mean

SCHEDULES = ("constant", "step", "cosine", "onecycle", "cyclic", "triangle", "plateau")
TTA_MODES = ("none", "flip", "flip_shift")

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
    HP("peak_at", "float", 0.23, 0.0, 1.0,
       help="triangle: fraction of the epochs at which the rate peaks"),
    HP("batch_size", "int", 64, 1, 1 << 20, help="000: 64"),
    HP("shuffle", "bool", True, help="reshuffle the training images every epoch"),
    HP("early_stopping", "bool", True, help="stop on val/loss and restore the best weights"),
    HP("patience", "int", 10, 0, 10_000, help="early stopping: epochs without improvement"),
    HP("max_epochs", "int", 20, 1, 100_000),
    HP("flip", "float", 0.0, 0.0, 1.0, help="probability of a horizontal flip"),
    HP("flip_alternate", "bool", False,
       help="with flip: each image flipped in every other epoch (airbench), not at random"),
    HP("zoom", "float", 0.0, 0.0, 0.5, help="random zoom range (fraction)"),
    HP("translate", "float", 0.0, 0.0, 0.5, help="random translation range (fraction)"),
    HP("erase", "float", 0.0, 0.0, 1.0, help="probability of random erasing"),
    HP("crop", "int", 0, 0, 8,
       help="random crop of the image zero-padded by N pixels (whole-pixel translate)"),
    HP("ema", "float", 0.0, 0.0, 0.99999,
       help="decay per step of an average of the weights that validates and is kept (0: off)"),
    HP("tta", "choice", "none", choices=("none", "flip", "flip_shift"),
       help="test-time augmentation of the final evaluation"),
    HP("swa_epochs", "int", 0, 0, 10_000, help="average the weights of the last N epochs"),
    HP("seed", "int", 0, 0, 2**31 - 1),
    HP("deterministic", "bool", False, help="TensorFlow op determinism (slower)"),
    HP("threads", "int", 0, 0, 1024, help="intra-op threads (0: TensorFlow's choice)"),
    HP("inter_threads", "int", 0, 0, 1024, help="inter-op threads (0: TensorFlow's choice)"),
    HP("steps_per_execution", "int", 0, 0, 4096, help="0: min(32, steps per epoch)"),
]}


def split_hp(family: str | None, hp: Mapping[str, Any] | None,
             preset: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resolve ``hp`` into (training knobs, the family's hyperparameters).

    Returns every training knob (defaults, overlaid with the training recipe of the family's
    ``preset`` where it has one, then with ``hp``'s) and, for a ``family``, its
    hyperparameters resolved by ``models.resolve`` (defaults, then ``preset``, then ``hp``).
    Raises ``ConfigError`` for an unknown key or a value outside its declaration.
    """
    hp = dict(hp or {})
    family_hps = models.hyperparameters(family) if family else {}
    clash = set(family_hps) & set(HYPERPARAMETERS)
    if clash:  # a family must not shadow a training knob: a bug in the family, not bad input
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
    recipe = models.recipe(family, preset) if family and preset else {}
    for k, v in {**recipe, **train_part}.items():  # a preset's recipe, then hp
        resolved[k] = HYPERPARAMETERS[k].check("train", v)
    model_resolved = models.resolve(family, model_part, preset) if family else {}
    return resolved, model_resolved
