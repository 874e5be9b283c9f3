"""Downloads from real HTTP mirrors on 127.0.0.1 (from test_data.py): ``fmnist.data`` downloads
with ``keras.utils.get_file``, so these bring TensorFlow in and are not the unit tier."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from functools import partial

import pytest

from fmnist import data
from fmnist.data import DataError
from tests.fmnist.test_data import _closed_port, _copy_real


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder; yields (url, folder)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    server.shutdown()
    server.server_close()


def test_missing_files_download_from_the_second_mirror_when_the_first_is_down(
    data_root, tmp_path, http_mirror
):
    url, folder = http_mirror
    _copy_real(data_root, folder)
    target = tmp_path / "cache"
    root = data.ensure(target, mirrors=[_closed_port(), url])
    assert root == target.resolve()
    assert all(s.state == "ok" for s in data.status(root))
    # present and valid: a second call needs no mirror at all
    assert data.ensure(target, mirrors=[]) == root


def test_download_of_a_foreign_file_is_rejected_and_not_kept(tmp_path, http_mirror):
    url, folder = http_mirror
    for name in data.FILES:
        (folder / name).write_bytes(b"not fashion-mnist")
    target = tmp_path / "cache"
    with pytest.raises(DataError, match=r"could not be downloaded from any mirror") as e:
        data.ensure(target, mirrors=[url])
    assert "train-images-idx3-ubyte.gz" in str(e.value)
    assert not (target / "train-images-idx3-ubyte.gz").exists()


def test_no_network_and_no_file_fails_fast_with_one_message(tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_MIRRORS", raising=False)
    t0 = time.monotonic()
    with pytest.raises(DataError) as e:
        data.ensure(tmp_path / "empty", mirrors=[_closed_port(), _closed_port()])
    assert time.monotonic() - t0 < 10
    msg = str(e.value)
    assert "is missing and could not be downloaded from any mirror" in msg
    assert "Without network, copy the four official files into" in msg
    assert msg.count("127.0.0.1") == 2, "both mirrors are named"


def test_a_mirror_that_never_answers_times_out(tmp_path, monkeypatch):
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # accepts connections, never answers
    monkeypatch.setenv("FMNIST_DOWNLOAD_TIMEOUT", "1")
    t0 = time.monotonic()
    try:
        with pytest.raises(DataError, match=r"could not be downloaded from any mirror"):
            data.ensure(tmp_path / "x", mirrors=[f"http://127.0.0.1:{hole.getsockname()[1]}/"])
    finally:
        hole.close()
    assert time.monotonic() - t0 < 10
