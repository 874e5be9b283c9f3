"""Signals: SIGINT and SIGTERM stop a sweep cleanly, its records kept for the resume."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable


class Interrupted(Exception):
    """A signal stopped the sweep; every record is kept as a kill leaves it, for the resume."""

    def __init__(self, signum: int, *, done: int | None = None, trials: int | None = None,
                 name: str | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.done = done  # trials done, where the sweep had started them
        self.trials = trials
        self.name = name  # the sweep's name
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


@contextlib.contextmanager
def stop_on_signals(stopped: list[int], say: Callable[[str], None]):
    """SIGINT and SIGTERM stop the sweep the way Tune stops on Ctrl-C: its loop ends, running
    trials are stopped, and nobody is told they finished, so Optuna and MLflow hold them as
    running and the resume goes on with each from its last saved epoch. A second signal exits
    at once, which the resume handles as it handles a kill. (Tune's own SIGINT handler is off;
    its SIGUSR1 handler, which it always installs, is the graceful stop this calls.)"""
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"

    def handler(signum, frame):
        if stopped:
            os.write(2, b"fmnist-sweep: stopped at once; the same command resumes\n")
            kill_descendants()  # the local Ray this process started, its agents included
            os._exit(128 + signum)
        stopped.append(signum)
        say(f"{signal.Signals(signum).name}: stopping; running trials keep their last saved "
            f"epoch (a second signal stops at once)")
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if not callable(tune_stop):  # Tune's loop has not started yet
            raise KeyboardInterrupt
        tune_stop(signum, frame)

    before = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    before[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # Tune sets its own
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def kill_descendants() -> None:
    """SIGKILL every process below this one (Linux: from ``/proc``; elsewhere nothing)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    todo, found = [os.getpid()], []
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def interrupt(signum, frame):
    """A signal handler for the phases outside Tune's loop: the command ends with the
    signal's exit code, through the same path as a stop during the loop."""
    raise Interrupted(signum)
