"""The phase after the search, with made-up inputs (milliseconds): the final model's choice on
validation, the refit's data and knobs (the budget's decisions: test_orchestration_units)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from sweeps import final, space
from sweeps import spec as spec_
from sweeps import tags as tag

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


def _cand(role, val, usable=True):
    return final.Candidate(role, f"run-{role}", None, val, usable)


def test_the_final_model_is_the_most_accurate_on_the_held_out_half():
    trial = _cand(tag.TRIAL, 0.90)
    assert final._choose([trial, _cand(tag.REFIT, 0.89), _cand(tag.ENSEMBLE, 0.91)]).role \
        == tag.ENSEMBLE
    assert final._choose([trial, _cand(tag.REFIT, 0.92), _cand(tag.ENSEMBLE, 0.91)]).role \
        == tag.REFIT
    # a refit that scored below the trial on the half it did not see is not taken on faith
    assert final._choose([trial, _cand(tag.REFIT, 0.895)]) is trial
    # a tie: the refit (the same configuration, on more images), then the trial alone
    assert final._choose([trial, _cand(tag.REFIT, 0.90), _cand(tag.ENSEMBLE, 0.90)]).role \
        == tag.REFIT
    assert final._choose([trial, _cand(tag.ENSEMBLE, 0.90)]) is trial


def test_a_refit_cut_short_by_the_budget_is_never_chosen():
    trial = _cand(tag.TRIAL, 0.90)
    assert final._choose([trial, _cand(tag.REFIT, 0.99, usable=False)]) is trial
    assert final._choose([trial, _cand(tag.REFIT, 0.91)]).role == tag.REFIT


def test_the_in_sample_choice_and_the_held_out_choice_differ():
    """A made-up case: a refit that memorised its half of the validation split scores 1.0 on
    the whole split, which the in-sample rule (any complete refit) would take; on the half it
    did not train on it is worse than the trial, and the trial is chosen."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 2000)
    pick, held = final.halves(len(y), seed=5)
    onehot = np.eye(10)[y]
    trial = np.where(rng.random((2000, 1)) < 0.9, onehot, np.roll(onehot, 1, axis=1))
    refit = np.where(rng.random((2000, 1)) < 0.85, onehot, np.roll(onehot, 1, axis=1))
    refit[pick] = onehot[pick]  # the half it trained on: every image right
    acc = final._accuracy
    assert acc(refit, y) > acc(trial, y)  # in sample, the refit looks better
    chosen = final._choose([final.Candidate(tag.TRIAL, "t", None, acc(trial[held], y[held])),
                            final.Candidate(tag.REFIT, "r", None, acc(refit[held], y[held]))])
    assert chosen.role == tag.TRIAL


def test_a_refits_time_is_estimated_at_its_trials_pace():
    # 20 epochs of 48,000 images took 2,000 s: 20 epochs of 60,000 take 2,500
    assert final.refit_estimate_s({"train_s": 2000.0, "epochs": 20}, 20, 60000,
                                  48000) == pytest.approx(2500.0)
    assert final.refit_estimate_s({"train_s": 100.0, "epochs": 4}, 8, 1000,
                                  1000) == pytest.approx(200.0)
    assert final.refit_estimate_s({"epochs": 4}, 8, 1000, 1000) is None  # not recorded


@dataclass
class _Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def test_the_refit_trains_on_train_and_half_the_val_and_never_sees_the_test_images():
    rng = np.random.default_rng(0)
    split = _Split(rng.integers(0, 255, (50, 28, 28), dtype=np.uint8), np.arange(50) % 10,
                   rng.integers(0, 255, (20, 28, 28), dtype=np.uint8), np.arange(20) % 10,
                   np.zeros((5, 28, 28), np.uint8), np.zeros(5))
    full = final.refit_split(split, seed=1)
    pick, held = final.halves(20, seed=1)
    assert len(full.y_train) == 60  # the training images and the first validation half
    np.testing.assert_array_equal(full.x_train[50:], split.x_val[pick])
    np.testing.assert_array_equal(full.y_train[:50], split.y_train)
    # its validation is the other half, which it never trains on
    np.testing.assert_array_equal(full.x_val, split.x_val[held])
    assert full.x_test is split.x_test and final.refit_train_images(split) == 60


def test_the_refit_runs_the_trials_knobs_without_early_stopping():
    spec = spec_.parse({"name": "s", "family": "lenet5", "max_epochs": 12,
                        "fixed": {"batch_size": 64}})
    hp = final.refit_hp(spec, space.trial_setup(spec, {"learning_rate": 0.01,
                                                     "early_stopping": True})[2])
    assert hp["learning_rate"] == 0.01 and hp["batch_size"] == 64
    assert hp["early_stopping"] is False and hp["max_epochs"] == 12  # the schedule's length
    assert hp["seed"] == spec.data_seed
    # a trial a budget fitted to its time ran a shorter schedule: the refit runs the same one
    assert final.refit_hp(spec, {}, max_epochs=7.0)["max_epochs"] == 7


@pytest.mark.parametrize("raw,message", [
    ({"refit": "yes"}, "final.refit: must be true or false, but got 'yes'."),
    ({"ensemble": -1}, "final.ensemble: must be an integer >= 0, but got -1."),
    ({"tta": 1}, "final.tta: must be true or false, but got 1."),
    ({"refits": True}, "final.refits: unknown key (did you mean 'refit'?)"),
])
def test_final_keys_are_checked(raw, message):
    with pytest.raises(spec_.SpecError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.").replace("?", r"\?")):
        spec_.parse({"name": "s", "family": "lenet5", "final": raw})


def test_tta_follows_the_trial_then_the_preset_then_the_spec():
    spec = spec_.parse({"name": "s", "family": "fastcnn", "preset": "fast"})
    assert final.tta_mode(spec, {"tta": "flip"}) == "flip"
    assert final.tta_mode(spec, {}) == "flip_shift"  # the fast preset's recipe
    plain = spec_.parse({"name": "s", "family": "lenet5"})
    assert final.tta_mode(plain, {}) == "flip_shift"
    assert final.tta_mode(plain.replace(tta=False), {}) == "none"
