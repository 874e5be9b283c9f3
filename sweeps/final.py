"""After the search: the final model, chosen on the validation split, and the test set.

From the best finished trial (on the spec's objective), as the spec's ``final:`` asks:

- ``refit``: its configuration trained again on train + validation images for its best epoch
  count, a run of role ``tags.REFIT`` under the parent;
- ``ensemble: k``: greedy ensemble selection (``fmnist.ensemble``) over the top ``2k`` trials'
  models on validation probabilities, a run of role ``tags.ENSEMBLE``;
- ``tta``: test-time augmentation where it raised the best trial's validation accuracy.

Every choice is made on validation data that did not build the models compared: the validation
split is cut in two halves (``halves``, seeded); the refit trains on the training images and the
first half, the ensemble's members are picked on the first half, and the best trial, a refit
that trained all its epochs and the ensemble are compared on the second half (``_choose``).
Each model is evaluated on the test set once (``test/acc`` with the chosen augmentation,
``test/acc_plain`` without); the parent run gets the final model's test metrics, the model, and
tags naming it (``tags.FINAL``, ``tags.FINAL_RUN_ID``). The model is registered in the MLflow
Model Registry as ``fmnist-<sweep>`` with a signature and an input example, and the alias
``champion`` moves to it (``mlflow models serve -m models:/fmnist-<sweep>@champion``). A run
after the search that finished is reused by a later command (a resume), so nothing is trained
twice.

Example::

    result = final.finish(st, spec, parent_run_id, split, say=print, until=budget.after_end())
    result.test_acc, result.final, result.model_uri  # a record.FinalResult
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fmnist.costs import PREFIX as COST_PREFIX
from sweeps import record, space, tracking
from sweeps import tags as tag
from sweeps.budget import Budget
from sweeps.record import FinalResult, TrialRun

CHAMPION = "champion"  # the Model Registry alias of a sweep's newest final model
# several objectives: a cost -> the alias of the front's model best on it among those within
# WITHIN of the most accurate one's metric (one point of accuracy)
COST_ALIASES = {"latency_ms": "fastest", "images_per_s": "highest_throughput",
                "params": "smallest", "macs": "fewest_macs", "size_mb": "smallest_file"}
WITHIN = 0.01


def registered_name(sweep: str) -> str:
    """The Model Registry name of a sweep's final model."""
    return f"fmnist-{sweep}"


def log_model(st: tracking.Store, run_id: str, model, example: np.ndarray) -> str:
    """``model`` as an MLflow model (Keras flavor, with a signature and the input example
    ``example[:1]``) under the run's artifact path ``model``; its URI."""
    import tempfile

    import mlflow

    from fmnist.runtime import keras, tf

    signature = mlflow.models.infer_signature(example, model.predict(example, verbose=0))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        # made first: mlflow.keras.save_model writes the input example before it makes the
        # folder, and mlflow.keras.log_model with an input example fails (mlflow#16183)
        local.mkdir()
        mlflow.keras.save_model(model, str(local), signature=signature,
                                input_example=example[:1],
                                pip_requirements=[f"tensorflow=={tf.__version__}",
                                                  f"keras=={keras.__version__}"])
        tracking.client(st).log_artifacts(run_id, str(local), "model")
    return f"runs:/{run_id}/model"


def register(st: tracking.Store, sweep: str, model_uri: str) -> str:
    """``model_uri`` (``runs:/<run_id>/<path>``, a model ``log_model`` logged) as a new version
    of ``fmnist-<sweep>`` in the Model Registry; its version. Through the store's client, as
    ``mlflow.register_model`` does it: a tracking server that cannot be reached is waited for
    like every other write of the sweep (``tracking.reconnect_on_outage``)."""
    from mlflow.exceptions import MlflowException

    c = tracking.client(st)
    name = registered_name(sweep)
    try:
        c.create_registered_model(name)
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    run_id, path = model_uri.removeprefix("runs:/").split("/", 1)
    source = f"{c.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"
    return str(c.create_model_version(name, source, run_id=run_id).version)


