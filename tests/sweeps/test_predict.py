"""`fmnist-sweep predict` end to end: a real trained model on made photos and a made video,
a small sweep's registered model (tests/conftest.py's finished_store) found by its name, its URI
and served by `mlflow models serve`, and each bad input's one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist import synth
from sweeps.cli import main
from tests.sweeps.helpers import free_port, wait_until_answers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, data_root):
    """A lenet5 trained for 3 epochs on the 48,000 training images (about 87% val/acc), as a
    .keras file. (On 12,000 images it is less sure of itself, and a photo's small departures
    from its original flip more of its answers.)"""
    from fmnist import data, train

    split = data.load_split(data_root, seed=0)
    result = train.train("lenet5", split, {"max_epochs": 3, "seed": 0})
    path = tmp_path_factory.mktemp("model") / "lenet5.keras"
    result.model.save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory, arrays):
    """Three made product photos of test images, as JPEG files, and the images' labels."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    paths = []
    for i in range(3):
        paths.append(folder / f"photo{i}.jpg")
        Image.fromarray(synth.product_photo(arrays[2][i], rng)).save(paths[-1])
    return paths


def test_made_photos_are_classified_as_the_model_classifies_their_originals(model_file, arrays):
    from fmnist import photo
    from fmnist.runtime import keras

    model = keras.models.load_model(model_file, compile=False)
    x = arrays[2][:100]
    rng = np.random.default_rng(0)
    seen = np.stack([photo.convert(synth.product_photo(img, rng)) for img in x])
    same = (model.predict(seen, verbose=0).argmax(1) == model.predict(x, verbose=0).argmax(1))
    assert same.sum() >= 90, same.sum()


