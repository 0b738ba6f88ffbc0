"""The ideal denoiser of ShapesWorld: the best guess of x_0 that anything can make from x_t and a caption.

A caption fixes every attribute of a scene except each object's jitter of up to 1 px, so given the caption,
x_0 is one of K = 9^n renders c_k (n objects), all equally likely. Bayes' rule over them gives the posterior
mean exactly (the ideal denoiser of a finite data set, as in EDM, Karras et al., 2022):

    w_k = softmax_k( -|| x_t - sqrt(ab_t) c_k ||^2 / (2 (1 - ab_t)) ),      x0_ideal = sum_k w_k c_k

No denoiser can have a lower expected error, so a model's x_0 error next to the ideal one, per noise level,
shows where the model is far from what its data allows.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.base import image_to_tensor
from ..data.shapes import JITTER, Scene, render
from ..pipelines.text_to_image import TextToImagePipeline
from ..schedules import q_sample
from .faithfulness import heldout_scenes

_OFFSETS = tuple(itertools.product(range(-JITTER, JITTER + 1), repeat=2))  # (dx, dy) of one object


def renders(scene: Scene) -> Tensor:
    """Every render a caption of this scene allows, one per combination of jitters: (9^n, 3, S, S) in [-1, 1]."""
    jitters = itertools.product(_OFFSETS, repeat=len(scene.objects))
    return torch.stack([image_to_tensor(render(scene, jitter)[0]) for jitter in jitters])


def ideal_x0(x_t: Tensor, alpha_bar_t: float | Tensor, candidates: Tensor) -> Tensor:
    """E[x_0 | x_t] when x_0 is one of K equally likely candidates.

    Args:
        x_t: (B, C, S, S) noisy images, x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps.
        alpha_bar_t: ab_t of their noise level.
        candidates: (B, K, C, S, S) the possible x_0 of each image.
    Returns:
        (B, C, S, S) the posterior mean of x_0.
    """
    ab = torch.as_tensor(alpha_bar_t, dtype=x_t.dtype)
    sq_dist = (x_t[:, None] - ab.sqrt() * candidates).flatten(2).square().sum(-1)  # (B, K)
    w = torch.softmax(-sq_dist / (2 * (1 - ab)), dim=1)  # (B, K) posterior of each candidate
    return torch.einsum("bk,bkchw->bchw", w, candidates)


@torch.no_grad()
def x0_error_vs_ideal(pipe: TextToImagePipeline, timesteps=(300, 500, 700, 900), n: int = 64,
                      seed: int = 0) -> dict[int, tuple[float, float]]:
    """{t: (model's x_0 mean squared error, the ideal denoiser's)} on n held-out one-object scenes noised to t.

    The model's guess is clipped to [-1, 1], as the samplers use it; see ``metrics.ideal`` for the ideal one.
    """

    prompts, scenes = heldout_scenes(1, n)
    candidates = torch.stack([renders(s) for s in scenes])  # (n, 9, 3, S, S); the true x_0 is one of them
    g = torch.Generator().manual_seed(seed)
    x0 = candidates[torch.arange(n), torch.randint(candidates.shape[1], (n,), generator=g)]  # (n, 3, S, S)
    noise = {t: torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed * 1000 + t)) for t in timesteps}
    candidates, x0 = candidates.to(pipe.device), x0.to(pipe.device)
    states, mask = pipe.encode_prompt(prompts)
    alpha_bar, errors = pipe.scheduler.alphas_cumprod.to(pipe.device), {}
    for t in timesteps:
        x_t = q_sample(x0, t, alpha_bar, noise[t].to(pipe.device))
        out = pipe.denoiser(x_t, torch.full((n,), t, device=pipe.device), encoder_hidden_states=states,
                            encoder_attention_mask=mask).sample
        guess = pipe.x0_eps(x_t, out, t)[0].clamp(-1, 1)
        errors[t] = (F.mse_loss(guess, x0).item(), F.mse_loss(ideal_x0(x_t, alpha_bar[t], candidates), x0).item())
    return errors