def register_champion(st: tracking.Store, sweep: str, model_uri: str) -> str:
    """``model_uri`` registered (``register``), with the alias ``champion`` moved to it (what
    `mlflow models serve -m models:/fmnist-<sweep>@champion` serves); its version."""
    version = register(st, sweep, model_uri)
    tracking.client(st).set_registered_model_alias(registered_name(sweep), CHAMPION, version)
    return version


@dataclass
class Candidate:
    """A model the final choice is made between."""

    role: str  # tags.TRIAL (the best trial's model), tags.REFIT or tags.ENSEMBLE
    run_id: str
    model: Any
    val_acc: float | None  # on the held-out validation half, with the chosen TTA
    usable: bool = True  # a refit cut short by the budget is recorded, never chosen
    evaluation: Any = None  # its test evaluation (``fmnist.evaluate.Evaluation``)


def best_trial(st: tracking.Store, spec) -> TrialRun | None:
    """The finished trial with the best objective in the spec's mode; None where none."""
    return record.MlflowRecord(st, spec).best()


def tta_mode(spec, params) -> str:
    """The test-time augmentation a trial asks for: its own ``tta`` (searched or fixed), else
    its preset's recipe's, else flip_shift where the spec's ``final.tta`` is on, else none."""
    from fmnist import models

    if params.get("tta") and params["tta"] != "none":
        return params["tta"]
    family = params.get("family") or spec.families[0]
    preset = params.get("preset", spec.preset_of(family)) or None  # a trial run's: "" for none
    recipe = models.recipe(family, preset).get("tta") if preset else None
    if recipe and recipe != "none":
        return recipe
    return "flip_shift" if spec.tta else "none"


def _load(path: Path):
    import fmnist.models  # noqa: F401 - registers the custom layers for loading
    from fmnist.runtime import keras

    return keras.models.load_model(path, compile=False)


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == np.asarray(y)).mean())


def finish(st: tracking.Store, spec, parent: str, split, say, study=None,
           until: float | None = None, images_left: int | None = None) -> FinalResult | None:
    """Choose the final model, evaluate it on the test set, record it on the parent run.
    ``study``: the sweep's Optuna study (a refit's knobs are its trial's, typed as sampled).
    ``until`` (``time.time()``, ``Budget.after_end``): the refit and the ensemble's library end
    by it (the test evaluation and the record follow); ``images_left``: a compute budget's
    training images left, which the refit must fit in. Idempotent: a parent that holds its
    final model is left as it is."""

    c = tracking.client(st)
    rec = record.MlflowRecord(st, spec)
    best = rec.best()
    if best is None:
        say(f"sweep {spec.name}: no finished trial")
        c.set_terminated(parent, "FINISHED")
        return None
    parent_data = c.get_run(parent).data
    info = FinalResult.of_best(best)
    if (parent_data.tags.get(tag.BEST_RUN_ID) == best.run_id
            and tag.FINAL in parent_data.tags and "test/acc" in parent_data.metrics):
        c.set_terminated(parent, "FINISHED")
        return replace(info, test_acc=parent_data.metrics["test/acc"],
                       model_uri=parent_data.tags.get(tag.MODEL_URI),
                       final=parent_data.tags[tag.FINAL],
                       final_run_id=parent_data.tags.get(tag.FINAL_RUN_ID),
                       tta=parent_data.tags.get(tag.TTA, "none"))
    ckpt = best.model_path()
    if ckpt is None:
        say(f"sweep {spec.name}: the best trial's checkpoint is missing "
            f"({best.checkpoint_dir}); no test evaluation")
        c.set_terminated(parent, "FINISHED")
        return info

    # the refit first: it trains, and TensorFlow's thread pools are set before its first op
    refit = (_refit(st, rec, spec, parent, best, split, study, say, until, images_left)
             if spec.refit else None)
    model = _load(ckpt)
    mode, best_probs = _choose_tta(spec, best, model, split, say)
    candidates = _candidates(st, rec, spec, parent, best, model, best_probs, refit, split, mode,
                             say, until)
    _evaluate(st, candidates, split, mode, say)
    chosen = _choose(candidates)
    model_uri = _record(st, spec, rec, parent, best, chosen, candidates, split, mode, say)
    return replace(info, test_acc=chosen.evaluation.accuracy, model_uri=model_uri,
                   final=chosen.role, final_run_id=chosen.run_id, tta=mode)


