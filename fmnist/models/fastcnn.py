from __future__ import annotations

from fmnist.models._layers import image_input, keras_api
from fmnist.models._registry import HP, register


@register(
    "fastcnn",
    hps=[
        HP("width", "int", 32, 8, 256, help="channels of the first stage; x2 per stage"),
        HP("stages", "int", 3, 1, 3, help="stages: conv, 2x2 max pooling, BN, GELU, conv"),
        HP("stem", "int", 24, 4, 128, help="channels of the 3x3 stem convolution"),
        HP("bn_momentum", "float", 0.9, 0.0, 0.999, help="BatchNormalization momentum"),
        HP("head_scale", "float", 1 / 9, 1e-3, 10.0,
           help="the logits' scale (a fixed temperature)"),
        HP("dropout", "float", 0.0, 0.0, 0.9, help="dropout before the classifier"),
        HP("activation", "choice", "gelu", choices=("gelu", "celu", "relu"),
           help="after each BatchNormalization (Page's ResNet series: CELU)"),
        HP("bn_scale", "bool", True,
           help="BatchNormalization learns its scale (airbench freezes it at 1)"),
    ],
    # wider than the defaults, chosen on val/acc at 10 epochs over 3 seeds; it trains fewer
    # images a second (BENCHMARKS.md, "The recipe at 10 epochs")
    presets={"fast": {"width": 48, "stem": 32}},
    # the training recipe the `fast` preset also sets (knobs of fmnist.train)
    recipes={"fast": {
        "optimizer": "sgd", "nesterov": True, "momentum": 0.9, "learning_rate": 0.2,
        "weight_decay": 5e-4, "schedule": "triangle", "peak_at": 0.2, "label_smoothing": 0.2,
        "batch_size": 256, "max_epochs": 20, "early_stopping": False, "flip": 0.5,
        "crop": 2, "tta": "flip_shift"}},  # ema 0.99 validated lower (BENCHMARKS.md)
    source="airbench",
)
def build(hp):
    """A small CNN for 28x28 images after the CIFAR-10 speed runs (Keller Jordan's airbench,
    2024, after David Page's ResNet-9): a 3x3 stem, then per stage a convolution, 2x2 max
    pooling, BatchNormalization and GELU, and a second convolution with BatchNormalization and
    GELU; the channels double each stage (28 -> 14 -> 7 -> 3 pixels); a global max pooling and
    a linear classifier whose logits are scaled by a fixed ``head_scale`` before the softmax.
    Sized for a CPU: about 18M multiply-adds an image at the defaults. Its ``fast`` preset sets
    the speed-run recipe as well: Nesterov SGD at a high rate on a triangular schedule, label
    smoothing, flip and 2-pixel crop augmentation, and flip-and-shift test-time augmentation."""
    keras, layers = keras_api()
    x_in, x = image_input()
    m = hp["bn_momentum"]

    def conv_bn_gelu(x, filters, pool=False):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        if pool:
            x = layers.MaxPooling2D(2)(x)
        x = layers.BatchNormalization(momentum=m, scale=hp["bn_scale"])(x)
        return layers.Activation(hp["activation"])(x)

    x = conv_bn_gelu(x, hp["stem"])
    for s in range(hp["stages"]):
        filters = hp["width"] * 2 ** s
        x = conv_bn_gelu(x, filters, pool=True)
        x = conv_bn_gelu(x, filters)
    x = layers.GlobalMaxPooling2D()(x)
    if hp["dropout"] > 0:
        x = layers.Dropout(hp["dropout"])(x)
    x = layers.Dense(10, use_bias=False)(x)
    x = layers.Rescaling(hp["head_scale"])(x)
    return keras.Model(x_in, layers.Activation("softmax", name="probs")(x), name="fastcnn")
