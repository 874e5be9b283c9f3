"""Run a sweep: Ray Tune places the trials, Optuna samples them, the driver records them.

Resume is the same command. Sweep name = MLflow experiment = Optuna study. Resuming does not use
``Tuner.restore``: with a persistent Optuna storage it crashes after a SIGKILL (the pickled
searcher and the database disagree about the trial that was running). Instead the study in the
database is the state, reconciled with MLflow's (see ``reconcile``): a trial a killed run left
RUNNING is completed from its MLflow run where that was closed; otherwise it is marked FAIL
(user attribute ``fmnist_interrupted``) and enqueued again with the same hyperparameters, going
on from its last saved epoch in the same MLflow run. The trials already done are counted; a
fresh Tuner runs only the rest, its ``OptunaSearch`` loading the study with all its history and
a sampler seeded for the study's length (``space.sampler_seed``). Completed trials are never
rerun or logged twice.
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from fmnist.errors import UserError
from sweeps import progress, signals, space, tracking
from sweeps.spec import SweepSpec

INTERRUPTED = "fmnist_interrupted"


class ClusterError(UserError):
    """A Ray cluster address that cannot work: malformed, or nothing answers there."""


@dataclass
class RunOptions:
    store: str | None = None
    tracking_uri: str | None = None
    storage: str | None = None
    address: str | None = None
    data_dir: str | None = None
    fresh: bool = False
    argv: Sequence[str] = field(default_factory=list)


@dataclass
class Outcome:
    name: str
    done: int
    failed: int
    ran_now: int
    best: dict[str, Any] | None
    parent_run_id: str
    store: tracking.Store


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

    from sweeps.space import RESUME_KEY

    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        study = None
    runs = tracking.trial_runs(st, spec.name)
    by_id = {r.info.run_id: r for r in runs}
    by_number = {int(r.data.tags[tracking.OPTUNA_TRIAL]): r for r in runs
                 if r.data.tags.get(tracking.OPTUNA_TRIAL, "").isdigit()}
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
            storage.set_trial_state_values(t._trial_id, TrialState.COMPLETE, [value])
            say(f"resume: trial {t.number} had finished ({spec.metric} {value:.4f}); kept")
            continue
        storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        state = latest_state(run.data.tags.get(tracking.TRIAL_DIR)) if run is not None else None
        if state is None:
            study.enqueue_trial(t.params, skip_if_exists=False)
            say(f"resume: trial {t.number} was interrupted before its first epoch ended; "
                f"it starts again")
            continue
        folder, epoch = state
        _log_saved_epochs(st, run.info.run_id, folder, epoch)
        study.enqueue_trial(t.params, skip_if_exists=False, user_attrs={RESUME_KEY: {
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
        tag = run.data.tags.get(tracking.OPTUNA_TRIAL, "")
        t = now.get(int(tag)) if tag.isdigit() else None
        if t is not None and t.state in closed and not t.user_attrs.get(INTERRUPTED):
            c.set_tag(run.info.run_id, "fmnist.recovered", "closed on resume")
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


def _storage(url: str, tries: int = 4) -> optuna.storages.BaseStorage:
    """Optuna's storage at ``url``, its tables created where new. Two processes creating the
    same new storage at once (a second sweep with another store, ``optuna-dashboard``, a script
    reading the study) collide in Optuna's schema set-up: "table studies already exists", or
    a UNIQUE constraint on ``alembic_version``. The loser tries again and finds the tables
    made; an error that stays is the URL's."""
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

    for attempt in range(tries):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
            tracking.write_ahead_log(url)
            return storage
        except (IntegrityError, OperationalError) as e:
            if attempt == tries - 1:
                error = e
                break
            time.sleep(0.25 * (attempt + 1))
        except (ArgumentError, ImportError, ValueError) as e:
            error = e
            break
    raise tracking.StoreError(f"--storage {url}: cannot open the Optuna storage "
                              f"({type(error).__name__}: {str(error).splitlines()[0]}).")


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}