def _choose_tta(spec, best: TrialRun, model, split, say) -> tuple[str, np.ndarray]:
    """The test-time augmentation kept (where the spec and the trial ask for one, it stays
    within the constraints and it raised the best trial's val/acc) and the best trial's
    validation probabilities with it."""
    from fmnist import tta

    mode = tta_mode(spec, best.params) if spec.tta else "none"
    if mode != "none" and (broken := breaks(spec, [best], mode)):
        say(f"final: test-time augmentation {mode} would break the constraints ({broken}): off")
        mode = "none"
    views = [(w, _predict(model, v)) for w, v in tta.views(split.x_val, mode)]
    plain_probs, tta_probs = views[0][1], sum(w * p for w, p in views)
    plain_val, tta_val = _accuracy(plain_probs, split.y_val), _accuracy(tta_probs, split.y_val)
    if mode != "none" and tta_val <= plain_val:
        say(f"final: test-time augmentation {mode} left val/acc at {tta_val:.4f} "
            f"(plain {plain_val:.4f}): off")
        return "none", plain_probs
    if mode != "none":
        say(f"final: test-time augmentation {mode}: val/acc {plain_val:.4f} -> {tta_val:.4f}")
    return mode, (tta_probs if mode != "none" else plain_probs)


def _candidates(st, rec, spec, parent, best: TrialRun, model, best_probs, refit, split, mode,
                say, until) -> list[Candidate]:
    """The best trial's model, its refit and the ensemble, each scored (``val_acc``) on the
    validation half that trained no refit and picked no member."""
    from fmnist import tta

    _, held = halves(len(split.y_val), spec.data_seed)
    y_held = np.asarray(split.y_val)[held]
    candidates = [Candidate(tag.TRIAL, best.run_id, model,
                            _accuracy(best_probs[held], y_held))]
    if refit is not None:  # scored on the half it did not train on
        candidates.append(replace(refit, val_acc=_accuracy(
            tta.predict(refit.model, split.x_val[held], mode), y_held)))
    if spec.ensemble >= 2:
        ens = _ensemble(st, rec, spec, parent, best, model, best_probs, split, mode, say, until)
        if ens is not None:
            candidates.append(ens[0])
    say("final: on the held-out validation half: " + ", ".join(
        f"{c.role} {c.val_acc:.4f}" + ("" if c.usable else " (cut short)") for c in candidates))
    return candidates


def _evaluate(st, candidates: list[Candidate], split, mode: str, say) -> None:
    """Each candidate on the test set once (with ``mode``, and plain), logged on its run with
    its held-out validation score (``VAL_ACC_HELD``), in one write."""
    from fmnist import evaluate

    for cand in candidates:
        ev = evaluate.evaluate(cand.model, split.x_test, split.y_test, tta=mode)
        plain = ev if mode == "none" else evaluate.evaluate(cand.model, split.x_test,
                                                            split.y_test)
        cand.evaluation = ev
        tracking.log_run(st, cand.run_id, {"test/acc": ev.accuracy, "test/loss": ev.loss,
                                           "test/acc_plain": plain.accuracy,
                                           record.VAL_ACC_HELD: cand.val_acc}, {tag.TTA: mode})
        say(f"final: {cand.role} test/acc {ev.accuracy:.4f}"
            + (f" (plain {plain.accuracy:.4f})" if mode != "none" else "")
            + ("" if cand.val_acc is None else f", held-out val/acc {cand.val_acc:.4f}"))


