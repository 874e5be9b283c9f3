"""The model zoo: one module per architecture family, each registering ``build(hp)``.

>>> from fmnist import models
>>> models.families()[:3]
['allcnn', 'basiccnn', 'lenet5']
>>> models.build("minivgg", {"blocks": 3}).name
'minivgg'

Importing the zoo declares the families (hyperparameters, presets, recipes) without TensorFlow:
a family's module imports Keras inside its builder, through ``fmnist.runtime``, which registers
the custom layers for ``keras.models.load_model`` and memoizes Keras's save/load skip sets
(``fmnist.compat``) the moment Keras comes in. Where Keras is already in when the zoo is
imported, both happen here. A script that imports the zoo, then Keras itself, and loads a saved
ShuffleNet or ShakeShake without building a model first takes Keras from ``fmnist.runtime``
(as everything in ``fmnist`` does), or imports it.
"""

import sys

from fmnist.models import (  # noqa: F401  (importing a family registers it)
    allcnn,
    basiccnn,
    fastcnn,
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
    recipe,
    register,
    resolve,
)

__all__ = ["HP", "Family", "build", "families", "get_family", "hyperparameters", "presets",
           "recipe", "register", "resolve"]


if "keras" in sys.modules:  # Keras came in first, not through fmnist.runtime
    import fmnist.runtime  # noqa: F401 - registers the custom layers, as it does on its import