def _scheduler(spec: SweepSpec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    if spec.scheduler == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=spec.max_epochs + 1,
                             grace_period=spec.grace_period,
                             reduction_factor=spec.reduction_factor)
    if spec.scheduler == "median":
        return MedianStoppingRule(time_attr="epoch",
                                  grace_period=spec.grace_period)
    return FIFOScheduler()


def _init_ray(address: str | None) -> None:
    """``address`` or ``$RAY_ADDRESS``: an existing cluster. Neither: a new local Ray, even when
    a cluster started with ``ray start`` runs on this machine (plain ``ray.init()`` would attach
    to it)."""
    import ray

    if ray.is_initialized():
        return
    address = _address(address)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        ray.init(address=address, include_dashboard=False, configure_logging=True,
                 logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClusterError(f"--address {address}: cannot reach a Ray cluster "
                                  f"({str(e).splitlines()[0]}).") from None


def _address(given: str | None) -> str:
    address = given or os.environ.get("RAY_ADDRESS") or "local"
    _check_address(address)
    return address


def _check_address(address: str) -> None:
    """A host:port (or ray://host:port) that nothing answers on fails in seconds, not minutes."""
    import socket

    if address in ("local", "auto"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address}: must be auto, HOST:PORT or "
                                  f"ray://HOST:PORT.")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ClusterError(f"--address {address}: no Ray cluster answers at "
                                  f"{host}:{port} ({e.strerror or e}).") from None


def _plain_trial_actors() -> None:
    """Trial actors start on the worker processes Ray has already started. Tune gives every
    trial actor a runtime environment of its own (``{"env_vars": {"PL_DISABLE_FORK": "1"}}``,
    for PyTorch Lightning, which the trials do not use), and Ray starts a new process through
    its runtime-env agent for any actor with one: two actors were ready 2.1-2.4 s after
    creation with it and 0.5-0.7 s without, on this machine. Every sweep pays this once per
    actor, at its start and whenever an actor is replaced. Variables Tune copies from the
    driver's environment (``ENV_VARS_TO_PROPAGATE``, e.g. cloud credentials) still go with
    the actors. (Tune's module constant; if it moves, actors start as before.)"""
    try:
        from ray.tune.execution import class_cache

        class_cache.DEFAULT_ENV_VARS.pop("PL_DISABLE_FORK", None)
    except (ImportError, AttributeError):  # pragma: no cover - a Ray that moved it
        pass


def run(spec: SweepSpec, opts: RunOptions, say: Callable[[str], None] = print) -> Outcome:
    from fmnist import data

    if opts.fresh:
        spec = spec.replace(name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = tracking.store(opts.store, opts.tracking_uri, opts.storage)
    split = data.load_split(opts.data_dir, val_fraction=spec.val_fraction, seed=spec.data_seed,
                            subset=spec.subset)  # bad data fails here, before anything is written
    _address(opts.address)  # so does an address nothing answers on
    tracking.check_separate_databases(st)
    tracking.check_database_url(st.tracking_uri, "--tracking-uri", "the MLflow store")
    tracking.check_database_url(st.optuna_url, "--storage", "the Optuna storage")
    storage = _open_stores(st, opts)
    reconcile(spec, storage, st, say)
    parent = tracking.parent_run(st, spec, opts.argv)
    study = optuna.create_study(study_name=spec.name, storage=storage, load_if_exists=True,
                                direction="maximize" if spec.mode == "max" else "minimize")
    done, failed = study_counts(study)
    remaining = spec.trials - done
    ran_now = 0
    if remaining <= 0:
        say(f"sweep {spec.name}: all {spec.trials} trials are done; nothing to run")
    else:
        if done:
            say(f"sweep {spec.name}: resuming, {done} of {spec.trials} trials done")
        try:
            ran_now = _tune(spec, st, storage, study, split, parent, remaining, done, opts,
                            say)
        except signals.Interrupted as e:
            e.done, e.trials, e.name = study_counts(study)[0], spec.trials, spec.name
            raise
        done, failed = study_counts(study)
    best = tracking.finish(st, spec, parent, split, say)
    return Outcome(spec.name, done, failed, ran_now, best, parent, st)


def _open_stores(st: tracking.Store, opts: RunOptions) -> optuna.storages.BaseStorage:
    """Open (creating where new) the MLflow store and the Optuna storage. A new default store
    cannot hold a finished sweep, so Ray is started meanwhile: creating MLflow's tables (its
    migrations, 3-4 s here) and starting Ray (3-4 s) overlap instead of adding up."""

    def open_() -> optuna.storages.BaseStorage:
        with tracking.init_lock(st):
            tracking.check_tracking_uri(st)
            return _storage(st.optuna_url)

    if opts.tracking_uri or opts.storage or st.exists:  # not a new default store
        return open_()
    tracking.make_root(st)  # an unusable folder is said before Ray starts
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="fmnist-store") as pool:
        opening = pool.submit(open_)
        try:
            _init_ray(opts.address)
        except ClusterError:
            opening.result()  # a store error is said first, as without the overlap
            raise
        return opening.result()