def _record(st, spec, rec, parent: str, best: TrialRun, chosen: Candidate,
            candidates: list[Candidate], split, mode: str, say) -> str:
    """The chosen model logged on the parent and registered (alias ``champion``; with several
    objectives the front's models too), the parent's test metrics, tags and test evaluation;
    the parent ended. The registered model's URI."""
    from mlflow.entities import Metric, RunTag

    c = tracking.client(st)
    ev = chosen.evaluation
    now = int(time.time() * 1000)
    version = register_champion(st, spec.name, log_model(st, parent, chosen.model,
                                                         split.x_val[:2]))
    model_uri = f"models:/{registered_name(spec.name)}/{version}"  # this sweep's, for good
    say(f"final: registered as {model_uri}, alias {CHAMPION}")
    if spec.multi_objective:
        _register_front(st, spec, rec, split, say, {
            c.run_id: c.evaluation for c in candidates if c.role == tag.TRIAL})
    c.log_batch(parent, metrics=[Metric(k, v, now, 0) for k, v in ev.metrics().items()],
                tags=[RunTag(tag.BEST_RUN_ID, best.run_id), RunTag(tag.TTA, mode),
                      RunTag(tag.MODEL_URI, model_uri), RunTag(tag.FINAL, chosen.role),
                      RunTag(tag.FINAL_RUN_ID, chosen.run_id)])
    c.log_dict(parent, {"confusion": ev.confusion.tolist(),
                        "misclassified": ev.misclassified.tolist(),
                        "predicted": ev.predictions[ev.misclassified].tolist(),
                        "class_names": list(ev.class_names)}, "test_evaluation.json")
    c.set_terminated(parent, "FINISHED")
    say(f"final: the {chosen.role} model, test/acc {ev.accuracy:.4f}")
    return model_uri


def aliases(front: list[TrialRun], spec) -> dict[str, TrialRun]:
    """Each cost objective's alias (``COST_ALIASES``) -> the front's model best on that cost
    among those within ``WITHIN`` of the most accurate one's metric (``front`` best first)."""
    if not front:
        return {}
    near = [r for r in front if abs(r.objective - front[0].objective) <= WITHIN]
    out = {}
    for k, mode in spec.objectives.items():
        key = COST_PREFIX + k
        out[COST_ALIASES[k]] = (min if mode == "min" else max)(near, key=lambda r: r.metrics[key])
    return out


def _register_front(st: tracking.Store, spec, rec, split, say,
                    evaluated: dict[str, Any]) -> dict[str, str]:
    """The accuracy/cost front's models (chosen on validation), each evaluated on the test set
    once (as measured: no test-time augmentation, which would multiply its costs; the best
    trial's evaluation of ``evaluated`` reused), logged, registered as a version of the sweep's
    model tagged ``fmnist.front``, and each cost's alias moved to its choice; alias -> URI."""
    from fmnist import evaluate

    c = tracking.client(st)
    name = registered_name(spec.name)
    front = record.front(rec.runs(tag.TRIAL), spec.objective_modes)
    versions: dict[str, str] = {}
    for r in front:
        path = r.model_path()
        if path is None:
            say(f"final: front trial {r.number}'s model is missing ({r.checkpoint_dir}); "
                f"not registered")
            continue
        model = _load(path)
        ev = evaluated.get(r.run_id)
        plain = (evaluate.evaluate(model, split.x_test, split.y_test) if ev is None
                 else None)
        if plain is not None:
            tracking.log_run(st, r.run_id, {"test/acc": plain.accuracy,
                                            "test/loss": plain.loss,
                                            "test/acc_plain": plain.accuracy}, {tag.TTA: "none"})
        version = register(st, spec.name, log_model(st, r.run_id, model, split.x_val[:2]))
        versions[r.run_id] = version
        tracking.log_run(st, r.run_id, {}, {tag.FRONT: version})
        for k, v in {tag.FRONT: "true", spec.metric: f"{r.objective:.4f}",
                     **{k: f"{r.metrics[k]:.6g}" for k in list(spec.objective_modes)[1:]}}.items():
            c.set_model_version_tag(name, version, k, v)
        test = plain.accuracy if plain is not None else ev.accuracy
        say(f"final: front trial {r.number}: {spec.metric} {r.objective:.4f}, "
            + ", ".join(f"{k[len(COST_PREFIX):]} {r.metrics[k]:,.4g}"
                        for k in list(spec.objective_modes)[1:])
            + f", test/acc {test:.4f}: version {version}")
    out = {}
    for alias, r in aliases([r for r in front if r.run_id in versions], spec).items():
        c.set_registered_model_alias(name, alias, versions[r.run_id])
        out[alias] = f"models:/{name}@{alias}"
        say(f"final: alias {alias}: trial {r.number} (version {versions[r.run_id]})")
    return out


