"""The orchestration's decisions against the in-memory record, with made-up trials
(milliseconds): the budget, the record's queries, the phase after the search, resume after each
kind of stop, and warm starts. No store, no Ray, no training."""

from __future__ import annotations

import dataclasses
import math
import pickle
from dataclasses import dataclass

import numpy as np
import pytest

from sweeps import final, policy, record, resume, warm
from sweeps import spec as spec_
from sweeps import tags as tag
from sweeps.budget import Budget, Window
from sweeps.record import MemoryRecord, RecipeAttr, ResumeAttr, TrialRun

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


def _spec(**raw):
    return spec_.parse({"name": "s", "family": "lenet5", **raw})


def _trial(run_id, objective=None, status="FINISHED", number=None, **metrics):
    tags = {tag.ROLE: tag.TRIAL}
    if number is not None:
        tags[tag.OPTUNA_TRIAL] = str(number)
    if objective is not None:
        metrics["objective"] = objective
    return TrialRun(run_id, status, {}, metrics, tags)


# ---------------------------------------------------------------- the budget


def test_without_a_budget_nothing_is_limited():
    b = Budget.of(_spec(), started=0.0)
    assert b.search_window() is None and b.after_end() is None
    assert b.may_start_trial(1e12) and b.fits(1e9, now=0.0)
    assert b.search_left(5.0) is None and b.images_left() is None


@pytest.mark.parametrize("final_keys,search_end", [
    ({"refit": True, "ensemble": 5}, 1000 - 50 - 250 - 50),  # refit 25%, ensemble 5%
    ({"refit": False, "ensemble": 0}, 1000 - 50),
    ({"refit": False, "ensemble": 3}, 1000 - 50 - 50),
    ({"refit": True, "ensemble": 0}, 1000 - 50 - 250),
])
def test_a_budget_keeps_room_for_what_follows_the_search(final_keys, search_end):
    b = Budget.of(_spec(budget=1000, final=final_keys), started=0.0)
    assert b.after_end() == 1000 - 50  # the test evaluation and the report keep 5%
    w = b.search_window()
    assert w.hard == pytest.approx(search_end)
    assert w.soft == pytest.approx(search_end - 50)  # the epoch a trial is finishing


def test_the_budget_counts_from_the_commands_start_on_the_wall_clock():
    b = Budget.of(_spec(budget=1000, final={"refit": False, "ensemble": 0}), started=5000.0)
    assert b.search_window() == Window(5000.0 + 900, 5000.0 + 950)


def test_a_short_budget_still_keeps_ten_seconds_for_the_report():
    b = Budget.of(_spec(budget=60, final={"refit": False, "ensemble": 0}), started=0.0)
    assert b.after_end() == 50.0 and b.search_window() == Window(40.0, 50.0)


def test_the_refits_share_given_to_the_search_moves_its_window_only():
    kept = Budget.of(_spec(budget=1000, final={"refit": True, "ensemble": 5}), started=0.0)
    given = kept.without_refit()
    assert given.after_end() == kept.after_end() == 950
    assert given.search_window().hard == pytest.approx(kept.search_window().hard + 250)
    assert kept.refit and not given.refit  # the budget itself is unchanged (frozen)


def test_the_search_has_the_shorter_of_its_own_limit_and_the_budgets_window():
    b = Budget.of(_spec(budget=1000, time_budget_s=300, final={"refit": False,
                                                               "ensemble": 0}), started=0.0)
    assert b.search_left(0.0) == 300  # the spec's time_budget_s
    assert b.search_left(700.0) == pytest.approx(200.0)  # the window's soft end, 900
    assert b.search_left(950.0) < 0
    only_search = Budget.of(_spec(time_budget_s=300), started=0.0)
    assert only_search.search_left(100.0) == 300 and only_search.search_window() is None


def test_no_trial_starts_after_the_windows_soft_end_and_an_epoch_is_cut_at_its_hard_end():
    w = Budget.of(_spec(budget=1000, final={"refit": False, "ensemble": 0}),
                  started=0.0).search_window()
    assert w.may_start(899.9) and not w.may_start(900.0)
    assert not w.cut(949.9) and w.cut(950.0)


def test_work_fits_when_it_ends_by_the_phase_after_the_search_or_its_need_is_unknown():
    b = Budget.of(_spec(budget=1000), started=0.0)
    assert b.fits(100.0, now=850.0) and not b.fits(100.1, now=850.0)
    assert b.fits(None, now=10_000.0)  # a pace not recorded cannot be told
    assert b.fits(10.0, now=0.0, by=10.0) and not b.fits(10.0, now=0.5, by=10.0)


def test_a_compute_budget_counts_images_over_the_commands():
    b = Budget(started=0.0, images=1_000_000, images_used=400_000)  # an earlier command's
    assert b.images_left() == 600_000
    assert b.images_left(used=100_000) == 500_000
    assert b.images_left(used=10**7) == 0


@pytest.mark.parametrize("seen, result, after, ran", [
    ((1, 20), {"epoch": 20}, 0, 20),  # a whole trial
    (None, {"epoch": 1}, 0, 1),  # one epoch: it came with the final result alone
    ((60, 60), {"epoch": 60, "resumed": 59}, 59, 1),  # went on from its saved epoch 59
    (None, {"epoch": 60, "resumed": 59}, 59, 1),  # the same, its one epoch with its final result
    ((1, 12), None, 0, 12),  # raised after epoch 12: no final result
    ((1, 20), {"epoch": 20, "resumed": 12}, 0, 20),  # Tune restarted it from epoch 12
    ((60, 62), {"epoch": 62}, 59, 3),  # pruned at 62 after going on from 59
    (None, {"epoch": 8}, 7, 1),  # went on from 7, stopped by ASHA at its first report
    (None, None, 0, 0),
])
def test_the_compute_a_trial_spent_is_the_epochs_it_trained_in_this_command(seen, result, after,
                                                                           ran):
    from sweeps.budget import epochs_run

    assert epochs_run(seen, result, after) == ran


