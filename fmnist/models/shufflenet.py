from __future__ import annotations

from fmnist.models._layers import channel_shuffle, conv_bn_act, image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register

# width multiplier -> output channels of the three stages and the final 1x1 convolution
WIDTHS = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024),
          1.5: (176, 352, 704, 1024), 2.0: (244, 488, 976, 2048)}
REPEATS = {"2-4-2": (2, 4, 2), "4-8-4": (4, 8, 4)}


def _unit(x, out: int, stride: int):
    from fmnist.models._custom_layers import ChannelSplit

    _, layers = keras_api()
    if stride == 1:
        short, x = ChannelSplit()(x)
        branch_out = out // 2
    else:
        short = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)
        short = conv_bn_act(layers.BatchNormalization()(short), out // 2, 1)
        branch_out = out - out // 2
    y = conv_bn_act(x, branch_out, 1)
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(y)
    y = conv_bn_act(layers.BatchNormalization()(y), branch_out, 1)
    return channel_shuffle(layers.concatenate([short, y]))


@register(
    "shufflenet",
    hps=[
        HP("width", "choice", 0.5, choices=tuple(WIDTHS), help="ShuffleNet v2 width: 0.5x-2x"),
        HP("stages", "choice", "2-4-2", choices=tuple(REPEATS), help="units per stage"),
        HP("dropout", "float", 0.2, 0.0, 0.9, help="dropout before the softmax"),
    ],
    presets={"shufflenet_v2_1x": {"width": 1.0, "stages": "4-8-4", "dropout": 0.2}},
    source="004",
)
def build(hp):
    """ShuffleNet v2 (Ma et al. 2018; 004): channel split, a depthwise-separable branch and a
    channel shuffle per unit, three stages that each halve the image. Adapted to 28x28: a 3x3
    stride-1 stem of 24 channels and no max pooling (28-14-7-4)."""
    keras, layers = keras_api()
    *stage_out, last = WIDTHS[hp["width"]]
    x_in, x = image_input()
    x = conv_bn_act(x, 24, 3)
    for out, n in zip(stage_out, REPEATS[hp["stages"]], strict=True):
        for i in range(n):
            x = _unit(x, out, 2 if i == 0 else 1)
    x = conv_bn_act(x, last, 1)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(x_in, softmax_head(x, hp["dropout"]), name="shufflenet")