def _tune(spec: SweepSpec, st: tracking.Store, storage, study: optuna.Study, split,
          parent: str, remaining: int, done_before: int, opts: RunOptions,
          say: Callable[[str], None]) -> int:
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from sweeps.trial import run_trial

    _init_ray(opts.address)
    _plain_trial_actors()
    gpu = spec.gpu
    if gpu and not ray.cluster_resources().get("GPU"):
        warnings.warn(f"{spec.path}: resources.gpu: {gpu} requested but Ray sees no GPU; "
                      f"the trials run on CPU.", RuntimeWarning, stacklevel=2)
        say(f"warning: resources.gpu {gpu} requested, but Ray sees no GPU: running on CPU")
        gpu = 0.0
    searcher = StudySearch(space=space.DefineByRun(spec), metric=spec.metric, mode=spec.mode,
                            sampler=space.sampler(spec, len(study.trials)), study_name=spec.name,
                            storage=storage)
    search_alg = (ConcurrencyLimiter(searcher, spec.max_concurrent) if spec.max_concurrent
                  else searcher)
    seed = int(spec.fixed.get("seed", spec.data_seed))
    fixed = {k: v for k, v in spec.fixed.items() if k != "seed"}
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, split=split, family=spec.family, preset=spec.preset,
                             fixed=fixed, max_epochs=spec.max_epochs, cpus=spec.cpu, seed=seed),
        {"cpu": spec.cpu, "gpu": gpu})
    status = progress.Progress(spec.trials, spec.max_epochs, spec.metric, done_before,
                               spec.time_budget_s)
    for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]):
        status.best = t.value if status.best is None else (
            max(status.best, t.value) if spec.mode == "max" else min(status.best, t.value))
    display = progress.Display(status, say)
    recorder = TrialRecorder(st, spec, parent, display, fixed, seed)
    st.ray_dir.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=_scheduler(spec), num_samples=remaining,
            metric=spec.metric, mode=spec.mode, reuse_actors=True,
            time_budget_s=spec.time_budget_s,
            trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(
            name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(st.ray_dir),
            callbacks=[recorder], verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # a trial's latest two checkpoints (its state after an epoch, to go on from after a
            # failure, and its final model): Tune snapshots the whole experiment every
            # num_to_keep checkpoints, which at 1 cost one snapshot per one-epoch trial
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )
    stopped: list[int] = []
    with signals.stop_on_signals(stopped, say), display:
        try:
            tuner.fit()
        except KeyboardInterrupt:  # a signal before Tune's loop was ready for it
            stopped = stopped or [signal.SIGINT]
    if stopped:
        raise signals.Interrupted(stopped[0])
    return recorder.started


