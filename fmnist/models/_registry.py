"""One name -> builder map. Each family module registers one builder and declares its
hyperparameters (name, kind, default, range or choices) and its named presets."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("int", "float", "bool", "choice")


@dataclass(frozen=True)
class HP:
    """A declared hyperparameter: ``kind`` is int, float, bool or choice; ints and floats have an
    inclusive ``[low, high]`` range, choices a tuple of allowed values."""

    name: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"HP {self.name}: kind must be one of {KINDS}, but got {self.kind!r}.")
        if self.kind in ("int", "float") and (self.low is None or self.high is None):
            raise ValueError(f"HP {self.name}: a numeric hyperparameter needs low and high.")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"HP {self.name}: a choice hyperparameter needs choices.")

    @property
    def rule(self) -> str:
        if self.kind == "bool":
            return "must be true or false"
        if self.kind == "choice":
            return f"must be one of {list(self.choices or ())}"
        return f"must be {'an integer' if self.kind == 'int' else 'a number'} in " \
               f"[{_fmt(self.low)}, {_fmt(self.high)}]"

    def check(self, family: str, value: Any) -> Any:
        """Return ``value`` in its canonical type, or raise a ValueError naming the rule."""

        def bad() -> ValueError:
            return ValueError(f"{family}: hyperparameter `{self.name}` {self.rule}, "
                              f"but got {value!r}.")

        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise bad()
        if self.kind == "choice":
            for c in self.choices or ():
                if value == c and type(value) is not bool or value is c:
                    return c
            raise bad()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        if self.kind == "int":
            if float(value) != int(value):
                raise bad()
            value = int(value)
        else:
            value = float(value)
        if not (self.low <= value <= self.high):  # type: ignore[operator]
            raise bad()
        return value


def _fmt(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Family:
    name: str
    builder: Callable[[dict[str, Any]], Any]
    hps: dict[str, HP]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    @property
    def doc(self) -> str:
        return (self.builder.__doc__ or "").strip()


_REGISTRY: dict[str, Family] = {}


def register(
    name: str,
    hps: list[HP],
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "",
) -> Callable[[Callable[[dict[str, Any]], Any]], Callable[[dict[str, Any]], Any]]:
    """Decorator: register ``builder(hp) -> keras.Model`` as family ``name``."""

    def deco(builder: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        if name in _REGISTRY:
            raise ValueError(f"model family {name!r} is already registered.")
        fam = Family(name, builder, {h.name: h for h in hps},
                     {k: dict(v) for k, v in (presets or {}).items()}, source)
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
        raise ValueError(f"unknown model family {name!r}{_did_you_mean(name, _REGISTRY)}; "
                         f"known families: {', '.join(families())}.") from None


def hyperparameters(family: str) -> dict[str, HP]:
    return dict(get_family(family).hps)


def presets(family: str) -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in get_family(family).presets.items()}


def _did_you_mean(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resolve(fam: Family, hp: Mapping[str, Any], label: str) -> dict[str, Any]:
    values = {k: h.default for k, h in fam.hps.items()}
    for key, value in hp.items():
        if key not in fam.hps:
            raise ValueError(f"{label}: unknown hyperparameter `{key}`{_did_you_mean(key, fam.hps)}"
                             f"; it has: {', '.join(sorted(fam.hps))}.")
        values[key] = fam.hps[key].check(label, value)
    return values


def resolve(family: str, hp: Mapping[str, Any] | None = None,
            preset: str | None = None) -> dict[str, Any]:
    """Defaults, then the preset's values, then ``hp``; every value checked against its rule."""
    fam = get_family(family)
    merged: dict[str, Any] = {}
    if preset is not None:
        if preset not in fam.presets:
            raise ValueError(f"{family}: unknown preset {preset!r}"
                             f"{_did_you_mean(preset, fam.presets)}; presets: "
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
