"""The write-ups' own tables, reproduced: each architecture trained once with its write-up's recipe
(a fixed configuration, no search), then with the best training configuration a sweep finds (its
family's spec with the architecture held at the write-up's: learning rate, batch size, shuffle,
patience and dropout rates searched); side by side with the accuracy the write-up reports.

Every run is recorded in the store (default ``./mlruns``, browse it with ``fmnist-sweep ui``):
recipe runs as single runs in the experiment ``reproduce``, sweeps as ordinary sweeps named
``reproduce-<row>-training``, so a rerun of this script resumes the sweeps instead of repeating
them.
Runs that would take too long here can be capped (``--max-epochs``, ``--subset``); the table
says which cap each row ran under. The test set is touched once per model, at the end.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/reproduce.py --rows 000-cnn5 \\
        --max-epochs 15 --sweep-trials 8 --out bench/out
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from fmnist.writeups import REFS, Ref  # noqa: E402
from sweeps import tags as tag  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def recipe_run(ref: Ref, split, st, cap: int | None) -> dict[str, Any]:
    """Train once with the write-up's recipe; evaluate on the test set once; record it."""
    from fmnist import evaluate, train
    from sweeps import tracking

    hp = dict(ref.recipe)
    capped = cap is not None and hp["max_epochs"] > cap
    if capped:
        hp["max_epochs"] = cap
    r = train.train(ref.family, split, hp, preset=ref.preset)
    ev = evaluate.evaluate(r.model, split.x_test, split.y_test)
    s_epoch = r.seconds / len(r.history)
    tracking.log_single_run(
        st, "reproduce", {"row": ref.row, "family": ref.family, "preset": ref.preset or "",
                          **r.hp, **r.model_hp},
        r.history, {"test/acc": ev.accuracy, "test/loss": ev.loss, "params": r.params,
                    "train_s": r.seconds, "s_per_epoch": s_epoch},
        tags={tag.ROW: ref.row, "mlflow.runName": f"{ref.row}-recipe"})
    return {"test_acc": ev.accuracy, "params": r.params, "epochs": len(r.history),
            "recipe_epochs": ref.recipe["max_epochs"], "capped": capped, "s_epoch": s_epoch,
            "train_images": len(split.y_train),
            "stop_reason": r.stop_reason}


def sweep_run(ref: Ref, store: str, trials: int, max_epochs: int | None,
              subset: int | None, retrain_on, st) -> dict[str, Any]:
    """The family's spec with the row's preset and architecture: the best training configuration
    it finds, on test once.

    With ``retrain_on`` (a split), the sweep only chooses the configuration: it is then trained
    once on that split, under the same epoch cap, and that model is the one tested."""
    import ray

    from fmnist import evaluate, models, train
    from sweeps import runner, tracking
    from sweeps import spec as spec_mod

    sp = spec_mod.load(ROOT / "search_spaces" / f"{ref.family}.yaml")
    # the row's architecture stays the write-up's: its structural knobs (layers, widths, batch
    # norm) leave the search space; the training knobs and the dropout rates are searched
    raw = sp.as_mapping()
    raw["space"] = {k: v for k, v in raw["space"].items()
                    if k not in models.hyperparameters(ref.family) or "dropout" in k}
    sp = spec_mod.parse(raw, sp.path)
    sp = spec_mod.override(sp, name=f"reproduce-{ref.row}-training", preset=ref.preset,
                           trials=trials, subset=subset,
                           max_epochs=min(sp.max_epochs, max_epochs or sp.max_epochs))
    out = runner.run(sp, runner.RunOptions(store=store), say=lambda s: None)
    ray.shutdown()
    best = out.best or {}
    row = {"test_acc": best.get("test/acc"), "val_acc": best.get("objective"),
           "trials": out.done, "max_epochs": sp.max_epochs, "subset": subset}
    if retrain_on is None or not best:
        return row
    # the configuration the sweep chose, as Optuna sampled it (typed), plus the spec's fixed ones
    import optuna

    run = tracking.client(st).get_run(best["run_id"])
    number = int(run.data.tags[tag.OPTUNA_TRIAL])
    study = optuna.load_study(study_name=sp.name, storage=st.optuna_url)
    hp = {**sp.fixed, **study.trials[number].params, "max_epochs": sp.max_epochs}
    r = train.train(ref.family, retrain_on, hp, preset=ref.preset)
    ev = evaluate.evaluate(r.model, retrain_on.x_test, retrain_on.y_test)
    tracking.log_single_run(
        st, "reproduce", {"row": ref.row, "family": ref.family, "preset": ref.preset or "",
                          "chosen_by": out.parent_run_id, **r.hp, **r.model_hp},
        r.history, {"test/acc": ev.accuracy, "test/loss": ev.loss, "params": r.params,
                    "train_s": r.seconds, "s_per_epoch": r.seconds / len(r.history)},
        tags={tag.ROW: ref.row, "mlflow.runName": f"{ref.row}-swept"})
    return {**row, "subset_test_acc": row["test_acc"], "test_acc": ev.accuracy,
            "retrained_images": len(retrain_on.y_train), "epochs": len(r.history)}


