"""Fashion-MNIST: the four official files, verified, parsed and split.

The data directory is, in order: an explicit argument, ``$FMNIST_DATA_DIR``, or the user cache
(``$XDG_CACHE_HOME/fmnist``, else ``~/.cache/fmnist``). Files that are present and match their
published md5 are used as they are, with no network; missing ones are downloaded with Keras'
``get_file`` (which verifies the hash), from the official mirror and then a second one.

Example::

    from fmnist import data
    split = data.load_split(val_fraction=0.2, seed=0)
    split.x_train.shape, split.x_val.shape, split.x_test.shape
    # ((48000, 28, 28), (12000, 28, 28), (10000, 28, 28))

The 10,000 test images are never mixed into train or validation: validation is a stratified,
seeded share of the 60,000 training images.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist.errors import ConfigError, UserError

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# name -> (md5 of the .gz as published, number of examples, IDX dims after the count)
FILES: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 60_000, (28, 28)),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", 60_000, ()),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", 10_000, (28, 28)),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", 10_000, ()),
}

# The Fashion-MNIST authors' mirror first, then the copy Keras' own loader uses.
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)
DEFAULT_TIMEOUT_S = 10.0

_IDX_UBYTE = 0x08  # the only element type Fashion-MNIST uses


class DataError(UserError):
    """A data file is missing, corrupt or cannot be fetched; the message says which and the fix."""


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$FMNIST_DATA_DIR``, else the user cache."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("FMNIST_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(cache) / "fmnist").expanduser().resolve()


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    name: str
    path: Path
    expected_md5: str
    actual_md5: str | None  # None: missing

    @property
    def ok(self) -> bool:
        return self.actual_md5 == self.expected_md5

    @property
    def state(self) -> str:
        if self.actual_md5 is None:
            return "missing"
        return "ok" if self.ok else "corrupt"


def status(directory: str | os.PathLike[str] | None = None) -> list[FileStatus]:
    """The state of each of the four files in the data directory; reads no network."""
    root = data_dir(directory)
    out = []
    for name, (md5, _, _) in FILES.items():
        path = root / name
        actual = md5sum(path) if path.is_file() else None
        out.append(FileStatus(name, path, md5, actual))
    return out


def _corrupt_message(s: FileStatus) -> str:
    return (
        f"{s.path}: md5 must be {s.expected_md5} (the published Fashion-MNIST file), "
        f"but got {s.actual_md5}. The file is corrupt, truncated or not the official one: "
        f"delete it and run `fmnist-sweep data` to download it again."
    )


def _mirrors() -> list[str]:
    env = os.environ.get("FMNIST_MIRRORS")
    if env:
        return [m.strip() for m in env.split(",") if m.strip()]
    return list(MIRRORS)


def _timeout() -> float:
    raw = os.environ.get("FMNIST_DOWNLOAD_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise DataError(
            f"FMNIST_DOWNLOAD_TIMEOUT must be a number of seconds, but got {raw!r}."
        ) from None


def _ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"data directory {root} cannot be created ({e.strerror or e}); set FMNIST_DATA_DIR "
            f"or choose a writable data directory."
        ) from None
    if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
        raise DataError(
            f"data directory {root} is not writable, so missing files cannot be downloaded "
            f"there; set FMNIST_DATA_DIR or choose a writable data directory."
        )


def _download(name: str, md5: str, root: Path, mirrors: Sequence[str], timeout: float) -> None:
    """Fetch one file with Keras' ``get_file`` (hash-verified), trying each mirror in turn."""
    from fmnist.runtime import keras  # heavy, only when something is missing; its native
    get_file = keras.utils.get_file  # start-up lines silenced (fmnist.runtime)

    errors = []
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # get_file has no timeout of its own: never hang
    try:
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                get_file(
                    fname=name,
                    origin=url,
                    file_hash=md5,
                    hash_algorithm="md5",
                    cache_dir=str(root),
                    cache_subdir=".",
                )
                return
            except Exception as e:  # noqa: BLE001 - every mirror failure is reported below
                errors.append(f"{url}: {_reason(e)}")
                partial = root / name
                if partial.exists() and md5sum(partial) != md5:
                    partial.unlink()
    finally:
        socket.setdefaulttimeout(old_timeout)
    tried = "\n  ".join(errors)
    raise DataError(
        f"{root / name} is missing and could not be downloaded from any mirror:\n  {tried}\n"
        f"Without network, copy the four official files into {root} "
        f"(or point FMNIST_DATA_DIR at a folder that has them)."
    )


def _reason(e: BaseException) -> str:
    while e.__cause__ is not None or e.__context__ is not None:
        nxt = e.__cause__ or e.__context__
        if nxt is None:
            break
        e = nxt
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"{type(e).__name__}: {text}"


