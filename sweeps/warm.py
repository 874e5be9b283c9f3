"""Warm starts: a new study's first trials, enqueued (Optuna's ``enqueue_trial``) before the
sampler proposes any.

- ``start_from: recipe``: the write-ups' configurations of the sweep's families, and the ``fast``
  preset's (``fmnist.writeups``), each trained exactly as the recipe says (its preset and knobs;
  the spec's ``fixed`` does not apply to it), for the sweep's ``max_epochs``. Under a budget
  the first of them goes first on its whole schedule, fitted to the time left where it does not
  fit (``train``'s ``finish_by``: its rate anneals within the time); no shorter look at it
  first, which would spend the few full trials a CPU's budget holds on schedules that are
  thrown away;
- ``warm_start: [SWEEP, ...]``: each earlier sweep's best ``PER_SWEEP`` finished configurations in
  the same store, the searched keys that apply to this spec (the others are sampled).

Only a study with no trials is warm-started, so a resume enqueues nothing again. A configuration
a spec cannot hold (a value outside a choice list, a family not in the sweep) is left out, and
said.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from fmnist.errors import UserError
from sweeps import redact, space, tracking
from sweeps import tags as tag
from sweeps.spec import SweepSpec

PER_SWEEP = 3  # an earlier sweep's best configurations enqueued


class WarmStartError(UserError):
    """A ``warm_start`` sweep the store does not hold."""


@dataclass(frozen=True)
class Start:
    """One configuration to enqueue: its Optuna ``params`` and the user attributes it carries
    (``space.RECIPE_KEY``: a recipe's knobs outside the space; ``space.WARM_KEY``: where it is
    from)."""

    label: str
    params: dict[str, Any]
    user_attrs: dict[str, Any] = field(default_factory=dict)


def _fits(spec: SweepSpec, family: str, params: dict[str, Any]) -> str | None:
    """None where ``params`` (of ``family``) can be enqueued in ``spec``'s space, else why not."""
    if family not in spec.families:
        return f"its family {family} is not in the sweep's ({spec.family})"
    for k, d in spec.space_of(family).items():
        if k not in params:
            continue
        v = params[k]
        if d.type == "choice":
            inside = any(v == c and type(v) is type(c) for c in d.values)
        else:
            inside = (isinstance(v, (int, float)) and not isinstance(v, bool)
                      and d.low <= v <= d.high and (d.type != "int" or float(v).is_integer()))
        if not inside:
            return f"its {k} {params[k]!r} is outside the spec's space for {k}"
    return None


def recipe_starts(spec: SweepSpec) -> tuple[list[Start], list[str]]:
    """The recipes of the spec's families as configurations to enqueue, and a note for each
    recipe left out."""
    from fmnist import train, writeups

    starts, notes = [], []
    for ref in writeups.for_families(spec.families):
        knobs = {k: v for k, v in ref.recipe.items() if k != "max_epochs"}
        train_hp, model_hp = train.split_hp(ref.family, knobs, ref.preset)
        values = {**train_hp, **model_hp}  # as the recipe trains: defaults, preset, its knobs
        searched = spec.space_of(ref.family)
        params = {k: values[k] for k in searched}
        why = _fits(spec, ref.family, params)
        if why:
            notes.append(f"start_from: recipe {ref.row} left out: {why}")
            continue
        if spec.multi:
            params = {"family": ref.family, **params}
        starts.append(Start(f"recipe {ref.row}", params, {
            space.RECIPE_KEY: {"name": ref.row, "preset": ref.preset,
                               "hp": {k: v for k, v in knobs.items() if k not in searched},
                               "exact": True},
            space.WARM_KEY: f"recipe {ref.row}"}))
    return starts, notes


def _family_of(st: tracking.Store, sweep: str, params: dict[str, Any]) -> str:
    if "family" in params:
        return params["family"]
    parents = tracking.runs(st, sweep, tag.PARENT)
    return parents[0].data.tags.get(tag.FAMILY, "") if parents else ""


