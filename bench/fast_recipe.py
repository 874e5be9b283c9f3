"""The `fast` preset (fastcnn, the speed-run recipe) on the full split: test accuracy plain and
with test-time augmentation, wall time, images/s, and the machine's speed beside it.

Each run trains ``fastcnn --preset fast`` (with ``--set`` overrides, e.g. ``ema=0`` for the gain
of the EMA) on 48,000 training images, selects nothing on the test set, and scores the final
model on the 10,000 test images once per TTA mode. The machine's speed: a plain Keras ``fit`` of
minivgg on 12,000 images (bench/throughput.py's reference), measured before the first run.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/fast_recipe.py \\
        --runs "" "ema=0" --seeds 0

``--gains`` measures each ingredient against the same run without it, per seed, and prints the
median over the seeds with the spread: the EMA (``ema=0.99`` against the preset's none), the
cheap translate (the preset against ``crop=0``), TTA (``flip_shift`` against none, on the
preset's model), the refit (the preset trained again on train + val for as many epochs, as a
sweep's refit does), and the ensemble (greedy selection on validation over that seed's three
models, against the one that validated best, as a sweep's ensemble picks from its trials).
Every figure but TTA's is on plain predictions.

    python bench/fast_recipe.py --gains --seeds 0 1 2 --subset 12000 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fmnist import data, train, tta  # noqa: E402


def _value(v: str):
    import yaml

    return yaml.safe_load(v)


def run(split, overrides: dict, seed: int, epochs: int | None, keep: list | None = None,
        family: str = "fastcnn") -> dict:
    hp = {**overrides, "seed": seed}
    if epochs:
        hp["max_epochs"] = epochs
    t0 = time.perf_counter()
    r = train.train(family, split, hp, preset="fast", on_epoch=lambda m: print(
        f"    epoch {m['epoch']:2d} val/acc {m['val/acc']:.4f} {m['epoch_s']:.0f}s "
        f"{m['images_per_s']:.0f} img/s", flush=True))
    wall = time.perf_counter() - t0
    out = {"family": family, "overrides": overrides, "seed": seed, "epochs": r.epochs,
           "wall_s": round(wall, 1),
           "train_images": r.epochs * len(split.y_train),
           "images_per_s": round(sum(h["images_per_s"] for h in r.history) / r.epochs),
           "val_acc": r.history[-1]["val/acc"]}
    for mode in tta.MODES:
        probs = tta.predict(r.model, split.x_test, mode)
        out[f"test_acc_{mode}"] = float((probs.argmax(1) == split.y_test).mean())
    if keep is not None:
        keep.append(r.model)
    return out


def gains(split, seeds: list[int], epochs: int | None, say=print) -> dict[str, list[float]]:
    """Each ingredient's test-accuracy gain per seed (see the module's docstring)."""
    import numpy as np

    from fmnist import ensemble
    from sweeps.final import refit_split

    def acc(probs, y):
        return float((probs.argmax(1) == y).mean())

    out: dict[str, list[float]] = {k: [] for k in ("ema", "crop", "tta", "refit", "ensemble")}
    for seed in seeds:
        models: list = []
        base = run(split, {}, seed, epochs, models)
        ema = run(split, {"ema": 0.99}, seed, epochs, models)
        nocrop = run(split, {"crop": 0}, seed, epochs, models)
        refit = run(refit_split(split), {}, seed, epochs)
        val = [m.predict(split.x_val, batch_size=1024, verbose=0) for m in models]
        picked = ensemble.greedy_select(val, split.y_val, max_size=5)
        test = [m.predict(split.x_test, batch_size=1024, verbose=0) for m in models]
        single = int(np.argmax([acc(p, split.y_val) for p in val]))
        row = {"ema": ema["test_acc_none"] - base["test_acc_none"],
               "crop": base["test_acc_none"] - nocrop["test_acc_none"],
               "tta": base["test_acc_flip_shift"] - base["test_acc_none"],
               "refit": refit["test_acc_none"] - base["test_acc_none"],
               "ensemble": acc(ensemble.combine(test, picked.weights), split.y_test)
               - acc(test[single], split.y_test)}
        say(f"seed {seed}: gains " + "  ".join(f"{k} {v:+.4f}" for k, v in row.items())
            + f"  (base test {base['test_acc_none']:.4f}, ensemble picks {picked.members})")
        for k, v in row.items():
            out[k].append(v)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=[""],
                   help='overrides per run: "" (the preset) or "ema=0 crop=0"')
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--family", default="fastcnn", help="a family with a `fast` preset")
    p.add_argument("--epochs", type=int, help="max_epochs (default: the preset's, 20)")
    p.add_argument("--subset", type=int, help="at most N images per split (a quick check)")
    p.add_argument("--out", help="append one JSON line per run to this file")
    p.add_argument("--gains", action="store_true",
                   help="each ingredient against the same run without it, per seed")
    args = p.parse_args()

    from throughput import plain

    split = data.load_split(subset=args.subset)
    ref = data.load_split(subset=12_000, seed=0)
    ref_ips, _ = plain("minivgg", ref, 2, 64, 0)
    print(f"machine: plain fit of minivgg, {ref_ips:.0f} images/s "
          f"({len(ref.y_train):,} images, batch 64)", flush=True)
    if args.gains:
        import statistics

        found = gains(split, args.seeds, args.epochs)
        print(f"gains over {len(args.seeds)} seeds ({len(split.y_train):,} training images, "
              f"{args.epochs or 20} epochs): median (min..max) in test accuracy points")
        for k, v in found.items():
            print(f"  {k:9s} {100 * statistics.median(v):+.2f}  "
                  f"({100 * min(v):+.2f}..{100 * max(v):+.2f})")
        return
    for seed in args.seeds:
        for spec in args.runs:
            overrides = dict(kv.split("=", 1) for kv in spec.split()) if spec else {}
            overrides = {k: _value(v) for k, v in overrides.items()}
            print(f"run {overrides or 'preset fast'} seed {seed}", flush=True)
            res = {**run(split, overrides, seed, args.epochs, family=args.family),
                   "machine_ref_ips": round(ref_ips)}
            print("  " + "  ".join(f"{k} {v}" for k, v in res.items()), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