def ensure(
    directory: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    mirrors: Iterable[str] | None = None,
) -> Path:
    """Make sure the four verified files are in the data directory; return it.

    A present file with the wrong md5 is an error (never silently replaced); a missing file is
    downloaded unless ``download`` is false.
    """
    root = data_dir(directory)
    states = status(root)
    bad = [s for s in states if s.state == "corrupt"]
    if bad:
        raise DataError(_corrupt_message(bad[0]))
    missing = [s for s in states if s.state == "missing"]
    if not missing:
        return root
    if not download:
        names = ", ".join(s.name for s in missing)
        raise DataError(
            f"data directory {root} lacks {names}; run `fmnist-sweep data` to download them, "
            f"or set FMNIST_DATA_DIR to a folder that has the four official files."
        )
    _ensure_writable(root)
    mirror_list = list(mirrors) if mirrors is not None else _mirrors()
    timeout = _timeout()
    for s in missing:
        _download(s.name, s.expected_md5, root, mirror_list, timeout)
    return root


def parse_idx(path: str | os.PathLike[str], *, count: int | None = None,
              dims: tuple[int, ...] | None = None) -> np.ndarray:
    """Parse a (gzipped) IDX file of unsigned bytes, checking magic, dimensions and size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be read as an IDX file ({_reason(e)}).") from None
    if len(raw) < 4:
        raise DataError(f"{path}: IDX header must be at least 4 bytes, but got {len(raw)}.")
    zero, dtype, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype != _IDX_UBYTE or ndim < 1:
        raise DataError(
            f"{path}: IDX magic number must be 0x0000080N (unsigned bytes, N dimensions), "
            f"but got 0x{raw[:4].hex()}; this is not an IDX file of Fashion-MNIST."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated ({len(raw)} < {header} bytes).")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if count is not None and shape[0] != count:
        raise DataError(f"{path}: must hold {count} examples, but its header says {shape[0]}.")
    if dims is not None and shape[1:] != dims:
        raise DataError(f"{path}: each example must be {dims}, but its header says {shape[1:]}.")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path}: IDX byte count must be {expected} for shape {shape}, but got {len(raw)} "
            f"({'truncated' if len(raw) < expected else 'trailing bytes'})."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_arrays(
    directory: str | os.PathLike[str] | None = None, *, download: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` as uint8, after verifying (or fetching) the files."""
    root = ensure(directory, download=download)
    arrays = []
    for name, (_, n, dims) in FILES.items():
        arrays.append(parse_idx(root / name, count=n, dims=dims))
    x_train, y_train, x_test, y_test = arrays
    for y, name in ((y_train, "train-labels"), (y_test, "t10k-labels")):
        if y.max() >= len(CLASS_NAMES):
            raise DataError(f"{root}/{name}: labels must be 0..9, but got {int(y.max())}.")
    return x_train, y_train, x_test, y_test


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays (uint8 images (N, 28, 28), uint8 labels).

    ``train_index`` and ``val_index`` are positions in the 60,000 official training images;
    ``test_index`` positions in the 10,000 official test images.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    val_fraction: float
    seed: int
    subset: int | None = None
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions into (rest, share) with ``round(fraction * n_c)`` of each class in share."""
    rest, share = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * len(idx)))
        share.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(share))


def stratified_take(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``n`` examples with class proportions kept (largest remainders)."""
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: n - int(take.sum())]:
        take[i] += 1
    picked = [
        rng.permutation(np.flatnonzero(labels == c))[:k]
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def load_split(
    directory: str | os.PathLike[str] | None = None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    subset: int | None = None,
    download: bool = True,
) -> Split:
    """Load the verified files and split them: a stratified, seeded validation share of the
    60,000 training images, and the 10,000 test images as they are.

    ``subset`` keeps at most that many images in each split (stratified, same seed), for quick
    runs. ``val_fraction`` must lie in (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"`0 < val_fraction < 1` must hold, but got val_fraction={val_fraction}.")
    if subset is not None and subset < len(CLASS_NAMES):
        raise ConfigError(f"`subset >= 10` (one image per class) must hold, but got {subset=}.")
    x_train, y_train, x_test, y_test = load_arrays(directory, download=download)
    rng = np.random.default_rng(seed)
    train_index, val_index = stratified_split(y_train, val_fraction, rng)
    test_index = np.arange(len(y_test))
    if subset is not None:
        train_index = train_index[stratified_take(y_train[train_index], subset, rng)]
        val_index = val_index[stratified_take(y_train[val_index], subset, rng)]
        test_index = stratified_take(y_test, subset, rng)
    return Split(
        x_train=x_train[train_index],
        y_train=y_train[train_index],
        x_val=x_train[val_index],
        y_val=y_train[val_index],
        x_test=x_test[test_index],
        y_test=y_test[test_index],
        train_index=train_index,
        val_index=val_index,
        test_index=test_index,
        val_fraction=val_fraction,
        seed=seed,
        subset=subset,
    )
