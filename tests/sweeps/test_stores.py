"""Stores beyond the default SQLite: a real PostgreSQL server (started by .ci/run, given as
FMNIST_TEST_POSTGRES), two sweeps at once against one store, and store URLs that cannot work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from sweeps.cli import main
from sweeps.redact import mask
from tests.sweeps.helpers import processes, records, write_spec

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("fmnist-sweep"))
PG = os.environ.get("FMNIST_TEST_POSTGRES")


@pytest.fixture
def pg_urls():
    if not PG:
        pytest.skip("no PostgreSQL server given in FMNIST_TEST_POSTGRES (.ci/run starts one)")
    # pinged before each use: a test may have restarted the server meanwhile
    admin = sqlalchemy.create_engine(PG, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    names = [f"fmnist_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("mlflow", "optuna")]
    with admin.connect() as con:
        for n in names:
            con.execute(sqlalchemy.text(f"CREATE DATABASE {n}"))
    base = PG.rsplit("/", 1)[0]
    yield tuple(f"{base}/{n}" for n in names)
    with admin.connect() as con:
        for n in names:
            con.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)"))
    admin.dispose()


def _nested(tracking_uri: str, name: str):
    from mlflow.tracking import MlflowClient  # here: `make test-fast` imports this module too

    c = MlflowClient(tracking_uri=tracking_uri)
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("fmnist.role") == "parent"]
    assert len(parents) == 1
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], nested


@pytest.fixture
def pg_secret_urls():
    """Two new databases owned by a new role with a password of its own: (mlflow URL, optuna
    URL, password)."""
    if not PG:
        pytest.skip("no PostgreSQL server given in FMNIST_TEST_POSTGRES (.ci/run starts one)")
    tag = uuid.uuid4().hex[:8]
    role, password = f"fmnist_pw_{tag}", f"Pw-{uuid.uuid4().hex}"
    names = [f"fmnist_{kind}_{tag}" for kind in ("mlflow", "optuna")]
    admin = sqlalchemy.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        for n in names:
            con.execute(sqlalchemy.text(f"CREATE DATABASE {n} OWNER {role}"))
    host = PG.rsplit("@", 1)[1].rsplit("/", 1)[0]
    yield (*(f"postgresql://{role}:{password}@{host}/{n}" for n in names), password)
    with admin.connect() as con:
        for n in names:
            con.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)"))
        con.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {role}"))
    admin.dispose()


def _every_row(url: str) -> str:
    """Every row of every table of a database, as text."""
    engine = sqlalchemy.create_engine(url)
    try:
        meta = sqlalchemy.MetaData()
        meta.reflect(engine)
        with engine.connect() as con:
            return "\n".join(str(row) for table in meta.sorted_tables
                             for row in con.execute(table.select()))
    finally:
        engine.dispose()


def test_one_database_for_both_stores_is_refused_before_anything_is_written(pg_urls, tmp_path,
                                                                           capsys):
    mlflow_url, _ = pg_urls
    spec = write_spec(tmp_path / "s.yaml", name="onedb", trials=1, max_epochs=1,
                      data={"subset": 100, "seed": 0})
    store = tmp_path / "store"
    assert main(["run", str(spec), "--tracking-uri", mlflow_url, "--storage",
                 mlflow_url.replace("postgresql://", "postgresql+psycopg://"),
                 "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the database of the MLflow store" in err[0], err
    assert "MLflow and Optuna each need a database of their own" in err[0]
    assert _every_row(mlflow_url) == "" and not store.exists(), "nothing written"


def _two_at_once(tmp_path: Path, urls: list[str]) -> list[subprocess.CompletedProcess]:
    procs = []
    for name in ("left", "right"):
        spec = write_spec(tmp_path / f"{name}.yaml", name=name, trials=2, max_epochs=1,
                          max_concurrent=1, data={"subset": 300, "seed": 0})
        procs.append(subprocess.Popen([CLI, "run", str(spec), *urls], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
        time.sleep(1)
    return [(p, p.communicate(timeout=500)[0]) for p in procs]


def test_two_sweeps_at_once_against_one_sqlite_store(tmp_path):
    store = tmp_path / "store"
    done = _two_at_once(tmp_path, ["--store", str(store)])
    for proc, out in done:
        assert proc.returncode == 0, out[-3000:]
        assert "database is locked" not in out
    for name in ("left", "right"):
        parent, nested = _nested(f"sqlite:///{store / 'mlflow.db'}", name)
        assert len(nested) == 2 and all(r.info.status == "FINISHED" for r in nested)
        assert all(r.data.tags["fmnist.sweep"] == name for r in nested), "no mixed-up runs"


def _kill_a_trial_of_each(mlflow_url: str, sweeps: dict, report_cmd: list[str], ui_url: str,
                          tmp_path: Path) -> tuple[dict, list[tuple[int, str]], list[int]]:
    """While ``sweeps`` (name -> Popen) run: once a trial of a sweep has logged an epoch and
    has more to train, SIGKILL the Ray worker training it (its run's ``fmnist.pid``); meanwhile
    run ``report_cmd`` and ask the UI for the experiments. Returns (name -> the killed trial's
    run id, the reports' exit codes and errors, the UI's answers)."""
    import json
    import urllib.request

    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=mlflow_url)
    killed: dict[str, str] = {}
    reports, answers = [], []
    deadline = time.monotonic() + 400
    def finished(name: str) -> int:
        exp = c.get_experiment_by_name(name)
        return 0 if exp is None else len(c.search_runs(
            [exp.experiment_id], "attributes.status = 'FINISHED' and tags.`fmnist.role` = "
                                 "'trial'"))

    while (len(killed) < len(sweeps) or not reports) and time.monotonic() < deadline and any(
            p.poll() is None for p in sweeps.values()):
        for name, proc in sweeps.items():
            exp = c.get_experiment_by_name(name)
            if name in killed or exp is None or proc.poll() is not None:
                continue
            for r in c.search_runs([exp.experiment_id], "attributes.status = 'RUNNING' and "
                                   "tags.`fmnist.role` = 'trial'"):
                done = len(c.get_metric_history(r.info.run_id, "epoch_s"))
                pid = r.data.tags.get("fmnist.pid")
                if pid and 1 <= done < 3:
                    os.kill(int(pid), signal.SIGKILL)  # the worker, mid-trial
                    killed[name] = r.info.run_id
                    break
        if not reports and len(killed) == len(sweeps) and all(map(finished, sweeps)):
            # a report of both while they write (each has a finished trial to show)
            rep = subprocess.run([*report_cmd, "--out", str(tmp_path / "mid")],
                                 capture_output=True, text=True, timeout=300)
            reports.append((rep.returncode, rep.stderr[-2000:]))
            req = urllib.request.Request(f"{ui_url}/ajax-api/2.0/mlflow/experiments/search",
                                         data=json.dumps({"max_results": 100}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as answer:
                seen = {e["name"] for e in json.load(answer).get("experiments", [])}
            answers.append(len(seen & set(sweeps)))
        time.sleep(0.3)
    return killed, reports, answers


def test_two_sweeps_a_report_and_the_ui_on_one_postgresql_store_a_trial_killed_in_each(
        pg_secret_urls, tmp_path, capsys):
    # under load: two sweeps, a report and the UI on one PostgreSQL store (a role with a
    # password of its own, written and printed nowhere), a trial of each sweep killed mid-way
    # (its Ray worker, SIGKILL): each goes on from its last saved epoch (max_failures: 1)
    from mlflow.tracking import MlflowClient

    from tests.sweeps.helpers import free_port, wait_until_answers

    mlflow_url, optuna_url, password = pg_secret_urls
    store = tmp_path / "store"
    urls = ["--store", str(store), "--tracking-uri", mlflow_url, "--storage", optuna_url]
    port = free_port()
    ui = subprocess.Popen([CLI, "ui", "--tracking-uri", mlflow_url, "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweeps = {}
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/health", ui, 120)
        for name in ("left", "right"):
            spec = write_spec(tmp_path / f"{name}.yaml", name=name, trials=2, max_epochs=3,
                              max_concurrent=1, max_failures=1, data={"subset": 3000, "seed": 0})
            sweeps[name] = subprocess.Popen([CLI, "run", str(spec), *urls],
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True)
        killed, reports, answers = _kill_a_trial_of_each(
            mlflow_url, sweeps, [CLI, "report", "left", "right", *urls, "--format", "md"],
            f"http://127.0.0.1:{port}", tmp_path)
        outs = [p.communicate(timeout=600)[0] for p in sweeps.values()]
    finally:
        for p in [*sweeps.values(), ui]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)
    assert sorted(killed) == ["left", "right"], "a trial of each killed mid-way"
    assert reports and {rc for rc, _ in reports} == {0}, reports  # while the sweeps wrote
    assert answers and all(a >= 1 for a in answers), "the UI answered meanwhile"
    c = MlflowClient(tracking_uri=mlflow_url)
    for (name, proc), out in zip(sweeps.items(), outs, strict=True):
        assert proc.returncode == 0, out[-3000:]
        parent, nested = _nested(mlflow_url, name)
        assert len(nested) == 2 and all(r.info.status == "FINISHED" for r in nested), out[-3000:]
        assert all(r.data.tags["fmnist.sweep"] == name for r in nested), "no mixed-up runs"
        for r in nested:  # each epoch once, those of the killed trial too
            assert [m.step for m in c.get_metric_history(r.info.run_id, "epoch_s")] == \
                [1, 2, 3], out[-3000:]
        went_on = c.get_run(killed[name])
        assert int(went_on.data.tags["fmnist.resumed_from_epoch"]) >= 1, "from a saved epoch"
        study = optuna.load_study(study_name=name, storage=optuna_url)
        assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
        assert study.trials[0].params != study.trials[1].params, "no configuration twice"
        assert "test/acc" in parent.data.metrics
    # the report afterwards: both sweeps, each trial once as finished (and no password)
    assert main(["report", "left", "right", *urls, "--out", str(tmp_path / "rep"),
                 "--format", "md"]) == 0
    comparison = (tmp_path / "rep" / "comparison.md").read_text()
    for name in ("left", "right"):
        md = (tmp_path / "rep" / f"{name}.md").read_text()
        _, nested = _nested(mlflow_url, name)
        assert all(md.count(f"| {r.info.run_name} | finished |") == 1 for r in nested), md
        assert f"| {name} |" in comparison
    _recorded_in_postgresql_with_no_password(tmp_path, urls, outs, password, capsys)


def _recorded_in_postgresql_with_no_password(tmp_path: Path, urls: list[str], outs: list[str],
                                             password: str, capsys) -> None:
    """The checks on the sweep "left" of a two-at-once run on PostgreSQL with a password in
    ``urls`` (``outs``: the output of its command, then of the other's)."""
    mlflow_url, optuna_url = urls[3], urls[5]
    spec = tmp_path / "left.yaml"
    parent, nested = _nested(mlflow_url, "left")
    study = optuna.load_study(study_name="left", storage=optuna_url)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2
    assert "test/acc" in parent.data.metrics
    assert parent.data.tags["fmnist.command"] == mask(" ".join(["fmnist-sweep", "run", str(spec),
                                                                 *urls]))
    capsys.readouterr()
    assert main(["report", "left", *urls, "--out", str(tmp_path / "rep"), "--format",
                 "md"]) == 0
    md = (tmp_path / "rep" / "left.md").read_text()
    for r in nested:
        assert f"| {r.info.run_name} | finished | lenet5 |" in md
    assert main(["list", "--tracking-uri", mlflow_url]) == 0

    said = capsys.readouterr()
    assert f"view: fmnist-sweep ui --tracking-uri {mask(mlflow_url)} --sweep left" in outs[0]
    assert mask(mlflow_url) in outs[0]
    assert password not in "".join(outs) + said.out + said.err
    # nowhere in MLflow's or Optuna's database (tags, params, attributes), nor in any file the
    # sweeps wrote: artifacts, models, reports, Tune's experiment folder
    assert password not in _every_row(mlflow_url)
    assert password not in _every_row(optuna_url)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "MLmodel" for p in written) and any(p.suffix == ".md" for p in written)
    assert [p for p in written if password.encode() in p.read_bytes()] == []


@pytest.mark.parametrize(("flag", "url", "message"), [
    ("--tracking-uri", "postgresql://nobody:x@127.0.0.1:1/none", "cannot open the MLflow store"),
    ("--tracking-uri", "http://127.0.0.1:1", "cannot open the MLflow store"),
    ("--storage", "postgresql://nobody:x@127.0.0.1:1/none", "cannot open the Optuna storage"),
])
def test_a_store_url_that_cannot_work_fails_fast_with_one_line(tmp_path, capsys, flag, url,
                                                               message):
    spec = write_spec(tmp_path / "s.yaml", name="badurl", trials=1, max_epochs=1,
                      data={"subset": 100, "seed": 0})
    t0 = time.monotonic()
    assert main(["run", str(spec), "--store", str(tmp_path / "st"), flag, url]) == 2
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} {mask(url)}: {message}" in err[0], err
    assert not list((tmp_path / "st").glob("*.db")), "no store half-written"