def breaks(spec, runs: list[TrialRun], mode: str) -> str:
    """The constraints a model averaging ``runs``' models over ``mode``'s test-time views would
    break ("" where none; costs a run did not record are not checked): an ensemble adds its
    members' costs and TTA multiplies them by its views (``fmnist.costs.combined``)."""
    if not spec.constraints:
        return ""
    from fmnist import costs, tta

    views = len(tta.views(np.zeros((1, 28, 28), np.uint8), mode))
    return "; ".join(costs.violations(costs.combined([r.costs for r in runs], views),
                                      spec.constraints))


TIE_ORDER = (tag.REFIT, tag.TRIAL, tag.ENSEMBLE)  # on a tie: more images, then fewer models


def _choose(candidates: list[Candidate]) -> Candidate:
    """The usable candidate most accurate on the held-out validation half (which trained none
    of them and picked no ensemble member); on a tie the refit (the same configuration on more
    images), then the best trial alone, then the ensemble (more models for nothing measured).
    A refit cut short by the budget is never chosen; nor is a candidate with no score."""
    usable = [c for c in candidates if c.usable and c.val_acc is not None
              and not np.isnan(c.val_acc)]
    return max(usable, key=lambda c: (c.val_acc, -TIE_ORDER.index(c.role)))


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The validation split's two halves (positions, seeded): the refit trains on the first and
    the ensemble's members are picked on it; every candidate is compared on the second, which
    built none of them (a choice scored on the data that made it flatters the model it made)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


@dataclass(frozen=True)
class HeldOut:
    """An ensemble picked on one half of the validation split and scored on the other."""

    picked: Any  # ``fmnist.ensemble.Selection`` on the picking half
    ensemble: float  # the ensemble's accuracy on the held-out half
    best: float  # the best trial's alone, on the same half


def pick_held_out(probs: list[np.ndarray], y: np.ndarray, max_size: int,
                  seed: int = 0) -> HeldOut:
    """Greedy ensemble selection over ``probs`` (validation probabilities, the best trial's
    first) on one half of the validation split, both sides scored on the other half."""
    from fmnist import ensemble

    pick, held = halves(len(y), seed)
    y = np.asarray(y)
    picked = ensemble.greedy_select([p[pick] for p in probs], y[pick], max_size=max_size)
    combined = ensemble.combine([p[held] for p in probs], picked.weights)
    return HeldOut(picked, _accuracy(combined, y[held]), _accuracy(probs[0][held], y[held]))


def _predict(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(np.ascontiguousarray(x), batch_size=1024, verbose=0),
                      dtype=np.float64)


def refit_split(split, seed: int = 0):
    """``split`` with the first validation half (``halves``) added to the training images; its
    validation is the other half, on which the refit is compared with the best trial."""
    pick, held = halves(len(split.y_val), seed)
    return replace(split, x_train=np.concatenate([split.x_train, split.x_val[pick]]),
                   y_train=np.concatenate([split.y_train, split.y_val[pick]]),
                   x_val=split.x_val[held], y_val=split.y_val[held])


