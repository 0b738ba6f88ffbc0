"""A user's own image-caption folder: Hugging Face's image-folder ``metadata.jsonl``, or a ``captions.csv``.

    my_images/
        metadata.jsonl     {"file_name": "cat.png", "text": "a cat on a mat"}  one JSON object a line
        cat.png ...
    or
        captions.csv       file_name,caption   (a "text" column works too)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .base import DataError, Example, load_image

CAPTION_KEYS = ("text", "caption")


class ImageCaptionFolder:
    """Images with captions from a folder; images are resized to size x size RGB when read.

    Every row is checked when the folder is opened: a malformed row, or a row whose image file is missing,
    is a DataError naming the file and line. An unreadable image is reported, naming it, when it is read.
    """

    name = "folder"

    def __init__(self, path: str | Path, size: int = 32):
        self.root = Path(path)
        self.image_size = size
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder")
        jsonl, csv_path = self.root / "metadata.jsonl", self.root / "captions.csv"
        if jsonl.exists():
            rows = list(self._read_jsonl(jsonl))
        elif csv_path.exists():
            rows = list(self._read_csv(csv_path))
        else:
            raise DataError(
                f"{self.root}: no metadata.jsonl or captions.csv; add one with a file_name and a text (caption) per image"
            )
        if not rows:
            raise DataError(f"{jsonl if jsonl.exists() else csv_path}: no rows")
        self.items: list[tuple[Path, str]] = rows

    def _row(self, row: dict, where: str) -> tuple[Path, str]:
        name = row.get("file_name")
        caption = next((row[k] for k in CAPTION_KEYS if row.get(k)), None)
        if not name:
            raise DataError(f"{where}: no file_name")
        if not caption or not str(caption).strip():
            raise DataError(f"{where}: no caption (a 'text' or 'caption' field) for {name}")
        image = self.root / name
        if not image.is_file():
            raise DataError(f"{where}: caption row for {name}, but {image} does not exist")
        return image, " ".join(str(caption).lower().split())

    def _read_jsonl(self, path: Path):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object with file_name and text")
            yield self._row(row, f"{path}:{n}")

    def _read_csv(self, path: Path):
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "file_name" not in reader.fieldnames:
                raise DataError(f"{path}: the header must name a file_name column and a caption (or text) column")
            for n, row in enumerate(reader, start=2):
                yield self._row(row, f"{path}:{n}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Example:
        path, caption = self.items[i]
        return Example(load_image(path, self.image_size), caption)

    def captions(self) -> list[str]:
        return [caption for _, caption in self.items]
