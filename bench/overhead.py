"""Per-trial overhead of the sweep runner: N very short trials (one epoch on a tiny subset)
through Ray Tune + Optuna + MLflow, and the same N trainings in a plain loop, in one run.

    overhead per trial = (wall x slots - sum of training seconds) / N
    efficiency         = sum of training seconds / (wall x slots)

Training seconds are what ``fmnist.train`` measured inside each trial (model.fit, first-epoch
tracing included); wall is the whole ``runner.run`` (Ray start-up, actor start-up with
TensorFlow's import, the final test evaluation included). The same two figures follow with
training = the whole ``fmnist.train`` call in each trial (model build, compile, datasets and fit:
what the plain loop pays for each training too), labelled "beyond a plain loop"; the first pair,
on model.fit alone, is the strict one.

Where the rest goes, from each trial's own timestamps (MLflow tags ``fmnist.trial_start``,
``fmnist.train_start`` and ``fmnist.trial_end``, taken inside the trial): start-up (``runner.run``
called to the first trial's start), in-trial time outside training (before the ``fmnist.train``
call: the imports on an actor's first trial; in the call: model build, compile, datasets),
the gap between two trials on one actor (final checkpoint, Tune's and Optuna's bookkeeping, the
next trial's MLflow run), and the tail (the last trial's end to the return: test evaluation and
model logging).

Steady state: the same two figures over the span from the first trial's start to the last
trial's end, i.e. without the fixed start-up and tail.

``--marginal M`` runs the runner a second time with M trials: the difference between the two
runs is the cost of M - N more trials, once with the walls as measured, and once with each
run's start-up and tail taken out (they differ between runs: the first starts Ray cold).

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/overhead.py --trials 20
    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/overhead.py --trials 10 --marginal 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict

from sweeps import tags as tag  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _sweep(args, n: int) -> dict:
    """One runner.run of n trials in a fresh store: wall, training seconds, the phases."""
    from sweeps import runner, spec, tracking

    raw = {"name": "overhead", "family": args.family, "trials": n, "max_epochs": 1,
           "sampler": {"type": "random", "seed": 0}, "scheduler": {"type": "fifo"},
           "resources": {"cpu": 1}, "max_concurrent": args.slots,
           "data": {"subset": args.subset, "seed": 0},
           "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
           "fixed": {"batch_size": 32}}
    sp = spec.parse(raw, "bench/overhead.py")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        runner.run(sp, runner.RunOptions(store=tmp), say=lambda s: None)
        t1 = time.time()
        runs = [r for r in tracking.trial_runs(tracking.store(tmp), "overhead")
                if r.info.status == "FINISHED"]
    assert len(runs) == n, f"{len(runs)} of {n} trials finished"
    trials = sorted(({"start": float(r.data.tags[tag.TRIAL_START]),
                      "end": float(r.data.tags[tag.TRIAL_END]),
                      "call": float(r.data.tags[tag.TRIAL_END])
                      - float(r.data.tags[tag.TRAIN_START]),
                      "pid": r.data.tags[tag.PID], "train": r.data.metrics["train_s"]}
                     for r in runs), key=lambda t: t["start"])
    by_actor = defaultdict(list)
    for t in trials:
        by_actor[t["pid"]].append(t)
    gaps = [b["start"] - a["end"] for ts in by_actor.values()
            for a, b in zip(ts, ts[1:], strict=False)]
    inside = [t["end"] - t["start"] - t["train"] for t in trials]
    lead = [ts[0]["start"] - t0 for ts in by_actor.values()]
    trail = [t1 - ts[-1]["end"] for ts in by_actor.values()]
    return {"n": n, "wall": t1 - t0, "train": [t["train"] for t in trials],
            "call": [t["call"] for t in trials],
            "before": [t["end"] - t["start"] - t["call"] for t in trials],
            "lead": lead, "trail": trail, "startup": min(lead), "tail": min(trail),
            "inside": inside, "gaps": gaps, "actors": len(by_actor)}


def _med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f}s" if xs else "-"


def _pair(slot_s: float, work: float, n: int) -> str:
    """Overhead per trial and efficiency of n trials doing `work` seconds in `slot_s`."""
    return f"overhead per trial {(slot_s - work) / n:.2f}s; efficiency {work / slot_s:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--marginal", type=int, default=None, metavar="M",
                   help="also run M trials and report the cost of the M - N extra trials")
    p.add_argument("--subset", type=int, default=500)
    p.add_argument("--slots", type=int, default=2, help="concurrent trials (1 CPU each)")
    p.add_argument("--family", default="lenet5")
    args = p.parse_args()

    from fmnist import data, train

    split = data.load_split(subset=args.subset, seed=0)
    plain, calls = [], []
    t0 = time.perf_counter()
    for i in range(args.trials):
        c0 = time.perf_counter()
        plain.append(train.train(args.family, split, {"max_epochs": 1, "batch_size": 32,
                                                      "learning_rate": 1e-3, "seed": i}).seconds)
        calls.append(time.perf_counter() - c0)
    plain_wall = time.perf_counter() - t0
    a = _sweep(args, args.trials)

    n, slots, wall, train_s, call_s = a["n"], args.slots, a["wall"], sum(a["train"]), sum(a["call"])
    print(f"{n} trials of 1 epoch on {split.sizes()['train']} images ({args.family}), "
          f"{slots} slots of 1 CPU")
    print(f"plain loop: wall {plain_wall:.1f}s, training {sum(plain):.1f}s "
          f"(median {statistics.median(plain):.2f}s per training, "
          f"{statistics.median(c - p for c, p in zip(calls, plain, strict=True)):.2f}s more in "
          f"each fmnist.train call)")
    print(f"runner:     wall {wall:.1f}s, training {train_s:.1f}s "
          f"(median {statistics.median(a['train']):.2f}s per trial, "
          f"{statistics.median(c - t for c, t in zip(a['call'], a['train'], strict=True)):.2f}s "
          f"more in each fmnist.train call)")
    print(f"{_pair(wall * slots, train_s, n)}; runner wall / plain-loop wall "
          f"{wall / plain_wall:.2f}")
    print(f"beyond a plain loop (training = each whole fmnist.train call, {call_s:.1f}s): "
          f"{_pair(wall * slots, call_s, n)}")
    print(f"  where: start-up {a['startup']:.1f}s, tail {a['tail']:.1f}s, {a['actors']} actors; "
          f"per trial, median: outside training in the trial {_med(a['inside'])}, "
          f"between trials on one actor {_med(a['gaps'])}")
    idle = (slots - a["actors"]) * wall
    print(f"  slot-seconds {wall * slots:.1f} = training {train_s:.1f} + in trials outside "
          f"training {sum(a['inside']):.1f} (before the fmnist.train call "
          f"{sum(a['before']):.1f}, in it {call_s - train_s:.1f}) + between trials "
          f"{sum(a['gaps']):.1f} + before each actor's first trial {sum(a['lead']):.1f} + after "
          f"its last {sum(a['trail']):.1f}"
          + (f" + slots with no actor {idle:.1f}" if idle else ""))
    span = wall - a["startup"] - a["tail"]
    print(f"steady state (first trial's start to last trial's end, {span:.1f}s): "
          f"{_pair(span * slots, train_s, n)}; beyond a plain loop: "
          f"{_pair(span * slots, call_s, n)}")
    if args.marginal:
        b = _sweep(args, args.marginal)
        dn, dwall = b["n"] - n, b["wall"] - wall
        dtrain, dcall = sum(b["train"]) - train_s, sum(b["call"]) - call_s
        print(f"runner, {b['n']} trials: wall {b['wall']:.1f}s, training {sum(b['train']):.1f}s; "
              f"start-up {b['startup']:.1f}s, tail {b['tail']:.1f}s, {b['actors']} actors; "
              f"between trials on one actor {_med(b['gaps'])}")
        print(f"marginal, {dn} more trials: wall +{dwall:.1f}s, training +{dtrain:.1f}s; "
              f"{_pair(dwall * slots, dtrain, dn)}; beyond a plain loop: "
              f"{_pair(dwall * slots, dcall, dn)}")
        # start-up varies between the two runs (the first one starts Ray cold): take it out
        dspan = (b["wall"] - b["startup"] - b["tail"]) - span
        print(f"marginal in steady state (start-up and tail of each run taken out): "
              f"+{dspan:.1f}s; {_pair(dspan * slots, dtrain, dn)}; beyond a plain loop: "
              f"{_pair(dspan * slots, dcall, dn)}")


if __name__ == "__main__":
    main()
