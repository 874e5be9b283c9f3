"""Seconds per epoch of every family's default configuration (batch 64), for the time notes in
search_spaces/*.yaml. The second epoch is shown (the first traces and compiles).

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/epoch_times.py --subset 6000
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subset", type=int, default=6000)
    p.add_argument("families", nargs="*")
    args = p.parse_args()
    from fmnist import data, models, train

    split = data.load_split(subset=args.subset)
    for fam in args.families or models.families():
        r = train.train(fam, split, {"max_epochs": 2, "early_stopping": False, "batch_size": 64})
        print(f"{fam:12} params {r.params:>10,}  epoch2 {r.history[1]['epoch_s']:.1f}s  "
              f"train img/s {r.history[1]['images_per_s']:.0f}", flush=True)


if __name__ == "__main__":
    main()
