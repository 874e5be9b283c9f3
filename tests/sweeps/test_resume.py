"""A sweep killed with SIGKILL resumes with the same command: no finished trial rerun, no MLflow
run duplicated, exactly the spec's number of trials at the end. Real subprocesses, real Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.sweeps.helpers import records, write_spec

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("fmnist-sweep"))


def _completed(store: Path, name: str) -> int:
    db = store / "optuna.db"
    if not db.exists():
        return 0
    try:
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    except Exception:  # noqa: BLE001 - not created yet, or locked for a moment
        return 0
    return sum(t.state.name == "COMPLETE" for t in study.trials)


def test_killed_sweep_resumes_with_the_same_command(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="resume", max_concurrent=1, max_epochs=3,
                      data={"subset": 1000, "seed": 0})
    store = tmp_path / "store"
    cmd = [CLI, "run", str(spec), "--store", str(store)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.monotonic() + 240
    while _completed(store, "resume") < 1:
        assert first.poll() is None, first.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and everything it started
    first.wait()

    _, _, nested_before, study_before = records(store, "resume")
    done_before = {r.info.run_id: r.data.params["learning_rate"]
                   for r in nested_before if r.info.status == "FINISHED"}
    complete_before = {t.number: t.params for t in study_before.trials
                       if t.state.name == "COMPLETE"}
    assert 1 <= len(done_before) < 4 and len(complete_before) == len(done_before)

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"resuming, {len(done_before)} of 4 trials done" in second.stdout

    _, parent, nested, study = records(store, "resume")
    finished = [r for r in nested if r.info.status == "FINISHED"]
    assert len(finished) == 4 and len(nested) == 4, "no duplicated or leftover MLflow run"
    assert {r.info.run_id for r in finished} >= set(done_before), "finished runs kept as they were"
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    for number, params in complete_before.items():  # finished trials were not rerun
        assert study.trials[number].params == params
    interrupted = [t for t in study.trials if t.user_attrs.get("fmnist_interrupted")]
    assert all(t.state.name == "FAIL" for t in interrupted)
    assert len(study.trials) == 4 + len(interrupted)
    assert "test/acc" in parent.data.metrics and parent.info.status == "FINISHED"
