"""Shipped weights stored compactly: what is shared once, and in half precision where the eval's figures hold.

    python -m mmdiff_lab.pretrained.compact [NAME ...]     after `mmdiff-lab ship`; no name: every shipped model

Half precision (IEEE float16) keeps 11 significant bits, a relative rounding error of at most 2**-11 (normal numbers);
loading casts every weight back to float32 (``loading.load_model``), so the arithmetic is unchanged and only the
stored values are rounded. The float32 originals stay in the training run's folder.

A pipeline's text (or image) encoder that equals a shipped dual encoder, weight for weight, and uses the same
tokenizer, is replaced by a pointer to it (``loading.POINTER``): the t2i and i2t pipelines froze the shipped
encoders while training. A few-step generator's denoiser, the shipped t2i denoiser plus a LoRA adapter, is replaced
by a pointer to that denoiser and the adapter (about a fifth of its weights), once the two are checked to fuse
back into the stored weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from . import EXPECTED, available, path

#: Shipped models kept in float32, each with the reason: an eval figure that moved when stored in float16.
FULL_PRECISION: dict[str, str] = {
    "clip-shapes": "its held-out image-to-text recall@1 moved",
    "t2i-shapes": "its one-object accuracy at w = 3 and its x_0 errors moved",
    "t2i-shapes-words": "lab 04 compares its maps with t2i-shapes', stored alike; its float16 copy was not measured",
}

HALF = torch.float16


def store_half(file: Path) -> bool:
    """Rewrite a safetensors file with its floating-point tensors in float16; False if there was nothing to do."""
    tensors = load_file(file)
    if all(not t.is_floating_point() or t.dtype == HALF for t in tensors.values()):
        return False
    too_large = [k for k, t in tensors.items() if t.is_floating_point() and t.abs().max() > torch.finfo(HALF).max]
    if too_large:
        raise ValueError(f"{file}: {too_large[0]} exceeds float16's range (65504); keep it in FULL_PRECISION")
    with safe_open(file, framework="pt") as f:
        metadata = f.metadata()
    tmp = file.with_name(file.name + ".tmp")
    save_file({k: t.to(HALF) if t.is_floating_point() else t for k, t in tensors.items()}, tmp, metadata=metadata)
    tmp.chmod(file.stat().st_mode & 0o777)  # safetensors writes 0600; a shipped model is read by every user
    tmp.replace(file)  # a rename: an interrupted conversion leaves the old file whole
    return True


def _model_config(file: Path) -> dict:
    """config.json without diffusers' bookkeeping (where it was saved from, with which version)."""
    return {k: v for k, v in json.loads(file.read_text()).items() if k not in ("_name_or_path", "_diffusers_version")}


def _same(ours: torch.Tensor, shared: torch.Tensor, rounded: bool) -> bool:
    """Equal values, ours first rounded to the shared tensor's dtype when ``rounded`` (as storing it would)."""
    ours = ours.to(shared.dtype) if rounded else ours
    return torch.equal(ours, shared.to(ours.dtype))


ENCODERS = ("text_encoder", "image_encoder")  # the pipeline components that are a shipped dual encoder


def share_encoder(pipeline: Path, half_ok: bool, component_name: str = "text_encoder") -> str | None:
    """Replace ``pipeline/component_name`` by a pointer to the shipped model it equals; that model's name, or None.

    ``half_ok``: the pipeline's weights may be rounded to the shared ones' float16; else they must be equal as they are.
    """
    from ..loading import POINTER, sha256

    component = pipeline / component_name
    if not (component / "config.json").is_file():
        return None  # already a pointer, or no such component
    config = _model_config(component / "config.json")
    weights = load_file(component / SAFETENSORS_WEIGHTS_NAME)
    tokens = json.loads((pipeline / "tokenizer" / "tokenizer.json").read_text())
    for name in available():
        folder = path(name)
        if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
            continue  # pipelines and models without a tokenizer cannot be a text encoder
        if _model_config(folder / "config.json") != config or json.loads((folder / "tokenizer.json").read_text()) != tokens:
            continue
        compact(name)  # the shared model in its final form first: the pointer records the checksum of that
        shared = load_file(folder / SAFETENSORS_WEIGHTS_NAME)
        if shared.keys() != weights.keys() or not all(_same(weights[k], shared[k], half_ok) for k in shared):
            continue
        pointer = {"shipped": name, "sha256": sha256(folder / SAFETENSORS_WEIGHTS_NAME)}
        (component / POINTER).write_text(json.dumps(pointer, indent=1))
        (component / "config.json").unlink()  # from here the pointer is read, so the weights can go
        (component / SAFETENSORS_WEIGHTS_NAME).unlink()
        return name
    return None


