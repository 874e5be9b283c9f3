"""A sweep stopped by SIGKILL, SIGINT or SIGTERM resumes with the same command: no finished
trial rerun, no configuration proposed twice, the interrupted trial going on from its last saved
epoch in its own MLflow run, exactly the spec's number of trials at the end. Real subprocesses,
real Ray."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from sweeps.cli import main
from tests.sweeps.helpers import NATIVE_LOG, records, write_spec

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("fmnist-sweep"))


EPOCH_LINE = re.compile(r"trial (\d+) \(\w+\) epoch (\d+)/4 val/acc 0\.\d{4} [\d.]+s/epoch$",
                        re.MULTILINE)


class _Output:
    """A process's output (stdout and stderr together), read as it comes."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines = proc, []
        self.changed = threading.Condition()
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 300) -> re.Match:
        """The first match of ``pattern`` in a line of the output so far, waiting for it."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if m := re.search(pattern, line):
                        return m
                left = deadline - time.monotonic()
                assert not self.closed and left > 0, f"{pattern!r} not seen:\n" + "".join(
                    self.lines)[-3000:]
                self.changed.wait(left)

    def text(self) -> str:
        """All of it, once the process has ended."""
        self.reader.join(timeout=30)
        return "".join(self.lines)


def _start(cmd: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen,
                                                                         _Output]:
    # stdout a pipe, not a terminal: a plain line per epoch report; a session of its own, for
    # a kill of the driver and everything it started
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    return proc, _Output(proc)


# One store, three commands: a kill of the driver and everything it started (SIGKILL, as a lost
# machine does), then a signal to the driver alone (SIGTERM, as `timeout`, systemd and Slurm
# send), then the resume that ends the sweep. SIGINT takes SIGTERM's path (the same handler,
# tests/sweeps/test_signals.py); the exit code and the stop line differ only by the signal's
# number and name.
def test_a_stopped_sweep_resumes_repeating_nothing_and_losing_at_most_an_epoch(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="resume", trials=3, max_concurrent=1, max_epochs=4,
                      data={"subset": 3000, "seed": 0})
    store = tmp_path / "store"
    cmd = [CLI, "run", str(spec), "--store", str(store)]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                             "FMNIST_DEBUG")}

    # 1: SIGKILL to the whole process group, trial 0 done and trial 1 mid-way
    first, output = _start(cmd, env)
    killed = output.wait_for(r"trial 1 \((\w+)\) epoch 2/4 ").group(1)  # its MLflow run's name
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=120)
    out = output.text()
    assert not NATIVE_LOG.search(out), out
    assert {(int(t), int(e)) for t, e in EPOCH_LINE.findall(out)} >= {(0, 1), (0, 2), (0, 3),
                                                                      (0, 4), (1, 1), (1, 2)}

    # 2: trial 1 goes on; SIGTERM to the driver alone once a new trial is mid-way
    second, output = _start(cmd, env)
    new = output.wait_for(r" started (\w+)$").group(1)  # no "(trial ... going on ...)": new
    stopped = int(output.wait_for(rf"trial (\d+) \({new}\) epoch 2/4 ").group(1))
    os.kill(second.pid, signal.SIGTERM)
    second.wait(timeout=120)
    out = output.text()
    assert "resuming, 1 of 3 trials done" in out
    assert re.search(r"trial 1 was interrupted; it goes on after epoch [234]", out)
    assert not NATIVE_LOG.search(out), out
    assert second.returncode == 128 + signal.SIGTERM, out
    assert "Traceback" not in out, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("fmnist-sweep run: stopped by SIGTERM; 2 of 3 trials done"), out
    assert last.endswith(f"the same command resumes: fmnist-sweep run {spec} --store "
                         f"{store}"), out
    _, parent, _, _ = records(store, "resume")  # a command a signal stopped counts its time
    stopped_wall = parent.data.metrics["sweep/wall_s"]
    assert stopped_wall > 0

    # 3: the stopped trial goes on from its last saved epoch, passing over a newer state that
    # is corrupt (made here: a state folder past its last, with a truncated model); the sweep ends
    _, _, runs, _ = records(store, "resume")
    (trial_dir,) = [r.data.tags["fmnist.trial_dir"] for r in runs if r.info.run_name == new]
    corrupt = Path(trial_dir) / "checkpoint_999999"
    corrupt.mkdir()
    (corrupt / "state.json").write_text('{"epoch": 3, "history": []}')
    (corrupt / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "resuming, 2 of 3 trials done" in third.stdout
    assert re.search(rf"trial {stopped} was interrupted; it goes on after epoch [234]",
                     third.stdout), third.stdout[-3000:]
    assert (f"resume: trial {stopped}'s saved state checkpoint_999999 is unreadable "
            f"(half-written or corrupt); passed over") in third.stdout
    assert not NATIVE_LOG.search(third.stdout + third.stderr)

    client, parent, nested, study = records(store, "resume")
    assert len(nested) == 3 and all(r.info.status == "FINISHED" for r in nested), \
        "one MLflow run per trial, the interrupted ones continued, none left over"
    for r in nested:  # every epoch recorded once, the continued trials' too
        assert [m.step for m in client.get_metric_history(r.info.run_id, "val/acc")] == \
            [1, 2, 3, 4]
    continued = [r for r in nested if "fmnist.resumed_from_epoch" in r.data.tags]
    assert sorted(r.info.run_name for r in continued) == sorted([killed, new])
    for r in continued:
        assert int(r.data.tags["fmnist.resumed_from_epoch"]) >= 2, "not from epoch 1"

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3
    configs = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(configs)) == 3, "no configuration proposed twice"
    interrupted = [t for t in study.trials if t.user_attrs.get("fmnist_interrupted")]
    assert [t.number for t in interrupted] == [1, stopped]
    for t in interrupted:
        assert t.state.name == "FAIL"
        assert tuple(sorted(t.params.items())) in configs, "it went on, same params"
    # MLflow and Optuna agree: each finished run is one complete trial, with its value
    by_number = {int(r.data.tags["fmnist.optuna_trial"]): r for r in nested}
    assert set(by_number) == {t.number for t in complete}
    for t in complete:
        assert by_number[t.number].data.metrics["objective"] == pytest.approx(t.value)
    assert "test/acc" in parent.data.metrics and parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep/wall_s"] > stopped_wall  # summed over the commands
    # the compute spent counts the killed commands' epochs: 3 trials of 4 epochs of 3,000
    assert parent.data.metrics["sweep/train_images"] == 3 * 4 * 3000


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


def _saved_state(trial_dir: Path, epochs: int) -> None:
    """A trial's Tune folder as a trial leaves it: its training state after ``epochs``."""
    import json
    import zipfile

    ckpt = trial_dir / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    history = [{"epoch": e, "val/acc": 0.5 + e / 10, "epoch_s": 1.0} for e in range(1, epochs + 1)]
    (ckpt / "state.json").write_text(json.dumps({"epoch": epochs, "history": history}))
    with zipfile.ZipFile(ckpt / "model.keras", "w") as z:
        z.writestr("config.json", "{}")


