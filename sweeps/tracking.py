"""MLflow: where records go and how a run is written.

One store root (default ``./mlruns``): MLflow at ``sqlite:///<abs>/mlruns/mlflow.db`` with
artifacts in ``<abs>/mlruns/artifacts/``, Optuna at ``sqlite:///<abs>/mlruns/optuna.db``, Ray
Tune state in ``<abs>/mlruns/ray/``. Paths are absolute because Ray moves trials' working
directory. Only the driver writes here.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Store:
    root: Path
    tracking_uri: str
    artifact_root: Path
    optuna_url: str
    ray_dir: Path


def store(root: str | os.PathLike[str] | None = None, tracking_uri: str | None = None,
          storage: str | None = None) -> Store:
    """The store under ``root`` (default ``$FMNIST_STORE`` or ``./mlruns``); URLs may override
    the MLflow tracking URI and the Optuna storage."""
    base = Path(root or os.environ.get("FMNIST_STORE") or "mlruns").expanduser().resolve()
    return Store(
        root=base,
        tracking_uri=tracking_uri or f"sqlite:///{base / 'mlflow.db'}",
        artifact_root=base / "artifacts",
        optuna_url=storage or f"sqlite:///{base / 'optuna.db'}",
        ray_dir=base / "ray",
    )


def client(st: Store):
    from mlflow.tracking import MlflowClient

    if st.tracking_uri.startswith("sqlite:///"):
        st.root.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=st.tracking_uri)


def experiment_id(st: Store, name: str) -> str:
    c = client(st)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=(st.artifact_root / name).as_uri())


def _param_value(v: Any) -> str:
    return str(v)[:6000]


def log_history(c, run_id: str, history: Iterable[Mapping[str, float]]) -> None:
    """Per-epoch metrics, step = epoch."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(h["epoch"]))
               for h in history for k, v in h.items() if k != "epoch"]
    for i in range(0, len(metrics), 1000):
        c.log_batch(run_id, metrics=metrics[i:i + 1000])


def log_single_run(st: Store, experiment: str, params: Mapping[str, Any],
                   history: list[dict[str, float]], final: Mapping[str, float],
                   model: Any = None, tags: Mapping[str, str] | None = None) -> str:
    """One finished training run: params, per-epoch history, final metrics, the model."""
    from mlflow.entities import Metric, Param, RunTag

    c = client(st)
    run = c.create_run(experiment_id(st, experiment), tags=dict(tags or {}))
    rid = run.info.run_id
    c.log_batch(rid, params=[Param(k, _param_value(v)) for k, v in sorted(params.items())])
    log_history(c, rid, history)
    now = int(time.time() * 1000)
    c.log_batch(rid, metrics=[Metric(k, float(v), now, 0) for k, v in final.items()],
                tags=[RunTag("fmnist.kind", "train")])
    if model is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            model.save(path)
            c.log_artifact(rid, str(path), "model")
    c.set_terminated(rid, "FINISHED")
    return rid