def test_a_trial_needs_one_epoch_of_compute_left_to_start():
    b = Budget(started=0.0, images=100_000)
    assert b.may_start_trial(0.0, images_per_epoch=48_000, used=52_000)
    assert not b.may_start_trial(0.0, images_per_epoch=48_000, used=52_001)


def test_the_budget_and_its_window_travel_to_other_processes():
    b = Budget.of(_spec(budget=1000), started=123.0)
    assert pickle.loads(pickle.dumps(b)) == b
    assert pickle.loads(pickle.dumps(b.search_window())) == b.search_window()


# ---------------------------------------------------------------- the record


def test_the_best_trial_honours_the_specs_mode():
    rec = MemoryRecord("max", [_trial("a", 0.90), _trial("b", 0.93), _trial("c", 0.91)])
    assert [r.run_id for r in rec.ranked()] == ["b", "c", "a"]
    low = MemoryRecord("min", [_trial("a", 0.30), _trial("b", 0.25), _trial("c", 0.40)])
    assert low.best().run_id == "b"
    assert [r.run_id for r in low.ranked(2)] == ["b", "a"]


def test_a_diverged_pruned_or_unscored_trial_is_never_the_best():
    rec = MemoryRecord("max", [_trial("nan", math.nan), _trial("inf", math.inf),
                               _trial("pruned", 0.99, status="KILLED"), _trial("none"),
                               _trial("failed", 0.98, status="FAILED"), _trial("ok", 0.5)])
    assert [r.run_id for r in rec.ranked()] == ["ok"]


def test_a_record_of_diverged_trials_only_has_no_best():
    assert MemoryRecord("max", [_trial("nan", math.nan)]).best() is None
    assert MemoryRecord("max").best() is None


def test_ties_keep_the_records_order():
    rec = MemoryRecord("max", [_trial("first", 0.9), _trial("second", 0.9)])
    assert [r.run_id for r in rec.ranked()] == ["first", "second"]


def test_a_trials_numbers_are_read_through_typed_fields():
    t = _trial("a", 0.9, number=7, epochs=10.0, best_epoch=8.0, train_s=100.0,
               schedule_epochs=12.0)
    assert (t.number, t.epochs, t.refit_epochs, t.epoch_s, t.schedule_epochs) == \
        (7, 10, 8, 10.0, 12)
    bare = _trial("b")
    assert (bare.number, bare.epochs, bare.refit_epochs, bare.epoch_s, bare.schedule_epochs) \
        == (None, 0, 1, None, None)
    assert _trial("c", epochs=5.0).refit_epochs == 5  # no best epoch: all it trained


def test_the_record_finds_the_run_after_the_search_of_the_best_trial(tmp_path):
    best = _trial("best", 0.9)
    rec = MemoryRecord("max", [best])
    assert rec.own_run(tag.REFIT, best) is None and not rec.refit_done(best)
    folder = tmp_path / "refit"
    folder.mkdir()
    rec.add(TrialRun("r1", "FINISHED", tags={tag.SOURCE_RUN_ID: "other",
                                             tag.CHECKPOINT: str(folder)}), tag.REFIT)
    refit = rec.add(TrialRun("r2", "FINISHED", tags={tag.SOURCE_RUN_ID: "best",
                                                     tag.CHECKPOINT: str(folder)}), tag.REFIT)
    assert rec.own_run(tag.REFIT, best) == refit
    assert not rec.refit_done(best)  # its model was never saved
    (folder / "model.keras").write_bytes(b"zip")
    assert rec.refit_done(best) and rec.own_run(tag.ENSEMBLE, best) is None
    assert [r.run_id for r in rec.runs(tag.TRIAL)] == ["best"]
    assert not rec.refit_going_on(best) and rec.refit_spent(best) == 0  # finished


def test_a_refit_killed_part_way_goes_on_and_has_spent_the_epochs_it_saved():
    best = _trial("best", 0.9)
    rec = MemoryRecord("max", [best])
    assert not rec.refit_going_on(best) and rec.refit_spent(best) == 0  # none started
    rec.add(TrialRun("r", "RUNNING", metrics={record.TRAIN_IMAGES: 108_000},
                     tags={tag.SOURCE_RUN_ID: "best"}), tag.REFIT)
    assert rec.refit_going_on(best) and rec.refit_spent(best) == 108_000
    assert rec.images_used(48_000) == 108_000  # counted in the compute spent, once
    # its state saved: it goes on for the rest; lost: all of it again, the 108,000 still spent
    assert final.refit_rest(250_000, rec.refit_spent(best), True) == (142_000, 0)
    assert final.refit_rest(250_000, rec.refit_spent(best), False) == (250_000, 108_000)


def test_a_refits_state_is_replaced_whole_and_found_after_a_kill_at_any_point(tmp_path):
    from types import SimpleNamespace

    st, sp, best = SimpleNamespace(ray_dir=str(tmp_path)), _spec(), _trial("best", 0.9)
    assert final.refit_state(st, sp, best) is None  # none saved

    def epoch_state(n):
        d = tmp_path / f"tmp{n}"
        d.mkdir()
        (d / "state.json").write_text(f'{{"epoch": {n}}}')
        return d

    into = tmp_path / "s-final" / "refit" / "state-best"
    into.parent.mkdir(parents=True)
    final._keep_state(epoch_state(1), into)
    final._keep_state(epoch_state(2), into)
    assert final.refit_state(st, sp, best) == into and "2" in (into / "state.json").read_text()
    assert sorted(p.name for p in into.parent.iterdir()) == ["state-best"]
    into.rename(into.with_name("state-best.old"))  # killed between the two renames
    found = final.refit_state(st, sp, best)
    assert found is not None and found.name == "state-best.old"
    final._keep_state(epoch_state(3), into)  # the next epoch's replaces it, whole
    assert "3" in (final.refit_state(st, sp, best) / "state.json").read_text()
    assert sorted(p.name for p in into.parent.iterdir()) == ["state-best"]