def test_reconcile_matches_each_mlflow_run_to_its_optuna_trial(tmp_path):
    """Every state a kill can leave between the two records, built directly in real stores."""
    from sweeps import resume, space, tags, tracking

    spec, st, storage, study, parent = _state(tmp_path)
    c = tracking.client(st)
    trials = [study.ask() for _ in range(6)]
    for t in trials:
        t.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    runs = [tracking.start_trial(st, spec, parent, f"t{t.number}", {"learning_rate": 0.01},
                                 t.number, tags={tags.TRIAL_DIR: str(tmp_path / f"t{t.number}")
                                                 })
            for t in trials]
    # 0: both records done; 1: run closed, Optuna not told yet (the kill fell between)
    study.tell(trials[0], 0.7)
    tracking.end_trial(st, runs[0], "FINISHED", {"objective": 0.7}, {})
    tracking.end_trial(st, runs[1], "FINISHED", {"objective": 0.8}, {})
    # 2: killed in its first epoch, both RUNNING, no state saved; 3: failed, Optuna told, run
    # not closed yet
    study.tell(trials[3], state=optuna.trial.TrialState.FAIL)
    # 4: pruned by the scheduler and closed as KILLED, Optuna not told yet
    tracking.end_trial(st, runs[4], "KILLED", {"objective": 0.5}, {"fmnist.pruned": "true"})
    # 5: killed in its third epoch: the state after epoch 2 saved, only epoch 1 in MLflow
    _saved_state(tmp_path / "t5", 2)
    tracking.log_history(c, runs[5], [{"epoch": 1, "val/acc": 0.6, "epoch_s": 1.0}])

    said = []
    resume.reconcile(spec, storage, st, said.append)

    after = optuna.load_study(study_name=spec.name, storage=storage).trials
    assert [t.state.name for t in after] == ["COMPLETE", "COMPLETE", "FAIL", "FAIL", "COMPLETE",
                                             "FAIL", "WAITING", "WAITING"]
    assert after[1].value == 0.8 and after[4].value == 0.5
    assert after[2].user_attrs.get(resume.INTERRUPTED) and not after[3].user_attrs
    # both interrupted trials are enqueued again with their hyperparameters; 5 goes on
    fixed = [t.system_attrs.get("fixed_params") for t in after]  # an enqueued trial's params
    assert fixed[6] == after[2].params and space.RESUME_KEY not in after[6].user_attrs
    assert fixed[7] == after[5].params
    assert after[7].user_attrs[space.RESUME_KEY] == {
        "run_id": runs[5], "checkpoint": str(tmp_path / "t5" / "checkpoint_000001"),
        "epoch": 2, "trial": 5}
    status = {r.info.run_id: r.info.status for r in tracking.trial_runs(st, spec.name)}
    assert runs[2] not in status, "the half-written run of the trial with no saved epoch goes"
    assert status == {runs[0]: "FINISHED", runs[1]: "FINISHED", runs[3]: "FAILED",
                      runs[4]: "KILLED", runs[5]: "RUNNING"}
    assert [(m.step, m.value) for m in c.get_metric_history(runs[5], "val/acc")] == \
        [(1, 0.6), (2, 0.7)], "the saved epoch MLflow lacked is logged, once"
    assert c.get_run(runs[3]).data.tags["fmnist.recovered"] == "closed on resume"
    assert any("trial 1 had finished" in line for line in said)
    assert any("trial 2 was interrupted before its first epoch ended" in line for line in said)
    assert any("trial 5 was interrupted; it goes on after epoch 2" in line for line in said)
    assert resume.study_counts(optuna.load_study(study_name=spec.name, storage=storage)) == (4, 1)

    said.clear()  # a second reconcile finds nothing to do: the enqueued trials wait their turn
    resume.reconcile(spec, storage, st, said.append)
    assert said == [] and len(tracking.trial_runs(st, spec.name)) == 5
    assert len(optuna.load_study(study_name=spec.name, storage=storage).trials) == 8


