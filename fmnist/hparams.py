"""Declared hyperparameters: name, kind, default, range or choices, and the check that turns a
bad value into a message naming the rule. Model families and the training loop declare theirs
with ``HP``; sweeps validate search spaces against the same declarations."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fmnist.errors import ConfigError

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
        """Return ``value`` in its canonical type, or raise a ConfigError naming the rule."""

        def bad() -> ConfigError:
            return ConfigError(f"{family}: hyperparameter `{self.name}` {self.rule}, "
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


def did_you_mean(name: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    if not close and len(str(name)) >= 3:  # a cut-off name: "grace" for "grace_period"
        close = [k for k in known if k.startswith(str(name))][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_all(label: str, hps: Mapping[str, HP], values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``values``, each checked; an unknown key is an error."""
    out = {k: h.default for k, h in hps.items()}
    for key, value in values.items():
        if key not in hps:
            raise ConfigError(f"{label}: unknown hyperparameter `{key}`{did_you_mean(key, hps)}"
                             f"; it has: {', '.join(sorted(hps))}.")
        out[key] = hps[key].check(label, value)
    return out
