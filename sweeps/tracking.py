"""MLflow: where records go and how a run is written.

One store root (default ``./mlruns``): MLflow at ``sqlite:///<abs>/mlruns/mlflow.db`` with
artifacts in ``<abs>/mlruns/artifacts/``, Optuna at ``sqlite:///<abs>/mlruns/optuna.db``, Ray
Tune state in ``<abs>/mlruns/ray/``. Paths are absolute because Ray moves trials' working
directory. Only the driver writes here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmnist.errors import UserError
from sweeps import redact
from sweeps import tags as tag


@dataclass(frozen=True)
class Store:
    root: Path
    tracking_uri: str
    artifact_root: Path
    optuna_url: str
    ray_dir: Path

    @property
    def exists(self) -> bool:
        """False only for a default SQLite store that was never created (nothing to read)."""
        return not self.tracking_uri.startswith("sqlite:///") or (self.root / "mlflow.db").exists()


def store(root: str | os.PathLike[str] | None = None, tracking_uri: str | None = None,
          storage: str | None = None) -> Store:
    """The store under ``root`` (default ``$FMNIST_STORE`` or ``./mlruns``); URLs may override
    the MLflow tracking URI and the Optuna storage."""
    base = Path(root or os.environ.get("FMNIST_STORE") or "mlruns").expanduser().resolve()
    return Store(
        root=base,
        tracking_uri=tracking_uri or f"sqlite:///{base / 'mlflow.db'}",
        artifact_root=base / "artifacts",
        optuna_url=storage or f"sqlite:///{base / 'optuna.db'}",
        ray_dir=base / "ray",
    )


def client(st: Store):
    from mlflow.tracking import MlflowClient

    if st.tracking_uri.startswith("sqlite:///"):
        make_root(st)
    c = MlflowClient(tracking_uri=st.tracking_uri)
    return c if st.tracking_uri.startswith("sqlite:") else _RetryingClient(c, st.tracking_uri)


def experiment_id(st: Store, name: str) -> str:
    c = client(st)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=(st.artifact_root / name).as_uri())


def _param_value(v: Any) -> str:
    return str(v)[:6000]


def _epoch_metrics(history: Iterable[Mapping[str, float]], now: int) -> list:
    from mlflow.entities import Metric

    return [Metric(k, float(v), now, int(h["epoch"]))
            for h in history for k, v in h.items() if k != "epoch"]


def log_history(c, run_id: str, history: Iterable[Mapping[str, float]]) -> None:
    """Per-epoch metrics, step = epoch."""
    metrics = _epoch_metrics(history, int(time.time() * 1000))
    for i in range(0, len(metrics), 1000):
        c.log_batch(run_id, metrics=metrics[i:i + 1000])


def log_single_run(st: Store, experiment: str, params: Mapping[str, Any],
                   history: list[dict[str, float]], final: Mapping[str, float],
                   model: Any = None, tags: Mapping[str, str] | None = None) -> str:
    """One finished training run: params, per-epoch history, final metrics, the model."""
    from mlflow.entities import Metric, Param, RunTag

    c = client(st)
    run = c.create_run(experiment_id(st, experiment), tags=dict(tags or {}))
    rid = run.info.run_id
    c.log_batch(rid, params=[Param(k, _param_value(v)) for k, v in sorted(params.items())])
    log_history(c, rid, history)
    now = int(time.time() * 1000)
    c.log_batch(rid, metrics=[Metric(k, float(v), now, 0) for k, v in final.items()],
                tags=[RunTag(tag.KIND, "train")])
    if model is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            model.save(path)
            c.log_artifact(rid, str(path), "model")
    c.set_terminated(rid, "FINISHED")
    return rid


# ---------------------------------------------------------------- sweeps



class StoreError(UserError, ValueError):
    """A store URL that cannot be used; reported in one line, exit code 2."""


def make_root(st: Store) -> None:
    """The store folder, created where missing; one that cannot be is a StoreError."""
    try:
        st.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"{st.root}: cannot create the store folder "
                         f"({e.strerror or e}).", option="store") from None
    if not os.access(st.root, os.W_OK | os.X_OK):
        raise StoreError(f"{st.root}: the store folder is not writable.", option="store")


@contextlib.contextmanager
def init_lock(st: Store):
    """Serialise store creation between processes on this machine: two sweeps starting at once
    on a new store would both create MLflow's and Optuna's tables ("table ... already exists")."""
    import fcntl

    make_root(st)
    with open(st.root / ".init.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_database_url(url: str, option: str, what: str) -> None:
    """A database server URL is tried once, 5 s at most, creating nothing (MLflow alone would
    retry for ~100 s). SQLite paths are left to the store itself."""
    scheme = url.split(":", 1)[0]
    if not scheme.startswith(("postgresql", "mysql", "mssql")):
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as e:  # noqa: BLE001 - any failure here is the URL's
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StoreError(f"{redact.mask(url)}: cannot open {what} ({type(e).__name__}: "
                         f"{first[:300]}).", option=option) from None


def study_names(url: str) -> list[str] | None:
    """The Optuna studies in the storage at ``url``, read without creating anything: [] where
    its SQLite file or its tables do not exist yet; None where it cannot be read here (a
    database the storage itself will then report on)."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            return []
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                if not sqlalchemy.inspect(conn).has_table("studies"):
                    return []
                return [r[0] for r in conn.execute(sqlalchemy.text(
                    "SELECT study_name FROM studies"))]
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - opening the storage says what is wrong with it
        return None


