"""A sweep spec: YAML -> validated, frozen ``SweepSpec``.

Everything is checked before anything runs: unknown keys (with a "did you mean"), hyperparameters
the family lacks, ranges outside what the family declares, ``low >= high``, ``low <= 0`` on a log
scale, empty choices, a metric the trials do not report or one on the test set. Each message names
the file, the key path, the rule and the value, e.g.::

    search_spaces/minivgg.yaml: space.learning_rate: low > 0 must hold for a log scale, but got
    (low=0.0, high=0.1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fmnist.costs import COSTS, Bound
from fmnist.costs import PREFIX as COST_PREFIX
from fmnist.errors import ConfigError, UserError
from fmnist.hparams import HP, did_you_mean

REPORTED_METRICS = ("val/acc", "val/loss", "val/acc_best", "train/acc", "train/loss")
SAMPLERS = ("tpe", "random", "qmc", "cmaes", "nsga2")
SCHEDULERS = ("asha", "median", "fifo")
DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")
# set by the spec's own fields, never in `space` or `fixed`
RESERVED = {"max_epochs": "max_epochs", "threads": "resources.cpu",
            "inter_threads": "resources.cpu"}


class SpecError(UserError, ValueError):
    """A spec breaks a rule; the message names file, key path, rule and value."""


@dataclass(frozen=True)
class Dist:
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    values: tuple[Any, ...] = ()


START_FROM = ("recipe",)


@dataclass(frozen=True)
class SweepSpec:
    """A validated spec. ``families``: one, or several searched as a categorical choice (the
    trial's ``family`` parameter), each with its knobs in ``spaces[family]`` besides the shared
    ``space``, and its preset in ``presets``."""

    name: str
    families: tuple[str, ...]
    path: str = "<spec>"
    presets: dict[str, str] = field(default_factory=dict)
    metric: str = "val/acc"
    mode: str = "max"
    trials: int = 20
    max_epochs: int = 20
    time_budget_s: float | None = None  # the search's alone
    budget_s: float | None = None  # the whole command's: search, final phase and report
    # a compute budget: epochs of the training split (training images processed / training
    # images), over every command of the sweep: its search, its refit and every model after it
    budget_epochs: float | None = None
    sampler: str = "tpe"
    sampler_seed: int = 0
    scheduler: str = "asha"
    grace_period: int = 2
    reduction_factor: float = 3.0
    cpu: float = 1.0
    gpu: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 0
    val_fraction: float = 0.2
    subset: int | None = None
    data_seed: int = 0
    space: dict[str, Dist] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    # after the search (``final:``): the best configuration trained again on train + val, an
    # ensemble of up to this many trials' models (below 2: none), test-time augmentation
    refit: bool = True
    ensemble: int = 5
    tta: bool = True
    spaces: dict[str, dict[str, Dist]] = field(default_factory=dict)  # per family
    start_from: str | None = None  # "recipe": the write-ups' configurations first
    warm_start: tuple[str, ...] = ()  # earlier sweeps whose best configurations go first
    # cost (``fmnist.costs.COSTS``) -> its bound: a configuration outside any is not trained
    constraints: dict[str, Bound] = field(default_factory=dict)
    # several objectives: the metric (in ``mode``) first, then cost -> "min" or "max" (``COSTS``)
    objectives: dict[str, str] = field(default_factory=dict)

    @property
    def multi_objective(self) -> bool:
        return bool(self.objectives)

    @property
    def objective_modes(self) -> dict[str, str]:
        """The reported keys the study's values are, in order (the metric, then each cost's
        ``cost/<name>``), each with "max" or "min"."""
        return {self.metric: self.mode,
                **{COST_PREFIX + k: m for k, m in self.objectives.items()}}

    @property
    def directions(self) -> list[str]:
        """Optuna's direction of each objective (one, the metric's, without ``objectives``)."""
        return ["maximize" if m == "max" else "minimize" for m in self.objective_modes.values()]

    @property
    def family(self) -> str:
        """The family, or the families joined by ``,`` (a label) where there are several."""
        return ",".join(self.families)

    @property
    def preset(self) -> str | None:
        """A single-family spec's preset (see ``preset_of``)."""
        return self.presets.get(self.families[0]) if len(self.families) == 1 else None

    @property
    def multi(self) -> bool:
        return len(self.families) > 1

    def preset_of(self, family: str) -> str | None:
        return self.presets.get(family)

    def family_of(self, params: Mapping[str, Any]) -> str:
        """The family of a trial whose sampled parameters are ``params``."""
        return params["family"] if self.multi else self.families[0]

    def space_of(self, family: str) -> dict[str, Dist]:
        """The knobs a trial of ``family`` samples: the shared ones and its own."""
        return {**self.space, **self.spaces.get(family, {})}

    def resolved(self) -> dict[str, Any]:
        """A plain dict of the spec, for the record (MLflow parent run)."""
        out = {k: v for k, v in self.__dict__.items()
               if k not in ("space", "fixed", "spaces", "families", "presets", "warm_start",
                            "constraints", "objectives")}
        out["family"] = self.families[0] if not self.multi else list(self.families)
        out["preset"] = (self.preset if not self.multi else dict(self.presets)) or None
        out["space"] = _dists_raw(self.space)
        if self.spaces:
            out["spaces"] = {f: _dists_raw(sp) for f, sp in self.spaces.items()}
        if self.warm_start:
            out["warm_start"] = list(self.warm_start)
        out["fixed"] = dict(self.fixed)
        if self.constraints:
            out["constraints"] = _bounds_raw(self.constraints)
        if self.objectives:
            out["objectives"] = {self.metric: self.mode, **self.objectives}
        return out

    def as_mapping(self) -> dict[str, Any]:
        """The spec in its YAML layout: ``parse(spec.as_mapping()) == spec``."""
        d: dict[str, Any] = {
            "name": self.name, "family": self.families[0] if not self.multi else
            list(self.families), "metric": self.metric, "mode": self.mode,
            "trials": self.trials, "max_epochs": self.max_epochs,
            "sampler": {"type": self.sampler, "seed": self.sampler_seed},
            "scheduler": {"type": self.scheduler, "grace_period": self.grace_period,
                          "reduction_factor": self.reduction_factor},
            "resources": {"cpu": self.cpu, "gpu": self.gpu}, "max_failures": self.max_failures,
            "data": {"val_fraction": self.val_fraction, "seed": self.data_seed},
            "space": self.resolved()["space"], "fixed": dict(self.fixed),
            "final": {"refit": self.refit, "ensemble": self.ensemble, "tta": self.tta},
        }
        if self.budget_s is not None and self.budget_epochs is not None:
            d["budget"] = {"time": self.budget_s, "epochs": self.budget_epochs}
        elif self.budget_s is not None:
            d["budget"] = self.budget_s
        elif self.budget_epochs is not None:
            d["budget"] = f"{self.budget_epochs:g} epochs"
        if self.presets:
            d["preset"] = self.preset if not self.multi else dict(self.presets)
        if self.spaces:
            d["spaces"] = self.resolved()["spaces"]
        if self.warm_start:
            d["warm_start"] = list(self.warm_start)
        if self.constraints:
            d["constraints"] = _bounds_raw(self.constraints)
        if self.objectives:
            d["objectives"] = {self.metric: self.mode, **self.objectives}
        for k in ("start_from", "time_budget_s", "max_concurrent"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.subset is not None:
            d["data"]["subset"] = self.subset
        return d

    def replace(self, **changes: Any) -> SweepSpec:
        return SweepSpec(**{**self.__dict__, **changes})


def _bounds_raw(bounds: Mapping[str, Bound]) -> dict[str, dict[str, float]]:
    return {k: {side: v for side in ("min", "max") if (v := getattr(b, side)) is not None}
            for k, b in bounds.items()}


def _dists_raw(space: Mapping[str, Dist]) -> dict[str, dict[str, Any]]:
    out = {k: {f: getattr(d, f) for f in ("type", "low", "high", "step", "values")
               if getattr(d, f) not in (None, ())} for k, d in space.items()}
    for d in out.values():
        if "values" in d:
            d["values"] = list(d["values"])
    return out


# key -> (allowed sub-keys or None for a scalar)
_TOP = {"name", "family", "preset", "metric", "mode", "trials", "max_epochs", "time_budget_s",
        "budget", "spaces", "start_from", "warm_start",
        "sampler", "scheduler", "resources", "max_concurrent", "max_failures", "data", "space",
        "fixed", "final", "constraints", "objectives"}
_SUB = {
    "sampler": {"type", "seed"},
    "scheduler": {"type", "grace_period", "reduction_factor"},
    "resources": {"cpu", "gpu"},
    "data": {"val_fraction", "subset", "seed"},
    "final": {"refit", "ensemble", "tta"},
}
_DIST_KEYS = {"type", "low", "high", "step", "values"}


class _Checker:
    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, rule: str, value: Any) -> SpecError:
        shown = value if isinstance(value, str) and value.startswith("(") else repr(value)
        return SpecError(f"{self.path}: {key}: {rule}, but got {shown}.")

    def keys(self, where: str, mapping: Any, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(mapping, Mapping):
            raise self.fail(where or "<top>", "must be a mapping", mapping)
        for k in mapping:
            if k not in allowed:
                key = f"{where}.{k}" if where else str(k)
                raise SpecError(f"{self.path}: {key}: unknown key{did_you_mean(str(k), allowed)}"
                                f"; allowed: {', '.join(sorted(allowed))}.")
        return dict(mapping)

    def num(self, key: str, value: Any, *, kind: type = float, low: float | None = None,
            high: float | None = None, low_open: bool = False) -> Any:
        ok_type = (isinstance(value, (int, float)) and not isinstance(value, bool)
                   and (kind is float or float(value) == int(value)))
        what = "an integer" if kind is int else "a number"
        if not ok_type:
            raise self.fail(key, f"must be {what}", value)
        value = kind(value)
        if low is not None and (value <= low if low_open else value < low):
            raise self.fail(key, f"must be {what} {'>' if low_open else '>='} {low:g}", value)
        if high is not None and value > high:
            raise self.fail(key, f"must be {what} <= {high:g}", value)
        return value

    def choice(self, key: str, value: Any, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"must be one of {list(choices)}"
                                 f"{did_you_mean(str(value), choices)}", value)
        return value


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?)\s*([hms])")


