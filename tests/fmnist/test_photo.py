"""The Fashion-MNIST conversion of a photo, step by step, on made images (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist import photo, synth

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


def test_trim_removes_a_light_border_and_keeps_the_garment():
    rgb = np.full((50, 80, 3), 240, np.uint8)
    rgb[10:30, 20:35] = 40
    out = photo.trim(rgb)
    assert out.shape == (20, 15, 3) and (out == 40).all()
    assert photo.trim(np.full((5, 5, 3), 200, np.uint8)).shape == (5, 5, 3)  # all background


def test_resize_longest_makes_the_longest_edge_28_in_proportion():
    assert photo.resize_longest(np.zeros((200, 100, 3), np.uint8)).shape == (28, 14, 3)
    assert photo.resize_longest(np.zeros((30, 300, 3), np.uint8)).shape == (3, 28, 3)


def test_sharpen_raises_contrast_at_an_outline_and_keeps_flat_regions():
    rgb = np.full((20, 20, 3), 200, np.uint8)
    rgb[:, 10:] = 100
    out = photo.sharpen(rgb).astype(int)
    assert out[:, 9].mean() > 200 and out[:, 10].mean() < 100  # overshoot both sides
    assert (out[:, :5] == 200).all() and (out[:, 15:] == 100).all()


def test_pad_centre_centres_on_the_background_colour():
    out = photo.pad_centre(np.full((28, 10, 3), 250, np.uint8) * 0 + 250)
    assert out.shape == (28, 28, 3) and (out == 250).all()
    small = np.full((28, 10, 3), 250, np.uint8)
    small[:, 4:6] = 0
    out = photo.pad_centre(small)
    assert (out[:, 13:15] == 0).all() and (np.delete(out, [13, 14], axis=1) == 250).all()


def test_convert_gives_a_centred_negated_28x28_uint8_image():
    rgb = np.full((300, 200, 3), 235, np.uint8)
    rgb[50:250, 40:120] = 30  # a dark garment, off centre
    x = photo.convert(rgb)
    assert x.shape == (28, 28) and x.dtype == np.uint8
    assert x[0, 0] < 10 and x[14, 14] > 200  # the light background is black, the garment light
    ys, xs = np.nonzero(x > 128)
    assert abs(ys.mean() - 13.5) < 1 and abs(xs.mean() - 13.5) < 1
    assert ys.max() - ys.min() == 27  # the longest edge spans the image


def test_a_made_photo_of_a_data_set_image_converts_close_to_it(arrays):
    x_test = arrays[2]
    rng = np.random.default_rng(0)
    corrs = [np.corrcoef(photo.convert(synth.product_photo(x, rng)).ravel().astype(float),
                         x.ravel().astype(float))[0, 1] for x in x_test[:20]]
    assert np.median(corrs) > 0.85, corrs


def test_stretch_takes_the_background_to_0_and_the_brightest_to_255():
    g = np.array([[20, 20], [120, 220]], np.uint8)
    assert photo.stretch(g, 20).tolist() == [[0, 0], [128, 255]]
    assert (photo.stretch(np.full((2, 2), 9, np.uint8), 9) == 0).all()


def _on_stripes(h=240, w=200):
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = np.where(((xx + yy) // 12 % 2 == 0)[:, :, None], [200, 60, 60], [60, 60, 200])
    rgb[60:200, 50:150] = 20  # a dark garment in the middle
    return rgb


def test_a_striped_border_is_busy_and_a_plain_one_is_not():
    assert photo.busy(_on_stripes())
    assert not photo.busy(np.full((100, 80, 3), 240, np.uint8))


def test_cut_out_puts_the_garment_on_white_and_keeps_it():
    out = photo.cut_out(_on_stripes())
    assert (out[100:160, 70:130] == 20).all()  # the garment's core kept
    background = np.ones(out.shape[:2], bool)
    background[50:210, 40:160] = False
    assert (out[background] == 255).mean() > 0.95  # the stripes are gone


def test_convert_cuts_a_busy_background_by_default_and_not_when_told():
    x = photo.convert(_on_stripes())
    assert x[0, 0] == 0 and x[14, 14] > 200  # the garment alone, light on black
    kept = photo.convert(_on_stripes(), foreground="none")  # the stripes stay in the picture
    assert (kept[[0, -1]] > 0).mean() > 0.3
    with pytest.raises(ValueError, match="foreground must be one of"):
        photo.convert(_on_stripes(), foreground="magic")
