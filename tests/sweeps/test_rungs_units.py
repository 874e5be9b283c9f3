"""Several objectives, with made-up results (milliseconds): the spec's ``objectives`` and its
checks, and multi-objective ASHA's rung decision (a point dominated at its rung stops, a point on
the rung's front goes on, the rest by NSGA-II's order)."""

from __future__ import annotations

import math

import pytest

from sweeps import rungs
from sweeps import spec as spec_

pytestmark = pytest.mark.unit

ACC_LAT = {"val/acc": "max", "cost/latency_ms": "min"}


def _spec(**raw):
    return spec_.parse({"name": "s", "family": "lenet5", **raw})


def test_objectives_set_the_metric_its_mode_and_one_direction_per_cost_in_order():
    s = _spec(objectives={"val/acc": "max", "latency_ms": "min", "params": "min"})
    assert (s.metric, s.mode) == ("val/acc", "max")
    assert s.objective_modes == {"val/acc": "max", "cost/latency_ms": "min",
                                 "cost/params": "min"}
    assert s.directions == ["maximize", "minimize", "minimize"]
    assert spec_.parse(s.as_mapping()) == s  # round trip, as a resumed sweep's record holds it
    assert _spec().directions == ["maximize"] and not _spec().multi_objective


@pytest.mark.parametrize("raw, says", [
    ({"objectives": {"val/acc": "max"}}, "objectives: must map one training metric and at "
                                         "least one cost"),
    ({"objectives": {"latency_ms": "min", "params": "min"}}, "objectives: must map one"),
    ({"objectives": {"val/acc": "max", "val/loss": "min", "params": "min"}},
     "objectives: must map one"),
    ({"objectives": {"val/acc": "up", "params": "min"}},
     "objectives.val/acc: must be one of ['max', 'min'], but got 'up'"),
    ({"objectives": {"val/acc": "max", "latncy_ms": "min"}},
     "objectives.latncy_ms: unknown key (did you mean 'latency_ms'?)"),
    ({"objectives": ["val/acc"]}, "objectives: must be a mapping"),
    ({"metric": "val/loss", "objectives": {"val/acc": "max", "params": "min"}},
     "metric: must be the objectives' own (val/acc) or left out, but got 'val/loss'"),
    ({"sampler": {"type": "cmaes"}, "objectives": {"val/acc": "max", "params": "min"}},
     "sampler.type: must not be cmaes with several objectives"),
    ({"scheduler": {"type": "median"}, "objectives": {"val/acc": "max", "params": "min"}},
     "scheduler.type: must be asha (multi-objective ASHA) or fifo"),
])
def test_a_bad_objectives_key_is_one_line_naming_the_key_and_the_rule(raw, says):
    with pytest.raises(spec_.SpecError) as e:
        _spec(**raw)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_fronts_and_crowding_order_points_as_nsga2_does():
    # minimised (negated accuracy, latency)
    pts = [(-0.90, 1.0), (-0.85, 0.5), (-0.88, 0.9), (-0.80, 2.0), (-0.89, 0.7)]
    assert rungs.fronts(pts) == [[0, 1, 4], [2], [3]]
    dist = rungs.crowding(pts, [0, 1, 4])
    assert dist[0] == dist[1] == math.inf and 0 < dist[4] < math.inf
    assert rungs.nsga2_order(pts) == [0, 1, 4, 2, 3]


def test_a_point_dominated_at_its_rung_stops_and_one_on_the_front_goes_on():
    before = [rungs.minimised(v, ["max", "min"]) for v in [(0.90, 1.0), (0.85, 0.5),
                                                         (0.80, 0.3)]]
    # worse on both than (0.90, 1.0): dominated, and not in the top third of four
    assert not rungs.goes_on(rungs.minimised((0.86, 1.2), ["max", "min"]), before, 3)
    # less accurate than all of them, but the fastest: on the front, goes on
    assert rungs.goes_on(rungs.minimised((0.70, 0.1), ["max", "min"]), before, 3)
    # the most accurate: on the front
    assert rungs.goes_on(rungs.minimised((0.95, 2.0), ["max", "min"]), before, 3)
    # the first at a rung always goes on, as in ASHA
    assert rungs.goes_on((0.0, 0.0), [], 3)


def test_a_dominated_point_goes_on_when_it_is_in_the_rungs_top_share():
    # two points before: with itself, ceil(3 / 1.5) = 2 go on; dominated by one only, it is
    # second in NSGA-II's order (second front, ahead of nothing), so it goes on at factor 1.5
    before = [(-0.9, 1.0), (-0.5, 5.0)]
    point = (-0.8, 2.0)
    assert rungs.fronts([*before, point]) == [[0], [2], [1]]
    assert rungs.goes_on(point, before, 1.5)
    assert not rungs.goes_on(point, before, 3)


