"""Images and image folders: every Pillow mode converted as a person sees it, any bytes give a DataError,
and a folder dataset never reads outside its folder; every bad row is named with its file and line."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mmdiff_lab.data import DataError, ImageCaptionFolder, load_image
from mmdiff_lab.data.base import to_rgb


def _image(mode: str, value, size=(6, 4)) -> Image.Image:
    if mode.startswith("I;16"):
        dtype = ">u2" if mode == "I;16B" else "<u2"
        return Image.frombytes(mode, size, np.full(size[::-1], value, dtype=dtype).tobytes())
    if mode == "P":
        img = Image.new("P", size, 0)
        img.putpalette([*value, 255, 0, 0] + [0] * 762)
        return img
    return Image.new(mode, size, value)


#: (mode, the value every pixel holds, the RGB a person sees): mid-grey where the mode allows.
MODES = [
    ("I;16", 32768, (128, 128, 128)),  # 16-bit mid-grey, which a plain conversion clips to white
    ("I;16B", 32768, (128, 128, 128)),
    ("I;16L", 32768, (128, 128, 128)),
    ("I;16N", 32768, (128, 128, 128)),
    ("I;16", 65535, (255, 255, 255)),
    ("I;16", 257 * 40, (40, 40, 40)),
    ("I", 32768, (128, 128, 128)),  # what a 16-bit file decodes to in a 32-bit mode
    ("F", 0.5, (128, 128, 128)),
    ("1", 1, (255, 255, 255)),
    ("1", 0, (0, 0, 0)),
    ("L", 128, (128, 128, 128)),
    ("LA", (128, 255), (128, 128, 128)),
    ("LA", (200, 0), (0, 0, 0)),  # fully transparent: the stated black background
    ("LA", (200, 128), (100, 100, 100)),
    ("P", (128, 128, 128), (128, 128, 128)),
    ("PA", (0, 0), (0, 0, 0)),
    ("RGB", (128, 128, 128), (128, 128, 128)),
    ("RGBA", (255, 0, 0, 128), (128, 0, 0)),  # half-transparent red over black
    ("RGBA", (10, 200, 30, 255), (10, 200, 30)),
    ("RGBa", (128, 0, 0, 128), (128, 0, 0)),  # premultiplied: the same half-transparent red
    ("RGBX", (10, 20, 30, 0), (10, 20, 30)),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ("CMYK", (0, 0, 0, 127), (128, 128, 128)),
    ("YCbCr", (128, 128, 128), (128, 128, 128)),
    ("HSV", (0, 0, 128), (128, 128, 128)),
    ("HSV", (0, 255, 255), (255, 0, 0)),
    ("LAB", (128, 128, 128), (119, 119, 119)),  # L* = 50 is sRGB 119
]


def _encoded(img: Image.Image) -> bytes | None:
    """The image as a file's bytes, in the first format that stores its mode, or None when none does."""
    for fmt in ("PNG", "TIFF"):
        buf = io.BytesIO()
        try:
            img.save(buf, format=fmt)
        except (OSError, ValueError, KeyError):
            continue
        if Image.open(io.BytesIO(buf.getvalue())).mode == img.mode:
            return buf.getvalue()
    return None


@pytest.mark.parametrize(("mode", "value", "seen"), MODES, ids=[f"{m}={v}" for m, v, _ in MODES])
def test_every_mode_becomes_what_a_person_sees(mode, value, seen):
    img = _image(mode, value)
    assert img.mode == mode
    got = np.asarray(to_rgb(img))
    assert got.shape == (4, 6, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - seen).max() <= 1, (mode, got[0, 0])
    data = _encoded(img)
    if data is not None:  # and through a file, the way a folder dataset or an upload reads it
        loaded = load_image(data, size=4)
        assert np.abs(loaded.astype(int) - seen).max() <= 1, (mode, loaded[0, 0])


def test_a_palette_with_a_transparent_entry_shows_the_background():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (2, 0, 4, 4))
    img.info["transparency"] = 0
    got = load_image(_encoded(img), size=4)
    assert (got[:, :2] == 0).all() and (got[:, 2:] == (255, 0, 0)).all()


def test_deep_modes_beyond_their_usual_range_are_stretched_not_clipped():
    ramp = np.linspace(-1000, 3000, 24, dtype=np.float32).reshape(4, 6)
    for img in (Image.fromarray(ramp, "F"), Image.fromarray(ramp.astype(np.int32) * 100, "I")):
        got = np.asarray(to_rgb(img))[..., 0]
        assert got.min() == 0 and got.max() == 255 and (np.diff(got.ravel().astype(int)) >= 0).all()
    flat = Image.fromarray(np.full((4, 6), np.nan, dtype=np.float32), "F")
    assert (np.asarray(to_rgb(flat)) == 0).all()


