"""The write-ups' own configurations (``../shared/seeds``), as data: each architecture as a family
and preset of ``fmnist.models``, its training recipe in ``fmnist.train``'s knobs, and the test
accuracy the write-up reports. ``bench/reproduce.py`` trains them; a sweep with
``start_from: recipe`` enqueues those of its families as its first trials, with the ``fast``
preset's (``RECIPES``).

>>> from fmnist import writeups
>>> [r.row for r in writeups.for_families(["model5"])]
['003-model5']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ref:
    """One architecture as a write-up reports it: its recipe in ``fmnist.train``'s knobs, the
    test accuracy and seconds per epoch it gives, and what it leaves unsaid (``assumed``)."""

    row: str
    writeup: str
    model: str
    family: str
    preset: str | None
    recipe: dict[str, Any]
    reported: float | None
    reported_s_epoch: float | None = None
    assumed: str = ""
    sweep_fixed: dict[str, Any] = field(default_factory=dict)


_ADAM = {"optimizer": "adam", "learning_rate": 1e-3}
_004 = {**_ADAM, "schedule": "cyclic", "cycle_epochs": 4, "swa_epochs": 5, "flip": 0.1,
        "zoom": 0.05, "batch_size": 128, "max_epochs": 30, "early_stopping": False}
_004_ASSUMED = "epochs, batch size, peak rate and SWA length not given: 30, 128, 1e-3, last 5"

REFS = [
    Ref("000-cnn5", "000", "CNN5", "lenet5", "cnn5",
        {**_ADAM, "batch_size": 64, "shuffle": False, "patience": 10, "max_epochs": 150},
        0.907, 542 / 83),
    Ref("000-minivgg", "000", "mini_vgg", "minivgg", "mini_vgg",
        {**_ADAM, "batch_size": 64, "shuffle": False, "patience": 10, "max_epochs": 150},
        0.922, 755 / 67),
    Ref("002-mlp", "002", "MLP, general to specific", "mlp", "general_to_specific",
        {**_ADAM, "batch_size": 64, "patience": 10, "max_epochs": 100}, None, None,
        "batch size, epochs and stopping not given: 64, early stopping (patience 10); "
        "accuracy only in figures"),
    Ref("003-cnn2", "003", "CNN2 + BN + skip", "skipcnn", "cnn2",
        {**_ADAM, "batch_size": 256, "max_epochs": 35, "early_stopping": False}, 0.9204, 28.07),
    Ref("003-cnn2-dropout", "003", "CNN2 + BN + skip + dropout", "skipcnn", "cnn2_dropout",
        {**_ADAM, "batch_size": 256, "max_epochs": 50, "early_stopping": False}, 0.9237, 60.44),
    Ref("003-cnn3-dropout", "003", "CNN3 + BN + skip + dropout", "skipcnn", "cnn3_dropout",
        {**_ADAM, "batch_size": 64, "max_epochs": 50, "early_stopping": False}, 0.9275, 68.74),
    Ref("003-allcnn", "003", "reduced All-CNN", "allcnn", "reduced",
        {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": True,
         "batch_size": 256, "max_epochs": 40, "early_stopping": False}, 0.9254, 94.17,
        "batch size not given: 256; epochs from its minutes / seconds per epoch"),
    Ref("003-model5", "003", "3 conv + BN + dropout (model5)", "model5", "writeup",
        {"optimizer": "adam", "learning_rate": 0.01, "schedule": "step", "step_epochs": 10,
         "step_factor": 0.1, "batch_size": 256, "max_epochs": 40, "early_stopping": False},
        0.9324, 150.95, "batch 256 throughout (the write-up uses 1024 after epoch 10)"),
    Ref("004-shakeshake", "004", "ShakeShake34", "shakeshake", "shakeshake34", _004, 0.9571,
        None, _004_ASSUMED),
    Ref("004-wrn", "004", "WideResNet16-4", "wideresnet", "wrn16_4", _004, 0.9533, None,
        _004_ASSUMED),
    Ref("004-resnet18", "004", "ResNet18", "resnet", "resnet18", _004, 0.9474, None,
        _004_ASSUMED),
    Ref("004-resnet34", "004", "ResNet34", "resnet", "resnet34", _004, 0.9471, None,
        _004_ASSUMED),
    Ref("004-minivgg", "004", "MiniVGG", "minivgg", "mini_vgg_bn", _004, 0.9459, None,
        _004_ASSUMED),
    Ref("004-basiccnn", "004", "BasicCNN", "basiccnn", "basic_cnn", _004, 0.9421, None,
        _004_ASSUMED),
    Ref("004-mobilenetv2", "004", "MobileNetV2", "mobilenetv2", "mobilenetv2", _004, 0.932,
        None, _004_ASSUMED),
    Ref("004-shufflenet", "004", "ShuffleNet", "shufflenet", "shufflenet_v2_1x", _004, 0.929,
        None, _004_ASSUMED),
]

# the fast preset: the CIFAR-10 speed runs' recipe for 28x28 (not a write-up's; its recipe is
# the preset's own, ``fmnist.models.recipe``), measured in BENCHMARKS.md
FAST = Ref("fast", "-", "fastcnn, fast preset", "fastcnn", "fast", {"max_epochs": 20}, None)
# the same recipe on mini-VGG (its `fast` preset), so that a mini-VGG sweep starts from it
FAST_MINIVGG = Ref("fast-minivgg", "-", "minivgg, fast preset", "minivgg", "fast",
                   {"max_epochs": 15}, None)

# the order a sweep enqueues them: the fast presets, then the write-ups' by the accuracy each
# reports, best first (a budget that ends the search early has run the strongest)
RECIPES = [FAST, FAST_MINIVGG, *sorted(REFS, key=lambda r: -(r.reported or 0.0))]


def for_families(families: Iterable[str]) -> list[Ref]:
    """The recipes (the fast preset's and the write-ups') of ``families``, in ``RECIPES``
    order."""
    wanted = set(families)
    return [r for r in RECIPES if r.family in wanted]
