"""A sweep's budget: one object, on one clock, that every phase asks.

Built once from the spec and the command's start (``Budget.of``), passed down, and asked:
may a trial start, when must the search's trials end (``Window``, carried to the trials in
Ray's workers and to the searcher), when must the refit and the ensemble end, how many seconds
and training images are left. The clock is ``time.time()``: trials run in other processes, and
on a cluster on other machines, where a monotonic clock means nothing.

The budget's shares (of its seconds): the search first; then ``AFTER_SHARE`` for the refit and
the ensemble, where the spec asks for them; and ``reserve_s`` twice, once for the epoch a
running trial is finishing when the search ends and once for the test evaluation and the report.

Compute (``images``: training images, over the search, the refit and every model after it) is
counted beside time, so that a budget can end at whichever comes first. Under a compute budget
the refit's share is set by the searcher (``reserving``, ``policy.refit_need``): what a whole
schedule's refit needs until a trial has finished, then what the best trial's refit needs; the
search gets the rest, and where the refit cannot fit in what is left, all of it. A quarter
where nothing set it.

Example::

    budget = Budget.of(spec, started=time.time())
    window = budget.search_window()  # None: no budget
    if budget.may_start_trial(time.time()):
        ...

Pure: no store, no Ray, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

AFTER_SHARE = {"refit": 0.25, "ensemble": 0.05}  # of a budget, kept for the phase after search


def epochs_run(seen: tuple[int, int] | None, result: dict[str, Any] | None,
               after: int = 0) -> int:
    """The epochs a trial trained in this command, for the compute it spent: from the first
    epoch it reported here (``seen``: the first and the last; a trial going on from a saved
    epoch starts after it, and one Tune restarted after a failure is counted from its start)
    to its final result's epoch, else its last reported (a trial that raised has no final
    result); where it reported nothing before its last result (Tune does not pass on the one
    a scheduler stops it at), from the epoch it was started after (``after``, else the
    result's ``resumed``)."""
    r = result or {}
    end = int(r.get("epoch") or (seen[1] if seen else 0))
    before = seen[0] - 1 if seen else (after or int(r.get("resumed") or 0))
    return max(0, end - before)


def reserve_s(seconds: float) -> float:
    """What a budget keeps for the test evaluation and the report at its end, and again for the
    epoch a running trial is finishing when the search ends."""
    return max(10.0, 0.05 * seconds)


@dataclass(frozen=True)
class Window:
    """When the search's trials must end (``time.time()``): no trial starts after ``soft`` and
    a running one ends at its next epoch's end (a trial fits its schedule to end by it); an
    epoch still going at ``hard`` is cut off. Picklable: it travels to the trials."""

    soft: float
    hard: float

    def may_start(self, now: float) -> bool:
        return now < self.soft

    def cut(self, now: float) -> bool:
        """Whether a running epoch is cut off mid-way."""
        return now >= self.hard


@dataclass(frozen=True)
class Budget:
    """A sweep command's budget. ``seconds``: the whole command's (search, refit, ensemble, test
    evaluation, report), None for none; ``search_seconds``: the spec's ``time_budget_s``, a
    limit on the search alone; ``images``: training images the sweep may process in all its
    commands, None for no limit, of which ``images_used`` were spent by earlier commands."""

    started: float  # time.time() at the command's start
    seconds: float | None = None
    search_seconds: float | None = None
    refit: bool = False  # the refit's share is kept after the search
    ensemble: bool = False  # the ensemble's share is kept after the search
    images: int | None = None
    images_used: int = 0
    refit_need: int | None = None  # the best trial's refit's training images, once known

    @classmethod
    def of(cls, spec: Any, started: float | None = None, n_train: int = 0,
           images_used: int = 0) -> Budget:
        """The budget of ``spec`` (its ``budget_s``, ``budget_epochs`` of ``n_train`` training
        images, ``time_budget_s``, ``refit``, ``ensemble``), from ``started`` (default: now),
        of which earlier commands of the sweep processed ``images_used`` training images."""
        epochs = getattr(spec, "budget_epochs", None)
        return cls(started=time.time() if started is None else started,
                   seconds=spec.budget_s or None,
                   search_seconds=spec.time_budget_s or None,
                   refit=bool(spec.refit), ensemble=spec.ensemble >= 2,
                   images=round(epochs * n_train) if epochs and n_train else None,
                   images_used=images_used)

    @property
    def timed(self) -> bool:
        return self.seconds is not None

    @property
    def counted(self) -> bool:
        """A compute budget: training images counted."""
        return self.images is not None

    def search_images(self) -> int | None:
        """The training images the search may process over the sweep: the compute budget less
        the refit's share where the spec keeps one (the ensemble trains nothing); None: no
        compute budget."""
        if self.images is None:
            return None
        if not self.refit:
            return self.images
        if self.refit_need is not None:
            return self.images - self.refit_need
        return round(self.images * (1.0 - AFTER_SHARE["refit"]))

    def search_epochs_left(self, n_train: int) -> float | None:
        """Epochs of ``n_train`` images the search's share has left (from this command's
        start); None: no compute budget."""
        share = self.search_images()
        return None if share is None else (share - self.images_used) / n_train

    def trial_epochs(self, max_epochs: int, n_train: int, committed: int = 0) -> int:
        """The epochs a trial that starts now may train, at most ``max_epochs`` of ``n_train``
        images: all of them without a compute budget, else those the search's images left
        after ``committed`` more (this command's processed and reserved) still hold; 0: it may
        not start. The same on any machine: a seeded sweep makes the same decisions."""
        search = self.search_images()
        if search is None or n_train <= 0:
            return max_epochs
        left = search - self.images_used - committed
        return max(0, min(max_epochs, left // n_train))
    def reserving(self, need: int | None, used: int = 0) -> Budget:
        """This budget with the refit's share set to ``need`` training images (the best
        trial's refit, as measured), where they fit in the compute left after ``used`` more of
        this command; where they cannot, with the refit's share given to the search
        (``without_refit``). Unchanged without a compute budget, a refit or a need."""
        if self.images is None or not self.refit or need is None:
            return self
        if need > self.images - self.images_used - used:
            return self.without_refit()
        return dataclasses.replace(self, refit_need=int(need))

    def without_refit(self) -> Budget:
        """This budget with the refit's share given to the search (a refit that cannot fit)."""
        return dataclasses.replace(self, refit=False)

    @property
    def share(self) -> float:
        """The fraction of the seconds kept after the search for the refit and the ensemble."""
        return ((AFTER_SHARE["refit"] if self.refit else 0.0)
                + (AFTER_SHARE["ensemble"] if self.ensemble else 0.0))

    def after_end(self) -> float | None:
        """When the refit and the ensemble must end (the test evaluation and the report
        follow); None: no time budget."""
        if self.seconds is None:
            return None
        return self.started + self.seconds - reserve_s(self.seconds)

    def search_window(self) -> Window | None:
        """When the search's trials must end; None: no time budget."""
        after = self.after_end()
        if after is None or self.seconds is None:
            return None
        hard = after - self.share * self.seconds
        return Window(hard - reserve_s(self.seconds), hard)

    def fill_window(self, parts: bool = False) -> Window | None:
        """When a trial that may fill the budget must end (``policy.fill_epochs``): its
        schedule fitted to end a quarter into the reserve for the test evaluation and the
        report, after where the refit and the ensemble would have had to (their shares are
        its; fitted to its end, it needs no reserve for an epoch finishing), cut mid-epoch
        half-way through that reserve; ``parts``: the budget filled by several parts, which keep
        the ensemble's share for their ensemble. None: no time budget. (BENCHMARKS.md, `make
        run`: a fill ending where the reserve starts left too much of the budget unused.)"""
        after = self.after_end()
        if after is None or self.seconds is None:
            return None
        if parts and self.ensemble:
            after -= AFTER_SHARE["ensemble"] * self.seconds
        reserve = reserve_s(self.seconds)
        return Window(after + reserve / 4, after + reserve / 2)

    def search_left(self, now: float) -> float | None:
        """Seconds the search may still take from ``now`` (the spec's ``time_budget_s``, the
        budget's window, whichever is shorter); None: no limit. May be <= 0."""
        window = self.search_window()
        left = self.search_seconds
        if window is not None:
            to_soft = window.soft - now
            left = to_soft if left is None else min(left, to_soft)
        return left

    def may_start_trial(self, now: float, images_per_epoch: int = 0, used: int = 0) -> bool:
        """Whether a trial may start at ``now``: within the search's window, and with at least
        one epoch of ``images_per_epoch`` training images left of the compute (``used``: images
        this command has processed or reserved so far) of the search's share."""
        window = self.search_window()
        if window is not None and not window.may_start(now):
            return False
        return self.trial_epochs(1, images_per_epoch, used) > 0

    def fits(self, need_s: float | None, now: float, by: float | None = None) -> bool:
        """Whether work of ``need_s`` seconds started at ``now`` ends by ``by`` (default: the
        phase after the search's end); True where there is no deadline or the need is not
        known (it cannot be told)."""
        by = self.after_end() if by is None else by
        return by is None or need_s is None or now + need_s <= by

    def fits_images(self, need: int | None, used: int = 0) -> bool:
        """Whether ``need`` training images fit in the compute left after ``used`` more; True
        without a compute budget or where the need is not known."""
        left = self.images_left(used)
        return left is None or need is None or need <= left

    def images_left(self, used: int = 0) -> int | None:
        """Training images left of the compute budget after ``used`` more; None: no limit."""
        if self.images is None:
            return None
        return max(0, self.images - self.images_used - used)
