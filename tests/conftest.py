"""Shared fixtures. The real Fashion-MNIST files come from the project's data-directory setting
(``FMNIST_DATA_DIR``; CI points it at ``../shared/data/fashion-mnist``), downloaded if missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SHARED = REPO.parent / "shared" / "data" / "fashion-mnist"
if "FMNIST_DATA_DIR" not in os.environ and _SHARED.is_dir():
    os.environ["FMNIST_DATA_DIR"] = str(_SHARED)


@pytest.fixture(scope="session")
def data_root() -> Path:
    from fmnist import data

    return data.ensure()


@pytest.fixture(scope="session")
def arrays(data_root):
    from fmnist import data

    return data.load_arrays(data_root, download=False)


@pytest.fixture(scope="session")
def split(data_root):
    from fmnist import data

    return data.load_split(data_root, val_fraction=0.2, seed=0)
