from __future__ import annotations

from fmnist.models._layers import conv_bn_act, image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register


@register(
    "basiccnn",
    hps=[
        HP("blocks", "int", 3, 1, 4, help="blocks of two 3x3 conv-BN-ReLU and max pooling"),
        HP("filters", "int", 32, 8, 256, help="filters of the first block; doubled per block"),
        HP("conv_dropout", "float", 0.25, 0.0, 0.9),
        HP("dense", "int", 256, 16, 2048),
        HP("dropout", "float", 0.5, 0.0, 0.9),
    ],
    presets={"basic_cnn": {}},
    source="004",
)
def build(hp):
    """The 004 write-up's "basic CNN with dropout and batch normalization": `blocks` blocks of
    two 3x3 conv-BN-ReLU, 2x2 max pooling (padded) and dropout, then Dense-BN-ReLU with dropout
    and a softmax."""
    keras, layers = keras_api()
    x_in, x = image_input()
    for b in range(hp["blocks"]):
        for _ in range(2):
            x = conv_bn_act(x, hp["filters"] * 2**b)
        x = layers.MaxPooling2D(2, padding="same")(x)
        x = layers.Dropout(hp["conv_dropout"])(x) if hp["conv_dropout"] > 0 else x
    x = layers.Flatten()(x)
    x = layers.Dense(hp["dense"], use_bias=False)(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    return keras.Model(x_in, softmax_head(x, hp["dropout"]), name="basiccnn")
