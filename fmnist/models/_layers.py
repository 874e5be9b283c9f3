"""Building blocks shared by the families: the input stem (the model scales its own pixels), the
classifier head, and the two custom layers (channel split, shake-shake).

Nothing here imports Keras until a block is built: a family's declaration (``register`` with its
``HP``s, presets and recipes) is read without TensorFlow. ``keras_api()`` is how a builder gets
Keras; the custom layers live in ``fmnist.models._custom_layers`` (Keras at import) and are
reachable here by name, ``from fmnist.models._layers import ShakeShake``, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

NUM_CLASSES = 10
_CUSTOM_LAYERS = ("ChannelSplit", "ShakeShake")


def keras_api() -> tuple[Any, Any]:
    """``(keras, keras.layers)``, imported on first call through ``fmnist.runtime`` (TensorFlow
    quietly, and fmnist's custom layers registered for loading)."""
    from fmnist.runtime import keras

    return keras, keras.layers


def __getattr__(name: str) -> Any:  # PEP 562: the custom layers, Keras with them
    if name in _CUSTOM_LAYERS:
        from fmnist.models import _custom_layers

        return getattr(_custom_layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def image_input() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """(N, 28, 28, 1) input of pixel values 0..255 (N, 28, 28 is accepted too), scaled to [0, 1]."""
    keras, layers = keras_api()
    x_in = keras.Input((28, 28, 1), name="image")
    return x_in, layers.Rescaling(1.0 / 255.0, name="scale")(x_in)


def softmax_head(x: keras.KerasTensor, dropout: float = 0.0) -> keras.KerasTensor:
    _, layers = keras_api()
    if dropout > 0:
        x = layers.Dropout(dropout)(x)
    return layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)


def conv_bn_act(x, filters: int, kernel: int = 3, strides: int = 1, act: str | None = "relu",
                batch_norm: bool = True, padding: str = "same"):
    _, layers = keras_api()
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding,
                      use_bias=not batch_norm)(x)
    if batch_norm:
        x = layers.BatchNormalization()(x)
    return layers.Activation(act)(x) if act else x


def channel_shuffle(x, groups: int = 2):
    _, layers = keras_api()
    _, h, w, c = x.shape
    x = layers.Reshape((h, w, groups, c // groups))(x)
    x = layers.Permute((1, 2, 4, 3))(x)
    return layers.Reshape((h, w, c))(x)
