"""End to end with a real local Ray, real SQLite stores, real MLflow and real training on a
small subset. Ray is started once for the module with 2 CPUs and 2 *logical* GPUs: this machine
has no GPU, so the GPU test checks Ray's placement, not CUDA (TensorFlow falls back to CPU)."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from pathlib import Path

import pytest

from sweeps import record
from sweeps import tags as tag
from sweeps.cli import main
from tests.sweeps.helpers import records, write_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import ray  # here: `make test-fast` imports this module too, and stays without Ray

    ray.shutdown()  # a Ray an earlier module's in-process sweep left, if any
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False,
             logging_level="ERROR",
             log_to_driver=False)
    yield
    ray.shutdown()


def _params(run, keys):
    return tuple(run.data.params[k] for k in keys)


def test_four_trial_sweep_is_recorded_end_to_end(finished_store):
    # a step schedule (003's model5 recipe) as well: the best trial's model must load back for
    # the test evaluation, which it once did not. The sweep is tests/conftest.py's rep-lenet5
    # (other modules read it too): run there, then run again and listed; the records as its
    # first run left them
    store, name = finished_store.root, finished_store.lenet5
    rc, out = finished_store.first
    assert rc == 0, out[-3000:]
    client, parent, nested, study = finished_store.first_records

    # one parent and 4 nested runs, each with per-epoch metrics at step = epoch
    assert len(nested) == 4 and all(r.info.status == "FINISHED" for r in nested)
    for r in nested:
        hist = client.get_metric_history(r.info.run_id, "val/acc")
        assert [m.step for m in hist] == [1, 2]
        assert [m.step for m in client.get_metric_history(r.info.run_id, "train/loss")] == [1, 2]
        assert r.data.params["family"] == "lenet5" and r.data.params["batch_size"] == "32"
        assert r.data.params["schedule"] == "step"

    # the Optuna study holds the same 4 trials, with the same parameters
    keys = ("dropout", "learning_rate", "shuffle")
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(study.trials) == 4 and len(trials) == 4
    assert sorted(tuple(str(t.params[k]) for k in keys) for t in trials) == \
        sorted(_params(r, keys) for r in nested)

    # the best run by the objective (the final model's val/acc) is the one reported
    best = max(nested, key=lambda r: r.data.metrics["objective"])
    assert parent.data.tags["fmnist.best_run_id"] == best.info.run_id
    assert math.isclose(study.best_value, best.data.metrics["objective"], rel_tol=1e-9)
    assert f"best trial: MLflow run {best.info.run_id}" in out
    assert out.rstrip().endswith(f"view: fmnist-sweep ui --store {store.resolve()} --sweep "
                                 f"{name}")

    # a test score on the parent and on the final model's own run (the best trial), nowhere else
    assert 0.0 < parent.data.metrics["test/acc"] <= 1.0
    assert "test/f1/shirt" in parent.data.metrics
    assert best.data.metrics["test/acc"] == parent.data.metrics["test/acc"]
    assert not [k for r in nested if r is not best for k in r.data.metrics if k.startswith("test")]
    assert parent.data.tags["fmnist.model_uri"].startswith("models:/")
    assert parent.info.status == "FINISHED"

    # both SQLite stores keep a write-ahead log (commits without a rollback journal each)
    for db in ("mlflow.db", "optuna.db"):
        with contextlib.closing(sqlite3.connect(store / db)) as con:
            assert con.execute("pragma journal_mode").fetchone() == ("wal",)

    # the same command again is a no-op that says so
    rc, out = finished_store.again
    assert rc == 0
    assert "all 4 trials are done; nothing to run" in out
    assert len(records(store, name)[2]) == 4

    rc, out = finished_store.listed
    assert rc == 0
    line = out.strip()
    assert line.startswith(name) and "done   4" in line and "failed  0" in line


def test_a_trial_that_raises_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path, capsys):
    # batch sizes of 4096 on a 600-image subset make fmnist.train raise inside the trial
    spec = write_spec(tmp_path / "s.yaml", name="failing", sampler={"type": "random", "seed": 2},
                      space={"batch_size": {"type": "choice", "values": [16, 4096]}}, fixed={},
                      max_epochs=1)
    store = tmp_path / "store"
    assert main(["run", str(spec), "--store", str(store)]) == 0
    _, parent, nested, study = records(store, "failing")
    failed = [r for r in nested if r.info.status == "FAILED"]
    finished = [r for r in nested if r.info.status == "FINISHED"]
    assert len(nested) == 4 and failed and finished
    for r in failed:
        assert r.data.params["batch_size"] == "4096"
        assert "`batch_size <= training images` must hold" in r.data.tags["fmnist.error"]
    assert sorted(t.state.name for t in study.trials).count("FAIL") == len(failed)
    assert "test/acc" in parent.data.metrics


def test_gpu_placement_four_half_gpu_trials_run_at_once(tmp_path):
    # no GPU here: Ray's 2 logical GPUs stand in for real ones (see the module docstring)
    spec = write_spec(tmp_path / "s.yaml", name="gpus", family="mlp", max_epochs=1,
                      resources={"cpu": 0.5, "gpu": 0.5}, max_concurrent=4,
                      data={"subset": 200, "seed": 0},
                      space={"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}})
    store = tmp_path / "store"
    assert main(["run", str(spec), "--store", str(store)]) == 0
    _, _, nested, _ = records(store, "gpus")
    assert len(nested) == 4
    assert sorted(r.data.tags["fmnist.gpu_ids"] for r in nested) == ["0", "0", "1", "1"]
    starts = [float(r.data.tags["fmnist.trial_start"]) for r in nested]
    ends = [float(r.data.tags["fmnist.trial_end"]) for r in nested]
    assert max(starts) < min(ends), "all four trials were running at the same time"


def test_asha_rung_at_the_last_epoch_does_not_throw_away_finished_trials(tmp_path):
    # A rung at max_epochs (grace 2, max_epochs 2) used to let ASHA stop a trial on its last
    # epoch's report, after all its training: it was recorded as pruned, with no model kept. The
    # last epoch now goes out with the final report, so every trial that trained fully is kept.
    spec = write_spec(tmp_path / "s.yaml", name="rung", family="mlp", max_concurrent=1,
                      scheduler={"type": "asha", "grace_period": 2, "reduction_factor": 2})
    store = tmp_path / "store"
    assert main(["run", str(spec), "--store", str(store)]) == 0
    client, _, nested, _ = records(store, "rung")
    assert [r.info.status for r in nested] == ["FINISHED"] * 4
    for r in nested:
        assert (Path(r.data.tags["fmnist.checkpoint"]) / "model.keras").is_file()
        history = client.get_metric_history(r.info.run_id, "val/acc")
        assert [m.step for m in history] == [1, 2]


def test_a_shorter_schedule_sets_no_bar_at_ashas_rungs():
    # (from test_families.py: it drives Ray Tune's ASHA scheduler, so not the unit tier)
    # the quick look anneals by epoch 4 and validates higher there than the whole schedule's
    # trial at its peak rate: ASHA must not stop the latter on the former's result
    from types import SimpleNamespace as NS

    from ray.tune.schedulers import TrialScheduler

    from sweeps import runner, trial
    from sweeps import spec as specs
    from tests.sweeps.test_families import _two

    sp = specs.parse(_two(max_epochs=20, scheduler={"type": "asha", "grace_period": 4,
                                                    "reduction_factor": 3}), "s.yaml")
    asha = runner._scheduler(sp)
    asha.set_search_properties("val/acc", "max")
    quick, full, worse = NS(trial_id="quick"), NS(trial_id="full"), NS(trial_id="worse")
    for t in (quick, full, worse):
        asha.on_trial_add(None, t)
    for epoch in range(1, 6):  # the quick look: 5 epochs, annealed by its 4th
        assert asha.on_trial_result(None, quick, {"val/acc": 0.92, "epoch": epoch,
                                                  **trial.rung(epoch, 5, sp)}) == "CONTINUE"
    asha.on_trial_complete(None, quick, {"val/acc": 0.92, "epoch": 5, **trial.rung(5, 5, sp)})

    def at_4(t, acc):
        return asha.on_trial_result(None, t, {"val/acc": acc, "epoch": 4,
                                              **trial.rung(4, 20, sp)})

    assert at_4(full, 0.88) == TrialScheduler.CONTINUE  # the first on the whole schedule
    assert at_4(worse, 0.80) == TrialScheduler.STOP  # ASHA still prunes among those

    # the median rule reads the rung from every finished trial's last result: a quick look's
    # and an untrained (infeasible) trial's say 0, below its grace period, and set no bar
    median = runner._scheduler(sp.replace(scheduler="median"))
    median.set_search_properties("val/acc", "max")

    class Trial:  # the median rule keys its results by trial: hashable
        def __init__(self, trial_id):
            self.trial_id, self.status = trial_id, "RUNNING"

    quick, full, worse = Trial("quick"), Trial("full"), Trial("worse")
    for t in (quick, full, worse):
        median.on_trial_add(None, t)
    median.on_trial_complete(None, quick, {"val/acc": 0.92, "epoch": 5, **trial.rung(5, 5, sp)})
    median.on_trial_complete(None, worse, {"val/acc": float("nan"), "epoch": 0,
                                           trial.INFEASIBLE_KEY: "params", trial.RUNG_KEY: 0})
    live = NS(get_live_trials=lambda: [full])
    for epoch in range(1, 6):
        assert median.on_trial_result(live, full, {"val/acc": 0.5, "epoch": epoch,
                                                   **trial.rung(epoch, 20, sp)}) == "CONTINUE"


def test_a_trial_whose_process_dies_goes_on_from_its_last_epoch(tmp_path, monkeypatch):
    # a trial's process dies (the OOM killer, a lost node; here SIGKILL from the driver once
    # Tune holds the checkpoint of its first epoch): with a failure budget Tune starts it again,
    # from the state it saved with its last report, so no epoch is trained or logged twice
    import os
    import signal

    from sweeps import recorder

    killed: list[int] = []
    on_checkpoint = recorder.TrialRecorder.on_checkpoint

    def kill_once(self, iteration, trials, trial, checkpoint, **info):
        on_checkpoint(self, iteration, trials, trial, checkpoint, **info)
        if not killed:
            killed.append(trial.last_result["pid"])
            os.kill(killed[0], signal.SIGKILL)

    monkeypatch.setattr(recorder.TrialRecorder, "on_checkpoint", kill_once)
    spec = write_spec(tmp_path / "s.yaml", name="retry", trials=1, max_epochs=4,
                      max_failures=1)
    store = tmp_path / "store"
    assert main(["run", str(spec), "--store", str(store)]) == 0
    client, parent, nested, study = records(store, "retry")
    assert killed, "the trial was killed"
    [run] = nested
    assert run.info.status == "FINISHED" and run.data.tags["fmnist.pid"] != str(killed[0])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")] == [1, 2, 3, 4]
    assert run.data.tags["fmnist.resumed_from_epoch"] in ("1", "2", "3")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    assert "test/acc" in parent.data.metrics


def test_a_trial_ray_fails_before_it_starts_still_gets_a_failed_run(tmp_path):
    # Ray fails a trial it cannot start on a reused actor (its actor's previous trial did not
    # end within TUNE_FUNCTION_THREAD_TIMEOUT_S): Tune then reports an error for a trial that
    # never started. That race cannot be produced on demand, so this drives the driver-side
    # recorder directly with Ray's own Trial object and a real MLflow store.
    from ray.tune.experiment import Trial

    from sweeps import recorder, tracking
    from sweeps import spec as spec_mod

    sp = spec_mod.load(write_spec(tmp_path / "s.yaml", name="unstarted"))
    st = tracking.store(tmp_path / "store")
    parent = tracking.parent_run(st, sp, ["run"])
    from sweeps import progress

    display = progress.Display(progress.Progress(sp.trials, sp.max_epochs, sp.metric),
                               say=lambda s: None, live=False)
    record = recorder.TrialRecorder(st, sp, parent, display, 0)
    trial = Trial("run_trial", config={"learning_rate": 0.01, "shuffle": True, "dropout": 0.2},
                  trial_id="never_started", stub=True)
    record.on_trial_error(0, [trial], trial)
    client = tracking.client(st)
    runs = tracking.trial_runs(st, "unstarted")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert runs[0].data.params["learning_rate"] == "0.01"
    assert runs[0].data.tags["mlflow.parentRunId"] == parent
    assert record.progress.failed == 1 and record.progress.done == 1
    assert client.get_run(parent).info.status == "RUNNING"


def test_a_trial_imports_tensorflow_without_kerass_optional_integrations():
    # a fresh interpreter, as a new trial actor is: Keras would import scikit-learn and
    # matplotlib (both installed, MLflow needs them) with itself; a trial skips them, and they
    # can still be imported afterwards
    import subprocess
    import sys

    code = """
