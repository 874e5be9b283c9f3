from __future__ import annotations

from fmnist.models._layers import conv_bn_act, image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register


@register(
    "minivgg",
    hps=[
        HP("blocks", "int", 2, 2, 4, help="conv blocks, each ending in 2x2 max pooling"),
        HP("convs", "int", 2, 1, 3, help="3x3 convolutions per block"),
        HP("filters", "int", 32, 8, 256, help="filters of the first block; doubled per block"),
        HP("batch_norm", "bool", True),
        HP("conv_dropout", "float", 0.25, 0.0, 0.9, help="dropout after each block"),
        HP("dense", "int", 512, 16, 4096, help="units of the hidden Dense layer"),
        HP("dropout", "float", 0.5, 0.0, 0.9, help="dropout before the softmax"),
    ],
    presets={
        "mini_vgg": {"batch_norm": False},  # 000: four ReLU convolutions, max pooling, Dense 512
        "mini_vgg_bn": {},  # 004: the same with BatchNormalization
        # the speed runs' recipe (fastcnn's `fast`) on 004's architecture, with less dropout
        # beside its augmentation and label smoothing; measured in BENCHMARKS.md
        "fast": {"conv_dropout": 0.1, "dropout": 0.3},
    },
    recipes={"fast": {
        "optimizer": "sgd", "nesterov": True, "momentum": 0.9, "learning_rate": 0.1,
        "weight_decay": 5e-4, "schedule": "triangle", "peak_at": 0.2, "label_smoothing": 0.2,
        "batch_size": 128, "max_epochs": 15, "early_stopping": False, "flip": 0.5, "crop": 2,
        "tta": "flip_shift"}},
    source="000, 004",
)
def build(hp):
    """Mini-VGG (000, 004): `blocks` blocks of `convs` 3x3 ReLU convolutions (filters doubling
    per block), 2x2 max pooling and dropout, then Dense `dense` with dropout and a softmax.
    Pooling pads ('same') so four blocks fit a 28x28 image (28-14-7-4-2)."""
    keras, layers = keras_api()
    x_in, x = image_input()
    for b in range(hp["blocks"]):
        for _ in range(hp["convs"]):
            x = conv_bn_act(x, hp["filters"] * 2**b, 3, batch_norm=hp["batch_norm"])
        x = layers.MaxPooling2D(2, padding="same")(x)
        if hp["conv_dropout"] > 0:
            x = layers.Dropout(hp["conv_dropout"])(x)
    x = layers.Flatten()(x)
    x = layers.Dense(hp["dense"], activation="relu")(x)
    return keras.Model(x_in, softmax_head(x, hp["dropout"]), name="minivgg")
