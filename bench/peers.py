"""fmnist-sweep against the tools users would pick instead, at an equal wall-clock budget.

For each family, one after another in this one process, on the same split, with the same
search ranges (the family's ``search_spaces/<family>.yaml``) and the same budget:

- ``fmnist-sweep``: the spec as it is (its sampler and scheduler: TPE and ASHA), trials
  unbounded, stopped by ``time_budget_s``;
- ``keras-tuner``: ``RandomSearch`` as write-up 002 used it (objective ``val_accuracy``,
  ``executions_per_trial=2``), plain ``model.fit`` on float32 arrays;
- ``optuna``: a bare ``study.optimize`` loop (TPE, the default median pruner) with
  ``optuna_integration.KerasPruningCallback`` on ``val_accuracy``, plain ``model.fit``.

All three build the same model (``fmnist.models.build``) from the same hyperparameters; the peers
train with Adam, the sampled batch size, shuffle and early stopping (``val_loss``, the sampled
patience, best weights restored), up to the spec's ``max_epochs``. The order of the tools
rotates from one family to the next, as this machine's speed drifts.

Printed per tool: trials finished (pruned ones not counted), best ``val/acc``, the wall time at
which each accuracy level was first reached, and the test accuracy of the tool's best model,
evaluated once at the end. Each tool's score is its own: fmnist-sweep's and Optuna's are the
validation accuracy of the model a trial ends with (best ``val_loss`` weights); Keras Tuner's
is its objective, the best epoch's ``val_accuracy`` averaged over the two executions. Written
to ``--out``: ``peers.json`` (every finished trial: seconds since the tool started, score) and
``peers.html``, best-so-far ``val/acc`` against wall time, one line per tool (and ``peers.png``
where Plotly's image exporter works). ``--from`` redraws both from saved ``peers.json`` files.

    pip install -e .[bench]
    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/peers.py --budget-min 20
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from sweeps import tags as tag  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LEVELS = {"mlp": [0.85, 0.87, 0.88, 0.89], "lenet5": [0.87, 0.89, 0.90, 0.91]}
TRAIN_KEYS = ("learning_rate", "batch_size", "shuffle", "patience")


def _spec(family: str, budget_s: float, max_epochs: int | None, subset: int | None):
    from sweeps import spec as spec_mod

    sp = spec_mod.load(ROOT / "search_spaces" / f"{family}.yaml")
    unknown = set(sp.fixed) - {"optimizer"} | (set(sp.space) - set(TRAIN_KEYS)
                                               - set(_model_keys(family)))
    if unknown or sp.fixed.get("optimizer", "adam") != "adam":
        raise SystemExit(f"{sp.path}: the peers only reproduce {TRAIN_KEYS}, Adam and the "
                         f"model's own hyperparameters; this spec also sets {sorted(unknown)}")
    return spec_mod.override(sp, name=f"peers-{family}-{time.strftime('%Y%m%d-%H%M%S')}",
                             trials=100_000, time_budget_s=budget_s, max_epochs=max_epochs,
                             subset=subset)


def _model_keys(family: str) -> list[str]:
    from fmnist import models

    return list(models.hyperparameters(family))


def _compiled(family: str, hp: dict[str, Any]):
    """What a user of either peer writes: the same builder, Adam, sparse cross-entropy."""
    from fmnist import models

    model = models.build(family, {k: v for k, v in hp.items() if k not in TRAIN_KEYS})
    model.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _fit(model, hp: dict[str, Any], split, max_epochs: int, callbacks=()):
    """Plain ``model.fit`` on float32 arrays, early stopping on val_loss with best weights."""
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=hp["patience"],
                                         restore_best_weights=True)
    return model.fit(split.x_train.astype("float32"), split.y_train,
                     batch_size=hp["batch_size"], shuffle=hp["shuffle"], epochs=max_epochs,
                     validation_data=(split.x_val.astype("float32"), split.y_val),
                     callbacks=[stop, *callbacks], verbose=0)


class Deadline(keras.callbacks.Callback):
    """Ends a fit at the first epoch end past the budget, as Ray's time_budget_s ends ours."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def on_epoch_end(self, epoch, logs=None):
        if time.time() >= self.deadline:
            self.model.stop_training = True


def run_ours(sp, split) -> dict[str, Any]:
    import ray

    from sweeps import runner, tracking

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        out = runner.run(sp, runner.RunOptions(store=tmp), say=lambda s: None)
        wall = time.time() - t0
        runs = [r for r in tracking.trial_runs(tracking.store(tmp), sp.name)
                if r.info.status == "FINISHED"]
        points = sorted((float(r.data.tags[tag.TRIAL_END]) - t0, r.data.metrics["objective"])
                        for r in runs)
    ray.shutdown()
    return {"points": points, "wall_s": wall, "test_acc": out.best.get("test/acc"),
            "started": out.ran_now}