def test_rungs_are_the_grace_period_times_powers_of_the_reduction_factor_below_max_t():
    assert rungs.milestones(1, 3, 21) == [1, 3, 9]
    assert rungs.milestones(2, 2, 17) == [2, 4, 8, 16]


def test_the_rungs_decide_each_trial_once_per_rung_at_the_highest_it_reached():
    r = rungs.Rungs(ACC_LAT, grace_period=1, reduction_factor=3, max_t=10)
    seen = {"a": (0.90, 1.0), "b": (0.85, 0.5), "c": (0.80, 0.3)}
    for tid, (acc, lat) in seen.items():
        assert r.goes_on(tid, 1, {"val/acc": acc, "cost/latency_ms": lat})
    # dominated by a at rung 1 and not in its top share: stops there
    assert not r.goes_on("d", 1, {"val/acc": 0.86, "cost/latency_ms": 1.2})
    assert r.stopped == {"d": 1}
    # epoch 2 is no rung: a goes on without being placed again
    assert r.goes_on("a", 2, {"val/acc": 0.91, "cost/latency_ms": 1.0})
    assert list(r.recorded[3]) == []
    # a result without an objective (no epoch yet, NaN) goes on and is not recorded
    assert r.goes_on("e", 1, {"cost/latency_ms": 0.2})
    assert r.goes_on("e", 1, {"val/acc": float("nan"), "cost/latency_ms": 0.2})
    assert "e" not in r.recorded[1]
    # a trial that reached rung 3 first is placed there only, once
    assert r.goes_on("f", 3, {"val/acc": 0.5, "cost/latency_ms": 9.0})
    assert "f" in r.recorded[3] and "f" not in r.recorded[1]
    assert r.goes_on("f", 3, {"val/acc": 0.1, "cost/latency_ms": 9.0})  # placed already


def _trial(number, objective, **costs_):
    from sweeps import tags as tag
    from sweeps.record import TrialRun

    metrics = {"objective": objective, **{f"cost/{k}": v for k, v in costs_.items()}}
    return TrialRun(f"r{number}", "FINISHED", {}, metrics,
                    {tag.ROLE: tag.TRIAL, tag.OPTUNA_TRIAL: str(number)})


def test_the_front_is_the_usable_trials_nothing_beats_on_every_objective_best_first():
    from sweeps.record import TrialRun, front

    runs = [_trial(0, 0.90, latency_ms=1.0), _trial(1, 0.85, latency_ms=0.5),
            _trial(2, 0.86, latency_ms=1.2),  # beaten by 0 on both
            _trial(3, 0.95, latency_ms=3.0), _trial(4, float("nan"), latency_ms=0.1),
            _trial(5, 0.99),  # no latency recorded: not placed
            TrialRun("r6", "KILLED", {}, {"objective": 0.99, "cost/latency_ms": 0.01}, {})]
    assert [r.number for r in front(runs, ACC_LAT)] == [3, 0, 1]


def test_each_cost_alias_names_the_best_on_that_cost_within_one_point_of_the_most_accurate():
    from sweeps import final

    s = _spec(objectives={"val/acc": "max", "latency_ms": "min", "params": "min"})
    front = [_trial(3, 0.950, latency_ms=3.0, params=900), _trial(0, 0.945, latency_ms=1.0,
                                                                 params=5000),
             _trial(1, 0.930, latency_ms=0.2, params=100)]  # 2 points below: not a choice
    chosen = final.aliases(front, s)
    assert {k: r.number for k, r in chosen.items()} == {"fastest": 0, "smallest": 3}
    assert final.aliases([], s) == {}


def test_a_sweep_begun_with_other_objectives_is_one_line_and_its_study_is_left_as_it_was():
    import optuna

    from sweeps import space

    storage = optuna.storages.InMemoryStorage()
    first = space.open_study(_spec(objectives={"val/acc": "max", "latency_ms": "min"}), storage)
    assert space.open_study(_spec(objectives={"val/acc": "max", "latency_ms": "min"}),
                            storage)._study_id == first._study_id  # the same, resumed
    with pytest.raises(spec_.SpecError) as e:
        space.open_study(_spec(), storage)
    assert str(e.value) == ("<spec>: objectives: must be those the sweep s began with "
                            "(maximize, minimize), but got maximize.")
    assert [d.name for d in optuna.load_study(study_name="s", storage=storage).directions] == [
        "MAXIMIZE", "MINIMIZE"]