def test_a_store_folder_that_cannot_be_made_fails_with_one_line(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", name="badroot", trials=1, max_epochs=1,
                      data={"subset": 100, "seed": 0})
    (tmp_path / "afile").write_text("not a folder")
    store = tmp_path / "afile" / "st"
    assert main(["run", str(spec), "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--store {store}: cannot create the store folder" in err[0], err
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_a_sweep_through_a_tracking_server_that_goes_away_and_comes_back_loses_nothing(
        tmp_path):
    # the server (`fmnist-sweep ui` on a store of its own) stopped while a trial trains and
    # started again 10 s later on the same port (its start takes as long again): the driver's
    # and the trial's writes wait for it
    from mlflow.tracking import MlflowClient

    from tests.sweeps.helpers import free_port, wait_until_answers

    server_store = tmp_path / "server-store"
    server_store.mkdir()
    (server_store / "mlflow.db").touch()  # `ui` serves an existing store
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def serve(tries: int = 3):
        # the test's own restart of the server: where it does not come up (a loaded machine,
        # the port not yet free), it is started again; its output says why where it never does
        for attempt in range(tries):
            log = tmp_path / f"ui-{attempt}.log"
            with log.open("w") as f:
                ui = subprocess.Popen([CLI, "ui", "--store", str(server_store), "--port",
                                       str(port)], stdout=f, stderr=subprocess.STDOUT)
            try:
                wait_until_answers(f"{url}/health", ui, 120)
                return ui
            except AssertionError:
                if ui.poll() is None:
                    ui.terminate()
                    ui.wait(timeout=60)
                if attempt == tries - 1:
                    raise AssertionError(f"{url}: no answer\n{log.read_text()[-3000:]}") from None
                time.sleep(5)

    ui = serve()
    spec = write_spec(tmp_path / "s.yaml", name="viahttp", trials=2, max_epochs=3,
                      max_concurrent=1, data={"subset": 3000, "seed": 0})
    # the retries wait up to 5 minutes here (60 s by default): the server's own start takes
    # longer on a loaded machine (the suite's other workers)
    sweep = subprocess.Popen([CLI, "run", str(spec), "--tracking-uri", url, "--store",
                              str(tmp_path / "store")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "FMNIST_STORE_RETRY_S": "300"})
    try:
        _wait_for_epochs(f"sqlite:///{server_store / 'mlflow.db'}", sweep, 0)
        ui.send_signal(signal.SIGTERM)  # the server and its workers stop
        ui.wait(timeout=60)
        time.sleep(10)
        ui = serve()
        out, _ = sweep.communicate(timeout=600)
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
    assert sweep.returncode == 0, _errors(out)
    assert f"store: the tracking server at {url} is unreachable" in out, out[-3000:]
    db = f"sqlite:///{server_store / 'mlflow.db'}"  # the server is stopped by now
    exp = MlflowClient(tracking_uri=db).get_experiment_by_name("viahttp")
    assert out.rstrip().endswith(  # the server's own UI, at the sweep's runs
        f"view: {url}/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning")
    parent, nested = _nested(f"sqlite:///{server_store / 'mlflow.db'}", "viahttp")
    assert len(nested) == 2 and all(r.info.status == "FINISHED" for r in nested)
    assert "test/acc" in parent.data.metrics
    c = MlflowClient(tracking_uri=f"sqlite:///{server_store / 'mlflow.db'}")
    for r in nested:  # each epoch once, the one the server missed too
        assert [m.step for m in c.get_metric_history(r.info.run_id, "val/acc")] == [1, 2, 3]


def _procs() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live process."""
    return {pid: (ppid, pgid) for pid, (ppid, pgid, _) in processes().items()}


def _stop_ui(ui: subprocess.Popen, sig: int, port: int) -> None:
    """Send ``sig`` to the `fmnist-sweep ui` process alone (as systemd's stop does) and check
    that the whole server stops: its exit code, the MLflow server and its workers (a process
    group of their own) gone, nothing on ``port``."""
    import socket

    procs = _procs()
    (server,) = [p for p, (ppid, _) in procs.items() if ppid == ui.pid]
    group = {p for p, (_, pgid) in procs.items() if pgid == server}
    assert len(group) >= 2, "the MLflow server and its workers, in a group of their own"
    os.kill(ui.pid, sig)
    assert ui.wait(timeout=60) == 128 + sig
    deadline = time.monotonic() + 30
    while group & set(_procs()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not group & set(_procs()), "the server and its workers are gone"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize("sig", [signal.SIGTERM], ids=["SIGTERM"])  # SIGINT: the auth test
def test_a_signal_to_fmnist_sweep_ui_stops_the_whole_server(tmp_path, sig):
    import urllib.request

    from tests.sweeps.helpers import free_port

    store = tmp_path / "store"
    store.mkdir()
    (store / "mlflow.db").touch()
    port = free_port()
    ui = subprocess.Popen([CLI, "ui", "--store", str(store), "--port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status:
                    break
            except OSError:
                pass
            assert ui.poll() is None and time.monotonic() < deadline, "UI did not start"
            time.sleep(1)
        _stop_ui(ui, sig, port)
        assert f"stopped by {signal.Signals(sig).name}" in ui.stdout.read()
    finally:
        if ui.poll() is None:
            ui.kill()


def test_processes_creating_one_new_optuna_storage_at_once_all_open_it(tmp_path):
    # Optuna's schema set-up races between processes on a new database ("table studies already
    # exists", a UNIQUE constraint on alembic_version): a reader polling the study once crashed
    # a starting sweep that way. Four processes, released at the same instant on a new
    # database, three times (each process imports once and opens the three in turn).
    code = """
import sys, time
from pathlib import Path
from sweeps import runner
for url, go in zip(sys.argv[1::2], sys.argv[2::2]):
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.001)
    print("opened", len(runner._storage(url).get_all_studies()), flush=True)
"""
    rounds = [(f"sqlite:///{tmp_path / f'optuna{i}.db'}", tmp_path / f"go{i}") for i in range(3)]
    args = [str(a) for pair in rounds for a in pair]
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        for _, go in rounds:
            for p in procs:
                assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
            go.touch()
            for p in procs:
                assert p.stdout.readline().strip() == "opened 0", p.stderr.read()[-2000:]
        for p in procs:
            assert p.wait(timeout=120) == 0, p.stderr.read()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.fixture
def own_pg(tmp_path):
    """A PostgreSQL server of this test's own (``initdb`` in a folder of its own, on a free
    port), to stop and start without stopping .ci/run's, which other tests use meanwhile:
    (its URL's start, ``postgresql://postgres@127.0.0.1:PORT/``, stop, start)."""
    import glob
    import pwd
    import shutil
    import tempfile

    from tests.sweeps.helpers import free_port

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: float(Path(p).parts[-3])) or list(filter(None, [
                       shutil.which("initdb")]))
    if not found:
        pytest.skip("no PostgreSQL server programs here (.ci/run installs postgresql)")
    bin_ = Path(found[-1]).parent
    as_owner: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="fmnist-pg-"))  # not tmp_path: root's alone
    if os.geteuid() == 0:  # the server refuses to run as root
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run([*as_owner, str(bin_ / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [*as_owner, str(bin_ / "pg_ctl"), "-D", str(data), "-w", "-l",
             str(folder / "log"), "-o", options, "start"]
    stop = [*as_owner, str(bin_ / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"]
    subprocess.run(start, check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/", stop, start
    finally:
        subprocess.run(stop, capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def _epochs_logged(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as con:
            return con.execute(sqlalchemy.text(
                "SELECT count(*) FROM metrics WHERE key = 'epoch_s'")).scalar() or 0
    except sqlalchemy.exc.ProgrammingError:  # MLflow's tables are not made yet
        return 0
    finally:
        engine.dispose()


def _errors(out: str) -> str:
    """A failed command's output for an assertion: the lines that name an exception (a
    traceback's last line, and each it was raised from), then its last 2,000 characters."""
    named = [ln for ln in out.splitlines() if ln[:1].isalpha() and ("Error" in ln.split(":")[0]
                                                                   or "Exception" in ln)]
    return "\n".join(named[-8:]) + "\n...\n" + out[-2000:]


def _wait_for_epochs(url: str, proc, more_than: int) -> int:
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        n = _epochs_logged(url)
        if n > more_than:
            return n
        time.sleep(0.2)
    said = ""
    if proc.poll() is not None:  # it ended: what it said is the diagnosis
        out, err = proc.communicate(timeout=30)
        said = f"\nstdout:\n{(out or '')[-3000:]}\nstderr:\n{(err or '')[-3000:]}"
    raise AssertionError(f"no epoch logged past {more_than} (exit code {proc.poll()}){said}")


def test_a_database_server_that_goes_away_mid_trial_stops_or_reconnects_and_nothing_is_lost(
        own_pg, tmp_path):
    # both stores on a PostgreSQL server, stopped while a trial trains
    base, stop, start = own_pg
    admin = sqlalchemy.create_engine(base + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        for n in ("mlflow", "optuna"):
            con.execute(sqlalchemy.text(f"CREATE DATABASE {n}"))
    admin.dispose()
    mlflow_url, optuna_url = base + "mlflow", base + "optuna"
    spec = write_spec(tmp_path / "s.yaml", name="pgdown", trials=3, max_epochs=3,
                      max_concurrent=1, data={"subset": 3000, "seed": 0})
    cmd = [CLI, "run", str(spec), "--store", str(tmp_path / "store"), "--tracking-uri",
           mlflow_url, "--storage", optuna_url]

    # away for longer than the retries (2 s here): the sweep stops as a kill leaves it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FMNIST_STORE_RETRY_S": "2"})
    try:
        _wait_for_epochs(mlflow_url, proc, 0)
        subprocess.run(stop, check=True, timeout=60)
        out, err = proc.communicate(timeout=300)
    finally:
        subprocess.run(start, check=True, timeout=60)
    assert proc.returncode == 75, err[-3000:]
    assert "try 3 of 4 in 1 s" in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("fmnist-sweep run: the store's server went away (") and \
        last.endswith("once it is back, the same command resumes: fmnist-sweep " +
                      mask(" ".join(cmd[1:]))), last

    # the same command goes on; the server away meanwhile (until the sweep has found it gone,
    # within its retries) costs a reconnection
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        _wait_for_epochs(mlflow_url, proc, _epochs_logged(mlflow_url))
        subprocess.run(stop, check=True, timeout=60)
        away = time.monotonic() + 45  # the retries wait 60 s in all
        while (not any("is unreachable" in ln for ln in said) and proc.poll() is None
               and time.monotonic() < away):
            time.sleep(0.5)
    finally:
        subprocess.run(start, check=True, timeout=60)
    proc.wait(timeout=600)
    reader.join(timeout=30)
    out = "".join(said)
    assert proc.returncode == 0, _errors(out)
    assert "is unreachable" in out and "try 2 of 9 in 0.5 s" in out, out[-3000:]
    assert "goes on after epoch" in out  # the trial the first command left

    parent, nested = _nested(mlflow_url, "pgdown")
    study = optuna.load_study(study_name="pgdown", storage=optuna_url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3 and len(nested) == 3
    assert all(r.info.status == "FINISHED" for r in nested)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_url)
    for r in nested:  # each epoch logged once, the interrupted trial's too
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "epoch_s")]
        assert steps == [1, 2, 3], (r.info.run_name, steps)
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 3
    assert "test/acc" in parent.data.metrics


def test_the_ui_on_a_network_asks_every_request_for_a_user(tmp_path, capsys, monkeypatch):
    import base64
    import urllib.error
    import urllib.request

    from tests.sweeps.helpers import free_port

    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_AUTH_CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)
    store = tmp_path / "store"
    store.mkdir()
    (store / "mlflow.db").touch()
    # another host than loopback without --auth is refused; --auth needs the admin's password
    for more, said in ((["--host", "0.0.0.0"], "--host 0.0.0.0: would serve every run"),
                       (["--host", "0.0.0.0", "--auth"], "--auth: set MLFLOW_AUTH_ADMIN_PASSWORD")):
        assert main(["ui", "--store", str(store), "--port", "1", *more]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err
    assert not (store / "auth").exists()

    port, password = free_port(), f"Pw-{uuid.uuid4().hex}"
    ui = subprocess.Popen([CLI, "ui", "--store", str(store), "--host", "0.0.0.0", "--port",
                           str(port), "--auth"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": password})
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5"

    def status(user: str | None = None, pw: str = "") -> int | None:
        request = urllib.request.Request(url)
        if user is not None:
            token = base64.b64encode(f"{user}:{pw}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            # 60 s: the first answer is slow beside the suite's other workers
            return urllib.request.urlopen(request, timeout=60).status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 120
        while status() is None:
            assert ui.poll() is None and time.monotonic() < deadline, "UI did not start"
            time.sleep(1)
        assert status() == 401 and status("admin", "wrong") == 401
        assert status("admin", password) == 200
        _stop_ui(ui, signal.SIGINT, port)  # Ctrl-C (the tracking-server test: SIGTERM)
    finally:
        if ui.poll() is None:
            ui.kill()
        out = ui.communicate(timeout=60)[0]
    assert "stopped by SIGINT" in out
    assert "users log in (MLflow's basic-auth)" in out and password not in out
    written = [p for p in store.rglob("*") if p.is_file()]
    assert (store / "auth" / "basic_auth.db") in written
    assert [p for p in written if password.encode() in p.read_bytes()] == []


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB filesystem (tmpfs) at ``tmp_path/disk``: a store on it fills mid-sweep."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"no small filesystem can be mounted here ({made.stderr.strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_stops_the_sweep_in_one_line_and_once_freed_the_same_command_resumes(
        small_disk, tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="full", trials=4, max_epochs=3,
                      max_concurrent=1, data={"subset": 600, "seed": 0})
    store = small_disk / "store"
    cmd = [CLI, "run", str(spec), "--store", str(store)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 2, first.stderr[-3000:]
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fmnist-sweep run: {store}: the disk is full (") and (
        "No space left on device" in last or "database or disk is full" in last), last
    assert last.endswith(f"free some space, then the same command resumes: fmnist-sweep run "
                         f"{spec} --store {store}"), last

    subprocess.run(["mount", "-o", "remount,size=300m", str(small_disk)], check=True)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    client, parent, nested, study = records(store, "full")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4 and len(nested) == 4
    assert all(r.info.status == "FINISHED" for r in nested), [r.info.status for r in nested]
    for r in nested:  # each epoch once
        assert [m.step for m in client.get_metric_history(r.info.run_id, "epoch_s")] == [1, 2, 3]
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 4
    assert "test/acc" in parent.data.metrics
