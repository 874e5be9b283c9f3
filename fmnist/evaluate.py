"""Test-set metrics of a finished model: loss, accuracy, per-class precision / recall / F1, the
confusion matrix and the misclassified images.

Example::

    from fmnist import data, evaluate
    split = data.load_split()
    ev = evaluate.evaluate(model, split.x_test, split.y_test)
    ev.accuracy, ev.metrics()["test/f1/shirt"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from fmnist.data import CLASS_NAMES


def slug(name: str) -> str:
    """A class name as a metric-name part: 'T-shirt/top' -> 't_shirt_top'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    confusion: np.ndarray  # [true, predicted] counts
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    predictions: np.ndarray
    misclassified: np.ndarray  # positions in the evaluated arrays
    class_names: tuple[str, ...] = CLASS_NAMES

    def metrics(self) -> dict[str, float]:
        """Flat metrics with the project's names: test/acc, test/loss, test/f1/<class>."""
        out = {"test/acc": self.accuracy, "test/loss": self.loss}
        for name, p, r, f in zip(self.class_names, self.precision, self.recall, self.f1,
                                 strict=True):
            out[f"test/precision/{slug(name)}"] = float(p)
            out[f"test/recall/{slug(name)}"] = float(r)
            out[f"test/f1/{slug(name)}"] = float(f)
        return out


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10):
    """Confusion matrix and per-class precision, recall and F1 (0 where undefined)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    confusion = np.bincount(y_true * n_classes + y_pred,
                            minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(confusion).astype(float)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0,
                      2 * precision * recall / (precision + recall), 0.0)
    return confusion, precision, recall, f1


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024,
             class_names: tuple[str, ...] = CLASS_NAMES, tta: str = "none") -> Evaluation:
    """Score ``model`` (10-way probabilities) on images ``x`` (uint8, pixels 0..255), its
    probabilities averaged over ``tta``'s views (``fmnist.tta.MODES``)."""
    from fmnist import tta as tta_

    probs = tta_.predict(model, x, tta, batch_size)
    y = np.asarray(y, dtype=np.int64)
    pred = probs.argmax(axis=1)
    p_true = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    confusion, precision, recall, f1 = scores(y, pred, len(class_names))
    return Evaluation(
        loss=float(-np.log(p_true).mean()),
        accuracy=float((pred == y).mean()),
        confusion=confusion, precision=precision, recall=recall, f1=f1,
        predictions=pred, misclassified=np.flatnonzero(pred != y), class_names=class_names,
    )
