"""``fmnist-sweep predict``: a sweep's model on photos and videos.

``load_model`` takes what a user names a model by: a sweep (its final model, from the parent
run's record), an MLflow model URI (``runs:/...``, ``models:/...``) or a ``.keras`` file.
``read_image`` and ``classify`` turn photos into top-k tables through ``fmnist.photo``'s
conversion; ``sheet`` draws what the model saw. Every bad input (a file that is not an image, a
model that is not there) is a ``PredictError``: one line naming it, exit code 2 in the CLI.

Example::

    model = predict.load_model("minivgg", tracking.store())
    rows = predict.classify(model, {"shoe.jpg": predict.read_image("shoe.jpg")})
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist.data import CLASS_NAMES
from fmnist.errors import UserError
from sweeps import tags as tag

TOP_K = 3
MODEL_URI_SCHEMES = ("runs:/", "models:/")


class PredictError(UserError, ValueError):
    """An image, video or model that cannot be used; one line naming it."""


@dataclass
class Prediction:
    name: str  # the image's path as given
    photo: np.ndarray  # the RGB photo
    seen: np.ndarray  # (28, 28) uint8: what the model saw
    probs: np.ndarray  # (10,)
    top: list[tuple[str, float]] = field(default_factory=list)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def model_source(model: str, st) -> str:
    """The file or MLflow model URI ``model`` names: a ``.keras`` file as it is, a URI as it is,
    a sweep's final model's URI from its parent run, ``SWEEP@ALIAS`` the registered version the
    alias names (a ``PredictError`` where the sweep, its final model or the alias is not
    there)."""
    if model.startswith(MODEL_URI_SCHEMES):
        return model
    if model.endswith(".keras") or Path(model).exists():
        path = Path(model)
        if not path.is_file():
            raise PredictError(f"--model {model}: no such file")
        return str(path)
    from sweeps import tracking

    if not st.exists:
        raise PredictError(f"--model {model}: not a .keras file, a model URI or a sweep "
                           f"(no store at {st.root})")
    tracking.check_tracking_uri(st)
    c = tracking.client(st)
    if "@" in model:
        return _alias_uri(c, model, st)
    exp = c.get_experiment_by_name(model)
    if exp is None:
        raise PredictError(f"--model {model}: not a .keras file, a model URI or a sweep at "
                           f"{st.tracking_uri}")
    parents = c.search_runs([exp.experiment_id], tracking.role_filter(tag.PARENT),
                            max_results=1)
    uri = parents[0].data.tags.get(tag.MODEL_URI) if parents else None
    if not uri:
        raise PredictError(f"--model {model}: the sweep has no final model yet (its search or "
                           f"its test evaluation has not finished; the same `fmnist-sweep run` "
                           f"goes on)")
    return uri


def _alias_uri(c, model: str, st) -> str:
    """``SWEEP@ALIAS``: the version of the sweep's registered model the alias names (e.g.
    ``edge@fastest``; ``champion`` is the final model's)."""
    from mlflow.exceptions import MlflowException

    from sweeps.final import registered_name

    sweep, alias = model.split("@", 1)
    name = registered_name(sweep)
    try:
        c.get_model_version_by_alias(name, alias)
    except MlflowException:
        try:
            have = sorted(c.get_registered_model(name).aliases)
        except MlflowException:
            raise PredictError(f"--model {model}: no registered model {name} at "
                               f"{st.tracking_uri} (a sweep's final phase registers it)"
                               ) from None
        raise PredictError(f"--model {model}: {name} has no alias {alias!r}; it has "
                           f"{', '.join(have) or 'none'}") from None
    return f"models:/{name}@{alias}"


def load_model(model: str, st):
    """The Keras model ``model`` names (see ``model_source``)."""
    source = model_source(model, st)
    import fmnist.models  # noqa: F401 - registers the custom layers for loading
    from fmnist.runtime import keras

    if not source.startswith(MODEL_URI_SCHEMES):
        try:
            return keras.models.load_model(source, compile=False)
        except Exception as e:  # a zip that is not a Keras archive, a truncated file
            raise PredictError(f"--model {source}: not a Keras model file "
                               f"({_first_line(e)})") from None
    import mlflow
    from mlflow.exceptions import MlflowException

    from sweeps import tracking

    if not st.exists:  # nothing is created to find out
        raise PredictError(f"--model {source}: no such model (no store at {st.root})")
    tracking.check_tracking_uri(st)
    mlflow.set_tracking_uri(st.tracking_uri)
    try:
        return mlflow.keras.load_model(source)
    except (MlflowException, OSError) as e:
        raise PredictError(f"--model {source}: no such model at {st.tracking_uri} "
                           f"({_first_line(e)})") from None