def _trial_dir(trial) -> str:
    """The trial's Tune folder, where its checkpoints go; "" for a trial Tune gave none."""
    return (trial.path or "") if trial.storage is not None else ""


class StudySearch(OptunaSearch):
    """Ray's Optuna searcher, less what Tune would write of it: Tune pickles the searcher into
    the experiment folder (with every experiment checkpoint, and in ``tuner.pkl``), and it holds
    the storage and its URL, password included. The study in the database is the state a resume
    starts from (``Tuner.restore`` is never used), so nothing is lost."""

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        pass

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_storage", "_ot_study")}


class TrialRecorder(Callback):
    """Driver-side: one nested MLflow run per trial, per-epoch metrics, final status, and a
    compact progress line. Trials never touch the stores."""

    def __init__(self, st: tracking.Store, spec: SweepSpec, parent: str,
                 display: progress.Display, fixed: dict[str, Any], seed: int):
        self.st, self.spec, self.parent, self.display = st, spec, parent, display
        self.progress = display.progress
        self.fixed, self.seed = fixed, seed
        self.started = 0
        self.runs: dict[str, str] = {}
        self.logged: dict[str, int] = {}  # trial id -> last epoch its continued run held
        self.final: dict[str, dict[str, Any]] = {}
        self.closed: dict[str, str] = {}  # trial id -> the progress note of its closed run
        self.closed_value: dict[str, float] = {}  # trial id -> its finished run's objective
        self.experiment = tracking.experiment_id(st, spec.name)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment folder: no store URL (a password) there
        return {k: v for k, v in self.__dict__.items() if k != "st"}

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id in self.runs:
            return
        self._start_run(trial)
        resume = trial.config.get(space.RESUME_KEY)
        self.progress.started(trial.trial_id, trial.config.get(space.TRIAL_KEY),
                              resume["epoch"] if resume else 0)
        self.display.note(f"started {trial.trial_id}" + (
            f" (trial {resume['trial']} going on after epoch {resume['epoch']})"
            if resume else ""))

    def _start_run(self, trial) -> str:
        number = trial.config.get(space.TRIAL_KEY)
        resume = trial.config.get(space.RESUME_KEY)
        if resume:  # an interrupted trial going on: its run goes on too, from its next epoch
            rid = resume["run_id"]
            self.logged[trial.trial_id] = tracking.continue_trial(
                self.st, rid, number, {tracking.TRIAL_DIR: _trial_dir(trial),
                                       "fmnist.resumed_from_epoch": resume["epoch"],
                                       "fmnist.resumed_trial": resume["trial"]})
            self.runs[trial.trial_id] = rid
        else:
            params = {"family": self.spec.family, "preset": self.spec.preset or "",
                      "max_epochs": self.spec.max_epochs, "seed": self.seed, **self.fixed,
                      **space.hyperparameters(trial.config)}
            self.runs[trial.trial_id] = tracking.start_trial(
                self.st, self.spec, self.parent, trial.trial_id, params, number,
                self.experiment, tags={tracking.TRIAL_DIR: _trial_dir(trial)})
        self.started += 1
        return self.runs[trial.trial_id]

    def _new_epochs(self, trial, epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The epochs the trial's run does not hold yet (a continued run holds some)."""
        logged = self.logged.get(trial.trial_id, 0)
        return [e for e in epochs if e and e["epoch"] > logged]

    # Ray tells the searcher (Optuna) that a trial is complete before it tells the callbacks, so
    # the MLflow run is closed earlier: on the result the scheduler stops a trial on, and on the
    # final checkpoint. A kill in between leaves a closed run and a RUNNING Optuna trial, which
    # `reconcile` completes from the run on resume.
    def on_trial_result(self, iteration, trials, trial, result, **info):
        rid = self.runs.get(trial.trial_id)
        if rid is None:
            return
        from sweeps.trial import EPOCH_KEYS

        if result.get("final"):  # its last epoch, if not reported on its own, goes with it
            self.final[trial.trial_id] = dict(result)
            if result.get("last_epoch"):
                self.display.epoch(trial.trial_id, result["last_epoch"])
            return
        epoch = {k: result[k] for k in EPOCH_KEYS if k in result}
        if self._new_epochs(trial, [epoch]):
            tracking.log_history(tracking.client(self.st), rid, [epoch])
        self.display.epoch(trial.trial_id, epoch)
        if result.get("done"):  # the scheduler stops it here, before its last epoch
            self._close_pruned(trial, result)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if trial.trial_id in self.final and trial.trial_id not in self.closed:
            self._close_finished(trial, checkpoint.path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id not in self.runs:
            return
        if trial.trial_id not in self.closed:
            if trial.trial_id in self.final:
                self._close_finished(trial, trial.checkpoint.path if trial.checkpoint else "")
            else:  # stopped with no result marked done, e.g. by the time budget
                self._close_pruned(trial, trial.last_result or {})
        self.progress.ended(trial.trial_id, self.closed_value.get(trial.trial_id),
                            mode=self.spec.mode)
        self.display.note(self.closed[trial.trial_id])

    def _close_pruned(self, trial, last: dict[str, Any]) -> None:
        tracking.end_trial(self.st, self.runs[trial.trial_id], "KILLED",
                           {"objective": last.get(self.spec.metric, float("nan"))},
                           {"fmnist.pruned": "true", "fmnist.gpu_ids": last.get("gpu_ids", ""),
                            "fmnist.node_id": last.get("node_id", "")})
        self.closed[trial.trial_id] = (f"pruned {trial.trial_id} after {last.get('epoch', 0)}"
                                       f" epochs")

    def _close_finished(self, trial, ckpt: str) -> None:
        final = self.final[trial.trial_id]
        value = float(final[self.spec.metric])
        self.closed_value[trial.trial_id] = value
        metrics = {"objective": value, "val/acc_final": final["val/acc"],
                   "val/loss_final": final["val/loss"], "epochs": final["epochs"],
                   "best_epoch": final["best_epoch"], "train_s": final["train_s"],
                   "params": final["params"]}
        tags = {"fmnist.checkpoint": ckpt, "fmnist.stop_reason": final["stop_reason"],
                "fmnist.gpu_ids": final.get("gpu_ids", ""), "fmnist.node_id": final["node_id"],
                "fmnist.pid": final["pid"], "fmnist.trial_start": final["trial_start"],
                "fmnist.train_start": final["train_start"], "fmnist.trial_end": final["trial_end"]}
        if final.get("resumed"):  # restarted after a failure, from the state after this epoch
            tags["fmnist.resumed_from_epoch"] = final["resumed"]
        tracking.end_trial(self.st, self.runs[trial.trial_id], "FINISHED", metrics, tags,
                           self._new_epochs(trial, [final.get("last_epoch") or {}]))
        self.closed[trial.trial_id] = f"finished {trial.trial_id}: {self.spec.metric} {value:.4f}"

    def on_trial_error(self, iteration, trials, trial, **info):
        # a trial Ray fails before it starts (it could not reuse an actor for it) has no run yet:
        # it gets one here, so the record holds every trial the study holds
        rid = self.runs.get(trial.trial_id) or self._start_run(trial)
        self.progress.ended(trial.trial_id, failed=True)
        err = ""
        if getattr(trial, "error_file", None) and os.path.exists(trial.error_file):
            with open(trial.error_file) as f:
                err = f.read()
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        tracking.end_trial(self.st, rid, "FAILED", {},
                           {"fmnist.error": lines[-1] if lines else "unknown error",
                            "fmnist.traceback": err[-4000:]})
        self.display.note(f"failed {trial.trial_id}: {lines[-1] if lines else ''}")