def _images(n: int | None) -> str:
    return "" if n is None or n >= 48_000 else f", {n:,} training images"


def table(rows: list[dict[str, Any]]) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}%"

    lines = ["| write-up | model | params (ours) | reported | ours, their recipe | "
             "ours, after a sweep | s/epoch here (theirs) | notes |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        rec, sw = r.get("recipe"), r.get("sweep")
        recipe = "-" if rec is None else (
            f"{pct(rec['test_acc'])} ({rec['epochs']} of {rec['recipe_epochs']} epochs"
            f"{', capped' if rec['capped'] else ''}{_images(rec.get('train_images'))})")
        swept = "-" if sw is None else (
            f"{pct(sw['test_acc'])} ({sw['trials']} trials, <= {sw['max_epochs']} epochs"
            + (f", searched on {sw['subset']:,} images, best retrained on "
               f"{sw['retrained_images']:,}" if sw.get("retrained_images")
               else _images(sw.get('subset') or None)) + ")")
        theirs = "" if r["reported_s_epoch"] is None else f" ({r['reported_s_epoch']:.1f})"
        here = "-" if rec is None else f"{rec['s_epoch']:.1f}"
        params = "-" if rec is None else f"{rec['params']:,}"
        lines.append(f"| {r['writeup']} | {r['model']} | {params} | {pct(r['reported'])} | "
                     f"{recipe} | {swept} | {here}{theirs} | {r['assumed']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=[r.row for r in REFS],
                   choices=[r.row for r in REFS], metavar="ROW")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="cap on every run's epochs (the table marks capped rows)")
    p.add_argument("--subset", type=int, default=None, help="images per split (default: all)")
    p.add_argument("--parts", nargs="+", default=["recipe", "sweep"], choices=["recipe", "sweep"],
                   help="what to run for each row; rows and parts not run keep their results "
                        "from an earlier run in --out")
    p.add_argument("--sweep-trials", type=int, default=8)
    p.add_argument("--sweep-subset", type=int, default=None,
                   help="sweep on this many images per split, then train the chosen "
                        "configuration once on the full split (default: sweep on --subset)")
    p.add_argument("--store", default=None, help="default: ./mlruns")
    p.add_argument("--out", type=Path, default=Path("bench/out"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from fmnist import data
    from sweeps import tracking

    st = tracking.store(args.store)
    with tracking.init_lock(st):
        tracking.check_tracking_uri(st)
    split = data.load_split(subset=args.subset, seed=0)
    print(f"split {split.sizes()}; cap {args.max_epochs or 'none'}; "
          f"started {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    saved = args.out / "reproduce.json"
    done = {r["row"]: r for r in json.loads(saved.read_text())} if saved.exists() else {}
    for ref in (r for r in REFS if r.row in args.rows):
        row = done.setdefault(ref.row, {})
        row.update({k: getattr(ref, k) for k in ("row", "writeup", "model", "reported",
                                                  "reported_s_epoch", "assumed")})
        if "recipe" in args.parts:
            t0 = time.time()
            row["recipe"] = recipe_run(ref, split, st, args.max_epochs)
            print(f"{ref.row}: recipe test/acc {row['recipe']['test_acc']:.4f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
        if "sweep" in args.parts:
            t0 = time.time()
            row["sweep"] = sweep_run(ref, str(st.root), args.sweep_trials, args.max_epochs,
                                     args.sweep_subset or args.subset,
                                     split if args.sweep_subset else None, st)
            print(f"{ref.row}: sweep test/acc {row['sweep']['test_acc']} "
                  f"({time.time() - t0:.0f} s)", flush=True)
        saved.write_text(json.dumps(list(done.values()), indent=1))
    order = [r.row for r in REFS]
    rows = sorted(done.values(), key=lambda r: order.index(r["row"]))
    md = table(rows)
    (args.out / "reproduce.md").write_text(md + "\n")
    print("\n" + md)


if __name__ == "__main__":
    main()