def run_keras_tuner(sp, split, tmp: str) -> dict[str, Any]:
    import keras_tuner as kt

    t0 = time.time()
    deadline = t0 + sp.time_budget_s
    points: list[tuple[float, float]] = []
    in_budget: set[str] = set()

    class Model(kt.HyperModel):
        def build(self, hp):
            values = {}
            for name, d in sp.space.items():
                if d.type == "choice" and set(d.values) == {True, False}:
                    values[name] = hp.Boolean(name)  # hp.Choice turns booleans into 0 / 1
                elif d.type == "choice":
                    values[name] = hp.Choice(name, list(d.values))
                elif d.type == "int":
                    values[name] = hp.Int(name, int(d.low), int(d.high), step=int(d.step or 1))
                else:
                    values[name] = hp.Float(name, d.low, d.high, sampling="log"
                                            if d.type == "loguniform" else "linear")
            return _compiled(sp.family, values)

        def fit(self, hp, model, *args, callbacks=(), **kwargs):
            values = {name: hp.get(name) for name in sp.space}
            return _fit(model, values, split, sp.max_epochs, [Deadline(deadline), *callbacks])

    class Search(kt.RandomSearch):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            now = time.time()
            if trial.score is not None and now <= deadline:
                points.append((now - t0, float(trial.score)))
                in_budget.add(trial.trial_id)
            if now >= deadline:
                self.oracle.max_trials = len(self.oracle.trials)  # no new trial

    tuner = Search(Model(), objective="val_accuracy", max_trials=100_000,
                   executions_per_trial=2, seed=sp.sampler_seed, directory=tmp,
                   project_name="kt", overwrite=True)
    tuner.search(verbose=0)
    wall = time.time() - t0
    ranked = [t for t in tuner.oracle.get_best_trials(len(tuner.oracle.trials))
              if t.trial_id in in_budget]
    best = tuner.load_model(ranked[0]) if ranked else None
    return {"points": points, "wall_s": wall, "test_acc": _test_acc(best, split),
            "started": len(tuner.oracle.trials)}


def run_optuna(sp, split) -> dict[str, Any]:
    import optuna
    from optuna_integration import KerasPruningCallback

    from sweeps import space

    t0 = time.time()
    deadline = t0 + sp.time_budget_s
    points: list[tuple[float, float]] = []
    best: dict[str, Any] = {"value": -1.0, "model": None}

    def objective(trial: optuna.Trial) -> float:
        space.DefineByRun(sp)(trial)  # the same suggest calls as fmnist-sweep's searcher
        hp = dict(trial.params)
        model = _compiled(sp.family, hp)
        _fit(model, hp, split, sp.max_epochs,
             [KerasPruningCallback(trial, "val_accuracy"), Deadline(deadline)])
        value = float(model.evaluate(split.x_val.astype("float32"), split.y_val,
                                     verbose=0, batch_size=512)[1])
        if value > best["value"] and time.time() <= deadline:
            best.update(value=value, model=model)
        return value

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE and time.time() <= deadline:
            points.append((time.time() - t0, trial.value))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=sp.sampler_seed))
    study.optimize(objective, timeout=sp.time_budget_s, callbacks=[record])
    wall = time.time() - t0
    return {"points": points, "wall_s": wall, "test_acc": _test_acc(best["model"], split),
            "started": len(study.trials)}


def _test_acc(model, split) -> float | None:
    if model is None:
        return None
    return float(model.evaluate(split.x_test.astype("float32"), split.y_test, verbose=0,
                                batch_size=512)[1])


def first_reached(points: list[tuple[float, float]], level: float) -> float | None:
    return next((t for t, v in sorted(points) if v >= level), None)


