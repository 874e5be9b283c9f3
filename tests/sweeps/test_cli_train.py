from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from sweeps.cli import main


def test_train_command_records_one_mlflow_run_with_history_and_test_scores(tmp_path, capsys):
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
