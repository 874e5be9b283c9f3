"""`fmnist-sweep predict`'s pure pieces: top-k, the table, JSON, what a --model names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sweeps import predict, tracking

pytestmark = pytest.mark.unit  # the fast tier: `make test-fast`


def _pred(name: str, hot: int) -> predict.Prediction:
    probs = np.full(10, 0.02)
    probs[hot], probs[(hot + 1) % 10] = 0.7, 0.14
    return predict.Prediction(name, np.zeros((4, 4, 3), np.uint8), np.zeros((28, 28), np.uint8),
                              probs, predict.top_k(probs))


def test_top_k_orders_the_classes_by_probability():
    top = _pred("a.jpg", 7).top
    assert [c for c, _ in top][:2] == ["Sneaker", "Bag"] and len(top) == 3
    assert top[0][1] == pytest.approx(0.7) and top[1][1] == pytest.approx(0.14)


def test_the_table_has_a_row_per_image_and_json_the_same_answers():
    preds = [_pred("shoe.jpg", 7), _pred("photos/coat.png", 4)]
    lines = predict.table(preds).splitlines()
    assert lines[0].split() == ["image", "#1", "#2", "#3"]
    assert lines[1].split()[:3] == ["shoe.jpg", "Sneaker", "70.0%"]
    assert lines[2].split()[:3] == ["photos/coat.png", "Coat", "70.0%"]
    got = json.loads(predict.as_json(preds))
    assert [g["image"] for g in got] == ["shoe.jpg", "photos/coat.png"]
    assert got[1]["top"][0] == {"class": "Coat", "probability": 0.7}


def test_a_model_uri_and_a_keras_file_are_taken_as_they_are(tmp_path):
    st = tracking.store(tmp_path / "store")
    assert predict.model_source("models:/fmnist-x@champion", st) == "models:/fmnist-x@champion"
    (tmp_path / "m.keras").write_bytes(b"PK")
    assert predict.model_source(str(tmp_path / "m.keras"), st) == str(tmp_path / "m.keras")
    with pytest.raises(predict.PredictError, match="no such file"):
        predict.model_source(str(tmp_path / "gone.keras"), st)
    with pytest.raises(predict.PredictError, match="no store at"):
        predict.model_source("somesweep", st)
    assert not (tmp_path / "store").exists()  # nothing created to find out


def test_a_folder_gives_its_images_sorted_and_a_link_out_of_it_is_refused(tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("b.JPG", "a.png", "notes.txt", "sub/c.png"):
        (photos / name).write_bytes(b"x")
    (photos / "inside.png").symlink_to(photos / "a.png")  # a link within the folder: read
    assert predict.image_paths([str(photos), "other.jpg"]) == [
        str(photos / "a.png"), str(photos / "b.JPG"), str(photos / "inside.png"), "other.jpg"]
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"x")
    (photos / "z.png").symlink_to(secret)
    with pytest.raises(predict.PredictError) as e:
        predict.image_paths([str(photos)])
    assert str(e.value) == (f"{photos / 'z.png'}: a link out of the folder {photos} "
                            f"(to {secret}); refused")
    (tmp_path / "empty").mkdir()
    with pytest.raises(predict.PredictError, match="empty: no image files"):
        predict.image_paths([str(tmp_path / "empty")])
