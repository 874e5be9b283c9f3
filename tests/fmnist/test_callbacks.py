"""The training callbacks driven by hand, as Keras's own callback tests do: a tiny model,
weights set directly, no fit.

Not the unit tier (``make test-fast``): every test here needs TensorFlow, which each imports
where it runs (pytest imports this module for the unit tier too)."""

from __future__ import annotations

import numpy as np
import pytest


def _model():
    from fmnist.runtime import keras

    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    m.compile(optimizer="sgd", loss="mse")
    return m


def _set(m, value):
    m.set_weights([np.full((2, 1), value, np.float32)])


def _get(m):
    return float(m.get_weights()[0][0, 0])


def _started(decay: float, start: float = 0.0, stopper=None):
    """A model at ``start`` and an EMA on it, as ``fit`` leaves them at an epoch's start."""
    from fmnist.train.callbacks import EMAWeights

    m = _model()
    _set(m, start)
    ema = EMAWeights(decay, stopper)
    ema.set_model(m)
    ema.on_train_begin()
    ema.on_epoch_begin(0)
    return m, ema


def test_ema_averages_validates_with_the_average_and_trains_on_the_raw_weights():
    m, ema = _started(0.5)
    _set(m, 10.0)
    ema.on_train_batch_end(0)  # warm-up: d = min(0.5, 1/10)
    assert ema.weights[0][0, 0] == pytest.approx(9.0) and ema.updates == 1
    _set(m, 20.0)
    ema.on_train_batch_end(1)  # d = min(0.5, 2/11)
    expected = 9.0 * 2 / 11 + 20.0 * 9 / 11
    assert ema.weights[0][0, 0] == pytest.approx(expected)
    ema.on_test_begin()
    assert _get(m) == pytest.approx(expected), "validation sees the average"
    ema.on_test_end()
    assert _get(m) == pytest.approx(expected), "and the epoch-end callbacks before it"
    ema.on_epoch_end(0)
    assert _get(m) == 20.0, "training goes on from the raw weights"
    ema.on_train_end()
    assert _get(m) == pytest.approx(expected), "the model kept is the average"


def test_ema_counts_the_steps_of_each_execution():
    m, ema = _started(0.9)
    ema.updates = 1000  # past the warm-up
    _set(m, 1.0)
    ema.on_train_batch_end(31)  # one execution of 32 steps
    assert ema.weights[0][0, 0] == pytest.approx(1 - 0.9 ** 32)


def test_ema_leaves_early_stoppings_restored_weights_alone():
    from fmnist.runtime import keras
    from fmnist.train.callbacks import EMAWeights

    m = _model()
    stopper = keras.callbacks.EarlyStopping(restore_best_weights=True)
    stopper.best_weights = [np.full((2, 1), 3.0, np.float32)]
    ema = EMAWeights(0.5, stopper)
    ema.set_model(m)
    ema.on_train_begin()
    _set(m, 3.0)  # what EarlyStopping.on_train_end, before it, restored
    ema.on_train_end()
    assert _get(m) == 3.0


def test_ema_state_round_trips_through_a_saved_state(tmp_path):
    from fmnist.train import state
    from fmnist.train.callbacks import EMAWeights

    m = _model()
    _set(m, 2.0)
    ema = EMAWeights(0.5)
    ema.set_model(m)
    ema.on_train_begin()
    ema.weights = [np.full((2, 1), 7.0, np.float32)]
    ema.updates = 12
    state.write(tmp_path, m, 3, [{"epoch": 1}], ema=ema)
    loaded = state.load(_model(), tmp_path)
    again = EMAWeights(0.5, resume=loaded)
    assert again.updates == 12 and float(again.weights[0][0, 0]) == 7.0
    assert loaded["epoch"] == 3 and loaded["best_weights"] is None


def test_crop_keeps_the_size_moves_by_whole_pixels_and_is_seeded():
    from fmnist.runtime import tf
    from fmnist.train import augment

    x = np.zeros((64, 28, 28, 1), np.float32)
    x[:, 14, 14, 0] = 255.0
    tf.random.set_seed(0)
    a = augment.random_crop(tf.constant(x), 2, seed=3).numpy()
    tf.random.set_seed(0)
    b = augment.random_crop(tf.constant(x), 2, seed=3).numpy()
    assert a.shape == x.shape and (a == b).all(), "same seeds, same crops"
    assert set(np.unique(a)) == {0.0, 255.0}, "no interpolation"
    rows, cols = np.nonzero(a[..., 0])[1:]
    assert len(rows) == 64, "one pixel each, never cut off"
    assert set(rows - 14) <= {-2, -1, 0, 1, 2} and set(cols - 14) <= {-2, -1, 0, 1, 2}
    assert len(set(zip(rows, cols, strict=True))) > 5, "the shifts vary"


