"""The spec validator, one bad spec per rule, each message asserted (file, key path, rule,
value). No training."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from sweeps import spec as specs
from sweeps.cli import main

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`

GOOD = {
    "name": "t", "family": "minivgg", "trials": 4, "max_epochs": 3,
    "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
              "blocks": {"type": "int", "low": 2, "high": 3},
              "shuffle": {"type": "choice", "values": [True, False]}},
    "fixed": {"batch_size": 64},
}


def _with(path: str, value):
    d = copy.deepcopy(GOOD)
    keys = path.split(".")
    node = d
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        node.pop(keys[-1])
    else:
        node[keys[-1]] = value
    return d


_DELETE = object()

CORPUS = [
    ("unknown top key", _with("trails", 3), "s.yaml: trails: unknown key (did you mean 'trials'?)"),
    ("unknown sub key", _with("scheduler.grace", 2),
     "s.yaml: scheduler.grace: unknown key (did you mean 'grace_period'?)"),
    ("missing family", _with("family", _DELETE), "s.yaml: family: is required."),
    ("unknown family", _with("family", "minivg"),
     "s.yaml: family: must be a known family (did you mean 'minivgg'?)"),
    ("unknown preset", _with("preset", "vgg16"), "s.yaml: preset: must be a preset of minivgg"),
    ("hp the family lacks", _with("space.widen", {"type": "int", "low": 1, "high": 4}),
     "s.yaml: space.widen: minivgg has no hyperparameter `widen`"),
    ("misspelt hp", _with("space.dropuot", {"type": "uniform", "low": 0.1, "high": 0.5}),
     "s.yaml: space.dropuot: minivgg has no hyperparameter `dropuot` (did you mean 'dropout'?)"),
    ("range outside the family's", _with("space.blocks", {"type": "int", "low": 1, "high": 3}),
     "s.yaml: space.blocks: must lie within minivgg's declared range [2, 4] for `blocks`, but "
     "got (low=1, high=3)."),
    ("low >= high", _with("space.dropout", {"type": "uniform", "low": 0.5, "high": 0.5}),
     "s.yaml: space.dropout: low < high must hold, but got (low=0.5, high=0.5)."),
    ("log with low <= 0", _with("space.learning_rate",
                                {"type": "loguniform", "low": 0.0, "high": 0.1}),
     "s.yaml: space.learning_rate: low > 0 must hold for a log scale, but got "
     "(low=0.0, high=0.1)."),
    ("empty choice", _with("space.shuffle", {"type": "choice", "values": []}),
     "s.yaml: space.shuffle.values: must be a non-empty list, but got []."),
    ("bad choice value", _with("space.batch_norm", {"type": "choice", "values": [True, "no"]}),
     "s.yaml: space.batch_norm.values: minivgg: hyperparameter `batch_norm` must be true or "
     "false, but got 'no'."),
    ("unknown distribution", _with("space.dropout", {"type": "normal", "low": 0, "high": 1}),
     "s.yaml: space.dropout.type: must be one of ['loguniform', 'uniform', 'int', 'choice']"),
    ("float range on an int hp", _with("space.blocks", {"type": "uniform", "low": 2, "high": 4}),
     "s.yaml: space.blocks.type: must be `int` for minivgg's int hyperparameter `blocks`"),
    ("test metric", _with("metric", "test/acc"),
     "s.yaml: metric: must be a validation or training metric: selection never sees the test "
     "set, but got 'test/acc'."),
    ("metric not reported", _with("metric", "val/f1"), "s.yaml: metric: must be one of"),
    ("trials zero", _with("trials", 0), "s.yaml: trials: must be an integer >= 1, but got 0."),
    ("fractional trials", _with("trials", 2.5), "s.yaml: trials: must be an integer"),
    ("negative gpu", _with("resources.gpu", -1), "s.yaml: resources.gpu: must be a number >= 0"),
    ("zero cpu", _with("resources.cpu", 0), "s.yaml: resources.cpu: must be a number > 0"),
    ("unknown sampler", _with("sampler.type", "grid"), "s.yaml: sampler.type: must be one of"),
    ("unknown scheduler", _with("scheduler.type", "hyperband"),
     "s.yaml: scheduler.type: must be one of ['asha', 'median', 'fifo']"),
    ("grace beyond max_epochs", _with("scheduler.grace_period", 5),
     "s.yaml: scheduler.grace_period: must be <= max_epochs (3), but got 5."),
    ("val fraction", _with("data.val_fraction", 1.5), "s.yaml: data.val_fraction: must be"),
    ("fixed out of range", _with("fixed.dropout", 1.2),
     "s.yaml: fixed.dropout: minivgg: hyperparameter `dropout` must be a number in [0, 0.9]"),
    ("fixed and searched", _with("fixed.blocks", 3),
     "s.yaml: fixed.blocks: must not also be searched in space"),
    ("reserved key", _with("fixed.max_epochs", 3),
     "s.yaml: fixed.max_epochs: is set by the spec's `max_epochs`, not here"),
    ("bad name", _with("name", "a/b"), "s.yaml: name: must be a non-empty string without '/'"),
]


@pytest.mark.parametrize(("case", "raw", "message"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_spec_gives_its_message(case, raw, message):
    with pytest.raises(specs.SpecError) as e:
        specs.parse(raw, "s.yaml")
    assert str(e.value).startswith(message), str(e.value)


def test_good_spec_parses_and_defaults(tmp_path):
    sp = specs.parse(GOOD, "s.yaml")
    assert (sp.metric, sp.mode, sp.sampler, sp.scheduler) == ("val/acc", "max", "tpe", "asha")
    assert sp.space["learning_rate"].type == "loguniform"
    assert sp.fixed == {"batch_size": 64}
    assert specs.parse(sp.as_mapping(), "s.yaml") == sp
    full = specs.load("search_spaces/minivgg.yaml")
    assert specs.parse(full.as_mapping(), full.path) == full


def test_loss_metric_defaults_to_min():
    assert specs.parse(_with("metric", "val/loss")).mode == "min"


def test_not_yaml_names_the_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nfamily: [lenet5\n")
    with pytest.raises(specs.SpecError, match=r"broken\.yaml: not valid YAML at line 3"):
        specs.load(p)


@pytest.mark.parametrize("path", sorted(Path("search_spaces").glob("*.yaml")))
def test_shipped_specs_validate(path):
    specs.load(path)


def test_validate_command(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("trials", 0)))
    assert main(["validate", "search_spaces/minivgg.yaml"]) == 0
    out = capsys.readouterr().out
    assert "ok  search_spaces/minivgg.yaml: minivgg" in out and out.rstrip().endswith("budget 2h")
    assert main(["validate", "search_spaces/all.yaml"]) == 0
    out = capsys.readouterr().out  # each family's own knobs are counted, not only the shared
    assert "shared 0 searched; fastcnn: 4 searched (learning_rate, label_smoothing" in out
    assert main(["validate", str(bad)]) == 2
    assert f"{bad}: trials: must be an integer >= 1, but got 0." in capsys.readouterr().err


def test_overrides_obey_the_files_rules():
    sp = specs.parse(_with("scheduler", {"type": "asha", "grace_period": 3}), "s.yaml")
    assert specs.override(sp) is sp and specs.override(sp, trials=None) is sp
    short = specs.override(sp, max_epochs=1, trials=2, subset=500, name="quick")
    assert (short.max_epochs, short.grace_period, short.trials, short.subset, short.name) == (
        1, 1, 2, 500, "quick")  # a max_epochs below the grace period lowers it
    assert specs.override(sp, max_epochs=10).grace_period == 3
    with pytest.raises(specs.SpecError, match=r"s\.yaml: max_epochs: must be an integer >= 1"):
        specs.override(sp, max_epochs=0)


@pytest.mark.unit
@pytest.mark.parametrize(("value", "seconds"), [
    ("2h", 7200.0), ("45m", 2700.0), ("90s", 90.0), ("1h30m", 5400.0), (600, 600.0),
    ("600", 600.0), (" 1.5h ", 5400.0), ("0s", None), ("soon", None), ("2d", None),
    ("5m then", None), (True, None), (-3, None), ([1], None),
])
def test_durations(value, seconds):
    from sweeps import spec as specs

    assert specs.parse_duration(value) == seconds
    if seconds:  # what a spec could write back reads as the same duration
        assert specs.parse_duration(specs.format_duration(seconds)) == seconds


@pytest.mark.unit
def test_a_budget_in_the_spec_is_checked_and_kept(tmp_path):
    from sweeps import spec as specs

    good = specs.parse({"name": "b", "family": "lenet5", "budget": "2h"})
    assert good.budget_s == 7200.0 and specs.parse(good.as_mapping()) == good
    with pytest.raises(specs.SpecError, match=r"^<spec>: budget: must be a duration above 0"):
        specs.parse({"name": "b", "family": "lenet5", "budget": "two hours"})