def test_resume_and_recipe_attributes_round_trip_as_the_dicts_optuna_stores():
    a = ResumeAttr("run-1", "/ray/t/checkpoint_000002", 3, 0)
    assert a.to_attr() == {"run_id": "run-1", "checkpoint": "/ray/t/checkpoint_000002",
                           "epoch": 3, "trial": 0}
    assert ResumeAttr.from_attr(a.to_attr()) == a and ResumeAttr.from_attr(None) is None
    kept = ResumeAttr("run-1", "/ray/t/checkpoint_000002", 3, 0, max_epochs=25)
    assert ResumeAttr.from_attr(kept.to_attr()) == kept  # the schedule it started on
    r = RecipeAttr("fast", "fast", {"lr": 0.2}, exact=True)
    assert r.to_attr() == {"name": "fast", "preset": "fast", "hp": {"lr": 0.2},
                           "exact": True}  # no max_epochs: the spec's
    look = RecipeAttr("fast", "fast", {}, True, max_epochs=5)
    assert RecipeAttr.from_attr(look.to_attr()) == look and look.to_attr()["max_epochs"] == 5


def test_the_trial_seed_is_the_specs_fixed_seed_else_its_data_seed():
    assert record.trial_seed(_spec(fixed={"seed": 7})) == 7
    assert record.trial_seed(_spec(data={"seed": 3})) == 3


# ---------------------------------------------------------------- after the search


@dataclass
class _Split:
    y_train: np.ndarray
    y_val: np.ndarray


SPLIT = _Split(np.zeros(100), np.zeros(50))
PACED = dict(train_s=100.0, epochs=10.0, best_epoch=8.0)  # refit: 8 epochs of 100 + 50 / 2 images


def test_a_refits_time_is_its_trials_pace_on_the_refits_images():
    assert final.refit_need_s(_trial("a", 0.9, **PACED), SPLIT) == pytest.approx(100.0)
    assert final.refit_need_s(_trial("a", 0.9, epochs=10.0), SPLIT) is None


def test_a_refit_that_fits_keeps_its_share():
    b = Budget.of(_spec(budget=1000), started=0.0)
    assert final.share_back(b, _trial("a", 0.9, **PACED), SPLIT, now=850.0) is None


def test_a_refit_that_cannot_fit_gives_its_share_to_the_search():
    b = Budget.of(_spec(budget=1000), started=0.0)
    more = final.share_back(b, _trial("a", 0.9, **PACED), SPLIT, now=851.0)
    assert more == b.without_refit()


def test_with_no_finished_trial_the_refits_share_goes_to_the_search():
    b = Budget.of(_spec(budget=1000), started=0.0)
    assert final.share_back(b, None, SPLIT, now=0.0) == b.without_refit()


@pytest.mark.parametrize("budget,best,done", [
    (Budget(started=0.0), _trial("a", 0.9, **PACED), False),  # no time budget
    (Budget.of(_spec(budget=1000, final={"refit": False}), 0.0), None, False),  # no refit
    (Budget.of(_spec(budget=1000), 0.0), _trial("a", 0.9, **PACED), True),  # trained before
    (Budget.of(_spec(budget=1000), 0.0), _trial("a", 0.9, epochs=3.0), False),  # pace unknown
])
def test_the_refits_share_stays_where_there_is_nothing_to_give(budget, best, done):
    assert final.share_back(budget, best, SPLIT, now=10_000.0, refit_done=done) is None


def _cand(role, val, usable=True):
    return final.Candidate(role, f"run-{role}", None, val, usable)


def test_an_ensemble_with_a_nan_validation_score_is_never_chosen():
    trial = _cand(tag.TRIAL, 0.90)
    assert final._choose([trial, _cand(tag.ENSEMBLE, math.nan)]) is trial


# ---------------------------------------------------------------- resume after a stop


def _tv(number, state, params=None, **attrs):
    return resume.TrialView(number, state, params or {"learning_rate": 0.01}, attrs)


def _run(run_id, number, status, objective=None, trial_dir=""):
    tags = {tag.ROLE: tag.TRIAL, tag.TRIAL_DIR: trial_dir}
    if number is not None:
        tags[tag.OPTUNA_TRIAL] = str(number)
    metrics = {} if objective is None else {"objective": objective}
    return TrialRun(run_id, status, {}, metrics, tags)


def _no_state(_dir):
    return None


def test_a_clean_record_needs_nothing():
    trials = [_tv(0, "COMPLETE"), _tv(1, "PRUNED"), _tv(2, "WAITING")]
    runs = [_run("a", 0, "FINISHED", 0.9), _run("b", 1, "KILLED", 0.5)]
    assert resume.decide(trials, runs, _no_state) == []


@pytest.mark.parametrize("status", ["FINISHED", "KILLED"])
def test_a_kill_after_the_run_closed_keeps_the_trials_result(status):
    actions = resume.decide([_tv(0, "RUNNING")], [_run("a", 0, status, 0.91)], _no_state)
    assert actions == [resume.Complete(0, 0.91)]


def test_a_kill_after_the_run_closed_tells_a_multi_objective_study_each_objective():
    # several objectives: the study's values are the objective, then each cost as recorded
    run = _run("a", 0, "FINISHED", 0.91)
    run.metrics.update({"cost/latency_ms": 0.4, "cost/params": 5e4})
    (done,) = resume.decide([_tv(0, "RUNNING")], [run], _no_state)
    two = spec_.parse({"name": "s", "family": "lenet5",
                       "objectives": {"val/acc": "max", "params": "min", "latency_ms": "min"}})
    assert done.values(two) == [0.91, 5e4, 0.4]
    assert done.values(spec_.parse({"name": "s", "family": "lenet5"})) == [0.91]
    missing = spec_.parse({"name": "s", "family": "lenet5",
                           "objectives": {"val/acc": "max", "macs": "min"}})
    assert done.values(missing) is None  # not recorded: the trial is failed, not guessed


