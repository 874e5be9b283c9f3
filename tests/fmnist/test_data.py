from __future__ import annotations

import gzip
import shutil
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from fmnist import data
from fmnist.data import DataError

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`

# ---------------------------------------------------------------- the real files


def test_real_files_match_published_md5(data_root):
    states = data.status(data_root)
    assert [s.name for s in states] == list(data.FILES)
    for s in states:
        assert s.state == "ok", s
        assert s.actual_md5 == data.FILES[s.name][0]


def test_real_arrays_shapes_dtypes_and_class_counts(arrays):
    x_train, y_train, x_test, y_test = arrays
    assert x_train.shape == (60_000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10_000, 28, 28) and x_test.dtype == np.uint8
    assert y_train.shape == (60_000,) and y_test.shape == (10_000,)
    assert np.bincount(y_train).tolist() == [6_000] * 10
    assert np.bincount(y_test).tolist() == [1_000] * 10
    assert x_train.max() == 255 and x_train.min() == 0


def test_split_sizes_and_stratification(split):
    assert split.sizes() == {"train": 48_000, "val": 12_000, "test": 10_000}
    assert split.class_names == data.CLASS_NAMES and len(split.class_names) == 10
    val_counts = np.bincount(split.y_val, minlength=10)
    assert np.all(np.abs(val_counts - 0.2 * 6_000) <= 1), val_counts
    assert np.bincount(split.y_train).tolist() == [4_800] * 10


def test_split_train_and_val_are_disjoint_and_cover_the_training_images(split, arrays):
    assert np.intersect1d(split.train_index, split.val_index).size == 0
    both = np.union1d(split.train_index, split.val_index)
    assert both.size == 60_000
    x_train, y_train, x_test, y_test = arrays
    assert np.array_equal(split.x_val, x_train[split.val_index])
    assert np.array_equal(split.y_train, y_train[split.train_index])
    # the test images are the official test file, untouched and never in train or validation
    assert np.array_equal(split.x_test, x_test) and np.array_equal(split.y_test, y_test)


def test_same_seed_same_split_other_seed_other_split(data_root, split):
    again = data.load_split(data_root, seed=0)
    other = data.load_split(data_root, seed=1)
    assert np.array_equal(again.val_index, split.val_index)
    assert not np.array_equal(other.val_index, split.val_index)
    assert np.all(np.abs(np.bincount(other.y_val) - 1_200) <= 1)


def test_subset_is_stratified_and_drawn_from_each_split(data_root, split):
    small = data.load_split(data_root, seed=0, subset=1_000)
    assert small.sizes() == {"train": 1_000, "val": 1_000, "test": 1_000}
    for y in (small.y_train, small.y_val, small.y_test):
        assert np.bincount(y, minlength=10).tolist() == [100] * 10
    assert np.isin(small.train_index, split.train_index).all()
    assert np.isin(small.val_index, split.val_index).all()
    odd = data.load_split(data_root, seed=0, subset=1_005)
    assert odd.sizes()["train"] == 1_005
    assert np.abs(np.bincount(odd.y_train) - 100.5).max() <= 1


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_val_fraction_out_of_range(data_root, bad):
    with pytest.raises(ValueError, match=r"`0 < val_fraction < 1` must hold"):
        data.load_split(data_root, val_fraction=bad)


def test_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data.data_dir() == tmp_path / "env"
    monkeypatch.delenv("FMNIST_DATA_DIR")
    assert data.data_dir() == tmp_path / "xdg" / "fmnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_dir() == tmp_path / "home" / ".cache" / "fmnist"


# ---------------------------------------------------------------- small IDX files


def _idx(path: Path, magic: bytes, dims: tuple[int, ...], payload: bytes) -> Path:
    header = magic + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(path, "wb") as f:
        f.write(header + payload)
    return path


def test_parse_idx_reads_a_valid_file(tmp_path):
    imgs = np.arange(2 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(2, 28, 28)
    p = _idx(tmp_path / "ok.gz", b"\x00\x00\x08\x03", (2, 28, 28), imgs.tobytes())
    assert np.array_equal(data.parse_idx(p, count=2, dims=(28, 28)), imgs)


def test_parse_idx_bad_magic(tmp_path):
    p = _idx(tmp_path / "magic.gz", b"\x00\x00\x0d\x03", (1, 28, 28), bytes(784))
    with pytest.raises(DataError, match=r"magic\.gz: IDX magic number must be 0x0000080N.*"
                                         r"got 0x00000d03"):
        data.parse_idx(p)


def test_parse_idx_truncated(tmp_path):
    p = _idx(tmp_path / "short.gz", b"\x00\x00\x08\x03", (3, 28, 28), bytes(2 * 784))
    with pytest.raises(DataError, match=r"short\.gz: IDX byte count must be 2368 .*"
                                         r"but got 1584 \(truncated\)"):
        data.parse_idx(p)


def test_parse_idx_truncated_gzip_stream(tmp_path):
    good = _idx(tmp_path / "good.gz", b"\x00\x00\x08\x01", (5,), bytes(5))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:-6])
    with pytest.raises(DataError, match=r"cut\.gz: cannot be read as an IDX file"):
        data.parse_idx(cut)


def test_parse_idx_wrong_dimensions(tmp_path):
    p = _idx(tmp_path / "dims.gz", b"\x00\x00\x08\x03", (1, 32, 32), bytes(32 * 32))
    with pytest.raises(DataError, match=r"each example must be \(28, 28\), .*\(32, 32\)"):
        data.parse_idx(p, count=1, dims=(28, 28))


def _copy_real(data_root: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in data.FILES:
        shutil.copy(data_root / name, dest / name)
    return dest


def test_wrong_md5_names_file_expected_actual_and_fix(data_root, tmp_path):
    root = _copy_real(data_root, tmp_path / "d")
    bad = root / "t10k-labels-idx1-ubyte.gz"
    _idx(bad, b"\x00\x00\x08\x01", (10_000,), bytes(10_000))
    actual = data.md5sum(bad)
    with pytest.raises(DataError) as e:
        data.load_split(root)
    msg = str(e.value)
    assert str(bad) in msg
    assert "bb300cfdad3c16e7a12a480ee83cd310" in msg and actual in msg
    assert "delete it and run `fmnist-sweep data`" in msg
    assert bad.exists(), "a corrupt file is reported, never silently deleted"


# ---------------------------------------------------------------- downloads
# (the ones from real mirrors are in test_data_downloads.py: they bring TensorFlow in)


def _closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}/"


def test_no_download_reports_missing_files(tmp_path):
    with pytest.raises(DataError, match=r"lacks train-images-idx3-ubyte\.gz, .*fmnist-sweep data"):
        data.ensure(tmp_path, download=False)


def test_data_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DataError, match=r"data directory .*a-file/fmnist cannot be created.*"
                                         r"writable data directory"):
        data.ensure(blocker / "fmnist", mirrors=[_closed_port()])
