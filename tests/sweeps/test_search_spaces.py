"""Until the spec validator of issue 5 exists: the shipped search spaces name only declared
hyperparameters, inside their declared ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fmnist import models, train

SPACES = sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml"))


def test_there_is_a_minivgg_space():
    assert "minivgg.yaml" in [p.name for p in SPACES]


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_space_keys_and_ranges_are_declared(path):
    spec = yaml.safe_load(path.read_text())
    families = spec["family"] if isinstance(spec["family"], list) else [spec["family"]]
    for family in families:  # a multi-family spec: the shared space and each family's own
        declared = {**train.HYPERPARAMETERS, **models.hyperparameters(family)}
        train.split_hp(family, spec.get("fixed", {}))  # fixed values obey their rules
        own = {**spec.get("space", {}), **spec.get("spaces", {}).get(family, {})}
        for key, dist in own.items():
            assert key in declared, f"{path.name}: space.{key} is not declared for {family}"
            hp = declared[key]
            values = dist["values"] if dist["type"] == "choice" else [dist["low"], dist["high"]]
            for v in values:
                hp.check(family, v)


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_shipped_spec_validates_and_ends_within_a_budget(path):
    from sweeps import spec as specs

    spec = specs.load(path)
    assert spec.budget_s is not None and spec.budget_s <= 2 * 3600, \
        f"{path.name}: `make run` on a 2-core machine must end in about 2 hours"
