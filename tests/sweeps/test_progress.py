"""The progress a user watching a sweep sees: made-up events, no sweep (milliseconds)."""

from __future__ import annotations

import io

import pytest

from sweeps import progress

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _epoch(n, acc=0.8, s=2.0):
    return {"epoch": n, "val/acc": acc, "epoch_s": s}


def test_each_epoch_report_is_one_plain_line_with_trial_epoch_and_val_acc():
    lines = []
    clock = Clock()
    p = progress.Progress(trials=4, max_epochs=10, metric="val/acc", clock=clock)
    with progress.Display(p, lines.append, stream=io.StringIO(), live=False) as d:
        p.started("a1", 0)
        d.note("started a1")
        clock.now += 4
        d.epoch("a1", _epoch(1, 0.7123, 4.0))
        clock.now += 4
        d.epoch("a1", _epoch(2, 0.7456, 4.0))
    assert len(lines) == 3
    assert lines[1].endswith("trial 0 (a1) epoch 1/10 val/acc 0.7123 4.0s/epoch")
    assert lines[2].startswith("[0/4 done, 1 running, 0 failed; best val/acc -, eta <= ")


def test_a_trial_fitted_to_a_budget_shows_and_counts_its_own_last_epoch():
    clock = Clock()
    p = progress.Progress(trials=1, max_epochs=20, metric="val/acc", clock=clock)
    p.started("a", 0)
    clock.now += 10
    assert "epoch 1/20 " in p.epoch("a", _epoch(1))  # time for all 20 so far
    clock.now += 10
    assert "epoch 2/6 " in p.epoch("a", {**_epoch(2), "max_epochs": 6})  # the budget's fit
    assert p.eta_s() == (6 - 2) * 10
    assert "epoch 3/6 " in p.epoch("a", _epoch(3))  # kept until moved again


def test_a_trial_going_on_for_its_last_epoch_shows_its_own_schedule_not_the_specs():
    # a long schedule (60 epochs, the spec's 20) interrupted after epoch 59: its one epoch
    # left comes with its final report; the line says 60/60, not 60/20
    p = progress.Progress(trials=1, max_epochs=20, metric="val/acc", clock=Clock())
    p.started("a", 2, epoch=59, last=60)
    assert "epoch 60/60 " in p.epoch("a", _epoch(60))
    assert p.eta_s() == 0


def test_eta_counts_the_epochs_left_at_the_rate_epochs_came_in():
    clock = Clock()
    p = progress.Progress(trials=3, max_epochs=10, metric="val/acc", done=1, clock=clock)
    assert p.eta_s() is None  # no epoch yet: no rate
    p.started("a", 1)
    p.started("b", 2, epoch=4)  # a trial going on after its epoch 4
    clock.now += 30
    p.epoch("a", _epoch(1))
    p.epoch("b", _epoch(5))
    p.epoch("a", _epoch(2))
    # 3 epochs in 30 s; left: a 8, b 5, nobody waiting (1 done + 2 running of 3)
    assert p.eta_s() == (8 + 5) * 10
    p.ended("b", 0.9)
    assert p.best == 0.9 and p.done == 2
    assert p.eta_s() == 8 * 10  # all three trials are started or done
    p.ended("a", failed=True)
    assert (p.done, p.failed, p.best) == (3, 1, 0.9)
    assert "eta <= 0s" in p.summary()


def test_the_best_follows_the_mode_and_the_budget_replaces_the_eta():
    clock = Clock()
    p = progress.Progress(trials=5, max_epochs=3, metric="val/loss", budget_s=600, clock=clock)
    p.ended("a", 0.5, mode="min")
    p.ended("b", 0.7, mode="min")
    clock.now += 120
    assert p.best == 0.5
    assert p.summary() == "[2/5 done, 0 running, 0 failed; best val/loss 0.5000, budget left 8m]"


def test_on_a_terminal_a_live_table_has_a_row_per_running_trial():
    out = io.StringIO()
    lines = []
    p = progress.Progress(trials=2, max_epochs=5, metric="val/acc", clock=Clock())
    with progress.Display(p, lines.append, stream=out, live=True) as d:
        p.started("t1", 7)
        p.started("t2", 8)
        d.epoch("t1", _epoch(3, 0.8512, 1.5))
        d.epoch("t2", _epoch(1, 0.6001, 1.7))
        d.live.refresh()
        table = out.getvalue()
    assert lines == [], "no per-epoch lines under the live table"
    assert "7 (t1)" in table and "3/5" in table and "0.8512" in table and "1.5" in table
    assert "8 (t2)" in table and "0.6001" in table
    assert "[0/2 done, 2 running, 0 failed;" in table


def test_the_live_table_moves_within_an_epoch_at_the_trials_pace():
    clock = Clock()
    p = progress.Progress(trials=2, max_epochs=5, metric="val/acc", clock=clock,
                          budget_s=600.0, n_train=48_000)
    p.started("t1", 0)
    assert p.in_epoch(p.running["t1"]) == "-"  # no pace before its first epoch
    p.epoch("t1", {**_epoch(1), "images_per_s": 400.0})
    clock.now += 60.0  # 24,000 of 48,000 images at 400 images/s
    assert p.in_epoch(p.running["t1"]) == "~50%"
    assert "budget left 9m" in p.summary()  # 600 s less the 60 s gone: it ticks too
    clock.now += 600.0
    assert p.in_epoch(p.running["t1"]) == "~100%"  # never past the epoch


def test_under_a_compute_budget_the_epochs_left_replace_the_eta():
    p = progress.Progress(trials=20, max_epochs=5, metric="val/acc", clock=Clock(),
                          n_train=1000, compute_epochs=12.0)
    p.started("t1", 0)
    p.epoch("t1", _epoch(1))
    p.epoch("t1", _epoch(2))
    assert p.summary().endswith("best val/acc -, compute left 10 epochs]")
