"""The most accurate model within a spec's constraints, and its accuracy/latency front:
fmnist-sweep against a bare Optuna loop at the same compute budget, and against the write-ups'
models that meet the same constraints.

- ``fmnist-sweep``: the spec as it is (``search_spaces/edge.yaml``: objectives val/acc and
  latency, multi-objective TPE and multi-objective ASHA, the recipes first, a configuration
  outside the constraints measured and never trained), the real command in its own store;
- ``optuna``: Optuna's multi-objective TPE (the same seed) with its default for several
  objectives, no pruning, in a bare ``ask``/``tell`` loop over the same space: each
  configuration built, measured with the same method (``fmnist.costs.measure``), trained with
  the same training function for the spec's ``max_epochs``, its constraint values set
  (``Trial.set_constraint``) so the sampler learns the region, until the same number of
  training images is spent (the last trial cut to what is left);
- the write-ups: every write-up model's parameters and latency measured here, the same way;
  those within the constraints, with the test accuracy the write-up reports.

Printed per tool: training images processed, wall time, the best feasible model's val/acc and
test/acc (the test set scored once, for that model only; fmnist-sweep's final model is the
command's), the front (feasible trials' val/acc against latency, on validation), its
hypervolume in the box val/acc above ``--acc-floor`` and latency under the bound, and the wall
time at which each tool first reached the other's final hypervolume; the reference ``fit``
(bench/throughput.py) before and after. Written to ``--out``: ``edge_front.json``.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/edge_front.py \\
        search_spaces/edge.yaml --out OUT
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def hypervolume(points: list[tuple[float, float]], acc_floor: float, lat_max: float) -> float:
    """The area (val/acc above ``acc_floor``, latency ms below ``lat_max``) that the points
    ``(val_acc, latency_ms)`` dominate."""
    pts = sorted((lat, acc) for acc, lat in points if acc > acc_floor and lat < lat_max)
    area, best = 0.0, acc_floor
    for i, (lat, acc) in enumerate(pts):
        best = max(best, acc)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else lat_max
        area += (nxt - lat) * (best - acc_floor)
    return area


def front(points: list[dict]) -> list[dict]:
    """The points no other is as accurate and as fast as, and better in one; fastest first."""
    from sweeps import rungs

    if not points:
        return []
    on = rungs.fronts([(-p["val_acc"], p["latency_ms"]) for p in points])[0]
    return sorted((points[i] for i in on), key=lambda p: p["latency_ms"])


def reached(points: list[dict], target: float, acc_floor: float, lat_max: float) -> float | None:
    """The wall time (s) at which the points found so far first dominate ``target`` of
    hypervolume; None where they never do."""
    seen = []
    for p in sorted(points, key=lambda p: p["t"]):
        seen.append((p["val_acc"], p["latency_ms"]))
        if hypervolume(seen, acc_floor, lat_max) >= target - 1e-12:
            return p["t"]
    return None


def writeup_models(spec) -> list[dict]:
    """Every write-up model's costs, measured here; ``feasible`` where within the spec's
    constraints."""
    from fmnist import costs, models, writeups

    out = []
    for ref in writeups.REFS:
        m = models.build(ref.family, {}, ref.preset)
        c = costs.measure(m)
        out.append({"row": ref.row, "reported_test_acc": ref.reported, **c,
                    "feasible": not costs.violations(c, spec.constraints)})
    return out


def ours(spec_path: str, name: str, seed: int, out: Path, subset: int | None,
         epochs: float | None) -> dict:
    raw = yaml.safe_load(Path(spec_path).read_text())
    raw.update(name=name)
    if subset:
        raw.setdefault("data", {})["subset"] = subset
    if epochs:
        raw["budget"] = {**(raw["budget"] if isinstance(raw.get("budget"), dict) else {}),
                         "epochs": epochs}
    raw.setdefault("sampler", {})["seed"] = seed
    run_dir = out / "ours"
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_file = run_dir / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    t0 = time.time()
    with open(run_dir / "fmnist-sweep.log", "a") as log:
        rc = subprocess.call([sys.executable, "-m", "sweeps.cli", "run", str(spec_file),
                              "--store", str(run_dir / "store")], stdout=log,
                             stderr=subprocess.STDOUT)
    wall = time.time() - t0
    from mlflow.tracking import MlflowClient

    from sweeps import tags as tag

    c = MlflowClient(f"sqlite:///{run_dir / 'store' / 'mlflow.db'}")
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id], max_results=5000)
    parent = next(r for r in runs if r.data.tags.get(tag.ROLE) == tag.PARENT)
    start = parent.info.start_time / 1000.0
    points, infeasible = [], 0
    for r in runs:
        m, t = r.data.metrics, r.data.tags
        if t.get(tag.ROLE) != tag.TRIAL:
            continue
        if t.get(tag.INFEASIBLE):
            infeasible += 1
            continue
        if r.info.status != "FINISHED" or "objective" not in m:
            continue
        points.append({"trial": t.get(tag.OPTUNA_TRIAL), "family": t.get(tag.FAMILY),
                       "val_acc": m["objective"], "latency_ms": m["cost/latency_ms"],
                       "params": m["cost/params"], "test_acc": m.get("test/acc"),
                       "epochs": m.get("epochs"),
                       "t": float(t.get(tag.TRIAL_END, r.info.end_time / 1000.0)) - start})
    pm = parent.data.metrics
    return {"rc": rc, "wall_s": round(wall, 1), "points": points, "infeasible": infeasible,
            "train_images": pm.get("sweep/train_images"),
            "test_acc": pm.get("test/acc"), "final": parent.data.tags.get(tag.FINAL),
            "tta": parent.data.tags.get(tag.TTA),
            "best_val_acc": max((p["val_acc"] for p in points), default=None)}


def optuna_loop(spec, split, seed: int, budget_images: int, time_s: float) -> dict:
    """Optuna's multi-objective TPE, no pruning: every configuration trained in full."""
    import optuna

    from fmnist import costs, evaluate, train
    from sweeps import space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=seed))
    ask = space.DefineByRun(spec)
    n_train = len(split.y_train)
    used, points, t0, models = 0, [], time.time(), {}
    tmp = Path(tempfile.mkdtemp(prefix="edge-optuna-"))
    while used + n_train <= budget_images and time.time() - t0 < time_s:
        trial = study.ask()
        config = {**ask(trial), **trial.params}
        family, preset, knobs = space.trial_setup(spec, config)
        epochs = min(spec.max_epochs, (budget_images - used) // n_train)
        measured: dict[str, float] = {}

        def on_built(model, measured=measured):
            measured.update(costs.measure(model))

        hp = {"seed": 0, **knobs, "max_epochs": epochs, "threads": 2, "inter_threads": 2}
        result = train.train(family, split, hp, preset=preset, on_built=on_built,
                             finish_by=t0 + time_s)
        used += result.epochs * n_train
        for name, v in zip(spec.constraints, costs.constraint_values(measured, spec.constraints),
                           strict=True):
            trial.set_constraint(name, v)
        val = (result.final_val or {}).get("val/acc")
        if val is None:
            val = evaluate.evaluate(result.model, split.x_val, split.y_val).accuracy
        study.tell(trial, [val, measured["latency_ms"]])
        feasible = not costs.violations(measured, spec.constraints)
        print(f"optuna trial {trial.number}: {family} {result.epochs} epochs, val/acc "
              f"{val:.4f}, {measured['latency_ms']:.3f} ms, {measured['params']:,.0f} params"
              f"{'' if feasible else ' (infeasible)'}; {used / n_train:g} epochs used",
              flush=True)
        if feasible:
            path = tmp / f"{trial.number}.keras"
            result.model.save(path)
            models[trial.number] = path
            points.append({"trial": trial.number, "family": family, "val_acc": val,
                           "latency_ms": measured["latency_ms"], "params": measured["params"],
                           "epochs": result.epochs, "t": time.time() - t0})
    best = max(points, key=lambda p: p["val_acc"], default=None)
    test = None
    if best is not None:  # the test set once, for the best feasible model
        from fmnist.runtime import keras

        model = keras.models.load_model(models[best["trial"]], compile=False)
        test = evaluate.evaluate(model, split.x_test, split.y_test).accuracy
    return {"wall_s": round(time.time() - t0, 1), "points": points, "train_images": used,
            "trials": len(study.trials), "test_acc": test,
            "best_val_acc": None if best is None else best["val_acc"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", nargs="?", default="search_spaces/edge.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--acc-floor", type=float, default=0.80)
    p.add_argument("--subset", type=int, help="a smoke run on this many images")
    p.add_argument("--epochs", type=float, help="the compute budget (default: the spec's)")
    p.add_argument("--out", required=True)
    p.add_argument("--optuna-from", metavar="JSON",
                   help="Optuna's side from an earlier edge_front.json of the same spec and seed "
                        "(it does not depend on fmnist-sweep's code): only ours runs")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from budget_curve import reference_fit

    from fmnist import data
    from sweeps import spec as spec_

    spec = spec_.override(spec_.load(a.spec), subset=a.subset)
    if a.epochs:
        spec = spec.replace(budget_epochs=a.epochs)
    lat_max = spec.constraints["latency_ms"].max
    result: dict = {"spec": a.spec, "seed": a.seed, "date": time.strftime("%Y-%m-%d"),
                    "reference_ips": [round(reference_fit())]}
    result["writeups"] = writeup_models(spec)
    result["ours"] = ours(a.spec, f"{spec.name}-bench-s{a.seed}", a.seed, out, a.subset,
                          a.epochs)
    split = data.load_split(val_fraction=spec.val_fraction, seed=spec.data_seed,
                            subset=spec.subset)
    budget = int(spec.budget_epochs * len(split.y_train))
    if a.optuna_from:
        earlier = json.loads(Path(a.optuna_from).read_text())
        if (earlier["spec"], earlier["seed"]) != (a.spec, a.seed):
            raise SystemExit(f"{a.optuna_from}: its spec and seed are {earlier['spec']} and "
                             f"{earlier['seed']}, not {a.spec} and {a.seed}")
        result["optuna"] = {**earlier["optuna"], "from": a.optuna_from,
                            "date": earlier["date"]}
    else:
        result["optuna"] = optuna_loop(spec, split, a.seed, budget, spec.budget_s or 7200)
    result["reference_ips"].append(round(reference_fit()))
    for tool in ("ours", "optuna"):
        r = result[tool]
        r["front"] = front(r["points"])
        r["hypervolume"] = hypervolume([(q["val_acc"], q["latency_ms"]) for q in r["points"]],
                                       a.acc_floor, lat_max)
    for tool, other in (("ours", "optuna"), ("optuna", "ours")):
        result[tool]["reached_other_s"] = reached(result[tool]["points"],
                                                  result[other]["hypervolume"], a.acc_floor,
                                                  lat_max)
        result[tool]["reached_own_s"] = reached(result[tool]["points"],
                                                result[tool]["hypervolume"], a.acc_floor,
                                                lat_max)
    (out / "edge_front.json").write_text(json.dumps(result, indent=1))
    print(f"reference fit: {result['reference_ips']} images/s (before, after)")
    feasible = [w for w in result["writeups"] if w["feasible"] and w["reported_test_acc"]]
    for w in result["writeups"]:
        print(f"write-up {w['row']}: {w['params']:,.0f} params, {w['latency_ms']:.3f} ms, "
              f"reported test/acc {w['reported_test_acc']}"
              + ("  (within the constraints)" if w["feasible"] else ""))
    best_w = max(feasible, key=lambda w: w["reported_test_acc"], default=None)
    for tool in ("ours", "optuna"):
        r = result[tool]
        print(f"{tool}: {r['train_images']:,.0f} training images, {r['wall_s']:.0f} s, "
              f"best feasible val/acc {r['best_val_acc']}, test/acc {r['test_acc']}, "
              f"hypervolume {r['hypervolume']:.5f}, reached its own at {r['reached_own_s']} s, "
              f"the other's at {r['reached_other_s']} s")
        for q in r["front"]:
            print(f"  front: {q['family']} trial {q['trial']}: val/acc {q['val_acc']:.4f}, "
                  f"{q['latency_ms']:.3f} ms, {q['params']:,.0f} params, found at {q['t']:.0f} s")
    o, b = result["ours"], result["optuna"]
    if best_w is not None and o["test_acc"] is not None:
        print(f"test/acc: fmnist-sweep {o['test_acc']:.4f} against the best write-up within the "
              f"constraints ({best_w['row']}, reported) {best_w['reported_test_acc']:.4f}")
    if o["test_acc"] is not None and b["test_acc"] is not None:
        print(f"test/acc: fmnist-sweep {o['test_acc']:.4f} against optuna {b['test_acc']:.4f}")
    if o["reached_other_s"] is not None and b["reached_own_s"]:
        print(f"time to optuna's front: fmnist-sweep {o['reached_other_s']:.0f} s against "
              f"optuna's {b['reached_own_s']:.0f} s: ratio "
              f"{o['reached_other_s'] / b['reached_own_s']:.2f} (target <= 0.5)")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
