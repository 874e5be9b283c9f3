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


def test_under_a_time_budget_the_first_recipe_fills_it_alone_and_its_parts_follow():
    s, said = _searcher()
    first = s.suggest("t0")
    assert isinstance(first, dict)
    fill = first[space.FILL_KEY]
    b = s.base_budget
    assert (fill["soft"], fill["hard"]) == (b.fill_window().soft, b.fill_window().hard)
    assert fill["epochs"] == 30 and first[space.EPOCHS_KEY] == policy.fill_cap(30)
    assert first[space.FILLS_KEY] == 30 and "fill:" in first[policy.POLICY_KEY]
    assert any(line.startswith("policy: fill:") for line in said)
    # the Optuna trial keeps it: going on after a kill, it fills the next command's budget
    assert s.study.trials[0].user_attrs[space.FILLS_KEY] == 30
    # it runs alone (its pace is its own): a free slot is told to ask again later
    assert s.suggest("t1") is None
    # it took a part (75 of the 150 epochs its time held): the best configuration again on
    # a part of its own with the next seed, fitted to end before the ensemble's share
    _finish(s, "t0", 0, 75)
    part = s.suggest("t2")
    assert isinstance(part, dict) and part[space.EPOCHS_KEY] == 75
    assert "epochs" not in part[space.FILL_KEY]  # its part is set, not decided
    assert part[space.FILL_KEY]["soft"] == b.fill_window(parts=True).soft
    assert part[policy.POLICY_KEY].startswith("ensemble")
    assert part[space.SEED_KEY] == record.trial_seed(s.spec) + 1
    assert s.suggest("t3") is None  # one part at a time: each its own seed


def test_a_fill_that_took_its_planned_schedule_leaves_the_rest_to_the_search():
    # a fast machine: the time held more than four long schedules; the first trial trained its
    # 30 epochs, and the search goes on (no parts, the spec's schedule)
    s, _ = _searcher()
    s.suggest("t0")
    _finish(s, "t0", 0, 30)
    nxt = s.suggest("t1")
    assert isinstance(nxt, dict) and space.FILL_KEY not in nxt and not s.fill_part
    assert space.trial_epochs(s.spec, nxt) == 30


def test_no_fill_under_a_compute_budget_or_without_recipes():
    for raw in ({"budget": "25 epochs"}, {"start_from": None}):
        s, _ = _searcher(**raw)
        first = s.suggest("t0")
        assert not s.may_fill and isinstance(first, dict) and space.FILL_KEY not in first
