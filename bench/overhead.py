"""Per-trial overhead of the sweep runner: N very short trials (one epoch on a tiny subset)
through Ray Tune + Optuna + MLflow, and the same N trainings in a plain loop, in one run.

    overhead per trial = (wall x slots - sum of training seconds) / N
    efficiency         = sum of training seconds / (wall x slots)

Training seconds are what ``fmnist.train`` measured inside each trial (model.fit, first-epoch
tracing included); wall is the whole ``runner.run`` (Ray start-up, actor start-up with
TensorFlow's import, the final test evaluation included).

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/overhead.py --trials 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--subset", type=int, default=500)
    p.add_argument("--slots", type=int, default=2, help="concurrent trials (1 CPU each)")
    p.add_argument("--family", default="lenet5")
    args = p.parse_args()

    from fmnist import data, train
    from sweeps import runner, spec, tracking

    raw = {"name": "overhead", "family": args.family, "trials": args.trials, "max_epochs": 1,
           "sampler": {"type": "random", "seed": 0}, "scheduler": {"type": "fifo"},
           "resources": {"cpu": 1}, "max_concurrent": args.slots,
           "data": {"subset": args.subset, "seed": 0},
           "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
           "fixed": {"batch_size": 32}}
    sp = spec.parse(raw, "bench/overhead.py")

    split = data.load_split(subset=args.subset, seed=0)
    t0 = time.perf_counter()
    plain = [train.train(args.family, split, {"max_epochs": 1, "batch_size": 32,
                                              "learning_rate": 1e-3, "seed": i}).seconds
             for i in range(args.trials)]
    plain_wall = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        runner.run(sp, runner.RunOptions(store=tmp), say=lambda s: None)
        wall = time.perf_counter() - t0
        st = tracking.store(tmp)
        runs = [r for r in tracking.trial_runs(st, "overhead") if r.info.status == "FINISHED"]
        train_s = [r.data.metrics["train_s"] for r in runs]
    assert len(train_s) == args.trials, f"{len(train_s)} of {args.trials} trials finished"

    n, slots = args.trials, args.slots
    print(f"{n} trials of 1 epoch on {split.sizes()['train']} images ({args.family}), "
          f"{slots} slots of 1 CPU")
    print(f"plain loop: wall {plain_wall:.1f}s, training {sum(plain):.1f}s "
          f"(median {statistics.median(plain):.2f}s per training)")
    print(f"runner:     wall {wall:.1f}s, training {sum(train_s):.1f}s "
          f"(median {statistics.median(train_s):.2f}s per trial)")
    print(f"overhead per trial {(wall * slots - sum(train_s)) / n:.2f}s; "
          f"efficiency {sum(train_s) / (wall * slots):.2f}; "
          f"runner wall / plain-loop wall {wall / plain_wall:.2f}")


if __name__ == "__main__":
    main()
