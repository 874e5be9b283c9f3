"""An existing multi-node Ray cluster on this machine: `ray start --head` plus a second
`ray start --address` worker node, separate processes, one CPU each. A sweep given --address runs
its trials on both nodes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from sweeps.cli import main
from tests.sweeps.helpers import records, write_spec

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def cluster():
    port = _free_port()
    common = ["--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--include-dashboard=false", *common], check=True, capture_output=True,
                   timeout=180)
    try:
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}",
                        "--node-ip-address=127.0.0.1", *common], check=True,
                       capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def test_trials_run_on_both_nodes_of_an_existing_cluster(cluster, tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="cluster", trials=2, max_epochs=1,
                      data={"subset": 300, "seed": 0})
    store = tmp_path / "store"
    assert main(["run", str(spec), "--store", str(store), "--address", cluster]) == 0
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2
    _, parent, nested, _ = records(store, "cluster")
    assert len(nested) == 2 and all(r.info.status == "FINISHED" for r in nested)
    assert {r.data.tags["fmnist.node_id"] for r in nested} == nodes, "one trial per node"
    assert "test/acc" in parent.data.metrics


def test_an_address_nothing_answers_on_fails_fast(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", name="noray", trials=1, max_epochs=1,
                      data={"subset": 100, "seed": 0})
    t0 = time.monotonic()
    port = _free_port()
    assert main(["run", str(spec), "--store", str(tmp_path / "st"),
                 "--address", f"127.0.0.1:{port}"]) == 2
    assert time.monotonic() - t0 < 30
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers" in capsys.readouterr().err
    assert not (tmp_path / "st").exists(), "nothing written"
