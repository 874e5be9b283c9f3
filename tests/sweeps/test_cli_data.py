from __future__ import annotations

import shutil

from fmnist import data
from sweeps.cli import main


def test_data_command_verifies_the_files(data_root, capsys):
    assert main(["data", "--data-dir", str(data_root), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert f"data directory: {data_root}" in out
    assert out.count("ok ") == 4
    assert "verified: 60,000 training and 10,000 test images, 10 classes" in out


def test_data_command_corrupt_file_exits_2_with_one_line(data_root, tmp_path, capsys):
    for name in data.FILES:
        shutil.copy(data_root / name, tmp_path / name)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    assert main(["data", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("fmnist-sweep data: error: ")
    assert "train-labels-idx1-ubyte.gz: md5 must be 25c81989df183df01b3e8a0aad5dffbe" in err[0]


def test_data_command_missing_without_download_exits_2(tmp_path, capsys):
    assert main(["data", "--data-dir", str(tmp_path), "--no-download"]) == 2
    assert "run `fmnist-sweep data` to download them" in capsys.readouterr().err
