"""Time to accuracy at an equal budget: fmnist-sweep against Keras Tuner's Hyperband, a bare
Optuna loop (TPE and its HyperbandPruner) and Ray Tune (its default search and ASHA).

The budget is wall-clock minutes per tool (``--budget-min``) or training images
(``--budget-epochs E``: E epochs of the training split, counted over every trial of a tool and,
for ours, the refit; whatever the machine's speed, the same work): a tool starts no trial once it
is spent, and each trial running ends at its next epoch.

One spec (default ``search_spaces/all.yaml``: its families and their spaces), one split, one
wall budget per tool, the tools one after another in this process (``--from`` merges the JSON of
several invocations of a day). Before each tool, the machine's speed: one plain Keras ``fit``
of minivgg on 12,000 images (``bench/throughput.py``'s reference).

- ``fmnist-sweep``: ``fmnist-sweep run`` with ``--budget`` (the whole command: search, refit,
  ensemble, TTA, test evaluation and report), the spec as it is (warm starts included);
- ``optuna``: ``study.optimize`` with TPE and ``HyperbandPruner`` on ``fmnist.train.train``
  (the same define-by-run space and knobs as ours, the trial's val/acc reported each epoch);
- ``ray-tune``: ``Tuner`` with its default search (random variants of the space: the family a
  ``tune.choice``, each family's knobs under ``FAMILY/KNOB``) and ``ASHAScheduler``, on
  ``fmnist.train.train``;
- ``keras-tuner``: ``Hyperband`` (objective ``val_accuracy``, factor 3, ``max_epochs`` the
  spec's), as 002 used Keras Tuner: the family a ``hp.Choice`` with its knobs in a
  ``conditional_scope``, the model from ``fmnist.models.build``, compiled with the optimizer its
  preset's recipe names (SGD with Nesterov momentum, else Adam) and ``model.fit``.

Each tool's chosen model is its own way of choosing: the best val/acc (the trial's final model).
Printed per tool: trials started and finished, best val/acc, the test accuracy of its chosen
model, plain and with ``flip_shift`` test-time augmentation (ours: the best trial's plain, and
the final model's after refit, ensemble and TTA, with and without its TTA), training images
processed, and the wall time each first reached every
level of ``--levels``. Written to ``--out``: ``time_to_accuracy.json`` and ``.html`` (best
val/acc so far against time, one line per tool).

    pip install -e .[bench]
    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/time_to_accuracy.py \\
        --budget-min 30 --out bench/out/tta
    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/time_to_accuracy.py \\
        --budget-epochs 25 --tools optuna --out bench/out/tta25-optuna
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import best_so_far, first_reached  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("fmnist-sweep", "optuna", "ray-tune", "keras-tuner")
GAP, RATIO = 0.5, 0.5  # the targets: test/acc points above each peer; share of its time
PEER_TTA = "flip_shift"  # the test-time augmentation a peer's model is also scored with


class Limit:
    """A tool's budget: seconds from its start, and/or training images (``images``)."""

    def __init__(self, seconds: float | None, images: int | None):
        self.t0, self.seconds, self.images = time.time(), seconds, images

    def spent(self, used: int) -> bool:
        return ((self.seconds is not None and time.time() >= self.t0 + self.seconds)
                or (self.images is not None and used >= self.images))


