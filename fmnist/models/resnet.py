from __future__ import annotations

from fmnist.models._layers import conv_bn_act, image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register

# depth -> basic blocks per stage (He et al. 2016); widths double per stage from `width`
STAGES: dict[int, tuple[int, ...]] = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STRIDES = (1, 2, 2, 2)  # 28 -> 28 -> 14 -> 7 -> 4


def shortcut(x, filters: int, strides: int):
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv_bn_act(x, filters, 1, strides, act=None)


def stem(x, width: int):
    return conv_bn_act(x, width, 3)


@register(
    "resnet",
    hps=[
        HP("depth", "choice", 18, choices=tuple(STAGES), help="10, 18 or 34 layers"),
        HP("width", "int", 16, 8, 128, help="filters of the first stage; doubled per stage"),
        HP("dropout", "float", 0.25, 0.0, 0.9, help="dropout before the softmax"),
    ],
    presets={
        "resnet18": {"depth": 18, "width": 64, "dropout": 0.25},
        "resnet34": {"depth": 34, "width": 64, "dropout": 0.25},
    },
    source="004",
)
def build(hp):
    """ResNet-10/18/34 with basic blocks (004: ResNet18 and ResNet34 with dropout 0.25).
    Adapted to 28x28x1 as CIFAR-style ResNets are: a 3x3 stride-1 stem and no max pooling, so
    the four stages see 28, 14, 7 and 4 pixels; global average pooling, dropout, softmax."""
    keras, layers = keras_api()
    x_in, x = image_input()
    x = stem(x, hp["width"])
    for s, (blocks, stride) in enumerate(zip(STAGES[hp["depth"]], STRIDES, strict=True)):
        filters = hp["width"] * 2**s
        for i in range(blocks):
            st = stride if i == 0 else 1
            y = conv_bn_act(x, filters, 3, st)
            y = conv_bn_act(y, filters, 3, act=None)
            x = layers.Activation("relu")(layers.add([shortcut(x, filters, st), y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(x_in, softmax_head(x, hp["dropout"]), name="resnet")