def refit_train_images(split) -> int:
    """The images a refit trains on per epoch: the training split and half the validation's."""
    return len(split.y_train) + len(split.y_val) // 2


def refit_hp(spec, knobs: dict[str, Any], max_epochs: int | None = None) -> dict[str, Any]:
    """The best trial's ``knobs`` (``space.trial_setup``'s) for its refit: as the trial ran them
    (its schedule's length included: ``max_epochs``, where a budget moved the trial's, else the
    spec's), without early stopping; all this machine's cores."""
    seed = record.trial_seed(spec)
    threads = max(1, os.cpu_count() or 1)
    return {"seed": seed, **knobs, "max_epochs": int(max_epochs or spec.max_epochs),
            "early_stopping": False, "threads": threads, "inter_threads": min(2, threads)}


def refit_estimate_s(metrics: dict[str, float], epochs: int, images: int,
                     trial_images: int) -> float | None:
    """The seconds a refit of ``epochs`` epochs on ``images`` images should take, at the pace
    of its trial (``train_s`` over ``epochs`` epochs of ``trial_images``); None where the trial
    did not record it."""
    train_s, ran = metrics.get("train_s"), metrics.get("epochs")
    if not train_s or not ran or not trial_images:
        return None
    return float(train_s) / float(ran) * epochs * images / trial_images


def refit_rest(images: int, spent: int, state_kept: bool) -> tuple[int, int]:
    """The training images a refit of ``images`` still needs, and those a killed command spent
    on it that are lost: ``spent`` (logged, counted by the budget) are kept where its training
    state was (``state_kept``: it goes on after them), else trained again and still spent."""
    lost = 0 if state_kept else spent
    return max(0, images - (spent - lost)), lost


def refit_need_s(best: TrialRun, split) -> float | None:
    """The seconds the refit of ``best`` should take on its images (``refit_train_images``), at
    the trial's pace; None where the trial did not record it."""
    return refit_estimate_s(best.metrics, best.refit_epochs, refit_train_images(split),
                            len(split.y_train))


def refit_images(best: TrialRun, split) -> int:
    """The training images the refit of ``best`` processes: its epochs of train + half val."""
    return best.refit_epochs * refit_train_images(split)


def share_back(budget: Budget, best: TrialRun | None, split, now: float,
               refit_done: bool = False, used: int = 0) -> Budget | None:
    """The budget with the refit's share given to the search, where the search has ended and
    ``best``'s refit cannot end within ``budget`` started ``now`` at its trial's pace, or cannot
    fit in the compute left after ``used`` images of this command, or where no trial has
    finished; None where the refit fits (or its pace is unknown), where there is no budget or
    no refit, or where an earlier command trained it (``refit_done``)."""
    if not (budget.timed or budget.counted) or not budget.refit:
        return None
    if best is not None and (refit_done or (
            budget.fits(refit_need_s(best, split), now)
            and budget.fits_images(refit_images(best, split), used))):
        return None
    return budget.without_refit()


