"""The `fast` preset (fastcnn, the speed-run recipe) on the full split: test accuracy plain and
with test-time augmentation, wall time, images/s, and the machine's speed beside it.

Each run trains ``fastcnn --preset fast`` (with ``--set`` overrides, e.g. ``ema=0`` for the gain
of the EMA) on 48,000 training images, selects nothing on the test set, and scores the final
model on the 10,000 test images once per TTA mode. The machine's speed: a plain Keras ``fit`` of
minivgg on 12,000 images (bench/throughput.py's reference), measured before the first run.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/fast_recipe.py \\
        --runs "" "ema=0" --seeds 0
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


def run(split, overrides: dict, seed: int, epochs: int | None) -> dict:
    hp = {**overrides, "seed": seed}
    if epochs:
        hp["max_epochs"] = epochs
    t0 = time.perf_counter()
    r = train.train("fastcnn", split, hp, preset="fast", on_epoch=lambda m: print(
        f"    epoch {m['epoch']:2d} val/acc {m['val/acc']:.4f} {m['epoch_s']:.0f}s "
        f"{m['images_per_s']:.0f} img/s", flush=True))
    wall = time.perf_counter() - t0
    out = {"overrides": overrides, "seed": seed, "epochs": r.epochs, "wall_s": round(wall, 1),
           "train_images": r.epochs * len(split.y_train),
           "images_per_s": round(sum(h["images_per_s"] for h in r.history) / r.epochs),
           "val_acc": r.history[-1]["val/acc"]}
    for mode in tta.MODES:
        probs = tta.predict(r.model, split.x_test, mode)
        out[f"test_acc_{mode}"] = float((probs.argmax(1) == split.y_test).mean())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=[""],
                   help='overrides per run: "" (the preset) or "ema=0 crop=0"')
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, help="max_epochs (default: the preset's, 20)")
    p.add_argument("--subset", type=int, help="at most N images per split (a quick check)")
    p.add_argument("--out", help="append one JSON line per run to this file")
    args = p.parse_args()

    from throughput import plain

    split = data.load_split(subset=args.subset)
    ref = data.load_split(subset=12_000, seed=0)
    ref_ips, _ = plain("minivgg", ref, 2, 64, 0)
    print(f"machine: plain fit of minivgg, {ref_ips:.0f} images/s "
          f"({len(ref.y_train):,} images, batch 64)", flush=True)
    for seed in args.seeds:
        for spec in args.runs:
            overrides = dict(kv.split("=", 1) for kv in spec.split()) if spec else {}
            overrides = {k: _value(v) for k, v in overrides.items()}
            print(f"run {overrides or 'preset fast'} seed {seed}", flush=True)
            res = {**run(split, overrides, seed, args.epochs), "machine_ref_ips": round(ref_ips)}
            print("  " + "  ".join(f"{k} {v}" for k, v in res.items()), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
