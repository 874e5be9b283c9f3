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

from sweeps import record
from sweeps.record import RecipeAttr, ResumeAttr
from sweeps.spec import Dist, SpecError, SweepSpec


def distribution(d: Dist) -> BaseDistribution:
    if d.type == "choice":
        return CategoricalDistribution(list(d.values))
    if d.type == "int":
        return IntDistribution(int(d.low), int(d.high), step=int(d.step or 1))
    if d.type == "loguniform":
        return FloatDistribution(d.low, d.high, log=True)
    return FloatDistribution(d.low, d.high, step=d.step)


def distributions(spec: SweepSpec, family: str | None = None) -> dict[str, BaseDistribution]:
    """The Optuna distributions a trial of ``family`` samples (default: the spec's only one);
    a multi-family spec's include the ``family`` choice itself."""
    family = family or spec.families[0]
    out: dict[str, BaseDistribution] = {}
    if spec.multi:
        out["family"] = CategoricalDistribution(list(spec.families))
    out.update({k: distribution(d) for k, d in spec.space_of(family).items()})
    return out


TRIAL_KEY = "optuna_trial"  # the Optuna trial number, carried in each Ray trial's config
# the Optuna user attributes a trial carries in its Ray config under the same keys, typed in
# ``sweeps.record``: an interrupted trial enqueued again to go on (``ResumeAttr``, see
# ``resume.decide``), a configuration from a write-up's recipe (``RecipeAttr``, see
# ``sweeps.warm``), and where a warm start is from
RESUME_KEY = ResumeAttr.KEY
RECIPE_KEY = RecipeAttr.KEY
WARM_KEY = record.WARM_KEY
# the epochs a compute budget leaves a trial (``Budget.trial_epochs``), set by the searcher
EPOCHS_KEY = "fmnist_epochs"
# a trial that fills a time budget (``policy.fill_epochs``): {"soft", "hard"} of its window
# (``Budget.fill_window``), and for the first, which decides its part, the "epochs" it was
# planned on
FILL_KEY = "fmnist_fill"
PLANNED_KEY = record.PLANNED_KEY  # the schedule it was planned on (a compute budget's)
FILLS_KEY = record.FILLS_KEY  # a trial that fills a time budget: the epochs planned before
SEED_KEY = record.SEED_KEY  # an ensemble member's training seed (``sweeps.policy``)
POLICY_KEY = record.POLICY_KEY  # the policy's decision that made the trial
CARRIED = (TRIAL_KEY, RESUME_KEY, RECIPE_KEY, WARM_KEY, EPOCHS_KEY, FILL_KEY, FILLS_KEY,
           PLANNED_KEY, SEED_KEY, POLICY_KEY)


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """A Ray trial's config less what the driver carries in it besides hyperparameters (and
    less the family, a multi-family spec's choice)."""
    return {k: v for k, v in config.items() if k not in CARRIED and k != "family"}


def trial_epochs(spec: SweepSpec, config: dict[str, Any]) -> int:
    """The epochs a trial whose config is ``config`` trains: where a compute budget planned
    them (``EPOCHS_KEY``: fewer where the budget holds fewer, more where the policy gave
    a long schedule, ``policy.long_epochs``), those; else its recipe's where it sets
    them (``RecipeAttr.max_epochs``), never past the spec's ``max_epochs``."""
    if config.get(EPOCHS_KEY):
        return int(config[EPOCHS_KEY])
    return planned_epochs(spec, config)


def planned_epochs(spec: SweepSpec, config: dict[str, Any]) -> int:
    """The schedule a trial whose config is ``config`` is planned on before any budget: its
    recipe's look where it sets one, else the spec's ``max_epochs``; an interrupted trial
    going on keeps the one its run started on (``ResumeAttr.max_epochs``), and one started
    again keeps the one it was planned on (``PLANNED_KEY``, carried from its user attribute)."""
    resumed = config.get(RESUME_KEY) or {}
    if resumed.get("max_epochs"):
        return int(resumed["max_epochs"])
    if config.get(PLANNED_KEY):
        return int(config[PLANNED_KEY])
    recipe = config.get(RECIPE_KEY) or {}
    return min(spec.max_epochs, int(recipe.get("max_epochs") or spec.max_epochs))


def trial_setup(spec: SweepSpec, config: dict[str, Any]) -> tuple[str, str | None, dict]:
    """What a trial whose Ray config (or Optuna params, with ``RECIPE_KEY`` from its user
    attributes) is ``config`` trains: (family, preset, knobs), the knobs being the spec's fixed
    ones (not for an exact recipe's), then a recipe's, then the sampled ones. ``max_epochs``,
    threads and seed aside."""
    family = spec.family_of(config)
    recipe = config.get(RECIPE_KEY) or {}
    preset = recipe["preset"] if "preset" in recipe else spec.preset_of(family)
    fixed = {k: v for k, v in spec.fixed.items() if k == "seed" or not recipe.get("exact")}
    seed = {"seed": int(config[SEED_KEY])} if config.get(SEED_KEY) is not None else {}
    return family, preset, {**fixed, **recipe.get("hp", {}), **hyperparameters(config), **seed}


class DefineByRun:
    """The space as an Optuna define-by-run function (Ray's OptunaSearch accepts one). It also
    returns the Optuna trial's number, so the driver can tag the trial's MLflow run with it and a
    resume can match the two records one to one, and an interrupted trial enqueued again its
    resume information (``RESUME_KEY``). A class, not a closure: Ray pickles the searcher
    with its experiment state."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        # the family first; a multi-family spec's knobs of that family only (define-by-run)
        family = (trial.suggest_categorical("family", list(self.spec.families))
                  if self.spec.multi else None)
        for name, d in distributions(self.spec, family).items():
            if name == "family":
                continue
            if isinstance(d, CategoricalDistribution):
                trial.suggest_categorical(name, d.choices)
            elif isinstance(d, IntDistribution):
                trial.suggest_int(name, d.low, d.high, step=d.step)
            else:
                trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
        carried: dict[str, Any] = {TRIAL_KEY: trial.number}
        for key in (RESUME_KEY, RECIPE_KEY, WARM_KEY, SEED_KEY, PLANNED_KEY, FILLS_KEY):
            if key in trial.user_attrs:
                carried[key] = trial.user_attrs[key]
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
    if spec.sampler == "nsga2":  # a generation a quarter of the trials, 4 to 50
        return optuna.samplers.NSGAIISampler(seed=seed,
                                             population_size=max(4, min(50, spec.trials // 4)))
    return optuna.samplers.TPESampler(seed=seed)


def open_study(spec: SweepSpec, storage) -> optuna.Study:
    """The sweep's study (made on its first command): one direction per objective. A study
    made with other objectives is a bad spec: said in one line, nothing changed (Optuna loads
    an existing study whatever directions it is asked for)."""
    study = optuna.create_study(study_name=spec.name, storage=storage, load_if_exists=True,
                                directions=spec.directions)
    had = [d.name.lower() for d in study.directions]
    if had != spec.directions:
        raise SpecError(f"{spec.path}: objectives: must be those the sweep {spec.name} began "
                        f"with ({', '.join(had)}), but got {', '.join(spec.directions)}.")
    return study
