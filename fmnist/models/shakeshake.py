from __future__ import annotations

from fmnist.models._layers import conv_bn_act, image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register
from fmnist.models.resnet import STAGES, STRIDES, shortcut, stem


def _branch(x, filters: int, strides: int):
    _, layers = keras_api()
    y = layers.Activation("relu")(x)
    y = conv_bn_act(y, filters, 3, strides)
    return conv_bn_act(y, filters, 3, act=None)


@register(
    "shakeshake",
    hps=[
        HP("depth", "choice", 10, choices=tuple(STAGES), help="ResNet depth: 10, 18 or 34"),
        HP("width", "int", 16, 8, 128, help="filters of the first stage; doubled per stage"),
        HP("dropout", "float", 0.0, 0.0, 0.9, help="dropout before the softmax"),
    ],
    presets={"shakeshake34": {"depth": 34, "width": 32, "dropout": 0.0}},
    source="004",
)
def build(hp):
    """ShakeShake ResNet (004's ShakeShake34): the ResNet family's stages, each residual block
    with two parallel branches mixed by the shake-shake regulariser (random per-image weights
    forward, other random weights backward, the mean at inference). Same 28x28 adaptation as
    `resnet`; the preset uses width 32 (the write-up does not give one)."""
    from fmnist.models._custom_layers import ShakeShake

    keras, layers = keras_api()
    x_in, x = image_input()
    x = stem(x, hp["width"])
    n = 0
    for s, (blocks, stride) in enumerate(zip(STAGES[hp["depth"]], STRIDES, strict=True)):
        filters = hp["width"] * 2**s
        for i in range(blocks):
            st = stride if i == 0 else 1
            mixed = ShakeShake(seed=n)([_branch(x, filters, st), _branch(x, filters, st)])
            x = layers.add([shortcut(x, filters, st), mixed])
            n += 1
    x = layers.GlobalAveragePooling2D()(layers.Activation("relu")(x))
    return keras.Model(x_in, softmax_head(x, hp["dropout"]), name="shakeshake")
