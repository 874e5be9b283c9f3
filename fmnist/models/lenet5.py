from __future__ import annotations

from fmnist.models._layers import conv_bn_act, image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register


@register(
    "lenet5",
    hps=[
        HP("conv1", "int", 6, 1, 256, help="filters of the first convolution"),
        HP("conv2", "int", 16, 1, 512, help="filters of the second convolution"),
        HP("kernel", "choice", 5, choices=(3, 5)),
        HP("batch_norm", "bool", True, help="BatchNormalization after each convolution"),
        HP("activation", "choice", "elu", choices=("elu", "relu", "tanh")),
        HP("dense1", "int", 120, 8, 2048),
        HP("dense2", "int", 84, 8, 2048),
        HP("dropout", "float", 0.5, 0.0, 0.9, help="dropout after each hidden Dense layer"),
    ],
    presets={"cnn5": {}},  # the 000 write-up's CNN5 is the default
    source="000",
)
def build(hp):
    """LeNet-5 as the 000 write-up's CNN5: two convolutions (6 and 16 filters, 5x5; the first
    padded so 28x28 is not shrunk), each with BatchNormalization, ELU and 2x2 max pooling, then
    Dense 120 and 84 with dropout 0.5 and a softmax. ELU and max pooling replace LeNet's tanh and
    average pooling, as in the write-up."""
    keras, layers = keras_api()
    act, bn, k = hp["activation"], hp["batch_norm"], hp["kernel"]
    x_in, x = image_input()
    x = conv_bn_act(x, hp["conv1"], k, act=act, batch_norm=bn, padding="same")
    x = layers.MaxPooling2D(2)(x)
    x = conv_bn_act(x, hp["conv2"], k, act=act, batch_norm=bn, padding="valid")
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    for units in (hp["dense1"], hp["dense2"]):
        x = layers.Dense(units, activation=act)(x)
        if hp["dropout"] > 0:
            x = layers.Dropout(hp["dropout"])(x)
    return keras.Model(x_in, softmax_head(x), name="lenet5")