# the most pixels a photo may declare (a 64-megapixel camera's): Pillow reads the size from the
# header before it decodes, so a file made to declare more (a decompression bomb) costs nothing
MAX_PIXELS = 64_000_000


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def image_paths(given: list[str]) -> list[str]:
    """The photos ``given`` names: a file as it is; a folder, its image files (by suffix,
    ``IMAGE_SUFFIXES``), sorted, not its subfolders. A link in a folder that leads out of it is
    refused (a ``PredictError``): a folder handed over says what may be read."""
    out = []
    for g in given:
        folder = Path(g)
        if not folder.is_dir():
            out.append(g)
            continue
        root = folder.resolve()
        for entry in sorted(folder.iterdir()):
            if entry.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            target = entry.resolve()
            if not target.is_relative_to(root):
                raise PredictError(f"{entry}: a link out of the folder {folder} (to {target}); "
                                   f"refused")
            if target.is_file():
                out.append(str(entry))
    if given and not out:
        raise PredictError(f"{', '.join(given)}: no image files "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return out


def read_image(path: str | Path) -> np.ndarray:
    """The RGB ``uint8`` photo at ``path``, turned as its EXIF orientation says."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise PredictError(f"{path}: no such file")
    if not p.is_file():
        raise PredictError(f"{path}: not a file")
    try:
        with warnings.catch_warnings():  # Pillow warns of a large one: MAX_PIXELS decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(p)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise PredictError(f"{path}: declares {img.width:,} x {img.height:,} pixels, "
                                   f"more than the {MAX_PIXELS:,} a photo may have")
            img.load()
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except UnidentifiedImageError:
        raise PredictError(f"{path}: not an image Pillow can read (JPEG, PNG, WebP, ...)") \
            from None
    except Image.DecompressionBombError as e:  # Pillow's own limit, where it is lower
        raise PredictError(f"{path}: refused as a decompression bomb ({_first_line(e)})") \
            from None
    except (ValueError, SyntaxError) as e:  # e.g. a text chunk that inflates past Pillow's limit
        raise PredictError(f"{path}: cannot be read ({_first_line(e)})") from None
    except OSError as e:  # unreadable, or truncated
        raise PredictError(f"{path}: cannot be read ({_first_line(e)})") from None


def top_k(probs: np.ndarray, k: int = TOP_K) -> list[tuple[str, float]]:
    order = np.argsort(-probs)[:k]
    return [(CLASS_NAMES[i], float(probs[i])) for i in order]


def classify(model, photos: dict[str, np.ndarray], foreground: str = "auto",
             k: int = TOP_K) -> list[Prediction]:
    """Each photo converted (``fmnist.photo.convert``) and classified in one batch."""
    from fmnist import photo

    seen = {name: photo.convert(rgb, foreground) for name, rgb in photos.items()}
    x = np.stack(list(seen.values())) if seen else np.zeros((0, 28, 28), np.uint8)
    probs = np.asarray(model.predict(x, verbose=0), np.float64) if len(x) else x
    return [Prediction(name, photos[name], seen[name], p, top_k(p, k))
            for name, p in zip(seen, probs, strict=True)]


def table(preds: list[Prediction]) -> str:
    """One row per image: its top classes with probabilities."""
    width = max([5, *(len(p.name) for p in preds)])
    ranks = len(preds[0].top) if preds else TOP_K
    head = f"{'image':{width}}  " + "  ".join(f"{'#' + str(i + 1):>19}" for i in range(ranks))
    rows = [f"{p.name:{width}}  " + "  ".join(f"{c:>12} {q:6.1%}" for c, q in p.top)
            for p in preds]
    return "\n".join([head, *rows])


def as_json(preds: list[Prediction]) -> str:
    return json.dumps([{"image": p.name, "top": [{"class": c, "probability": round(q, 6)}
                                                 for c, q in p.top]} for p in preds], indent=2)


def sheet(preds: list[Prediction], out: str | Path, cell: int = 168) -> Path:
    """A PNG: per image a row of the photo, what the model saw (28x28, enlarged) and the
    top classes."""
    from PIL import Image, ImageDraw

    out = Path(out)
    pad, text_w = 8, 240
    w = 2 * cell + text_w + 4 * pad
    h = max(1, len(preds)) * (cell + pad) + pad
    page = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(page)
    for i, p in enumerate(preds):
        y = pad + i * (cell + pad)
        thumb = Image.fromarray(p.photo)
        thumb.thumbnail((cell, cell))
        page.paste(thumb, (pad + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        seen = Image.fromarray(p.seen).resize((cell, cell), Image.NEAREST).convert("RGB")
        page.paste(seen, (2 * pad + cell, y))
        lines = [Path(p.name).name, *(f"{c}  {q:.1%}" for c, q in p.top)]
        for j, line in enumerate(lines):
            draw.text((3 * pad + 2 * cell, y + 8 + 22 * j), line, fill="black")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        page.save(out, "PNG")
    except OSError as e:
        raise PredictError(f"--show {out}: cannot be written ({_first_line(e)})") from None
    return out

