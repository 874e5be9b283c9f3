from __future__ import annotations

from pathlib import Path

import optuna
import yaml
from mlflow.tracking import MlflowClient


def write_spec(path: Path, **over) -> Path:
    spec = {
        "name": "tiny", "family": "lenet5", "trials": 4, "max_epochs": 2,
        "sampler": {"type": "random", "seed": 1}, "scheduler": {"type": "fifo"},
        "resources": {"cpu": 1}, "max_concurrent": 2, "data": {"subset": 600, "seed": 0},
        "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
                  "shuffle": {"type": "choice", "values": [True, False]},
                  "dropout": {"type": "uniform", "low": 0.1, "high": 0.5}},
        "fixed": {"batch_size": 32},
    }
    spec.update(over)
    path.write_text(yaml.safe_dump(spec))
    return path


def records(store: Path, name: str):
    """(client, parent run, nested runs, study) read back from the real stores."""
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