def test_a_trial_killed_mid_way_goes_on_from_its_last_saved_epoch_in_the_same_run():
    saved = {"/ray/t0": ("/ray/t0/checkpoint_000002", 3)}
    actions = resume.decide([_tv(0, "RUNNING")], [_run("a", 0, "RUNNING", trial_dir="/ray/t0")],
                            saved.get)
    attr = ResumeAttr("a", "/ray/t0/checkpoint_000002", 3, 0)
    assert actions == [resume.Requeue(0, {"learning_rate": 0.01},
                                      {ResumeAttr.KEY: attr.to_attr()}, attr)]  # run kept
    lengthened = TrialRun("a", "RUNNING", {"max_epochs": "25"},
                          tags={tag.ROLE: tag.TRIAL, tag.TRIAL_DIR: "/ray/t0",
                                tag.OPTUNA_TRIAL: "0"})
    (again,) = resume.decide([_tv(0, "RUNNING")], [lengthened], saved.get)
    assert again.resume.max_epochs == 25  # it goes on on the schedule it started on


def test_a_fill_killed_mid_way_goes_on_marked_as_a_fill_planned_on_its_own_epochs():
    # a trial that filled a time budget ran on the fill's cap (301): going on, it fills the
    # resumed command's budget again (its mark kept), and where it does not, it is planned on
    # the 30 epochs it was planned on before, not on the cap
    from sweeps import space

    saved = {"/ray/t0": ("/ray/t0/checkpoint_000002", 3)}
    run = TrialRun("a", "RUNNING", {"max_epochs": "301"},
                   tags={tag.ROLE: tag.TRIAL, tag.TRIAL_DIR: "/ray/t0", tag.OPTUNA_TRIAL: "0"})
    (again,) = resume.decide([_tv(0, "RUNNING", **{record.FILLS_KEY: 30})], [run], saved.get)
    assert again.user_attrs[record.FILLS_KEY] == 30 and again.resume.max_epochs == 30
    assert space.planned_epochs(_spec(max_epochs=30), dict(again.user_attrs)) == 30


def test_a_trial_killed_before_its_first_epoch_starts_over_and_its_run_is_dropped():
    actions = resume.decide([_tv(0, "RUNNING")], [_run("a", 0, "RUNNING", trial_dir="/t")],
                            _no_state)
    assert actions == [resume.Requeue(0, {"learning_rate": 0.01}, {}),
                       resume.DeleteRun("a")]


def test_a_trial_killed_before_its_run_was_written_starts_over():
    assert resume.decide([_tv(4, "RUNNING")], [], _no_state) == [
        resume.Requeue(4, {"learning_rate": 0.01}, {})]


def test_a_long_schedules_member_killed_starts_again_with_its_seed_and_its_schedule():
    # the policy's second 60-epoch schedule (seed 1, the spec's 20): started again after a
    # kill before its first epoch, it trains the same, not trial 0's seed on the spec's 20
    from sweeps import space

    trial = _tv(3, "RUNNING", **{record.SEED_KEY: 1, record.PLANNED_KEY: 60})
    (action,) = resume.decide([trial], [], _no_state)
    assert action.user_attrs == {record.SEED_KEY: 1, record.PLANNED_KEY: 60}
    assert space.planned_epochs(_spec(max_epochs=20), dict(action.user_attrs)) == 60


def test_a_trial_completed_on_resume_keeps_its_schedule_and_best_epoch_for_the_policy():
    run = TrialRun("a", "FINISHED", {"max_epochs": "60"},
                   {"objective": 0.946, "best_epoch": 58.0, "schedule_epochs": 60.0},
                   {tag.ROLE: tag.TRIAL, tag.OPTUNA_TRIAL: "0"})
    (done,) = resume.decide([_tv(0, "RUNNING")], [run], _no_state)
    assert done.attrs == {record.SCHEDULE_ATTR: 60, record.BEST_EPOCH_ATTR: 58}
    bare = TrialRun("b", "FINISHED", {}, {"objective": 0.9}, {tag.OPTUNA_TRIAL: "1"})
    assert resume.decide([_tv(1, "RUNNING")], [bare], _no_state)[0].attrs == {}


def test_a_recipe_trial_goes_on_as_its_recipe():
    recipe = {"name": "fast", "preset": "fast", "hp": {}, "exact": True}
    trial = _tv(0, "RUNNING", **{RecipeAttr.KEY: recipe, record.WARM_KEY: "recipe fast"})
    (action,) = resume.decide([trial], [], _no_state)
    assert action.user_attrs == {RecipeAttr.KEY: recipe, record.WARM_KEY: "recipe fast"}


def test_a_resumed_trial_killed_again_goes_on_in_its_first_run_and_keeps_its_first_number():
    first = ResumeAttr("a", "/ray/t0/checkpoint_000002", 3, 0)
    # trial 5 continues trial 0; killed before the driver re-tagged run "a" with 5
    trials = [_tv(0, "FAIL", **{resume.INTERRUPTED: True}),
              _tv(5, "RUNNING", **{ResumeAttr.KEY: first.to_attr()})]
    runs = [_run("a", 0, "RUNNING", trial_dir="/ray/t5")]
    (action,) = resume.decide(trials, runs, {"/ray/t5": ("/ray/t5/checkpoint_000004", 6)}.get)
    assert action.number == 5
    assert action.resume == ResumeAttr("a", "/ray/t5/checkpoint_000004", 6, 0)


@pytest.mark.parametrize("state,status", [("COMPLETE", "FINISHED"), ("PRUNED", "KILLED"),
                                          ("FAIL", "FAILED")])
