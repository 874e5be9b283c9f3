"""Resume: make the records agree after a stopped run, and count what is done.

The Optuna study in the database is the state. Each trial's MLflow run carries its Optuna trial
number and its Tune folder, and the driver closes the run before Optuna is told. ``reconcile``
turns whatever a stop left into a study a fresh Tuner goes on from: finished trials kept,
interrupted ones enqueued again to go on from their last saved epoch (``space.RESUME_KEY``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import optuna

from fmnist import compat
from sweeps import tags as tag
from sweeps import tracking
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


def latest_state(trial_dir: str | os.PathLike[str] | None) -> tuple[Path, int] | None:
    """The newest complete training state a trial saved in its Tune folder (``checkpoint_*``
    holding ``state.json`` and ``model.keras``), with its epoch; None where there is none. A
    checkpoint a kill left half-copied (unreadable state or zip) is passed over."""
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
            continue
        return ckpt, epoch
    return None


def reconcile(spec: SweepSpec, storage: optuna.storages.BaseStorage, st: tracking.Store,
              say: Callable[[str], None]) -> None:
    """Make the records agree after a killed run. Each trial's MLflow run carries its Optuna
    trial number, and the driver closes the MLflow run before Optuna is told, so a kill can leave:
    an Optuna trial RUNNING whose MLflow run was closed (its result is kept: Optuna is told the
    run's objective); an Optuna trial RUNNING with no closed run (interrupted: -> FAIL, marked
    ``fmnist_interrupted``, and enqueued again with the same hyperparameters, going on from its
    last saved epoch in the same MLflow run, see ``space.RESUME_KEY``); an MLflow run RUNNING
    whose Optuna trial is finished (closed to match); an MLflow run RUNNING of an interrupted
    trial that has no saved epoch to go on from (deleted: it is half-written; the trial starts
    over). Trials enqueued and not started yet (WAITING) are left to run."""
    from optuna.trial import TrialState

    from sweeps.space import RECIPE_KEY, RESUME_KEY, WARM_KEY

    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        study = None
    runs = tracking.trial_runs(st, spec.name)
    by_id = {r.info.run_id: r for r in runs}
    by_number = {int(r.data.tags[tag.OPTUNA_TRIAL]): r for r in runs
                 if r.data.tags.get(tag.OPTUNA_TRIAL, "").isdigit()}
    trials = study.get_trials(deepcopy=False) if study is not None else []
    kept = {t.user_attrs[RESUME_KEY]["run_id"] for t in trials
            if t.state == TrialState.WAITING and RESUME_KEY in t.user_attrs}
    for t in trials:
        if t.state != TrialState.RUNNING:
            continue
        run = by_number.get(t.number)
        if run is None and RESUME_KEY in t.user_attrs:  # it started; its run not yet re-tagged
            run = by_id.get(t.user_attrs[RESUME_KEY]["run_id"])
        value = run.data.metrics.get("objective") if run is not None else None
        if run is not None and run.info.status in ("FINISHED", "KILLED") and value is not None:
            storage.set_trial_state_values(compat.optuna_trial_id(t), TrialState.COMPLETE,
                                          [value])
            say(f"resume: trial {t.number} had finished ({spec.metric} {value:.4f}); kept")
            continue
        storage.set_trial_user_attr(compat.optuna_trial_id(t), INTERRUPTED, True)
        storage.set_trial_state_values(compat.optuna_trial_id(t), TrialState.FAIL)
        state = latest_state(run.data.tags.get(tag.TRIAL_DIR)) if run is not None else None
        recipe = {k: v for k, v in t.user_attrs.items() if k in (RECIPE_KEY, WARM_KEY)}
        if state is None:
            study.enqueue_trial(t.params, skip_if_exists=False, user_attrs=recipe)
            say(f"resume: trial {t.number} was interrupted before its first epoch ended; "
                f"it starts again")
            continue
        folder, epoch = state
        _log_saved_epochs(st, run.info.run_id, folder, epoch)
        study.enqueue_trial(t.params, skip_if_exists=False, user_attrs={**recipe, RESUME_KEY: {
            "run_id": run.info.run_id, "checkpoint": str(folder), "epoch": epoch,
            "trial": t.user_attrs.get(RESUME_KEY, {}).get("trial", t.number)}})
        kept.add(run.info.run_id)
        say(f"resume: trial {t.number} was interrupted; it goes on after epoch {epoch}")
    closed = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED",
              TrialState.FAIL: "FAILED"}
    c = tracking.client(st)
    now = {t.number: t for t in study.get_trials()} if study is not None else {}
    for run in runs:
        if run.info.status != "RUNNING" or run.info.run_id in kept:
            continue
        number = run.data.tags.get(tag.OPTUNA_TRIAL, "")
        t = now.get(int(number)) if number.isdigit() else None
        if t is not None and t.state in closed and not t.user_attrs.get(INTERRUPTED):
            c.set_tag(run.info.run_id, tag.RECOVERED, "closed on resume")
            c.set_terminated(run.info.run_id, closed[t.state])
        else:
            c.delete_run(run.info.run_id)


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
