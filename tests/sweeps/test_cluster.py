"""An existing multi-node Ray cluster on this machine: `ray start --head` plus a second
`ray start --address` worker node, separate processes, one CPU each. A sweep given --address runs
its trials on both nodes. Ray >= 2.59 starts such clusters with token authentication: every node
and the driver run with RAY_AUTH_MODE=token and share the token in ~/.ray/auth_token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps.cli import main
from tests.sweeps.helpers import free_port, records, write_spec

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture
def cluster(monkeypatch):
    port = free_port()
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    env = dict(os.environ)
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True,
                   timeout=60)
    common = ["--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--include-dashboard=false", *common], check=True, capture_output=True,
                   timeout=180, env=env)
    try:
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}",
                        "--node-ip-address=127.0.0.1", *common], check=True,
                       capture_output=True, timeout=180, env=env)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, env=env)


def test_trials_run_on_both_nodes_of_an_existing_cluster(cluster, tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="cluster", trials=2, max_epochs=1,
                      data={"subset": 300, "seed": 0})
    store = tmp_path / "store"
    cli = str(Path(sys.executable).with_name("fmnist-sweep"))
    done = subprocess.run([cli, "run", str(spec), "--store", str(store), "--address", cluster],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    _, parent, nested, _ = records(store, "cluster")
    assert len(nested) == 2 and all(r.info.status == "FINISHED" for r in nested)
    nodes = {r.data.tags["fmnist.node_id"] for r in nested}
    assert len(nodes) == 2, "each 1-CPU trial ran on its own node of the 2-node cluster"
    assert "test/acc" in parent.data.metrics


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


def test_ray_job_submit_runs_a_sweep_on_the_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    env = dict(os.environ)
    port, dash = free_port(), free_port()
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--num-cpus=2", "--num-gpus=0", "--disable-usage-stats",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}"],
                   check=True, capture_output=True, timeout=180, env=env)
    try:
        spec = write_spec(tmp_path / "s.yaml", name="job", trials=2, max_epochs=1,
                          data={"subset": 200, "seed": 0})
        store = tmp_path / "store"
        cli = str(Path(sys.executable).with_name("fmnist-sweep"))
        runtime_env = json.dumps({"env_vars": {"FMNIST_DATA_DIR":
                                                os.environ.get("FMNIST_DATA_DIR", "")}})
        done = subprocess.run(
            [RAY, "job", "submit", "--address", f"http://127.0.0.1:{dash}",
             "--runtime-env-json", runtime_env, "--", cli, "run", str(spec), "--store",
             str(store)], capture_output=True, text=True, timeout=400, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert "succeeded" in done.stdout + done.stderr
        _, parent, nested, _ = records(store, "job")
        assert len(nested) == 2 and all(r.info.status == "FINISHED" for r in nested)
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, env=env)
