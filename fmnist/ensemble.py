"""Greedy ensemble selection (Caruana, Niculescu-Mizil, Crew and Ksikes, ICML 2004): from a
library of models' validation probabilities, add with replacement the member that most raises
the ensemble's validation accuracy, until no addition raises it or ``max_size`` is reached.

Example::

    from fmnist import ensemble
    picked = ensemble.greedy_select([p_a, p_b, p_c], y_val, max_size=5)
    picked.members, picked.weights, picked.score
    probs = ensemble.combine([q_a, q_b, q_c], picked.weights)   # on new images
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Selection:
    members: tuple[int, ...]  # library positions, in the order added (repeats allowed)
    weights: tuple[float, ...]  # per library position: its share of the average
    score: float  # validation accuracy of the selected ensemble
    best_single: float  # validation accuracy of the best single member


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(probs).argmax(axis=1) == np.asarray(y)).mean())


def greedy_select(library: Sequence[np.ndarray], y: np.ndarray, max_size: int = 5) -> Selection:
    """Select from ``library`` (each (N, classes) probabilities on the same validation images,
    labels ``y``). Starts from the best single member, so the ensemble never scores below it on
    validation; ties go to the earlier member. ``max_size`` counts additions (with repeats)."""
    if not library:
        raise ValueError("greedy_select: the library is empty.")
    if max_size < 1:
        raise ValueError(f"greedy_select: max_size must be >= 1, but got {max_size}.")
    probs = [np.asarray(p, dtype=np.float64) for p in library]
    y = np.asarray(y)
    singles = [accuracy(p, y) for p in probs]
    first = int(np.argmax(singles))
    members, total, score = [first], probs[first].copy(), singles[first]
    while len(members) < max_size:
        trial = [accuracy((total + p) / (len(members) + 1), y) for p in probs]
        best = int(np.argmax(trial))
        if trial[best] <= score:
            break
        members.append(best)
        total += probs[best]
        score = trial[best]
    counts = np.bincount(members, minlength=len(probs))
    return Selection(tuple(members), tuple(float(c) / len(members) for c in counts), score,
                     singles[first])


def combine(library: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted average of the members' probabilities (weights from ``greedy_select``)."""
    out = None
    for p, w in zip(library, weights, strict=True):
        if w:
            out = np.asarray(p, dtype=np.float64) * w if out is None else out + w * np.asarray(p)
    if out is None:
        raise ValueError("combine: every weight is 0.")
    return out


def as_model(members: Sequence, weights: Sequence[float], name: str = "ensemble"):
    """One Keras model whose output is the weighted average of ``members``' outputs (Keras
    models with the same input), e.g. to save, serve or evaluate the selection as one model.
    Members of weight 0 are left out; a single member is returned as it is."""
    from fmnist.runtime import keras

    kept = [(m, float(w)) for m, w in zip(members, weights, strict=True) if w]
    if not kept:
        raise ValueError("as_model: every weight is 0.")
    if len(kept) == 1:
        return kept[0][0]
    first = kept[0][0].inputs[0]
    inp = keras.Input(shape=first.shape[1:], dtype=first.dtype, name="image")
    # each member wrapped under a name of its own: loaded models may share theirs
    outs = [keras.layers.Rescaling(w, name=f"weight_{i}")(
                keras.Sequential([m], name=f"member_{i}")(inp))
            for i, (m, w) in enumerate(kept)]
    return keras.Model(inp, keras.layers.Add(name="average")(outs), name=name)
