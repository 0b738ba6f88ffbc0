"""Shared fixtures: small images written to disk, and the repository's paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture
def png_bytes() -> bytes:
    """A 40x24 RGBA PNG: not square and not RGB, so loading must crop and convert it."""
    import io

    rgba = np.zeros((24, 40, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[:, 20:, 1] = 150
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()
