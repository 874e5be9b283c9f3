"""What augmentation costs an epoch: fastcnn's training images/s with flip + crop + erase (and
with the interpolating translate) against none, in one process, interleaved (the order
alternates every repeat), the first epoch of each run (tracing) left out. Prints each ratio's
median and spread.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/augment_cost.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fmnist import data, train  # noqa: E402

SIDES = {
    "none": {},
    "flip+crop+erase": {"flip": 0.5, "crop": 2, "erase": 0.5},
    "flip+translate+erase": {"flip": 0.5, "translate": 0.1, "erase": 0.5},
}


def images_per_s(split, aug: dict, epochs: int, batch: int) -> float:
    hp = {"max_epochs": epochs, "batch_size": batch, "early_stopping": False, **aug}
    r = train.train("fastcnn", split, hp)
    return statistics.median(h["images_per_s"] for h in r.history[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subset", type=int, default=15_000, help="images per split")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    split = data.load_split(subset=args.subset, seed=0)
    rates: dict[str, list[float]] = {k: [] for k in SIDES}
    for rep in range(args.repeats):
        order = list(SIDES) if rep % 2 == 0 else list(reversed(SIDES))
        for name in order:
            rates[name].append(images_per_s(split, SIDES[name], args.epochs, args.batch_size))
            print(f"repeat {rep}: {name} {rates[name][-1]:.0f} images/s", flush=True)
    print(f"{len(split.y_train):,} training images, batch {args.batch_size}, "
          f"{args.epochs} epochs a run (the first left out), {args.repeats} repeats")
    for name in list(SIDES)[1:]:
        ratios = [a / b for a, b in zip(rates[name], rates["none"], strict=True)]
        print(f"{name} / none: median {statistics.median(ratios):.3f} "
              f"(spread {min(ratios):.3f}-{max(ratios):.3f}); images/s {rates[name]} vs "
              f"{rates['none']}")


if __name__ == "__main__":
    main()