def same_database(a: str, b: str) -> bool:
    """Whether two SQLAlchemy URLs name one database (same server and database name, or the
    same SQLite file); the user and password do not matter."""
    from sqlalchemy.engine import make_url

    try:
        ua, ub = make_url(a), make_url(b)
    except Exception:  # noqa: BLE001 - an http tracking URI, or not a URL at all
        return False
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        return bool(ua.database) and ua.database not in ("", ":memory:") and (
            Path(ua.database).resolve() == Path(ub.database or "").resolve())
    return ((ua.host or "localhost", ua.port, ua.database)
            == (ub.host or "localhost", ub.port, ub.database))


def check_separate_databases(st: Store) -> None:
    """MLflow and Optuna each keep their schema version in a table ``alembic_version`` of the
    database: in one database the second to open it finds the first's version and stops."""
    if same_database(st.tracking_uri, st.optuna_url):
        raise StoreError(f"{redact.mask(st.optuna_url)}: is the database of the MLflow "
                         f"store; MLflow and Optuna each need a database of their own "
                         f"(both keep a table alembic_version), e.g. .../mlflow and .../optuna.",
                         option="storage")


def check_tracking_uri(st: Store) -> None:
    """Fail fast, with one message, on a tracking URI that cannot be used."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # ours say each try
    with _request_timeout(5):
        _check_tracking_uri(st)


@contextlib.contextmanager
def _request_timeout(seconds: float):
    """MLflow's REST calls wait ``seconds`` for an answer within (a URL that cannot be used
    fails fast), MLflow's own default (120 s) after: a server just started on a loaded machine
    took more than 5 s to create an experiment, and a call not answered in time is tried again
    (``_CUT``). Where $MLFLOW_HTTP_REQUEST_TIMEOUT is set, that, throughout."""
    if "MLFLOW_HTTP_REQUEST_TIMEOUT" in os.environ:
        yield
        return
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = f"{seconds:g}"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_HTTP_REQUEST_TIMEOUT", None)


def _check_tracking_uri(st: Store) -> None:
    check_database_url(st.tracking_uri, "tracking_uri", "the MLflow store")
    import logging

    import mlflow.tracking  # noqa: F401 - MLflow sets its loggers up on import: before the level

    # a new store's "Creating initial MLflow database tables..." and "Updating database tables"
    # would come out among the sweep's own lines
    tables_log = logging.getLogger("mlflow.store.db.utils")
    level = tables_log.level
    tables_log.setLevel(logging.WARNING)
    try:
        client(st).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure here is the URI's
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StoreError(f"{redact.mask(st.tracking_uri)}: cannot open the MLflow store "
                         f"({type(e).__name__}: {first[:300]}).",
                         option="tracking_uri") from None
    finally:
        tables_log.setLevel(level)
    write_ahead_log(st.tracking_uri)


def write_ahead_log(url: str) -> None:
    """Put the SQLite database at ``url`` in write-ahead-log mode (the file keeps it): commits
    append to the log (cheaper; still synced) and readers (``fmnist-sweep ui``,
    ``optuna-dashboard``) no longer block writes. All processes using the file must be on one
    machine. Any other URL, or a file that is read-only or locked, is left as it is."""
    import sqlite3

    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL for this
        return
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return
    try:
        with contextlib.closing(sqlite3.connect(u.database, timeout=5)) as con:
            con.execute("pragma journal_mode=wal")
    except sqlite3.Error:
        pass


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("tensorflow", "keras", "ray", "optuna", "mlflow", "fmnist-sweep"):
        try:
            out[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _commit() -> str:
    import subprocess

    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def role_filter(role: str) -> str:
    """MLflow's filter for a sweep's runs of ``role`` (tags.PARENT, TRIAL, REFIT, ENSEMBLE)."""
    return f"tags.`{tag.ROLE}` = '{role}'"


def runs(st: Store, sweep: str, role: str, status: str | None = None):
    c = client(st)
    exp = c.get_experiment_by_name(sweep)
    if exp is None:
        return []
    flt = role_filter(role)
    if status:
        flt += f" and attributes.status = '{status}'"
    return c.search_runs([exp.experiment_id], filter_string=flt, max_results=5000)


def parent_run(st: Store, spec, argv) -> str:
    """The sweep's parent run: found again on resume, else created with the resolved spec, the
    command line, the commit and the package versions."""
    import json

    from mlflow.entities import Param, RunTag

    existing = runs(st, spec.name, tag.PARENT)
    c = client(st)
    if existing:
        rid = existing[0].info.run_id
        c.update_run(rid, status="RUNNING")
        return rid
    run = c.create_run(experiment_id(st, spec.name), run_name=spec.name, tags={
        tag.ROLE: tag.PARENT, tag.SWEEP: spec.name, tag.FAMILY: spec.family,
        tag.COMMAND: redact.mask(" ".join(["fmnist-sweep", *argv])),
        tag.COMMIT: _commit(),
    })
    rid = run.info.run_id
    resolved = spec.resolved()
    params = {k: json.dumps(v) if isinstance(v, (dict, list)) else v
              for k, v in resolved.items()}
    c.log_batch(rid, params=[Param(k, _param_value(v)) for k, v in sorted(params.items())],
                tags=[RunTag(k, v) for k, v in _versions().items()])
    c.log_dict(rid, resolved, "spec.json")
    return rid


def start_trial(st: Store, spec, parent: str, name: str, params: Mapping[str, Any],
                optuna_trial: int | None = None, experiment: str | None = None,
                tags: Mapping[str, str] | None = None) -> str:
    """A trial's nested run, with its parameters; ``experiment`` (the sweep's experiment id)
    saves a look-up per trial."""
    tags = dict(tags or {})
    if optuna_trial is not None:
        tags[tag.OPTUNA_TRIAL] = str(optuna_trial)
    return start_child(st, spec, parent, tag.TRIAL, name, params, tags, experiment)


def start_child(st: Store, spec, parent: str, role: str, name: str,
                params: Mapping[str, Any], tags: Mapping[str, str] | None = None,
                experiment: str | None = None) -> str:
    """A run nested under the sweep's ``parent`` with ``role`` (``tags.ROLE``) and ``params``;
    returns its id."""
    from mlflow.entities import Param

    c = client(st)
    tags = {"mlflow.parentRunId": parent, tag.ROLE: role, tag.SWEEP: spec.name,
            tag.FAMILY: params.get("family", spec.family), **(tags or {})}
    run = c.create_run(experiment or experiment_id(st, spec.name), run_name=name, tags=tags)
    c.log_batch(run.info.run_id,
                params=[Param(k, _param_value(v)) for k, v in sorted(params.items())])
    return run.info.run_id


def continue_trial(st: Store, run_id: str, optuna_trial: int, tags: Mapping[str, str]) -> int:
    """Reopen an interrupted trial's run for the Optuna trial that goes on with it; returns the
    last epoch it holds (epochs up to it are not logged again)."""
    from mlflow.entities import RunTag

    c = client(st)
    c.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in
                              {**tags, tag.OPTUNA_TRIAL: optuna_trial}.items()])
    c.update_run(run_id, status="RUNNING")
    return last_logged_epoch(st, run_id)


def last_logged_epoch(st: Store, run_id: str) -> int:
    """The last epoch (step) of a trial's run's per-epoch metrics; 0 where none."""
    steps = [m.step for m in client(st).get_metric_history(run_id, "epoch_s")]
    return max(steps, default=0)


def end_trial(st: Store, run_id: str, status: str, metrics: Mapping[str, float],
              tags: Mapping[str, str], history: Iterable[Mapping[str, float]] = ()) -> None:
    """Close a trial's run: its final metrics and tags, with the epochs not logged yet
    (``history``, step = epoch) in the same batch."""
    log_run(st, run_id, metrics, tags, history)
    client(st).set_terminated(run_id, status)


def log_run(st: Store, run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str],
            history: Iterable[Mapping[str, float]] = ()) -> None:
    """Metrics (step 0), tags and per-epoch metrics (``history``, step = epoch) in one batch."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    client(st).log_batch(
        run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()]
        + _epoch_metrics(history, now), tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])


