"""The model zoo: one module per architecture family, each registering ``build(hp)``.

>>> from fmnist import models
>>> models.families()[:3]
['allcnn', 'basiccnn', 'lenet5']
>>> models.build("minivgg", {"blocks": 3}).name
'minivgg'
"""

from fmnist import runtime  # noqa: F401 - first: TensorFlow without its native start-up lines
from fmnist.models import (  # noqa: F401  (importing a family registers it)
    allcnn,
    basiccnn,
    lenet5,
    minivgg,
    mlp,
    mobilenetv2,
    model5,
    resnet,
    shakeshake,
    shufflenet,
    skipcnn,
    wideresnet,
)
from fmnist.models._registry import (
    HP,
    Family,
    build,
    families,
    get_family,
    hyperparameters,
    presets,
    register,
    resolve,
)

__all__ = ["HP", "Family", "build", "families", "get_family", "hyperparameters", "presets",
           "register", "resolve"]


def _cache_keras_skipsets() -> None:
    """Keras's saving walks every object's attributes less a skip set per object type. Keras
    3.15 stores that set under ``saving_attr_skipset_<type>`` and looks it up under
    ``saving_attr_skiplist_<type>``, so it never finds it and builds a throwaway Layer (or
    Optimizer, Metric...) to compute it again, for every object of every save and load. Memoized,
    a lenet5 ``model.save`` took 58-69 ms here instead of 96 ms: every trial saves its final model
    and, with per-epoch state, every epoch. The set depends on the type alone, as Keras's own
    cache assumes. Where Keras renames the function, nothing changes."""
    import functools

    from keras.src.saving import saving_lib

    skipset = getattr(saving_lib, "get_attr_skipset", None)
    if skipset is not None and not hasattr(skipset, "cache_info"):
        saving_lib.get_attr_skipset = functools.cache(skipset)


_cache_keras_skipsets()
