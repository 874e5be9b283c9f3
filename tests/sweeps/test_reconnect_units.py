"""A database server that goes away: a new connection is tried again after each delay, each try
said in one line, and past the last the error stands (made-up dialect, no waiting)."""

from __future__ import annotations

import os
import types

import pytest

from sweeps import tracking

pytestmark = pytest.mark.unit


class _Refused(Exception):
    pass


def _dialect(failures: int, name: str = "postgresql"):
    calls = []

    def connect(*cargs, **cparams):
        calls.append(cparams)
        if len(calls) <= failures:
            raise _Refused("connection failed: Connection refused\nIs the server running?")
        return "a connection"

    return types.SimpleNamespace(name=name, connect=connect,
                                 loaded_dbapi=types.SimpleNamespace(OperationalError=_Refused)
                                 ), calls


@pytest.fixture
def said(monkeypatch):
    lines, waits = [], []
    monkeypatch.setattr(tracking.time, "sleep", waits.append)
    tracking.reconnect_on_outage(lines.append, delays=(0.5, 1.0, 2.0))
    yield lines, waits
    tracking.reconnect_off()


def test_a_server_back_within_the_retries_gives_its_connection(said):
    lines, waits = said
    dialect, calls = _dialect(failures=2)
    params = {"host": "db", "port": 5432, "dbname": "mlflow"}
    assert tracking._connect_with_retries(dialect, None, (), params) == "a connection"
    assert len(calls) == 3 and waits == [0.5, 1.0]
    assert lines == [
        "store: the database at db:5432/mlflow is unreachable (connection failed: Connection "
        "refused); try 2 of 4 in 0.5 s",
        "store: the database at db:5432/mlflow is unreachable (connection failed: Connection "
        "refused); try 3 of 4 in 1 s"]


def test_past_the_last_retry_the_error_stands(said):
    lines, waits = said
    dialect, calls = _dialect(failures=10)
    with pytest.raises(_Refused):
        tracking._connect_with_retries(dialect, None, (), {"host": "db"})
    assert len(calls) == 4 and waits == [0.5, 1.0, 2.0] and len(lines) == 3


def test_sqlite_and_a_process_that_did_not_ask_connect_as_sqlalchemy_does(said):
    assert tracking._connect_with_retries(_dialect(0, "sqlite")[0], None, (), {}) is None
    tracking.reconnect_off()
    assert tracking._connect_with_retries(_dialect(5)[0], None, (), {}) is None


def test_the_waits_double_from_half_a_second_to_the_total_asked():
    assert tracking.reconnect_delays(30) == (0.5, 1.0, 2.0, 4.0, 8.0, 14.5)
    assert tracking.reconnect_delays(2) == (0.5, 1.0, 0.5)
    assert sum(tracking.reconnect_delays(120)) == 120 and max(tracking.reconnect_delays(120)) == 15
    assert sum(tracking.reconnect_delays(15.5004)) == pytest.approx(15.5, abs=0.001)  # it ends


class OperationalError(Exception):  # the name SQLAlchemy's and the drivers' errors carry
    pass


def test_an_outage_is_found_through_the_wrappers_of_tune_and_optuna_and_nothing_else_is():
    try:
        try:
            try:
                raise OperationalError("(psycopg.OperationalError) connection failed: refused\n"
                                       "Is the server running?")
            except OperationalError as e:
                raise RuntimeError("An exception is raised during the commit.") from e
        except RuntimeError:
            raise ValueError("TuneError: Traceback ...")  # noqa: B904 - as Tune does
    except ValueError as e:
        wrapped = e
    assert tracking.outage(wrapped) == "(psycopg.OperationalError) connection failed: refused"
    assert tracking.outage(ValueError("a bug")) is None
    assert tracking.outage(OperationalError("no such table: runs")) is None


def test_a_full_disk_is_found_through_the_wrappers_and_said_by_its_own_line():
    import errno

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("Trial task failed") from e
    except RuntimeError as e:
        wrapped = e
    assert tracking.disk_full(wrapped) == "[Errno 28] No space left on device"
    sqlite = OperationalError("(sqlite3.OperationalError) database or disk is full\n"
                              "(Background on this error at: https://sqlalche.me/e/21/e3q8)")
    assert tracking.disk_full(sqlite) == "(sqlite3.OperationalError) database or disk is full"
    assert tracking.disk_full(OSError(errno.EACCES, "Permission denied")) is None


