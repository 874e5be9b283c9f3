"""Several families in one sweep and warm starts, without training: the spec's rules, the
define-by-run space Optuna samples, and the configurations enqueued first."""

from __future__ import annotations

import copy

import optuna
import pytest
import yaml

from sweeps import space, warm
from sweeps import spec as specs
from sweeps.cli import main

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`

TWO = {
    "name": "two", "family": ["lenet5", "mlp"], "trials": 6, "max_epochs": 2,
    "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1}},
    "spaces": {"lenet5": {"conv1": {"type": "int", "low": 4, "high": 16}},
               "mlp": {"units": {"type": "int", "low": 64, "high": 512},
                       "layers": {"type": "int", "low": 1, "high": 4}}},
    "fixed": {"batch_size": 64},
}


def _two(**over):
    d = copy.deepcopy(TWO)
    d.update(over)
    return d


def test_a_two_family_spec_validates_and_round_trips():
    sp = specs.parse(_two(preset={"mlp": "general_to_specific"}), "s.yaml")
    assert sp.families == ("lenet5", "mlp") and sp.multi and sp.family == "lenet5,mlp"
    assert set(sp.space_of("mlp")) == {"learning_rate", "units", "layers"}
    assert set(sp.space_of("lenet5")) == {"learning_rate", "conv1"}
    assert sp.preset_of("mlp") == "general_to_specific" and sp.preset_of("lenet5") is None
    assert specs.parse(sp.as_mapping(), "s.yaml") == sp


@pytest.mark.parametrize(("raw", "message"), [
    (_two(family=["lenet5", "mlpp"]),
     "s.yaml: family[1]: must be a known family (did you mean 'mlp'?)"),
    (_two(spaces={"mlp": {"unitss": {"type": "int", "low": 64, "high": 512}}}),
     "s.yaml: spaces.mlp.unitss: mlp has no hyperparameter `unitss` (did you mean 'units'?)"),
    (_two(spaces={"lenet5": {"units": {"type": "int", "low": 64, "high": 512}}}),
     "s.yaml: spaces.lenet5.units: lenet5 has no hyperparameter `units`"),
    (_two(spaces={"resnet": {}}), "s.yaml: spaces.resnet: unknown key"),
    (_two(space={"conv1": {"type": "int", "low": 4, "high": 16}}),
     "s.yaml: space.conv1: mlp has no hyperparameter `conv1`"),
    (_two(spaces={"mlp": {"learning_rate": {"type": "uniform", "low": 0.1, "high": 0.2}}}),
     "s.yaml: spaces.mlp.learning_rate: must not also be in the shared space"),
    (_two(family=["mlp", "mlp"]),
     "s.yaml: family: must be a family or a non-empty list of distinct families"),
    (_two(preset="cnn5"), "s.yaml: preset: must map families to presets where there are several"),
    (_two(preset={"mlp": "cnn5"}), "s.yaml: preset.mlp: must be a preset of mlp"),
    (_two(spaces={"lenet5": {"dropout": {"type": "uniform", "low": 0.1, "high": 0.5}},
                  "mlp": {"dropout": {"type": "loguniform", "low": 0.1, "high": 0.5}}}),
     "s.yaml: spaces.mlp.dropout: must be searched as spaces.lenet5.dropout is (uniform): one "
     "kind of values per name in a study, but got 'loguniform'."),
    (_two(spaces={"lenet5": {"activation": {"type": "choice", "values": ["elu", "relu"]}},
                  "mlp": {"activation": {"type": "choice", "values": ["relu", "gelu"]}}}),
     "s.yaml: spaces.mlp.activation: must be searched as spaces.lenet5.activation is (choice "
     "['elu', 'relu'])"),
    (_two(start_from="recipes"), "s.yaml: start_from: must be one of ['recipe']"),
    (_two(warm_start=[3]), "s.yaml: warm_start: must be a list of sweep names, but got [3]."),
])
def test_a_bad_multi_family_spec_gives_its_message(raw, message):
    with pytest.raises(specs.SpecError) as e:
        specs.parse(raw, "s.yaml")
    assert str(e.value).startswith(message), str(e.value)


def test_a_knob_two_families_search_may_differ_in_range():
    sp = specs.parse(_two(spaces={"lenet5": {"dropout": {"type": "uniform", "low": 0.1,
                                                         "high": 0.5}},
                                  "mlp": {"dropout": {"type": "uniform", "low": 0.0,
                                                      "high": 0.3}}}), "s.yaml")
    assert sp.space_of("mlp")["dropout"].high == 0.3


def test_validate_says_a_bad_family_list_in_one_line_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_two(family=["lenet5", "nosuch"])))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: family[1]: must be a known family")


def test_each_trial_samples_its_familys_knobs_only():
    sp = specs.parse(TWO, "s.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    define = space.DefineByRun(sp)
    for _ in range(12):
        t = study.ask()
        define(t)
        study.tell(t, 0.5)
    seen = set()
    for t in study.trials:
        family = t.params["family"]
        seen.add(family)
        assert set(t.params) == {"family", *sp.space_of(family)}
        fam, preset, knobs = space.trial_setup(sp, t.params)
        assert fam == family and preset is None and "family" not in knobs
        assert knobs["batch_size"] == 64  # the shared fixed knobs
    assert seen == {"lenet5", "mlp"}


def test_start_from_recipe_makes_the_first_trials_the_recipes_exact_configurations():
    from fmnist import train

    sp = specs.parse(_two(start_from="recipe"), "s.yaml")
    starts = warm.plan(sp, optuna.storages.InMemoryStorage(), None, say=lambda s: None)
    assert [s.label for s in starts] == ["recipe 000-cnn5", "recipe 002-mlp"]
    study = optuna.create_study()
    warm.enqueue(study, starts, say=lambda s: None)
    define = space.DefineByRun(sp)
    from fmnist.writeups import REFS

    for ref in (r for r in REFS if r.row in ("000-cnn5", "002-mlp")):
        t = study.ask()
        carried = define(t)  # as Ray's OptunaSearch builds a config: the suggested, the carried
        config = {**t.params, **carried}
        family, preset, knobs = space.trial_setup(sp, config)
        # what the trial trains is what the recipe trains, whatever the spec fixes (batch 64
        # here too, by chance) or searches
        want = train.split_hp(ref.family, {k: v for k, v in ref.recipe.items()
                                           if k != "max_epochs"}, ref.preset)
        assert (family, preset) == (ref.family, ref.preset)
        assert train.split_hp(family, knobs, preset) == want
        assert config[space.WARM_KEY] == f"recipe {ref.row}"
        study.tell(t, 0.5)


def test_under_a_budget_the_first_recipe_goes_first_on_its_whole_schedule():
    # no shorter look at it first: the budget fits its schedule to the time where it must
    for budget in ("30m", "25 epochs", None):
        raw = _two(start_from="recipe", max_epochs=20, **({"budget": budget} if budget else {}))
        sp = specs.parse(raw, "s.yaml")
        starts = warm.plan(sp, optuna.storages.InMemoryStorage(), None, say=lambda s: None)
        assert [s.label for s in starts] == ["recipe 000-cnn5", "recipe 002-mlp"], budget
        assert space.trial_epochs(sp, {**starts[0].params, **starts[0].user_attrs}) == 20
        assert space.trial_epochs(sp, {"family": "mlp"}) == 20  # a sampled trial: the spec's


def test_a_recipe_the_space_cannot_hold_is_left_out_and_said():
    raw = _two(start_from="recipe")
    raw["spaces"]["mlp"]["layers"] = {"type": "int", "low": 1, "high": 3}  # 002's has 4
    said = []
    starts = warm.plan(specs.parse(raw, "s.yaml"), optuna.storages.InMemoryStorage(), None,
                       say=said.append)
    assert [s.label for s in starts] == ["recipe 000-cnn5"]
    assert said == ["start_from: recipe 002-mlp left out: its layers 4 is outside the spec's "
                    "space for layers"]


def test_a_study_with_trials_is_not_warm_started_again():
    storage = optuna.storages.InMemoryStorage()
    sp = specs.parse(_two(start_from="recipe"), "s.yaml")
    study = optuna.create_study(study_name="two", storage=storage)
    study.enqueue_trial({"family": "mlp"})
    assert warm.plan(sp, storage, None, say=lambda s: None) == []


def _run(name, family, acc, status="FINISHED", epoch_s=(2.0,)):
    from types import SimpleNamespace as NS

    return NS(info=NS(run_id=name, run_name=name, status=status, start_time=0),
              data=NS(params={"family": family, "learning_rate": "0.01"},
                      metrics={"val/acc_best": acc, "objective": acc, "train_s": 10.0},
                      tags={}))


def test_the_report_groups_a_multi_family_sweep_by_family_and_colours_each():
    from sweeps import report

    runs = [_run("a", "lenet5", 0.80), _run("b", "mlp", 0.85), _run("c", "lenet5", 0.82),
            _run("d", "mlp", 0.0, status="FAILED")]
    sw = report.Sweep("two", parent=None, trials=runs, spec={
        "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 0.1}},
        "spaces": {"mlp": {"units": {"type": "int", "low": 64, "high": 512}}}},
        histories={r.info.run_id: {"epoch_s": [(1, 2.0), (2, 4.0)]} for r in runs})
    assert sw.searched == ["learning_rate", "units"]  # the shared knobs and each family's
    assert [(r["family"], r["trials"], r["finished"], r["best val/acc"], r["best trial"])
            for r in report.family_rows(sw)] == [("mlp", 2, 1, 0.85, "b"),
                                                 ("lenet5", 2, 2, 0.82, "c")]
    colours = report.family_colours(sw)
    assert set(colours) == {"lenet5", "mlp"} and colours["lenet5"] != colours["mlp"]