def parse_duration(value: Any) -> float | None:
    """Seconds from a number of seconds or a string such as ``2h``, ``45m``, ``90s`` or
    ``1h30m``; None where ``value`` is neither, or not above 0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d*)?", text):
        return parse_duration(float(text))
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        return None
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    return seconds if seconds > 0 else None


def format_duration(seconds: float) -> str:
    """A duration as a spec could write it (``parse_duration``'s inverse to the second):
    ``2h``, ``1h30m``, ``90`` s as ``1m30s``."""
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


DURATION_RULE = "must be a duration above 0: seconds, or e.g. 2h, 45m, 90s, 1h30m"
BUDGET_RULE = ("must be a duration above 0 (seconds, or e.g. 2h, 45m), a number of epochs "
               "above 0 (e.g. 60 epochs), or both ({time: 2h, epochs: 60})")
_EPOCHS = re.compile(r"(\d+(?:\.\d*)?)\s*epochs?")


def parse_budget(value: Any) -> tuple[float | None, float | None] | None:
    """(seconds, epochs) of a budget written as a duration (``2h``, ``90``), a compute budget
    (``60 epochs``) or both (``{time: 2h, epochs: 60}``: whichever ends first); None where
    ``value`` is none of them."""
    if isinstance(value, Mapping):
        if not value or set(value) - {"time", "epochs"}:
            return None
        seconds = parse_duration(value["time"]) if "time" in value else None
        epochs = _epochs(value["epochs"]) if "epochs" in value else None
        if ("time" in value and seconds is None) or ("epochs" in value and epochs is None):
            return None
        return seconds, epochs
    if isinstance(value, str) and (m := _EPOCHS.fullmatch(value.strip().lower())):
        epochs = _epochs(float(m.group(1)))
        return None if epochs is None else (None, epochs)
    seconds = parse_duration(value)
    return None if seconds is None else (seconds, None)


def _epochs(value: Any) -> float | None:
    if isinstance(value, str) and (m := _EPOCHS.fullmatch(value.strip().lower())):
        value = float(m.group(1))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


def load(path: str | Path) -> SweepSpec:
    """Read and validate a spec file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{path}: no such spec file.")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: "
                        f"{getattr(e, 'problem', None) or e}.") from None
    return parse(raw, str(path))


