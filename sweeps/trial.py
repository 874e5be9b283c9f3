"""The Ray Tune trainable: one trial. It only computes and reports; the driver writes records.

The split arrives through Ray's object store (``tune.with_parameters``), put there once by the
driver. Before TensorFlow's first op the trial sets its thread pools to its CPUs and turns on GPU
memory growth, so concurrent trials neither oversubscribe cores nor grab a whole GPU. Every epoch
is reported with ``tune.report``; a trial the scheduler stops ends within a few steps (see
``_stop_event``); a last report carries the final model as a checkpoint and the
validation metrics of that model (after early stopping restored its best weights).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

# metrics every epoch report carries (the spec's metric is one of REPORTED_METRICS among them)
EPOCH_KEYS = ("epoch", "train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best",
              "epoch_s", "images_per_s", "lr")

# the schedulers' time (ASHA's and the median rule's rungs): the epoch, reported only by a trial
# on the spec's whole schedule. One whose schedule ends sooner (a budget's quick look, or one
# fitted to the time left) anneals sooner and would look better at an early rung than it is:
# its results must not stop the trials that run the whole schedule.
RUNG_KEY = "rung_epoch"


def rung(epoch: int, last: int, spec: Any) -> dict[str, int]:
    """What a trial at ``epoch`` whose schedule ends at ``last`` reports for the rungs: 0 (below
    every rung, and never past the median rule's grace period) for a schedule other than the
    spec's: a shorter one anneals sooner and would look better at a rung than it is, a longer
    one (``policy.long_epochs``) later, and would be stopped for it (and past ``max_t``). The key
    is always there: Ray's median rule reads it from every finished trial's last result."""
    return {RUNG_KEY: int(epoch) if last == spec.max_epochs else 0}


FINAL_KEY = "final"  # set (1) in a trial's last report, the one with its final model
# in the one report of a trial whose model breaks the spec's constraints (untrained): why
INFEASIBLE_KEY = "infeasible"


@dataclass(frozen=True)
class FinalReport:
    """A finished trial's last report: its final model's validation scores and how it ran.

    Tune carries reports as flat dicts: ``as_result`` gives the one the trial reports (the last
    epoch's metrics, with ``val/acc`` and ``val/loss`` those of the final model, and
    ``FINAL_KEY``), ``from_result`` reads it back on the driver.
    """

    last: dict[str, float]  # the last epoch's metrics (EPOCH_KEYS)
    val_acc: float  # of the final model (early stopping's best epoch, or SWA's average)
    val_loss: float
    stop_reason: str
    epochs: int
    best_epoch: int
    train_s: float
    params: int
    seed: int
    resumed: int  # the epoch it went on after (a restart from a checkpoint); 0: none
    node_id: str
    pid: int
    trial_start: float  # epoch seconds: placed by Ray
    train_start: float  # imports and set-up done
    trial_end: float
    gpu_ids: str = ""
    hostname: str = ""
    trial_name: str = ""
    # the last epoch, when it is the trial's last possible one: it is reported only here
    last_epoch: dict[str, float] = field(default_factory=dict)
    # the epoch its schedule ended at: the spec's max_epochs, or fewer where a budget's time
    # left moved it (the refit trains on the same schedule)
    max_epochs: int = 0

    def value(self, metric: str) -> float:
        """The final model's ``metric`` (one of spec.REPORTED_METRICS)."""
        return float({**self.last, "val/acc": self.val_acc, "val/loss": self.val_loss}[metric])

    def as_result(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items()
               if k not in ("last", "val_acc", "val_loss")}
        return {**self.last, **out, "val/acc": self.val_acc, "val/loss": self.val_loss,
                FINAL_KEY: 1}

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> FinalReport | None:
        """The report in a Tune result, or None for an epoch's report."""
        if not result.get(FINAL_KEY):
            return None
        names = {f.name for f in dataclasses.fields(cls)} - {"last", "val_acc", "val_loss"}
        return cls(last={k: result[k] for k in EPOCH_KEYS if k in result},
                   val_acc=result["val/acc"], val_loss=result["val/loss"],
                   **{k: result[k] for k in names if k in result})


def _stop_event():
    """Whether Tune has asked this trial to stop, polled between training steps: Tune sets it
    when a scheduler stops the trial (and before it reuses the actor), and would otherwise only
    be heard at the next report, an epoch later, after Tune has given up waiting and replaced
    the actor (a new process and TensorFlow import). Where Ray moved it (``fmnist.compat``),
    trials stop at their next report."""
    from fmnist import compat

    return compat.tune_stop_requested() or (lambda: False)


# Keras's optional integrations, imported with it when installed (MLflow brings both): its
# scikit-learn wrappers and its image-gallery plot. A trial uses neither.
OPTIONAL = ("sklearn", "matplotlib")


def import_tensorflow():
    """Import and return TensorFlow (``fmnist.runtime``'s), without Keras's optional scikit-learn
    and matplotlib integrations, a large part of a new trial actor's import (BENCHMARKS.md).

    Both libraries stay importable afterwards; only Keras's own wrappers of them
    (``keras.wrappers.SKLearn*``, ``keras.visualization.plot_image_gallery``) are off in this
    process. Where they are imported already, nothing changes."""
    held = [m for m in OPTIONAL if m not in sys.modules]
    for m in held:
        sys.modules[m] = None  # `import m` raises ImportError, which Keras expects of a missing one
    try:
        from fmnist.runtime import tf  # imported here, under the hold
    finally:
        for m in held:
            if sys.modules.get(m, False) is None:
                del sys.modules[m]
    return tf


def _set_up_worker(cpus: float) -> int:
    """This Ray worker made ready to train on ``cpus`` (its intra-op threads, returned; a GPU's
    memory grown as needed); TensorFlow imported."""
    # Tune waits this long for a stopped trial's thread before it gives up reusing this actor
    # and fails the trial it meant to start here (Ray 2.60 `_on_trial_reset`); a stopped thread
    # ends at its next poll, STOP_POLL_IMAGES away, which the slowest family on one core
    # trains well within this
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "120")
    threads = max(1, math.floor(cpus))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    tf = import_tensorflow()
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this (reused) worker
            pass
    return threads


