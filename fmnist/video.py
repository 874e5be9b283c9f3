"""Garments in a video: region proposals per frame, each region converted as a photo
(``fmnist.photo``) and classified, labelled boxes drawn, the annotated video written.

Proposals are the outer contours of a frame's edges (OpenCV's Canny on a half-size gray frame,
dilated so that a garment's outlines join into one region), for garments on a plain or smoothly
lit background; a region too small or too thin is dropped. 003's selective search proposes
thousands of regions a frame and ran far from real time; contours propose a handful, at a cost
small beside the classification. All of a frame's regions are classified in one batch.

Example::

    stats = video.annotate_video("in.mp4", "out.mp4", model, threshold=0.9)
    stats.frames, stats.fps
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist import photo
from fmnist.data import CLASS_NAMES

THRESHOLD = 0.9  # 003's: a box is drawn where the top class's probability reaches it
MIN_AREA = 0.005  # of the frame: smaller regions are noise
PAD = 0.06  # each region grown by this share of its size on each side before conversion
BATCH = 8  # regions classified per call; a frame's are padded to a multiple of it


@dataclass
class Detection:
    box: tuple[int, int, int, int]  # x, y, w, h in the frame
    label: str
    probability: float


@dataclass
class VideoStats:
    frames: int
    seconds: float  # reading, proposing, classifying, drawing and writing every frame
    size: tuple[int, int]  # (width, height)
    detections: list[list[Detection]] = field(default_factory=list)  # per frame, drawn ones

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def proposals(frame_rgb: np.ndarray, min_area: float = MIN_AREA) -> list[tuple[int, int, int,
                                                                               int]]:
    """Candidate garment boxes (x, y, w, h): outer contours of the frame's dilated edges."""
    import cv2

    h, w = frame_rgb.shape[:2]
    small = cv2.resize(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY), (w // 2, h // 2),
                       interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(cv2.GaussianBlur(small, (5, 5), 0), 20, 60)
    joined = cv2.morphologyEx(edges, cv2.MORPH_CLOSE,  # a garment's outlines into one region
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    joined = cv2.dilate(joined, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for c in contours:
        x, y, bw, bh = (2 * v for v in cv2.boundingRect(c))
        if bw * bh >= min_area * w * h and min(bw, bh) >= 16:
            boxes.append((x, y, min(bw, w - x), min(bh, h - y)))
    return boxes


def crop(frame_rgb: np.ndarray, box: tuple[int, int, int, int], pad: float = PAD) -> np.ndarray:
    """The box grown by ``pad`` on each side (within the frame), so that its border is the
    background the conversion trims on."""
    h, w = frame_rgb.shape[:2]
    x, y, bw, bh = box
    px, py = round(bw * pad), round(bh * pad)
    return frame_rgb[max(0, y - py):min(h, y + bh + py), max(0, x - px):min(w, x + bw + px)]


class Classifier:
    """``model`` on batches of 28x28 images, compiled once for batches of ``BATCH``."""

    def __init__(self, model):
        from fmnist.runtime import tf

        self.model = model
        self._fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n == 0:
            return np.zeros((0, len(CLASS_NAMES)))
        padded = np.zeros((-(-n // BATCH) * BATCH, *x.shape[1:]), x.dtype)
        padded[:n] = x
        return np.asarray(self._fn(padded))[:n].astype(np.float64)


def detect(frame_rgb: np.ndarray, classify: Callable[[np.ndarray], np.ndarray],
           threshold: float = THRESHOLD) -> list[Detection]:
    """The frame's proposals, converted and classified; those at or above ``threshold``."""
    boxes = proposals(frame_rgb)
    if not boxes:
        return []
    x = np.stack([photo.convert(crop(frame_rgb, b), foreground="none") for b in boxes])
    probs = classify(x)
    out = []
    for box, p in zip(boxes, probs, strict=True):
        k = int(p.argmax())
        if p[k] >= threshold:
            out.append(Detection(box, CLASS_NAMES[k], float(p[k])))
    return out


def draw(frame_bgr: np.ndarray, detections: list[Detection]) -> None:
    """Each detection's box, and its label and probability above it, on the frame in place."""
    import cv2

    for d in detections:
        x, y, w, h = d.box
        cv2.rectangle(frame_bgr, (x, y), (x + w, y + h), (0, 160, 0), 2)
        text = f"{d.label} {d.probability:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(th + 4, y)
        cv2.rectangle(frame_bgr, (x, ty - th - 4), (x + tw + 4, ty), (0, 160, 0), -1)
        cv2.putText(frame_bgr, text, (x + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)


def open_video(path: str | Path):
    """An OpenCV capture of ``path`` with its first frame readable; ValueError otherwise."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: not a video OpenCV can read")
    ok, _ = cap.read()
    if not ok:
        cap.release()
        raise ValueError(f"{path}: not a video OpenCV can read (no frame)")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return cap


def annotate_video(src: str | Path, out: str | Path, model, threshold: float = THRESHOLD,
                   on_frame: Callable[[int, int], None] | None = None) -> VideoStats:
    """Every frame of ``src`` with its detections drawn, written to ``out`` (mp4v, the source's
    size and frame rate). ``on_frame(done, total)`` after each frame."""
    import cv2

    cap = open_video(src)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        cap.release()
        raise ValueError(f"{out}: OpenCV cannot write a video there")
    classify = Classifier(model)
    classify(np.zeros((1, 28, 28), np.uint8))  # traced before the clock starts
    stats = VideoStats(0, 0.0, (w, h))
    t0 = time.perf_counter()
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            found = detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), classify, threshold)
            draw(frame, found)
            writer.write(frame)
            stats.detections.append(found)
            stats.frames += 1
            if on_frame is not None:
                on_frame(stats.frames, total)
    finally:
        cap.release()
        writer.release()
    stats.seconds = time.perf_counter() - t0
    return stats