def override(spec: SweepSpec, **changes: Any) -> SweepSpec:
    """``spec`` with top-level fields (or ``subset``) changed, checked by the same rules as the
    file. ``None`` leaves a field as it is; a ``max_epochs`` below the scheduler's grace period
    lowers the grace period with it."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return spec
    raw = spec.as_mapping()
    for k, v in changes.items():
        if k == "subset":
            raw["data"]["subset"] = v
        else:
            raw[k] = v
    raw["scheduler"]["grace_period"] = min(raw["scheduler"]["grace_period"], raw["max_epochs"])
    return parse(raw, spec.path)


def _metric_and_objectives(c: _Checker, top: dict[str, Any]
                           ) -> tuple[str, str, dict[str, str]]:
    """The metric and its mode, and the cost objectives (cost -> max or min; empty: one
    objective), from ``metric``, ``mode`` and ``objectives`` (whose metric they must agree
    with)."""
    metric = top.get("metric", "val/acc")
    if isinstance(metric, str) and metric.startswith("test"):
        raise c.fail("metric", "must be a validation or training metric: selection never sees "
                               "the test set", metric)
    metric = c.choice("metric", metric, REPORTED_METRICS)
    mode = c.choice("mode", top.get("mode", "min" if metric.endswith("loss") else "max"),
                    ("max", "min"))
    objectives = _objectives(c, top.get("objectives"))
    if not objectives:
        return metric, mode, {}
    (first, first_mode), = [(k, v) for k, v in objectives.items() if k not in COSTS]
    for key, given, theirs in (("metric", metric, first), ("mode", mode, first_mode)):
        if key in top and given != theirs:
            raise c.fail(key, f"must be the objectives' own ({theirs}) or left out", given)
    return first, first_mode, {k: v for k, v in objectives.items() if k in COSTS}


def _searched(c: _Checker, top: dict[str, Any], families: tuple[str, ...]):
    """(space, spaces, fixed): the shared space (each family checks each knob), each family's
    own, and the fixed knobs, each checked against the families' declarations."""
    from fmnist import models, train

    declared = {f: {**train.HYPERPARAMETERS, **models.hyperparameters(f)} for f in families}
    space_raw = c.keys("space", top.get("space") or {}, set(top.get("space") or {}))
    if "family" in space_raw:
        raise c.fail("space.family", "is the spec's `family` list, not a knob", "family")
    space = {}
    for k, v in space_raw.items():  # shared: every family declares it, each checks it
        for f in families:
            space[k] = _dist(c, f, declared[f], f"space.{k}", k, v)
    spaces = {}
    for f, raw_f in c.keys("spaces", top.get("spaces") or {}, set(families)).items():
        own = c.keys(f"spaces.{f}", raw_f or {}, set(raw_f or {}))
        for k in own:
            if k in space:
                raise c.fail(f"spaces.{f}.{k}", "must not also be in the shared space", k)
        spaces[f] = {k: _dist(c, f, declared[f], f"spaces.{f}.{k}", k, v)
                     for k, v in own.items()}
    _one_kind_per_name(c, spaces)
    fixed_raw = c.keys("fixed", top.get("fixed") or {}, set(top.get("fixed") or {}))
    fixed = {}
    for k, v in fixed_raw.items():
        if k in space or any(k in sp for sp in spaces.values()):
            raise c.fail(f"fixed.{k}", "must not also be searched in space", v)
        for f in families:
            _declared(c, f, declared[f], f"fixed.{k}", k)
            try:
                fixed[k] = declared[f][k].check(f, v)
            except ConfigError as e:
                raise SpecError(f"{c.path}: fixed.{k}: {e}") from None
    return space, spaces, fixed


