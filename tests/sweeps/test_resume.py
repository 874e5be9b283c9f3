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

    # The driver closes a trial's MLflow run before Optuna is told, so the kill may fall between
    # the two: a closed run can be ahead of its Optuna trial, never behind it.
    _, _, nested_before, study_before = records(store, "resume")
    done_before = {r.info.run_id: int(r.data.tags["fmnist.optuna_trial"])
                   for r in nested_before if r.info.status in ("FINISHED", "KILLED")}
    complete_before = {t.number: t.params for t in study_before.trials
                       if t.state.name == "COMPLETE"}
    assert 1 <= len(done_before) < 4 and set(complete_before) <= set(done_before.values())

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"resuming, {len(done_before)} of 4 trials done" in second.stdout

    _, parent, nested, study = records(store, "resume")
    finished = [r for r in nested if r.info.status in ("FINISHED", "KILLED")]
    assert len(finished) == 4 and len(nested) == 4, "no duplicated or leftover MLflow run"
    assert {r.info.run_id for r in finished} >= set(done_before), "finished runs kept as they were"
    numbers = sorted(int(r.data.tags["fmnist.optuna_trial"]) for r in nested)
    assert len(set(numbers)) == 4, "one MLflow run per Optuna trial"
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    for number, params in complete_before.items():  # finished trials were not rerun
        assert study.trials[number].params == params
    interrupted = [t for t in study.trials if t.user_attrs.get("fmnist_interrupted")]
    assert all(t.state.name == "FAIL" for t in interrupted)
    assert len(study.trials) == 4 + len(interrupted)
    assert "test/acc" in parent.data.metrics and parent.info.status == "FINISHED"


def _state(tmp_path, name="recon"):
    """A real MLflow store and Optuna study with a parent run, as a sweep leaves them."""
    from sweeps import spec as spec_mod
    from sweeps import tracking

    spec = spec_mod.load(write_spec(tmp_path / "s.yaml", name=name))
    st = tracking.store(tmp_path / "store")
    with tracking.init_lock(st):
        tracking.check_tracking_uri(st)
    storage = optuna.storages.RDBStorage(st.optuna_url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    parent = tracking.parent_run(st, spec, ["run", "s.yaml"])
    return spec, st, storage, study, parent


def test_reconcile_matches_each_mlflow_run_to_its_optuna_trial(tmp_path):
    """Every state a kill can leave between the two records, built directly in real stores."""
    from sweeps import runner, tracking

    spec, st, storage, study, parent = _state(tmp_path)
    c = tracking.client(st)
    trials = [study.ask() for _ in range(5)]
    runs = [tracking.start_trial(st, spec, parent, f"t{t.number}", {"learning_rate": 0.01},
                                 t.number) for t in trials]
    # 0: both records done; 1: run closed, Optuna not told yet (the kill fell between)
    study.tell(trials[0], 0.7)
    tracking.end_trial(st, runs[0], "FINISHED", {"objective": 0.7}, {})
    tracking.end_trial(st, runs[1], "FINISHED", {"objective": 0.8}, {})
    # 2: killed mid-training, both RUNNING; 3: failed, Optuna told, run not closed yet
    study.tell(trials[3], state=optuna.trial.TrialState.FAIL)
    # 4: pruned by the scheduler and closed as KILLED, Optuna not told yet
    tracking.end_trial(st, runs[4], "KILLED", {"objective": 0.5}, {"fmnist.pruned": "true"})

    said = []
    runner.reconcile(spec, storage, st, said.append)

    after = optuna.load_study(study_name=spec.name, storage=storage).trials
    assert [t.state.name for t in after] == ["COMPLETE", "COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert after[1].value == 0.8 and after[4].value == 0.5
    assert after[2].user_attrs.get(runner.INTERRUPTED) and not after[3].user_attrs
    status = {r.info.run_id: r.info.status for r in tracking.trial_runs(st, spec.name)}
    assert runs[2] not in status, "the half-written run of the interrupted trial is deleted"
    assert status == {runs[0]: "FINISHED", runs[1]: "FINISHED", runs[3]: "FAILED",
                      runs[4]: "KILLED"}
    assert c.get_run(runs[3]).data.tags["fmnist.recovered"] == "closed on resume"
    assert any("trial 1 had finished" in line for line in said)
    assert any("trial 2 was interrupted" in line for line in said)
    assert runner.study_counts(optuna.load_study(study_name=spec.name, storage=storage)) == (4, 1)

    said.clear()  # a second reconcile finds nothing to do
    runner.reconcile(spec, storage, st, said.append)
    assert said == [] and len(tracking.trial_runs(st, spec.name)) == 4
