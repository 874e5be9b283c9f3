"""What a user watching a sweep sees: each epoch of each running trial, as it comes.

On a terminal a live table (rich): one row per running trial with its epoch i/N, val/acc and
seconds per epoch, under it the trials done and failed, the best so far and an ETA counted in
epochs. Elsewhere (cron, CI, a pipe) one plain line per epoch report. The driver's other lines
(trials started and ended, warnings) go above the table, or between the epoch lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass
class _Running:
    number: int | None
    epoch: int = 0
    val_acc: float | None = None
    epoch_s: float | None = None
    last: int | None = None  # its last epoch, where a budget moved it from the spec's
    at: float = 0.0  # the clock when its latest epoch (or its start) came in
    images_per_s: float | None = None  # its latest epoch's


class Progress:
    """The sweep's state as the recorder sees it, and the ETA: the epochs the sweep may still
    run (every running trial to its last epoch, every trial not started yet in full: an upper
    bound, early stopping and the scheduler cut it) at the rate epochs have come in so far."""

    def __init__(self, trials: int, max_epochs: int, metric: str, done: int = 0,
                 budget_s: float | None = None, clock: Callable[[], float] = time.monotonic,
                 n_train: int = 0, compute_epochs: float | None = None):
        self.trials, self.max_epochs, self.metric = trials, max_epochs, metric
        self.n_train = n_train  # training images an epoch
        self.compute_epochs = compute_epochs  # a compute budget's epochs left for the search
        self.done, self.failed, self.best = done, 0, None
        self.budget_s, self.clock = budget_s, clock
        self.running: dict[str, _Running] = {}
        self.epochs_now = 0  # epoch reports received by this process
        self.t0 = clock()

    # the recorder's events
    def started(self, trial_id: str, number: int | None, epoch: int = 0,
                last: int | None = None) -> None:
        """A trial started (going on after ``epoch``), planned to end at epoch ``last``
        (None: the spec's max_epochs, until its reports say)."""
        self.running[trial_id] = _Running(number, epoch, last=last, at=self.clock())

    def epoch(self, trial_id: str, m: dict[str, Any]) -> str:
        r = self.running.setdefault(trial_id, _Running(None))
        r.epoch, r.val_acc, r.epoch_s = int(m["epoch"]), m.get("val/acc"), m.get("epoch_s")
        r.last = int(m["max_epochs"]) if m.get("max_epochs") else r.last
        r.at, r.images_per_s = self.clock(), m.get("images_per_s") or r.images_per_s
        self.epochs_now += 1
        return (f"{self.summary()} trial {self._name(trial_id)} epoch {r.epoch}/"
                f"{self._last(r)} val/acc {_f(r.val_acc)} {_f(r.epoch_s, '.1f')}s/epoch")

    def ended(self, trial_id: str, value: float | None = None, failed: bool = False,
              mode: str = "max") -> None:
        self.running.pop(trial_id, None)
        self.done += 1
        self.failed += failed
        if value is not None and (self.best is None or (value > self.best if mode == "max"
                                                         else value < self.best)):
            self.best = value

    # what is shown
    def eta_s(self) -> float | None:
        if not self.epochs_now:
            return None
        not_started = max(0, self.trials - self.done - len(self.running))
        left = (sum(self._last(r) - r.epoch for r in self.running.values())
                + not_started * self.max_epochs)
        return left * (self.clock() - self.t0) / self.epochs_now

    def in_epoch(self, r: _Running) -> str:
        """How far its current epoch has come, estimated at its latest epoch's pace (trials
        report at an epoch's end): "~40%"; "-" before its first epoch's pace is known."""
        if not r.images_per_s or not self.n_train:
            return "-"
        done = min(1.0, (self.clock() - r.at) * r.images_per_s / self.n_train)
        return f"~{100 * done:.0f}%"

    def _last(self, r: _Running) -> int:
        return r.last or self.max_epochs

    def summary(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4f}"
        tail = ""
        if self.compute_epochs is not None:
            tail = f", compute left {max(0.0, self.compute_epochs - self.epochs_now):.0f} epochs"
        if self.budget_s:
            tail += f", budget left {_duration(self.budget_s - (self.clock() - self.t0))}"
        elif self.compute_epochs is None and (eta := self.eta_s()) is not None:
            tail = f", eta <= {_duration(eta)}"
        return (f"[{self.done}/{self.trials} done, {len(self.running)} running, "
                f"{self.failed} failed; best {self.metric} {best}{tail}]")

    def table(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        t = Table(expand=False)
        for col in ("trial", "epoch", "next epoch", "val/acc", "s/epoch"):
            t.add_column(col, justify="right" if col != "trial" else "left")
        for tid, r in self.running.items():
            t.add_row(self._name(tid), f"{r.epoch}/{self._last(r)}", self.in_epoch(r),
                      _f(r.val_acc), _f(r.epoch_s, ".1f"))
        return Group(t, Text(self.summary()))

    def _name(self, trial_id: str) -> str:
        number = self.running[trial_id].number if trial_id in self.running else None
        return trial_id if number is None else f"{number} ({trial_id})"


class Display:
    """Shows a ``Progress``: a live table on a terminal, else a line per epoch report."""

    def __init__(self, progress: Progress, say: Callable[[str], None],
                 stream: TextIO | None = None, live: bool | None = None):
        self.progress, self.say = progress, say
        stream = stream or sys.stdout
        self.live = None
        if live if live is not None else stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(progress.table(), console=Console(file=stream, force_terminal=True),
                             refresh_per_second=2, redirect_stdout=True, redirect_stderr=True,
                             get_renderable=progress.table)

    def __enter__(self) -> Display:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()

    def epoch(self, trial_id: str, m: dict[str, Any]) -> None:
        line = self.progress.epoch(trial_id, m)
        if self.live is None:
            self.say(line)

    def note(self, text: str) -> None:
        """A trial started or ended, or anything else worth a line."""
        self.say(f"{self.progress.summary()} {text}")


def _f(v: float | None, fmt: str = ".4f") -> str:
    return "-" if v is None else format(v, fmt)


def _duration(s: float) -> str:
    s = max(0.0, s)
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"