def parse(raw: Any, path: str = "<spec>") -> SweepSpec:
    c = _Checker(path)
    top = c.keys("", raw if raw is not None else {}, _TOP)
    for required in ("name", "family"):
        if required not in top:
            raise SpecError(f"{path}: {required}: is required.")
    name = top["name"]
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise c.fail("name", "must be a non-empty string without '/'", name)
    families = _families(c, top["family"])
    presets = _presets(c, families, top.get("preset"))

    metric, mode, objectives = _metric_and_objectives(c, top)

    sub = {k: c.keys(k, top.get(k) or {}, allowed) for k, allowed in _SUB.items()}
    sampler, sched, res, dat = sub["sampler"], sub["scheduler"], sub["resources"], sub["data"]
    fin = sub["final"]
    for k in ("refit", "tta"):
        if not isinstance(fin.get(k, True), bool):
            raise c.fail(f"final.{k}", "must be true or false", fin[k])
    max_epochs = c.num("max_epochs", top.get("max_epochs", 20), kind=int, low=1)
    grace = c.num("scheduler.grace_period", sched.get("grace_period", min(2, max_epochs)),
                  kind=int, low=1)
    if grace > max_epochs:
        raise c.fail("scheduler.grace_period", f"must be <= max_epochs ({max_epochs})", grace)
    budget = top.get("time_budget_s")
    whole = compute = None
    if top.get("budget") is not None:
        both = parse_budget(top["budget"])
        if both is None:
            raise c.fail("budget", BUDGET_RULE, top["budget"])
        whole, compute = both
    subset = dat.get("subset")
    if objectives and sampler.get("type") == "cmaes":
        raise c.fail("sampler.type", "must not be cmaes with several objectives (CMA-ES "
                                     "optimises one)", "cmaes")
    if objectives and sched.get("type") == "median":
        raise c.fail("scheduler.type", "must be asha (multi-objective ASHA) or fifo with several "
                                       "objectives", "median")

    space, spaces, fixed = _searched(c, top, families)
    start_from = top.get("start_from")
    if start_from is not None:
        c.choice("start_from", start_from, START_FROM)
    warm = top.get("warm_start") or []
    if isinstance(warm, str):
        warm = [warm]
    if not isinstance(warm, list) or not all(isinstance(w, str) and w.strip() for w in warm):
        raise c.fail("warm_start", "must be a list of sweep names", top.get("warm_start"))

    return SweepSpec(
        name=name, families=families, path=path, presets=presets, metric=metric, mode=mode,
        trials=c.num("trials", top.get("trials", 20), kind=int, low=1),
        max_epochs=max_epochs,
        time_budget_s=None if budget is None else c.num("time_budget_s", budget, low=0,
                                                          low_open=True),
        budget_s=whole, budget_epochs=compute,
        sampler=c.choice("sampler.type", sampler.get("type", "tpe"), SAMPLERS),
        sampler_seed=c.num("sampler.seed", sampler.get("seed", 0), kind=int, low=0),
        scheduler=c.choice("scheduler.type", sched.get("type", "asha"), SCHEDULERS),
        grace_period=grace,
        reduction_factor=c.num("scheduler.reduction_factor", sched.get("reduction_factor", 3),
                               low=1, low_open=True),
        cpu=c.num("resources.cpu", res.get("cpu", 1), low=0, low_open=True),
        gpu=c.num("resources.gpu", res.get("gpu", 0), low=0),
        max_concurrent=(None if top.get("max_concurrent") is None else
                        c.num("max_concurrent", top["max_concurrent"], kind=int, low=1)),
        max_failures=c.num("max_failures", top.get("max_failures", 0), kind=int, low=0),
        val_fraction=c.num("data.val_fraction", dat.get("val_fraction", 0.2), low=0, high=0.99,
                           low_open=True),
        subset=None if subset is None else c.num("data.subset", subset, kind=int, low=10),
        data_seed=c.num("data.seed", dat.get("seed", 0), kind=int, low=0),
        space=space, fixed=fixed,
        refit=fin.get("refit", True), tta=fin.get("tta", True),
        ensemble=c.num("final.ensemble", fin.get("ensemble", 5), kind=int, low=0),
        spaces=spaces, start_from=start_from, warm_start=tuple(warm),
        constraints=_constraints(c, top.get("constraints")),
        objectives=objectives,
    )