def best_so_far(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out, best = [], float("-inf")
    for t, v in sorted(points):
        best = max(best, v)
        out.append((t, best))
    return out


def summary(family: str, results: dict[str, dict[str, Any]], levels: list[float]) -> str:
    head = ("| tool | trials finished (started) | best val/acc | "
            + " | ".join(f"first >= {lv:.2f}" for lv in levels) + " | test/acc of best |")
    rows = [head, "|" + " --- |" * (4 + len(levels))]
    for tool, r in results.items():
        pts, test = r["points"], r["test_acc"]
        best = max((v for _, v in pts), default=None)
        times = [first_reached(pts, lv) for lv in levels]
        rows.append(f"| {tool} | {len(pts)} ({r['started']}) | "
                    f"{'-' if best is None else f'{best:.4f}'} | "
                    + " | ".join("never" if t is None else f"{t / 60:.1f} min" for t in times)
                    + f" | {'-' if test is None else f'{test:.4f}'} |")
    ours = results.get("fmnist-sweep")
    if ours and ours["points"]:
        for tool, r in results.items():
            if tool == "fmnist-sweep" or not r["points"]:
                continue
            peer_best = max(v for _, v in r["points"])
            peer_t = first_reached(r["points"], peer_best)
            our_t = first_reached(ours["points"], peer_best)
            ratio = "never" if our_t is None else f"{our_t / peer_t:.2f}x their time"
            rows.append(f"\n{family}: fmnist-sweep reached {tool}'s best ({peer_best:.4f}, at "
                        f"{peer_t / 60:.1f} min) at "
                        f"{'-' if our_t is None else f'{our_t / 60:.1f} min'} ({ratio})")
    return "\n".join(rows)


def plot(all_results: dict[str, dict[str, dict[str, Any]]], out: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fams = list(all_results)
    fig = make_subplots(rows=1, cols=len(fams), subplot_titles=fams)
    colors = {"fmnist-sweep": "#1f77b4", "keras-tuner": "#ff7f0e", "optuna": "#2ca02c"}
    for col, fam in enumerate(fams, start=1):
        for tool, r in all_results[fam].items():
            curve = best_so_far(r["points"])
            fig.add_trace(go.Scatter(
                x=[t / 60 for t, _ in curve], y=[v for _, v in curve], mode="lines+markers",
                line_shape="hv", name=tool, legendgroup=tool, showlegend=col == 1,
                line={"color": colors.get(tool)}), row=1, col=col)
        fig.update_xaxes(title_text="wall time (min)", row=1, col=col)
    fig.update_yaxes(title_text="best val/acc so far", row=1, col=1)
    fig.update_layout(title="Best validation accuracy against wall time, equal budget",
                      width=550 * len(fams), height=450)
    fig.write_html(out / "peers.html", include_plotlyjs=True)
    try:
        fig.write_image(out / "peers.png", scale=1)
    except Exception as e:  # noqa: BLE001 - no image exporter here: the HTML stands alone
        print(f"(no PNG: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=["mlp", "lenet5"])
    p.add_argument("--budget-min", type=float, default=20.0, help="wall-clock minutes per tool")
    p.add_argument("--max-epochs", type=int, default=None, help="default: the spec's")
    p.add_argument("--subset", type=int, default=None,
                   help="images per split (stratified); default: the full 48,000/12,000/10,000")
    p.add_argument("--tools", nargs="+", default=["fmnist-sweep", "keras-tuner", "optuna"])
    p.add_argument("--out", type=Path, default=Path("bench/out"))
    p.add_argument("--from", dest="saved", nargs="+", type=Path, metavar="JSON",
                   help="run nothing: summarise and plot the peers.json files of earlier runs "
                        "(e.g. one per family) together")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.saved:
        merged: dict[str, dict[str, dict[str, Any]]] = {}
        for path in args.saved:
            saved = json.loads(path.read_text())
            for family, results in saved["results"].items():
                merged[family] = results
                print(f"\n{family} (from {path}: budget {saved['budget_min']:g} min per tool, "
                      f"max_epochs {saved['max_epochs']}, subset {saved['subset']})\n")
                print(summary(family, results, LEVELS.get(family, [0.85, 0.88, 0.9])))
        plot(merged, args.out)
        print(f"\nwritten: {args.out / 'peers.html'}")
        return

    from fmnist import data

    print(f"budget {args.budget_min:g} min per tool; families {args.families}; "
          f"started {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    all_results: dict[str, dict[str, dict[str, Any]]] = {}
    for i, family in enumerate(args.families):
        sp = _spec(family, args.budget_min * 60, args.max_epochs, args.subset)
        split = data.load_split(val_fraction=sp.val_fraction, seed=sp.data_seed,
                                subset=sp.subset)
        tools = args.tools[i % len(args.tools):] + args.tools[:i % len(args.tools)]
        results: dict[str, dict[str, Any]] = {}
        for tool in tools:
            print(f"{family}: {tool} ...", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                r = (run_ours(sp, split) if tool == "fmnist-sweep"
                     else run_keras_tuner(sp, split, tmp) if tool == "keras-tuner"
                     else run_optuna(sp, split))
            results[tool] = r
            best = max((v for _, v in r["points"]), default=float("nan"))
            print(f"{family}: {tool}: {len(r['points'])} trials finished in "
                  f"{r['wall_s'] / 60:.1f} min, best val/acc {best:.4f}", flush=True)
        all_results[family] = {t: results[t] for t in args.tools if t in results}
        print(f"\n{family} ({split.sizes()}, max_epochs {sp.max_epochs}, "
              f"budget {args.budget_min:g} min per tool)\n")
        print(summary(family, all_results[family], LEVELS.get(family, [0.85, 0.88, 0.9])),
              flush=True)
        (args.out / "peers.json").write_text(json.dumps(
            {"budget_min": args.budget_min, "max_epochs": args.max_epochs,
             "subset": args.subset, "results": all_results}, indent=1))
    plot(all_results, args.out)
    print(f"\nwritten: {args.out / 'peers.json'}, {args.out / 'peers.html'}")


if __name__ == "__main__":
    main()
