"""Does a word's map land on the word's object? Scores of a map (S, S) against the world's true mask (S, S).

    IoU        the map min-max normalised and cut at tau (DAAM's 0.4, Tang et al., 2023) against the mask
    pointing   the map's peak inside the mask (the pointing game, Zhang et al., 2018); chance is the mask's area
    binding    of a two-object scene, the map's mass on its own object over its mass on both objects; a flat map
               scores the own object's share of both areas
    locality   of an intervention, the share of the image's change inside the word's object mask

Each score comes with what a map that knows nothing would get, so a number can be read against chance.
"""

from __future__ import annotations

import torch
from torch import Tensor

TAU = 0.4  # DAAM's threshold on a min-max normalised map


def _check(heat: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    heat, mask = torch.as_tensor(heat).float(), torch.as_tensor(mask).bool()
    if heat.shape != mask.shape or heat.ndim != 2:
        raise ValueError(f"a map and its mask are both (S, S); got {tuple(heat.shape)} and {tuple(mask.shape)}")
    if not torch.isfinite(heat).all():
        raise ValueError("the map holds NaN or infinite values")
    return heat, mask


def binarise(heat: Tensor, tau: float = TAU) -> Tensor:
    """The map min-max normalised to [0, 1], then >= tau; a flat map selects nothing."""
    lo, hi = heat.min(), heat.max()
    if hi - lo <= 1e-12:
        return torch.zeros_like(heat, dtype=torch.bool)
    return (heat - lo) / (hi - lo) >= tau


def iou(heat: Tensor, mask: Tensor, tau: float = TAU) -> float:
    """Intersection over union of the thresholded map with the mask (0 when both are empty)."""
    heat, mask = _check(heat, mask)
    picked = binarise(heat, tau)
    union = (picked | mask).sum()
    return float((picked & mask).sum() / union) if union else 0.0


def pointing(heat: Tensor, mask: Tensor) -> float:
    """1.0 when the map's peak (its first maximum) lies inside the mask, else 0.0."""
    heat, mask = _check(heat, mask)
    return float(mask.flatten()[heat.flatten().argmax()])


def pointing_chance(mask: Tensor) -> float:
    """The pointing score of a peak dropped uniformly at random: the mask's share of the image."""
    return float(torch.as_tensor(mask).bool().float().mean())


def iou_chance(mask: Tensor) -> float:
    """The IoU of a map that selects the whole image (what a map knowing nothing, flat up to noise, comes near)."""
    return pointing_chance(mask)


def binding(heat: Tensor, own: Tensor, other: Tensor) -> float:
    """The map's mass on its own object over its mass on both objects (pixels of both count for neither);
    1/2 when it has none on either."""
    heat, own = _check(heat, own)
    other = torch.as_tensor(other).bool()
    heat = heat.clamp_min(0)
    a, b = heat[own & ~other].sum(), heat[other & ~own].sum()
    return float(a / (a + b)) if a + b > 0 else 0.5


def locality(before: Tensor, after: Tensor, mask: Tensor) -> float:
    """Share of the change between two images (3, S, S) that lies inside the mask (S, S): sum of |difference| over
    the channels, inside over everywhere; 1.0 when nothing changed (nothing changed outside)."""
    change = (torch.as_tensor(after).float() - torch.as_tensor(before).float()).abs().sum(0)
    _, mask = _check(change, mask)
    total = change.sum()
    return float(change[mask].sum() / total) if total > 0 else 1.0


__all__ = ["TAU", "binarise", "binding", "iou", "iou_chance", "locality", "pointing", "pointing_chance"]