def _placement(started: float) -> dict[str, Any]:
    """Where and when the trial runs (its GPUs, Ray node, host, pid, start), with each report."""
    import ray

    return {"gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
            "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname(), "pid": os.getpid(), "trial_start": started}


def run_trial(config: dict[str, Any], *, split: Any, spec: Any, cpus: float, seed: int,
              window: Any = None) -> None:
    """Train one configuration of the ``spec``'s sweep (``config``: the sampled hyperparameters,
    under ``space.RESUME_KEY`` a checkpoint to go on from, under ``space.RECIPE_KEY`` a recipe's
    knobs), reporting to Tune.

    Reports each epoch but the spec's last (``EPOCH_KEYS`` and where it ran), with the state
    after it as a checkpoint; then a ``FinalReport`` with the final model as a checkpoint. A
    trial Tune asks to stop ends within ``train.STOP_POLL_IMAGES`` images, with no final report.
    A budget's ``window`` (``budget.Window``): the trial fits its epochs and its schedule to
    end by its soft end at its pace (``train.train``'s ``finish_by``), and is complete there;
    past it the trial ends at its next epoch's end, at the hard end mid-epoch; each with its
    final report. A trial that may fill the budget (``space.FILL_KEY``) has a window of its own
    (``Budget.fill_window``), and takes the part of it ``policy.fill_epochs`` says.
    """
    started = time.time()  # before TensorFlow's import: when Ray placed the trial
    from ray import tune

    threads = _set_up_worker(cpus)
    from fmnist import train
    from sweeps import policy
    from sweeps.budget import Window
    from sweeps.space import FILL_KEY, RESUME_KEY, trial_epochs, trial_setup

    ctx = tune.get_context()
    placement = _placement(started)
    # its costs (``fmnist.costs``, as ``cost/<name>``), measured on the built model before
    # training, go with every report
    measured: dict[str, float] = {}
    broken: list[str] = []

    def on_built(model) -> bool:
        from fmnist import costs

        c = costs.measure(model)
        measured.update({costs.PREFIX + k: v for k, v in c.items()})
        if checkpoint is None and not carried:  # a trial going on keeps going (timing noise)
            broken.extend(costs.violations(c, spec.constraints))
        return bool(broken)  # outside the constraints: not trained

    family, preset, knobs = trial_setup(spec, config)
    max_epochs = trial_epochs(spec, config)
    filling = config.get(FILL_KEY)
    if filling:
        window = Window(float(filling["soft"]), float(filling["hard"]))
    hp = {"seed": seed, **knobs, "max_epochs": max_epochs,
          "threads": threads, "inter_threads": min(2, threads)}

    def on_epoch(m: dict[str, Any]) -> bool:
        # the last possible epoch (the spec's, or the one a budget moved it to) goes out with
        # the final report: a scheduler rung there could otherwise stop a trial that has
        # already done all its work, losing its model
        if m["epoch"] >= m["max_epochs"]:
            return False
        state = m.get(train.STATE_KEY)  # Tune copies it into the trial's checkpoints
        tune.report({**{k: m[k] for k in EPOCH_KEYS}, "max_epochs": m["max_epochs"],
                     **rung(m["epoch"], m["max_epochs"], spec), **placement, **measured},
                    checkpoint=tune.Checkpoint.from_directory(state) if state else None)
        return window is not None and not window.may_start(time.time())

    stop_requested = _stop_event()

    def should_stop() -> bool:
        return stop_requested() or (window is not None and window.cut(time.time()))

    train_start = time.time()  # imports and set-up done: what a plain training loop pays starts
    # a trial Tune restarts after a failure (FailureConfig.max_failures) goes on from its last
    # epoch's state, and so does one a killed sweep left interrupted (enqueued again on resume
    # with the state's folder); its MLflow run then gets the epochs after it, each once
    checkpoint = tune.get_checkpoint()
    carried = config.get(RESUME_KEY, {}).get("checkpoint")
    with (checkpoint.as_directory() if checkpoint else contextlib.nullcontext(carried)
          ) as resume_from:
        result = train.train(family, split, hp, preset=preset, on_epoch=on_epoch,
                             on_built=on_built, should_stop=should_stop, epoch_state=True,
                             resume_from=resume_from,
                             finish_by=None if window is None else window.soft,
                             fill=(lambda n: policy.fill_epochs(n, int(filling["epochs"])))
                             if filling and filling.get("epochs") else None)
    if stop_requested():
        return  # stopped by the scheduler: Tune has taken its last result already
    _report_end(result, broken, split, spec, placement, measured, train_start,
                ctx.get_trial_name())


def _report_end(result, broken: list[str], split, spec, placement: dict[str, Any],
                measured: dict[str, float], train_start: float, trial_name: str) -> None:
    """The trial's last report to Tune: infeasible (``broken``: its one report, untrained), or
    its ``FinalReport`` with the final model as a checkpoint; none where the budget's hard end
    came before its first epoch ended."""
    from ray import tune

    from fmnist import evaluate

    if broken:  # its one report: the metric is there for Tune, NaN (never a trial's value)
        tune.report({INFEASIBLE_KEY: "; ".join(broken), spec.metric: float("nan"), "epoch": 0,
                     RUNG_KEY: 0, **placement, **measured})
        return
    final_val = result.final_val  # measured by training's own validation: no second pass
    if not result.history:  # the budget's hard deadline came before its first epoch ended
        return
    if final_val is None:  # SWA's average, or weights cut off mid-epoch: validate them here
        ev = evaluate.evaluate(result.model, split.x_val, split.y_val)
        final_val = {"val/acc": ev.accuracy, "val/loss": ev.loss}
    last = {k: result.history[-1][k] for k in EPOCH_KEYS}
    final = FinalReport(
        last=last, val_acc=final_val["val/acc"], val_loss=final_val["val/loss"],
        stop_reason=result.stop_reason, epochs=result.epochs, best_epoch=result.best_epoch,
        train_s=result.seconds, params=result.params, seed=result.hp["seed"],
        resumed=result.resumed_from, train_start=train_start, trial_end=time.time(),
        trial_name=trial_name,
        last_epoch=last if last["epoch"] >= result.max_epochs else {},
        max_epochs=result.max_epochs, **placement)
    with tempfile.TemporaryDirectory() as tmp:
        result.model.save(os.path.join(tmp, "model.keras"))
        tune.report({**final.as_result(), **rung(last["epoch"], result.max_epochs, spec),
                     **measured},
                    checkpoint=tune.Checkpoint.from_directory(tmp))
