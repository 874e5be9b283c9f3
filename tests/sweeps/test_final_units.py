"""The phase after the search, with made-up inputs (milliseconds): the final model's choice on
validation, the refit's data and knobs, and the budget's deadlines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from sweeps import final, runner, space
from sweeps import spec as spec_
from sweeps import tags as tag

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


def _cand(role, val, usable=True):
    return final.Candidate(role, f"run-{role}", None, val, usable)


def test_the_ensemble_is_final_only_where_it_validated_above_the_best_trial():
    trial, refit = _cand(tag.TRIAL, 0.90), _cand(tag.REFIT, None)
    assert final._choose([trial, refit, _cand(tag.ENSEMBLE, 0.91)]).role == tag.ENSEMBLE
    # a tie on validation: the refit (the same configuration, on more images)
    assert final._choose([trial, refit, _cand(tag.ENSEMBLE, 0.90)]).role == tag.REFIT
    assert final._choose([trial, _cand(tag.ENSEMBLE, 0.89)]).role == tag.TRIAL


def test_a_refit_cut_short_by_the_budget_is_never_chosen():
    trial = _cand(tag.TRIAL, 0.90)
    assert final._choose([trial, _cand(tag.REFIT, None, usable=False)]) is trial
    assert final._choose([trial, _cand(tag.REFIT, None)]).role == tag.REFIT


def test_a_refits_time_is_estimated_at_its_trials_pace():
    # 20 epochs of 48,000 images took 2,000 s: 20 epochs of 60,000 take 2,500
    assert final.refit_estimate_s({"train_s": 2000.0, "epochs": 20}, 20, 60000,
                                  48000) == pytest.approx(2500.0)
    assert final.refit_estimate_s({"train_s": 100.0, "epochs": 4}, 8, 1000,
                                  1000) == pytest.approx(200.0)
    assert final.refit_estimate_s({"epochs": 4}, 8, 1000, 1000) is None  # not recorded


def _run(**metrics):
    from types import SimpleNamespace

    return SimpleNamespace(data=SimpleNamespace(metrics=metrics))


def test_whether_a_refit_fits_is_told_from_its_trials_pace():
    # the trial: 10 epochs of 100 images in 100 s, best at epoch 8; its refit: 8 epochs of 125
    split = _Split(*(np.zeros(n) for n in (100, 100, 25, 25, 10, 10)))
    best = _run(train_s=100.0, epochs=10, best_epoch=8)
    assert final.refit_epochs(best) == 8
    assert final.refit_need_s(best, split) == pytest.approx(100.0)
    assert final.refit_fits(best, split, until=1100.0, now=1000.0)
    assert not final.refit_fits(best, split, until=1099.0, now=1000.0)
    assert final.refit_fits(_run(epochs=10), split, until=0.0, now=1000.0)  # pace unknown


def test_a_refit_that_cannot_fit_gives_its_share_of_the_budget_to_the_search():
    spec = spec_.parse({"name": "s", "family": "lenet5", "budget": 1000,
                        "final": {"refit": True, "ensemble": 5}})
    kept, given = runner.Deadlines.of(spec, 0.0), runner.Deadlines.of(spec, 0.0, refit=False)
    assert given.after == kept.after == 1000 - 50
    assert given.search_hard == pytest.approx(kept.search_hard + 250)  # the refit's 25%
    assert given.search_soft == pytest.approx(given.search_hard - 50)


@dataclass
class _Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def test_the_refit_trains_on_train_and_val_and_never_sees_the_test_images():
    rng = np.random.default_rng(0)
    split = _Split(rng.integers(0, 255, (50, 28, 28), dtype=np.uint8), np.arange(50) % 10,
                   rng.integers(0, 255, (20, 28, 28), dtype=np.uint8), np.arange(20) % 10,
                   np.zeros((5, 28, 28), np.uint8), np.zeros(5))
    full = final.refit_split(split)
    assert len(full.y_train) == 70
    np.testing.assert_array_equal(full.x_train[50:], split.x_val)
    np.testing.assert_array_equal(full.y_train[:50], split.y_train)
    assert full.x_test is split.x_test and len(full.y_val) == 20


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


@pytest.mark.parametrize("final_keys,search_end", [
    ({"refit": True, "ensemble": 5}, 1000 - 50 - 250 - 50),  # refit 25%, ensemble 5%
    ({"refit": False, "ensemble": 0}, 1000 - 50),
    ({"refit": False, "ensemble": 3}, 1000 - 50 - 50),
])
def test_a_budget_keeps_room_for_what_follows_the_search(final_keys, search_end):
    spec = spec_.parse({"name": "s", "family": "lenet5", "budget": 1000, "final": final_keys})
    d = runner.Deadlines.of(spec, started=0.0)
    assert d.after == 1000 - 50  # the test evaluation and the report keep 5%
    assert d.search_hard == pytest.approx(search_end)
    assert d.search_soft == pytest.approx(search_end - 50)
    assert runner.Deadlines.of(spec.replace(budget_s=None), 0.0) is None


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