def test_predict_prints_the_top_3_as_a_table_and_as_json_and_writes_a_sheet(
        model_file, photos, tmp_path, capsys):
    assert main(["predict", *map(str, photos), "--model", str(model_file),
                 "--show", str(tmp_path / "sheet.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["image", "#1", "#2", "#3"]
    assert [line.split()[0] for line in out[1:4]] == [str(p) for p in photos]
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width > 3 * 28 and sheet.height >= 3 * 28

    assert main(["predict", str(photos[0]), "--model", str(model_file), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    top = got[0]["top"]
    assert got[0]["image"] == str(photos[0]) and len(top) == 3
    assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    assert 0.0 < sum(t["probability"] for t in top) <= 1.0 + 1e-6


def _green(frame_bgr: np.ndarray) -> np.ndarray:
    return ((frame_bgr[:, :, 0] < 40) & (frame_bgr[:, :, 1] > 120)
            & (frame_bgr[:, :, 2] < 40))


def test_predict_video_writes_a_playable_video_with_labelled_boxes(model_file, arrays,
                                                                   tmp_path, capsys):
    import cv2

    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    truth = synth.write_video(src, arrays[2][[1, 2, 9]], np.random.default_rng(0), frames=30)
    assert main(["predict", "--video", str(src), "--out", str(out), "--model",
                 str(model_file)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"{out}: 30 frames 640x480") and "frames/s" in line
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 30 and frames[0].shape == (480, 640, 3)
    boxed = [i for i, f in enumerate(frames) if _green(f).sum() > 200]
    assert boxed and all(truth[i] for i in boxed)  # boxes drawn, on frames with garments


def _fails(capsys, argv: list[str]) -> str:
    capsys.readouterr()  # what came before it
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _bomb(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width`` x ``height`` pixels, with one tiny compressed row:
    a decompression bomb (about 30 GB once decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_each_bad_input_gets_one_line_and_exit_2_and_writes_nothing(model_file, photos,
                                                                    tmp_path, capsys):
    (tmp_path / "notes.jpg").write_text("not a picture")
    (tmp_path / "clip.mp4").write_text("not a video")
    whole = photos[0].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[:len(whole) // 2])  # a truncated JPEG
    _bomb(tmp_path / "bomb.png", 100_000, 100_000)  # past Pillow's own limit
    _bomb(tmp_path / "big.png", 10_000, 10_000)  # within it (Pillow only warns): past ours
    (tmp_path / "given").mkdir()
    (tmp_path / "given" / "out.png").symlink_to(photos[0])  # a link out of the folder given
    store = tmp_path / "store"
    model = ["--model", str(model_file), "--store", str(store)]
    cases = [
        (["predict", str(tmp_path / "given"), *model],
         f"out.png: a link out of the folder {tmp_path / 'given'} (to {photos[0].resolve()})"),
        (["predict", str(tmp_path / "notes.jpg"), *model], "notes.jpg: not an image"),
        (["predict", str(tmp_path / "absent.png"), *model], "absent.png: no such file"),
        (["predict", str(tmp_path / "cut.jpg"), *model],
         "cut.jpg: cannot be read (image file is truncated"),
        (["predict", str(tmp_path / "bomb.png"), *model],
         "bomb.png: refused as a decompression bomb (Image size (10000000000 pixels)"),
        (["predict", str(tmp_path / "big.png"), *model],
         "big.png: declares 10,000 x 10,000 pixels, more than the 64,000,000 a photo may"),
        (["predict", "--video", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "o.mp4"),
          *model], "clip.mp4: not a video"),
        (["predict", str(photos[0]), "--model", str(tmp_path / "none.keras")],
         "none.keras: no such file"),
        (["predict", str(photos[0]), "--model", str(tmp_path / "notes.jpg")],
         "notes.jpg: not a Keras model file"),
        (["predict", str(photos[0]), "--model", "runs:/0123abcd/model", "--store", str(store)],
         "runs:/0123abcd/model: no such model"),
        (["predict", str(photos[0]), "--model", "nosweep", "--store", str(store)],
         "nosweep: not a .keras file, a model URI or a sweep"),
    ]
    for argv, expected in cases:
        assert expected in _fails(capsys, argv), argv
    assert not store.exists() and not (tmp_path / "o.mp4").exists()


def test_the_final_model_is_registered_as_champion_and_found_by_the_sweeps_name(
        finished_store, photos, capsys):
    # tests/conftest.py's rep-lenet5, a finished sweep with its final model registered; the
    # fixture registers the newer version checked at the end (the store is shared, and changed
    # only there)
    store, name = finished_store.root, finished_store.lenet5
    registered = f"fmnist-{name}"
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    import mlflow

    version = finished_store.champion  # as the sweep registered it
    assert str(version.version) == "1"
    parent = c.get_run(version.run_id)
    assert parent.data.tags["fmnist.role"] == "parent"
    assert parent.data.tags["fmnist.model_uri"] == f"models:/{registered}/1"
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    info = mlflow.models.get_model_info(f"models:/{registered}@champion")
    assert info.signature is not None and info.saved_input_example_info is not None
    capsys.readouterr()
    by_name, by_uri = [], []
    for model, out in ((name, by_name), (f"models:/{registered}@champion", by_uri)):
        assert main(["predict", str(photos[0]), "--json", "--model", model,
                     "--store", str(store)]) == 0
        out.append(json.loads(capsys.readouterr().out)[0]["top"])
    assert by_name == by_uri

    # a newer final model of the sweep's name: a new version, and the alias moves to it
    assert finished_store.newer == "2"
    assert str(finished_store.champion_after.version) == "2"
    assert str(c.get_model_version_by_alias(registered, "champion").version) == "2"


def test_a_sweep_with_no_final_model_gets_one_line(tmp_path, photos, capsys):
    from sweeps import tracking

    st = tracking.store(tmp_path / "store")
    c = tracking.client(st)
    exp = tracking.experiment_id(st, "unfinished")
    c.create_run(exp, tags={"fmnist.role": "parent"})
    line = _fails(capsys, ["predict", str(photos[0]), "--model", "unfinished",
                           "--store", str(st.root)])
    assert "unfinished: the sweep has no final model yet" in line


def test_mlflow_models_serve_answers_a_converted_photo_with_its_class(finished_store, photos,
                                                                     capsys):
    from fmnist import photo
    from sweeps import predict

    store, name = finished_store.root, finished_store.lenet5  # tests/conftest.py's rep-lenet5
    assert main(["predict", str(photos[1]), "--json", "--model", name,
                 "--store", str(store)]) == 0
    expected = json.loads(capsys.readouterr().out)[0]["top"][0]["class"]
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # the server's uvicorn is found on PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    mlflow_cli = str(Path(bin_dir) / "mlflow")
    server = subprocess.Popen([mlflow_cli, "models", "serve", "-m",
                               f"models:/fmnist-{name}@champion", "--env-manager", "local",
                               "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{base}/ping", server, 180)
        x = photo.convert(predict.read_image(photos[1]))
        body = json.dumps({"inputs": x[None].tolist()}).encode()
        req = urllib.request.Request(f"{base}/invocations", body,
                                     {"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
        probs = np.asarray(answer["predictions"])
        from fmnist.data import CLASS_NAMES

        assert probs.shape == (1, 10) and CLASS_NAMES[int(probs[0].argmax())] == expected
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
