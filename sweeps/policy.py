"""What the budget left buys most: the decision the searcher makes before each new trial.

After each trial, from what the sweep has measured (each finished trial's configuration, its
epochs and its objective; the full trials the budget still holds), the next trial is one of:

- ``explore``: a new configuration, sampled (the budget holds many full trials: a GPU, a
  cluster, or no budget at all);
- ``exploit``: the best configuration on the spec's whole schedule, where it was trained on a
  shorter one (a budget's quick look, or a trial the budget fitted to its time left) and the
  budget holds the whole schedule;
- ``ensemble``: the best configuration again with another seed, a member for the ensemble
  after the search (the budget holds few full trials: this CPU);
- ``stop``: none, where not one epoch is left; the refit on all the training images follows.

A trial the budget cannot hold in full is given the epochs it holds (``Budget.trial_epochs``,
or its schedule fitted to the time left), so the budget is spent, not left over.

Under a compute budget the unit is a *long schedule* (``STRETCH`` times the spec's, the learning
rate's schedule stretched with it). Where the budget holds ``FEW`` of them or fewer, it is split
into that many equal long schedules (``long_epochs``, at least one): the first trial trains the
first of them, and each one after is the best configuration again on its own long schedule, a
member with another seed; no refit's share is kept. On this data a longer schedule is what more
images bought, where more models on the same schedule and the refit on 12.5% more images did
not (BENCHMARKS.md: at 25 epochs one 25-epoch schedule tested 0.17 points above 20 epochs and a
7-epoch member on 3 of 3 seeds; at 50 epochs the refit tested no higher than its trial; 40
epochs, one seed, +0.32). A budget of more long schedules searches first (the spec's schedule,
the refit's share kept), and ends on them once it holds no more than ``FEW``.

Under a time budget the pace is not known before a trial has trained: the first recipe trial
(``start_from: recipe``) may fill the budget (``Budget.fill_window``: up to the test evaluation
and the report, the refit's and the ensemble's shares too, which a refit of a trial that took
the search's time could not use on a CPU). After its first epoch it knows how many epochs the
time holds and takes them as a compute budget's first trial would (``fill_epochs``): all, where
they are one long schedule; the spec's schedule, where they are many (a GPU, a cluster), and
the search goes on after it.

Pure: the searcher (``recorder.StudySearch``) asks ``decide`` and carries the decision out with
Optuna's ``enqueue_trial``; each decision's reason is shown and recorded on the trial's run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sweeps.budget import Budget
from sweeps.record import POLICY_KEY, SEED_KEY, RecipeAttr  # noqa: F401 - POLICY_KEY: its config key

FEW = 4.0  # full trials the budget holds at or below which the sweep exploits and ensembles
STRETCH = 2.5  # a long schedule, in the spec's schedules (a compute budget's unit)
MEMBERS = 3  # trials of the best configuration (seeds) the ensemble is given at most


@dataclass(frozen=True)
class Done:
    """A finished trial as the policy sees it."""

    number: int
    value: float
    params: Mapping[str, Any]
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 0  # epochs its schedule ran (its recipe's look, or the budget's fit)
    refit_epochs: int = 0  # the epochs its refit would train (its best epoch); 0: ``epochs``


@dataclass(frozen=True)
class Decision:
    kind: str  # explore, exploit, ensemble or stop
    reason: str
    params: Mapping[str, Any] | None = None  # the configuration to enqueue (exploit, ensemble)
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 0  # its schedule where the policy sets one (``stretch``); 0: as planned


def holds(left: float | None, full_cost: float | None) -> float | None:
    """Full trials the budget still holds: ``left`` (images or seconds) over what one full
    trial costs; None where either is unknown (no budget, no pace measured yet)."""
    if left is None or not full_cost or full_cost <= 0:
        return None
    return max(0.0, left) / full_cost


def decide(done: Sequence[Done], full: float | None, max_epochs: int, mode: str = "max",
           seed: int = 0) -> Decision:
    """The next trial (see the module's docstring). ``done``: the finished trials; ``full``:
    the full trials the budget holds (``holds``), None for no limit; ``seed``: the sweep's
    trial seed, from which members' seeds count up."""
    ok = usable(done)
    if full is None:
        return Decision("explore", "no budget to plan: the spec's trials")
    if not ok:
        return Decision("explore", "no finished trial yet")
    if full > FEW:
        return Decision("explore", f"the budget holds {full:.1f} full trials: searching")
    best, same, attrs = _again(ok, mode)
    if full * max_epochs < 1.0:
        return Decision("stop", f"the budget holds {full * max_epochs:.2f} of an epoch: the "
                                f"refit comes next")
    if max(d.epochs for d in same) < max_epochs and full >= 1.0:
        return Decision("exploit", f"trial {best.number} is the best after {best.epochs} of "
                                   f"{max_epochs} epochs: its configuration on the whole "
                                   f"schedule", dict(best.params), _whole(attrs))
    seeds = _seeds(same, seed)
    if len(seeds) < MEMBERS:
        member_seed = max(seeds) + 1
        return Decision("ensemble", f"the budget holds {full:.1f} full trials: trial "
                                    f"{best.number}'s configuration again with seed "
                                    f"{member_seed}, for the ensemble", dict(best.params),
                        {**attrs, SEED_KEY: member_seed})
    return Decision("explore", f"the best configuration has {len(seeds)} seeds: searching")


def few(left: int | None, epochs: int, n_train: int) -> bool:
    """Whether ``left`` training images hold ``FEW`` long schedules (``STRETCH`` times
    ``epochs`` epochs of ``n_train`` images) or fewer: the budget is spent on long schedules of
    the best configuration, not searched."""
    return (left is not None and left > 0 and epochs > 0 and n_train > 0
            and left <= FEW * STRETCH * epochs * n_train)


def long_epochs(left: int | None, epochs: int, n_train: int) -> int:
    """The epochs of the next trial where a compute budget with ``left`` training images holds
    ``few`` long schedules: those images split into as many equal schedules as the long
    schedules they hold, rounded (halves up; at least one); 0 where they hold more (the
    budget searches), or where that is no longer than the spec's schedule of ``epochs``
    epochs."""
    if not few(left, epochs, n_train):
        return 0
    total = int(left) // n_train
    per = total // max(1, math.floor(total / (STRETCH * epochs) + 0.5))  # halves round up
    return per if per > epochs else 0


def fill_epochs(holds: int, epochs: int) -> int:
    """The last epoch of a trial that may fill a time budget (``Budget.fill_window``), where
    the time it has holds ``holds`` epochs at its pace: as a compute budget's first trial
    (``long_epochs``), all of them where they are one long schedule of the ``epochs``
    epochs planned, an equal part where they are a few, the ``epochs`` planned where they are
    more than ``FEW`` (the budget searches after it); never more than they hold."""
    return long_epochs(holds, epochs, 1) or min(holds, epochs)


def fill_cap(epochs: int) -> int:
    """The epochs a trial that may fill a time budget is planned on before its pace is known:
    one more than ``FEW`` long schedules of ``epochs``, so that a time holding more tells
    ``fill_epochs`` it holds many (it gives no more than ``FEW`` long schedules' worth)."""
    return math.floor(FEW * STRETCH * epochs) + 1


def stretch(done: Sequence[Done], epochs: int, mode: str = "max", seed: int = 0) -> Decision:
    """The next trial on a long schedule of ``epochs`` epochs (``long_epochs``): the best
    finished configuration again, with the next seed of its configuration (``seed`` counts up,
    as ``decide``'s members); ``exploit`` where none of its runs had so long a schedule, else
    ``ensemble``."""
    best, same, attrs = _again(usable(done), mode)
    attrs = _whole(attrs)
    member_seed = max(_seeds(same, seed)) + 1
    kind = "ensemble" if max(d.epochs for d in same) >= epochs else "exploit"
    return Decision(kind, f"the budget holds few long schedules: trial {best.number}'s "
                          f"configuration on one of {epochs} epochs, seed {member_seed}",
                    dict(best.params), {**attrs, SEED_KEY: member_seed}, epochs)


def refit_need(done: Sequence[Done], mode: str, images_per_epoch: int, max_epochs: int = 0,
               n_train: int = 0, left: int | None = None) -> int | None:
    """The training images to keep for the refit (``images_per_epoch``: the training images and
    the validation half it trains on). 0 where the compute ``left`` holds ``few`` long
    schedules of ``n_train`` images an epoch (they are spent on long schedules,
    ``long_epochs``); else the best finished trial's refit's epochs of them, or before any
    trial has finished a whole schedule's (``max_epochs``) where it fits beside a whole trial
    (else 0). None: no plan (no images per epoch, or no budget ``left`` to plan with and no
    trial finished)."""
    if images_per_epoch <= 0:
        return None
    if few(left, max_epochs, n_train):
        return 0
    ok = usable(done)
    if ok:
        best = _best(ok, mode)
        return (best.refit_epochs or best.epochs) * images_per_epoch
    if left is None or max_epochs <= 0:
        return None
    if max_epochs * (images_per_epoch + n_train) > left:
        return 0
    return max_epochs * images_per_epoch


def searching(budget: Budget, epochs: int, n_train: int) -> Budget:
    """``budget`` as the search starts with it, before any trial of this command: where the
    compute left holds ``few`` long schedules of ``epochs`` epochs, with no refit's share
    (``refit_need``), so that a resume late in them finds the epochs left for the search."""
    if budget.counted and few(budget.images_left(), epochs, n_train):
        return budget.reserving(0)
    return budget


def usable(done: Sequence[Done]) -> list[Done]:
    """The finished trials with a finite value (a diverged one is never the best)."""
    return [d for d in done if d.value is not None and math.isfinite(d.value)]


def _again(ok: Sequence[Done], mode: str) -> tuple[Done, list[Done], dict[str, Any]]:
    """The best of the finite trials ``ok``, those of its configuration, and the user
    attributes a trial of it again carries (its recipe)."""
    best = _best(ok, mode)
    same = [d for d in ok if _config(d) == _config(best)]
    return best, same, {k: v for k, v in best.user_attrs.items() if k in (RecipeAttr.KEY,)}


def _whole(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with its recipe on its whole schedule, not its quick look."""
    recipe = RecipeAttr.from_attr(attrs.get(RecipeAttr.KEY))
    if recipe is None:
        return attrs
    return {**attrs, RecipeAttr.KEY: replace(recipe, max_epochs=0).to_attr()}


def _best(usable: Sequence[Done], mode: str) -> Done:
    """The best of ``usable`` in the spec's mode (the earlier on a tie)."""
    return max(usable, key=lambda d: d.value if mode == "max" else -d.value)


def _seeds(same: Sequence[Done], seed: int) -> set[int]:
    """The training seeds the runs ``same`` of one configuration trained with (``seed``: the
    sweep's, where a run has none of its own): a recipe's quick looks and its whole run are
    one seed, not three."""
    return {int(d.user_attrs.get(SEED_KEY, seed)) for d in same}


def _config(d: Done) -> tuple:
    """A trial's configuration, its seed and its look aside."""
    recipe = RecipeAttr.from_attr(d.user_attrs.get(RecipeAttr.KEY))
    named = None if recipe is None else (recipe.name, recipe.preset)
    return tuple(sorted((k, repr(v)) for k, v in d.params.items())), named
