"""Region proposals, crops and boxes on made frames, and the made video itself (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist import synth, video

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


def _frame():
    frame = np.full((480, 640, 3), 238, np.uint8)
    frame[40:180, 60:160] = 40  # two dark garments apart
    frame[260:400, 380:560] = 90
    frame[300:303, 10:13] = 0  # a speck: too small to be a garment
    return frame


def _iou(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_proposals_box_each_garment_and_drop_specks():
    boxes = video.proposals(_frame())
    assert len(boxes) == 2
    for truth in ((60, 40, 100, 140), (380, 260, 180, 140)):
        assert max(_iou(truth, b) for b in boxes) > 0.8


def test_a_crop_keeps_a_margin_of_background_within_the_frame():
    frame = _frame()
    c = video.crop(frame, (60, 40, 100, 140))
    assert c.shape[:2] == (140 + 2 * 8, 100 + 2 * 6) and (c[0] == 238).all()
    assert video.crop(frame, (0, 0, 50, 50)).shape[:2] == (53, 53)  # clipped at the edge


def test_draw_puts_a_box_and_a_label_on_the_frame():
    frame = np.full((200, 200, 3), 255, np.uint8)
    video.draw(frame, [video.Detection((50, 60, 80, 90), "Sneaker", 0.97)])
    green = (frame[:, :, 0] == 0) & (frame[:, :, 1] == 160) & (frame[:, :, 2] == 0)
    assert green[60:150, 50].all() and green[150, 50:130].all()  # the box's edges
    assert green[40:60, 50:100].mean() > 0.5  # the label's band above it


def test_a_made_video_has_its_frames_and_each_garments_box(tmp_path):
    import cv2

    x = np.zeros((3, 28, 28), np.uint8)
    x[:, 4:24, 6:22] = 200
    truth = synth.write_video(tmp_path / "v.mp4", x, np.random.default_rng(0), frames=12)
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and len(truth) == 12
    ok, frame = cap.read()
    assert ok and frame.shape == (480, 640, 3)
    for x0, y0, w, h, _, whole in truth[0]:
        assert 0 <= x0 and x0 + w <= 640 and 0 <= y0 and y0 + h <= 480
        if whole:  # the garment is darker than the light background
            assert frame[y0 + h // 2, x0 + w // 2].mean() < 200