def _refit(st, rec, spec, parent, best: TrialRun, split, study, say,
           until: float | None, images_left: int | None = None) -> Candidate | None:
    """Train the best configuration on train + the first validation half (``refit_split``) for
    the trial's best epoch count (a run of
    role REFIT), or load the refit a finished run of an earlier command saved; None where the
    budget's time left is too short for all its epochs at its trial's pace."""
    done = rec.own_run(tag.REFIT, best)
    if done is not None and done.status == record.FINISHED and done.model_path():
        say("final: refit done before, reused")
        return Candidate(tag.REFIT, done.run_id, _load(done.model_path()), None, done.complete)
    import optuna

    from fmnist import train

    number = best.number
    if study is None:
        study = optuna.load_study(study_name=spec.name, storage=st.optuna_url)
    trial = study.trials[number]
    config = {**trial.params, **{k: v for k, v in trial.user_attrs.items()
                                 if k in (space.RECIPE_KEY, space.WARM_KEY)}}
    family, preset, knobs = space.trial_setup(spec, config)
    epochs = best.refit_epochs
    hp = refit_hp(spec, knobs, best.schedule_epochs)
    full = refit_split(split, spec.data_seed)
    out = _refit_dir(st, spec)
    saved = out / f"state-{best.run_id}"
    # a command killed in the refit left its state after its last saved epoch: it goes on
    resume_from = refit_state(st, spec, best) if done is not None else None
    rest, lost = refit_rest(refit_images(best, split), rec.refit_spent(best),
                            resume_from is not None)
    if images_left is not None and rest > images_left:
        say(f"final: a refit of {epochs} epochs on {len(full.y_train):,} images needs "
            f"{rest:,} more training images, the compute budget has "
            f"{images_left:,} left: not started")
        _give_up(st, done)
        return None
    need = refit_need_s(best, split)
    if need is not None:
        need *= rest / max(1, refit_images(best, split))
    if until is not None and need is not None and time.time() + need > until:
        # cut short, it would be recorded and never chosen: the budget's time is not spent on it
        say(f"final: a refit of {epochs} epochs on {len(full.y_train):,} images would take "
            f"about {need:.0f} s at its trial's pace, {max(0.0, until - time.time()):.0f}"
            f" s are left: not started")
        _give_up(st, done)
        return None
    tags = {tag.SOURCE_RUN_ID: best.run_id, tag.CHECKPOINT: str(out)}
    rid = done.run_id if done is not None else tracking.start_child(
        st, spec, parent, tag.REFIT, "refit",
        {"family": family, "preset": preset or "", **{k: v for k, v in hp.items()
                                                              if k not in ("threads",
                                                                           "inter_threads")},
         "epochs": epochs, "train_images": len(full.y_train)}, tags)
    say(f"final: refit of {best.name or best.run_id} on "
        f"{len(full.y_train):,} images for {epochs} epochs"
        + (f", going on after epoch "
           f"{json.loads((resume_from / 'state.json').read_text())['epoch']}"
           if resume_from is not None else ""))
    last = [time.time()]

    def on_epoch(m: dict[str, Any]) -> bool:
        now = time.time()
        took, last[0] = now - last[0], now
        if m.get(train.STATE_KEY) and m["epoch"] < epochs:  # kept: a kill loses one epoch
            _keep_state(Path(m[train.STATE_KEY]), saved)
            tracking.log_run(st, rid, {
                record.TRAIN_IMAGES: lost + m["epoch"] * len(full.y_train)}, {})
        say(f"final: refit epoch {int(m['epoch'])}/{epochs} ({took:.1f} s)")
        # the next epoch would not end within the budget: stop here, cut short
        return m["epoch"] >= epochs or (until is not None and now + took > until)

    result = train.train(family, full, hp, preset=preset, on_epoch=on_epoch,
                         should_stop=(lambda: time.time() >= until) if until else None,
                         epoch_state=True, resume_from=resume_from)
    complete = result.epochs >= epochs  # an epoch cut off mid-way is not counted
    out.mkdir(parents=True, exist_ok=True)
    result.model.save(out / "model.keras")
    tracking.end_trial(st, rid, "FINISHED", {"epochs": result.epochs,
                                             "train_s": result.seconds,
                                             "train_images": (
                                                 lost + result.epochs * len(full.y_train))},
                       {tag.COMPLETE: str(complete).lower()})  # a later command reuses it
    for folder in (saved, *_aside(saved)):  # its model saved: no state to go on from
        shutil.rmtree(folder, ignore_errors=True)
    if not complete:
        say(f"final: the refit trained {result.epochs} of {epochs} epochs within the budget; "
            f"it is recorded, not chosen")
    return Candidate(tag.REFIT, rid, result.model, None, complete)


