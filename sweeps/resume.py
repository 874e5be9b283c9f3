"""Resume: make the records agree after a stopped run, and count what is done.

The Optuna study in the database is the state. Each trial's MLflow run carries its Optuna trial
number and its Tune folder, and the driver closes the run before Optuna is told. ``reconcile``
turns whatever a stop left into a study a fresh Tuner goes on from: finished trials kept,
interrupted ones enqueued again to go on from their last saved epoch (``space.RESUME_KEY``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from fmnist import compat
from sweeps import record, tracking
from sweeps import tags as tag
from sweeps.record import WARM_KEY, RecipeAttr, ResumeAttr, TrialRun
from sweeps.spec import SweepSpec

INTERRUPTED = "fmnist_interrupted"  # Optuna user attribute of a trial a stop interrupted


def study_counts(study: optuna.Study) -> tuple[int, int]:
    """(trials done, of which failed): COMPLETE, PRUNED and FAIL, less interrupted ones."""
    done = failed = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get(INTERRUPTED):
            continue
        if t.state.is_finished():
            done += 1
            failed += t.state == optuna.trial.TrialState.FAIL
    return done, failed


def latest_state(trial_dir: str | os.PathLike[str] | None,
                 passed: list[Path] | None = None) -> tuple[Path, int] | None:
    """The newest complete training state a trial saved in its Tune folder (``checkpoint_*``
    holding ``state.json`` and ``model.keras``), with its epoch; None where there is none. A
    checkpoint a kill left half-copied, or corrupt (unreadable state or zip), is passed over
    (appended to ``passed``)."""
    import json
    import zipfile

    if not trial_dir or not Path(trial_dir).is_dir():
        return None
    for ckpt in sorted(Path(trial_dir).glob("checkpoint_*"), reverse=True):
        try:
            epoch = int(json.loads((ckpt / "state.json").read_text())["epoch"])
            for archive in ("model.keras", "best_weights.npz"):
                if (ckpt / archive).exists() or archive == "model.keras":
                    with zipfile.ZipFile(ckpt / archive) as z:
                        if z.testzip() is not None:
                            raise zipfile.BadZipFile(archive)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
            if passed is not None:
                passed.append(ckpt)
            continue
        return ckpt, epoch
    return None


@dataclass(frozen=True)
class TrialView:
    """What ``decide`` reads of an Optuna trial: its number, state name (``TrialState.name``:
    RUNNING, WAITING, COMPLETE, PRUNED, FAIL), params and user attributes."""

    number: int
    state: str
    params: Mapping[str, Any] = field(default_factory=dict)
    user_attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return bool(self.user_attrs.get(INTERRUPTED))


@dataclass(frozen=True)
class Complete:
    """A RUNNING trial whose run had closed with a result: told its ``value``; ``attrs``: the
    user attributes the searcher would have set on it (its schedule, its best epoch), from its
    run, for the policy of later commands."""

    number: int
    value: float
    costs: Mapping[str, float] = field(default_factory=dict)  # its model's (several objectives)
    attrs: Mapping[str, int] = field(default_factory=dict)

    def values(self, spec) -> list[float] | None:
        """The study's values: the objective, then each cost objective of ``spec``; None where
        a cost was not recorded."""
        out = [self.value, *(self.costs.get(k) for k in spec.objectives)]
        return None if any(v is None for v in out) else out


@dataclass(frozen=True)
class Requeue:
    """An interrupted trial: failed (marked ``INTERRUPTED``) and enqueued again with its
    ``params`` and ``user_attrs`` (its recipe's, and ``resume`` where it goes on from a saved
    epoch)."""

    number: int
    params: Mapping[str, Any]
    user_attrs: Mapping[str, Any]
    resume: ResumeAttr | None = None


@dataclass(frozen=True)
class CloseRun:
    """A RUNNING MLflow run of a trial that is closed in Optuna: closed to match."""

    run_id: str
    status: str


@dataclass(frozen=True)
class DeleteRun:
    """A RUNNING MLflow run of an interrupted trial with no saved epoch: half-written."""

    run_id: str


Action = Complete | Requeue | CloseRun | DeleteRun
CLOSED = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def decide(trials: Sequence[TrialView], runs: Sequence[TrialRun],
           latest: Callable[[str], tuple[str, int] | None]) -> list[Action]:
    """What a resume does to make the records agree (the policy of ``reconcile``, no I/O).
    ``latest(trial_dir)``: the newest saved state in a trial's folder and its epoch, or None.

    Each trial's MLflow run carries its Optuna trial number, and the driver closes the run
    before Optuna is told, so a stop can leave: an Optuna trial RUNNING whose run was closed
    with a result (``Complete``); an Optuna trial RUNNING with no closed run (``Requeue``,
    going on from its last saved epoch in the same run where it has one, else starting over);
    an MLflow run RUNNING whose trial is closed (``CloseRun``); an MLflow run RUNNING of an
    interrupted trial that has no saved epoch to go on from (``DeleteRun``). Trials enqueued
    and not started (WAITING) are left to run."""
    by_id = {r.run_id: r for r in runs}
    by_number = {r.number: r for r in runs if r.number is not None}
    kept = {a.run_id for t in trials if t.state == "WAITING"
            for a in [ResumeAttr.from_attr(t.user_attrs.get(ResumeAttr.KEY))] if a}
    actions: list[Action] = []
    state = {t.number: (t.state, t.interrupted) for t in trials}
    for t in trials:
        if t.state != "RUNNING":
            continue
        run = by_number.get(t.number)
        resumed = ResumeAttr.from_attr(t.user_attrs.get(ResumeAttr.KEY))
        if run is None and resumed is not None:  # it started; its run not yet re-tagged
            run = by_id.get(resumed.run_id)
        value = run.objective if run is not None else None
        if run is not None and run.status in ("FINISHED", "KILLED") and value is not None:
            actions.append(Complete(t.number, value, run.costs, _finished_attrs(run)))
            state[t.number] = ("COMPLETE", False)
            continue
        state[t.number] = ("FAIL", True)
        recipe = {k: v for k, v in t.user_attrs.items()  # what it was planned as, kept
                  if k in (RecipeAttr.KEY, WARM_KEY, record.SEED_KEY, record.PLANNED_KEY,
                           record.FILLS_KEY)}
        saved = latest(run.tags.get(tag.TRIAL_DIR, "")) if run is not None else None
        if run is None or saved is None:
            actions.append(Requeue(t.number, dict(t.params), recipe))
            continue
        folder, epoch = saved
        # a trial that filled a time budget was planned on the fill's cap: where it goes on
        # without filling again, on the epochs it was planned on before
        planned = int(t.user_attrs.get(record.FILLS_KEY) or 0) or run.planned_epochs
        attr = ResumeAttr(run.run_id, str(folder), epoch,
                          resumed.trial if resumed is not None else t.number, planned)
        actions.append(Requeue(t.number, dict(t.params), {**recipe, ResumeAttr.KEY:
                                                          attr.to_attr()}, attr))
        kept.add(run.run_id)
    for run in runs:
        if run.status != "RUNNING" or run.run_id in kept:
            continue
        now, interrupted = state.get(run.number, ("", False)) if run.number is not None \
            else ("", False)
        if now in CLOSED and not interrupted:
            actions.append(CloseRun(run.run_id, CLOSED[now]))
        else:
            actions.append(DeleteRun(run.run_id))
    return actions


def _finished_attrs(run: TrialRun) -> dict[str, int]:
    """The schedule and best epoch of a finished trial's ``run`` as the searcher records them
    on its Optuna trial (``record.SCHEDULE_ATTR``, ``record.BEST_EPOCH_ATTR``), where the run
    has them."""
    schedule = run.schedule_epochs or run.planned_epochs
    best = int(run.metrics.get(record.BEST_EPOCH) or 0)
    return {k: v for k, v in ((record.SCHEDULE_ATTR, schedule),
                              (record.BEST_EPOCH_ATTR, best)) if v}


def reconcile(spec: SweepSpec, storage: optuna.storages.BaseStorage, st: tracking.Store,
              say: Callable[[str], None]) -> None:
    """Make the records agree after a killed run: ``decide``'s actions, carried out on the
    Optuna storage and the MLflow store."""
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        study = None
    trials = study.get_trials(deepcopy=False) if study is not None else []
    ids = {t.number: compat.optuna_trial_id(t) for t in trials}
    runs = [TrialRun.from_mlflow(r) for r in tracking.trial_runs(st, spec.name)]
    views = [TrialView(t.number, t.state.name, t.params, t.user_attrs) for t in trials]
    c = tracking.client(st)
    passed: list[Path] = []  # unreadable states passed over, newest first
    for a in decide(views, runs, lambda d: latest_state(d, passed)):
        if isinstance(a, Complete) and a.values(spec) is None:  # a cost objective missing
            storage.set_trial_state_values(ids[a.number], TrialState.FAIL)
            say(f"resume: trial {a.number} had finished without its costs; failed")
        elif isinstance(a, Complete):
            for k, v in a.attrs.items():
                storage.set_trial_user_attr(ids[a.number], k, v)
            storage.set_trial_state_values(ids[a.number], TrialState.COMPLETE, a.values(spec))
            say(f"resume: trial {a.number} had finished ({spec.metric} {a.value:.4f}); kept")
        elif isinstance(a, Requeue):
            storage.set_trial_user_attr(ids[a.number], INTERRUPTED, True)
            storage.set_trial_state_values(ids[a.number], TrialState.FAIL)
            if a.resume is not None:
                _log_saved_epochs(st, a.resume.run_id, Path(a.resume.checkpoint),
                                  a.resume.epoch)
            bad = [p for p in passed if a.resume is not None
                   and p.parent == Path(a.resume.checkpoint).parent]
            if bad:
                say(f"resume: trial {a.number}'s saved state {bad[0].name} is unreadable "
                    f"(half-written or corrupt); passed over"
                    + (f" with {len(bad) - 1} more" if len(bad) > 1 else ""))
            study.enqueue_trial(dict(a.params), skip_if_exists=False,
                                user_attrs=dict(a.user_attrs))
            say(f"resume: trial {a.number} was interrupted; it goes on after epoch "
                f"{a.resume.epoch}" if a.resume is not None else
                f"resume: trial {a.number} was interrupted before its first epoch ended; "
                f"it starts again")
        elif isinstance(a, CloseRun):
            c.set_tag(a.run_id, tag.RECOVERED, "closed on resume")
            c.set_terminated(a.run_id, a.status)
        else:
            c.delete_run(a.run_id)


def _log_saved_epochs(st: tracking.Store, run_id: str, folder: Path, epoch: int) -> None:
    """Epochs a saved state holds that its MLflow run lacks (the kill fell between the trial's
    report and the driver's write): logged from the state's history, so each epoch is once."""
    import json

    from sweeps.trial import EPOCH_KEYS

    logged = tracking.last_logged_epoch(st, run_id)
    history = json.loads((folder / "state.json").read_text()).get("history", [])
    missing = [{k: h[k] for k in EPOCH_KEYS if k in h} for h in history
               if logged < int(h["epoch"]) <= epoch]
    if missing:
        tracking.log_history(tracking.client(st), run_id, missing)
