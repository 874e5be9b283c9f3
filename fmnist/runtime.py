"""TensorFlow and Keras for the whole package, imported once with TensorFlow's native start-up
lines off.

On import TensorFlow's C++ core writes to the process's stderr, below Python, lines no setting
turns off (absl's "All log messages before absl::InitializeLog() is called...", oneDNN's notice,
"Could not find cuda drivers", "failed call to cuInit" on every machine without a GPU).
Everything in ``fmnist`` imports ``keras`` and ``tf`` from here, so they come in with stderr's
file descriptor pointed at ``/dev/null``; ``FMNIST_DEBUG=1`` (``fmnist-sweep --debug``) keeps
them, and TensorFlow's later C++ log lines too (``TF_CPP_MIN_LOG_LEVEL``, 3 otherwise).

Nothing else in ``fmnist`` imports Keras at import time (``fmnist.models`` declares its families
without it, ``fmnist.train`` gives its names on first use), so this module is also where
fmnist's own Keras objects are registered for loading saved models: as Keras comes in.
"""

from __future__ import annotations

import contextlib
import os
import sys


def debug() -> bool:
    return os.environ.get("FMNIST_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def native_stderr_off():
    """File descriptor 2 to ``/dev/null`` for the block (Python's own stderr is flushed first
    and comes back after), unless ``debug()``."""
    if debug():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _import():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug() else "3")
    with native_stderr_off():
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # CUDA's probe, and its lines, happen here
    if not debug():  # its Python-side warnings too, e.g. on retracing as many models predict
        tf.get_logger().setLevel("ERROR")
    return keras, tf


def _register_fmnist_objects() -> None:
    """fmnist's own Keras objects registered for loading saved models (the custom layers of
    ``fmnist.models``, the learning-rate schedule of ``fmnist.train``), and Keras's save/load
    skip sets memoized (``fmnist.compat``): wherever ``fmnist`` brings Keras in, a saved model
    of any family loads, whether or not a model was built or trained first."""
    from fmnist import compat
    from fmnist.models import _custom_layers  # noqa: F401 - @register_keras_serializable
    from fmnist.train import schedules  # noqa: F401 - @register_keras_serializable

    compat.cache_keras_skipsets()  # every model save and load: see fmnist.compat


keras, tf = _import()
_register_fmnist_objects()  # after the names above: these modules import them from here
