"""SweepSpec.space -> Optuna distributions, and the spec's sampler."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweeps.spec import SweepSpec


def distributions(spec: SweepSpec) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for name, d in spec.space.items():
        if d.type == "choice":
            out[name] = CategoricalDistribution(list(d.values))
        elif d.type == "int":
            out[name] = IntDistribution(int(d.low), int(d.high), step=int(d.step or 1))
        elif d.type == "loguniform":
            out[name] = FloatDistribution(d.low, d.high, log=True)
        else:
            out[name] = FloatDistribution(d.low, d.high, step=d.step)
    return out


TRIAL_KEY = "optuna_trial"  # the Optuna trial number, carried in each Ray trial's config
# an interrupted trial enqueued again to go on (see ``runner.reconcile``): the Optuna user
# attribute holding {"run_id": its MLflow run, "checkpoint": the state folder it goes on from,
# "epoch": the epoch of that state, "trial": the interrupted Optuna trial's number}, carried
# in the Ray trial's config under the same key
RESUME_KEY = "fmnist_resume"


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """A Ray trial's config less what the driver carries in it besides hyperparameters."""
    return {k: v for k, v in config.items() if k not in (TRIAL_KEY, RESUME_KEY)}


class DefineByRun:
    """The space as an Optuna define-by-run function (Ray's OptunaSearch accepts one). It also
    returns the Optuna trial's number, so the driver can tag the trial's MLflow run with it and a
    resume can match the two records one to one, and an interrupted trial enqueued again its
    resume information (``RESUME_KEY``). A class, not a closure: Ray pickles the searcher
    with its experiment state."""

    def __init__(self, spec: SweepSpec):
        self.dists = distributions(spec)

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        for name, d in self.dists.items():
            if isinstance(d, CategoricalDistribution):
                trial.suggest_categorical(name, d.choices)
            elif isinstance(d, IntDistribution):
                trial.suggest_int(name, d.low, d.high, step=d.step)
            else:
                trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
        carried: dict[str, Any] = {TRIAL_KEY: trial.number}
        if RESUME_KEY in trial.user_attrs:
            carried[RESUME_KEY] = dict(trial.user_attrs[RESUME_KEY])
        return carried


def sampler_seed(seed: int | None, trials_so_far: int) -> int | None:
    """The sampler's seed for a process that finds ``trials_so_far`` trials in the study. A new
    study is seeded with the spec's own seed (a seeded first run is reproducible); a resumed one
    with a seed derived from it and the study's length, so each resume goes on with a new random
    stream instead of replaying the start of the first run's sequence."""
    if seed is None or trials_so_far == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, trials_so_far]).generate_state(1)[0])


def sampler(spec: SweepSpec, trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    seed = sampler_seed(spec.sampler_seed, trials_so_far)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)