def add_metrics(st: Store, run_id: str, metrics: Mapping[str, float]) -> None:
    """Add ``metrics`` to the run's values of them (0 where it has none), at step 0."""
    from mlflow.entities import Metric

    c = client(st)
    have = c.get_run(run_id).data.metrics
    now = int(time.time() * 1000)
    c.log_batch(run_id, metrics=[Metric(k, float(have.get(k, 0.0)) + float(v), now, 0)
                                 for k, v in metrics.items()])


def trial_runs(st: Store, sweep: str):
    return runs(st, sweep, tag.TRIAL)


def ui_url(st: Store, base: str, sweep: str | None = None) -> str | None:
    """The MLflow UI's page at ``base`` of a sweep's runs (None: no such sweep), or of the
    experiments, in its model-training view: MLflow 3 opens in its GenAI view unless the URL
    asks (the view is otherwise a browser setting)."""
    view = "workflowType=machine_learning"
    if sweep is None:
        return f"{base}/#/experiments?{view}"
    exp = client(st).get_experiment_by_name(sweep)
    return None if exp is None else f"{base}/#/experiments/{exp.experiment_id}/runs?{view}"


def list_sweeps(st: Store) -> list[dict[str, Any]]:
    """One row per sweep in the store, from MLflow's own records."""
    c = client(st)
    rows = []
    for parent in c.search_runs(
            [e.experiment_id for e in c.search_experiments()],
            filter_string=role_filter(tag.PARENT), max_results=1000):
        name = parent.data.tags.get(tag.SWEEP, parent.info.run_name)
        trials = trial_runs(st, name)
        finished = [r for r in trials if r.info.status == "FINISHED"
                    and not r.data.tags.get(tag.INFEASIBLE)]  # measured, never trained
        accs = [r.data.metrics["val/acc_best"] for r in finished
                if "val/acc_best" in r.data.metrics]
        rows.append({
            "name": name, "family": parent.data.tags.get(tag.FAMILY, ""),
            "done": len(finished),
            "running": sum(r.info.status == "RUNNING" for r in trials),
            "failed": sum(r.info.status == "FAILED" for r in trials),
            "pruned": sum(r.info.status == "KILLED" for r in trials),
            "best_val_acc": max(accs) if accs else None,
            "test_acc": parent.data.metrics.get("test/acc"),
        })
    return sorted(rows, key=lambda r: r["name"])


