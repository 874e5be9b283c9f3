"""A sweep recorded by an earlier version of the tool (main at c728dc0, before the record and the
budget were typed) is read, resumed and reported by this one: the records' format is the same.
The earlier code runs from the repository's own history (``git archive``), in a subprocess, with
the same packages; it is killed mid-trial, and this version's same command finishes the sweep."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from tests.sweeps.helpers import records, write_spec

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BEFORE = "c728dc0"  # main before issue 32


def _checkout(commit: str, into: Path) -> Path:
    archive = into / "old.tar"
    with open(archive, "wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", commit, "fmnist", "sweeps"],
                       stdout=f, check=True)
    with tarfile.open(archive) as t:
        t.extractall(into / "old", filter="data")
    return into / "old"


def _env(code: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FMNIST_DEBUG", "PYTHONPATH")}
    if code is not None:
        env["PYTHONPATH"] = str(code)  # before the installed (this) version
    return env


def _run(code: Path | None, *args: str, cwd: Path) -> subprocess.Popen:
    # run from ``cwd``, not the repository: `python -m` puts its folder first on the path
    return subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args], env=_env(code),
                            cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_a_sweep_the_earlier_version_recorded_is_resumed_and_reported_by_this_one(tmp_path):
    old = _checkout(BEFORE, tmp_path)
    spec = write_spec(tmp_path / "s.yaml", name="old", trials=2, max_epochs=3,
                      max_concurrent=1)
    store = tmp_path / "store"
    first = _run(old, "run", str(spec), "--store", str(store), cwd=tmp_path)
    seen: list[str] = []
    hit = threading.Event()

    def read():
        for line in first.stdout:
            seen.append(line)
            if re.search(r"trial 1 \(\w+\) epoch 1/3 ", line):
                hit.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert hit.wait(300), "".join(seen)[-3000:]
    os.killpg(first.pid, signal.SIGKILL)  # mid-trial: an interrupted trial, a saved epoch
    first.wait(timeout=60)
    reader.join(timeout=30)
    which = subprocess.run([sys.executable, "-c", "import sweeps; print(sweeps.__file__)"],
                           env=_env(old), cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout
    assert which.startswith(str(old)), which  # the earlier version ran, not this one
    assert "budget.py" not in {p.name for p in (old / "sweeps").iterdir()}

    again = _run(None, "run", str(spec), "--store", str(store), cwd=tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert "resuming, 1 of 2 trials done" in out, out
    # killed after its first epoch's line was read; on a loaded machine its second epoch may have
    # been saved before the kill landed: either way it goes on from a saved epoch, not epoch 0
    assert re.search(r"resume: trial 1 was interrupted; it goes on after epoch [12]\b", out), out
    assert "final model: the trial's, test/acc" in out, out

    client, parent, nested, study = records(store, "old")
    assert len(nested) == 2 and all(r.info.status == "FINISHED" for r in nested)
    for r in nested:  # each epoch once, the one the earlier version logged included
        assert [m.step for m in client.get_metric_history(r.info.run_id, "val/acc")] == [1, 2, 3]
    assert 0.0 < parent.data.metrics["test/acc"] <= 1.0
    from sweeps.cli import main

    assert main(["report", "old", "--store", str(store)]) == 0
    assert (store / "reports" / "old.md").is_file()
