"""Run a sweep: Ray Tune places the trials, Optuna samples them, the driver records them.

Resume is the same command. Sweep name = MLflow experiment = Optuna study. Resuming does not use
``Tuner.restore``: with a persistent Optuna storage it crashes after a SIGKILL (the pickled
searcher and the database disagree about the trial that was running). Instead the study in the
database is the state, reconciled with MLflow's (``sweeps.resume``); a fresh Tuner runs only the
rest, its ``OptunaSearch`` loading the study with all its history and
a sampler seeded for the study's length (``space.sampler_seed``). Completed trials are never
rerun or logged twice.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from fmnist import compat
from fmnist.errors import UserError
from sweeps import final, policy, progress, record, recorder, resume, signals, space, tracking, warm
from sweeps.budget import Budget
from sweeps.spec import SweepSpec


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
    started: float | None = None  # time.time() at the command's start: the budget's


def _refit_going_on(st: tracking.Store, spec: SweepSpec) -> bool:
    """Whether an earlier command started the best trial's refit and was killed in it: the
    search had ended, and does not start again (nor spend the refit's images)."""
    rec = record.MlflowRecord(st, spec)
    best = rec.best()
    return (best is not None and rec.refit_going_on(best)
            and final.refit_state(st, spec, best) is not None)


def refit_share_back(spec: SweepSpec, st: tracking.Store, split, budget: Budget,
                     now: float, used: int = 0) -> Budget | None:
    """The budget that gives the refit's share to the search, where the search has ended and
    the best trial's refit cannot end in the budget at that trial's pace (a machine too slow
    for it: the share would go unspent), or where no trial has finished; None where the refit
    can, where there is no time budget or no refit, or where an earlier command trained it."""
    if not (budget.timed or budget.counted) or not budget.refit:
        return None
    rec = record.MlflowRecord(st, spec)
    best = rec.best()
    return final.share_back(budget, best, split, now, used=used,
                            refit_done=best is not None and rec.refit_done(best))


def _add_wall(st: tracking.Store, parent: str, budget: Budget) -> None:
    """This command's wall time added to the sweep's (``sweep/wall_s``, over its commands)."""
    tracking.add_metrics(st, parent, {"sweep/wall_s": time.time() - budget.started})


@dataclass
class Outcome:
    name: str
    done: int
    failed: int
    ran_now: int
    best: dict[str, Any] | None
    parent_run_id: str
    store: tracking.Store


def _storage(url: str, tries: int = 4) -> optuna.storages.BaseStorage:
    """Optuna's storage at ``url``, its tables created where new. Two processes creating the
    same new storage at once (a second sweep with another store, ``optuna-dashboard``, a script
    reading the study) collide in Optuna's schema set-up: "table studies already exists", or
    a UNIQUE constraint on ``alembic_version``. The loser tries again and finds the tables
    made; an error that stays is the URL's."""
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

    for attempt in range(tries):
        try:
            storage = tracking.retrying_storage(url, engine_kwargs=_engine_kwargs(url))
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
    raise tracking.StoreError(f"{url}: cannot open the Optuna storage "
                              f"({type(error).__name__}: {str(error).splitlines()[0]}).",
                              option="storage")


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}


