"""Shared fixtures. The real Fashion-MNIST files come from the project's data-directory setting
(``FMNIST_DATA_DIR``; CI points it at ``../shared/data/fashion-mnist``), downloaded if missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SHARED = REPO.parent / "shared" / "data" / "fashion-mnist"
if "FMNIST_DATA_DIR" not in os.environ and _SHARED.is_dir():
    os.environ["FMNIST_DATA_DIR"] = str(_SHARED)


# the modules whose end-to-end tests share a module fixture too costly to build on each worker
ONE_WORKER = ("tests.sweeps.test_cluster",  # a cluster of two Ray nodes
              "tests.sweeps.test_predict")  # a lenet5 trained on 48,000 images


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite on several pytest-xdist workers (``--dist loadgroup``); a
    group of tests runs on one worker, one after another. The readers of ``finished_store``
    are one group (its sweeps run once), so are the tests on the PostgreSQL server (one of them
    stops it), and so is each module of ``ONE_WORKER`` (its tests share a costly module
    fixture); every other end-to-end test runs alone, wherever a worker is free; a unit module
    runs as one. The shared store's readers go first, then the other end-to-end tests
    (``--no-loadscope-reorder`` keeps this order), so the long ones start at once and the unit
    tests fill the gaps. Of the end-to-end tests, the groups go first, the longest first (the
    PostgreSQL server's, of about 500 s, beside the shared store's), then the modules of
    ``ONE_WORKER``. Without xdist the groups are inert."""
    def group(item) -> str | None:
        if "finished_store" in item.fixturenames:
            return "finished_store"
        if {"pg_urls", "pg_secret_urls", "own_pg"} & set(item.fixturenames):
            return "postgresql"
        module = item.module.__name__
        return None if item.get_closest_marker("slow") and module not in ONE_WORKER else module

    def order(item) -> int:  # the longest groups first, so that none starts last
        if "finished_store" in item.fixturenames or group(item) == "postgresql":
            return 0
        if item.module.__name__ in ONE_WORKER:
            return 1
        return 2 if item.get_closest_marker("slow") else 3

    items.sort(key=order)  # stable: collection order within each
    for item in items:
        name = group(item)
        if name is not None:
            item.add_marker(pytest.mark.xdist_group(name))


@pytest.fixture(scope="session")
def data_root() -> Path:
    from fmnist import data

    return data.ensure()


@pytest.fixture(scope="session")
def arrays(data_root):
    from fmnist import data

    return data.load_arrays(data_root, download=False)


@pytest.fixture(scope="session")
def split(data_root):
    from fmnist import data

    return data.load_split(data_root, val_fraction=0.2, seed=0)


@pytest.fixture(scope="session")
def finished_store(tmp_path_factory, data_root):
    """A store of two finished sweeps, shared by the tests that only read one: rep-lenet5 (4
    trials of lenet5 on a step schedule, run in this process, then run again, a no-op, then
    listed) and rep-mlp (2 trials of mlp, run twice by deploy/cron/run-sweep.sh). Every change
    to the store is made here, the newer champion version test_predict checks included; what
    each command said and the records as its first run left them are kept for the tests:
    test_runner's end-to-end records, test_report, test_predict's registered model and
    test_deploy's cron script."""
    import contextlib
    import io
    import subprocess
    from types import SimpleNamespace

    import ray
    from mlflow.tracking import MlflowClient

    from sweeps import final, tracking
    from sweeps.cli import main
    from tests.sweeps.helpers import records, write_spec

    tmp = tmp_path_factory.mktemp("finished")
    store = tmp / "store"
    lenet5 = write_spec(tmp / "rep-lenet5.yaml", name="rep-lenet5",
                        fixed={"batch_size": 32, "schedule": "step", "step_epochs": 1},
                        sampler={"type": "cmaes", "seed": 1})

    def said(argv: list[str]) -> tuple[int, str]:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            rc = main(argv)
        return rc, out.getvalue()

    started = not ray.is_initialized()  # else a module's own (tests/sweeps/test_runner.py's)
    try:
        first = said(["run", str(lenet5), "--store", str(store)])
    finally:
        if started:
            ray.shutdown()
    first_records = records(store, "rep-lenet5")
    again = said(["run", str(lenet5), "--store", str(store)])
    listed = said(["list", "--store", str(store)])

    # the samplers and the scheduler no other sweep of the suite runs: quasi-random (QMC) and
    # the median stopping rule here, CMA-ES below
    mlp = write_spec(tmp / "rep-mlp.yaml", name="rep-mlp", family="mlp", trials=2, space={
        "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "layers": {"type": "int", "low": 1, "high": 3}}, sampler={"type": "qmc", "seed": 1},
        scheduler={"type": "median", "grace_period": 1})
    cron = [str(REPO / "deploy" / "cron" / "run-sweep.sh"), str(mlp), "--store", str(store)]
    cron_first = subprocess.run(cron, capture_output=True, text=True, timeout=400)
    cron_records = records(store, "rep-mlp") if cron_first.returncode == 0 else None
    # the schedule's next run of the same command (in this process: the script only execs it)
    cron_again = said(["run", str(mlp), "--store", str(store)])

    # a newer final model of rep-lenet5's name: a new version, the alias moved to it
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("fmnist-rep-lenet5", "champion")
    newer = final.register_champion(tracking.store(store), "rep-lenet5",
                                    f"runs:/{champion.run_id}/model")
    return SimpleNamespace(
        root=store, lenet5="rep-lenet5", mlp="rep-mlp", lenet5_spec=lenet5,
        first=first, first_records=first_records, again=again, listed=listed,
        cron=(cron_first, cron_again), cron_records=cron_records,
        champion=champion, newer=newer,
        champion_after=client.get_model_version_by_alias("fmnist-rep-lenet5", "champion"))
