"""Run a sweep: Ray Tune places the trials, Optuna samples them, the driver records them.

Resume is the same command. Sweep name = MLflow experiment = Optuna study. Resuming does not use
``Tuner.restore``: with a persistent Optuna storage it crashes after a SIGKILL (the pickled
searcher and the database disagree about the trial that was running). Instead the study in the
database is the state, reconciled with MLflow's (see ``reconcile``): a trial a killed run left
RUNNING is marked FAIL (user attribute ``fmnist_interrupted``) and its half-written MLflow run
deleted, unless its MLflow run was already closed, in which case it is completed from that run;
the trials already done are counted; a fresh Tuner runs only the rest, its ``OptunaSearch``
loading the study with all its history. Completed trials are never rerun or logged twice.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from ray.tune import Callback

from sweeps import tracking
from sweeps.spec import SweepSpec

INTERRUPTED = "fmnist_interrupted"


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


def reconcile(spec: SweepSpec, storage: optuna.storages.BaseStorage, st: tracking.Store,
              say: Callable[[str], None]) -> None:
    """Make the records agree after a killed run. Each trial's MLflow run carries its Optuna
    trial number, and the driver closes the MLflow run before Optuna is told, so a kill can leave:
    an Optuna trial RUNNING whose MLflow run was closed (its result is kept: Optuna is told the
    run's objective); an Optuna trial RUNNING with no closed run (-> FAIL, marked interrupted, and
    sampled again); an MLflow run RUNNING whose Optuna trial is finished (closed to match); an
    MLflow run RUNNING of an interrupted trial (deleted: it is half-written)."""
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        study = None
    runs = tracking.trial_runs(st, spec.name)
    by_number = {int(r.data.tags[tracking.OPTUNA_TRIAL]): r for r in runs
                 if r.data.tags.get(tracking.OPTUNA_TRIAL, "").isdigit()}
    trials = study.get_trials(deepcopy=False) if study is not None else []
    for t in trials:
        if t.state not in (TrialState.RUNNING, TrialState.WAITING):
            continue
        run = by_number.get(t.number)
        value = run.data.metrics.get("objective") if run is not None else None
        if run is not None and run.info.status in ("FINISHED", "KILLED") and value is not None:
            storage.set_trial_state_values(t._trial_id, TrialState.COMPLETE, [value])
            say(f"resume: trial {t.number} had finished ({spec.metric} {value:.4f}); kept")
        else:
            storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            say(f"resume: trial {t.number} was interrupted; it will be sampled again")
    closed = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED",
              TrialState.FAIL: "FAILED"}
    c = tracking.client(st)
    now = {t.number: t for t in study.get_trials()} if study is not None else {}
    for run in runs:
        if run.info.status != "RUNNING":
            continue
        tag = run.data.tags.get(tracking.OPTUNA_TRIAL, "")
        t = now.get(int(tag)) if tag.isdigit() else None
        if t is not None and t.state in closed and not t.user_attrs.get(INTERRUPTED):
            c.set_tag(run.info.run_id, "fmnist.recovered", "closed on resume")
            c.set_terminated(run.info.run_id, closed[t.state])
        else:
            c.delete_run(run.info.run_id)


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
        return ASHAScheduler(time_attr="training_iteration", max_t=spec.max_epochs + 1,
                             grace_period=spec.grace_period,
                             reduction_factor=spec.reduction_factor)
    if spec.scheduler == "median":
        return MedianStoppingRule(time_attr="training_iteration",
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
        raise tracking.StoreError(f"--address {address}: cannot reach a Ray cluster "
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
        raise tracking.StoreError(f"--address {address}: must be auto, HOST:PORT or "
                                  f"ray://HOST:PORT.")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise tracking.StoreError(f"--address {address}: no Ray cluster answers at "
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
        ran_now = _tune(spec, st, storage, split, parent, remaining, done, opts, say)
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
        except tracking.StoreError:
            opening.result()  # a store error is said first, as without the overlap
            raise
        return opening.result()


def _tune(spec: SweepSpec, st: tracking.Store, storage, split, parent: str, remaining: int,
          done_before: int, opts: RunOptions, say: Callable[[str], None]) -> int:
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from sweeps import space
    from sweeps.trial import run_trial

    _init_ray(opts.address)
    _plain_trial_actors()
    gpu = spec.gpu
    if gpu and not ray.cluster_resources().get("GPU"):
        warnings.warn(f"{spec.path}: resources.gpu: {gpu} requested but Ray sees no GPU; "
                      f"the trials run on CPU.", RuntimeWarning, stacklevel=2)
        say(f"warning: resources.gpu {gpu} requested, but Ray sees no GPU: running on CPU")
        gpu = 0.0
    searcher = OptunaSearch(space=space.DefineByRun(spec), metric=spec.metric, mode=spec.mode,
                            sampler=space.sampler(spec), study_name=spec.name, storage=storage)
    search_alg = (ConcurrencyLimiter(searcher, spec.max_concurrent) if spec.max_concurrent
                  else searcher)
    seed = int(spec.fixed.get("seed", spec.data_seed))
    fixed = {k: v for k, v in spec.fixed.items() if k != "seed"}
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, split=split, family=spec.family, preset=spec.preset,
                             fixed=fixed, max_epochs=spec.max_epochs, cpus=spec.cpu, seed=seed),
        {"cpu": spec.cpu, "gpu": gpu})
    recorder = TrialRecorder(st, spec, parent, done_before, fixed, seed, say)
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
    tuner.fit()
    return recorder.started


class TrialRecorder(Callback):
    """Driver-side: one nested MLflow run per trial, per-epoch metrics, final status, and a
    compact progress line. Trials never touch the stores."""

    def __init__(self, st: tracking.Store, spec: SweepSpec, parent: str, done_before: int,
                 fixed: dict[str, Any], seed: int, say: Callable[[str], None]):
        self.st, self.spec, self.parent, self.say = st, spec, parent, say
        self.fixed, self.seed = fixed, seed
        self.done, self.failed, self.started, self.completed_now = done_before, 0, 0, 0
        self.runs: dict[str, str] = {}
        self.final: dict[str, dict[str, Any]] = {}
        self.closed: dict[str, str] = {}  # trial id -> the progress note of its closed run
        self.best: float | None = None
        self.experiment = tracking.experiment_id(st, spec.name)
        self.t0 = time.monotonic()

    def _progress(self, trials, note: str) -> None:
        running = sum(t.status == "RUNNING" for t in trials)
        best = "-" if self.best is None else f"{self.best:.4f}"
        eta = ""
        elapsed = time.monotonic() - self.t0
        left = self.spec.trials - self.done
        if self.spec.time_budget_s:
            eta = f", budget left {max(0.0, self.spec.time_budget_s - elapsed):.0f}s"
        elif self.completed_now and left > 0:
            eta = f", eta ~{elapsed * left / self.completed_now:.0f}s"
        self.say(f"[{self.done}/{self.spec.trials} done, {running} running, {self.failed} failed;"
                 f" best {self.spec.metric} {best}{eta}] {note}")

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id in self.runs:
            return
        self._start_run(trial)
        self._progress(trials, f"started {trial.trial_id}")

    def _start_run(self, trial) -> str:
        from sweeps.space import TRIAL_KEY

        config = {k: v for k, v in trial.config.items() if k != TRIAL_KEY}
        params = {"family": self.spec.family, "preset": self.spec.preset or "",
                  "max_epochs": self.spec.max_epochs, "seed": self.seed, **self.fixed, **config}
        self.runs[trial.trial_id] = tracking.start_trial(self.st, self.spec, self.parent,
                                                         trial.trial_id, params,
                                                         trial.config.get(TRIAL_KEY),
                                                         self.experiment)
        self.started += 1
        return self.runs[trial.trial_id]

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
            return
        tracking.log_history(tracking.client(self.st), rid,
                             [{k: result[k] for k in EPOCH_KEYS if k in result}])
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
        self.done += 1
        self.completed_now += 1
        self._progress(trials, self.closed[trial.trial_id])

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
        if self.best is None or (value > self.best if self.spec.mode == "max"
                                 else value < self.best):
            self.best = value
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
                           [final["last_epoch"]] if final.get("last_epoch") else [])
        self.closed[trial.trial_id] = f"finished {trial.trial_id}: {self.spec.metric} {value:.4f}"

    def on_trial_error(self, iteration, trials, trial, **info):
        # a trial Ray fails before it starts (it could not reuse an actor for it) has no run yet:
        # it gets one here, so the record holds every trial the study holds
        rid = self.runs.get(trial.trial_id) or self._start_run(trial)
        self.done += 1
        self.completed_now += 1
        self.failed += 1
        err = ""
        if getattr(trial, "error_file", None) and os.path.exists(trial.error_file):
            with open(trial.error_file) as f:
                err = f.read()
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        tracking.end_trial(self.st, rid, "FAILED", {},
                           {"fmnist.error": lines[-1] if lines else "unknown error",
                            "fmnist.traceback": err[-4000:]})
        self._progress(trials, f"failed {trial.trial_id}: {lines[-1] if lines else ''}")