OBJECTIVES_RULE = ("must map one training metric and at least one cost to max or min, e.g. "
                   "{val/acc: max, latency_ms: min}")


def _objectives(c: _Checker, raw: Any) -> dict[str, str]:
    """``objectives: {val/acc: max, latency_ms: min}``: the metric the trials train for and one
    or more costs (``COSTS``), each with its direction; the metric first."""
    if raw is None:
        return {}
    allowed = set(REPORTED_METRICS) | set(COSTS)
    items = c.keys("objectives", raw, allowed)
    for k, v in items.items():
        c.choice(f"objectives.{k}", v, ("max", "min"))
    metrics = [k for k in items if k not in COSTS]
    if len(metrics) != 1 or len(items) < 2:
        raise c.fail("objectives", OBJECTIVES_RULE, dict(items))
    if metrics[0].startswith("test"):
        raise c.fail(f"objectives.{metrics[0]}", "must be a validation or training metric",
                     metrics[0])
    return {metrics[0]: items[metrics[0]], **{k: v for k, v in items.items() if k in COSTS}}


CONSTRAINT_RULE = "must be a mapping of min and/or max, each a number > 0"


def _constraints(c: _Checker, raw: Any) -> dict[str, Bound]:
    """``constraints: {params: {max: 100000}, latency_ms: {max: 0.5}}``: each a cost of
    ``fmnist.costs.COSTS`` with a min, a max or both (numbers > 0, min <= max)."""
    out = {}
    for name, b in c.keys("constraints", raw or {}, set(COSTS)).items():
        key = f"constraints.{name}"
        if not isinstance(b, Mapping) or not b:
            raise c.fail(key, CONSTRAINT_RULE, b)
        sides = c.keys(key, b, {"min", "max"})
        lo, hi = (None if sides.get(s) is None else
                  c.num(f"{key}.{s}", sides[s], low=0, low_open=True) for s in ("min", "max"))
        if lo is None and hi is None:
            raise c.fail(key, CONSTRAINT_RULE, b)
        if lo is not None and hi is not None and lo > hi:
            raise c.fail(key, "min <= max must hold", f"(min={lo:g}, max={hi:g})")
        out[name] = Bound(lo, hi)
    return out


