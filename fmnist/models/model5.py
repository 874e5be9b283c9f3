from __future__ import annotations

from fmnist.models._layers import image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register


@register(
    "model5",
    hps=[
        HP("conv1", "int", 32, 8, 256),
        HP("conv2", "int", 64, 8, 256),
        HP("conv3", "int", 64, 8, 256),
        HP("dense", "int", 128, 8, 1024, help="units of the per-position Dense layer"),
        HP("dropout1", "float", 0.2, 0.0, 0.9, help="dropout after the max pooling"),
        HP("dropout2", "float", 0.7, 0.0, 0.9, help="dropout after the per-position Dense"),
    ],
    presets={"writeup": {}},
    source="003",
)
def build(hp):
    """The 003 write-up's model5 ("3 Conv + BatchNormalization + Dropout"), quirks included:
    unpadded 3x3 ReLU convolutions (32, 64, max pooling, dropout 0.2, 64); its
    BatchNormalization layers normalise axis 1 (image rows, not channels); its Dense 128 with a
    softmax activation acts on every position before the flatten, followed by dropout 0.7;
    then the 10-way softmax."""
    keras, layers = keras_api()
    x_in, x = image_input()
    x = layers.Conv2D(hp["conv1"], 3, activation="relu")(x)
    x = layers.BatchNormalization(axis=1)(x)
    x = layers.Conv2D(hp["conv2"], 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(hp["dropout1"])(x) if hp["dropout1"] > 0 else x
    x = layers.Conv2D(hp["conv3"], 3, activation="relu")(x)
    x = layers.BatchNormalization(axis=1)(x)
    x = layers.Dense(hp["dense"], activation="softmax")(x)
    x = layers.Dropout(hp["dropout2"])(x) if hp["dropout2"] > 0 else x
    x = layers.Flatten()(x)
    return keras.Model(x_in, softmax_head(x), name="model5")
