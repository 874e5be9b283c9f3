"""The sweep's record, typed: what a sweep writes and reads back, and the one class that queries
it.

- ``TrialRun``: one MLflow run of the sweep (a trial, or a refit or an ensemble after the
  search), its numbers read through typed properties named after the metric names below.
- ``FinalResult``: what the phase after the search chose and measured (``final.finish``).
- ``ResumeAttr`` and ``RecipeAttr``: the Optuna user attributes of an interrupted trial enqueued
  again and of a configuration from a recipe, with the dicts they are stored as.
- ``SweepRecord``: the queries the orchestration makes (``MlflowRecord`` over a store,
  ``MemoryRecord`` in memory for tests, as Optuna has ``InMemoryStorage``).

A trial run has one validation accuracy per model: ``VAL_ACC_FINAL`` is its saved model's (the
one the final choice uses, and the ``objective`` where the spec's metric is val/acc);
``val/acc`` is logged per epoch (the last epoch's is its latest value) and ``val/acc_best`` is
the best of its epochs so far; ``VAL_ACC_HELD`` is a candidate final model's on the validation
half no candidate was built on (the final choice's figure). Reports name them so.

Pure: no TensorFlow, Ray or MLflow import (``MlflowRecord`` imports MLflow when used).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sweeps import tags as tag

# metric names of a finished trial's run (written by sweeps.recorder, read here)
OBJECTIVE = "objective"  # the spec's metric, of the trial's final model
VAL_ACC_FINAL = "val/acc_final"  # the saved model's validation accuracy
VAL_LOSS_FINAL = "val/loss_final"
# a model after the search's validation accuracy on the held-out half of the validation split
# (``final.halves``: it trained no refit and picked no ensemble member), with the final TTA:
# the figure the final choice compares
VAL_ACC_HELD = "val/acc_held"
EPOCHS = "epochs"  # epochs trained
BEST_EPOCH = "best_epoch"  # the epoch whose weights were kept
TRAIN_S = "train_s"  # seconds of training (the pace: train_s / epochs)
PARAMS = "params"
SCHEDULE_EPOCHS = "schedule_epochs"  # where its schedule ended, where a budget moved it
TRAIN_IMAGES = "train_images"  # images a refit trained on (its run's)

# Optuna user attribute of a warm start: where it is from, e.g. "recipe 003-model5"
WARM_KEY = "fmnist_warm"
SEED_KEY = "fmnist_seed"  # Optuna user attribute: an ensemble member's training seed
# Optuna user attribute and Ray config key: the schedule a compute budget planned a trial on
# (``policy.long_epochs``, a recipe's, the spec's), before it was fitted to the compute left, so
# that a trial started again after a kill is planned on the same schedule
PLANNED_KEY = "fmnist_planned"
# Optuna user attribute and Ray config key: a trial that fills a time budget
# (``policy.fill_epochs``) and the epochs it was planned on before it did, so that one going on
# after a kill fills the resumed command's budget again
FILLS_KEY = "fmnist_fills"
# Optuna user attributes of a finished trial: the epochs its schedule ran (a budget may have
# shortened or the policy lengthened it) and its best epoch (its refit's epochs), so that a
# later command plans the refit's share on what it trained, not on the spec's schedule
SCHEDULE_ATTR = "fmnist_schedule"
BEST_EPOCH_ATTR = "fmnist_best_epoch"
POLICY_KEY = "fmnist_policy"  # Ray config key: the budget policy's decision that made a trial

# MLflow run statuses
FINISHED, KILLED, FAILED, RUNNING = "FINISHED", "KILLED", "FAILED", "RUNNING"


def trial_seed(spec: Any) -> int:
    """The training seed of the sweep's trials and its refit: the spec's fixed ``seed``, else
    its data seed."""
    return int(spec.fixed.get("seed", spec.data_seed))


@dataclass(frozen=True)
class TrialRun:
    """One run of the sweep, as recorded: its ``params`` (strings, as MLflow keeps them), its
    latest ``metrics`` and its ``tags``."""

    run_id: str
    status: str = FINISHED
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    name: str = ""

    @classmethod
    def from_mlflow(cls, run: Any) -> TrialRun:
        return cls(run.info.run_id, run.info.status, dict(run.data.params),
                   dict(run.data.metrics), dict(run.data.tags), run.info.run_name or "")

    @property
    def role(self) -> str:
        return self.tags.get(tag.ROLE, "")

    @property
    def number(self) -> int | None:
        """Its Optuna trial number; None where it has none (not a trial's run)."""
        n = self.tags.get(tag.OPTUNA_TRIAL, "")
        return int(n) if n.isdigit() else None

    @property
    def objective(self) -> float | None:
        return self.metrics.get(OBJECTIVE)

    @property
    def usable(self) -> bool:
        """Finished with a finite objective: a diverged (NaN, inf) or missing one is not."""
        v = self.objective
        return self.status == FINISHED and v is not None and math.isfinite(v)

    @property
    def epochs(self) -> int:
        return int(self.metrics.get(EPOCHS) or 0)

    @property
    def refit_epochs(self) -> int:
        """The epochs its refit trains: its best epoch count (else all it trained, else 1)."""
        return int(self.metrics.get(BEST_EPOCH) or self.metrics.get(EPOCHS) or 1)

    @property
    def planned_epochs(self) -> int:
        """The schedule its run started on (its ``max_epochs`` parameter); 0: not recorded."""
        v = str(self.params.get("max_epochs", ""))
        return int(v) if v.isdigit() else 0

    @property
    def schedule_epochs(self) -> int | None:
        """Where its schedule ended, where a budget moved it; None: the spec's."""
        v = self.metrics.get(SCHEDULE_EPOCHS)
        return int(v) if v else None

    @property
    def epoch_s(self) -> float | None:
        """Its pace: seconds of training an epoch; None where it did not record it."""
        train_s, ran = self.metrics.get(TRAIN_S), self.metrics.get(EPOCHS)
        return float(train_s) / float(ran) if train_s and ran else None

    @property
    def costs(self) -> dict[str, float]:
        """Its model's costs (``fmnist.costs.COSTS``) as measured before training; {} where
        not recorded (a run of an earlier version)."""
        from fmnist.costs import COSTS, PREFIX

        return {k: float(self.metrics[PREFIX + k]) for k in COSTS if PREFIX + k in self.metrics}

    @property
    def infeasible(self) -> str:
        """Which constraints its model broke (it was not trained); "" for a feasible one."""
        return self.tags.get(tag.INFEASIBLE, "")

    @property
    def checkpoint_dir(self) -> str:
        return self.tags.get(tag.CHECKPOINT, "")

    def model_path(self) -> Path | None:
        """Its saved model, where the file is there."""
        path = Path(self.checkpoint_dir) / "model.keras" if self.checkpoint_dir else None
        return path if path is not None and path.is_file() else None

    @property
    def source_run_id(self) -> str:
        return self.tags.get(tag.SOURCE_RUN_ID, "")

    @property
    def complete(self) -> bool:
        """A refit: trained all its epochs within the budget."""
        return self.tags.get(tag.COMPLETE) == "true"


def rank(runs: Iterable[TrialRun], mode: str, n: int | None = None) -> list[TrialRun]:
    """The usable runs (``TrialRun.usable``), best objective first in ``mode`` ("max" or
    "min"), at most ``n``; ties keep the record's order."""
    usable = [r for r in runs if r.usable]
    usable.sort(key=lambda r: -r.objective if mode == "max" else r.objective)  # type: ignore
    return usable if n is None else usable[:n]


def front(runs: Iterable[TrialRun], objectives: Mapping[str, str]) -> list[TrialRun]:
    """The usable runs no other is at least as good as on every one of ``objectives`` (the
    spec's ``objective_modes``: the metric's key, then ``cost/<name>``, each "max" or "min")
    and better on one: the accuracy/cost front, best objective first. A run without every cost
    recorded is left out."""
    from sweeps import rungs

    metric_mode = next(iter(objectives.values()))
    costs = list(objectives)[1:]
    usable = [r for r in rank(runs, metric_mode) if all(k in r.metrics for k in costs)]
    points = [rungs.minimised([r.objective, *(r.metrics[k] for k in costs)],
                              list(objectives.values())) for r in usable]
    on = set(rungs.fronts(points)[0]) if points else set()
    return [r for i, r in enumerate(usable) if i in on]


@dataclass(frozen=True)
class FinalResult:
    """The sweep's outcome after the search: its best trial and, where the test set was
    scored, the final model (``final``: tags.TRIAL, REFIT or ENSEMBLE) and its test accuracy."""

    run_id: str  # the best trial's run
    objective: float | None
    params: Mapping[str, str]
    checkpoint: str = ""
    test_acc: float | None = None
    model_uri: str | None = None
    final: str | None = None
    final_run_id: str | None = None
    tta: str = "none"

    @classmethod
    def of_best(cls, best: TrialRun) -> FinalResult:
        return cls(best.run_id, best.objective, dict(best.params), best.checkpoint_dir)


@dataclass(frozen=True)
class ResumeAttr:
    """An interrupted trial enqueued again (Optuna user attribute ``KEY``): its MLflow
    ``run_id`` goes on from the state folder ``checkpoint`` saved after ``epoch``; ``trial`` is
    the Optuna number of the trial it continues (the first, over several resumes);
    ``max_epochs``: the schedule its run started on (its ``max_epochs`` parameter), which it
    keeps; 0 where not recorded (the schedule is planned again)."""

    KEY = "fmnist_resume"
    run_id: str
    checkpoint: str
    epoch: int
    trial: int
    max_epochs: int = 0

    def to_attr(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.max_epochs:
            del out["max_epochs"]
        return out

    @classmethod
    def from_attr(cls, attr: Mapping[str, Any] | None) -> ResumeAttr | None:
        if not attr:
            return None
        return cls(str(attr["run_id"]), str(attr["checkpoint"]), int(attr["epoch"]),
                   int(attr["trial"]), int(attr.get("max_epochs") or 0))


@dataclass(frozen=True)
class RecipeAttr:
    """A configuration from a recipe (Optuna user attribute ``KEY``): the recipe's ``name``,
    its ``preset``, its knobs outside the space (``hp``); ``exact``: the spec's ``fixed`` does
    not apply to it; ``max_epochs``: a shorter schedule for it (the quick looks at the first
    recipe of a time budget in sweeps recorded before they were dropped), else 0."""

    KEY = "fmnist_recipe"
    name: str
    preset: str | None = None
    hp: Mapping[str, Any] = field(default_factory=dict)
    exact: bool = False
    max_epochs: int = 0

    def to_attr(self) -> dict[str, Any]:
        out = {"name": self.name, "preset": self.preset, "hp": dict(self.hp),
               "exact": self.exact}
        if self.max_epochs:
            out["max_epochs"] = self.max_epochs
        return out

    @classmethod
    def from_attr(cls, attr: Mapping[str, Any] | None) -> RecipeAttr | None:
        if not attr:
            return None
        return cls(str(attr.get("name", "")), attr.get("preset"), dict(attr.get("hp", {})),
                   bool(attr.get("exact", False)), int(attr.get("max_epochs") or 0))


class SweepRecord(Protocol):
    """What the orchestration reads of a sweep's record."""

    mode: str

    def runs(self, role: str) -> list[TrialRun]:
        """The sweep's runs of ``role`` (tags.TRIAL, REFIT, ENSEMBLE), any status."""
        ...


class _Queries:
    """The queries every record answers alike, from ``runs``."""

    mode: str

    def runs(self, role: str) -> list[TrialRun]:  # pragma: no cover - each record's own
        raise NotImplementedError

    def ranked(self, n: int | None = None) -> list[TrialRun]:
        """Up to ``n`` usable finished trials, best objective first in the spec's mode."""
        return rank(self.runs(tag.TRIAL), self.mode, n)

    def best(self) -> TrialRun | None:
        """The usable finished trial with the best objective; None where none."""
        ranked = self.ranked(1)
        return ranked[0] if ranked else None

    def own_run(self, role: str, source: TrialRun) -> TrialRun | None:
        """The run of ``role`` after the search for the best trial ``source``, where any."""
        for r in self.runs(role):
            if r.source_run_id == source.run_id:
                return r
        return None

    def images_used(self, n_train: int) -> int:
        """Training images the sweep has processed in all its commands, from the record: each
        trial's epochs logged (a trial resumed goes on in the same run: counted once) of
        ``n_train`` images, and each refit's own count. What a compute budget has spent."""
        trials = sum(self.epochs_logged(r) for r in self.runs(tag.TRIAL))
        refits = sum(int(r.metrics.get(TRAIN_IMAGES) or 0) for r in self.runs(tag.REFIT))
        return trials * n_train + refits

    def epochs_logged(self, run: TrialRun) -> int:
        """The last epoch a trial's run holds (its per-epoch metrics' last step)."""
        return int(run.metrics.get("epoch") or 0)  # a made-up run's

    def refit_going_on(self, best: TrialRun) -> bool:
        """Whether a command started the refit of ``best`` and was killed before it ended (its
        run is not finished): the search had ended; the refit goes on."""
        done = self.own_run(tag.REFIT, best)
        return done is not None and done.status != FINISHED

    def refit_spent(self, best: TrialRun) -> int:
        """Training images the refit of ``best`` processed in a command killed before it ended
        (the epochs it saved: it goes on after them); 0: none started, or done."""
        done = self.own_run(tag.REFIT, best)
        if done is None or done.status == FINISHED:
            return 0
        return int(done.metrics.get(TRAIN_IMAGES) or 0)

    def refit_done(self, best: TrialRun) -> bool:
        """Whether an earlier command trained the refit of ``best`` (finished, model saved)."""
        done = self.own_run(tag.REFIT, best)
        return done is not None and done.status == FINISHED and done.model_path() is not None


class MemoryRecord(_Queries):
    """A sweep's record in memory: runs added by hand (tests of the orchestration)."""

    def __init__(self, mode: str = "max", runs: Iterable[TrialRun] = ()):
        self.mode = mode
        self._runs: list[TrialRun] = []
        for r in runs:
            self.add(r)

    def add(self, run: TrialRun, role: str | None = None) -> TrialRun:
        if role is not None:
            run = TrialRun(run.run_id, run.status, run.params, run.metrics,
                           {**run.tags, tag.ROLE: role}, run.name)
        elif tag.ROLE not in run.tags:
            run = TrialRun(run.run_id, run.status, run.params, run.metrics,
                           {**run.tags, tag.ROLE: tag.TRIAL}, run.name)
        self._runs.append(run)
        return run

    def runs(self, role: str) -> list[TrialRun]:
        return [r for r in self._runs if r.role == role]


class MlflowRecord(_Queries):
    """A sweep's record in its MLflow store (``tracking.Store``)."""

    def __init__(self, st: Any, spec: Any):
        self.st, self.sweep, self.mode = st, spec.name, spec.mode

    def runs(self, role: str) -> list[TrialRun]:
        from sweeps import tracking

        return [TrialRun.from_mlflow(r) for r in tracking.runs(self.st, self.sweep, role)]

    def epochs_logged(self, run: TrialRun) -> int:
        from sweeps import tracking

        return tracking.last_logged_epoch(self.st, run.run_id)
