"""What more budget buys: whole `fmnist-sweep run`s of a spec at compute budgets (epochs of the
training split), over sweep seeds, on the full split (48,000 / 12,000 / 10,000).

Each run is the real command, in its own store, with the spec's sampler seed and trial seed set
to the sweep seed; the test set is scored once, by the command, for its final model. Per run it
prints the budget, the training images processed (the parent run's ``sweep/train_images``), the
wall time, the machine's speed beside it (bench/throughput.py's plain ``fit`` of minivgg on 12,000
images, before and after), the final model's val/acc and test/acc (with and without its
test-time augmentation) and what the budget policy did (the trials' ``fmnist.policy`` tags).
A compute budget makes the same decisions on any machine, so the accuracy columns do not depend
on the machine's speed; the wall time does.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/budget_curve.py \\
        search_spaces/all.yaml --epochs 25 --seeds 0 1 2 --out OUT

A run killed part-way resumes with the same command (each run's store is under ``--out``).
``--as-is`` runs the spec with its own budget and seeds instead, as ``make run`` runs
``search_spaces/minivgg.yaml``: the default job's figures, with the images it processed and the
reference fit beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def reference_fit() -> float:
    """The machine's speed: images/s of a plain Keras fit of minivgg (bench/throughput.py)."""
    from throughput import plain

    from fmnist import data

    return plain("minivgg", data.load_split(subset=12_000, seed=0), 2, 64, 0)[0]


def one_run(spec_path: str, epochs: float | None, seed: int | None, out: Path) -> dict:
    """One sweep at ``epochs`` with sweep seed ``seed``; None for both: the spec as it is."""
    raw = yaml.safe_load(Path(spec_path).read_text())
    if epochs is None:
        name = f"{raw['name']}-asis"
        raw.update(name=name)
    else:
        name = f"{raw['name']}-e{epochs:g}-s{seed}"
        raw.update(name=name, budget=f"{epochs:g} epochs")
        raw.setdefault("sampler", {})["seed"] = seed
        raw.setdefault("fixed", {})["seed"] = seed
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = run_dir / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    before = reference_fit()
    t0 = time.perf_counter()
    with open(run_dir / "fmnist-sweep.log", "a") as log:
        rc = subprocess.call([sys.executable, "-m", "sweeps.cli", "run", str(spec), "--store",
                              str(run_dir / "store")], stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    after = reference_fit()
    return {"spec": spec_path, "budget_epochs": epochs, "budget": str(raw.get("budget")),
            "seed": seed, "rc": rc,
            "wall_s": round(wall, 1), "reference_ips": [round(before), round(after)],
            **read_back(run_dir / "store", name)}


def read_back(store: Path, name: str) -> dict:
    from mlflow.tracking import MlflowClient

    from sweeps import tags as tag

    c = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id], max_results=5000)
    parent = next(r for r in runs if r.data.tags.get(tag.ROLE) == tag.PARENT)
    trials = [r for r in runs if r.data.tags.get(tag.ROLE) == tag.TRIAL]
    final_id = parent.data.tags.get(tag.FINAL_RUN_ID)
    best = next((r for r in runs if r.info.run_id == parent.data.tags.get(tag.BEST_RUN_ID)),
                None)
    final = next((r for r in runs if r.info.run_id == final_id), None)
    m = parent.data.metrics
    return {"images": int(m.get("sweep/train_images", 0)),
            "budget_images": int(m.get("sweep/budget_images", 0)),
            "final": parent.data.tags.get(tag.FINAL), "tta": parent.data.tags.get(tag.TTA),
            "best_val_acc": best.data.metrics.get("objective") if best else None,
            "final_val_acc": final.data.metrics.get("val/acc") if final else None,
            "test_acc": m.get("test/acc"),
            "test_acc_plain": (final.data.metrics.get("test/acc_plain") if final else None),
            "trials": len(trials),
            "policy": dict(Counter((r.data.tags.get(tag.POLICY) or "warm start/explore")
                                   .split(":")[0] for r in trials))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec")
    p.add_argument("--epochs", type=float, nargs="+", default=[25.0],
                   help="compute budgets, in epochs of the training split")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", required=True,
                   help="a folder for each run's store and log, and results.jsonl")
    p.add_argument("--as-is", action="store_true",
                   help="one run of the spec with its own budget and seeds (make run's job)")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    plan = [(None, None)] if args.as_is else [(e, s) for e in args.epochs for s in args.seeds]
    for epochs, seed in plan:
        r = one_run(args.spec, epochs, seed, out)
        results.append(r)
        print(json.dumps(r), flush=True)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")
    print("\n| budget | seed | images | wall | reference fit (before, after) | final | "
          "val/acc (best trial) | test/acc | test/acc plain | trials | policy |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['budget']} | {r['seed']} | {r['images']:,} | "
              f"{r['wall_s']:.0f} s | {r['reference_ips']} images/s | {r['final']} | "
              f"{r['best_val_acc']} | {r['test_acc']} | {r['test_acc_plain']} | "
              f"{r['trials']} | {r['policy']} |")
    for epochs in ([] if args.as_is else args.epochs):
        accs = [r["test_acc"] for r in results if r["budget_epochs"] == epochs and r["test_acc"]]
        if accs:
            print(f"{epochs:g} epochs: median test/acc {statistics.median(accs):.4f} "
                  f"({min(accs):.4f}..{max(accs):.4f}) over {len(accs)} seeds")


if __name__ == "__main__":
    main()
