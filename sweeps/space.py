"""SweepSpec.space -> Optuna distributions, and the spec's sampler."""

from __future__ import annotations

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


def sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    seed = spec.sampler_seed
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)
