from __future__ import annotations

from fmnist.models._layers import image_input, keras_api, softmax_head
from fmnist.models._registry import HP, register


@register(
    "mlp",
    hps=[
        HP("input_dropout", "float", 0.1, 0.0, 0.9, help="dropout on the flattened pixels"),
        HP("layers", "int", 2, 1, 4, help="hidden Dense layers"),
        HP("units", "int", 256, 8, 4096, help="units of the first hidden layer"),
        HP("shrink", "float", 0.5, 0.25, 1.0,
           help="width ratio from one hidden layer to the next (1 = constant, 0.5 = halving)"),
        HP("dropout", "float", 0.2, 0.0, 0.9, help="dropout after each hidden layer"),
        HP("activation", "choice", "relu", choices=("relu", "elu", "gelu")),
    ],
    presets={
        # 002: four hidden layers 256-128-64-32, general to specific, dropout tuned
        "general_to_specific": {"layers": 4, "units": 256, "shrink": 0.5},
    },
    source="002",
)
def build(hp):
    """Flatten -> dropout -> `layers` x (Dense -> dropout) -> softmax (the 002 write-up's MLP,
    whose Keras Tuner grid searched input dropout 0-0.3, 1-4 layers of 32-512 units, dropout
    0-0.4 and the learning rate)."""
    keras, layers = keras_api()
    x_in, x = image_input()
    x = layers.Flatten()(x)
    if hp["input_dropout"] > 0:
        x = layers.Dropout(hp["input_dropout"])(x)
    for i in range(hp["layers"]):
        units = max(10, round(hp["units"] * hp["shrink"] ** i))
        x = layers.Dense(units, activation=hp["activation"])(x)
        if hp["dropout"] > 0:
            x = layers.Dropout(hp["dropout"])(x)
    return keras.Model(x_in, softmax_head(x), name="mlp")
