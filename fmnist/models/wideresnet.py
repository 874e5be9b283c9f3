from __future__ import annotations

from fmnist.models._layers import image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register

DEPTHS = (10, 16, 22, 28, 40)  # 6n + 4


def _bn_relu(x):
    _, layers = keras_api()
    return layers.Activation("relu")(layers.BatchNormalization()(x))


@register(
    "wideresnet",
    hps=[
        HP("depth", "choice", 16, choices=DEPTHS, help="6n+4: n pre-activation blocks per group"),
        HP("widen", "int", 2, 1, 10, help="widen factor k: groups of 16k, 32k, 64k filters"),
        HP("dropout", "float", 0.0, 0.0, 0.9, help="dropout between the two convolutions"),
    ],
    presets={"wrn16_4": {"depth": 16, "widen": 4, "dropout": 0.0}},
    source="004",
)
def build(hp):
    """Wide ResNet WRN-d-k (Zagoruyko and Komodakis 2016; 004's WideResNet16-4): a 3x3 stem of
    16 filters, three groups of (d-4)/6 pre-activation blocks at 16k, 32k and 64k filters with
    dropout between the convolutions, then BN-ReLU, global average pooling and softmax. On
    28x28 the groups see 28, 14 and 7 pixels, as CIFAR's 32, 16 and 8."""
    keras, layers = keras_api()
    n = (hp["depth"] - 4) // 6
    x_in, x = image_input()
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    for g, stride in enumerate((1, 2, 2)):
        filters = 16 * hp["widen"] * 2**g
        for i in range(n):
            st = stride if i == 0 else 1
            pre = _bn_relu(x)
            y = layers.Conv2D(filters, 3, strides=st, padding="same", use_bias=False)(pre)
            y = _bn_relu(y)
            if hp["dropout"] > 0:
                y = layers.Dropout(hp["dropout"])(y)
            y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
            if st != 1 or x.shape[-1] != filters:
                x = layers.Conv2D(filters, 1, strides=st, use_bias=False)(pre)
            x = layers.add([x, y])
    x = layers.GlobalAveragePooling2D()(_bn_relu(x))
    return keras.Model(x_in, softmax_head(x), name="wideresnet")