def earlier_starts(spec: SweepSpec, storage, st: tracking.Store) -> tuple[list[Start], list[str]]:
    """Each ``warm_start`` sweep's best finished configurations, restricted to the keys this
    spec searches. Raises WarmStartError for a sweep the store does not hold."""
    starts, notes = [], []
    for name in spec.warm_start:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise WarmStartError(f"{spec.path}: warm_start: no sweep {name!r} in the Optuna "
                                 f"storage {redact.mask(st.optuna_url)}.") from None
        done = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
        if not done:
            notes.append(f"warm_start: sweep {name} has no finished trial")
            continue
        # by its first objective (the metric, where the sweep had several)
        sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        for t in sorted(done, key=lambda t: sign * t.values[0])[:PER_SWEEP]:
            family = _family_of(st, name, t.params)
            label = f"sweep {name} trial {t.number}"
            params = {k: v for k, v in t.params.items()
                      if k in spec.space_of(family) and k != "family"}
            why = _fits(spec, family, params)
            if why:
                notes.append(f"warm_start: {label} left out: {why}")
                continue
            if spec.multi:
                params = {"family": family, **params}
            attrs = {space.WARM_KEY: label}
            if space.RECIPE_KEY in t.user_attrs:  # its knobs; its epochs are this sweep's
                attrs[space.RECIPE_KEY] = {k: v for k, v in t.user_attrs[space.RECIPE_KEY].items()
                                           if k != "max_epochs"}
            starts.append(Start(label, params, attrs))
    return starts, notes


def check(spec: SweepSpec, st: tracking.Store) -> None:
    """Before any store is opened: each ``warm_start`` sweep is in the Optuna storage (read
    without creating anything). Raises WarmStartError for one that is not."""
    if not spec.warm_start:
        return
    names = tracking.study_names(st.optuna_url)
    if names is None:  # not readable here: ``plan`` checks it once the storage is open
        return
    for name in spec.warm_start:
        if name not in names:
            raise WarmStartError(f"{spec.path}: warm_start: no sweep {name!r} in the Optuna "
                                 f"storage {redact.mask(st.optuna_url)}.")


def plan(spec: SweepSpec, storage, st: tracking.Store,
         say: Callable[[str], None]) -> list[Start]:
    """The spec's warm starts, each configuration once, at most ``spec.trials``; none where the
    sweep's study has trials already (a resume). Called before anything is written. Raises
    WarmStartError for a ``warm_start`` sweep the store does not hold."""
    if not (spec.start_from or spec.warm_start):
        return []
    try:
        if optuna.load_study(study_name=spec.name, storage=storage).trials:
            return []
    except KeyError:
        pass
    starts, notes = recipe_starts(spec) if spec.start_from == "recipe" else ([], [])
    more, more_notes = earlier_starts(spec, storage, st)
    for note in [*notes, *more_notes]:
        say(note)
    seen, out = set(), []
    for s in [*starts, *more]:
        key = repr(sorted(s.params.items())) + repr(s.user_attrs.get(space.RECIPE_KEY))
        if key not in seen and len(out) < spec.trials:
            seen.add(key)
            out.append(s)
    return out


PENDING = "fmnist_pending"  # study user attribute: a budget's warm starts not enqueued yet


def enqueue(study: optuna.Study, starts: list[Start], say: Callable[[str], None],
            budgeted: bool = False) -> None:
    """Enqueue ``starts`` (``plan``'s) as ``study``'s next trials, where it has none yet.
    ``budgeted``: only the first recipe is enqueued; the others wait in
    the study (``PENDING``) for the budget policy, which runs them where the budget holds
    enough full trials to explore (``pending``, ``take_pending``)."""
    if study.trials or not starts:
        return
    first = starts
    if budgeted:
        name = _recipe_name(starts[0])
        first = [s for s in starts if name is not None and _recipe_name(s) == name] or starts[:1]
    for s in first:
        study.enqueue_trial(s.params, user_attrs=s.user_attrs, skip_if_exists=False)
    rest = [s for s in starts if s not in first]
    if rest:
        study.set_user_attr(PENDING, [{"label": s.label, "params": s.params,
                                       "user_attrs": s.user_attrs} for s in rest])
    say(f"sweep {study.study_name}: {len(first)} warm start{'s' if len(first) > 1 else ''} "
        f"first: {', '.join(s.label for s in first)}"
        + (f"; then, where the budget holds enough to explore: "
           f"{', '.join(s.label for s in rest)}" if rest else ""))


def _recipe_name(s: Start) -> str | None:
    return (s.user_attrs.get(space.RECIPE_KEY) or {}).get("name")


def pending(study: optuna.Study) -> list[Start]:
    """The warm starts a budgeted study holds back for the policy, next first."""
    return [Start(p["label"], p["params"], p["user_attrs"])
            for p in study.user_attrs.get(PENDING, [])]


def take_pending(study: optuna.Study) -> Start | None:
    """Enqueue the next held-back warm start; None where none is left."""
    waiting = pending(study)
    if not waiting:
        return None
    s = waiting[0]
    study.enqueue_trial(s.params, user_attrs=s.user_attrs, skip_if_exists=False)
    study.set_user_attr(PENDING, [{"label": p.label, "params": p.params,
                                   "user_attrs": p.user_attrs} for p in waiting[1:]])
    return s