def test_a_run_left_open_after_its_trial_closed_is_closed_to_match(state, status):
    actions = resume.decide([_tv(0, state)], [_run("a", 0, "RUNNING")], _no_state)
    assert actions == [resume.CloseRun("a", status)]


def test_an_interrupted_trials_leftover_run_is_dropped():
    trials = [_tv(0, "FAIL", **{resume.INTERRUPTED: True})]
    assert resume.decide(trials, [_run("a", 0, "RUNNING")], _no_state) == [
        resume.DeleteRun("a")]


def test_a_run_with_no_trial_is_dropped():
    assert resume.decide([], [_run("a", None, "RUNNING"), _run("b", 9, "RUNNING")],
                         _no_state) == [resume.DeleteRun("a"), resume.DeleteRun("b")]


def test_a_run_an_enqueued_resume_will_go_on_in_is_kept():
    attr = ResumeAttr("a", "/ray/t0/checkpoint_000001", 2, 0)
    trials = [_tv(0, "FAIL", **{resume.INTERRUPTED: True}),
              _tv(1, "WAITING", **{ResumeAttr.KEY: attr.to_attr()})]
    assert resume.decide(trials, [_run("a", 0, "RUNNING")], _no_state) == []


# ---------------------------------------------------------------- warm starts


def test_a_warm_start_from_a_sweep_the_store_lacks_is_said_before_any_file_is_written(
        tmp_path):
    from sweeps import tracking

    st = tracking.store(tmp_path / "store")
    with pytest.raises(warm.WarmStartError, match="warm_start: no sweep 'earlier'"):
        warm.check(_spec(warm_start=["earlier"]), st)
    assert not (tmp_path / "store").exists()
    warm.check(_spec(), st)  # no warm start: nothing to check


# ---------------------------------------------------------------- the final choice, held out


def _onehot(labels, confidence):
    out = np.full((len(labels), 10), (1 - confidence) / 9)
    out[np.arange(len(labels)), labels] = confidence
    return out


def test_the_ensemble_is_chosen_on_validation_data_that_did_not_pick_it():
    from fmnist import ensemble

    y = np.arange(200) % 10
    pick, held = final.halves(len(y), seed=0)
    wrong = (y + 1) % 10
    best = _onehot(np.where(np.arange(200) % 10 < 8, y, wrong), 0.6)  # 80% right everywhere
    # a member right on the whole picking half and on 70% of the other: on the whole split it
    # validates above the best trial, on the half that did not pick it below
    lucky_labels = y.copy()
    lucky_labels[held[: int(0.3 * len(held))]] = wrong[held[: int(0.3 * len(held))]]
    lucky = _onehot(lucky_labels, 0.9)
    in_sample = ensemble.greedy_select([best, lucky], y, max_size=2)
    assert in_sample.score > ensemble.accuracy(best, y)  # chosen where it picked itself
    h = final.pick_held_out([best, lucky], y, max_size=2, seed=0)
    assert 1 in h.picked.members
    assert h.ensemble < h.best  # compared where it did not pick: the best trial is chosen
    trial = final.Candidate(tag.TRIAL, "t", None, h.best)
    assert final._choose([trial, final.Candidate(tag.ENSEMBLE, "e", None, h.ensemble)]) is trial


def test_the_validation_halves_are_disjoint_seeded_and_cover_the_split():
    a, b = final.halves(101, seed=3)
    assert len(a) == 50 and len(b) == 51 and not set(a) & set(b)
    assert sorted([*a, *b]) == list(range(101))
    assert (final.halves(101, seed=3)[0] == a).all() and not (final.halves(101, 4)[0] == a).all()


# ---------------------------------------------------------------- a compute budget


@pytest.mark.parametrize("raw,seconds,epochs", [
    ("60 epochs", None, 60.0), ("1 epoch", None, 1.0), ("2.5epochs", None, 2.5),
    ({"time": "2h", "epochs": 60}, 7200.0, 60.0), ({"epochs": "25 epochs"}, None, 25.0),
    ({"time": 90}, 90.0, None), ("45m", 2700.0, None),
])
def test_a_budget_is_time_compute_or_both_and_round_trips(raw, seconds, epochs):
    sp = _spec(budget=raw)
    assert (sp.budget_s, sp.budget_epochs) == (seconds, epochs)
    assert spec_.parse(sp.as_mapping()) == sp


@pytest.mark.parametrize("raw", ["60 apples", "0 epochs", {"time": "2h", "epochs": -1},
                                 {"epoch": 5}, {}, True])
def test_a_bad_budget_names_its_key_and_rule(raw):
    with pytest.raises(spec_.SpecError, match=r"^<spec>: budget: must be a duration above 0 "
                                              r"\(seconds.*a number of epochs above 0"):
        _spec(budget=raw)


def test_a_compute_budget_is_epochs_of_the_training_split_less_the_refits_share():
    b = Budget.of(_spec(budget="10 epochs"), started=0.0, n_train=48_000)
    assert b.images == 480_000 and b.search_images() == 360_000  # the refit keeps 25%
    assert b.without_refit().search_images() == 480_000
    no_refit = Budget.of(_spec(budget="10 epochs", final={"refit": False}), 0.0, 48_000)
    assert no_refit.search_images() == 480_000  # the ensemble trains nothing


def test_a_trial_trains_the_epochs_the_compute_left_holds_the_same_on_any_machine():
    b = Budget.of(_spec(budget="10 epochs", final={"refit": False}), 0.0, n_train=1000)
    assert b.trial_epochs(4, 1000) == 4
    assert b.trial_epochs(4, 1000, committed=7_000) == 3  # 3,000 images left
    assert b.trial_epochs(4, 1000, committed=9_500) == 0  # not one epoch: it does not start
    assert Budget(started=0.0).trial_epochs(4, 1000, committed=10**9) == 4  # no compute budget
    resumed = Budget.of(_spec(budget="10 epochs", final={"refit": False}), 0.0, 1000,
                        images_used=8_000)  # an earlier command's
    assert resumed.trial_epochs(4, 1000) == 2 and resumed.images_left() == 2_000


