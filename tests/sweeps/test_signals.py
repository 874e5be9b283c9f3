"""Unit tier: how a sweep's process takes SIGINT and SIGTERM (sweeps/signals.py), with real
signals to this process and to a small child process; no Ray, no training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sweeps import signals

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_first_signal_calls_tunes_graceful_stop_and_is_remembered(sig):
    stopped, said, tune_calls = [], [], []
    before = signal.getsignal(sig)
    with signals.stop_on_signals(stopped, said.append):
        signal.signal(signal.SIGUSR1, lambda s, f: tune_calls.append(s))  # as Tune's loop does
        os.kill(os.getpid(), sig)
    assert stopped == [sig] and tune_calls == [sig]
    assert said == [f"{signal.Signals(sig).name}: stopping; running trials keep their last "
                    f"saved epoch (a second signal stops at once)"]
    assert signal.getsignal(sig) is before, "the handler before it is put back"
    assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"


def test_a_signal_before_tunes_loop_is_a_keyboard_interrupt():
    stopped: list[int] = []
    with pytest.raises(KeyboardInterrupt), signals.stop_on_signals(stopped, lambda s: None):
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped == [signal.SIGTERM]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_exits_with_the_shells_code(sig, code):
    with pytest.raises(signals.Interrupted) as e:
        signals.interrupt(sig, None)
    assert e.value.exit_code == code and str(e.value) == signal.Signals(sig).name


SECOND_SIGNAL = """
import signal, subprocess, sys, time
from sweeps import signals
stopped = []
with signals.stop_on_signals(stopped, lambda s: print(s, flush=True)):
    signal.signal(signal.SIGUSR1, lambda s, f: None)  # Tune's loop, which keeps running
    child = subprocess.Popen(["sleep", "60"])
    grandchild = subprocess.Popen(["sh", "-c", "sleep 60 & wait"])
    print(child.pid, grandchild.pid, flush=True)
    time.sleep(60)
"""


def test_a_second_signal_kills_every_descendant_and_exits_at_once():
    proc = subprocess.Popen([sys.executable, "-c", SECOND_SIGNAL], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    time.sleep(0.2)  # the shell has started its own sleep
    below = _all_descendants(proc.pid)
    assert set(pids) <= set(below) and len(below) >= 3
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline().startswith("SIGTERM: stopping")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130 and time.monotonic() - t0 < 5
    assert "stopped at once; the same command resumes" in proc.stderr.read()
    time.sleep(0.2)
    assert not [p for p in below if _alive(p)], "no process left behind"


def _all_descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(
                        int(entry))
            except OSError:
                continue
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