def test_a_cut_connection_is_tried_again_only_by_a_call_that_creates_nothing():
    refused = "HTTPConnectionPool: Max retries exceeded (Caused by NewConnectionError(" \
              "'Failed to establish a new connection: [Errno 111] Connection refused'))"
    cut = "Max retries exceeded (Caused by ProtocolError('Connection aborted.', " \
          "ConnectionResetError(104, 'Connection reset by peer')))"
    timeout = "Max retries exceeded (Caused by ReadTimeoutError('Read timed out.'))"
    def server(method, text):
        return tracking._retryable(method, RuntimeError(text), server=True)

    assert server("create_run", refused)  # never sent: nothing to write twice
    assert server("log_batch", cut)  # the same metrics again: kept once
    assert not server("create_run", cut)  # maybe made: not a second run
    assert server("log_batch", timeout)  # not answered in time (a loaded machine): again
    assert not server("create_run", timeout)  # maybe made
    assert not server("log_batch", "INVALID_PARAMETER_VALUE: bad metric")  # not an outage
    # an artifact made twice, a rename failing the second time: not; a status, a read: again
    assert not server("log_dict", cut) and not server("rename_experiment", cut)
    assert server("set_terminated", cut) and server("search_runs", timeout)


def test_a_connection_its_retries_already_waited_for_is_not_tried_again_by_its_call(said):
    lines, waits = said
    dialect, calls = _dialect(failures=9)
    with pytest.raises(_Refused) as raised:
        tracking._connect_with_retries(dialect, None, (), {"host": "db", "port": 5432})
    assert len(waits) == 3  # the connection's own waits, all of them
    cut = OperationalError("(psycopg.OperationalError) connection failed: refused")
    cut.__cause__ = raised.value
    assert tracking.outage(cut) is not None  # an outage: the command stops with exit 75,
    assert not tracking._retryable("log_batch", cut, server=False)  # after one round of waits
    assert not tracking._cut(cut)


def test_a_call_a_database_server_cut_in_flight_is_made_again_unless_it_creates():
    cut = OperationalError("(psycopg.OperationalError) consuming input failed: server closed "
                           "the connection unexpectedly")
    assert tracking._retryable("search_runs", cut, server=False)  # a read: asked again
    assert tracking._retryable("get_run", cut, server=False)
    assert tracking._retryable("log_batch", cut, server=False)  # rolled back, or kept once
    assert not tracking._retryable("create_run", cut, server=False)  # maybe made
    unique = OperationalError("(psycopg.errors.UniqueViolation) duplicate key value")
    assert not tracking._retryable("search_runs", unique, server=False)  # not an outage
    gone = RuntimeError("(psycopg.errors.AdminShutdown) the admin said so")
    gone.connection_invalidated = True  # type: ignore[attr-defined] - SQLAlchemy's own verdict
    assert tracking.outage(gone) == "(psycopg.errors.AdminShutdown) the admin said so"


def test_optunas_storage_makes_a_cut_write_again_once_and_never_a_new_trial_twice(
        tmp_path, said, monkeypatch):
    import optuna

    lines, waits = said
    storage = tracking.retrying_storage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    base = optuna.storages.RDBStorage
    cut = OperationalError("(psycopg.OperationalError) server closed the connection "
                           "unexpectedly")

    def cut_once(name, committed):
        real, calls = getattr(base, name), []

        def method(self, *args, **kw):
            calls.append(1)
            if len(calls) == 1:
                if committed:
                    real(self, *args, **kw)
                raise cut
            return real(self, *args, **kw)
        monkeypatch.setattr(base, name, method)
        return calls

    trial = study.ask()
    calls = cut_once("set_trial_intermediate_value", committed=False)
    trial.report(0.5, step=1)  # as Ray's searcher reports each epoch
    assert len(calls) == 2 and study.trials[0].intermediate_values == {1: 0.5}
    assert len(lines) == 1 and "store: the database at sqlite:" in lines[0] \
        and "try 2 of 4 in 0.5 s" in lines[0]
    calls = cut_once("set_trial_state_values", committed=True)  # tell's commit, its answer cut
    study.tell(trial, 0.9)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] and study.trials[0].value == 0.9
    assert len(calls) == 1, "committed: not made again"
    study.enqueue_trial({})  # a warm start, as ours are enqueued
    waiting = study.trials[-1]
    cut_once("set_trial_state_values", committed=True)  # WAITING -> RUNNING, its answer cut
    assert study.ask().number == waiting.number, "the enqueued trial, not a new one"
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    import pickle

    again = pickle.loads(pickle.dumps(storage))  # as Optuna's own storage pickles
    assert type(again).__name__ == "RetryingRDBStorage" and again.url == storage.url
    cut_once("_create_new_trial", committed=True)  # what Optuna's cache calls
    with pytest.raises(OperationalError):  # maybe made: not a second trial; the error stands
        study.ask()
    assert len(lines) == 3 and waits == [0.5, 0.5, 0.5]


def test_a_tracking_servers_first_answer_is_waited_for_5_s_and_later_ones_longer(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    with tracking._request_timeout(5):  # the check of the URL: a dead one fails fast
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "5"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ  # MLflow's 120 s: slow writes wait
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "17")  # the user's, throughout
    with tracking._request_timeout(5):
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "17"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "17"