def test_a_refit_that_does_not_fit_in_the_compute_left_gives_its_share_to_the_search():
    b = Budget.of(_spec(budget="10 epochs"), started=0.0, n_train=100)  # 1,000 images
    best = _trial("a", 0.9, epochs=4.0, best_epoch=2.0)  # its refit: 2 epochs of 125 images
    assert final.refit_images(best, SPLIT) == 250
    assert final.share_back(b, best, SPLIT, now=0.0, used=750) is None  # 250 left: it fits
    assert final.share_back(b, best, SPLIT, now=0.0, used=751) == b.without_refit()


def test_once_a_trial_has_finished_the_refit_keeps_what_it_needs_and_the_search_the_rest():
    # 50 epochs of 48,000; the first trial trained 20 (960,000 images) and its refit needs 20
    # epochs of 54,000: 1,080,000 are kept for it, 360,000 (7 epochs) left to the search
    b = Budget.of(_spec(budget="50 epochs"), started=0.0, n_train=48_000)
    assert b.search_images() == 1_800_000  # a quarter kept until a trial has finished
    kept = b.reserving(1_080_000, used=960_000)
    assert kept.refit and kept.search_images() == 1_320_000
    assert kept.trial_epochs(20, 48_000, committed=960_000) == 7
    assert kept.images_left(960_000 + 7 * 48_000) >= 1_080_000  # the refit then fits
    # 25 epochs: after an 18-epoch trial the refit (972,000) cannot fit in the 336,000 left:
    # the search gets it all, as before
    small = Budget.of(_spec(budget="25 epochs"), started=0.0, n_train=48_000)
    assert small.reserving(972_000, used=864_000) == small.without_refit()
    # no compute budget, no refit, or no trial finished: as it was
    assert Budget(started=0.0).reserving(10, 0) == Budget(started=0.0)
    assert b.without_refit().reserving(10, 0) == b.without_refit()
    assert b.reserving(None, 0) == b


def test_the_refits_need_is_the_best_trials_in_the_specs_mode():
    done = [policy.Done(0, 0.90, {}, epochs=20, refit_epochs=14),
            policy.Done(1, 0.93, {}, epochs=12), policy.Done(2, math.nan, {}, epochs=30)]
    assert policy.refit_need(done, "max", 54_000) == 12 * 54_000  # its epochs: no best known
    assert policy.refit_need(done, "min", 54_000) == 14 * 54_000  # its best epoch
    assert policy.refit_need([], "max", 54_000) is None
    # none where the compute left holds FEW long schedules or fewer (spent on them: 25, 50,
    # 120 epochs of 48,000), finished trials or not; beyond, before any trial, a whole
    # schedule's refit where it fits beside one whole trial
    assert policy.refit_need([], "max", 54_000, 20, 48_000, left=250 * 48_000) == 1_080_000
    for epochs in (25, 50, 120, 200):
        assert policy.refit_need([], "max", 54_000, 20, 48_000, left=epochs * 48_000) == 0
        assert policy.refit_need(done, "max", 54_000, 20, 48_000, left=epochs * 48_000) == 0
    assert policy.refit_need(done, "max", 54_000, 20, 48_000, left=250 * 48_000) == 12 * 54_000
    assert policy.refit_need([], "max", 54_000, 20, 0, left=1_000_000) == 0  # cannot fit
    b = Budget.of(_spec(budget="25 epochs"), started=0.0, n_train=48_000)
    assert b.reserving(0).trial_epochs(20, 48_000) == 20  # the first trial's whole schedule


def test_a_budget_of_few_long_schedules_is_split_into_equal_long_schedules():
    e = 48_000
    # the fast recipe's 20 epochs stretched 2.5x: a long schedule is 50 epochs. 25 and 50
    # epochs buy one schedule of all of them (25 epochs tested higher than 20 and a 7-epoch
    # member on 3 of 3 seeds); 120 two of 60 (2.4 long schedules, rounded), 75 two of 37
    assert policy.long_epochs(25 * e, 20, e) == 25
    assert policy.long_epochs(50 * e, 20, e) == 50
    assert policy.long_epochs(74 * e, 20, e) == 74
    assert policy.long_epochs(120 * e, 20, e) == 60 and policy.long_epochs(60 * e, 20, e) == 60
    assert policy.long_epochs(75 * e, 20, e) == 37 and policy.long_epochs(38 * e, 20, e) == 38
    # up to FEW (4) long schedules; more: the budget searches on the spec's schedule
    assert policy.long_epochs(200 * e, 20, e) == 50
    assert policy.long_epochs(200 * e + e, 20, e) == 0
    assert policy.few(200 * e, 20, e) and not policy.few(201 * e, 20, e)
    # no longer than the spec's schedule: as planned; nothing left or no schedule: nothing
    assert policy.long_epochs(20 * e, 20, e) == 0 and policy.long_epochs(21 * e, 20, e) == 21
    assert policy.long_epochs(0, 20, e) == 0 and policy.long_epochs(-1, 20, e) == 0
    assert policy.long_epochs(None, 20, e) == 0 and policy.long_epochs(5 * e, 0, e) == 0


def test_a_budget_of_long_schedules_rounds_halves_up():
    e = 48_000
    assert policy.long_epochs(125 * e, 20, e) == 41  # 2.5 long schedules: three of 41
    assert policy.long_epochs(175 * e, 20, e) == 43  # 3.5: four of 43
    assert policy.long_epochs(25 * e, 20, e) == 25  # 0.5: one (at least one)


