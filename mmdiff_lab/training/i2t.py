"""Training the caption denoiser: `mmdiff-lab train i2t --world shapes|digits|folder:PATH [--objective ...]`.

    world -> images --frozen image tower (once, before training)--> image states (N, 1 + P, C)
    captions -> ids x_0 --q(z_t | x_0), t stratified--> z_t --denoiser--> logits --NELBO (text_diffusion.py)

``--objective autoregressive`` trains the anchor instead: the same network with a causal mask and next-token
cross-entropy, on the same data, batches and budget. The result is an ``ImageToTextPipeline`` folder (caption
denoiser = EMA weights, the dual encoder, its tokenizer); while it trains, held-out images are captioned every
``eval_every`` steps so the loss curve has an accuracy curve beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from accelerate import PartialState
from diffusers.training_utils import EMAModel
from torch import Tensor

from ..data.pairs import make_pool, training_examples
from ..data.shapes import describe
from ..loading import load_clip
from ..models.captioner import IMAGE_STATES, PRESETS, CaptionDenoiser, image_context, image_fingerprint
from ..text_diffusion import autoregressive_nll, mask_tokens, nelbo_terms, stratified_t
from .loop import BOUNDS, Bound, ConfigError, OneOf, TrainConfig, WorldName, fit, write_run_record
from .t2i import clip_folder

OBJECTIVES = ("masked", "autoregressive")
VALIDATION_SEED = 777  # the held-out scenes watched while training; the eval's (123) give the final figure only


@dataclass
class I2TTrainConfig(TrainConfig):
    bounds: ClassVar[dict] = {**BOUNDS, "world": WorldName(), "preset": OneOf(tuple(PRESETS)),
                              "objective": OneOf(OBJECTIVES), "captions": OneOf(("as-said", "canonical")),
                              "image_states": OneOf(IMAGE_STATES), "twin_consistency": Bound(0)}

    world: str = "shapes"
    clip: str = ""  # the dual encoder whose image tower the captions read ("" = the shipped clip-WORLD)
    preset: str = "lab"
    objective: str = "masked"  # or "autoregressive": the anchor
    # ShapesWorld says a scene several ways (4 templates for one object, 3 for two, and "A left of B" or "B right
    # of A"); "canonical" trains on one way (the first template, the relation left of / above). A masked model
    # reveals several positions per step, each from its own marginal, and marginals over several wordings mix
    # them ("the large a square is left of ..."): docs/results.md measures it.
    captions: str = "canonical"
    # What the captions read of the image tower: its final patch states alone mix a held-out pair's colour and
    # shape into a trained pair's; its input tokens keep them apart (docs/results.md).
    image_states: str = "inputs+final"
    # Weight of a consistency term (0: none): each training scene beside its twin (one attribute changed or swapped,
    # still a training pair: ShapesWorld.twin), the two captions' shared words must be predicted alike from the
    # two images, so that a shape word is read apart from the colour beside it: held-out captions from 0.84 / 0.69
    # to 0.99 / 0.89 (docs/results.md). None: 1 for the masked objective on shapes, else 0 (nothing to pair).
    twin_consistency: float | None = None
    steps: int = 3000  # the training split is captioned perfectly by step 1000; held-out images need no more (docs/results.md)
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 200
    pool_size: int = 30_000
    eval_every: int = 500
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        if self.twin_consistency is None:
            self.twin_consistency = 1.0 if self.world == "shapes" and self.objective == "masked" else 0.0
        super().__post_init__()
        if self.twin_consistency and (self.world != "shapes" or self.objective != "masked"):
            raise ConfigError(type(self).__name__, "twin_consistency",
                              f"is for the masked objective on world 'shapes' (0 elsewhere), got "
                              f"{self.twin_consistency!r} with world {self.world!r}, objective {self.objective!r}")


@torch.no_grad()
def encode_images(clip_model, pixels: Tensor, states: str, batch_size: int = 512) -> Tensor:
    """(N, 3, S, S) -> (N, M, C) the image states, in eval mode (the tower's BatchNorm keeps its statistics)."""
    clip_model.eval()
    return torch.cat([image_context(clip_model, pixels[i : i + batch_size], states)
                      for i in range(0, len(pixels), batch_size)])


def caption_loss(model, ids: Tensor, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The training loss of either objective for ids x_0 (B, L) and image states (B, M, C): mean over B."""
    if model.config.causal:
        return autoregressive_nll(model(ids, states), ids, model.config.pad_id).mean()
    t = stratified_t(len(ids), generator, ids.device)
    z_t, masked = mask_tokens(ids, t, model.config.mask_id, generator)
    return nelbo_terms(model(z_t, states), ids, masked, t).mean()


def twin_consistency_loss(model, ids: Tensor, states: Tensor, twin_ids: Tensor, twin_states: Tensor, weight: float,
                          generator: torch.Generator | None = None) -> Tensor:
    """The NELBO of a caption and of its twin's under one mask pattern, plus ``weight`` x the symmetric KL between
    the two predictions at the masked positions whose words the two captions share."""
    t = stratified_t(len(ids), generator, ids.device)
    z_a, masked = mask_tokens(ids, t, model.config.mask_id, generator)
    z_b = torch.where(masked, torch.full_like(twin_ids, model.config.mask_id), twin_ids)
    la, lb = model(z_a, states), model(z_b, twin_states)  # (B, L, V) each
    nelbo = 0.5 * (nelbo_terms(la, ids, masked, t) + nelbo_terms(lb, twin_ids, masked, t)).mean()
    pa, pb = (torch.log_softmax(x.clamp(min=-1e4), dim=-1) for x in (la, lb))  # <mask>'s -inf kept finite
    kl = ((pa.exp() - pb.exp()) * (pa - pb)).sum(-1)  # (B, L) KL(a || b) + KL(b || a)
    shared = masked & (ids == twin_ids)
    return nelbo + weight * (kl * shared).sum() / shared.sum().clamp(min=1)


def train_i2t(cfg: I2TTrainConfig, out: str | Path, resume: bool = False) -> tuple[object, list[dict]]:
    """Train a caption denoiser (or the autoregressive anchor) on cfg.world; save the pipeline to ``out``."""
    from ..pipelines.image_to_text import ImageToTextPipeline, evaluate_captioner

    out = Path(out)
    started = time.perf_counter()
    clip_path = clip_folder(cfg)
    clip_model, tokenizer = load_clip(clip_path)
    clip_model.requires_grad_(False)
    _, examples, twins = training_examples(cfg.world, cfg.pool_size, cfg.seed, twins=bool(cfg.twin_consistency))
    if cfg.captions == "canonical" and cfg.world == "shapes":
        examples, twins = ([replace(e, caption=describe(e.scene.canonical(), template=0)[0]) for e in part]
                           for part in (examples, twins))
    pool = make_pool(examples, tokenizer)
    states = encode_images(clip_model, pool.pixels, cfg.image_states)  # (N, M, C), once: the tower is frozen
    if twins:
        twin_pool = make_pool(twins, tokenizer)
        twin_states = encode_images(clip_model, twin_pool.pixels, cfg.image_states)
    torch.manual_seed(cfg.seed)

    def new_model() -> CaptionDenoiser:
        return CaptionDenoiser.from_preset(
            cfg.preset, vocab_size=len(tokenizer), max_length=tokenizer.max_length, context_dim=clip_model.config.width,
            mask_id=tokenizer.mask_id, pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
            causal=cfg.objective == "autoregressive", image_fingerprint=image_fingerprint(clip_model),
            clip_name=cfg.clip or clip_path.name, image_states=cfg.image_states)

    model = new_model()
    ema = EMAModel(model.parameters(), decay=0.999, use_ema_warmup=True, power=3 / 4)

    def batch(step: int, rank: int) -> tuple:
        rng = np.random.default_rng((cfg.seed, step, rank))
        idx = torch.from_numpy(rng.integers(len(pool), size=cfg.batch_size))
        seed = torch.tensor(int(rng.integers(2**31)))
        if twins:
            return pool.input_ids[idx], states[idx], seed, twin_pool.input_ids[idx], twin_states[idx]
        return pool.input_ids[idx], states[idx], seed

    def loss(model, data) -> Tensor:
        ids, image_states, seed, *twin = data
        g = torch.Generator().manual_seed(int(seed))
        if twin:
            return twin_consistency_loss(model, ids, image_states, *twin, cfg.twin_consistency, g)
        return caption_loss(model, ids, image_states, g)

    def pipeline_with_ema(m) -> ImageToTextPipeline:
        shadow = new_model()
        shadow.load_state_dict(m.state_dict())
        ema.copy_to(shadow.parameters())
        return ImageToTextPipeline(shadow.eval(), clip_model, tokenizer)

    def evaluate(m) -> dict:
        return evaluate_captioner(pipeline_with_ema(m), cfg.world, n=128, seed=VALIDATION_SEED)  # not the test seed

    out.mkdir(parents=True, exist_ok=True)
    prep_seconds = time.perf_counter() - started
    history = fit(model, batch, loss, cfg, out, resume=resume, evaluate=evaluate, ema=ema,
                  desc=f"i2t {cfg.objective} {cfg.world}")
    pipe = pipeline_with_ema(model)
    if not PartialState().is_main_process:
        return pipe, history
    pipe.save_pretrained(out)
    metrics = {"train_seconds": history[-1]["seconds"] if history else 0.0, "prep_seconds": prep_seconds,
               "steps": history[-1]["step"] if history else 0,
               "parameters": sum(p.numel() for p in model.parameters()),
               **evaluate_captioner(pipe, cfg.world, n=500)}
    write_run_record(out, cfg, metrics, history)
    return pipe, history