import sys
from sweeps.trial import OPTIONAL, import_tensorflow
tf = import_tensorflow()
import keras
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
assert model(tf.zeros((1, 4))).shape == (1, 2)
print(sorted(m for m in sys.modules if m.split(".")[0] in OPTIONAL))
import sklearn, matplotlib
print(sklearn.__name__, matplotlib.__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "sklearn matplotlib"]


def test_trial_actors_carry_no_runtime_env_of_their_own_so_ray_starts_them_directly(
        monkeypatch):
    # an actor with a runtime env gets a new process through Ray's runtime-env agent (1-1.5 s
    # more per actor here); the runner drops Tune's PyTorch-Lightning variable, and what Tune
    # copies from the driver's environment still goes with the actors
    from ray.tune.execution.class_cache import _ActorClassCache

    from sweeps import runner

    runner._plain_trial_actors()

    class Trainable:
        pass

    assert not _ActorClassCache().get(Trainable)._default_options.get("runtime_env")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")

    class Other:
        pass

    env = _ActorClassCache().get(Other)._default_options["runtime_env"]
    assert env["env_vars"] == {"AWS_ACCESS_KEY_ID": "key"}


def test_a_new_store_is_created_without_mlflows_table_messages(tmp_path):
    # MLflow logs two INFO lines when it creates its tables; on a new store they came out among
    # the sweep's own progress lines. A fresh interpreter: MLflow sets its loggers up on import.
    import subprocess
    import sys

    code = (f"from sweeps import tracking; st = tracking.store({str(tmp_path / 'store')!r}); "
            f"tracking.check_tracking_uri(st); print(st.exists)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"  # the tables were made
    assert "database tables" not in out.stderr, out.stderr


def test_on_a_terminal_a_sweep_shows_a_live_table_and_finishes(tmp_path):
    # stdout a pseudo-terminal, as `make run` in a shell has: the live display (rich) must not
    # get in the way of Ray, which pickles the driver's callbacks
    import os
    import pty
    import re
    import select
    import subprocess
    import sys
    from pathlib import Path

    spec = write_spec(tmp_path / "s.yaml", name="tty", trials=2, max_epochs=2)
    cli = str(Path(sys.executable).with_name("fmnist-sweep"))
    master, slave = pty.openpty()
    proc = subprocess.Popen([cli, "run", str(spec), "--store", str(tmp_path / "store")],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        if select.select([master], [], [], 1)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal's other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode(errors="replace"))
    assert "trial" in text and "s/epoch" in text and "┃" in text, text[-2000:]
    assert "sweep tty: 2 trials done (0 failed)" in text, text[-2000:]


def test_a_budget_ends_the_whole_command_within_it_with_a_report(tmp_path, capsys):
    # 40 trials of 3 epochs would take minutes here; the budget stops the search with room left
    # for the test evaluation and the report
    import time

    spec = write_spec(tmp_path / "s.yaml", name="budget", trials=40, max_epochs=3,
                      max_concurrent=2, data={"subset": 1500, "seed": 0},
                      final={"refit": True, "ensemble": 3, "tta": True})
    store = tmp_path / "store"
    t0 = time.monotonic()
    # 90 s: under a loaded suite Ray's start and the first trial's imports took the 36 s a
    # 60 s budget's search has, and no trial finished
    assert main(["run", str(spec), "--store", str(store), "--budget", "90s"]) == 0
    wall = time.monotonic() - t0
    assert wall < 90 + 20, wall
    client, parent, nested, study = records(store, "budget")
    trials = [r for r in nested if r.data.tags[tag.ROLE] == tag.TRIAL]
    finished = [r for r in trials if r.info.status == "FINISHED"]
    assert 0 < len(finished) < 40
    for r in finished:  # each fitted its schedule to the search's time left, and says where
        m = r.data.metrics
        assert 1 <= m["epochs"] <= m["schedule_epochs"] <= 3, m
        if r.data.tags[tag.STOP_REASON] == "max_epochs":
            assert m["epochs"] == m["schedule_epochs"], m
    assert "test/acc" in parent.data.metrics and parent.info.status == "FINISHED"
    # after the search: a refit and an ensemble under the parent, each evaluated on the test
    # set; the parent's test/acc is the final model's, named in its tags
    after = {r.data.tags[tag.ROLE]: r for r in nested if r.data.tags[tag.ROLE] != tag.TRIAL}
    assert set(after) == {tag.REFIT, tag.ENSEMBLE}, list(after)
    for r in after.values():
        assert r.info.status == "FINISHED" and 0 < r.data.metrics["test/acc"] <= 1
        assert r.data.tags[tag.SOURCE_RUN_ID] == parent.data.tags[tag.BEST_RUN_ID]
    assert int(after[tag.REFIT].data.params["train_images"]) > 1500  # train + val of the subset
    best = client.get_run(parent.data.tags[tag.BEST_RUN_ID])  # the refit runs its schedule
    assert after[tag.REFIT].data.params["max_epochs"] == str(
        int(best.data.metrics["schedule_epochs"]))
    final_run = parent.data.tags[tag.FINAL_RUN_ID]
    final_role = parent.data.tags[tag.FINAL]
    scored = {**{r.info.run_id: r for r in after.values()},
              parent.data.tags[tag.BEST_RUN_ID]: client.get_run(parent.data.tags[tag.BEST_RUN_ID])}
    assert scored[final_run].data.tags[tag.ROLE] == final_role
    assert parent.data.metrics["test/acc"] == scored[final_run].data.metrics["test/acc"]
    # chosen on the validation half that trained no refit and picked no member
    held = {rid: r.data.metrics[record.VAL_ACC_HELD] for rid, r in scored.items()
            if r.data.tags.get(tag.COMPLETE, "true") == "true"}
    assert held[final_run] == max(held.values()), held
    assert 0 < parent.data.metrics["sweep/wall_s"] <= wall
    epochs = sum(len(client.get_metric_history(r.info.run_id, "val/acc")) for r in trials)
    assert parent.data.metrics["sweep/train_images"] == (  # subset: per split; and the refit's
        epochs * 1500 + after[tag.REFIT].data.metrics["train_images"])
    assert (store / "reports" / "budget.html").is_file()
    md = (store / "reports" / "budget.md").read_text()  # the models side by side, final marked
    side = md.split("## After the search", 1)[1].split("## Trials", 1)[0]
    assert [ln.split("|")[1].strip() for ln in side.strip().splitlines()[2:]] == \
        ["trial", "refit", "ensemble"]
    assert sum(ln.rstrip(" |").endswith("yes") for ln in side.splitlines()) == 1
    assert parent.data.params["budget_s"] == "90.0"


def test_a_budget_fits_long_trials_to_its_time_and_gives_an_unfittable_refits_share_back(
        tmp_path, capsys):
    # trials of 500 epochs on a budget of 120 s: the first fits its epochs and its schedule to
    # the search's time (soft deadline at 70 s) and ends complete; its refit (on 1.5 times the
    # images) could not end within the 30 s kept for it, so the search gets that time instead
    # (30 s: a loaded machine's Tune restart and the first trial's last epoch leave it enough)
    import time

    spec = write_spec(tmp_path / "s.yaml", name="giveback", trials=10, max_epochs=500,
                      max_concurrent=1, data={"subset": 1500, "seed": 0},
                      fixed={"batch_size": 32, "schedule": "triangle", "early_stopping": False},
                      final={"refit": True, "ensemble": 0, "tta": False})
    store = tmp_path / "store"
    t0 = time.monotonic()
    assert main(["run", str(spec), "--store", str(store), "--budget", "120s"]) == 0
    wall = time.monotonic() - t0
    out = capsys.readouterr().out
    assert wall < 120 + 20, wall
    assert "refit would not end within the budget; its share goes to the search" in out, out
    client, parent, nested, study = records(store, "giveback")
    assert {r.data.tags[tag.ROLE] for r in nested} == {tag.TRIAL}, "no refit was started"
    finished = sorted((r for r in nested if r.info.status == "FINISHED"),
                      key=lambda r: float(r.data.tags[tag.TRIAL_END]))
    first = finished[0].data
    assert first.tags[tag.STOP_REASON] == "max_epochs"  # complete at its fitted end
    assert first.metrics["epochs"] == first.metrics["schedule_epochs"] < 500
    lrs = client.get_metric_history(finished[0].info.run_id, "lr")
    assert max(m.value for m in lrs) > 2 * lrs[-1].value  # annealed within its time
    # the share started another trial (whether it ends in 30 s depends on the machine's load:
    # a loaded one spends them on Tune's restart and the first epoch)
    later = [r for r in nested if r.info.start_time / 1000 >= float(first.tags[tag.TRIAL_END])]
    assert later, f"the refit's share ran more trials:\n{out}"
    assert "test/acc" in parent.data.metrics


def test_a_first_recipe_fills_a_time_budget_up_to_its_report(tmp_path, capsys):
    # the search's window of 90 s ends at 57.5 s (the refit's quarter kept); the first recipe,
    # its pace unknown, may take the time up to the report (82.5 s): it trains one long schedule
    # of what that time holds (or, on a machine fast enough for two or more, a part of it, and
    # the best configuration with the next seed the next part), each alone and fitted to end
    # there; the refit that could not fit after them is not started
    import time

    space = {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}
    spec = write_spec(tmp_path / "s.yaml", name="fill", trials=4, max_epochs=20, space=space,
                      max_concurrent=1, start_from="recipe", data={"subset": 1500, "seed": 0},
                      final={"refit": True, "ensemble": 0, "tta": False})
    store = tmp_path / "store"
    t0 = time.time()
    assert main(["run", str(spec), "--store", str(store), "--budget", "90s"]) == 0
    wall = time.time() - t0
    out = capsys.readouterr().out
    assert wall < 90 + 20, wall
    assert "policy: fill:" in out and "not started" in out, out
    client, parent, nested, study = records(store, "fill")
    assert {r.data.tags[tag.ROLE] for r in nested} == {tag.TRIAL}, "no refit"
    runs = sorted(nested, key=lambda r: float(r.data.tags[tag.TRIAL_START]))
    assert "fill:" in runs[0].data.tags[tag.POLICY], out
    for r in runs:  # each complete at its fitted end (or early stopping's: the recipe's
        m = r.data.metrics  # patience; the time it left goes to the next part), one by one; the
        # last may be cut by the window's hard end, where an epoch took far longer than the ones
        # it was fitted on (a loaded machine: 24 s after seven of 2 s)
        ends = ("max_epochs", "early_stop") + (("external",) if r is runs[-1] else ())
        assert r.data.tags[tag.STOP_REASON] in ends, out
        if r.data.tags[tag.STOP_REASON] == "max_epochs":
            assert m["epochs"] == m["schedule_epochs"], out
        assert r.data.params["learning_rate"] == runs[0].data.params["learning_rate"]
    for a, b in zip(runs, runs[1:], strict=False):
        assert float(b.data.tags[tag.TRIAL_START]) >= float(a.data.tags[tag.TRIAL_END])
        assert b.data.tags[tag.POLICY].startswith("ensemble"), out  # the next part
    assert float(runs[-1].data.tags[tag.TRIAL_END]) - t0 > 57.5 + 5, out  # past the window
    assert "test/acc" in parent.data.metrics


def test_a_two_family_sweep_starts_from_the_recipes_resumes_and_warms_a_later_one(tmp_path,
                                                                                  capsys):
    space = {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}
    spaces = {"lenet5": {"conv1": {"type": "int", "low": 4, "high": 16}},
              "mlp": {"units": {"type": "int", "low": 64, "high": 512},
                      "layers": {"type": "int", "low": 1, "high": 4}}}
    spec = write_spec(tmp_path / "s.yaml", name="two", family=["lenet5", "mlp"], trials=3,
                      max_epochs=1, space=space, spaces=spaces, start_from="recipe")
    store = tmp_path / "store"
    assert main(["run", str(spec), "--store", str(store)]) == 0
    assert "2 warm starts first: recipe 000-cnn5, recipe 002-mlp" in capsys.readouterr().out
    client, parent, nested, study = records(store, "two")
    own = {"lenet5": {"conv1"}, "mlp": {"units", "layers"}}
    by_number = {int(r.data.tags[tag.OPTUNA_TRIAL]): r for r in nested}
    assert sorted(by_number) == [0, 1, 2]
    for r in nested:  # each trial has its own family's knobs as params, not the other's
        fam = r.data.params["family"]
        assert own[fam] <= set(r.data.params) and not own[{"lenet5": "mlp",
                                                            "mlp": "lenet5"}[fam]] & set(
            r.data.params)
    # trial 0 is 000's CNN5 recipe as the write-up ran it (its preset, Adam 1e-3, batch 64,
    # no shuffling, patience 10), whatever the spec fixes or searches
    first = by_number[0]
    assert first.data.tags[tag.WARM_START] == "recipe 000-cnn5"
    p = first.data.params
    assert (p["family"], p["preset"], p["optimizer"], float(p["learning_rate"]),
            p["batch_size"], p["shuffle"], p["patience"]) == (
        "lenet5", "cnn5", "adam", 1e-3, "64", "False", "10")
    assert by_number[1].data.params["preset"] == "general_to_specific"
    md = (store / "reports" / "two.md").read_text()  # the report's table per family
    assert "## Per family" in md and "| lenet5 |" in md and "| mlp |" in md

    # the same sweep with more trials: the rest, no recipe again, nothing repeated
    assert main(["run", str(spec), "--store", str(store), "--trials", "4"]) == 0
    assert "warm start" not in capsys.readouterr().out
    _, _, nested, study = records(store, "two")
    assert len(nested) == 4 and len(study.trials) == 4
    assert sorted(int(r.data.tags[tag.OPTUNA_TRIAL]) for r in nested) == list(range(4))
    assert [r for r in nested if r.data.tags.get(tag.WARM_START)] and sum(
        bool(r.data.tags.get(tag.WARM_START)) for r in nested) == 2

    # a later sweep warm-started from this one begins with its best configuration
    later = write_spec(tmp_path / "later.yaml", name="later", family=["lenet5", "mlp"],
                       trials=1, max_epochs=1, space=space, spaces=spaces, warm_start=["two"])
    assert main(["run", str(later), "--store", str(store)]) == 0
    best = max((t for t in study.trials if t.value is not None), key=lambda t: t.value)
    _, _, runs, later_study = records(store, "later")
    assert later_study.trials[0].params == best.params
    assert runs[0].data.tags[tag.WARM_START] == f"sweep two trial {best.number}"


def test_a_compute_budget_ends_the_sweep_at_its_images_the_same_way_twice_and_resumes(
        tmp_path, capsys):
    # TPE (every shipped spec's sampler), seeded; 600 training images an epoch
    over = dict(name="compute", trials=10, max_epochs=2, max_concurrent=1,
                sampler={"type": "tpe", "seed": 3}, budget="9 epochs")

    def sweep(store, **more):
        spec = write_spec(tmp_path / f"{store}.yaml", **{**over, **more})
        assert main(["run", str(spec), "--store", str(tmp_path / store)]) == 0
        client, parent, nested, study = records(tmp_path / store, "compute")
        runs = sorted((r for r in nested if r.data.tags[tag.ROLE] == tag.TRIAL),
                      key=lambda r: int(r.data.tags[tag.OPTUNA_TRIAL]))
        epochs = [len(client.get_metric_history(r.info.run_id, "epoch_s")) for r in runs]
        keys = ("dropout", "learning_rate", "shuffle")
        return parent, [(_params(r, keys), e) for r, e in zip(runs, epochs, strict=True)]

    parent, first = sweep("a")
    # 9 epochs of 600 images hold 1.8 long schedules (2.5 x the spec's 2 epochs): two, the
    # first trial's of 4 epochs, then the best configuration with the next seed on the 5 left
    assert [e for _, e in first] == [4, 5] and first[1][0] == first[0][0]
    assert parent.data.metrics["sweep/budget_images"] == 5400
    assert parent.data.metrics["sweep/train_images"] == 5400
    out = capsys.readouterr().out
    assert "compute budget 5,400 training images (9 epochs of 600), 0 used" in out
    assert "this trial trains 4 epochs" in out and "one of 5 epochs, seed 1" in out
    _, _, runs, study = records(tmp_path / "a", "compute")
    assert [t.user_attrs.get("fmnist_schedule") for t in study.trials] == [4, 5]
    # each trial's planned schedule is on its Optuna trial: one killed before its first epoch
    # ended is started again on it (``resume.decide``), not on the spec's 2 epochs
    assert [t.user_attrs.get("fmnist_planned") for t in study.trials] == [4, 5]
    assert sweep("b")[1] == first  # the same decisions in another run: nothing timed
    parent, more = sweep("a", budget="11 epochs")  # the same sweep, given 2 epochs more
    # only the rest is spent: 2 epochs, no longer than the spec's schedule, another seed
    assert more[:2] == first and [e for _, e in more[2:]] == [2]
    assert parent.data.metrics["sweep/train_images"] == 6600
    # a long schedule leaves a schedule not the spec's alone under ASHA (whose max_t it passes);
    # the first trial, a recipe enqueued first, records the long schedule as its decision
    parent, longer = sweep("l", max_epochs=4, budget="5 epochs", start_from="recipe",
                           scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2})
    assert [e for _, e in longer] == [5] and parent.data.metrics["sweep/train_images"] == 3000
    _, _, (run,), study = records(tmp_path / "l", "compute")
    assert run.data.params["max_epochs"] == "5" and run.data.tags[tag.WARM_START]
    assert run.data.tags[tag.POLICY].startswith("explore: long schedule:"), run.data.tags
    # what it trained, kept for the refit's share in later commands (not the spec's 4 epochs)
    assert study.trials[0].user_attrs["fmnist_schedule"] == 5
    assert 1 <= study.trials[0].user_attrs["fmnist_best_epoch"] <= 5
    # a budget of more long schedules than FEW searches on the spec's schedule, with the
    # refit's share kept (a whole schedule's, then the best trial's; not a quarter of the
    # budget); the sweep's 2 trials end the search and the refit trains within the budget
    parent, searched = sweep("r", budget="25 epochs", trials=2,
                             final={"refit": True, "ensemble": 0, "tta": False})
    assert [e for _, e in searched] == [2, 2]
    client, _, nested, _ = records(tmp_path / "r", "compute")
    (refit,) = [r for r in nested if r.data.tags[tag.ROLE] == tag.REFIT]
    assert refit.data.tags[tag.COMPLETE] == "true", refit.data.tags
    assert "refit needs" in capsys.readouterr().out  # the policy said what it kept
    assert parent.data.metrics["sweep/train_images"] == 2400 + refit.data.metrics["train_images"]


def test_a_configuration_outside_the_constraints_is_measured_recorded_and_never_trained(
        tmp_path):
    # an MLP of 16 units has 12,730 parameters, one of 1,024 has 814,090: the bound is between
    spec = write_spec(tmp_path / "c.yaml", name="edge", family="mlp", trials=6, max_epochs=1,
                      max_concurrent=1, sampler={"type": "tpe", "seed": 0},
                      space={"units": {"type": "choice", "values": [16, 1024]}},
                      fixed={"layers": 1, "batch_size": 32},
                      constraints={"params": {"max": 100000}, "latency_ms": {"max": 1000}})
    assert main(["run", str(spec), "--store", str(tmp_path / "s")]) == 0
    client, parent, nested, study = records(tmp_path / "s", "edge")
    by_number = {int(r.data.tags[tag.OPTUNA_TRIAL]): r for r in nested}
    big = [n for n, r in by_number.items() if r.data.params["units"] == "1024"]
    small = [n for n, r in by_number.items() if r.data.params["units"] == "16"]
    assert big and small, "the seeded sampler proposed both sizes"
    for n in big:  # measured, recorded as infeasible, and no epoch trained
        r = by_number[n]
        assert r.info.status == "FINISHED"
        assert r.data.tags[tag.INFEASIBLE] == "params 8.141e+05 > max 100,000"
        assert r.data.metrics["cost/params"] == 814090 and "objective" not in r.data.metrics
        assert client.get_metric_history(r.info.run_id, "epoch_s") == []
        assert study.trials[n].constraints["params"] > 0  # the sampler knows the region
    for n in small:  # trained, with every cost recorded
        r = by_number[n]
        assert r.data.metrics["cost/params"] == 12730 and r.data.metrics["cost/macs"] > 0
        assert r.data.metrics["cost/latency_ms"] > 0 and r.data.metrics["cost/images_per_s"] > 0
        assert len(client.get_metric_history(r.info.run_id, "epoch_s")) == 1
        assert study.trials[n].constraints["params"] < 0
    assert int(by_number[small[0]].data.tags[tag.OPTUNA_TRIAL]) in small
    assert parent.data.tags[tag.BEST_RUN_ID] in {by_number[n].info.run_id for n in small}


def test_a_sweep_with_objectives_registers_its_front_with_aliases_and_predict_loads_each(
        tmp_path, capsys):
    import numpy as np
    from PIL import Image

    objectives = {"val/acc": "max", "params": "min", "latency_ms": "min"}
    spec = write_spec(tmp_path / "mo.yaml", name="mo", family="mlp", trials=6, max_epochs=3,
                      max_concurrent=1, sampler={"type": "tpe", "seed": 0},
                      scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 3},
                      space={"units": {"type": "choice", "values": [8, 32, 128, 512]}},
                      fixed={"layers": 1, "batch_size": 32}, objectives=objectives)
    store = tmp_path / "s"
    assert main(["run", str(spec), "--store", str(store)]) == 0
    client, parent, nested, study = records(store, "mo")
    from sweeps import spec as spec_

    keys = list(spec_.load(spec).objective_modes)  # the metric first, then the costs
    assert keys[0] == "val/acc" and set(keys[1:]) == {"cost/params", "cost/latency_ms"}
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    runs = {int(r.data.tags[tag.OPTUNA_TRIAL]): r for r in nested
            if r.data.tags.get(tag.ROLE) == tag.TRIAL}
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done
    for t in done:  # the study's values: the objective, then each cost as recorded
        m = runs[t.number].data.metrics
        assert t.values == [m["objective"], *(m[k] for k in keys[1:])]

    finished = [r for r in runs.values() if r.info.status == "FINISHED"]
    front = [r for r in finished if tag.FRONT in r.data.tags]
    assert front

    def point(r):
        m = r.data.metrics
        return (-m["objective"], m["cost/params"], m["cost/latency_ms"])

    for r in front:  # on the front: no finished trial at least as good on all and better on one
        assert not any(all(a <= b for a, b in zip(point(o), point(r), strict=True))
                       and point(o) != point(r) for o in finished)
        assert 0 < r.data.metrics["test/acc"] <= 1  # each evaluated on the test set once
    others = [r for r in finished if tag.FRONT not in r.data.tags]
    for r in others:  # off the front: dominated by one on it
        assert any(all(a <= b for a, b in zip(point(f), point(r), strict=True)) for f in front)

    model = client.get_registered_model("fmnist-mo")
    assert {"champion", "smallest", "fastest"} <= set(model.aliases)
    best = max(r.data.metrics["objective"] for r in front)
    near = [r for r in front if best - r.data.metrics["objective"] <= 0.01]
    smallest = client.get_model_version_by_alias("fmnist-mo", "smallest")
    assert smallest.run_id == min(near, key=lambda r: r.data.metrics["cost/params"]).info.run_id
    assert smallest.tags[tag.FRONT] == "true"
    assert {client.get_model_version("fmnist-mo", r.data.tags[tag.FRONT]).run_id
            for r in front} == {r.info.run_id for r in front}

    photo = tmp_path / "shirt.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(photo)
    capsys.readouterr()
    for alias in ("champion", "smallest", "fastest"):  # each alias loads and predicts
        assert main(["predict", str(photo), "--model", f"mo@{alias}", "--json",
                     "--store", str(store)]) == 0
    assert main(["predict", str(photo), "--model", "mo@slowest", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("fmnist-mo has no alias 'slowest'; it has champion, fastest, "
                            "smallest"), err