def _refit_dir(st, spec) -> Path:
    return Path(st.ray_dir) / f"{spec.name}-final" / "refit"


def refit_state(st, spec, best: TrialRun) -> Path | None:
    """The training state the refit of ``best`` saved after its last epoch in a command killed
    part-way (``_keep_state``), to go on from; None: none saved."""
    saved = _refit_dir(st, spec) / f"state-{best.run_id}"
    new, old = _aside(saved)
    for folder in (saved, old):  # ``old``: killed between ``_keep_state``'s two renames
        if (folder / "state.json").is_file():
            return folder
    return None


def _aside(folder: Path) -> tuple[Path, Path]:
    """Where ``_keep_state`` copies a new state, and where it moves the one it replaces."""
    return folder.with_name(folder.name + ".new"), folder.with_name(folder.name + ".old")


def _keep_state(state: Path, into: Path) -> None:
    """Copy an epoch's training state folder to ``into``, replacing the one before: a kill at
    any point leaves one whole state (``refit_state`` finds it), never half of one."""
    new, old = _aside(into)
    shutil.rmtree(new, ignore_errors=True)
    if old.exists() and not into.exists():  # the whole one a kill between the renames left
        old.rename(into)
    shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(state, new)
    if into.exists():
        into.rename(old)
    new.rename(into)
    shutil.rmtree(old, ignore_errors=True)


def _give_up(st, run: TrialRun | None) -> None:
    """Close a refit run a killed command left open that this one does not go on with (the
    budget left is too short): the sweep's later commands search again."""
    if run is not None and run.status != record.FINISHED:
        tracking.client(st).set_terminated(run.run_id, "KILLED")


def _ensemble(st, rec, spec, parent, best: TrialRun, best_model, best_probs, split, mode, say,
              until: float | None) -> tuple[Candidate, HeldOut] | None:
    """Greedy selection over the top trials' models on half the validation split, scored on
    the other half (``pick_held_out``; a run of role ENSEMBLE); None where fewer than two
    trials have a model."""
    from fmnist import ensemble, tta

    library, probs, runs = [best_model], [best_probs], [best]
    for r in rec.ranked(2 * spec.ensemble)[1:]:
        path = r.model_path()
        if path is None:
            continue
        if until is not None and time.time() >= until:
            say(f"final: the budget ends the ensemble's library at {len(library)} models")
            break
        m = _load(path)
        library.append(m)
        probs.append(tta.predict(m, split.x_val, mode))
        runs.append(r)
    if len(library) < 2:
        return None
    held = pick_held_out(probs, split.y_val, spec.ensemble, seed=spec.data_seed)
    picked = held.picked
    members = [[runs[i].run_id, w] for i, w in enumerate(picked.weights) if w]
    broken = breaks(spec, [runs[i] for i, w in enumerate(picked.weights) if w], mode)
    if broken and len(members) > 1:
        say(f"final: an ensemble of {len(members)} would break the constraints ({broken}): "
            f"not a candidate")
        return None
    say(f"final: ensemble of {len(picked.members)} picks from {len(library)} models on half "
        f"the validation split; on the other half val/acc {held.ensemble:.4f} (best trial "
        f"alone {held.best:.4f})")
    done = rec.own_run(tag.ENSEMBLE, best)
    tags = {tag.SOURCE_RUN_ID: best.run_id, tag.MEMBERS: json.dumps(members)}
    rid = done.run_id if done is not None else tracking.start_child(
        st, spec, parent, tag.ENSEMBLE, "ensemble",
        {"max_size": spec.ensemble, "library": len(library), "picks": len(picked.members),
         "members": len(members)}, tags)
    tracking.end_trial(st, rid, "FINISHED", {"val/acc": held.ensemble,
                                             "val/acc_picking": picked.score}, tags)
    model = ensemble.as_model(library, picked.weights)
    return Candidate(tag.ENSEMBLE, rid, model, held.ensemble), held