def test_a_resume_late_in_its_long_schedules_finds_the_epochs_left_for_the_search():
    # all.yaml's refit on, 25 epochs: killed after 18 of its one 25-epoch schedule; the
    # refit's default quarter would leave the search 0.75 of an epoch, but a budget of few
    # long schedules keeps no refit's share
    e = 48_000
    b = Budget.of(_spec(budget="25 epochs", final={"refit": True}), started=0.0, n_train=e,
                  images_used=18 * e)
    assert b.trial_epochs(1, e) == 0  # as built
    assert policy.searching(b, 20, e).trial_epochs(7, e) == 7
    big = Budget.of(_spec(budget="300 epochs", final={"refit": True}), started=0.0, n_train=e)
    assert policy.searching(big, 20, e) == big  # it searches: the refit's share stays


def test_a_long_schedule_after_the_first_is_the_best_configuration_with_its_next_seed():
    look = RecipeAttr("fast", "fast", {"lr": 0.2}, exact=True, max_epochs=5)
    first = _done(0, 0.94, epochs=60, recipe=RecipeAttr("fast", "fast", {"lr": 0.2}, True))
    d = policy.stretch([first, _done(1, 0.90)], 60, seed=7)
    assert d.kind == "ensemble" and d.epochs == 60 and d.params == first.params
    assert d.user_attrs[record.SEED_KEY] == 8 and "60 epochs" in d.reason
    # a best configuration that ran only shorter schedules: exploited on the long one, its
    # recipe on its whole schedule (no quick look)
    d = policy.stretch([_done(0, 0.93, epochs=5, recipe=look), _done(1, 0.90)], 50, seed=0)
    assert d.kind == "exploit" and d.epochs == 50 and d.user_attrs[record.SEED_KEY] == 1
    assert RecipeAttr.from_attr(d.user_attrs[RecipeAttr.KEY]).max_epochs == 0
    # the spec's mode; a diverged trial is never the best
    d = policy.stretch([_done(0, 0.30), _done(1, 0.25), _done(2, math.nan)], 50, mode="min")
    assert d.params == {"learning_rate": 0.2}
def test_a_trial_trains_its_planned_epochs_and_a_resumed_one_keeps_its_schedule():
    from sweeps import space

    sp = _spec(max_epochs=20)
    assert space.trial_epochs(sp, {}) == 20
    assert space.trial_epochs(sp, {space.EPOCHS_KEY: 14}) == 14  # the budget's fit
    assert space.trial_epochs(sp, {space.EPOCHS_KEY: 25}) == 25  # the policy's lengthening
    going_on = {space.RESUME_KEY: ResumeAttr("r", "/c", 22, 0, max_epochs=25).to_attr()}
    assert space.planned_epochs(sp, going_on) == 25  # not the spec's 20: its own schedule
    old = {space.RESUME_KEY: ResumeAttr("r", "/c", 2, 0).to_attr()}  # an earlier version's
    assert space.planned_epochs(sp, old) == 20


@pytest.mark.parametrize("last, reported", [(20, 12), (18, 0), (25, 0)])
def test_only_a_trial_on_the_specs_schedule_meets_the_schedulers_rungs(last, reported):
    # a shorter schedule anneals sooner and would look better at epoch 12 than it is; a
    # longer one later, and would be stopped for it (and past ASHA's max_t)
    from sweeps.trial import RUNG_KEY, rung

    assert rung(12, last, _spec(max_epochs=20)) == {RUNG_KEY: reported}


def test_the_compute_a_sweep_has_spent_is_read_from_its_record():
    rec = MemoryRecord("max", [_trial("a", 0.9, epoch=4.0), _trial("b", status="KILLED",
                                                                   epoch=2.0),
                               _trial("c", status="RUNNING", epoch=1.0)])
    rec.add(TrialRun("r", metrics={"train_images": 1250.0}), tag.REFIT)
    assert rec.images_used(n_train=100) == (4 + 2 + 1) * 100 + 1250


# ---------------------------------------------------------------- the budget policy


def _done(number, value, epochs=10, seed=None, recipe=None, **params):
    attrs = {}
    if seed is not None:
        attrs[record.SEED_KEY] = seed
    if recipe is not None:
        attrs[RecipeAttr.KEY] = recipe.to_attr()
    return policy.Done(number, value, params or {"learning_rate": 0.1 * (number + 1)}, attrs,
                       epochs)


def test_without_a_budget_or_a_finished_trial_the_sweep_explores():
    assert policy.decide([_done(0, 0.9)], None, 10).kind == "explore"
    assert policy.decide([], 2.0, 10).kind == "explore"
    assert policy.decide([_done(0, math.nan)], 2.0, 10).kind == "explore"  # diverged only


def test_a_budget_that_holds_many_full_trials_searches():
    d = policy.decide([_done(0, 0.9), _done(1, 0.8)], 40.0, 10)
    assert d.kind == "explore" and "40.0 full trials" in d.reason and d.params is None


def test_a_budget_that_holds_few_full_trials_runs_the_best_again_with_another_seed():
    d = policy.decide([_done(0, 0.90), _done(1, 0.93)], 3.0, 10, seed=7)
    assert d.kind == "ensemble" and d.params == {"learning_rate": 0.2}
    assert d.user_attrs == {record.SEED_KEY: 8}  # the second seed of trial 1's configuration
    two = policy.decide([_done(0, 0.90), _done(1, 0.93), _done(2, 0.92, seed=8,
                                                                 learning_rate=0.2)], 3.0, 10,
                        seed=7)
    assert two.kind == "ensemble" and two.user_attrs == {record.SEED_KEY: 9}


def test_a_recipes_quick_looks_and_its_whole_run_are_one_seed_not_three():
    recipe = RecipeAttr("fast", "fast", {"lr": 0.2}, True)
    runs = [_done(0, 0.90, epochs=5, recipe=dataclasses.replace(recipe, max_epochs=5)),
            _done(1, 0.92, epochs=10, recipe=dataclasses.replace(recipe, max_epochs=10)),
            _done(2, 0.94, epochs=20, recipe=recipe)]
    d = policy.decide(runs, 2.0, 20, seed=0)
    assert d.kind == "ensemble" and d.user_attrs[record.SEED_KEY] == 1


