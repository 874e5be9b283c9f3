"""The model zoo: one module per architecture family, each registering ``build(hp)``.

>>> from fmnist import models
>>> models.families()[:3]
['allcnn', 'basiccnn', 'lenet5']
>>> models.build("minivgg", {"blocks": 3}).name
'minivgg'
"""

from fmnist import compat, runtime  # noqa: F401 - runtime first: TensorFlow, quietly
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


compat.cache_keras_skipsets()  # every model save and load: see fmnist.compat
