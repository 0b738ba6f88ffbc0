"""A user's image-caption folder: both metadata conventions, and an error naming the file for each fault."""

import json

import numpy as np
import pytest
from PIL import Image

from mmdiff_lab.data import DataError, ImageCaptionFolder, load_image, load_world


def _write_images(folder, names):
    for k, name in enumerate(names):
        Image.fromarray(np.full((48, 64, 3), 40 * k, dtype=np.uint8)).save(folder / name)


def test_metadata_jsonl(tmp_path):
    _write_images(tmp_path, ["a.png", "b.jpg"])
    rows = [{"file_name": "a.png", "text": "A Dark  Square"}, {"file_name": "b.jpg", "caption": "a grey square"}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    folder = ImageCaptionFolder(tmp_path)
    assert len(folder) == 2 and folder.captions() == ["a dark square", "a grey square"]
    assert folder[1].image.shape == (32, 32, 3)
    assert load_world(f"folder:{tmp_path}").captions() == folder.captions()


def test_captions_csv(tmp_path):
    _write_images(tmp_path, ["x.png"])
    (tmp_path / "captions.csv").write_text('file_name,caption\nx.png,"a square, dark"\n')
    assert ImageCaptionFolder(tmp_path, size=16)[0].image.shape == (16, 16, 3)


def test_missing_image_names_file_and_line(tmp_path):
    _write_images(tmp_path, ["a.png"])
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "ok"}\n{"file_name": "gone.png", "text": "no"}\n')
    with pytest.raises(DataError, match=r"metadata.jsonl:2: caption row for gone.png, but .*gone.png does not exist"):
        ImageCaptionFolder(tmp_path)


def test_malformed_rows(tmp_path):
    _write_images(tmp_path, ["a.png"])
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "ok"}\n{"file_name": \n')
    with pytest.raises(DataError, match="metadata.jsonl:2: not valid JSON"):
        ImageCaptionFolder(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png"}\n')
    with pytest.raises(DataError, match="no caption"):
        ImageCaptionFolder(tmp_path)


def test_csv_without_file_name_column(tmp_path):
    (tmp_path / "captions.csv").write_text("image,caption\nx.png,a square\n")
    with pytest.raises(DataError, match="captions.csv: the header must name a file_name"):
        ImageCaptionFolder(tmp_path)


def test_no_metadata_or_no_folder(tmp_path):
    with pytest.raises(DataError, match="no metadata.jsonl or captions.csv"):
        ImageCaptionFolder(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        ImageCaptionFolder(tmp_path / "nope")


def test_unreadable_image_is_named_when_read(tmp_path):
    (tmp_path / "notes.png").write_text("this is text, not a PNG")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "notes.png", "text": "a note"}\n')
    folder = ImageCaptionFolder(tmp_path)
    with pytest.raises(DataError, match="notes.png: not an image file"):
        folder[0]


def test_truncated_image_is_named(tmp_path):
    _write_images(tmp_path, ["cut.png"])
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.png: unreadable image"):
        load_image(tmp_path / "cut.png")


def test_load_image_converts_and_crops(png_bytes):
    img = load_image(png_bytes, 8)
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    # centre crop of a 40x24 image keeps columns 8..31: left half red only, right half red + green
    assert img[:, 0, 1].max() == 0 and img[:, -1, 1].min() > 100
    with pytest.raises(DataError, match="uploaded file: the file is empty"):
        load_image(b"")