def _setup(sp, config: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """(family, preset, knobs) of a peer's sampled ``config``, as a trial of ours trains it."""
    from sweeps import record, space

    family, preset, knobs = space.trial_setup(sp, config)
    seed = record.trial_seed(sp)
    return family, preset, {"seed": seed, **knobs, "max_epochs": sp.max_epochs}


def _test_acc(model, split) -> dict[str, float | None]:
    """The chosen model's test accuracy, plain and with ``PEER_TTA`` (scored once each)."""
    if model is None:
        return {"test_acc": None, "test_acc_tta": None}
    from fmnist import tta

    return {k: float((tta.predict(model, split.x_test, mode).argmax(1) == split.y_test).mean())
            for k, mode in (("test_acc", "none"), ("test_acc_tta", PEER_TTA))}


def run_ours(sp, split, limit: Limit, data_dir: str | None,
             log: Path | None = None) -> dict[str, Any]:
    """The whole ``run`` command under ``limit`` (the spec's ``budget``: seconds and/or epochs of
    the training split); its messages, with the minutes since its start, go to ``log``."""
    import ray

    from sweeps import runner, tracking
    from sweeps import tags as tag

    with tempfile.TemporaryDirectory() as tmp, \
            (log.open("w") if log else contextlib.nullcontext()) as f:
        t0 = time.time()

        def say(line: str) -> None:
            if f:
                print(f"{(time.time() - t0) / 60:5.1f} min  {line}", file=f, flush=True)

        epochs = None if limit.images is None else limit.images / len(split.y_train)
        out = runner.run(sp.replace(budget_s=limit.seconds, budget_epochs=epochs),
                         runner.RunOptions(store=tmp, data_dir=data_dir,
                                           started=time.monotonic()), say=say)
        wall = time.time() - t0
        st = tracking.store(tmp)
        runs = tracking.trial_runs(st, sp.name)
        fin = [r for r in runs if r.info.status == "FINISHED"]
        points = sorted((float(r.data.tags[tag.TRIAL_END]) - t0, r.data.metrics["objective"])
                        for r in fin)
        parent = tracking.client(st).get_run(out.parent_run_id)
        final_id = parent.data.tags.get(tag.FINAL_RUN_ID)
        final_run = tracking.client(st).get_run(final_id) if final_id else None
        best = max(fin, key=lambda r: r.data.metrics["objective"], default=None)
    ray.shutdown()
    return {"points": points, "wall_s": wall, "started": len(runs), "finished": len(fin),
            "test_acc": None if best is None else best.data.metrics.get("test/acc_plain"),
            "final_test_acc": parent.data.metrics.get("test/acc"),
            "final_test_acc_plain": (final_run.data.metrics.get("test/acc_plain")
                                     if final_run else None),
            "final_tta": parent.data.tags.get(tag.TTA, "none"),
            "final": parent.data.tags.get(tag.FINAL, ""),
            "train_images": parent.data.metrics.get("sweep/train_images", 0)}


def run_optuna(sp, split, limit: Limit) -> dict[str, Any]:
    import optuna

    from fmnist import evaluate, train
    from sweeps import space

    t0 = time.time()
    points: list[tuple[float, float]] = []
    best: dict[str, Any] = {"value": -1.0, "model": None}
    images = [0]
    define = space.DefineByRun(sp)

    def objective(trial: optuna.Trial) -> float:
        define(trial)  # the same suggest calls as our searcher's
        family, preset, hp = _setup(sp, dict(trial.params))
        pruned = []

        def on_epoch(m: dict[str, Any]) -> bool:
            images[0] += len(split.y_train)
            trial.report(m["val/acc"], int(m["epoch"]))
            if trial.should_prune():
                pruned.append(True)
                return True
            return limit.spent(images[0])

        r = train.train(family, split, hp, preset=preset, on_epoch=on_epoch)
        if pruned:
            raise optuna.TrialPruned()
        val = r.final_val or {"val/acc": evaluate.evaluate(r.model, split.x_val,
                                                           split.y_val).accuracy}
        if val["val/acc"] > best["value"]:
            best.update(value=val["val/acc"], model=r.model)
        return val["val/acc"]

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            points.append((time.time() - t0, trial.value))
        if limit.spent(images[0]):
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=sp.sampler_seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=sp.max_epochs,
                                              reduction_factor=3))
    study.optimize(objective, timeout=limit.seconds, callbacks=[record])
    return {"points": points, "wall_s": time.time() - t0, "started": len(study.trials),
            "finished": len(points), **_test_acc(best["model"], split),
            "train_images": images[0]}


def _ray_space(sp) -> dict[str, Any]:
    from ray import tune

    def one(d):
        if d.type == "choice":
            return tune.choice(list(d.values))
        if d.type == "int":
            return tune.randint(int(d.low), int(d.high) + 1)
        if d.type == "loguniform":
            return tune.loguniform(d.low, d.high)
        return tune.uniform(d.low, d.high)

    out = {k: one(d) for k, d in sp.space.items()}
    for f, own in sp.spaces.items():
        out.update({f"{f}/{k}": one(d) for k, d in own.items()})
    if sp.multi:
        out["family"] = tune.choice(list(sp.families))
    return out


