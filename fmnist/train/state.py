"""The training state after an epoch, written to a folder and read back, so a run can go on
where it was.

A state folder holds ``model.keras`` (weights and the optimizer's variables, its step among them:
the learning-rate schedules run on it), ``state.json`` (the epoch, the history, early stopping's
and the plateau schedule's counters) and, where they exist, early stopping's best weights
(``best_weights.npz``) and the weights' moving average (``ema.npz``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# the key of an epoch's metrics under which ``on_epoch`` finds the training state's folder
STATE_KEY = "state_dir"


def kept(stopper, plateau) -> list[tuple[str, Any, dict[str, type]]]:
    """(key in state.json, callback, {attribute training goes on from: its JSON type}) for the
    callbacks in use (None: not in use)."""
    return [(key, cb, attrs) for key, cb, attrs in (
        ("early_stopping", stopper, {"best": float, "wait": int, "best_epoch": int}),
        ("plateau", plateau, {"best": float, "wait": int, "cooldown_counter": int}))
        if cb is not None]


def write(folder: Path, model, epoch: int, history: list[dict[str, float]],
          stopper=None, plateau=None, ema=None) -> None:
    """Write the state after ``epoch`` (1-based) into the existing ``folder``; with ``ema``
    (a ``callbacks.EMAWeights``), its average too."""
    model.save(folder / "model.keras")
    state: dict[str, Any] = {"epoch": epoch, "history": history}
    for key, cb, attrs in kept(stopper, plateau):
        values = {a: getattr(cb, a) for a in attrs}
        state[key] = {a: None if v is None else attrs[a](v) for a, v in values.items()}
    if stopper is not None and stopper.best_weights is not None:
        np.savez(folder / "best_weights.npz", *stopper.best_weights)
    if ema is not None and ema.weights is not None:
        np.savez(folder / "ema.npz", *ema.weights)
        state["ema_updates"] = ema.updates
    (folder / "state.json").write_text(json.dumps(state))


def load(model, folder: Path) -> dict[str, Any]:
    """Load the weights and optimizer variables of ``folder`` into ``model`` (compiled, same
    architecture); return the rest: ``epoch``, ``history``, the callbacks' counters under their
    ``kept`` keys, ``best_weights`` and ``ema_weights`` (lists of arrays, or None) and
    ``ema_updates``."""
    state = json.loads((folder / "state.json").read_text())
    model.optimizer.build(model.trainable_variables)  # its variables exist to be loaded into
    model.load_weights(folder / "model.keras")
    state["best_weights"] = _arrays(folder / "best_weights.npz")
    state["ema_weights"] = _arrays(folder / "ema.npz")
    return state


def _arrays(path: Path) -> list[np.ndarray] | None:
    if not path.exists():
        return None
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def restore(resume: dict[str, Any], stopper=None, plateau=None) -> None:
    """Put ``load``'s counters back into the callbacks (after their ``on_train_begin`` reset)."""
    for key, cb, _ in kept(stopper, plateau):
        for attr, value in resume.get(key, {}).items():
            setattr(cb, attr, value)
    if stopper is not None and resume.get("early_stopping"):
        stopper.best_weights = resume["best_weights"]