# a store's server that goes away mid-sweep (a database restarted for maintenance, a fail-over,
# a tracking server redeployed): each new connection that fails is tried again, waiting 0.5 s,
# then twice as long each time (at most 15 s), for RETRY_S in all ($FMNIST_STORE_RETRY_S); then
# its error stands
RETRY_S = 60.0


def reconnect_delays(total_s: float | None = None) -> tuple[float, ...]:
    """The waits between tries: 0.5 s doubling, at most 15 s each, ``total_s`` in all (default
    ``$FMNIST_STORE_RETRY_S``, else ``RETRY_S``)."""
    if total_s is None:
        raw = os.environ.get("FMNIST_STORE_RETRY_S") or RETRY_S
        try:
            total_s = float(raw)
        except ValueError:
            raise StoreError(f"FMNIST_STORE_RETRY_S={raw}: must be a number of seconds") from None
    out: list[float] = []
    wait = 0.5
    while total_s - sum(out) >= 0.001:
        out.append(round(min(wait, 15.0, total_s - sum(out)), 3))
        wait *= 2
    return tuple(out)


_reconnect: dict[str, Any] = {}  # what the listener says with, and waits


def reconnect_on_outage(say, delays: tuple[float, ...] | None = None) -> None:
    """From now on in this process, a connection to a database server (PostgreSQL, MySQL: the
    MLflow store's and the Optuna storage's engines alike; not SQLite) that cannot be made is
    tried again after each of ``delays``, each try said in one line by ``say``; past the last,
    the error stands. Both engines ping a pooled connection before using it, so a server that
    restarted costs a reconnection, not a lost write. Call it after the stores are opened: a
    URL that never worked is said at once, not retried."""
    import sqlalchemy
    from sqlalchemy.engine import Engine

    _reconnect.update(say=say, delays=tuple(reconnect_delays() if delays is None else delays))
    if not sqlalchemy.event.contains(Engine, "do_connect", _connect_with_retries):
        sqlalchemy.event.listen(Engine, "do_connect", _connect_with_retries)


