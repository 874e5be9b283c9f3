"""Unit tier: greedy ensemble selection on made-up validation probabilities. The ensemble as one
Keras model is not: it builds, saves and loads real models (TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist import ensemble


def _probs(pred: list[int], classes: int = 3, confidence: float = 0.8) -> np.ndarray:
    out = np.full((len(pred), classes), (1 - confidence) / (classes - 1))
    out[np.arange(len(pred)), pred] = confidence
    return out


@pytest.mark.unit
def test_it_picks_the_members_whose_errors_differ_and_beats_each():
    y = np.array([0, 1, 2, 0, 1, 2])
    a = np.vstack([_probs([0, 1, 2, 0]), _probs([0, 0], confidence=0.4)])  # 4 right, unsure
    b = np.vstack([_probs([1], confidence=0.4), _probs([1, 2, 0, 1, 2], confidence=0.9)])
    c = _probs([1, 0, 1, 1, 0, 1], confidence=0.9)  # always wrong: never picked
    picked = ensemble.greedy_select([a, b, c], y, max_size=5)
    assert picked.members[:2] == (1, 0) and picked.best_single == pytest.approx(5 / 6)
    assert picked.score == 1.0 > picked.best_single
    assert picked.score == ensemble.accuracy(ensemble.combine([a, b, c], picked.weights), y)
    assert sum(picked.weights) == pytest.approx(1.0) and picked.weights[2] == 0


@pytest.mark.unit
def test_it_never_scores_below_the_best_single_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 200)
    for _ in range(20):
        library = [rng.dirichlet(np.ones(10), 200) for _ in range(4)]
        picked = ensemble.greedy_select(library, y, max_size=5)
        assert picked.score >= picked.best_single
        assert picked.best_single == max(ensemble.accuracy(p, y) for p in library)
        assert 1 <= len(picked.members) <= 5


@pytest.mark.unit
def test_an_identical_library_stays_one_member_and_bad_input_is_refused():
    y = np.array([0, 1, 1])
    p = _probs([0, 1, 0])
    assert ensemble.greedy_select([p, p.copy()], y).members == (0,)
    with pytest.raises(ValueError, match="empty"):
        ensemble.greedy_select([], y)
    with pytest.raises(ValueError, match="max_size"):
        ensemble.greedy_select([p], y, max_size=0)


def test_the_ensemble_as_one_model_predicts_the_weighted_average_and_saves(tmp_path):
    from fmnist import models
    from fmnist.runtime import keras

    members = [models.build("lenet5", {}) for _ in range(3)]  # untrained: outputs differ
    x = np.random.default_rng(0).integers(0, 255, (8, 28, 28, 1)).astype("uint8")
    probs = [m.predict(x, verbose=0) for m in members]
    weights = (0.5, 0.0, 0.5)
    model = ensemble.as_model(members, weights)
    np.testing.assert_allclose(model.predict(x, verbose=0), ensemble.combine(probs, weights),
                               atol=1e-5)
    model.save(tmp_path / "e.keras")
    again = keras.models.load_model(tmp_path / "e.keras", compile=False)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    assert ensemble.as_model(members, (0.0, 1.0, 0.0)) is members[1]