def test_a_16_bit_png_in_a_folder_dataset_is_mid_grey(tmp_path):
    Image.frombytes("I;16", (8, 8), np.full((8, 8), 32768, dtype="<u2").tobytes()).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "deep.png", "text": "a grey square"}\n')
    assert np.abs(ImageCaptionFolder(tmp_path, size=8)[0].image.astype(int) - 128).max() <= 1


def test_an_animated_image_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((200, 0, 0), (0, 0, 200), (0, 200, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 3
    got = load_image(buf.getvalue(), size=8)
    assert got[..., 0].min() > 150 and got[..., 2].max() < 50


def _png(width: int, height: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    bomb = _png(100_000, 100_000, b"\x00" * 1000)  # 10^10 pixels claimed in a file of a few hundred bytes
    assert len(bomb) < 1000
    with pytest.raises(DataError, match="uploaded file: too large to load"):
        load_image(bomb)


def test_an_image_over_the_pixel_limit_is_refused(monkeypatch, tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4,096 pixels: over the limit, under twice it
    with pytest.raises(DataError, match="big.png: too large to load"):
        load_image(tmp_path / "big.png")


def test_an_empty_file_is_called_empty(tmp_path):
    (tmp_path / "blank.png").write_bytes(b"")
    with pytest.raises(DataError, match="blank.png: the file is empty"):
        load_image(tmp_path / "blank.png")


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="is a folder, not an image file"):
        load_image(tmp_path)
    with pytest.raises(DataError, match="gone.png: file not found"):
        load_image(tmp_path / "gone.png")


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM",
                                                              b"\xff\xd8\xff", b"II*\x00", b"P6\n"]))
def test_random_bytes_give_a_data_error_and_nothing_else(data, prefix):
    try:
        img = load_image(prefix + data)
    except DataError as e:
        assert str(e).startswith("uploaded file: ")
    else:
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8


# ---- folder datasets -------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8), (90, 90, 90)).save(root / name)
    Image.new("RGB", (8, 8), (250, 0, 0)).save(tmp_path / "outside.png")
    return root


def _jsonl(root, *lines: str) -> None:
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")


BAD_ROWS = [
    ('{"file_name": "../outside.png", "text": "a red square"}', r"metadata.jsonl:1: \.\./outside.png lies outside"),
    ('{"file_name": "/etc/hostname", "text": "a host"}', r"metadata.jsonl:1: /etc/hostname lies outside"),
    ('{"file_name": "a.png/../../outside.png", "text": "x"}', "metadata.jsonl:1: .* lies outside"),
    ('{"file_name": "", "text": "nothing"}', "metadata.jsonl:1: no file_name"),
    ('{"file_name": "   ", "text": "blank"}', "metadata.jsonl:1: no file_name"),
    ('{"text": "no file"}', "metadata.jsonl:1: no file_name"),
    ('{"file_name": 7, "text": "a number"}', "metadata.jsonl:1: file_name must be a string, got int 7"),
    ('{"file_name": ["a.png"], "text": "a list"}', "metadata.jsonl:1: file_name must be a string, got list"),
    ('{"file_name": "a.png", "text": ["a", "list"]}', "metadata.jsonl:1: the caption of a.png must be a string, got list"),
    ('{"file_name": "a.png", "text": 5}', "metadata.jsonl:1: the caption of a.png must be a string, got int 5"),
    ('{"file_name": "a.png", "text": {"en": "x"}}', "metadata.jsonl:1: the caption of a.png must be a string"),
    ('{"file_name": "a.png", "text": "   "}', "metadata.jsonl:1: no caption"),
    ('{"file_name": "a.png"}', "metadata.jsonl:1: no caption"),
    ('["a.png", "text"]', "metadata.jsonl:1: expected a JSON object"),
    ('{"file_name": "a\\u0000.png", "text": "nul"}', "metadata.jsonl:1: unusable file_name"),
    ('{"file_name": ".", "text": "the folder itself"}', r"metadata.jsonl:1: \. is a folder, not an image file"),
    ('{"file_name": "gone.png", "text": "x"}', r"metadata.jsonl:1: caption row for gone.png, but .* does not exist"),
]


@pytest.mark.parametrize(("line", "message"), BAD_ROWS, ids=[line for line, _ in BAD_ROWS])
def test_a_bad_jsonl_row_is_named(folder, line, message):
    _jsonl(folder, line)
    with pytest.raises(DataError, match=message):
        ImageCaptionFolder(folder)


