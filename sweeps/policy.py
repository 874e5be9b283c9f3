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
or its schedule fitted to the time left), so the budget is spent, not left over. The other way
round, under a compute budget that holds few whole trials (``FEW``), the first trial's schedule
is stretched to the budget (``lengthen``), up to ``STRETCH`` times its length, and no refit's
share is kept before it: on this data a longer schedule is what more images buy, where more
models of the same schedule (a member, a refit on 12.5% more images) were not (BENCHMARKS.md:
25 epochs, one stretched schedule +0.17 points on each of 3 seeds over 18 epochs and a 7-epoch
member; 50 epochs, the refit tested no higher than its trial; 40 epochs, one seed, +0.32).

Pure: the searcher (``recorder.StudySearch``) asks ``decide`` and carries the decision out with
Optuna's ``enqueue_trial``; each decision's reason is shown and recorded on the trial's run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sweeps.record import POLICY_KEY, SEED_KEY, RecipeAttr  # noqa: F401 - POLICY_KEY: its config key

FEW = 4.0  # full trials the budget holds at or below which the sweep exploits and ensembles
STRETCH = 2.5  # the longest the first trial's schedule is stretched to, in its own lengths
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
    usable = _usable(done)
    if full is None:
        return Decision("explore", "no budget to plan: the spec's trials")
    if not usable:
        return Decision("explore", "no finished trial yet")
    if full > FEW:
        return Decision("explore", f"the budget holds {full:.1f} full trials: searching")
    best = _best(usable, mode)
    same = [d for d in usable if _config(d) == _config(best)]
    attrs = {k: v for k, v in best.user_attrs.items() if k in (RecipeAttr.KEY,)}
    recipe = RecipeAttr.from_attr(attrs.get(RecipeAttr.KEY))
    if full * max_epochs < 1.0:
        return Decision("stop", f"the budget holds {full * max_epochs:.2f} of an epoch: the "
                                f"refit comes next")
    if max(d.epochs for d in same) < max_epochs and full >= 1.0:
        if recipe is not None:  # the recipe's whole schedule, not its quick look
            attrs[RecipeAttr.KEY] = replace(recipe, max_epochs=0).to_attr()
        return Decision("exploit", f"trial {best.number} is the best after {best.epochs} of "
                                   f"{max_epochs} epochs: its configuration on the whole "
                                   f"schedule", dict(best.params), attrs)
    if len(same) < MEMBERS:
        member_seed = seed + len(same)
        return Decision("ensemble", f"the budget holds {full:.1f} full trials: trial "
                                    f"{best.number}'s configuration again with seed "
                                    f"{member_seed}, for the ensemble", dict(best.params),
                        {**attrs, SEED_KEY: member_seed})
    return Decision("explore", f"the best configuration has {len(same)} seeds: searching")


def few(left: int | None, epochs: int, n_train: int) -> bool:
    """Whether ``left`` training images hold fewer than ``FEW`` whole schedules of ``epochs``
    epochs of ``n_train`` images: the budget is spent on one long schedule, not searched."""
    return (left is not None and left > 0 and epochs > 0 and n_train > 0
            and left < FEW * epochs * n_train)


def lengthen(epochs: int, left: int, n_train: int) -> int:
    """Epochs to add to the first trial's whole schedule of ``epochs`` epochs of ``n_train``
    images, where the search has ``left`` training images and they hold ``few`` schedules: the
    schedule takes them, up to ``STRETCH`` times its length, and all of them where what the
    longest stretch would leave cannot train one whole schedule more. 0: the budget searches
    (or holds no more than the schedule)."""
    if not few(left, epochs, n_train):
        return 0
    total = left // n_train
    longest = int(STRETCH * epochs)
    if total - longest >= epochs:
        return longest - epochs
    return max(0, total - epochs)


def refit_need(done: Sequence[Done], mode: str, images_per_epoch: int, max_epochs: int = 0,
               n_train: int = 0, left: int | None = None) -> int | None:
    """The training images to keep for the refit (``images_per_epoch``: the training images and
    the validation half it trains on): the best finished trial's refit's epochs of them; before
    any trial has finished, a whole schedule's (``max_epochs``) where ``left`` holds more than
    ``few`` schedules of ``n_train`` images an epoch, else 0 (the first trial's schedule is
    stretched to the budget, ``lengthen``; its refit is weighed once it has finished). None:
    no plan (no images per epoch, or no budget ``left`` to plan with and no trial finished)."""
    if images_per_epoch <= 0:
        return None
    usable = _usable(done)
    if usable:
        best = _best(usable, mode)
        return (best.refit_epochs or best.epochs) * images_per_epoch
    if left is None or max_epochs <= 0:
        return None
    if few(left, max_epochs, n_train) or max_epochs * (images_per_epoch + n_train) > left:
        return 0
    return max_epochs * images_per_epoch


def _usable(done: Sequence[Done]) -> list[Done]:
    """The finished trials with a finite value (a diverged one is never the best)."""
    return [d for d in done if d.value is not None and math.isfinite(d.value)]


def _best(usable: Sequence[Done], mode: str) -> Done:
    """The best of ``usable`` in the spec's mode (the earlier on a tie)."""
    return max(usable, key=lambda d: d.value if mode == "max" else -d.value)


def _config(d: Done) -> tuple:
    """A trial's configuration, its seed and its look aside."""
    recipe = RecipeAttr.from_attr(d.user_attrs.get(RecipeAttr.KEY))
    named = None if recipe is None else (recipe.name, recipe.preset)
    return tuple(sorted((k, repr(v)) for k, v in d.params.items())), named