@pytest.mark.parametrize(("done", "epoch_s", "left_s", "max_epochs", "last"), [
    (1, 10.0, 1000.0, 20, 20),  # time for all: the spec's epochs
    (1, 10.0, 75.0, 20, 8),  # 7 more whole epochs fit
    (3, 10.0, 9.9, 20, 3),  # not one more: ends here
    (3, 10.0, -5.0, 20, 3),  # already past: ends here, never before what it trained
    (20, 10.0, 500.0, 20, 20),
])
def test_fitting_epochs_ends_a_run_within_its_time(done, epoch_s, left_s, max_epochs, last):
    from fmnist.train.callbacks import fitting_epochs

    assert fitting_epochs(done, epoch_s, left_s, max_epochs) == last


def _triangle(max_epochs: int, steps: int = 10):
    from fmnist.train import schedules

    return schedules.EpochSchedule("triangle", 0.1, steps, max_epochs, peak_at=0.25)


def test_a_moved_horizon_reaches_the_compiled_step_and_the_saved_config():
    from fmnist.runtime import keras
    from fmnist.train import schedules

    # the rate the compiled training step uses must follow the horizon, not the value it was
    # traced with: from the new last epoch on, a plain SGD step at rate 0 moves no weight
    sched = _triangle(8)
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.SGD(sched), loss="mse", steps_per_execution=5)
    seen = []

    class Move(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([w.copy() for w in m.get_weights()])
            if epoch == 0:
                sched.set_horizon(1)

    x = np.random.default_rng(0).normal(size=(100, 2)).astype("float32")
    m.fit(x, x[:, :1] * 3.0, batch_size=10, epochs=3, callbacks=[Move()], verbose=0)
    assert float(sched(10)) == 0.0 and sched.get_config()["max_epochs"] == 1
    for later in seen[1:]:
        for a, b in zip(seen[0], later, strict=True):
            np.testing.assert_array_equal(a, b)
    back = schedules.EpochSchedule.from_config(sched.get_config())
    assert float(back(5)) == pytest.approx(float(sched(5)))


def _epoch_end(max_epochs: int, epoch_s: float, finish_by: float):
    from fmnist.train.callbacks import EpochEnd, EpochRecorder

    got = []
    rec = EpochRecorder(100)
    rec.history = [{"epoch": 1, "epoch_s": epoch_s, "val/acc": 0.5}]
    sched = _triangle(max_epochs)
    end = EpochEnd(rec, lambda m: got.append(m), max_epochs, finish_by=finish_by,
                   schedule=sched)
    end.set_model(_model())
    end.on_epoch_end(0)
    return got[0], end, sched


def test_the_epoch_end_fits_the_run_and_its_schedule_to_the_time_left():
    import time

    m, end, sched = _epoch_end(20, 100.0, time.time() + 350.0)
    assert m["max_epochs"] == end.max_epochs == sched.max_epochs == 4  # 3 more fit
    assert float(sched.horizon.numpy()) == 4.0 and not end.model.stop_training
    m, end, sched = _epoch_end(20, 100.0, time.time() - 1.0)
    assert m["max_epochs"] == 1 and end.model.stop_training  # ends now, complete
    assert float(sched(10)) == 0.0  # annealed at its end
    m, end, sched = _epoch_end(20, 100.0, time.time() + 1e6)
    assert m["max_epochs"] == 20 and sched.max_epochs == 20 and not end.model.stop_training



def test_the_run_s_pace_is_its_median_epoch_after_the_first():
    from fmnist.train.callbacks import EpochEnd, EpochRecorder

    # the first epoch traces the compiled step; one noisy epoch must not move the run's end
    rec = EpochRecorder(100)
    rec.history = [{"epoch_s": s} for s in (15.0, 2.0, 3.0, 2.0)]
    end = EpochEnd(rec, None, 20, finish_by=0.0)
    assert end._pace() == 2.0


def test_a_run_that_may_fill_its_time_takes_the_part_fill_says_at_its_second_epoch():
    import time

    from fmnist.train.callbacks import EpochEnd, EpochRecorder

    def run(fill, left=5_050.0, limit=300):
        rec = EpochRecorder(100)  # the first epoch traces: slow; the pace is the second's
        rec.history = [{"epoch": 1, "epoch_s": 400.0, "val/acc": 0.5}]
        sched = _triangle(limit)
        end = EpochEnd(rec, None, limit, finish_by=time.time() + left, schedule=sched,
                       fill=fill)
        end.set_model(_model())
        end.on_epoch_end(0)
        assert end.fill is fill and end.limit == limit  # not decided on the tracing epoch
        rec.history.append({"epoch": 2, "epoch_s": 100.0, "val/acc": 0.6})
        end.on_epoch_end(1)
        return end, sched

    end, sched = run(lambda n: n)  # all it holds: 2 + 50, fitted to the time as before
    assert end.max_epochs == sched.max_epochs == 52 and end.limit == 300 and end.fill is None
    end, sched = run(lambda n: n // 2)  # a part: its limit from now on
    assert end.max_epochs == end.limit == sched.max_epochs == 26
    end.recorder.history.append({"epoch": 3, "epoch_s": 1.0, "val/acc": 0.6})
    end.on_epoch_end(2)  # a faster pace later does not lengthen it past its part
    assert end.max_epochs == 26
