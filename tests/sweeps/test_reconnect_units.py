"""A database server that goes away: a new connection is tried again after each delay, each try
said in one line, and past the last the error stands (made-up dialect, no waiting)."""

from __future__ import annotations

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
    assert not server("log_batch", timeout)


def test_a_query_a_database_server_cut_in_flight_is_asked_again_only_by_a_read():
    cut = OperationalError("(psycopg.OperationalError) consuming input failed: server closed "
                           "the connection unexpectedly")
    assert tracking._retryable("search_runs", cut, server=False)  # a read: asked again
    assert tracking._retryable("get_run", cut, server=False)
    assert not tracking._retryable("log_batch", cut, server=False)  # maybe written: stands
    assert not tracking._retryable("create_run", cut, server=False)
    unique = OperationalError("(psycopg.errors.UniqueViolation) duplicate key value")
    assert not tracking._retryable("search_runs", unique, server=False)  # not an outage
