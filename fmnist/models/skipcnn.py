from __future__ import annotations

from fmnist.models._layers import image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register


@register(
    "skipcnn",
    hps=[
        HP("blocks", "int", 2, 1, 4, help="skip blocks: BN, conv, add, 2x2 max pooling"),
        HP("filters", "int", 32, 8, 256),
        HP("conv_dropout", "float", 0.0, 0.0, 0.9,
           help="dropout on the convolution of every block after the first"),
        HP("dense", "int", 128, 16, 2048),
        HP("head_dropout", "float", 0.5, 0.0, 0.9),
    ],
    presets={
        "cnn2": {"blocks": 2, "filters": 32, "conv_dropout": 0.0, "head_dropout": 0.5},
        "cnn2_dropout": {"blocks": 2, "filters": 64, "conv_dropout": 0.3, "head_dropout": 0.7},
        "cnn3_dropout": {"blocks": 3, "filters": 64, "conv_dropout": 0.3, "head_dropout": 0.7},
    },
    source="003",
)
def build(hp):
    """CNN2 / CNN2_dropout / CNN3_dropout of the 003 write-up: each block adds the output of a
    BatchNormalization to a 3x3 ReLU convolution of it (the first block's single input channel
    is broadcast over the filters, as in the write-up) and max-pools; then BatchNormalization,
    Dense 128 with dropout, softmax. Convolutions keep the write-up's initialisers (uniform
    kernels, normal biases)."""
    keras, layers = keras_api()
    initializers = keras.initializers
    x_in, x = image_input()
    for b in range(hp["blocks"]):
        x_bn = layers.BatchNormalization()(x)
        x_c = layers.Conv2D(hp["filters"], 3, padding="same", activation="relu",
                            kernel_initializer=initializers.RandomUniform(-0.05, 0.05),
                            bias_initializer=initializers.RandomNormal(stddev=0.05))(x_bn)
        if b > 0 and hp["conv_dropout"] > 0:
            x_c = layers.Dropout(hp["conv_dropout"])(x_c)
        x = layers.MaxPooling2D(2, padding="same")(layers.add([x_bn, x_c]))
    x = layers.Flatten()(layers.BatchNormalization()(x))
    x = layers.Dense(hp["dense"], activation="relu")(x)
    return keras.Model(x_in, softmax_head(x, hp["head_dropout"]), name="skipcnn")