def test_a_symlink_pointing_out_is_refused(folder):
    (folder / "link.png").symlink_to(folder.parent / "outside.png")
    _jsonl(folder, '{"file_name": "a.png", "text": "ok"}', '{"file_name": "link.png", "text": "a link out"}')
    with pytest.raises(DataError, match="metadata.jsonl:2: link.png lies outside"):
        ImageCaptionFolder(folder)
    (folder / "inner.png").symlink_to(folder / "b.png")  # a link that stays inside is fine
    _jsonl(folder, '{"file_name": "inner.png", "text": "a link in"}')
    assert ImageCaptionFolder(folder)[0].image.shape == (32, 32, 3)


def test_a_symlink_swapped_after_opening_is_refused_when_read(folder):
    (folder / "link.png").symlink_to(folder / "a.png")
    _jsonl(folder, '{"file_name": "link.png", "text": "a link"}')
    dataset = ImageCaptionFolder(folder)
    (folder / "link.png").unlink()
    (folder / "link.png").symlink_to(folder.parent / "outside.png")
    with pytest.raises(DataError, match="now lies outside"):
        dataset[0]


def test_metadata_that_links_outside_is_refused(folder):
    (folder.parent / "elsewhere.jsonl").write_text('{"file_name": "a.png", "text": "x"}\n')
    (folder / "metadata.jsonl").symlink_to(folder.parent / "elsewhere.jsonl")
    with pytest.raises(DataError, match="metadata.jsonl: links outside"):
        ImageCaptionFolder(folder)


def test_a_bad_csv_is_named(folder):
    csv = folder / "captions.csv"
    for text, message in [
        ("file_name\na.png\n", "the header must name a file_name column and a caption"),
        ("caption\na square\n", "the header must name a file_name column"),
        ("", "no header"),
        ("file_name,caption\n../outside.png,a red square\n", r"captions.csv:2: \.\./outside.png lies outside"),
        ("file_name,caption\na.png,ok\nb.png\n", "captions.csv:3: no caption"),
        ("file_name,caption\na.png,ok\n,orphan caption\n", "captions.csv:3: no file_name"),
        ("file_name,caption\n", "captions.csv: no rows"),
        ('file_name,caption\na.png,"unclosed\n', "captions.csv:2: malformed CSV"),
        # unquoted, the comma would silently cut the caption to "a red"
        ("file_name,caption\na.png,ok\nb.png,a red, blue square\n", "captions.csv:3: 3 fields, but the header names 2; "
                                                                   "put a caption holding a comma in double quotes"),
    ]:
        csv.write_text(text)
        with pytest.raises(DataError, match=message):
            ImageCaptionFolder(folder)


def test_blank_lines_and_a_byte_order_mark_are_fine(folder):
    (folder / "metadata.jsonl").write_bytes(
        b'\xef\xbb\xbf{"file_name": "a.png", "text": "first"}\n\n   \n{"file_name": "b.png", "text": "second"}\n\n')
    assert ImageCaptionFolder(folder).captions() == ["first", "second"]
    (folder / "metadata.jsonl").unlink()
    (folder / "captions.csv").write_bytes(b"\xef\xbb\xbffile_name,text\r\na.png,first\r\n\r\nb.png,second\r\n")
    assert ImageCaptionFolder(folder).captions() == ["first", "second"]


def test_an_image_listed_twice_is_named_with_both_lines(folder):
    (folder / "sub").mkdir()
    _jsonl(folder, '{"file_name": "a.png", "text": "one"}', '{"file_name": "b.png", "text": "two"}',
           '{"file_name": "sub/../a.png", "text": "three"}')
    with pytest.raises(DataError, match=r"metadata.jsonl:3: a.png is listed again \(first at .*metadata.jsonl:1\)"):
        ImageCaptionFolder(folder)


def test_metadata_that_is_not_utf8_names_the_line(folder):
    (folder / "metadata.jsonl").write_bytes(b'{"file_name": "a.png", "text": "ok"}\n'
                                            b'{"file_name": "b.png", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"metadata.jsonl:2: not UTF-8 text \(byte 0xe9\)"):
        ImageCaptionFolder(folder)


def test_an_empty_folder_empty_metadata_or_two_metadata_files(folder, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no metadata.jsonl or captions.csv"):
        ImageCaptionFolder(tmp_path / "empty")
    (folder / "metadata.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="metadata.jsonl: no rows"):
        ImageCaptionFolder(folder)
    (folder / "captions.csv").write_text("file_name,text\na.png,x\n")
    with pytest.raises(DataError, match="both metadata.jsonl and captions.csv"):
        ImageCaptionFolder(folder)


def test_good_rows_still_load(folder):
    rows = [{"file_name": "a.png", "text": "A Grey  Square"}, {"file_name": "sub/../b.png", "caption": "another"}]
    (folder / "sub").mkdir()
    _jsonl(folder, *(json.dumps(r) for r in rows))
    dataset = ImageCaptionFolder(folder)
    assert dataset.captions() == ["a grey square", "another"] and len(dataset) == 2
    assert (dataset[1].image == 90).all()
