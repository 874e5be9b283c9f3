"""The searcher's decisions under a time budget (``recorder.StudySearch``), driven by hand: real
Optuna (in memory) and Ray's Optuna searcher, no Ray runtime, no training."""

from __future__ import annotations

import time

import optuna

from sweeps import policy, record, space, warm
from sweeps import spec as spec_
from sweeps.budget import Budget
from sweeps.trial import FINAL_KEY


def _searcher(budget="2h", **raw):
    from sweeps import recorder

    sp = spec_.parse({"name": "s", "family": "minivgg", "max_epochs": 30, "budget": budget,
                      "start_from": "recipe", "sampler": {"type": "tpe", "seed": 0},
                      "space": {"learning_rate": {"type": "loguniform", "low": 1e-4,
                                                  "high": 1e-1}}, **raw}, "s.yaml")
    storage = optuna.storages.InMemoryStorage()
    study = space.open_study(sp, storage)
    warm.enqueue(study, warm.plan(sp, storage, None, say=lambda s: None), lambda s: None,
                 budgeted=True)
    said: list[str] = []
    s = recorder.StudySearch(space=space.DefineByRun(sp), metric=sp.metric, mode=sp.mode,
                             sampler=space.sampler(sp, 0), study_name=sp.name, storage=storage,
                             budget=Budget.of(sp, time.time(), 48_000), spec=sp,
                             n_train=48_000, study=study, seed=record.trial_seed(sp),
                             say=said.append)
    return s, said


def _finish(s, trial_id: str, number: int, ran: int, value: float = 0.93) -> None:
    s.on_trial_complete(trial_id, {FINAL_KEY: 1, "val/acc": value, "max_epochs": ran,
                                   "epochs": ran, "best_epoch": ran, "train_s": 60.0 * ran,
                                   "config": {space.TRIAL_KEY: number}})


def test_under_a_time_budget_the_first_recipe_fills_it_once_and_its_parts_follow():
    s, said = _searcher()
    first = s.suggest("t0")
    fill = first[space.FILL_KEY]
    b = s.base_budget
    assert (fill["soft"], fill["hard"]) == (b.fill_window().soft, b.fill_window().hard)
    assert fill["epochs"] == 30 and first[space.EPOCHS_KEY] == policy.fill_cap(30)
    assert first[space.FILLS_KEY] == 30 and "fill:" in first[policy.POLICY_KEY]
    assert any(line.startswith("policy: fill:") for line in said)
    # the Optuna trial keeps it: going on after a kill, it fills the next command's budget
    assert s.study.trials[0].user_attrs[space.FILLS_KEY] == 30
    # one fill per command: a second trial while it runs (more slots) is the search's
    second = s.suggest("t1")
    assert second is not None and space.FILL_KEY not in (second or {})
    # it took a part (75 of the 150 epochs its time held): the best configuration again on
    # a part of its own with the next seed, in the fill's window, fitted to end there
    _finish(s, "t0", 0, 75)
    s.on_trial_complete("t1", None, error=True)
    third = s.suggest("t2")
    assert third[space.EPOCHS_KEY] == 75 and "epochs" not in third[space.FILL_KEY]
    assert third[space.FILL_KEY]["soft"] == fill["soft"]
    assert third[policy.POLICY_KEY].startswith(("exploit", "ensemble"))
    assert third[space.SEED_KEY] == record.trial_seed(s.spec) + 1


def test_a_fill_that_took_its_planned_schedule_leaves_the_rest_to_the_search():
    # a fast machine: the time held more than four long schedules; the first trial trained its
    # 30 epochs, and the search goes on (no parts, the spec's schedule)
    s, _ = _searcher()
    s.suggest("t0")
    _finish(s, "t0", 0, 30)
    nxt = s.suggest("t1")
    assert space.FILL_KEY not in nxt and not s.fill_part


def test_no_fill_under_a_compute_budget_or_without_recipes():
    s, _ = _searcher(budget="25 epochs")
    assert not s.may_fill and space.FILL_KEY not in s.suggest("t0")
    s, _ = _searcher(start_from=None)
    assert not s.may_fill and space.FILL_KEY not in s.suggest("t0")