def share_denoiser(pipeline: Path) -> str | None:
    """Replace ``pipeline/denoiser``'s fused weights by a pointer to the shipped denoiser its adapter was trained on
    (``adapter/base.json``) and the adapter; that model's name, or None when there is no such adapter."""
    from ..loading import ADAPTER, POINTER, fuse_adapter, load_model, sha256
    from ..models.denoiser import TextToImageDenoiser

    component = pipeline / "denoiser"
    base_file = component / ADAPTER / "base.json"
    if not (component / "config.json").is_file() or not base_file.is_file():
        return None
    base = json.loads(base_file.read_text())
    name = base.get("teacher")
    if name not in available() or not (path(name) / "denoiser" / SAFETENSORS_WEIGHTS_NAME).is_file():
        raise ValueError(f"{base_file}: its base {name!r} is not a shipped pipeline; ship the teacher first")
    shared_weights = path(name) / "denoiser" / SAFETENSORS_WEIGHTS_NAME
    if base.get("sha256") != sha256(shared_weights):
        raise ValueError(f"{base_file}: the shipped {name} is not the teacher this adapter was trained on")
    stored = load_file(component / SAFETENSORS_WEIGHTS_NAME)
    rebuilt = fuse_adapter(load_model(TextToImageDenoiser, path(name), subfolder="denoiser"), component / ADAPTER)
    fused = rebuilt.state_dict()
    if fused.keys() != stored.keys():
        raise ValueError(f"{component}: its adapter on {name} gives other tensors than it stores "
                         f"({sorted(fused.keys() ^ stored.keys())[:3]} ...)")
    # checked in float32; the shipped adapter is then rounded to float16 (it moved a one-step image by 3e-4)
    worst = max((fused[k].float() - stored[k].float()).abs().max().item() for k in stored)
    if worst > 1e-5:
        raise ValueError(f"{component}: its adapter on {name} does not give back its weights (off by {worst:g})")
    pointer = {"shipped": name, "subfolder": "denoiser", "sha256": sha256(shared_weights)}
    (component / POINTER).write_text(json.dumps(pointer, indent=1))
    (component / "config.json").unlink()
    (component / SAFETENSORS_WEIGHTS_NAME).unlink()
    return name


def compact(name: str, folder: Path | None = None) -> list[str]:
    """Store the shipped model ``name`` compactly, in place (idempotent); what was done, one line each.

    ``folder``: where that model is now, if not yet at its place in the package (a copy being shipped).
    """
    folder = path(name) if folder is None else folder
    done = []
    half_ok = name not in FULL_PRECISION
    if (folder / "model_index.json").is_file():
        for component in ENCODERS:
            if shared := share_encoder(folder, half_ok, component):
                done.append(f"{component} -> shared with {shared}")
        if shared := share_denoiser(folder):
            done.append(f"denoiser -> {shared}'s denoiser plus its LoRA adapter")
    if half_ok:
        files = [*folder.rglob(SAFETENSORS_WEIGHTS_NAME), *folder.rglob("pytorch_lora_weights.safetensors")]
        done += [f"{f.relative_to(folder)} -> float16" for f in sorted(files) if store_half(f)]
    return done


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(EXPECTED)
    for name in names:
        path(name)  # every name checked before any file changes
    for name in names:
        print(f"{name}: {'; '.join(compact(name)) or 'already compact'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
