"""One name -> builder map. Each family module registers one builder and declares its
hyperparameters (name, kind, default, range or choices) and its named presets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fmnist.errors import ConfigError
from fmnist.hparams import HP, check_all, did_you_mean


@dataclass(frozen=True)
class Family:
    name: str
    builder: Callable[[dict[str, Any]], Any]
    hps: dict[str, HP]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    # per preset, the training knobs it sets too (checked by fmnist.train.knobs)
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def doc(self) -> str:
        return (self.builder.__doc__ or "").strip()


_REGISTRY: dict[str, Family] = {}


def register(
    name: str,
    hps: list[HP],
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "",
    recipes: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[Callable[[dict[str, Any]], Any]], Callable[[dict[str, Any]], Any]]:
    """Decorator: register ``builder(hp) -> keras.Model`` as family ``name``, with its declared
    ``hps``, named ``presets`` of them and, per preset, a training ``recipe`` (training knobs
    the preset sets as well)."""

    def deco(builder: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        if name in _REGISTRY:
            raise ValueError(f"model family {name!r} is already registered.")
        fam = Family(name, builder, {h.name: h for h in hps},
                     {k: dict(v) for k, v in (presets or {}).items()}, source,
                     {k: dict(v) for k, v in (recipes or {}).items()})
        if set(fam.recipes) - set(fam.presets):
            raise ValueError(f"{name}: recipes {sorted(set(fam.recipes) - set(fam.presets))} "
                             f"name no preset.")
        for preset, values in fam.presets.items():  # a preset is checked like user input
            _resolve(fam, values, label=f"{name} preset {preset!r}")
        _REGISTRY[name] = fam
        return builder

    return deco


def families() -> list[str]:
    return sorted(_REGISTRY)


def get_family(name: str) -> Family:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}{did_you_mean(name, _REGISTRY)}; "
                         f"known families: {', '.join(families())}.") from None


def hyperparameters(family: str) -> dict[str, HP]:
    return dict(get_family(family).hps)


def recipe(family: str, preset: str) -> dict[str, Any]:
    """The training knobs ``preset`` of ``family`` sets (empty where it sets none)."""
    fam = get_family(family)
    if preset not in fam.presets:
        resolve(family, {}, preset)  # the unknown preset's message
    return dict(fam.recipes.get(preset, {}))


def presets(family: str) -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in get_family(family).presets.items()}


def _resolve(fam: Family, hp: Mapping[str, Any], label: str) -> dict[str, Any]:
    return check_all(label, fam.hps, hp)


def resolve(family: str, hp: Mapping[str, Any] | None = None,
            preset: str | None = None) -> dict[str, Any]:
    """Defaults, then the preset's values, then ``hp``; every value checked against its rule."""
    fam = get_family(family)
    merged: dict[str, Any] = {}
    if preset is not None:
        if preset not in fam.presets:
            raise ConfigError(f"{family}: unknown preset {preset!r}"
                             f"{did_you_mean(preset, fam.presets)}; presets: "
                             f"{', '.join(sorted(fam.presets)) or 'none'}.")
        merged.update(fam.presets[preset])
    merged.update(hp or {})
    return _resolve(fam, merged, label=family)


def build(family: str, hp: Mapping[str, Any] | None = None, preset: str | None = None,
          name: str | None = None):
    """Build a ``keras.Model`` of ``family``: input images (N, 28, 28) or (N, 28, 28, 1) with
    pixel values 0..255 (uint8 or float; the model scales them), output 10 softmax
    probabilities.

    >>> from fmnist import models
    >>> m = models.build("skipcnn", preset="cnn2")
    >>> m.count_params()
    211950
    """
    values = resolve(family, hp, preset)
    model = get_family(family).builder(values)
    if name:
        model.name = name
    return model
