"""A photo as Fashion-MNIST sees it: the conversion Fashion-MNIST itself used (Xiao, Rasul and
Vollgraf 2017, section 2), one function per step, for product photos on a light background.

1. ``trim``: cut the edges whose pixels are close to the corner pixels' colour (within 5% of the
   largest possible distance in RGB);
2. ``resize_longest``: the longest edge to 28 by subsampling rows and columns;
3. ``sharpen``: an unsharp mask of a Gaussian with radius and sigma 1.0;
4. ``pad_centre``: the shortest edge extended to 28, the garment centred;
5. ``negate`` and ``to_gray``: intensities negated (a light background becomes dark, as in the
   data set), 8-bit grayscale;
6. ``stretch`` (ours, not the paper's): the background to 0 and the brightest pixel to 255, as
   the data set's images are, for photos on an off-white or tinted background.

``convert`` runs them in that order on an RGB ``uint8`` array (H, W, 3) or a Pillow image. For a
photo on a busy background (the border is not one colour: ``busy``), ``cut_out`` first cuts
the garment out with OpenCV's GrabCut (a classical graph-cut segmentation, no model weights) and
puts it on white; ``convert(..., foreground="auto")`` (the default) does so where ``busy``.

Example::

    from PIL import Image
    from fmnist import photo
    x = photo.convert(Image.open("shoe.jpg"))  # (28, 28) uint8, as the data set's images
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

SIZE = 28
TRIM_TOLERANCE = 0.05  # of the largest RGB distance, sqrt(3) * 255
BUSY_SPREAD = 12.0  # the border's colour spread (RGB std) above which a background is busy
FOREGROUND = ("auto", "grabcut", "none")
# the unsharp mask's amount, in percent, chosen on made photos (BENCHMARKS.md: stronger took them
# further from their originals; made photos carry no camera blur to undo, real ones do)
SHARPEN_PERCENT = 25


def as_rgb(image) -> np.ndarray:
    """An RGB ``uint8`` array (H, W, 3) of a Pillow image or an array (gray or RGB[A])."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"photo: an image must be (H, W), (H, W, 3) or (H, W, 4), "
                         f"but got {a.shape}.")
    return a[:, :, :3].astype(np.uint8)


def corner_colour(rgb: np.ndarray) -> np.ndarray:
    """The mean colour of the four corner pixels (float RGB): the background's, in a product
    photo."""
    h, w = rgb.shape[:2]
    return rgb[[0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]].astype(np.float64).mean(axis=0)