def run_ray_tune(sp, split, limit: Limit, tmp: str) -> dict[str, Any]:
    """Ray Tune's default search and ASHA; the trials' images are summed by the driver
    (``Record``) and written to a file each trial reads at its epochs' ends (its workers are
    other processes): a trial ends at its next epoch once the budget is spent, and the Tuner
    stops when none runs."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    t0 = time.time()
    points: list[tuple[float, float]] = []
    counts = {"started": 0, "images": 0, "running": 0}
    per_trial: dict[str, int] = {}
    used_file = Path(tmp) / "images_used"
    used_file.write_text("0")

    def trainable(config, split=None):
        from fmnist import evaluate, train

        def used() -> int:
            return int(used_file.read_text() or 0)

        if limit.spent(used()):  # started as the budget ran out: nothing trained
            time.sleep(1.0)  # Tune starts the next at once, until the trials running end
            tune.report({"val/acc": 0.0, "images": 0})
            return

        family = config.get("family", sp.families[0])
        sampled = {k: config[k] for k in sp.space}
        sampled.update({k: config[f"{family}/{k}"] for k in sp.spaces.get(family, {})})
        fam, preset, hp = _setup(sp, {"family": family, **sampled})
        hp.update(threads=max(1, int(sp.cpu)), inter_threads=min(2, max(1, int(sp.cpu))))

        def on_epoch(m: dict[str, Any]) -> bool:
            if m["epoch"] < sp.max_epochs:
                tune.report({"val/acc": m["val/acc"], "images": m["epoch"] * len(split.y_train)})
            return limit.spent(used())

        r = train.train(fam, split, hp, preset=preset, on_epoch=on_epoch)
        val = r.final_val or {"val/acc": evaluate.evaluate(r.model, split.x_val,
                                                           split.y_val).accuracy}
        with tempfile.TemporaryDirectory() as tmp:
            r.model.save(os.path.join(tmp, "model.keras"))
            tune.report({"val/acc": val["val/acc"], "images": r.epochs * len(split.y_train),
                         "complete": 1}, checkpoint=tune.Checkpoint.from_directory(tmp))

    class Record(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            counts["running"] += 1

        def on_trial_result(self, iteration, trials, trial, result, **info):
            per_trial[trial.trial_id] = int(result.get("images", 0))
            counts["images"] = sum(per_trial.values())
            used_file.write_text(str(counts["images"]))

        def on_trial_complete(self, iteration, trials, trial, **info):
            counts["running"] -= 1
            last = trial.last_result or {}
            counts["started"] += bool(last.get("images"))  # not the ones started when spent
            if last.get("complete"):
                points.append((time.time() - t0, float(last["val/acc"])))

        on_trial_error = on_trial_complete

    class Spent(tune.Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):  # the budget spent and no trial left to end at its epoch
            return limit.spent(counts["images"]) and counts["running"] <= 0

    ray.init(address="local", include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, ignore_reinit_error=True)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    with tempfile.TemporaryDirectory() as tmp:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trainable, split=split),
                                {"cpu": sp.cpu}),
            param_space=_ray_space(sp),
            tune_config=tune.TuneConfig(
                metric="val/acc", mode="max", num_samples=-1, time_budget_s=limit.seconds,
                scheduler=ASHAScheduler(max_t=sp.max_epochs + 1, grace_period=1,
                                        reduction_factor=3), reuse_actors=True),
            run_config=tune.RunConfig(storage_path=tmp, callbacks=[Record()], stop=Spent(),
                                      verbose=0))
        grid = tuner.fit()
        done = [r for r in grid if r.metrics and r.metrics.get("complete") and r.checkpoint]
        model = None
        if done:
            from fmnist.runtime import keras

            pick = max(done, key=lambda r: r.metrics["val/acc"])
            with pick.checkpoint.as_directory() as d:
                model = keras.models.load_model(os.path.join(d, "model.keras"), compile=False)
        test = _test_acc(model, split)
    ray.shutdown()
    return {"points": sorted(points), "wall_s": time.time() - t0, "started": counts["started"],
            "finished": len(points), **test, "train_images": counts["images"]}


def run_keras_tuner(sp, split, limit: Limit, tmp: str) -> dict[str, Any]:
    import keras_tuner as kt

    from fmnist import models
    from fmnist.runtime import keras

    t0 = time.time()
    points: list[tuple[float, float]] = []
    images = [0]
    n = len(split.y_train)

    def hp_of(hp, name, d):
        if d.type == "choice" and set(d.values) == {True, False}:
            return hp.Boolean(name)
        if d.type == "choice":
            return hp.Choice(name, list(d.values))
        if d.type == "int":
            return hp.Int(name, int(d.low), int(d.high))
        return hp.Float(name, d.low, d.high,
                        sampling="log" if d.type == "loguniform" else "linear")

    def sampled(hp) -> tuple[str, dict[str, Any]]:
        family = hp.Choice("family", list(sp.families)) if sp.multi else sp.families[0]
        values = {k: hp_of(hp, k, d) for k, d in sp.space.items()}
        for f in sp.families:
            own = sp.spaces.get(f, {})
            if not own:
                continue
            if sp.multi:
                with hp.conditional_scope("family", [f]):
                    got = {k: hp_of(hp, f"{f}/{k}", d) for k, d in own.items()}
            else:
                got = {k: hp_of(hp, f"{f}/{k}", d) for k, d in own.items()}
            if f == family:
                values.update(got)
        return family, values

    class Model(kt.HyperModel):
        def build(self, hp):
            family, values = sampled(hp)
            fam, preset, knobs = _setup(sp, {"family": family, **values})
            model_hp = {k: v for k, v in knobs.items() if k in models.hyperparameters(fam)}
            recipe = models.recipe(fam, preset) if preset else {}
            lr = knobs.get("learning_rate", recipe.get("learning_rate", 1e-3))
            if recipe.get("optimizer") == "sgd":
                opt = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
            else:
                opt = keras.optimizers.Adam(lr)
            model = models.build(fam, model_hp, preset)
            model.compile(optimizer=opt, loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            return model

        def fit(self, hp, model, *args, callbacks=(), **kwargs):
            family, values = sampled(hp)
            _, preset, knobs = _setup(sp, {"family": family, **values})
            recipe = models.recipe(family, preset) if preset else {}
            batch = knobs.get("batch_size", recipe.get("batch_size", 128))
            return model.fit(split.x_train.astype("float32"), split.y_train, batch_size=batch,
                             validation_data=(split.x_val.astype("float32"), split.y_val),
                             callbacks=[Count(), *callbacks], **{"verbose": 0, **kwargs})

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            images[0] += n
            if limit.spent(images[0]):
                self.model.stop_training = True

    class Search(kt.Hyperband):
        def run_trial(self, trial, *args, **kwargs):
            if limit.spent(images[0]):
                raise kt.errors.FatalError("the budget is spent")
            return super().run_trial(trial, *args, **kwargs)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if trial.score is not None:
                points.append((time.time() - t0, float(trial.score)))

    tuner = Search(Model(), objective="val_accuracy", max_epochs=sp.max_epochs, factor=3,
                   hyperband_iterations=1000, seed=sp.sampler_seed, directory=tmp,
                   project_name="kt", overwrite=True)
    try:
        tuner.search(verbose=0)
    except kt.errors.FatalError:
        pass
    wall = time.time() - t0
    best = tuner.get_best_models(1)[0] if points else None
    return {"points": points, "wall_s": wall, "started": len(tuner.oracle.trials),
            "finished": len(points), **_test_acc(best, split),
            "train_images": images[0]}


def _speed(r: dict[str, Any]) -> str:
    """The reference fit before the tool ran, and after where it was measured."""
    after = f" / {r['ref_ips_after']:.0f}" if r.get("ref_ips_after") else ""
    return f"{r.get('ref_ips', 0):.0f}{after} images/s"


def summary(results: dict[str, dict[str, Any]], levels: list[float]) -> str:
    head = ("| tool | trials finished (started) | best val/acc | test/acc of its choice, "
            f"plain / {PEER_TTA} | training images | reference fit (before / after) | "
            + " | ".join(f"first >= {lv:.2f}" for lv in levels) + " |")
    rows = [head, "|" + " --- |" * (6 + len(levels))]
    for tool, r in results.items():
        pts = r["points"]
        best = max((v for _, v in pts), default=None)
        test = "-" if r["test_acc"] is None else f"{r['test_acc']:.4f}"
        if r.get("test_acc_tta") is not None:
            test += f" / {r['test_acc_tta']:.4f}"
        if r.get("final_test_acc") is not None:
            test += (f" (final, {r['final']}: {r.get('final_test_acc_plain') or 0:.4f} / "
                     f"{r['final_test_acc']:.4f} {r.get('final_tta', '')})")
        times = [first_reached(pts, lv) for lv in levels]
        rows.append(f"| {tool} | {r['finished']} ({r['started']}) | "
                    f"{'-' if best is None else f'{best:.4f}'} | {test} | "
                    f"{r['train_images']:,.0f} | {_speed(r)} | "
                    + " | ".join("never" if t is None else f"{t / 60:.1f} min" for t in times)
                    + " |")
    rows += ["", *targets(results)]
    return "\n".join(rows)


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's targets against each peer: fmnist-sweep's test accuracy (its final model's)
    at least ``GAP`` points above the peer's chosen model's, without test-time augmentation on
    either side and with it on both (ours: its final TTA, where validation kept one; the
    peer's: ``PEER_TTA``), and the peer's best val/acc reached in at most ``RATIO`` of the
    peer's time."""
    ours = results.get("fmnist-sweep")
    if not ours:
        return []
    sides = {"plain": (ours.get("final_test_acc_plain") or ours.get("test_acc"), "test_acc"),
             "with TTA": (ours.get("final_test_acc") or ours.get("test_acc"), "test_acc_tta")}
    out = []
    for tool, r in results.items():
        if tool == "fmnist-sweep":
            continue
        for side, (our_test, key) in sides.items():
            if r.get(key) is None or our_test is None:
                continue
            gap = 100 * (our_test - r[key])
            out.append(f"test/acc {side}: fmnist-sweep {our_test:.4f} against {tool} "
                       f"{r[key]:.4f}: {gap:+.2f} points (target >= +{GAP:.1f}: "
                       f"{'met' if gap >= GAP else 'not met'})")
        if not ours["points"] or not r["points"]:
            continue
        peer_best = max(v for _, v in r["points"])
        peer_t = first_reached(r["points"], peer_best)
        our_t = first_reached(ours["points"], peer_best)
        ratio = None if our_t is None else our_t / max(peer_t, 1e-9)
        out.append(f"time: fmnist-sweep reached {tool}'s best val/acc ({peer_best:.4f}, at "
                   f"{peer_t / 60:.1f} min) at "
                   f"{'never' if our_t is None else f'{our_t / 60:.1f} min'}: "
                   f"{'-' if ratio is None else f'{ratio:.2f}x'} its time (target <= "
                   f"{RATIO:.1f}x: {'met' if ratio is not None and ratio <= RATIO else 'not met'})")
    return out