def _scheduler(spec: SweepSpec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    from sweeps.trial import RUNG_KEY  # the epoch of a trial on the spec's whole schedule

    if spec.scheduler == "asha" and spec.multi_objective:
        from sweeps import rungs

        return rungs.tune_scheduler(rungs.Rungs(spec.objective_modes, spec.grace_period,
                                                spec.reduction_factor, spec.max_epochs + 1),
                                    RUNG_KEY)
    if spec.scheduler == "asha":
        return ASHAScheduler(time_attr=RUNG_KEY, max_t=spec.max_epochs + 1,
                             grace_period=spec.grace_period,
                             reduction_factor=spec.reduction_factor)
    if spec.scheduler == "median":
        return MedianStoppingRule(time_attr=RUNG_KEY,
                                  grace_period=spec.grace_period)
    return FIFOScheduler()


def _init_ray(address: str | None) -> None:
    """``address`` or ``$RAY_ADDRESS``: an existing cluster. Neither: a new local Ray, even when
    a cluster started with ``ray start`` runs on this machine (plain ``ray.init()`` would attach
    to it)."""
    import ray

    # Tune's own console output and loggers: off, also where Ray was started by the caller
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # a trial a budget cuts off before its first epoch ends returns without a result: closed
    # as pruned, not a Tune error (the metric itself is checked in the spec)
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    if ray.is_initialized():
        return
    address = _address(address)
    try:
        ray.init(address=address, include_dashboard=False, configure_logging=True,
                 logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClusterError(f"{address}: cannot reach a Ray cluster "
                           f"({str(e).splitlines()[0]}).", option="address") from None


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
        raise ClusterError(f"{address}: must be auto, HOST:PORT or ray://HOST:PORT.",
                           option="address")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ClusterError(f"{address}: no Ray cluster answers at {host}:{port} "
                           f"({e.strerror or e}).", option="address") from None


def _plain_trial_actors() -> None:
    """Trial actors start on the worker processes Ray has already started: Tune gives every
    trial actor a runtime environment of its own (``PL_DISABLE_FORK``, for PyTorch Lightning,
    which trials do not use), and Ray starts a new process for an actor with one. Variables Tune
    copies from the driver's environment (e.g. cloud credentials) still go with the actors."""
    compat.drop_tune_actor_env("PL_DISABLE_FORK")


def run(spec: SweepSpec, opts: RunOptions, say: Callable[[str], None] = print) -> Outcome:
    try:
        return _run(spec, opts, say)
    finally:
        tracking.reconnect_off()


def _run(spec: SweepSpec, opts: RunOptions, say: Callable[[str], None]) -> Outcome:
    from fmnist import data

    started = time.time() if opts.started is None else opts.started
    if opts.fresh:
        spec = spec.replace(name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = tracking.store(opts.store, opts.tracking_uri, opts.storage)
    split = data.load_split(opts.data_dir, val_fraction=spec.val_fraction, seed=spec.data_seed,
                            subset=spec.subset)  # bad data fails here, before anything is written
    _address(opts.address)  # so does an address nothing answers on
    tracking.check_separate_databases(st)
    tracking.check_database_url(st.tracking_uri, "tracking_uri", "the MLflow store")
    tracking.check_database_url(st.optuna_url, "storage", "the Optuna storage")
    warm.check(spec, st)  # an unknown warm_start sweep: said before any store is opened
    storage = _open_stores(st, opts)
    study = space.open_study(spec, storage)  # other objectives than the study's: said here
    tracking.reconnect_on_outage(say)  # a server that restarts from here on: reconnect
    resume.reconcile(spec, storage, st, say)
    starts = warm.plan(spec, storage, st, say)  # an unknown warm_start sweep fails here
    parent = tracking.parent_run(st, spec, opts.argv)
    warm.enqueue(study, starts, say,  # a new study's first trials
                 budgeted=bool(spec.budget_s or spec.budget_epochs))
    n_train = len(split.y_train)
    budget = Budget.of(spec, started, n_train, images_used=record.MlflowRecord(
        st, spec).images_used(n_train) if spec.budget_epochs else 0)
    if budget.counted:
        tracking.log_run(st, parent, {"sweep/budget_images": budget.images}, {})
        say(f"sweep {spec.name}: compute budget {budget.images:,} training images "
            f"({spec.budget_epochs:g} epochs of {n_train:,}), {budget.images_used:,} used")
    done, failed = resume.study_counts(study)
    remaining = spec.trials - done
    ran_now, images = 0, 0
    search_s = budget.search_left(time.time())
    if remaining <= 0:
        say(f"sweep {spec.name}: all {spec.trials} trials are done; nothing to run")
    elif spec.refit and _refit_going_on(st, spec):
        say(f"sweep {spec.name}: the search had ended when the refit started; the refit "
            f"goes on")
    elif search_s is not None and search_s <= 0:
        say(f"sweep {spec.name}: the budget leaves no time for the search")
    elif policy.searching(budget, spec.max_epochs, n_train).trial_epochs(1, n_train) == 0:
        say(f"sweep {spec.name}: the compute budget leaves no epoch for the search")
    else:
        if done:
            say(f"sweep {spec.name}: resuming, {done} of {spec.trials} trials done")
        try:
            sweep = _Sweep(spec, st, storage, study, split, parent, opts, say)
            ran_now, images = _tune(sweep, remaining, done, search_s, budget)
            more = refit_share_back(spec, st, split, budget, time.time(), images)
            done = resume.study_counts(study)[0]
            if more is not None and done < spec.trials:
                more = dataclasses.replace(more, images_used=budget.images_used + images)
                left = more.search_left(time.time())
                if (left is None or left > 0) and more.trial_epochs(1, n_train) > 0:
                    say(f"sweep {spec.name}: the best trial's refit would not end within the "
                        f"budget; its share goes to the search"
                        + (f" ({left:.0f} s more)" if left is not None else ""))
                    r, i = _tune(sweep, spec.trials - done, done, left, more)
                    ran_now, images = ran_now + r, images + i
        except signals.Interrupted as e:  # said with what a resume needs to know
            tracking.reconnect_off()  # a stop is prompt: the wall time is written at one try
            try:  # its wall time counts; a store that went away does not hide the stop
                _add_wall(st, parent, budget)
            except Exception:  # noqa: BLE001 - the stop is said whatever the store does
                pass
            raise signals.Interrupted(e.signum, done=resume.study_counts(study)[0],
                                      trials=spec.trials, name=spec.name) from None
        done, failed = resume.study_counts(study)
    best = final.finish(st, spec, parent, split, say, study=study, until=budget.after_end(),
                        images_left=budget.images_left(images))
    # compute spent: the images from the record (every command's, a killed one's too), the
    # wall time summed over the commands that got here or were stopped by a signal
    _add_wall(st, parent, budget)
    tracking.log_run(st, parent, {
        "sweep/train_images": record.MlflowRecord(st, spec).images_used(n_train)}, {})
    return Outcome(spec.name, done, failed, ran_now, best, parent, st)


def _open_stores(st: tracking.Store, opts: RunOptions) -> optuna.storages.BaseStorage:
    """Open (creating where new) the MLflow store and the Optuna storage; returns the latter.
    For a new default store Ray starts meanwhile (MLflow's migrations and Ray's start overlap).

    Raises:
        StoreError: a store that cannot be opened (said before a ClusterError).
        ClusterError: no Ray cluster at ``opts.address``.
    """

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


@dataclass(frozen=True)
class _Sweep:
    """What a search's Tuner works with, opened once by ``run``."""

    spec: SweepSpec
    st: tracking.Store
    storage: Any  # Optuna's
    study: optuna.Study
    split: Any
    parent: str  # the parent run's id
    opts: RunOptions
    say: Callable[[str], None]


def _searcher(sweep: _Sweep, budget: Budget) -> recorder.StudySearch:
    """The Tune searcher over the sweep's study: the spec's space and sampler, the budget's
    decisions; told the metric, or with several objectives the metric then each cost."""
    spec, several = sweep.spec, sweep.spec.multi_objective
    return recorder.StudySearch(space=space.DefineByRun(spec),
                                metric=list(spec.objective_modes) if several else spec.metric,
                                mode=list(spec.objective_modes.values()) if several
                                else spec.mode,
                                sampler=space.sampler(spec, len(sweep.study.trials)),
                                study_name=spec.name, storage=sweep.storage,
                                budget=budget, spec=spec, n_train=len(sweep.split.y_train),
                                study=sweep.study, seed=record.trial_seed(spec),
                                refit_per_epoch=(final.refit_train_images(sweep.split)
                                                 if spec.refit else 0))


def _status(sweep: _Sweep, budget: Budget, done_before: int,
            search_s: float | None) -> progress.Progress:
    """The progress of this command's search: trials done before it, the time and compute it
    has, and the best value so far (the metric, in the spec's mode)."""
    spec, n_train = sweep.spec, len(sweep.split.y_train)
    status = progress.Progress(spec.trials, spec.max_epochs, spec.metric, done_before,
                               search_s, n_train=n_train,
                               compute_epochs=budget.search_epochs_left(n_train))
    complete = sweep.study.get_trials(deepcopy=False,
                                      states=[optuna.trial.TrialState.COMPLETE])
    if complete:
        status.best = max((t.values[0] for t in complete),
                          key=lambda v: v if spec.mode == "max" else -v)
    return status


def _tune(sweep: _Sweep, remaining: int, done_before: int, search_s: float | None,
          budget: Budget) -> tuple[int, int]:
    """Run the search's remaining trials: for at most ``search_s`` seconds (None: no limit),
    within the ``budget`` (its search window, its compute); returns (trials started,
    training images processed)."""
    spec, st, split = sweep.spec, sweep.st, sweep.split
    parent, opts, say = sweep.parent, sweep.opts, sweep.say
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
    searcher = _searcher(sweep, budget)
    search_alg = (ConcurrencyLimiter(searcher, spec.max_concurrent) if spec.max_concurrent
                  else searcher)
    seed = record.trial_seed(spec)
    window = budget.search_window()
    # a trial that fills the budget ends by its own window (``recorder.StudySearch._fills``)
    backstop = budget.fill_window() if searcher.may_fill else window
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, split=split, spec=spec, cpus=spec.cpu, seed=seed,
                             window=window),
        {"cpu": spec.cpu, "gpu": gpu})
    status = _status(sweep, budget, done_before, search_s)
    display = progress.Display(status, say)
    searcher.say = display.note  # the policy's decisions, among the trials' lines

    def on_budget(b: Budget) -> None:  # the refit's share moved: the search's compute with it
        status.compute_epochs = b.search_epochs_left(len(split.y_train))

    def on_fill(w) -> None:  # a trial may fill the budget: the time left shown is its
        if status.budget_s is not None and window is not None:
            status.budget_s += max(0.0, w.soft - window.soft)

    searcher.on_budget = on_budget
    searcher.on_fill = on_fill
    recording = recorder.TrialRecorder(st, spec, parent, display, seed,
                                    n_train=len(split.y_train))
    st.ray_dir.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=_scheduler(spec), num_samples=remaining,
            metric=spec.metric, mode=spec.mode, reuse_actors=True,
            # a budget ends trials itself (at an epoch's end); Tune's limit is the backstop
            time_budget_s=(spec.time_budget_s if backstop is None
                           else backstop.hard - time.time() + 5),
            trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(
            name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(st.ray_dir),
            callbacks=[recording], verbose=0,
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
    return recording.started, recording.train_images
