"""The model zoo, tested over the registry itself (as timm does): every family and every preset
builds, predicts, and learns one step; the write-ups' parameter counts are exact.

Keras and TensorFlow are imported in the tests that use them: pytest imports this module for
the unit tier (``make test-fast``) too, which stays without them."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist import models
from fmnist.hparams import HP

CASES = [(f, p) for f in models.families() for p in (None, *models.presets(f))]


def test_registry_holds_every_family_of_the_writeups():
    assert models.families() == sorted([
        "mlp", "lenet5", "minivgg", "skipcnn", "allcnn", "model5", "basiccnn", "resnet",
        "wideresnet", "mobilenetv2", "shufflenet", "shakeshake",
        "fastcnn",  # not a write-up's: the CIFAR-10 speed runs' recipe for 28x28 (issue 21)
    ])
    for f in models.families():
        fam = models.get_family(f)
        assert fam.doc, f"{f} has no docstring"
        assert fam.source, f"{f} names no write-up"


@pytest.fixture(scope="module")
def batch(arrays):
    x_train, y_train, _, _ = arrays
    idx = np.concatenate([np.flatnonzero(y_train == c)[:2] for c in range(10)])  # 2 per class
    return x_train[idx], y_train[idx]


@pytest.mark.parametrize(("family", "preset"), CASES, ids=[f"{f}-{p}" for f, p in CASES])
def test_builds_predicts_and_learns_one_step(family, preset, batch):
    from fmnist.runtime import keras, tf

    keras.utils.set_random_seed(0)
    model = models.build(family, preset=preset)
    x, y = batch

    probs = model.predict_on_batch(x[:2])
    assert probs.shape == (2, 10)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    # one SGD step in training mode; the non-trainable state (BN statistics, dropout and
    # shake-shake seeds) is restored so that the loss before and after sees the same masks
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    state = [v.numpy() for v in model.non_trainable_variables]

    def loss_now():
        return float(loss_fn(y, model(x, training=True)))

    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    dead = [v.path for v, g in zip(model.trainable_variables, grads, strict=True)
            if g is None or not np.any(g.numpy() != 0)]
    assert not dead, f"weights with no gradient: {dead}"
    for v, s in zip(model.non_trainable_variables, state, strict=True):
        v.assign(s)
    before = loss_now()
    for v, s in zip(model.non_trainable_variables, state, strict=True):
        v.assign(s)
    keras.optimizers.SGD(1e-4).apply_gradients(
        zip(grads, model.trainable_variables, strict=True))
    for v, s in zip(model.non_trainable_variables, state, strict=True):
        v.assign(s)
    assert loss_now() < before


@pytest.mark.parametrize(("family", "preset", "count"), [
    ("skipcnn", "cnn2", 211_950),
    ("skipcnn", "cnn2_dropout", 440_910),
    ("skipcnn", "cnn3_dropout", 207_758),
    ("allcnn", "reduced", 139_634),
    ("model5", "writeup", 192_218),
])
def test_writeup_003_parameter_counts_are_exact(family, preset, count):
    assert models.build(family, preset=preset).count_params() == count


def test_input_may_be_uint8_28x28_or_float_28x28x1(batch):
    model = models.build("lenet5")
    x = batch[0][:4]
    a = model.predict_on_batch(x)
    b = model.predict_on_batch(x.astype("float32")[..., None])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _count(model, cls) -> int:
    """Layers of ``model`` of type ``cls``, a class of ``keras.layers`` or its name."""
    if isinstance(cls, str):
        from fmnist.runtime import keras

        cls = getattr(keras.layers, cls)
    return sum(isinstance(layer, cls) for layer in model.layers)


Conv, Dense = "Conv2D", "Dense"  # keras.layers' (by name: Keras comes in with the first test)


@pytest.mark.parametrize(("family", "small", "big", "cls", "n_small", "n_big"), [
    ("minivgg", {"blocks": 2}, {"blocks": 3}, Conv, 4, 6),
    ("minivgg", {"convs": 1, "blocks": 4}, {"convs": 3, "blocks": 4}, Conv, 4, 12),
    ("mlp", {"layers": 1}, {"layers": 4}, Dense, 2, 5),
    ("skipcnn", {"blocks": 2}, {"blocks": 3}, Conv, 2, 3),
    ("basiccnn", {"blocks": 1}, {"blocks": 4}, Conv, 2, 8),
    ("resnet", {"depth": 10}, {"depth": 34}, Conv, 1 + 8 + 3, 1 + 32 + 3),
    ("wideresnet", {"depth": 10}, {"depth": 28}, Conv, 1 + 6 + 3, 1 + 24 + 3),
    ("shakeshake", {"depth": 10}, {"depth": 18}, Conv, 1 + 16 + 3, 1 + 32 + 3),
    ("shufflenet", {"stages": "2-4-2"}, {"stages": "4-8-4"}, "DepthwiseConv2D", 3 + 8, 3 + 16),
])
def test_depth_knobs_change_the_layer_count(family, small, big, cls, n_small, n_big):
    assert _count(models.build(family, small), cls) == n_small
    assert _count(models.build(family, big), cls) == n_big


@pytest.mark.parametrize(("family", "key", "small", "big"), [
    ("minivgg", "filters", 16, 32),
    ("mlp", "units", 64, 256),
    ("lenet5", "conv1", 6, 12),
    ("allcnn", "width2", 32, 64),
    ("model5", "conv3", 32, 64),
    ("resnet", "width", 8, 16),
    ("wideresnet", "widen", 1, 2),
    ("mobilenetv2", "alpha", 0.35, 1.0),
    ("shufflenet", "width", 0.5, 1.0),
    ("shakeshake", "width", 8, 16),
])
def test_width_knobs_change_the_size(family, key, small, big):
    assert (models.build(family, {key: small}).count_params()
            < models.build(family, {key: big}).count_params())


def test_mlp_shrink_halves_the_width_layer_by_layer():
    from fmnist.runtime import keras

    m = models.build("mlp", {"layers": 4, "units": 256, "shrink": 0.5})
    assert [layer.units for layer in m.layers if isinstance(layer, keras.layers.Dense)] == [
        256, 128, 64, 32, 10]


def test_dropout_knob_adds_and_removes_dropout_layers():
    with_d = models.build("minivgg", {"conv_dropout": 0.25, "dropout": 0.5})
    without = models.build("minivgg", {"conv_dropout": 0.0, "dropout": 0.0})
    assert _count(with_d, "Dropout") == 3
    assert _count(without, "Dropout") == 0


# ---------------------------------------------------------------- bad values


@pytest.mark.parametrize(("family", "hp", "message"), [
    ("minivgg", {"dropout": 1.2},
     "minivgg: hyperparameter `dropout` must be a number in [0, 0.9], but got 1.2."),
    ("mlp", {"layers": 0}, "mlp: hyperparameter `layers` must be an integer in [1, 4], but got 0."),
    ("resnet", {"width": -8},
     "resnet: hyperparameter `width` must be an integer in [8, 128], but got -8."),
    ("mlp", {"units": 64.5},
     "mlp: hyperparameter `units` must be an integer in [8, 4096], but got 64.5."),
    ("mlp", {"units": True},
     "mlp: hyperparameter `units` must be an integer in [8, 4096], but got True."),
    ("lenet5", {"batch_norm": "yes"},
     "lenet5: hyperparameter `batch_norm` must be true or false, but got 'yes'."),
    ("resnet", {"depth": 50},
     "resnet: hyperparameter `depth` must be one of [10, 18, 34], but got 50."),
    ("minivgg", {"dropuot": 0.3},
     "minivgg: unknown hyperparameter `dropuot` (did you mean 'dropout'?); it has: "),
])
def test_bad_values_raise_a_message_naming_family_key_rule_and_value(family, hp, message):
    with pytest.raises(ValueError) as e:
        models.build(family, hp)
    assert str(e.value).startswith(message)


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        models.build("minivg")
    msg = str(e.value)
    assert msg.startswith(
        "unknown model family 'minivg' (did you mean 'minivgg'?); known families:")
    assert all(f in msg for f in models.families())


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"skipcnn: unknown preset 'cnn4'.*presets: cnn2, "
                                         r"cnn2_dropout, cnn3_dropout\."):
        models.build("skipcnn", preset="cnn4")


def test_preset_and_overrides_merge_in_order():
    hp = models.resolve("skipcnn", {"head_dropout": 0.4}, preset="cnn2_dropout")
    assert hp == {"blocks": 2, "filters": 64, "conv_dropout": 0.3, "dense": 128,
                  "head_dropout": 0.4}


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match="model family 'mlp' is already registered"):
        models.register("mlp", [HP("x", "int", 1, 0, 2)])(lambda hp: None)


def test_declarations_are_complete():
    for f in models.families():
        for name, h in models.hyperparameters(f).items():
            assert h.name == name and h.help is not None
            h.check(f, h.default)  # every default obeys its own rule


def test_a_model_saves_without_throwaway_layers_and_loads_back_the_same(tmp_path, monkeypatch,
                                                                         batch):
    # Keras 3.15 rebuilds its attribute skip sets (a throwaway Layer, Optimizer, ...) on every
    # save and load, missing its own cache; fmnist memoizes them as Keras comes in (through
    # fmnist.runtime; a trial saves its model at its end and, with per-epoch state, after
    # every epoch)
    from keras.src.layers.layer import Layer

    from fmnist.runtime import keras

    x, y = batch
    model = models.build("lenet5")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    model.save(tmp_path / "first.keras")
    made = []
    init = Layer.__init__

    def counted(self, *args, **kwargs):
        made.append(type(self).__name__)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Layer, "__init__", counted)
    model.save(tmp_path / "model.keras")
    monkeypatch.undo()
    assert made == []
    loaded = keras.models.load_model(tmp_path / "model.keras")
    for a, b in zip(model.weights + model.optimizer.variables,
                    loaded.weights + loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
