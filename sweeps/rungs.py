"""Early stopping for several objectives: asynchronous successive halving whose rungs rank
trials by non-dominated sorting, then crowding distance (multi-objective ASHA, Schmucker et al.
2021, as Syne Tune ships it; NSGA-II's order, Deb et al. 2002).

A trial reaching a rung (``grace_period`` epochs, then each ``reduction_factor`` times more)
is placed among every trial recorded at that rung before it. It goes on where it is on the
rung's first front (no trial there is at least as good on every objective and better on one)
or among the top ``1 / reduction_factor`` of the rung in NSGA-II's order; otherwise it stops.
The first trial at a rung always goes on, as in ASHA.

The decision (``goes_on``) and the rungs' record (``Rungs``) are pure and work on plain
tuples; ``tune_scheduler`` puts them in a Ray Tune scheduler (Ray is imported there only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

Point = tuple[float, ...]  # one value per objective, each to be minimised


def minimised(values: Sequence[float], modes: Sequence[str]) -> Point:
    """``values`` turned so that less is better on each (a "max" objective negated)."""
    return tuple(-float(v) if m == "max" else float(v) for v, m in zip(values, modes,
                                                                        strict=True))


def dominates(a: Point, b: Point) -> bool:
    """``a`` at least as good as ``b`` on every objective and better on one (minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True))


def fronts(points: Sequence[Point]) -> list[list[int]]:
    """Indices of ``points`` by non-dominated front, the first front first."""
    left = set(range(len(points)))
    out = []
    while left:
        front = sorted(i for i in left
                       if not any(dominates(points[j], points[i]) for j in left if j != i))
        out.append(front)
        left -= set(front)
    return out


def crowding(points: Sequence[Point], front: Sequence[int]) -> dict[int, float]:
    """Each of ``front``'s crowding distance: the size of the box its neighbours on each
    objective span, normalised by the front's range; the ends of each objective infinite."""
    dist = dict.fromkeys(front, 0.0)
    for k in range(len(points[front[0]])) if front else ():
        order = sorted(front, key=lambda i: points[i][k])
        lo, hi = points[order[0]][k], points[order[-1]][k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for prev, i, nxt in zip(order, order[1:], order[2:], strict=False):
            dist[i] += (points[nxt][k] - points[prev][k]) / (hi - lo)
    return dist


def nsga2_order(points: Sequence[Point]) -> list[int]:
    """Indices of ``points``, best first: by front, then by crowding distance (largest first),
    then by index (the earlier recorded first)."""
    out = []
    for front in fronts(points):
        dist = crowding(points, front)
        out.extend(sorted(front, key=lambda i: (-dist[i], i)))
    return out


def goes_on(point: Point, recorded: Sequence[Point], reduction_factor: float) -> bool:
    """Whether a trial reaching a rung at ``point`` goes on, given the points ``recorded`` at
    that rung before it (all minimised): on the rung's first front, or in the top
    ``1 / reduction_factor`` of the rung in NSGA-II's order."""
    points = [*recorded, point]
    me = len(points) - 1
    if me in fronts(points)[0]:
        return True
    keep = max(1, math.ceil(len(points) / reduction_factor))
    return me in nsga2_order(points)[:keep]


def milestones(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The rungs' epochs, lowest first: ``grace_period`` times each power of the reduction
    factor below ``max_t``."""
    out, r = [], float(grace_period)
    while r < max_t:
        out.append(int(round(r)))
        r *= reduction_factor
    return sorted(set(out))


class Rungs:
    """The rungs of one search: ``objectives`` (reported key -> "max" or "min"), the points
    recorded at each rung, and each trial's decision as its results come in."""

    def __init__(self, objectives: Mapping[str, str], grace_period: int,
                 reduction_factor: float, max_t: int):
        self.objectives = dict(objectives)
        self.reduction_factor = reduction_factor
        # rung epoch -> trial id -> its point there
        self.recorded: dict[int, dict[str, Point]] = {
            m: {} for m in milestones(grace_period, reduction_factor, max_t)}
        self.stopped: dict[str, int] = {}  # trial id -> the rung it stopped at

    def goes_on(self, trial_id: str, t: float | None, result: Mapping[str, Any]) -> bool:
        """Whether ``trial_id``, at epoch ``t`` with ``result``, goes on: decided once, at the
        highest rung it has reached (lower rungs it passed before are not looked at); a result
        without every objective (no epoch yet, a cost not measured, NaN) goes on."""
        values = [result.get(k) for k in self.objectives]
        if t is None or any(v is None or not math.isfinite(float(v)) for v in values):
            return True
        point = minimised(values, list(self.objectives.values()))
        for rung in sorted(self.recorded, reverse=True):
            here = self.recorded[rung]
            if t < rung:
                continue
            if trial_id in here:  # placed at the highest rung it has reached: went on there
                return True
            before = list(here.values())
            here[trial_id] = point
            if goes_on(point, before, self.reduction_factor):
                return True
            self.stopped[trial_id] = rung
            return False
        return True


def tune_scheduler(rungs: Rungs, time_attr: str):
    """Ray Tune's scheduler for ``rungs`` (multi-objective ASHA), on ``time_attr``."""
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class MultiObjectiveASHA(FIFOScheduler):
        def set_search_properties(self, metric, mode, **spec) -> bool:
            return True  # its objectives are the spec's, whatever Tune's single metric

        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            return (TrialScheduler.CONTINUE
                    if rungs.goes_on(trial.trial_id, result.get(time_attr), result)
                    else TrialScheduler.STOP)

        def debug_string(self) -> str:
            return "MultiObjectiveASHA: " + ", ".join(
                f"rung {r}: {len(rec)}" for r, rec in sorted(rungs.recorded.items()))

    return MultiObjectiveASHA()
