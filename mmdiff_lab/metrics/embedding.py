"""The geometry of a shared embedding space."""

from __future__ import annotations

import torch
from torch import Tensor


def alignment(x: Tensor, y: Tensor, alpha: float = 2.0) -> float:
    """E ||f(x) - g(y)||^alpha over positive pairs: lower is better aligned (Wang & Isola, 2020, Eq. 1).

    x, y: (N, E) unit-norm embeddings of N pairs.
    """
    return (x - y).norm(dim=1).pow(alpha).mean().item()


def uniformity(x: Tensor, t: float = 2.0) -> float:
    """log E exp(-t ||f(x) - f(y)||^2) over all pairs: lower is more uniform (Wang & Isola, 2020, Eq. 2).

    x: (N, E) unit-norm embeddings.
    """
    sq = torch.pdist(x, p=2).pow(2)
    return sq.mul(-t).exp().mean().log().item()


def modality_gap(image_embeds: Tensor, text_embeds: Tensor) -> float:
    """||mean image embedding - mean text embedding||: the distance between the two clouds (Liang et al., 2022)."""
    return (image_embeds.mean(0) - text_embeds.mean(0)).norm().item()
