"""Checks for lab 02, the shared embedding space."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..encoders import clip_loss
from ..metrics import modality_gap, recall_at_k
from . import attempt, report, unanswered


def check_info_nce(fn: Callable | None) -> bool:
    """Exercise 1: symmetric InfoNCE from a (B, B) logits matrix, one positive per row (the diagonal)."""
    name = "exercise 1 (InfoNCE)"
    if fn is None:
        return unanswered(name)
    g = torch.Generator().manual_seed(2)
    for B in (2, 5, 16):
        logits = torch.randn(B, B, generator=g) * 3
        got, status = attempt(fn, logits)
        if status:
            return unanswered(name)
        want = clip_loss(logits, logits.T)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return report(name, False, "return a scalar tensor")
        if not torch.allclose(got.float(), want, atol=1e-5):
            one_way = torch.nn.functional.cross_entropy(logits, torch.arange(B))
            hint = ("that is only the image -> text half; average it with the text -> image half (logits.T)"
                    if torch.allclose(got.float(), one_way, atol=1e-5)
                    else "cross-entropy of each row against its diagonal entry, both ways, averaged")
            return report(name, False, f"B={B}: got {float(got):.4f}, want {float(want):.4f}: {hint}")
    return report(name, True)


def check_recall_at_1(fn: Callable | None) -> bool:
    """Exercise 2: recall@1 of a (Q, C) similarity matrix where query i's right answer is candidate i."""
    name = "exercise 2 (recall@1)"
    if fn is None:
        return unanswered(name)
    g = torch.Generator().manual_seed(3)
    for n in (4, 50):
        sim = torch.randn(n, n, generator=g) + 2 * torch.eye(n)
        got, status = attempt(fn, sim)
        if status:
            return unanswered(name)
        keys = torch.arange(n)
        want = recall_at_k(sim, keys, keys, 1)
        if got is None or abs(float(got) - want) > 1e-6:
            transposed = recall_at_k(sim.T, keys, keys, 1)
            hint = " (rows are queries: take the arg-max along dim=1)" if abs(float(got or -1) - transposed) < 1e-6 else ""
            return report(name, False, f"got {got}, want {want:.3f}{hint}")
    return report(name, True)


def check_modality_gap(fn: Callable | None) -> bool:
    """Exercise 3: the distance between the mean image embedding and the mean text embedding."""
    name = "exercise 3 (modality gap)"
    if fn is None:
        return unanswered(name)
    g = torch.Generator().manual_seed(4)
    img = torch.nn.functional.normalize(torch.randn(100, 8, generator=g) + 1, dim=1)
    txt = torch.nn.functional.normalize(torch.randn(100, 8, generator=g) - 1, dim=1)
    got, status = attempt(fn, img, txt)
    if status:
        return unanswered(name)
    want = modality_gap(img, txt)
    if got is None or abs(float(got) - want) > 1e-5:
        return report(name, False, f"got {got}, want {want:.4f}: || mean(images) - mean(texts) ||")
    return report(name, True)