def trim(rgb: np.ndarray, tolerance: float = TRIM_TOLERANCE) -> np.ndarray:
    """``rgb`` without its edge rows and columns whose every pixel lies within ``tolerance``
    of the mean colour of the four corners. An image that is all background is kept whole."""
    corners = corner_colour(rgb)
    far = np.linalg.norm(rgb.astype(np.float64) - corners, axis=2) > tolerance * np.sqrt(3) * 255
    rows, cols = np.flatnonzero(far.any(axis=1)), np.flatnonzero(far.any(axis=0))
    if rows.size == 0:
        return rgb
    return rgb[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def resize_longest(rgb: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The longest edge to ``size`` by subsampling (every k-th row and column, evenly spaced);
    the other edge in proportion, at least 1 pixel."""
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum((np.arange(nh) + 0.5) * h / nh, h - 1).astype(int)
    cols = np.minimum((np.arange(nw) + 0.5) * w / nw, w - 1).astype(int)
    return rgb[rows][:, cols]


def sharpen(rgb: np.ndarray, percent: int = SHARPEN_PERCENT) -> np.ndarray:
    """An unsharp mask of a Gaussian of radius and sigma 1.0, of ``percent`` strength:
    outlines gain contrast, flat regions stay as they are."""
    if percent <= 0:
        return rgb
    img = Image.fromarray(rgb)
    mask = ImageFilter.UnsharpMask(radius=1.0, percent=int(percent), threshold=0)
    return np.asarray(img.filter(mask))


def pad_centre(rgb: np.ndarray, background=None, size: int = SIZE) -> np.ndarray:
    """``rgb`` (at most ``size`` on each edge) centred on a ``size`` x ``size`` canvas of the
    ``background`` colour (default: ``rgb``'s corners'; after a trim, pass the untrimmed
    photo's, since the trimmed garment reaches its corners)."""
    h, w = rgb.shape[:2]
    if h > size or w > size:
        raise ValueError(f"photo: pad_centre needs edges of at most {size}, but got {h}x{w}.")
    if background is None:
        background = corner_colour(rgb)
    out = np.empty((size, size, 3), np.uint8)
    out[:] = np.clip(np.round(np.asarray(background, np.float64)), 0, 255).astype(np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = rgb
    return out


def negate(rgb: np.ndarray) -> np.ndarray:
    return (255 - rgb.astype(np.int16)).astype(np.uint8)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """8-bit grayscale (ITU-R 601-2 luma, as Pillow's ``convert("L")``)."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def stretch(gray: np.ndarray, background: float) -> np.ndarray:
    """Intensities stretched so that ``background`` becomes 0 and the brightest pixel 255, as
    in the data set, whose photos were on pure white (ours: an off-white or tinted one, after
    negation, is not 0)."""
    g = gray.astype(np.float64) - background
    top = g.max()
    if top <= 0:
        return np.zeros_like(gray)
    return np.clip(np.round(g * 255.0 / top), 0, 255).astype(np.uint8)


def border(rgb: np.ndarray, width: int = 4) -> np.ndarray:
    """The pixels of the outer ``width`` rows and columns, (N, 3) float."""
    a = rgb.astype(np.float64)
    return np.concatenate([a[:width].reshape(-1, 3), a[-width:].reshape(-1, 3),
                           a[:, :width].reshape(-1, 3), a[:, -width:].reshape(-1, 3)])


def busy(rgb: np.ndarray, spread: float = BUSY_SPREAD) -> bool:
    """Whether the border is not one colour (its RGB standard deviation above ``spread``): a
    textured or cluttered background, where trimming on the corners' colour cannot work."""
    return float(border(rgb).std(axis=0).mean()) > spread


def cut_out(rgb: np.ndarray, margin: float = 0.02, iterations: int = 4,
               work: int = 200) -> np.ndarray:
    """The garment cut from its background by GrabCut (initialised with the rectangle inside a
    ``margin`` of each edge: the garment must lie within it) and put on white; GrabCut runs on
    a copy whose longest edge is ``work`` pixels, its mask scaled back up."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, work / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    sh, sw = small.shape[:2]
    mx, my = max(1, round(sw * margin)), max(1, round(sh * margin))
    mask = np.zeros((sh, sw), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(small), mask, (mx, my, sw - 2 * mx, sh - 2 * my), bgd, fgd,
                iterations, cv2.GC_INIT_WITH_RECT)
    keep = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    if scale < 1:
        keep = cv2.resize(keep, (w, h), interpolation=cv2.INTER_NEAREST)
    if not keep.any():
        return rgb
    return np.where(keep[:, :, None] > 0, rgb, np.uint8(255))


def convert(image, foreground: str = "auto", sharpen_percent: int = SHARPEN_PERCENT) -> np.ndarray:
    """A photo as a Fashion-MNIST image: (28, 28) ``uint8``, garment light on black.
    ``foreground``: "grabcut" cuts the garment from its background first, "none" never, "auto"
    where the background is ``busy``. ``sharpen_percent``: the unsharp mask's strength."""
    if foreground not in FOREGROUND:
        raise ValueError(f"photo: foreground must be one of {', '.join(FOREGROUND)}, "
                         f"but got {foreground!r}.")
    rgb = as_rgb(image)
    if foreground == "grabcut" or (foreground == "auto" and busy(rgb)):
        rgb = cut_out(rgb)
    background = corner_colour(rgb)
    small = sharpen(resize_longest(trim(rgb)), sharpen_percent)
    gray = to_gray(negate(pad_centre(small, background)))
    return stretch(gray, float(gray[0, 0]))
