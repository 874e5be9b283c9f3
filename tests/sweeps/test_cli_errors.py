"""Bad input and bugs end differently: a user error is one line and exit 2, anything else a
traceback and exit 1 (a real `fmnist-sweep run` process, a library call made to fail)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.sweeps.helpers import write_spec

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


def test_a_user_error_in_the_same_place_is_one_line_and_exit_2(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="user", trials=1, max_epochs=1,
                      space={"dropout": {"type": "uniform", "low": 0.5, "high": 0.1}})
    done = subprocess.run([sys.executable, "-m", "sweeps.cli", "run", str(spec), "--store",
                           str(tmp_path / "store")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmnist-sweep run: error: ") and \
        "space.dropout" in lines[0], lines
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("spec_over,flags,said", [
    ({"warm_start": ["nosuch"]}, [], "warm_start: no sweep 'nosuch'"),
    ({}, ["--storage", "postgresql://u:secret@127.0.0.1:1/x"], "--storage postgresql://u:***@"),
    ({}, ["--tracking-uri", "postgresql://u:secret@127.0.0.1:1/x"], "--tracking-uri "),
    ({}, ["--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers"),
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