def plot(results: dict[str, dict[str, Any]], out: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for tool, r in results.items():
        curve = best_so_far(r["points"])
        fig.add_scatter(x=[t / 60 for t, _ in curve], y=[v for _, v in curve],
                        mode="lines+markers", line_shape="hv", name=tool)
    fig.update_layout(title="Best validation accuracy so far against wall time, equal budget",
                      xaxis_title="wall time (min)", yaxis_title="best val/acc so far")
    fig.write_html(out / "time_to_accuracy.html", include_plotlyjs=True)
    try:
        fig.write_image(out / "time_to_accuracy.png", scale=1, width=900, height=500)
    except Exception as e:  # noqa: BLE001 - no image exporter here: the HTML stands alone
        print(f"(no PNG: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=Path, default=ROOT / "search_spaces" / "all.yaml")
    p.add_argument("--budget-min", type=float, default=30.0, help="wall-clock minutes per tool")
    p.add_argument("--budget-epochs", type=float, default=None,
                   help="a compute budget instead: epochs of the training split per tool")
    p.add_argument("--max-epochs", type=int, default=None, help="default: the spec's")
    p.add_argument("--subset", type=int, default=None,
                   help="images per split (stratified); default: the full 48,000/12,000/10,000")
    p.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    p.add_argument("--levels", type=float, nargs="+", default=[0.90, 0.92, 0.93, 0.94])
    p.add_argument("--ref-subset", type=int, default=12_000,
                   help="training images of the reference fit (bench/throughput.py's: 12,000)")
    p.add_argument("--out", type=Path, default=Path("bench/out/time_to_accuracy"))
    p.add_argument("--from", dest="saved", nargs="+", type=Path, metavar="JSON",
                   help="run nothing: merge the time_to_accuracy.json of earlier invocations")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.saved:
        results: dict[str, dict[str, Any]] = {}
        runs = []
        for path in args.saved:
            saved = json.loads(path.read_text())
            print(f"{path}: {saved['spec']}, budget {_budget(saved)}, "
                  f"{saved['split']}, started {saved['started']}")
            results.update(saved["results"])
            runs.append({k: saved[k] for k in ("spec", "budget_min", "budget_epochs", "split",
                                               "max_epochs", "started") if k in saved})
        (args.out / "time_to_accuracy.json").write_text(json.dumps(
            {"merged": runs, "results": results}, indent=1))
    else:
        results = measure(args)
    print(summary(results, args.levels))
    plot(results, args.out)
    print(f"\nwritten: {args.out / 'time_to_accuracy.json'}, "
          f"{args.out / 'time_to_accuracy.html'}")


def _budget(saved: dict[str, Any]) -> str:
    if saved.get("budget_epochs"):
        return f"{saved['budget_epochs']:g} epochs"
    return f"{saved['budget_min']:g} min"


def measure(args) -> dict[str, dict[str, Any]]:
    from throughput import plain

    from fmnist import data
    from sweeps import spec as spec_mod

    sp = spec_mod.load(args.spec)
    sp = spec_mod.override(sp, name=f"tta-{sp.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                           trials=100_000, max_epochs=args.max_epochs, subset=args.subset)
    split = data.load_split(val_fraction=sp.val_fraction, seed=sp.data_seed, subset=sp.subset)
    ref = data.load_split(subset=args.ref_subset, seed=0)
    budget_s = None if args.budget_epochs else args.budget_min * 60
    images = None if not args.budget_epochs else round(args.budget_epochs * len(split.y_train))
    started = time.strftime("%Y-%m-%d %H:%M")
    saved = {"budget_min": None if budget_s is None else args.budget_min,
             "budget_epochs": args.budget_epochs}
    print(f"{sp.path}: families {sp.family}, {split.sizes()}, max_epochs {sp.max_epochs}, "
          f"budget {_budget(saved)} per tool, started {started}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    def reference_ips() -> float:  # the machine's speed: one plain fit of a reference model
        return plain("minivgg", ref, 2, 64, 0)[0]

    for tool in args.tools:
        ref_ips = reference_ips()
        print(f"{tool}: reference fit {ref_ips:.0f} images/s; running ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            limit = Limit(budget_s, images)
            r = (run_ours(sp, split, limit, None, args.out / "fmnist-sweep.log")
                 if tool == "fmnist-sweep"
                 else run_optuna(sp, split, limit) if tool == "optuna"
                 else run_ray_tune(sp, split, limit, tmp) if tool == "ray-tune"
                 else run_keras_tuner(sp, split, limit, tmp))
        r["ref_ips"], r["ref_ips_after"] = ref_ips, reference_ips()  # before it ran, and after
        results[tool] = r
        best = max((v for _, v in r["points"]), default=float("nan"))
        print(f"{tool}: {r['finished']} of {r['started']} trials finished in "
              f"{r['wall_s'] / 60:.1f} min, best val/acc {best:.4f}, test/acc "
              f"{r['test_acc']}", flush=True)
        (args.out / "time_to_accuracy.json").write_text(json.dumps(
            {"spec": str(args.spec), **saved, "split": split.sizes(),
             "max_epochs": sp.max_epochs, "started": started, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
