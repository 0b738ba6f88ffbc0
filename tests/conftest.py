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


def exit_status(argv) -> int:
    """main's return value, or the status argparse exits with on a bad option."""
    from mmdiff_lab.cli import main

    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def tiny_t2i_pipeline(prediction_type: str = "epsilon", backbone: str = "transformer"):
    """A text-to-image pipeline with the shipped ShapesWorld text tower and a tiny untrained denoiser whose
    zero-initialised output layers are nudged, so that it predicts something prompt-dependent."""
    import torch

    from mmdiff_lab import pretrained
    from mmdiff_lab.loading import load_clip
    from mmdiff_lab.models.denoiser import make_denoiser
    from mmdiff_lab.pipelines.samplers import training_scheduler
    from mmdiff_lab.pipelines.text_to_image import TextToImagePipeline

    clip, tok = load_clip(pretrained.path("clip-shapes"))
    torch.manual_seed(0)
    model = make_denoiser(backbone, "tiny", clip.config.width)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pipe = TextToImagePipeline(model.eval(), clip, tok, training_scheduler(prediction_type))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_i2t_pipeline(causal: bool = False, world: str = "shapes"):
    """An image-to-text pipeline with the shipped dual encoder of ``world`` and a tiny untrained caption denoiser
    (or autoregressive anchor), its weights nudged so that its predictions differ from position to position."""
    import torch

    from mmdiff_lab import pretrained
    from mmdiff_lab.loading import load_clip
    from mmdiff_lab.models.captioner import CaptionDenoiser, image_fingerprint
    from mmdiff_lab.pipelines.image_to_text import ImageToTextPipeline

    clip, tok = load_clip(pretrained.path(f"clip-{world}"))
    torch.manual_seed(0)
    model = CaptionDenoiser.from_preset(
        "tiny", vocab_size=len(tok), max_length=tok.max_length, context_dim=clip.config.width, mask_id=tok.mask_id,
        pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id, causal=causal, image_fingerprint=image_fingerprint(clip),
        clip_name=f"clip-{world}")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return ImageToTextPipeline(model.eval(), clip, tok)
