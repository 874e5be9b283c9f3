"""An existing multi-node Ray cluster on this machine: `ray start --head` plus a second
`ray start --address` worker node, separate processes, one CPU each. A sweep given --address runs
its trials on both nodes. Ray >= 2.59 starts such clusters with token authentication: every node
and the driver run with RAY_AUTH_MODE=token and share the token in ~/.ray/auth_token. One such
cluster for the module, its head with the dashboard for `ray job submit`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps.cli import main
from tests.sweeps.helpers import free_port, processes, records, write_spec

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _sessions_alive(sessions: set[int]) -> set[int]:
    """The live processes of these sessions."""
    return {pid for pid, (_, _, sid) in processes().items() if sid in sessions}


def _node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`ray start ARGS --block` in a session of its own, once its node has started."""
    with open(log, "w") as out:
        node = subprocess.Popen([RAY, "start", *args, "--block"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + 180
    while "Ray runtime started." not in log.read_text():
        assert node.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    return node


def _stop(nodes: list[subprocess.Popen]) -> None:
    """SIGKILL to every process in these nodes' sessions, as `ray stop --force` does to every
    Ray process on the machine (other test runs' and benchmarks' included): these alone."""
    sessions = {n.pid for n in nodes}  # a new session's id is its leader's pid
    deadline = time.monotonic() + 30
    while (left := _sessions_alive(sessions)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    for n in nodes:
        n.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two nodes of one CPU each: a head with the dashboard (`ray job submit` goes there) and
    a worker node. (the cluster's address, the dashboard's URL, the environment to reach it)"""
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True,
                   timeout=60)
    port, dash = free_port(), free_port()
    logs = tmp_path_factory.mktemp("cluster")
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
              "--disable-usage-stats"]
    nodes: list[subprocess.Popen] = []
    try:
        # each node's agent on a port of its own: Ray's default (52365) is one for the machine,
        # and the job API reaches the head's agent there
        nodes.append(_node(["--head", f"--port={port}", "--dashboard-host=127.0.0.1",
                            f"--dashboard-port={dash}",
                            f"--dashboard-agent-listen-port={free_port()}", *common], env,
                           logs / "head.log"))
        nodes.append(_node([f"--address=127.0.0.1:{port}",
                            f"--dashboard-agent-listen-port={free_port()}", *common], env,
                           logs / "worker.log"))
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", env
    finally:
        _stop(nodes)


def test_an_address_nothing_answers_on_fails_fast(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", name="noray", trials=1, max_epochs=1,
                      data={"subset": 100, "seed": 0})
    t0 = time.monotonic()
    port = free_port()
    assert main(["run", str(spec), "--store", str(tmp_path / "st"),
                 "--address", f"127.0.0.1:{port}"]) == 2
    assert time.monotonic() - t0 < 30
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers" in capsys.readouterr().err
    assert not (tmp_path / "st").exists(), "nothing written"


def test_ray_job_submit_runs_a_sweep_on_both_nodes_of_the_cluster(cluster, tmp_path):
    # the job's driver finds the cluster (Ray's job environment); `--address` to an existing
    # cluster is the node-death test's
    _, dashboard, env = cluster
    spec = write_spec(tmp_path / "s.yaml", name="job", trials=2, max_epochs=1,
                      data={"subset": 300, "seed": 0})
    store = tmp_path / "store"
    cli = str(Path(sys.executable).with_name("fmnist-sweep"))
    runtime_env = json.dumps({"env_vars": {"FMNIST_DATA_DIR":
                                            os.environ.get("FMNIST_DATA_DIR", "")}})
    done = subprocess.run(
        [RAY, "job", "submit", "--address", dashboard, "--runtime-env-json", runtime_env, "--",
         cli, "run", str(spec), "--store", str(store)], capture_output=True, text=True,
        timeout=400, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "succeeded" in done.stdout + done.stderr
    _, parent, nested, _ = records(store, "job")
    assert len(nested) == 2 and all(r.info.status == "FINISHED" for r in nested)
    nodes = {r.data.tags["fmnist.node_id"] for r in nested}
    assert len(nodes) == 2, "each 1-CPU trial ran on its own node of the 2-node cluster"
    assert "test/acc" in parent.data.metrics


def _trial_sessions(sessions: set[int]) -> set[int]:
    """Those of ``sessions`` (nodes) where a trial's process runs (Tune's ``ImplicitFunc``)."""
    out = set()
    for pid, (_, _, sid) in processes().items():
        if sid in sessions:
            with contextlib.suppress(OSError):
                if b"ImplicitFunc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.add(sid)
    return out


def _kill_the_trials_node_after(store: Path, epochs: int, sweep, workers) -> subprocess.Popen:
    """Once ``store`` holds ``epochs`` epochs, kill (every process of) the worker node running
    the trial, as a lost machine; returns it."""
    import sqlite3

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and sweep.poll() is None:
        with contextlib.suppress(sqlite3.Error), \
                contextlib.closing(sqlite3.connect(store / "mlflow.db")) as con:
            if con.execute("SELECT count(*) FROM metrics WHERE key = 'epoch_s'").fetchone()[0] \
                    >= epochs:
                break
        time.sleep(0.2)
    (doomed,) = _trial_sessions({w.pid for w in workers})
    (node,) = [w for w in workers if w.pid == doomed]
    _stop([node])
    return node


def test_a_trial_whose_node_dies_goes_on_elsewhere_or_fails_and_the_sweep_goes_on(tmp_path):
    # a cluster of its own: a head with no CPU for trials and worker nodes of one CPU; the
    # worker that runs the trial is killed (every process of it, as a lost machine) mid-trial
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True,
                   timeout=60)
    port = free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-gpus=0", "--disable-usage-stats"]

    def worker(i: int) -> subprocess.Popen:
        return _node([f"--address=127.0.0.1:{port}", "--num-cpus=1",
                      f"--dashboard-agent-listen-port={free_port()}", *common], env,
                     tmp_path / f"worker{i}.log")

    cli = str(Path(sys.executable).with_name("fmnist-sweep"))

    def sweep(name: str, trials: int, max_failures: int):
        spec = write_spec(tmp_path / f"{name}.yaml", name=name, trials=trials, max_epochs=4,
                          max_concurrent=1, max_failures=max_failures,
                          data={"subset": 3000, "seed": 0})
        return tmp_path / name, subprocess.Popen(
            [cli, "run", str(spec), "--store", str(tmp_path / name), "--address",
             f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env)

    nodes: list[subprocess.Popen] = []
    try:
        # the head finds a dead node in about 6 s (Ray's default: 15 s)
        head_env = {**env, "RAY_health_check_period_ms": "2000",
                    "RAY_health_check_failure_threshold": "3"}
        nodes.append(_node(["--head", f"--port={port}", "--num-cpus=0",
                            "--include-dashboard=false", *common], head_env,
                           tmp_path / "head.log"))
        # one after another (three starting at once overload the head's GCS on a loaded
        # machine: "the current node timed out during startup")
        workers = [worker(0), worker(1)]
        nodes += workers
        # with max_failures: 1, the trial goes on from its last saved epoch on another node
        store, run = sweep("goeson", 1, 1)
        dead = _kill_the_trials_node_after(store, 2, run, workers)
        out, _ = run.communicate(timeout=400)
        assert run.returncode == 0, out[-3000:]
        # without: the trial is recorded as failed, with why, and the sweep goes on
        workers = [w for w in workers if w is not dead] + [worker(2)]
        nodes += workers[-1:]
        store0, run0 = sweep("fails", 2, 0)
        _kill_the_trials_node_after(store0, 2, run0, workers)
        out0, _ = run0.communicate(timeout=400)
    finally:
        _stop(nodes)
    from mlflow.tracking import MlflowClient

    _, parent, nested, study = records(store, "goeson")
    assert len(nested) == 1 and all(r.info.status == "FINISHED" for r in nested), out[-3000:]
    (went_on,) = [r for r in nested if "fmnist.resumed_from_epoch" in r.data.tags]
    assert int(went_on.data.tags["fmnist.resumed_from_epoch"]) >= 1, "from a saved epoch"
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    for r in nested:  # each epoch recorded once, the one the dead node was training too
        assert [m.step for m in client.get_metric_history(r.info.run_id, "epoch_s")] == \
            [1, 2, 3, 4]
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    assert "test/acc" in parent.data.metrics

    assert run0.returncode == 0, out0[-3000:]
    _, parent, nested, study = records(store0, "fails")
    assert sorted(r.info.status for r in nested) == ["FAILED", "FINISHED"], out0[-3000:]
    (failed,) = [r for r in nested if r.info.status == "FAILED"]
    why = failed.data.tags["fmnist.error"].lower()  # Ray's words: the actor died, or is gone,
    # or its node was terminated (which of the node's processes Ray saw go first)
    assert "actor" in why and any(w in why for w in ("died", "unavailable", "terminated")), why
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "FAIL"]
    assert "test/acc" in parent.data.metrics