def _kind(d: Dist) -> tuple[Any, ...]:
    """What Optuna keeps per parameter name: its distribution's class, log scale, choices."""
    if d.type == "choice":
        return ("choice", d.values)
    return ("int",) if d.type == "int" else ("float", d.type == "loguniform")


def _one_kind_per_name(c: _Checker, spaces: Mapping[str, Mapping[str, Dist]]) -> None:
    """A knob several families search keeps one kind of values (ranges may differ): Optuna's
    storage refuses a name sampled from two kinds of distribution in one study."""
    first: dict[str, tuple[str, Dist]] = {}
    for f, own in spaces.items():
        for k, d in own.items():
            if k not in first:
                first[k] = (f, d)
                continue
            g, d0 = first[k]
            if _kind(d) != _kind(d0):
                was = f"{d0.type} {list(d0.values)}" if d0.type == "choice" else d0.type
                raise c.fail(f"spaces.{f}.{k}", f"must be searched as spaces.{g}.{k} is ({was}): "
                                                f"one kind of values per name in a study",
                             list(d.values) if d.type == "choice" else d.type)


def _families(c: _Checker, raw: Any) -> tuple[str, ...]:
    from fmnist import models

    known = models.families()
    listed = raw if isinstance(raw, list) else [raw]
    if not listed or len(set(map(str, listed))) != len(listed):
        raise c.fail("family", "must be a family or a non-empty list of distinct families", raw)
    for i, f in enumerate(listed):
        if f not in known:
            key = f"family[{i}]" if isinstance(raw, list) else "family"
            raise c.fail(key, f"must be a known family{did_you_mean(str(f), known)}"
                              f" ({', '.join(known)})", f)
    return tuple(listed)