def test_once_the_best_configuration_has_its_members_the_sweep_searches_again():
    same = [_done(i, 0.93, seed=i, learning_rate=0.2) for i in range(policy.MEMBERS)]
    assert policy.decide(same, 2.0, 10).kind == "explore"


def test_a_best_trial_from_a_quick_look_is_run_on_the_whole_schedule():
    look = RecipeAttr("fast", "fast", {"lr": 0.2}, exact=True, max_epochs=5)
    d = policy.decide([_done(0, 0.93, epochs=5, recipe=look), _done(1, 0.90)], 2.0, 20)
    assert d.kind == "exploit" and "after 5 of 20 epochs" in d.reason
    assert RecipeAttr.from_attr(d.user_attrs[RecipeAttr.KEY]) == RecipeAttr(
        "fast", "fast", {"lr": 0.2}, exact=True)  # no max_epochs: the spec's whole schedule
    full = _done(2, 0.92, epochs=20, recipe=RecipeAttr("fast", "fast", {"lr": 0.2}, True),
                 learning_rate=0.1)  # the same recipe already ran in full
    assert policy.decide([_done(0, 0.93, epochs=5, recipe=look), full], 2.0,
                         20).kind == "ensemble"
    # a budget that cannot hold the whole schedule: another seed of it, fitted, instead
    assert policy.decide([_done(0, 0.93, epochs=5, recipe=look)], 0.5, 20).kind == "ensemble"


def test_a_budget_that_holds_less_than_an_epoch_leaves_the_rest_to_the_refit():
    d = policy.decide([_done(0, 0.9)], 0.09, 10)
    assert d.kind == "stop" and "refit" in d.reason
    assert policy.decide([_done(0, 0.9)], 0.6, 10).kind == "ensemble"  # fitted to 6 epochs


def test_the_policy_honours_the_specs_mode():
    d = policy.decide([_done(0, 0.30), _done(1, 0.25)], 2.0, 10, mode="min")
    assert d.params == {"learning_rate": 0.2}  # trial 1: the lower loss


def test_what_the_budget_holds_is_its_rest_over_a_full_trials_cost():
    assert policy.holds(300_000, 48_000 * 5) == pytest.approx(1.25)
    assert policy.holds(-5.0, 100.0) == 0.0 and policy.holds(None, 10.0) is None
    assert policy.holds(100.0, None) is None  # no pace measured yet


def test_no_budget_looks_at_the_first_recipe_on_a_shorter_schedule_first():
    def labels(**raw):
        return [s.label for s in warm.recipe_starts(_spec(family="fastcnn", start_from="recipe",
                                                          **raw))[0]]

    assert labels(budget="2h") == ["recipe fast"]
    assert labels(budget="25 epochs") == ["recipe fast"]
    assert labels(budget={"time": "2h", "epochs": 25}) == ["recipe fast"]


def test_a_budget_holds_the_other_recipes_back_for_the_policy_to_explore_with():
    import optuna

    sp = _spec(family=["fastcnn", "minivgg"], preset={"fastcnn": "fast"}, start_from="recipe",
               budget="2h", spaces={"minivgg": {"dropout": {"type": "uniform", "low": 0.2,
                                                            "high": 0.6}}})
    starts, _ = warm.recipe_starts(sp)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    said = []
    warm.enqueue(study, starts, said.append, budgeted=True)
    assert [t.user_attrs[record.WARM_KEY] for t in study.trials] == ["recipe fast"]
    held = [s.label for s in warm.pending(study)]
    assert held[0] == "recipe fast-minivgg" and "then, where the budget holds" in said[0]
    assert warm.take_pending(study).label == "recipe fast-minivgg"
    assert study.trials[-1].user_attrs[record.WARM_KEY] == "recipe fast-minivgg"
    assert [s.label for s in warm.pending(study)] == held[1:]
    unbudgeted = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    warm.enqueue(unbudgeted, starts, said.append)  # no budget: every recipe first, as before
    assert len(unbudgeted.trials) == len(starts) and warm.pending(unbudgeted) == []


def test_a_first_recipe_that_may_fill_a_time_budget_takes_one_long_schedule_where_few_fit():
    # its time holds N epochs at its first epoch's pace: one long schedule (the spec's 30
    # stretched 2.5x: 75) where N is about one, an equal part of N where a few, the spec's
    # 30 where more than FEW (a GPU: the search goes on after it); never more than N
    assert policy.fill_epochs(50, 30) == 50 and policy.fill_epochs(110, 30) == 110
    assert policy.fill_epochs(120, 30) == 60  # 1.6 long schedules: two of 60
    assert policy.fill_epochs(20, 30) == 20  # less than the spec's: all it holds
    assert policy.fill_epochs(301, 30) == 30 and policy.fill_epochs(5000, 30) == 30
    # planned on one more than FEW long schedules: a time that holds them all holds many
    assert policy.fill_cap(30) == 301 and policy.fill_epochs(policy.fill_cap(30), 30) == 30
    assert policy.fill_epochs(300, 30) == 75  # four long schedules: one of them


def test_a_trial_that_may_fill_the_budget_ends_by_its_report_not_the_search_window():
    b = Budget.of(_spec(budget="2h", final={"refit": True, "ensemble": 3}), started=0.0)
    search, fill = b.search_window(), b.fill_window()
    # the refit's and ensemble's shares too, and a quarter of the report's reserve
    assert fill.soft == b.after_end() + 90 == 7200 - 360 + 90
    assert fill.hard == fill.soft + 90 and fill.soft > search.hard
    parts = b.fill_window(parts=True)  # several parts keep the ensemble's share
    assert parts.soft == fill.soft - 360
    assert Budget.of(_spec(), started=0.0).fill_window() is None  # no time budget
