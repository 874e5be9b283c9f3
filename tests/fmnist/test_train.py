"""One training run, for real, on small stratified subsets of the real data.

TensorFlow (``fmnist.train.augment``, ``train.train``) and scikit-learn come in where a test uses
them: pytest imports this module for the unit tier (``make test-fast``) too."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fmnist import data, evaluate, train


@pytest.fixture(scope="module")
def small(data_root):
    return data.load_split(data_root, subset=6_000, seed=0)


@pytest.fixture(scope="module")
def tiny(data_root):
    return data.load_split(data_root, subset=600, seed=0)


@pytest.fixture(scope="module")
def lenet_run(small):
    return train.train("lenet5", small, {"max_epochs": 2, "seed": 0})


def test_lenet5_learns_in_two_epochs_on_6000_images(lenet_run):
    r = lenet_run
    assert r.stop_reason == "max_epochs" and r.epochs == 2
    assert r.history[-1]["val/acc"] >= 0.75, r.history
    assert r.params == 61_772
    for h in r.history:
        assert set(h) == {"epoch", "train/loss", "train/acc", "val/loss", "val/acc",
                          "val/acc_best", "epoch_s", "images_per_s", "lr"}
        assert h["epoch_s"] > 0 and h["images_per_s"] > 0 and h["lr"] == pytest.approx(1e-3)
    assert r.history[1]["val/acc_best"] == max(h["val/acc"] for h in r.history)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights(tiny):
    # 600 images, a wide MLP and a high learning rate: it overfits within a few epochs
    r = train.train("mlp", tiny, {"max_epochs": 40, "patience": 2, "learning_rate": 3e-3,
                                  "units": 1024, "dropout": 0.0, "input_dropout": 0.0,
                                  "batch_size": 32})
    assert r.stop_reason == "early_stop"
    losses = [h["val/loss"] for h in r.history]
    best = int(np.argmin(losses))
    assert r.best_epoch == best + 1
    assert r.epochs == r.best_epoch + 2, "stops exactly `patience` epochs after the best"
    assert all(v >= losses[best] for v in losses[best + 1:])
    restored = evaluate.evaluate(r.model, tiny.x_val, tiny.y_val)
    assert restored.loss == pytest.approx(losses[best], rel=1e-3)
    assert restored.loss < losses[-1]
    # what a sweep's trial reports as its final score, without a second validation pass
    assert r.final_val == {"val/loss": losses[best], "val/acc": r.history[best]["val/acc"]}
    assert restored.accuracy == pytest.approx(r.final_val["val/acc"], abs=1e-6)


def test_shuffle_false_with_a_fixed_seed_gives_identical_histories(tiny):
    hp = {"max_epochs": 2, "shuffle": False, "seed": 7, "batch_size": 32}
    a = train.train("lenet5", tiny, hp).history
    b = train.train("lenet5", tiny, hp).history
    keys = ["train/loss", "train/acc", "val/loss", "val/acc"]
    assert [[h[k] for k in keys] for h in a] == [[h[k] for k in keys] for h in b]


@pytest.mark.parametrize(("hp", "expected"), [
    # 003's model5: 0.01 for 10 epochs, then 0.001
    ({"schedule": "step", "learning_rate": 0.01, "step_epochs": 10, "step_factor": 0.1},
     {0: 0.01, 9.9: 0.01, 10: 0.001, 19.9: 0.001, 20: 0.0001}),
    ({"schedule": "cosine", "learning_rate": 0.1, "max_epochs": 20},
     {0: 0.1, 10: 0.05, 20: 0.0}),
    ({"schedule": "onecycle", "learning_rate": 0.1, "max_epochs": 10},
     {0: 0.004, 1.5: 0.052, 3: 0.1, 10: 1e-5}),
    ({"schedule": "cyclic", "learning_rate": 0.1, "cycle_epochs": 4},
     {0: 0.01, 1: 0.055, 2: 0.1, 4: 0.01, 6: 0.1}),
    ({"schedule": "constant", "learning_rate": 0.02}, {0: 0.02}),
    # the speed runs' triangle: base/5 up to the peak at 25% of the epochs, then down to 0
    ({"schedule": "triangle", "learning_rate": 0.2, "max_epochs": 20, "peak_at": 0.25},
     {0: 0.04, 2.5: 0.12, 5: 0.2, 12.5: 0.1, 20: 0.0}),
])
def test_schedules_give_the_promised_rates(hp, expected):
    resolved, _ = train.split_hp(None, hp)
    steps = 50
    sched = train.learning_rate_schedule(resolved, steps)
    for epoch, lr in expected.items():
        got = sched if isinstance(sched, float) else float(sched(int(epoch * steps)))
        assert got == pytest.approx(lr, rel=1e-4, abs=1e-9), (epoch, got)


def test_a_run_given_less_time_than_its_epochs_ends_complete_with_its_rate_annealed(tiny):
    # a budgeted trial whose time is up after its first epoch: its schedule ends there (rate
    # 0) and the run is complete at it, not cut off at the triangle's peak
    import time

    hp = {"max_epochs": 6, "schedule": "triangle", "learning_rate": 0.05, "batch_size": 100}
    seen = []
    r = train.train("mlp", tiny, hp, on_epoch=seen.append, finish_by=time.time())
    assert r.epochs == 1 and r.max_epochs == 1 and r.stop_reason == "max_epochs"
    assert [m["max_epochs"] for m in seen] == [1]
    assert float(r.model.optimizer.learning_rate) == 0.0
    assert r.final_val is not None  # its last epoch validated: no second pass needed
    free = train.train("mlp", tiny, {**hp, "max_epochs": 2}, finish_by=time.time() + 3600)
    assert free.epochs == free.max_epochs == 2


def test_a_model_trained_on_a_schedule_saves_and_loads_back_with_it(tiny, tmp_path):
    # a sweep reloads its best trial's checkpoint for the test evaluation; a step schedule
    # (003's model5 recipe) once made that load fail
    import keras

    r = train.train("mlp", tiny, {"max_epochs": 1, "schedule": "step", "step_epochs": 2,
                                  "learning_rate": 0.01, "batch_size": 100})
    r.model.save(tmp_path / "model.keras")
    back = keras.models.load_model(tmp_path / "model.keras")
    steps = len(tiny.x_train) // 100
    sched = back.optimizer._learning_rate
    assert float(sched(0)) == pytest.approx(0.01)
    assert float(sched(2 * steps)) == pytest.approx(0.001)
    np.testing.assert_allclose(back.predict(tiny.x_val[:50], verbose=0),
                               r.model.predict(tiny.x_val[:50], verbose=0), atol=1e-6)


def test_plateau_schedule_drops_the_rate_when_val_loss_stalls(tiny):
    r = train.train("mlp", tiny, {"max_epochs": 12, "early_stopping": False,
                                  "schedule": "plateau", "plateau_patience": 1,
                                  "step_factor": 0.5, "learning_rate": 3e-3, "units": 1024,
                                  "dropout": 0.0, "input_dropout": 0.0, "batch_size": 32})
    lrs = [h["lr"] for h in r.history]
    assert lrs[0] == pytest.approx(3e-3)
    assert min(lrs) < 3e-3, "the rate dropped at least once"
    assert all(b <= a for a, b in zip(lrs, lrs[1:], strict=False))
    for lr in lrs:  # every rate is the base halved k times
        k = np.log2(3e-3 / lr)
        assert k == pytest.approx(round(k), abs=1e-3)


def test_swa_sets_the_mean_of_its_snapshots_and_recomputes_batch_norm(tiny):
    import keras

    r = train.train("lenet5", tiny, {"max_epochs": 3, "swa_epochs": 2, "early_stopping": False,
                                     "batch_size": 32})
    assert len(r.swa_snapshots) == 2
    names = [v.path for v in r.model.weights]
    stats = [i for i, n in enumerate(names) if "moving_" in n]
    assert stats, "lenet5 has BatchNormalization"
    for i, (w, a, b) in enumerate(zip(r.model.get_weights(), *r.swa_snapshots, strict=True)):
        if i not in stats:  # trained weights: the plain mean of the snapshots
            np.testing.assert_allclose(w, (a + b) / 2, rtol=1e-6, atol=1e-7)
    assert not np.allclose(r.swa_snapshots[0][0], r.swa_snapshots[1][0])
    # BatchNormalization's moving mean: the mean of its input over the training images under
    # the averaged weights (batches of 32 over 600 images: the last, partial batch weighs as
    # much as a full one, hence the tolerance), not the mean of the snapshots' moving means
    bn = next(la for la in r.model._flatten_layers(include_self=False)
              if isinstance(la, keras.layers.BatchNormalization))
    feed = keras.Model(r.model.inputs, bn.input)
    want = feed.predict(tiny.x_train, verbose=0).reshape(-1, bn.moving_mean.shape[0]).mean(0)
    got = np.asarray(bn.moving_mean)
    np.testing.assert_allclose(got, want, rtol=0.02, atol=0.02 * np.abs(want).max())
    i = names.index(bn.moving_mean.path)
    old_mean = (r.swa_snapshots[0][i] + r.swa_snapshots[1][i]) / 2
    assert not np.allclose(got, old_mean, rtol=0.02, atol=0.02 * np.abs(want).max())
    assert bn.momentum == 0.99, "the layer's own momentum is back"
    assert r.final_val is None, "averaged weights were never validated"


def test_augmentation_and_label_smoothing_train(tiny):
    r = train.train("lenet5", tiny, {"max_epochs": 1, "flip": 0.5, "zoom": 0.1,
                                     "translate": 0.1, "erase": 0.5, "label_smoothing": 0.1,
                                     "optimizer": "sgd", "learning_rate": 0.01})
    assert r.epochs == 1 and np.isfinite(r.history[0]["train/loss"])


def test_augmenter_flips_and_erases(tiny):
    from fmnist.train import augment

    hp, _ = train.split_hp(None, {"flip": 1.0})
    x = tiny.x_train[:8]
    out, _ = augment.augmenter(hp, 0)(x, tiny.y_train[:8])
    np.testing.assert_array_equal(out.numpy()[..., 0], x[:, :, ::-1].astype(np.float32))
    hp, _ = train.split_hp(None, {"erase": 1.0})
    out, _ = augment.augmenter(hp, 0)(x, tiny.y_train[:8])
    changed = (out.numpy()[..., 0] != x).reshape(8, -1).mean(axis=1)
    assert np.all(changed > 0) and np.all(changed < 0.5)


def test_alternating_flip_shows_each_image_both_ways_in_two_epochs_in_a_row(tiny):
    from fmnist.train import augment

    hp, _ = train.split_hp(None, {"flip": 0.5, "flip_alternate": True})
    x, idx = tiny.x_train[:64], np.arange(64)
    alt = augment.AlternateFlip(64, seed=0)
    aug = augment.augmenter(hp, 0, alt)

    def flipped():
        out = aug(x, tiny.y_train[:64], idx)[0].numpy()[..., 0]
        return np.array([np.array_equal(o, i[:, ::-1]) and not np.array_equal(o, i)
                         for o, i in zip(out, x.astype(np.float32), strict=True)])

    alt.on_epoch_begin(0)
    first = flipped()
    alt.on_epoch_begin(1)
    second = flipped()
    assert 16 < first.sum() < 48  # about half, seeded
    assert not (first & second).any() and (first | second).sum() >= 60  # the other half next
    alt.on_epoch_begin(2)
    np.testing.assert_array_equal(flipped(), first)
    # through the pipeline (as fit iterates it, once per epoch) the epoch is read each pass
    ds = augment.dataset(x, tiny.y_train[:64], 64, False, 0, aug, indexed=True)
    for epoch, want in ((0, first), (1, second)):
        alt.on_epoch_begin(epoch)
        out = next(iter(ds))[0].numpy()[..., 0]
        np.testing.assert_array_equal(out[want], x[want][:, :, ::-1].astype(np.float32))
    # and a run with it trains (the callback first, the pipeline given the positions)
    r = train.train("lenet5", tiny, {"max_epochs": 2, "batch_size": 32, "flip": 0.5,
                                     "flip_alternate": True})
    assert r.epochs == 2 and np.isfinite(r.history[-1]["train/loss"])


def test_on_epoch_sees_metrics_and_can_stop_training(tiny):
    seen = []
    r = train.train("lenet5", tiny, {"max_epochs": 5, "batch_size": 32},
                    on_epoch=lambda m: seen.append(m) or True)
    assert r.stop_reason == "external" and r.epochs == 1
    assert seen[0]["epoch"] == 1 and "val/acc" in seen[0]



def test_a_run_resumed_from_an_epochs_state_goes_on_where_it_was(tiny, tmp_path):
    # the state after epoch 2 of 4, as a killed trial would have left it; training on from it
    # keeps the optimizer's step (on which schedules run) and early stopping's record, and
    # trains only epochs 3 and 4
    import shutil

    hp = {"max_epochs": 4, "batch_size": 32, "schedule": "step", "step_epochs": 1,
          "patience": 3}
    seen = []

    def keep(m):
        # the epoch's metrics as the history holds them (without what is only handed on)
        seen.append({k: v for k, v in m.items() if k not in (train.STATE_KEY, "max_epochs")})
        if m["epoch"] == 2:
            shutil.copytree(m[train.STATE_KEY], tmp_path / "state")
        return False

    states = set(Path(tempfile.gettempdir()).glob("fmnist-state-*"))
    full = train.train("lenet5", tiny, hp, on_epoch=keep, epoch_state=True)
    assert [m["epoch"] for m in seen] == [1, 2, 3, 4][:full.epochs]
    assert set(Path(tempfile.gettempdir()).glob("fmnist-state-*")) == states, "removed"
    resumed = train.train("lenet5", tiny, hp, resume_from=tmp_path / "state")
    assert resumed.history[:2] == seen[:2]
    assert [m["epoch"] for m in resumed.history] == list(range(1, resumed.epochs + 1))
    steps = math.ceil(len(tiny.y_train) / 32)
    assert int(resumed.model.optimizer.iterations.numpy()) == steps * resumed.epochs
    stopper = json.loads((tmp_path / "state" / "state.json").read_text())["early_stopping"]
    assert stopper["best"] == pytest.approx(min(m["val/loss"] for m in seen[:2]))


def test_should_stop_ends_training_mid_epoch_without_validating(tiny):
    # 600 images, batch 32: 19 steps an epoch, 4 per execution, so 5 polls an epoch, and one
    # more before the validation (2 batches of 512 in one execution); the 8th poll (the 2nd of
    # epoch 2) says stop: 19 + 4 steps were trained, one epoch validated
    polls, epochs_seen = [], []
    r = train.train("lenet5", tiny, {"max_epochs": 5, "batch_size": 32, "steps_per_execution": 4},
                    on_epoch=epochs_seen.append,
                    should_stop=lambda: polls.append(1) or len(polls) >= 8)
    assert len(polls) == 8
    assert int(r.model.optimizer.iterations.numpy()) == 19 + 4
    assert r.stop_reason == "external" and r.epochs == 1 and len(epochs_seen) == 1
    assert r.final_val is None, "mid-epoch weights were never validated"


def test_should_stop_is_polled_before_validation_and_caps_images_per_execution(tiny):
    # a scheduler's stop that lands while a trial validates ends it there, not after the pass
    polls, epochs_seen = [], []
    r = train.train("lenet5", tiny, {"max_epochs": 5, "batch_size": 32, "steps_per_execution": 4},
                    on_epoch=epochs_seen.append,
                    should_stop=lambda: polls.append(1) or len(polls) >= 6)
    assert int(r.model.optimizer.iterations.numpy()) == 19 and epochs_seen == []
    assert r.stop_reason == "external" and r.epochs == 0


def test_polling_for_a_stop_caps_the_images_per_execution(small):
    # unset, steps per execution is min(32, steps); a caller that polls gets at most
    # STOP_POLL_IMAGES per execution: batch 128 -> 16 steps, so a poll every 2,048 images
    assert train.STOP_POLL_IMAGES // 128 == 16
    polls = []
    r = train.train("mlp", small, {"max_epochs": 1, "batch_size": 128},
                    should_stop=lambda: polls.append(1) and False)
    steps = -(-len(small.y_train) // 128)
    assert r.model.steps_per_execution == 16 and steps > 32
    assert len(polls) == -(-steps // 16) + 1  # the training executions, then the validation
    plain = train.train("mlp", small, {"max_epochs": 1, "batch_size": 128})
    assert plain.model.steps_per_execution == 32


@pytest.mark.parametrize(("hp", "message"), [
    ({"optimizer": "rmsprop"},
     "train: hyperparameter `optimizer` must be one of ['adam', 'adamw', 'sgd'], but got "
     "'rmsprop'."),
    ({"schedule": "exp"}, "train: hyperparameter `schedule` must be one of ['constant', "),
    ({"learning_rate": -0.1}, "train: hyperparameter `learning_rate` must be a number in "),
    ({"patience": -1}, "train: hyperparameter `patience` must be an integer in [0, 10000], "
                       "but got -1."),
    ({"batch_size": 0}, "train: hyperparameter `batch_size` must be an integer in [1, "),
    ({"batch_size": 601}, "train: `batch_size <= training images` must hold, but got "
                          "batch_size=601 for 600 images."),
    ({"flip": 1.5}, "train: hyperparameter `flip` must be a number in [0, 1], but got 1.5."),
    ({"ema": 1.0}, "train: hyperparameter `ema` must be a number in [0, 0.99999], but got 1.0."),
    ({"crop": 9}, "train: hyperparameter `crop` must be an integer in [0, 8], but got 9."),
    ({"crop": 1.5}, "train: hyperparameter `crop` must be an integer in [0, 8], but got 1.5."),
    ({"tta": "rotate"}, "train: hyperparameter `tta` must be one of ['none', 'flip', "
                        "'flip_shift'], but got 'rotate'."),
    ({"peak_at": 1.2}, "train: hyperparameter `peak_at` must be a number in [0, 1], but got "
                       "1.2."),
    ({"learnig_rate": 0.1}, "lenet5: unknown hyperparameter `learnig_rate` (did you mean "
                            "'learning_rate'?)"),
])
def test_bad_knobs_raise_a_message_naming_knob_rule_and_value(tiny, hp, message):
    with pytest.raises(ValueError) as e:
        train.train("lenet5", tiny, hp)
    assert str(e.value).startswith(message)


def test_a_presets_training_recipe_is_applied_under_the_users_values():
    thp, model_hp = train.split_hp("fastcnn", {"learning_rate": 0.05}, "fast")
    assert thp["schedule"] == "triangle" and thp["optimizer"] == "sgd" and thp["crop"] == 2
    assert thp["learning_rate"] == 0.05, "the user's value wins over the recipe's"
    assert train.split_hp("fastcnn", {}, None)[0]["schedule"] == "constant", "no preset, none"
    from fmnist import models

    for f in models.families():  # every recipe of every family is valid training knobs
        for preset in models.presets(f):
            train.split_hp(f, {}, preset)


def test_an_ema_run_validates_and_returns_the_average(tiny):
    r = train.train("fastcnn", tiny, {"max_epochs": 2, "ema": 0.9, "batch_size": 32,
                                      "width": 8, "stem": 8, "early_stopping": False})
    ev = evaluate.evaluate(r.model, tiny.x_val, tiny.y_val)
    assert ev.accuracy == pytest.approx(r.history[-1]["val/acc"], abs=1e-6), \
        "the returned model is the one the last epoch validated: the average"


def test_no_family_shadows_a_training_knob():
    from fmnist import models

    for f in models.families():
        assert not set(models.hyperparameters(f)) & set(train.HYPERPARAMETERS), f


def test_evaluation_agrees_with_scikit_learn(lenet_run, small):
    from sklearn.metrics import f1_score

    ev = evaluate.evaluate(lenet_run.model, small.x_test, small.y_test)
    n = len(small.y_test)
    assert ev.confusion.sum() == n
    assert ev.confusion.sum(axis=1).tolist() == np.bincount(small.y_test).tolist()
    assert ev.accuracy == pytest.approx(np.trace(ev.confusion) / n)
    np.testing.assert_allclose(ev.f1, f1_score(small.y_test, ev.predictions, average=None))
    assert len(ev.misclassified) == n - np.trace(ev.confusion)
    assert np.all(ev.predictions[ev.misclassified] != small.y_test[ev.misclassified])
    m = ev.metrics()
    assert m["test/acc"] == ev.accuracy
    assert m["test/f1/t_shirt_top"] == ev.f1[0] and m["test/f1/ankle_boot"] == ev.f1[9]


def test_scores_by_hand():
    conf, p, r, f = evaluate.scores(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    np.testing.assert_allclose(p, [1.0, 2 / 3, 0.0])
    np.testing.assert_allclose(r, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(f, [2 / 3, 0.8, 0.0])
