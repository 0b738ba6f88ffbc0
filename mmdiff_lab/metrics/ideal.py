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
from torch import Tensor

from ..data.base import image_to_tensor
from ..data.shapes import JITTER, Scene, render

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
