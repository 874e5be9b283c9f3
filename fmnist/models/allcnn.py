from __future__ import annotations

from fmnist.models._layers import image_input, keras_api
from fmnist.models._registry import HP, register


@register(
    "allcnn",
    hps=[
        HP("width1", "int", 32, 8, 256, help="filters of the first block"),
        HP("width2", "int", 64, 8, 512, help="filters of the second and third blocks"),
        HP("dropout", "float", 0.5, 0.0, 0.9, help="dropout after each strided convolution"),
    ],
    presets={"reduced": {"width1": 32, "width2": 64, "dropout": 0.5}},
    source="003",
)
def build(hp):
    """The 003 write-up's reduced All-CNN: convolutions only, with strided convolutions in place
    of pooling (3x3, 2x2, strided 1x1 at `width1`; three 3x3 with the last strided at `width2`;
    3x3 and 1x1 at `width2`, a 1x1 to the 10 classes), BatchNormalization, global average
    pooling and softmax."""
    keras, layers = keras_api()
    w1, w2, d = hp["width1"], hp["width2"], hp["dropout"]
    x_in, x = image_input()
    x = layers.Conv2D(w1, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(w1, 2, padding="same", activation="relu")(x)
    x = layers.Conv2D(w1, 1, padding="same", strides=2)(x)
    x = layers.Dropout(d)(x) if d > 0 else x
    x = layers.Conv2D(w2, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(w2, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(w2, 3, padding="same", strides=2)(x)
    x = layers.Dropout(d)(x) if d > 0 else x
    x = layers.Conv2D(w2, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(w2, 1, padding="valid", activation="relu")(x)
    x = layers.Conv2D(10, 1, padding="valid")(x)
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Activation("softmax", name="probs")(x)
    return keras.Model(x_in, out, name="allcnn")
