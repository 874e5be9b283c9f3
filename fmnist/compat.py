"""Every use of a library's private API, in one place.

Each function below reaches into one library's internals, names the version it was checked
against (``CHECKED``), and is guarded: where the library has moved the thing, it falls back to
the public behaviour (slower, or a stop noticed an epoch later) instead of failing. ``checks()``
says for each guarded path whether it still works here; ``tests/fmnist/test_compat.py`` fails
loudly, naming the path, the day one stops working, so a silent fallback cannot go unnoticed.

The Ray and Optuna imports are inside the functions: ``fmnist`` itself needs neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CHECKED = {"keras": "3.15.1", "ray": "2.60.0", "optuna": "5.0.0"}


def cache_keras_skipsets() -> bool:
    """Keras (``keras.src.saving.saving_lib.get_attr_skipset``): memoize the attribute skip set
    per object type. Keras 3.15 stores it under ``saving_attr_skipset_<type>`` and looks it up
    under ``saving_attr_skiplist_<type>``, so without this every save and load builds a
    throwaway Layer, Optimizer or Metric per object. The set depends on the type alone, as
    Keras's own cache assumes. Returns whether the path is there (and now memoized)."""
    import functools

    try:
        from keras.src.saving import saving_lib
    except ImportError:
        return False
    skipset = getattr(saving_lib, "get_attr_skipset", None)
    if skipset is None:
        return False
    if not hasattr(skipset, "cache_info"):
        saving_lib.get_attr_skipset = functools.cache(skipset)
    return True


def flatten_layers(model) -> list:
    """Every layer inside ``model``, nested ones included, ``model`` itself excluded (Keras's
    ``Layer._flatten_layers``; the fallback walks the public ``layers`` of each model)."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False))
    out, todo = [], list(getattr(model, "layers", []))
    while todo:
        layer = todo.pop(0)
        out.append(layer)
        todo.extend(getattr(layer, "layers", []))
    return out


def drop_tune_actor_env(name: str) -> bool:
    """Ray Tune (``ray.tune.execution.class_cache.DEFAULT_ENV_VARS``): drop ``name`` from the
    runtime environment Tune gives every trial actor. An actor with a runtime environment of its
    own gets a new process through Ray's runtime-env agent instead of a worker Ray has already
    started. Returns whether the path is there."""
    try:
        from ray.tune.execution import class_cache

        env = class_cache.DEFAULT_ENV_VARS
    except (ImportError, AttributeError):
        return False
    env.pop(name, None)
    return True


def tune_stop_requested() -> Callable[[], bool] | None:
    """Ray Train's session (``ray.train._internal.session.get_session().stop_event``): whether
    Tune has asked the calling trial to stop, readable between training steps instead of at the
    next report. None outside a trial, or where Ray moved it."""
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        return session.stop_event.is_set if session is not None else None
    except Exception:  # noqa: BLE001 - any change in Ray's internals: Tune's own way then
        return None


def optuna_trial_id(trial: Any) -> int:
    """Optuna (``FrozenTrial._trial_id``): the storage's id of a trial, which the storage's
    public setters take (Optuna has no public getter for it)."""
    return trial._trial_id


def tune_optuna_trial(searcher: Any, trial_id: str) -> Any:
    """Ray Tune (``OptunaSearch._ot_trials``): the Optuna trial Ray's searcher asked for a Tune
    trial, to set its constraints (``Trial.set_constraint``) before Ray tells its value. None
    where Ray moved it: the sampler then sees every trial as feasible (the record still says
    which were not, and none of those is trained)."""
    trials = getattr(searcher, "_ot_trials", None)
    return trials.get(trial_id) if isinstance(trials, dict) else None


def checks() -> dict[str, bool]:
    """Each guarded path: whether it works with the libraries installed here."""
    import optuna

    out = {"keras saving_lib.get_attr_skipset": cache_keras_skipsets()}
    from fmnist.runtime import keras

    model = keras.Sequential([keras.Input((2,)), keras.Sequential([keras.layers.Dense(1)])])
    out["keras Layer._flatten_layers"] = hasattr(model, "_flatten_layers") and any(
        isinstance(la, keras.layers.Dense) for la in flatten_layers(model))
    try:
        from ray.tune.execution import class_cache

        out["ray class_cache.DEFAULT_ENV_VARS"] = isinstance(class_cache.DEFAULT_ENV_VARS, dict)
    except (ImportError, AttributeError):
        out["ray class_cache.DEFAULT_ENV_VARS"] = False
    try:
        from ray.train._internal.session import get_session  # noqa: F401

        out["ray train._internal.session.get_session"] = True
    except ImportError:
        out["ray train._internal.session.get_session"] = False
    try:
        from ray.tune.search.optuna import OptunaSearch

        out["ray OptunaSearch._ot_trials"] = isinstance(
            getattr(OptunaSearch(metric="m", mode="max"), "_ot_trials", None), dict)
    except ImportError:
        out["ray OptunaSearch._ot_trials"] = False
    study = optuna.create_study()
    study.ask()
    out["optuna FrozenTrial._trial_id"] = isinstance(getattr(study.trials[0], "_trial_id", None),
                                                     int)
    return out
