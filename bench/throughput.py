"""Training throughput: plain ``model.fit`` on float32 arrays versus ``fmnist.train``.

Same model builder, batch size, data and epochs on both sides, in one process, interleaved
(the order alternates every repeat) because this machine is shared and noisy. Throughput is
training images per second of the steady-state epochs (the first, which traces and compiles,
is left out; validation included on both sides). Prints the median ratio and its spread.

A third column is the ceiling of this CPU for the model: bare compiled loops (``tf.function``
over ``tf.range``) of train steps on one resident batch and of inference steps on one validation
batch, with no data pipeline, no callbacks and no Keras ``fit``; it is turned into images/s of an
epoch with its validation, as the other two columns are. A side near the ceiling has no per-step
overhead left to remove at float32.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/throughput.py
"""

from __future__ import annotations

import argparse
import math
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


def ceiling(family: str, split, epochs: int, batch: int, seed: int) -> tuple[float, float]:
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = models.build(family)
    opt = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    x = tf.constant(split.x_train[:batch])
    y = tf.constant(split.y_train[:batch].astype(np.int64))
    vb = max(batch, 512)
    xv = tf.constant(np.resize(split.x_val, (vb, 28, 28)))

    @tf.function
    def train_steps(n):
        loss = tf.constant(0.0)
        for _ in tf.range(n):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    @tf.function
    def val_steps(n):
        out = tf.constant(0.0)
        for _ in tf.range(n):
            out += tf.reduce_sum(model(xv, training=False))
        return out

    n_train, n_val = len(split.y_train), len(split.y_val)
    k_train, k_val = math.ceil(n_train / batch), math.ceil(n_val / vb)
    train_steps(tf.constant(1))
    val_steps(tf.constant(1))  # traced outside the timing, as the first epoch is left out
    t0 = time.perf_counter()
    train_steps(tf.constant(k_train)).numpy()
    val_steps(tf.constant(k_val)).numpy()
    t1 = time.perf_counter()
    return n_train / (t1 - t0), float("nan")


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
            sides = [("plain", plain), ("ours", ours), ("ceiling", ceiling)]
            if rep % 2:
                sides.reverse()
            got = {name: fn(family, split, args.epochs, args.batch_size, rep)
                   for name, fn in sides}
            rows.append(got)
            print(f"  {family} repeat {rep + 1}: plain {got['plain'][0]:7.0f} img/s "
                  f"(val {got['plain'][1]:.3f})   ours {got['ours'][0]:7.0f} img/s "
                  f"(val {got['ours'][1]:.3f})   ratio {got['ours'][0] / got['plain'][0]:.2f}   "
                  f"ceiling {got['ceiling'][0]:7.0f} img/s",
                  flush=True)
        ratios = sorted(r["ours"][0] / r["plain"][0] for r in rows)
        med = statistics.median
        n_img = split.sizes()["train"]
        print(f"{family}: {n_img} images; plain {med(r['plain'][0] for r in rows):.0f}"
              f" img/s, ours {med(r['ours'][0] for r in rows):.0f} img/s; ratio median "
              f"{med(ratios):.2f} (min {ratios[0]:.2f}, max {ratios[-1]:.2f}); ceiling "
              f"{med(r['ceiling'][0] for r in rows):.0f} img/s, plain / ceiling "
              f"{med(r['plain'][0] / r['ceiling'][0] for r in rows):.2f}, ours / ceiling "
              f"{med(r['ours'][0] / r['ceiling'][0] for r in rows):.2f}; final val/acc "
              f"plain {med(r['plain'][1] for r in rows):.3f}, "
              f"ours {med(r['ours'][1] for r in rows):.3f}", flush=True)


if __name__ == "__main__":
    main()
