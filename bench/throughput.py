"""Training throughput: plain ``model.fit`` on float32 arrays versus ``fmnist.train``.

Same model builder, batch size, data and epochs on both sides, in one process, interleaved
(the order alternates every repeat) because this machine is shared and noisy. Throughput is
training images per second of the steady-state epochs (the first, which traces and compiles,
is left out; validation included on both sides). Prints the median ratio and its spread.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/throughput.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from fmnist import data, models, train  # noqa: E402


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.epoch_s, self.val_acc = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_s.append(time.perf_counter() - self.t0)
        self.val_acc.append(logs["val_accuracy"])


def plain(family: str, split, epochs: int, batch: int, seed: int) -> tuple[float, float]:
    keras.utils.set_random_seed(seed)
    model = models.build(family)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = split.x_train.astype("float32")
    xv = split.x_val.astype("float32")
    timer = _EpochTimer()
    model.fit(x, split.y_train, batch_size=batch, epochs=epochs, shuffle=True,
              validation_data=(xv, split.y_val), callbacks=[timer], verbose=0)
    return len(x) / statistics.median(timer.epoch_s[1:]), timer.val_acc[-1]


def ours(family: str, split, epochs: int, batch: int, seed: int) -> tuple[float, float]:
    r = train.train(family, split, {"max_epochs": epochs, "batch_size": batch,
                                    "early_stopping": False, "seed": seed})
    steady = [h["epoch_s"] for h in r.history[1:]]
    return len(split.y_train) / statistics.median(steady), r.history[-1]["val/acc"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=["lenet5", "minivgg"])
    p.add_argument("--subset", type=int, nargs="+", default=[12_000, 3_000],
                   help="training images per family (one value, or one per family)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    subsets = args.subset * len(args.families) if len(args.subset) == 1 else args.subset

    print(f"batch {args.batch_size}, {args.epochs} epochs (first left out), "
          f"{args.repeats} interleaved repeats; images/s of training incl. validation")
    for family, n in zip(args.families, subsets, strict=True):
        split = data.load_split(subset=n, seed=0)
        rows = []
        for rep in range(args.repeats):
            sides = [("plain", plain), ("ours", ours)]
            if rep % 2:
                sides.reverse()
            got = {name: fn(family, split, args.epochs, args.batch_size, rep)
                   for name, fn in sides}
            rows.append(got)
            print(f"  {family} repeat {rep + 1}: plain {got['plain'][0]:7.0f} img/s "
                  f"(val {got['plain'][1]:.3f})   ours {got['ours'][0]:7.0f} img/s "
                  f"(val {got['ours'][1]:.3f})   ratio {got['ours'][0] / got['plain'][0]:.2f}",
                  flush=True)
        ratios = sorted(r["ours"][0] / r["plain"][0] for r in rows)
        med = statistics.median
        n_img = split.sizes()["train"]
        print(f"{family}: {n_img} images; plain {med(r['plain'][0] for r in rows):.0f}"
              f" img/s, ours {med(r['ours'][0] for r in rows):.0f} img/s; ratio median "
              f"{med(ratios):.2f} (min {ratios[0]:.2f}, max {ratios[-1]:.2f}); final val/acc "
              f"plain {med(r['plain'][1] for r in rows):.3f}, "
              f"ours {med(r['ours'][1] for r in rows):.3f}", flush=True)


if __name__ == "__main__":
    main()
