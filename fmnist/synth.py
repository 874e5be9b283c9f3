"""Made photos and videos of Fashion-MNIST images, for tests and benchmarks where no real photo
can be downloaded: the data set's conversion run backwards, with what a camera adds.

- ``product_photo``: a test image upscaled to 200-400 px, negated (a dark garment on a light
  background, as product photos are), tinted, with noise, JPEG-compressed, at a random offset
  on a larger light canvas;
- ``textured_photo``: the same garment on a textured background (stripes, blotches, noise), the
  harder case;
- ``write_video``: garments moving across a light, uneven background, written with OpenCV's
  ``VideoWriter``; it returns each frame's true boxes.

Example::

    rng = np.random.default_rng(0)
    rgb = synth.product_photo(split.x_test[0], rng)   # (H, W, 3) uint8
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

LIGHT = 245.0  # the canvas's level, before tint and noise


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def garment(x28: np.ndarray, side: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A data-set image as a (side, side, 3) float RGB garment, dark on light, tinted (the
    data set's conversion undone: intensity linear in the image's), and its silhouette (float
    0..1: where it hides the background, holes filled, soft at the edge)."""
    import cv2

    up = np.asarray(Image.fromarray(np.asarray(x28, np.uint8)).resize((side, side),
                                                                     Image.BICUBIC))
    shade = up.astype(np.float64)[:, :, None] / 255.0
    tint = rng.uniform(0.3, 1.0, size=3)  # the garment's colour where the image is brightest
    colour = LIGHT * (1.0 - shade * (1.0 - tint * rng.uniform(0.1, 0.4)))
    inside = (up > 12).astype(np.uint8)
    contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(inside)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    alpha = cv2.GaussianBlur(filled.astype(np.float64), (0, 0), max(1.0, side / 200))
    return colour, alpha


def _place(canvas: np.ndarray, x28: np.ndarray, rng: np.random.Generator) -> None:
    h, w = canvas.shape[:2]
    side = int(rng.integers(200, min(400, h, w) + 1))
    colour, alpha = garment(x28, side, rng)
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    region = canvas[top:top + side, left:left + side]
    a = alpha[:, :, None]
    region[:] = region * (1 - a) + colour * a


def product_photo(x28: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A product photo of ``x28`` (uint8 (28, 28)): light background, (H, W, 3) uint8."""
    h, w = int(rng.integers(320, 480)), int(rng.integers(320, 480))
    canvas = np.empty((h, w, 3))
    canvas[:] = LIGHT * rng.uniform(0.95, 1.0, size=3)  # an off-white, a little tinted
    _place(canvas, x28, rng)
    canvas += rng.normal(0, 3, canvas.shape)
    return _jpeg(np.clip(canvas, 0, 255).astype(np.uint8), int(rng.integers(75, 95)))


def texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A busy background (H, W, 3) float: stripes at a random angle, blotches of colour, grain."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    angle, period = rng.uniform(0, np.pi), rng.uniform(12, 40)
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    small = rng.uniform(0, 1, size=(h // 40 + 2, w // 40 + 2, 3))
    blotches = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize(
        (w, h), Image.BICUBIC), np.float64) / 255.0
    base = rng.uniform(120, 220, size=3)
    return base * (0.75 + 0.25 * stripes[:, :, None]) * (0.7 + 0.3 * blotches)


def textured_photo(x28: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x28`` photographed on a textured background, (H, W, 3) uint8."""
    h, w = int(rng.integers(320, 480)), int(rng.integers(320, 480))
    canvas = texture(h, w, rng)
    _place(canvas, x28, rng)
    canvas += rng.normal(0, 4, canvas.shape)
    return _jpeg(np.clip(canvas, 0, 255).astype(np.uint8), int(rng.integers(75, 95)))


def write_video(path: str | Path, images: np.ndarray, rng: np.random.Generator,
                frames: int = 60, size: tuple[int, int] = (640, 480), fps: float = 20.0,
                side: int | None = None) -> list[list[tuple]]:
    """A video of ``images`` (uint8 (k, 28, 28), k of 2 or 3) moving across a light, unevenly
    lit background, each in a lane of its own (they never overlap), in and out of the frame's
    sides; ``path`` is written with OpenCV (mp4v), ``size`` is (width, height). Returns per frame
    the boxes (x, y, w, h, index into images) of the garments on it (their visible extent), and
    whether each is whole in the frame: [(x, y, w, h, index, whole), ...]."""
    import cv2

    w, h = size
    lane = h // max(1, len(images))
    side = side or min(lane - 40, w // 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    background = (LIGHT - 25 * (xx / w) - 15 * (yy / h))[:, :, None] * rng.uniform(
        0.93, 1.0, size=3)
    items = []
    for i, x in enumerate(images):
        colour, mask = garment(x, side, rng)  # mask: the silhouette
        x0 = rng.uniform(-side / 2, w - side)
        velocity = rng.uniform(3, 8) * rng.choice([-1, 1])
        items.append((i, colour, mask, x0, velocity, i * lane + (lane - side) // 2))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"synth: OpenCV cannot write {path}")
    truth = []
    try:
        for t in range(frames):
            frame = background.copy()
            boxes = []
            for i, colour, mask, x0, velocity, y0 in items:
                x = int(round(x0 + velocity * t) + side) % (w + side) - side  # wraps round
                y = int(y0 + round(8 * np.sin(t / 7 + i)))  # a little bob within its lane
                y = int(np.clip(y, i * lane, (i + 1) * lane - side))
                a, b = max(0, x), min(w, x + side)
                if b <= a:
                    continue
                m = mask[:, a - x:b - x, None]
                region = frame[y:y + side, a:b]
                region[:] = region * (1 - m) + colour[:, a - x:b - x] * m
                rows = np.flatnonzero((m[:, :, 0] > 0.1).any(axis=1))
                cols = np.flatnonzero((m[:, :, 0] > 0.1).any(axis=0))
                if rows.size:  # the garment's own extent, not its square's
                    boxes.append((a + int(cols[0]), y + int(rows[0]), int(cols[-1] - cols[0]) + 1,
                                  int(rows[-1] - rows[0]) + 1, i, a == x and b == x + side))
            frame += rng.normal(0, 2, frame.shape)
            rgb = np.clip(frame, 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            truth.append(boxes)
    finally:
        writer.release()
    return truth
