from __future__ import annotations

import contextlib
import re
from pathlib import Path

import yaml

# MLflow and Optuna are imported where used: `make test-fast` imports this module (pytest
# imports every test module, the deselected ones too) and stays without MLflow

# TensorFlow's, absl's and CUDA's native log lines, and abseil's stack dump on a signal
NATIVE_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::|cuInit|cuda drivers|oneDNN|\*\*\* SIG",
                        re.MULTILINE)


def write_spec(path: Path, **over) -> Path:
    spec = {
        "name": "tiny", "family": "lenet5", "trials": 4, "max_epochs": 2,
        "sampler": {"type": "random", "seed": 1}, "scheduler": {"type": "fifo"},
        "resources": {"cpu": 1}, "max_concurrent": 2, "data": {"subset": 600, "seed": 0},
        "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
                  "shuffle": {"type": "choice", "values": [True, False]},
                  "dropout": {"type": "uniform", "low": 0.1, "high": 0.5}},
        "fixed": {"batch_size": 32},
        "final": {"refit": False, "ensemble": 0},  # tests of the phase after search set it
    }
    spec.update(over)
    path.write_text(yaml.safe_dump(spec))
    return path


def records(store: Path, name: str):
    """(client, parent run, nested runs, study) read back from the real stores."""
    import optuna
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    for r in nested:
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{store / 'optuna.db'}")
    return client, parents[0], nested, study


def free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until_answers(url: str, server, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fails where ``server`` (a Popen) exits first or
    ``timeout_s`` passes."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, f"{url}: no answer"
        time.sleep(1)


@contextlib.contextmanager
def mlflow_ui(store: Path, sweep: str | None = None):
    """`fmnist-sweep ui` for ``store`` on a free port; yields its base URL once it answers, or
    with ``sweep`` the URL it prints for that sweep's runs."""
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    cli = str(Path(sys.executable).with_name("fmnist-sweep"))
    server = subprocess.Popen([cli, "ui", "--store", str(store), "--port", str(port),
                               *(["--sweep", sweep] if sweep else [])],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    printed = server.stdout.readline()  # "MLflow UI for <uri>: <url> (Ctrl-C stops it)"
    try:
        wait_until_answers(f"{base}/health", server, 120)
        yield printed.split(": ", 1)[1].split(" ")[0] if sweep else base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, process group, session) of every live, non-zombie process (Linux
    /proc)."""
    import os

    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                out[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return out
