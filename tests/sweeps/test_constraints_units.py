"""Constraints on a model's costs, with made-up numbers (milliseconds): the bounds' arithmetic,
the spec's checks, and what the final phase may add to a model under them (an ensemble adds
its members' costs, test-time augmentation multiplies them by its views)."""

from __future__ import annotations

import pytest

from fmnist import costs
from fmnist.costs import Bound
from sweeps import final
from sweeps import spec as spec_
from sweeps import tags as tag
from sweeps.record import MemoryRecord, TrialRun

pytestmark = pytest.mark.unit


def _spec(**raw):
    return spec_.parse({"name": "s", "family": "lenet5", **raw})


def _run(run_id, objective=None, **measured):
    metrics = {costs.PREFIX + k: v for k, v in measured.items()}
    if objective is not None:
        metrics["objective"] = objective
    return TrialRun(run_id, "FINISHED", {}, metrics, {tag.ROLE: tag.TRIAL})


def test_a_bound_says_how_far_a_cost_is_outside_it_relative_to_the_bound():
    assert Bound(max=100).violation(125) == pytest.approx(0.25)
    assert Bound(max=100).violation(80) == pytest.approx(-0.2)  # inside: <= 0, Optuna's rule
    assert Bound(min=1000).violation(500) == pytest.approx(0.5)
    assert Bound(min=10, max=20).violation(15) < 0
    assert Bound(min=10, max=20).violation(30) == pytest.approx(0.5)


def test_violations_name_each_broken_bound_and_skip_costs_not_measured():
    bounds = {"params": Bound(max=100_000), "latency_ms": Bound(max=0.5),
              "images_per_s": Bound(min=5000)}
    said = costs.violations({"params": 120_000, "latency_ms": 0.4, "images_per_s": 100},
                            bounds)
    assert said == ["params 1.2e+05 > max 100,000", "images_per_s 100 < min 5,000"]
    assert costs.violations({"params": 90_000}, bounds) == []  # the latencies not measured
    assert costs.constraint_values({"params": 50_000}, bounds) == [-0.5, 0.0, 0.0]


def test_an_ensemble_adds_its_members_costs_and_tta_multiplies_them():
    a = {"params": 10.0, "macs": 100.0, "latency_ms": 0.2, "images_per_s": 1000.0}
    b = {"params": 30.0, "macs": 300.0, "latency_ms": 0.3, "images_per_s": 1000.0}
    both = costs.combined([a, b])
    assert both == {"params": 40.0, "macs": 400.0, "latency_ms": pytest.approx(0.5),
                    "images_per_s": pytest.approx(500.0)}
    six = costs.combined([a], views=6)
    assert six["params"] == 10.0 and six["macs"] == 600.0
    assert six["latency_ms"] == pytest.approx(1.2) and six["images_per_s"] == pytest.approx(
        1000 / 6)


def test_the_spec_takes_constraints_and_keeps_them_through_its_yaml_form():
    s = _spec(constraints={"params": {"max": 100000}, "latency_ms": {"max": 0.5},
                           "images_per_s": {"min": 2000}})
    assert s.constraints == {"params": Bound(max=100000), "latency_ms": Bound(max=0.5),
                             "images_per_s": Bound(min=2000)}
    assert spec_.parse(s.as_mapping()) == s
    assert s.resolved()["constraints"]["latency_ms"] == {"max": 0.5}
    assert _spec().constraints == {}


@pytest.mark.parametrize("raw, said", [
    ({"latency": {"max": 1}}, "constraints.latency: unknown key (did you mean 'latency_ms'?)"),
    ({"params": 100000}, "constraints.params: must be a mapping of min and/or max"),
    ({"params": {}}, "constraints.params: must be a mapping of min and/or max"),
    ({"params": {"max": 0}}, "constraints.params.max: must be a number > 0"),
    ({"params": {"below": 5}}, "constraints.params.below: unknown key"),
    ({"macs": {"min": 10, "max": 5}}, "constraints.macs: min <= max must hold"),
    ({"params": {"max": "100k"}}, "constraints.params.max: must be a number"),
])
def test_a_bad_constraint_is_one_line_naming_the_key_and_the_rule(raw, said):
    with pytest.raises(spec_.SpecError) as e:
        _spec(constraints=raw)
    assert said in str(e.value) and "\n" not in str(e.value)


def test_the_final_phase_keeps_tta_and_an_ensemble_only_within_the_constraints():
    s = _spec(constraints={"latency_ms": {"max": 1.0}})
    fast, slow = _run("a", 0.9, latency_ms=0.3), _run("b", 0.9, latency_ms=0.8)
    assert final.breaks(s, [fast], "none") == ""
    assert final.breaks(s, [fast], "flip") == ""  # 2 views: 0.6 ms
    assert final.breaks(s, [fast], "flip_shift") == "latency_ms 1.8 > max 1"  # 6 views
    assert final.breaks(s, [fast, slow], "none") == "latency_ms 1.1 > max 1"
    assert final.breaks(_spec(), [fast, slow], "flip_shift") == ""  # no constraints
    assert final.breaks(s, [_run("old", 0.9)], "flip_shift") == ""  # costs not recorded


def test_an_infeasible_trial_is_never_the_best_and_says_why():
    infeasible = TrialRun("x", "FINISHED", {}, {"epochs": 0, costs.PREFIX + "params": 2e5},
                          {tag.ROLE: tag.TRIAL, tag.INFEASIBLE: "params 2e+05 > max 100,000"})
    feasible = _run("y", 0.8, params=5e4)
    rec = MemoryRecord("max", [infeasible, feasible])
    assert rec.best() is feasible
    assert infeasible.infeasible.startswith("params") and feasible.infeasible == ""
    assert infeasible.costs == {"params": 2e5} and not infeasible.usable
