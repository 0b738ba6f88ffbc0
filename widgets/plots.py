"""Fast pictures for widgets: PNG encoding, and matplotlib figures drawn once and then marked up in numpy.

A slider that redraws a matplotlib figure on every move spends ~100 ms in the drawing. Here the axes,
ticks and static curves are rendered once into an RGBA array (``StaticFigure``); what moves with the
slider (a marker line, histogram bars) is painted into a copy of that array in data coordinates.
"""

from __future__ import annotations

import html
import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw


def png(image: np.ndarray, scale: int = 1) -> bytes:
    """(H, W, 3|4) uint8 -> PNG bytes, enlarged ``scale`` times with nearest-neighbour pixels."""
    img = Image.fromarray(image)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # fast; these images are tiny anyway
    return buf.getvalue()


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """A whole matplotlib figure as PNG bytes (for pictures drawn once and cached)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def error_html(text: str) -> str:
    """An error line for a view; empty when there is no error."""
    return f"<span style='color:#b00020'>⚠ {html.escape(text, quote=False)}</span>" if text else ""


def warning_html(text: str) -> str:
    """A warning line for a view (the run went ahead, but not quite as asked); empty when there is none."""
    return f"<span style='color:#8a5a00'>⚠ {html.escape(text, quote=False)}</span>" if text else ""


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG's header, or None for empty or non-PNG bytes."""
    if len(data) < 24 or not data.startswith(b"\x89PNG"):
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the IHDR chunk


STALE_LABEL = "STALE"


def stale_png(data: bytes) -> bytes:
    """The same picture faded towards white under a red band saying STALE: it no longer matches the inputs."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    faded = Image.blend(img, Image.new("RGB", img.size, "white"), 0.6)
    draw = ImageDraw.Draw(faded)
    draw.rectangle((0, 0, img.width - 1, 12), fill=(176, 0, 32))
    draw.text((3, 1), STALE_LABEL, fill=(255, 255, 255))  # PIL's default font: 11 px, ASCII
    return png(np.asarray(faded))


def signed_to_uint8(x: np.ndarray, limit: float) -> np.ndarray:
    """Values in [-limit, limit] (clipped) -> uint8 [0, 255]; 0 maps to mid-grey."""
    return ((np.clip(x, -limit, limit) / limit + 1) * 127.5 + 0.5).astype(np.uint8)


def labelled_strip(images: list[np.ndarray], labels: list[str], scale: int = 2, highlight: int | None = None,
                   gap: int = 4) -> np.ndarray:
    """Images side by side with a text label under each; ``highlight`` frames one of them in orange."""
    h, w = images[0].shape[:2]
    H, W = h * scale, w * scale
    strip = Image.new("RGB", (len(images) * (W + gap) + gap, H + 2 * gap + 14), "white")
    draw = ImageDraw.Draw(strip)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        x = gap + i * (W + gap)
        strip.paste(Image.fromarray(img).resize((W, H), Image.Resampling.NEAREST), (x, gap))
        if i == highlight:
            draw.rectangle((x - 2, gap - 2, x + W + 1, gap + H + 1), outline=(255, 140, 0), width=2)
        draw.text((x + 2, gap + H + 3), label, fill=(0, 0, 0))
    return np.asarray(strip)


class StaticFigure:
    """A matplotlib figure rendered once to RGBA, with data -> pixel maps to paint onto copies of it."""

    def __init__(self, fig: Figure):
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        self.rgba = np.asarray(canvas.buffer_rgba()).copy()  # (H, W, 4)
        self.height = self.rgba.shape[0]
        self._axes = {id(ax): ax for ax in fig.axes}

    def _px(self, ax: Axes, x: float, y: float) -> tuple[int, int]:
        """Data (x, y) in ``ax`` -> (column, row) of the RGBA array (rows count from the top)."""
        px, py = ax.transData.transform((x, y))
        return int(round(px)), int(round(self.height - py))

    def _rows(self, ax: Axes) -> tuple[int, int]:
        bbox = ax.bbox
        return int(round(self.height - bbox.y1)), int(round(self.height - bbox.y0))

    def vline(self, image: np.ndarray, ax: Axes, x: float, colour=(230, 60, 20), width: int = 2) -> None:
        """Paint a vertical line at data x across the axes (in place)."""
        col, _ = self._px(ax, x, 0)
        top, bottom = self._rows(ax)
        image[top:bottom, max(col - width // 2, 0) : col + (width + 1) // 2, :3] = colour

    def bars(self, image: np.ndarray, ax: Axes, edges: np.ndarray, heights: np.ndarray,
             colour=(40, 110, 200), alpha: float = 0.65) -> None:
        """Paint translucent bars (a histogram: edges (n+1,), heights (n,)) from y = 0, clipped to the axes."""
        top, bottom = self._rows(ax)
        y_max = ax.get_ylim()[1]
        for left, right, h in zip(edges[:-1], edges[1:], heights, strict=True):
            c0, r0 = self._px(ax, left, min(h, y_max))
            c1, r1 = self._px(ax, right, 0)
            block = image[max(r0, top) : min(r1, bottom), c0 + 1 : c1, :3]
            block[:] = (block * (1 - alpha) + np.asarray(colour) * alpha).astype(np.uint8)
