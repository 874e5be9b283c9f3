"""Bad input and bugs end differently: a user error is one line and exit 2, anything else a
traceback and exit 1 (a real `fmnist-sweep run` process, a library call made to fail)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from sweeps.cli import main
from tests.sweeps.helpers import write_spec
from tests.sweeps.test_families import _two
from tests.sweeps.test_spec import _with

RUN = """
import sys

import pytest
from sweeps import tracking
def broken(st):
    raise ValueError("a library's own ValueError, not the user's")
tracking.check_separate_databases = broken
from sweeps.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_an_internal_value_error_is_a_bug_with_its_traceback_and_exit_1(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="bug", trials=1, max_epochs=1)
    store = tmp_path / "store"
    done = subprocess.run([sys.executable, "-c", RUN, "run", str(spec), "--store", str(store),
                           "--subset", "100"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().endswith("ValueError: a library's own ValueError, not the user's")


@pytest.mark.parametrize("spec_over,flags,said", [
    ({"warm_start": ["nosuch"]}, [], "warm_start: no sweep 'nosuch'"),
    ({}, ["--storage", "postgresql://u:secret@127.0.0.1:1/x"], "--storage postgresql://u:***@"),
    ({}, ["--tracking-uri", "postgresql://u:secret@127.0.0.1:1/x"], "--tracking-uri "),
    ({}, ["--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers"),
    ({"constraints": {"latency": {"max": 1}}}, [],
     "s.yaml: constraints.latency: unknown key (did you mean 'latency_ms'?)"),
])
def test_bad_input_is_said_before_the_store_folder_is_made(tmp_path, capsys, spec_over, flags,
                                                           said):
    from sweeps.cli import main

    spec = write_spec(tmp_path / "s.yaml", trials=1, max_epochs=1, **spec_over)
    store = tmp_path / "store"
    assert main(["run", str(spec), "--store", str(store), "--subset", "100", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0] and "secret" not in err[0], err
    assert not store.exists()  # nothing created: no folder, no database


# ---------------------------------------------------------------- `run` refuses bad input
# (from test_spec.py and test_families.py: `run` imports the runner, and with it Ray and
# MLflow, before it reads the spec, so these are not the unit tier)


def test_run_with_a_bad_spec_exits_2_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("space.dropout", {"type": "uniform", "low": 0.6,
                                                          "high": 0.2})))
    store = tmp_path / "store"
    assert main(["run", str(bad), "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "space.dropout: low < high must hold" in err[0]
    assert err[0].startswith("fmnist-sweep run: error: "), err  # a bug's ends in a traceback
    assert not store.exists()


def test_run_with_a_bad_store_url_exits_2(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(_with("data", {"subset": 100})))
    assert main(["run", str(spec), "--store", str(tmp_path / "st"),
                 "--storage", "nosuchdb://x/y"]) == 2
    err = capsys.readouterr().err
    assert "--storage nosuchdb://x/y: cannot open the Optuna storage" in err


def test_run_with_a_bad_override_exits_2_and_writes_nothing(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", "search_spaces/minivgg.yaml", "--trials", "0",
                 "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "search_spaces/minivgg.yaml: trials: must be an integer >= 1, but got 0.")
    assert not store.exists()


def test_an_unknown_warm_start_sweep_exits_2_and_writes_nothing(tmp_path, capsys):
    import optuna

    store = tmp_path / "st"
    store.mkdir()
    earlier = optuna.create_study(study_name="first", storage=f"sqlite:///{store / 'optuna.db'}")
    earlier.enqueue_trial({"family": "mlp"})  # the store's other sweep, which must stay as it is
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(_two(warm_start=["nosuch"], data={"subset": 100})))
    assert main(["run", str(spec), "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: {spec}: warm_start: no sweep 'nosuch'" in err[0], err
    summaries = optuna.get_all_study_summaries(f"sqlite:///{store / 'optuna.db'}")
    assert [(s.study_name, s.n_trials) for s in summaries] == [("first", 1)]
    assert sorted(p.name for p in store.iterdir()) == ["optuna.db"]  # no MLflow store made
