from __future__ import annotations

from fmnist.models._layers import conv_bn_act, image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register

# (expansion t, channels c, repeats n, first stride s) of MobileNetV2, with the first two
# down-samplings removed for 28x28 inputs
CONFIG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))


def _divisible(v: float, d: int = 8) -> int:
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


@register(
    "mobilenetv2",
    hps=[
        HP("alpha", "float", 0.5, 0.25, 1.4, help="width multiplier"),
        HP("dropout", "float", 0.2, 0.0, 0.9, help="dropout before the softmax"),
    ],
    presets={"mobilenetv2": {"alpha": 1.0, "dropout": 0.2}},
    source="004",
)
def build(hp):
    """MobileNetV2 (Sandler et al. 2018; 004): inverted residual blocks with linear bottlenecks
    and ReLU6, channels scaled by `alpha`. Adapted to 28x28: a stride-1 stem and stride 1 in the
    first two stages, so the image is down-sampled three times (28-14-7-4) instead of five."""
    keras, layers = keras_api()
    a = hp["alpha"]
    x_in, x = image_input()
    x = conv_bn_act(x, _divisible(32 * a), 3, act="relu6")
    for t, c, n, s in CONFIG:
        out = _divisible(c * a)
        for i in range(n):
            st = s if i == 0 else 1
            y = conv_bn_act(x, x.shape[-1] * t, 1, act="relu6") if t != 1 else x
            y = layers.DepthwiseConv2D(3, strides=st, padding="same", use_bias=False)(y)
            y = layers.Activation("relu6")(layers.BatchNormalization()(y))
            y = conv_bn_act(y, out, 1, act=None)
            x = layers.add([x, y]) if st == 1 and x.shape[-1] == out else y
    x = conv_bn_act(x, _divisible(1280 * max(1.0, a)), 1, act="relu6")
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(x_in, softmax_head(x, hp["dropout"]), name="mobilenetv2")
