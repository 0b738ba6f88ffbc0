"""A user's own image-caption folder: Hugging Face's image-folder ``metadata.jsonl``, or a ``captions.csv``.

    my_images/
        metadata.jsonl     {"file_name": "cat.png", "text": "a cat on a mat"}  one JSON object a line
        cat.png ...
    or
        captions.csv       file_name,caption   (a "text" column works too)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .base import DataError, Example, load_image

CAPTION_KEYS = ("text", "caption")


class ImageCaptionFolder:
    """Images with captions from a folder; images are resized to size x size RGB when read.

    Every row is checked when the folder is opened: a malformed row, a row whose image file is missing or lies
    outside the folder (``../x.png``, an absolute path, a symlink pointing out), or an image listed twice is a
    DataError naming the file and line. An unreadable image is reported, naming it, when it is read.
    """

    name = "folder"

    def __init__(self, path: str | Path, size: int = 32):
        self.root = Path(path)
        self.image_size = size
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder")
        jsonl, csv_path = self.root / "metadata.jsonl", self.root / "captions.csv"
        if jsonl.exists() and csv_path.exists():
            raise DataError(f"{self.root}: both metadata.jsonl and captions.csv; keep one, so the captions are not ambiguous")
        if not jsonl.exists() and not csv_path.exists():
            raise DataError(
                f"{self.root}: no metadata.jsonl or captions.csv; add one with a file_name and a text (caption) per image"
            )
        metadata = jsonl if jsonl.exists() else csv_path
        if not self._inside(metadata):
            raise DataError(f"{metadata}: links outside {self.root}; a dataset reads only files inside its own folder")
        text = self._decode(metadata)
        rows = list(self._read_jsonl(metadata, text) if metadata == jsonl else self._read_csv(metadata, text))
        if not rows:
            raise DataError(f"{metadata}: no rows")
        # One row per image: the contrastive loss would make an image's two captions each other's negatives.
        seen: dict[Path, str] = {}
        for image, _, where in rows:
            if (same := image.resolve()) in seen:  # resolved: "a.png", "./a.png" and a link to it are one image
                raise DataError(f"{where}: {image.name} is listed again (first at {seen[same]}); give each image one row")
            seen[same] = where
        self.items: list[tuple[Path, str]] = [(image, caption) for image, caption, _ in rows]

    def _inside(self, path: Path) -> bool:
        """Whether ``path``, symlinks followed, lies inside the folder."""
        return path.resolve().is_relative_to(self.root.resolve())

    @staticmethod
    def _decode(path: Path) -> str:
        data = path.read_bytes()
        try:
            return data.decode("utf-8-sig")  # -sig: a byte-order mark, as some editors write, is not part of line 1
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise DataError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x}); save the file as UTF-8") from None

    def _row(self, row: dict, where: str) -> tuple[Path, str, str]:
        name = row.get("file_name")
        if name is not None and not isinstance(name, str):
            raise DataError(f"{where}: file_name must be a string, got {type(name).__name__} {name!r}")
        if not name or not name.strip():
            raise DataError(f"{where}: no file_name")
        caption = next((row[k] for k in CAPTION_KEYS if row.get(k)), None)
        if caption is not None and not isinstance(caption, str):
            raise DataError(f"{where}: the caption of {name} must be a string, got {type(caption).__name__} {caption!r}")
        if not caption or not caption.strip():
            raise DataError(f"{where}: no caption (a 'text' or 'caption' field) for {name}")
        try:
            image = self.root / name
            outside = Path(name).is_absolute() or not self._inside(image)
        except (ValueError, OSError) as e:  # a NUL byte in the name, a symlink loop
            raise DataError(f"{where}: unusable file_name {name!r} ({e})") from None
        if outside:
            raise DataError(f"{where}: {name} lies outside {self.root}; a dataset reads only files inside its own folder")
        if image.is_dir():
            raise DataError(f"{where}: {name} is a folder, not an image file")
        if not image.is_file():
            raise DataError(f"{where}: caption row for {name}, but {image} does not exist")
        return image, " ".join(caption.lower().split()), where

    def _read_jsonl(self, path: Path, text: str):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object with file_name and text")
            yield self._row(row, f"{path}:{n}")

    def _read_csv(self, path: Path, text: str):
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)  # an unclosed quote is an error
        fields = reader.fieldnames or []
        if "file_name" not in fields or not any(k in fields for k in CAPTION_KEYS):
            raise DataError(f"{path}: the header must name a file_name column and a caption (or text) column, "
                            f"got {', '.join(map(repr, fields)) or 'no header'}")
        try:
            for row in reader:
                if None in row:  # DictReader's key for fields beyond the header: an unquoted comma cut a caption
                    raise DataError(f"{path}:{reader.line_num}: {len(fields) + len(row[None])} fields, but the header "
                                    f"names {len(fields)}; put a caption holding a comma in double quotes")
                yield self._row(row, f"{path}:{reader.line_num}")
        except csv.Error as e:  # raised inside the row after the last one read
            raise DataError(f"{path}:{reader.line_num + 1}: malformed CSV ({e})") from None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Example:
        path, caption = self.items[i]
        if not self._inside(path):  # a symlink changed since the folder was opened
            raise DataError(f"{path}: now lies outside {self.root}; a dataset reads only files inside its own folder")
        return Example(load_image(path, self.image_size), caption)

    def captions(self) -> list[str]:
        return [caption for _, caption in self.items]
