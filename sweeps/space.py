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


class DefineByRun:
    """The space as an Optuna define-by-run function (Ray's OptunaSearch accepts one). It also
    returns the Optuna trial's number, so the driver can tag the trial's MLflow run with it and a
    resume can match the two records one to one. A class, not a closure: Ray pickles the searcher
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
        return {TRIAL_KEY: trial.number}


def sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    seed = spec.sampler_seed
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)
