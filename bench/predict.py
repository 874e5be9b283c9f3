"""Photos and video: a model's accuracy on made photos of test images against the same images as
the data set has them, and the video command's speed and recall at 640x480.

Photos are made from the first ``--photos`` test images (``fmnist.synth``): on a light
background (product photos; the target: within 3 points of the originals) and, for the first
``--textured`` of them, on a textured one (converted with GrabCut first, and without). The
video holds three garments moving across a light background in lanes of their own; a garment
wholly in a frame is found where a drawn box (probability >= ``--threshold``) overlaps it at
IoU >= 0.5, and found right where that box's label is its class. Frames per second are end to
end: decode, proposals, conversion, classification, drawing, encode. A plain ``fit`` of a
reference model (bench/throughput.py) is timed beside it, for the machine's speed.

    FMNIST_DATA_DIR=../shared/data/fashion-mnist python bench/predict.py --model all \
        --store STORE     # a sweep's name and its store (default ./mlruns), a URI or a file
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from fmnist import data, photo, synth, video  # noqa: E402
from sweeps import predict, tracking  # noqa: E402


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x, batch_size=500, verbose=0).argmax(1) == y).mean())


def _iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def photos(model, split, n: int, n_busy: int, seed: int) -> None:
    x, y = split.x_test[:n], split.y_test[:n]
    rng = np.random.default_rng(seed)
    light = [synth.product_photo(img, rng) for img in x]
    busy = [synth.textured_photo(img, rng) for img in x[:n_busy]]
    base = _accuracy(model, x, y)
    print(f"{n:,} test images as the data set has them: acc {base:.4f}")
    t0 = time.perf_counter()
    seen = np.stack([photo.convert(p) for p in light])
    per = (time.perf_counter() - t0) / n
    acc = _accuracy(model, seen, y)
    print(f"  made photos, light background: acc {acc:.4f} ({100 * (acc - base):+.1f} points; "
          f"target >= -3.0), conversion {1000 * per:.1f} ms/photo")
    base = _accuracy(model, x[:n_busy], y[:n_busy])
    print(f"  the first {n_busy:,} of them as the data set has them: acc {base:.4f}")
    for mode in ("auto", "none"):
        t0 = time.perf_counter()
        seen = np.stack([photo.convert(p, foreground=mode) for p in busy])
        per = (time.perf_counter() - t0) / n_busy
        acc = _accuracy(model, seen, y[:n_busy])
        what = "GrabCut first (auto)" if mode == "auto" else "no foreground step"
        print(f"  made photos, textured background, {what}: acc {acc:.4f} "
              f"({100 * (acc - base):+.1f} points), {1000 * per:.1f} ms/photo")


def clip(model, split, frames: int, threshold: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(split.y_test), 3, replace=False)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
        truth = synth.write_video(src, split.x_test[pick], rng, frames=frames)
        stats = video.annotate_video(src, out, model, threshold)
    present = found = right = 0
    for boxes, dets in zip(truth, stats.detections, strict=True):
        for x0, y0, w, h, i, whole in boxes:
            if not whole:
                continue
            present += 1
            hits = [d for d in dets if _iou((x0, y0, w, h), d.box) >= 0.5]
            found += bool(hits)
            right += any(d.label == data.CLASS_NAMES[split.y_test[pick[i]]] for d in hits)
    print(f"video {stats.size[0]}x{stats.size[1]}, {stats.frames} frames, 3 garments "
          f"({', '.join(data.CLASS_NAMES[split.y_test[i]] for i in pick)}): "
          f"{stats.fps:.1f} frames/s end to end (target >= 10)")
    print(f"  at threshold {threshold:g}: {found}/{present} garments wholly in a frame boxed "
          f"({found / max(1, present):.1%}), {right}/{present} with their own class "
          f"({right / max(1, present):.1%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a sweep name, model URI or .keras file")
    ap.add_argument("--store", help="the sweep's store (default ./mlruns)")
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--textured", type=int, default=300,
                    help="made photos on a textured background (GrabCut takes ~0.5 s each)")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--threshold", type=float, default=video.THRESHOLD)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-reference", action="store_true", help="skip the reference fit")
    args = ap.parse_args()
    split = data.load_split(seed=0)
    model = predict.load_model(args.model, tracking.store(args.store))
    print(f"model: {args.model} ({model.count_params():,} parameters)")
    photos(model, split, args.photos, args.textured, args.seed)
    clip(model, split, args.frames, args.threshold, args.seed)
    if not args.no_reference:
        from throughput import plain

        speed = [plain("minivgg", data.load_split(subset=6000, seed=0), 2, 64, 0)[0]]
        print(f"reference: a plain fit of minivgg at {statistics.median(speed):.0f} images/s "
              f"(6,000 images, batch 64; bench/throughput.py)")


if __name__ == "__main__":
    main()