def _presets(c: _Checker, families: tuple[str, ...], raw: Any) -> dict[str, str]:
    """``preset``: one name (a single family's), or a mapping family -> preset."""
    from fmnist import models

    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        c.keys("preset", raw, set(families))
        pairs = dict(raw)
    elif len(families) > 1:
        raise c.fail("preset", "must map families to presets where there are several, e.g. "
                               "{fastcnn: fast}", raw)
    else:
        pairs = {families[0]: raw}
    for f, p in pairs.items():
        if p not in models.presets(f):
            key = "preset" if not isinstance(raw, Mapping) else f"preset.{f}"
            raise c.fail(key, f"must be a preset of {f} "
                              f"({', '.join(models.presets(f)) or 'none'})", p)
    return pairs


def _declared(c: _Checker, family: str, declared: Mapping[str, HP], key: str, name: str) -> HP:
    if name in RESERVED:
        raise c.fail(key, f"is set by the spec's `{RESERVED[name]}`, not here", name)
    if name not in declared:
        raise SpecError(f"{c.path}: {key}: {family} has no hyperparameter `{name}`"
                        f"{did_you_mean(name, declared)}; see `fmnist-sweep models {family}` "
                        f"and the training knobs ({', '.join(sorted(declared))}).")
    return declared[name]


def _dist(c: _Checker, family: str, declared: Mapping[str, HP], key: str, name: str,
          raw: Any) -> Dist:
    hp = _declared(c, family, declared, key, name)
    d = c.keys(key, raw, _DIST_KEYS)
    kind = c.choice(f"{key}.type", d.get("type"), DISTRIBUTIONS)
    if kind == "choice":
        values = d.get("values")
        if not isinstance(values, list) or not values:
            raise c.fail(f"{key}.values", "must be a non-empty list", values)
        out = []
        for v in values:
            try:
                out.append(hp.check(family, v))
            except ConfigError as e:
                raise SpecError(f"{c.path}: {key}.values: {e}") from None
        return Dist("choice", values=tuple(out))
    for k in ("low", "high"):
        if k not in d:
            raise SpecError(f"{c.path}: {key}.{k}: is required for type {kind}.")
    if hp.kind not in ("int", "float") or (kind != "int" and hp.kind == "int"):
        want = "int" if hp.kind == "int" else "choice"
        raise c.fail(f"{key}.type", f"must be `{want}` for {family}'s {hp.kind} hyperparameter "
                                    f"`{name}`", kind)
    int_kind = int if kind == "int" else float
    low = c.num(f"{key}.low", d["low"], kind=int_kind)
    high = c.num(f"{key}.high", d["high"], kind=int_kind)
    if low >= high:
        raise c.fail(key, "low < high must hold", f"(low={low}, high={high})")
    if kind == "loguniform" and low <= 0:
        raise c.fail(key, "low > 0 must hold for a log scale", f"(low={low}, high={high})")
    if low < hp.low or high > hp.high:  # type: ignore[operator]
        raise c.fail(key, f"must lie within {family}'s declared range [{hp.low:g}, {hp.high:g}] "
                          f"for `{name}`", f"(low={low}, high={high})")
    step = d.get("step")
    if step is not None:
        step = c.num(f"{key}.step", step, kind=int_kind, low=0, low_open=True)
    return Dist(kind, low=low, high=high, step=step)