# a command whose store's server went away for longer than the retries: it stops as a signal
# stops it, its records as a kill leaves them, and the same command goes on (sysexits'
# EX_TEMPFAIL: a temporary failure, to be tried again)
EXIT_STORE_AWAY = 75


def _chain(exc: BaseException):
    """``exc`` and every exception it was raised from or during (causes and contexts), once."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if e is not None and id(e) not in seen:
            seen.add(id(e))
            yield e
            todo += [e.__cause__, e.__context__]


def outage(exc: BaseException) -> str | None:
    """Where ``exc`` comes, through its causes and contexts (Tune and Optuna wrap it), from a
    database connection that could not be made or was cut: that error's first line; else
    None."""
    for e in _chain(exc):
        name, text = type(e).__name__, str(e).strip()
        if getattr(e, "connection_invalidated", False) or (  # SQLAlchemy's: a disconnect
                name in ("OperationalError", "InterfaceError") and any(
                    w in text.lower() for w in _DISCONNECTED)):
            return (text.splitlines() or [name])[0][:300]
        if name == "MlflowException" and any(w in text for w in (*_UNREACHABLE, *_CUT)):
            return text.splitlines()[0][:300]
    return None


# the words of a database driver's error where the connection failed, was closed or was cut
_DISCONNECTED = ("connection", "server closed", "terminating", "the database system is",
                 "ssl syscall", "eof detected", "could not receive data")


def disk_full(exc: BaseException) -> str | None:
    """Where ``exc`` comes, through its causes and contexts, from a full disk (``ENOSPC``, or
    SQLite's "database or disk is full"): that error's first line; else None."""
    import errno

    for e in _chain(exc):
        lines = [ln.strip() for ln in str(e).splitlines()]
        said = [ln for ln in lines if "No space left on device" in ln
                or "database or disk is full" in ln]
        if said or (isinstance(e, OSError) and e.errno == errno.ENOSPC):
            return (said or lines or [os.strerror(errno.ENOSPC)])[0][:300]
    return None


def reconnect_off() -> None:
    """Connections fail at once again (``reconnect_on_outage`` undone)."""
    _reconnect.clear()


def _connect_with_retries(dialect, conn_rec, cargs, cparams):
    """SQLAlchemy's ``do_connect`` event: the connection, made with ``_reconnect``'s retries."""
    if dialect.name == "sqlite" or not _reconnect:
        return None  # SQLAlchemy's own connect
    delays = _reconnect["delays"]
    where = f"{cparams.get('host', '')}:{cparams.get('port', '')}/{cparams.get('dbname', '')}"
    for attempt, delay in enumerate((*delays, None), start=1):
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as e:
            if delay is None:
                e._fmnist_waited = True  # type: ignore[attr-defined] - see _waited
                raise
            why = (str(e).strip().splitlines() or [type(e).__name__])[0]
            _reconnect["say"](f"store: the database at {where} is unreachable ({why}); "
                              f"try {attempt + 1} of {len(delays) + 1} in {delay:g} s")
            time.sleep(delay)
    return None


# the words of an MLflow REST call whose connection could not be made (the server is down): the
# request never reached it, so trying it again writes nothing twice
_UNREACHABLE = ("Failed to establish a new connection", "Connection refused")
# ... and of one whose connection was cut (the server stopped while it answered) or that was not
# answered in MLFLOW_HTTP_REQUEST_TIMEOUT (a server just restarted, or slow on a loaded machine):
# the request may have been written, so only a call that writes the same thing again harmlessly
# is tried again (``_REPEATABLE``: MLflow keeps one of identical metrics, a parameter set to its
# value, a tag or a status set twice is set, a read), never one that creates something (a second
# run, version or artifact) or fails the second time (a rename, a delete of a tag)
_CUT = ("Connection aborted", "Connection reset", "RemoteDisconnected", "Read timed out")
_REPEATABLE = ("get_", "search_", "list_", "download_artifacts", "set_", "log_batch",
               "log_metric", "log_param", "update_run", "delete_run")


def _retryable(method: str, e: Exception, server: bool) -> bool:
    """Whether a call of ``method`` that raised ``e`` is tried again: to a tracking server
    (``server``), where the request never reached it or was cut and writes nothing new; to a
    database server, where its statement was cut in flight (the server stopped while it
    answered: its transaction is rolled back, or was committed and the same write again is
    harmless) and it creates nothing; the new connection waits for the server
    (``_connect_with_retries``)."""
    if not server:
        return method.startswith(_REPEATABLE) and _cut(e)
    text = str(e)
    return any(w in text for w in _UNREACHABLE) or (
        any(w in text for w in _CUT) and method.startswith(_REPEATABLE))


def _waited(e: BaseException) -> bool:
    """Whether ``e`` comes from a new connection that ``_connect_with_retries`` already tried
    for all its waits: the call is not tried again (each try would wait them all again)."""
    return any(getattr(x, "_fmnist_waited", False) for x in _chain(e))


class _RetryingClient:
    """An ``MlflowClient`` of a tracking server or a database server whose calls, while
    ``reconnect_on_outage`` is on, are tried again (after its waits, each said in one line)
    where the server could not be reached (``_retryable``); as the client otherwise."""

    def __init__(self, client, uri: str):
        self._client, self._uri = client, uri
        self._server = uri.startswith("http")

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        what = "tracking server" if self._server else "database"

        def call(*args, **kwargs):
            return _with_retries(lambda: attr(*args, **kwargs),
                                 lambda e: _retryable(name, e, self._server),
                                 f"the {what} at {redact.mask(self._uri)}")

        return call


def _with_retries(call, retryable, where: str):
    """``call()``, tried again after each of ``reconnect_on_outage``'s waits (each said in one
    line) while what it raises is ``retryable``; past the last, or without the waits, its error
    stands."""
    delays = _reconnect.get("delays", ())
    for attempt, delay in enumerate((*delays, None), start=1):
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - the store's, for any failure; retryable sorts
            if delay is None or not retryable(e):
                raise
            first = (str(e).splitlines() or [type(e).__name__])[0][:160]
            _reconnect["say"](f"store: {where} is unreachable ({first}); try "
                              f"{attempt + 1} of {len(delays) + 1} in {delay:g} s")
            time.sleep(delay)
    return None


# Optuna's storage calls that set what they set (an intermediate value, an attribute, a
# parameter) or only read: one whose statement a database server cut in flight is made again
# on a new connection; Ray's searcher reports each epoch's value as it comes, so a server
# stopped mid-sweep cuts one of these more often than not. A trial's new state (``tell``) is
# made again unless the cut one was committed; a new trial or study is never made twice.
_OPTUNA_REPEATABLE = (
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "set_study_user_attr", "set_study_system_attr", "set_trial_param",
    "_set_trial_param",  # Optuna's cache calls its backend's private ones too
    "_get_trials", "_get_best_trial_id", "_get_stale_trial_ids")


def retrying_storage(url: str, **kwargs):
    """Optuna's ``RDBStorage`` at ``url`` whose calls, while ``reconnect_on_outage`` is on,
    are tried again where a database server cut them (``_OPTUNA_REPEATABLE``, the reads, a
    trial's state); as ``RDBStorage`` otherwise (Optuna wraps it in its cache as its own)."""
    return _storage_class()(url, **kwargs)


def _cut(e: BaseException) -> bool:
    """Whether a database server cut ``e``'s statement and a new connection may be tried (not
    one whose own retries were all waited)."""
    return outage(e) is not None and not _waited(e)


@functools.cache
def _storage_class():
    """``RetryingRDBStorage``: made on first use (Optuna is imported then), picklable as this
    module's (``__getattr__``)."""
    import optuna

    base = optuna.storages.RDBStorage

    def retried(name: str):
        def method(self, *args, **kw):
            return _with_retries(lambda: getattr(base, name)(self, *args, **kw), _cut,
                                 f"the database at {redact.mask(self.url)}")
        return method

    def set_trial_state_values(self, trial_id, state, values=None):
        made: list[bool] = []

        def once():
            # the cut one was committed: a finished state, or RUNNING taken from WAITING (one
            # driver asks a study for trials: that RUNNING is its own)
            if made and base.get_trial(self, trial_id).state == state and (
                    state.is_finished() or state == optuna.trial.TrialState.RUNNING):
                return True
            made.append(True)
            return base.set_trial_state_values(self, trial_id, state, values)
        return _with_retries(once, _cut, f"the database at {redact.mask(self.url)}")

    names = [n for n in dir(base) if n.startswith("get_") or n in _OPTUNA_REPEATABLE]
    return type("RetryingRDBStorage", (base,), {
        **{n: retried(n) for n in names}, "set_trial_state_values": set_trial_state_values,
        "__module__": __name__, "__qualname__": "RetryingRDBStorage"})


def __getattr__(name: str):  # PEP 562: pickle finds the class made on first use
    if name == "RetryingRDBStorage":
        return _storage_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
