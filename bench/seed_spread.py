"""How much a model's val/acc moves with the seed alone: one configuration (the family's
defaults plus ``--set``), trained several times with different seeds on the same split. It is
the yardstick for the differences between tools in ``bench/peers.py``.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/seed_spread.py lenet5 \\
        --subset 20000 --epochs 15 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("family")
    p.add_argument("--subset", type=int, default=None, help="images per split (default: all)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter, parsed as YAML (repeatable)")
    args = p.parse_args()

    from fmnist import data, evaluate, train
    from sweeps.cli import parse_assignments

    fixed = parse_assignments(args.set)
    split = data.load_split(subset=args.subset, seed=0)
    print(f"{args.family} {fixed or '(defaults)'}, {args.epochs} epochs, split {split.sizes()}")
    accs = []
    for seed in args.seeds:
        r = train.train(args.family, split, {**fixed, "max_epochs": args.epochs, "seed": seed})
        acc = (r.final_val or {"val/acc": evaluate.evaluate(r.model, split.x_val,
                                                              split.y_val).accuracy})["val/acc"]
        accs.append(acc)
        print(f"seed {seed}: val/acc {acc:.4f} (best epoch {r.best_epoch} of {r.epochs}, "
              f"{r.stop_reason}, {r.seconds:.0f} s)", flush=True)
    if len(accs) > 1:
        print(f"val/acc over {len(accs)} seeds: mean {statistics.mean(accs):.4f}, "
              f"max - min {max(accs) - min(accs):.4f}, stdev {statistics.stdev(accs):.4f}")


if __name__ == "__main__":
    main()
