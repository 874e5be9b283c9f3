from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.cli import main
from tests.sweeps.helpers import NATIVE_LOG


def test_train_command_records_one_mlflow_run_with_history_and_test_scores(tmp_path, capsys):
    from mlflow.tracking import MlflowClient  # here: `make test-fast` imports this module too

    store = tmp_path / "store"
    rc = main(["train", "lenet5", "--epochs", "2", "--subset", "600", "--store", str(store),
               "--set", "batch_size=32", "--set", "dropout=0.3", "--set", "shuffle=false"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "epoch   2" in out and "test/acc" in out
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("train")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["family"] == "lenet5"
    assert run.data.params["batch_size"] == "32" and run.data.params["dropout"] == "0.3"
    assert run.data.params["shuffle"] == "False"
    hist = client.get_metric_history(run.info.run_id, "val/acc")
    assert [m.step for m in hist] == [1, 2]
    assert run.data.metrics["val/acc_best"] == max(m.value for m in hist)
    assert 0.0 <= run.data.metrics["test/acc"] <= 1.0
    assert "test/f1/ankle_boot" in run.data.metrics
    assert f"test/acc {run.data.metrics['test/acc']:.4f}" in out
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "model")]
    assert arts == ["model/model.keras"]


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "lenet5", "--set", "dropout"], "--set 'dropout': must be key=value"),
    (["train", "lenet5", "--set", "dropout=2"],
     "lenet5: hyperparameter `dropout` must be a number in [0, 0.9], but got 2."),
    (["train", "lenet", "--epochs", "1"], "unknown model family 'lenet' (did you mean 'lenet5'?)"),
    (["train", "lenet5", "--set", "optimiser=sgd"],
     "lenet5: unknown hyperparameter `optimiser` (did you mean 'optimizer'?)"),
])
def test_train_command_bad_input_exits_2_with_one_line_and_writes_nothing(
        tmp_path, capsys, argv, message):
    store = tmp_path / "store"
    assert main([*argv, "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not store.exists()



def test_train_prints_no_native_tensorflow_log_lines_unless_debug(tmp_path):
    cli = str(Path(sys.executable).with_name("fmnist-sweep"))
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                             "FMNIST_DEBUG")}
    args = ["train", "lenet5", "--epochs", "1", "--subset", "300", "--store",
            str(tmp_path / "store")]
    quiet = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "epoch   1" in quiet.stdout
    assert not NATIVE_LOG.search(quiet.stdout + quiet.stderr), quiet.stderr
    debug = subprocess.run([cli, "--debug", *args], env=env, capture_output=True, text=True,
                           timeout=300)
    assert debug.returncode == 0 and NATIVE_LOG.search(debug.stderr), "--debug shows them"