def test_a_sweep_killed_after_its_search_finishes_each_phase_without_retraining(tmp_path):
    # killed after the refit's first epoch, then (the refit done) as the ensemble is picked:
    # neither resume trains a trial again, the first goes on with the refit after its saved
    # epoch, the second reuses the refit
    spec = write_spec(tmp_path / "s.yaml", name="after", trials=2, max_epochs=4,
                      data={"subset": 1500, "seed": 0},
                      fixed={"batch_size": 32, "early_stopping": False},  # its refit: 4 epochs
                      final={"refit": True, "ensemble": 2, "tta": True})
    store = tmp_path / "store"
    cmd = [CLI, "run", str(spec), "--store", str(store)]
    first, output = _start(cmd)
    output.wait_for(r"final: refit epoch 1/4 ")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=120)
    output.text()
    client, _, nested, _ = records(store, "after")
    trials = {r.info.run_id: client.get_metric_history(r.info.run_id, "val/acc")
              for r in nested if r.data.tags["fmnist.role"] == "trial"}

    second, output = _start(cmd)
    output.wait_for("final: ensemble of ")
    os.killpg(second.pid, signal.SIGKILL)
    second.wait(timeout=120)
    out = output.text()
    assert "all 2 trials are done; nothing to run" in out, out[-3000:]
    assert "started " not in out, "no trial trained again"
    assert "final: refit done before, reused" not in out, "the killed refit trained again"
    # its state was saved before the line was said; the kill may land an epoch or two later
    assert re.search(r"final: refit of .* for 4 epochs, going on after epoch [123]\n", out), \
        out[-3000:]
    assert "final: refit epoch 1/4" not in out, "the refit's first epoch trained again"

    # the third in this process (no trial left: it starts no Ray, it picks and tests)
    with contextlib.redirect_stdout(io.StringIO()) as third:
        assert main(cmd[1:]) == 0
    assert "all 2 trials are done; nothing to run" in third.getvalue()
    assert "started " not in third.getvalue(), "no trial trained again"
    assert "final: refit done before, reused" in third.getvalue()

    client, parent, nested, study = records(store, "after")
    roles = sorted(r.data.tags["fmnist.role"] for r in nested)
    assert roles == ["ensemble", "refit", "trial", "trial"], "each run once, none left over"
    assert all(r.info.status == "FINISHED" for r in nested)
    for r in nested:
        if r.data.tags["fmnist.role"] == "trial":  # the search's records as they were
            assert [(m.step, m.value) for m in client.get_metric_history(
                r.info.run_id, "val/acc")] == [(m.step, m.value) for m in trials[r.info.run_id]]
        else:
            assert "test/acc" in r.data.metrics
    assert len(study.trials) == 2
    assert parent.info.status == "FINISHED" and "fmnist.final" in parent.data.tags
