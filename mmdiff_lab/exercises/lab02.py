"""Checks for lab 02, the shared embedding space."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..metrics import modality_gap, recall_at_k
from ..models.encoders import clip_loss
from . import NotYet, call, exercise, need_function, need_number


@exercise("exercise 1 (InfoNCE)")
def check_info_nce(fn: Callable | None) -> bool:
    """Exercise 1: symmetric InfoNCE from a (B, B) logits matrix, one positive per row (the diagonal)."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(2)
    for B in (2, 5, 16):
        logits = torch.randn(B, B, generator=g) * 3
        got = need_number(call(fn, logits), f"the loss for B={B}")
        want = float(clip_loss(logits, logits.T))
        if abs(got - want) > 1e-5:
            one_way = float(torch.nn.functional.cross_entropy(logits, torch.arange(B)))
            hint = ("that is only the image -> text half; average it with the text -> image half (logits.T)"
                    if abs(got - one_way) < 1e-5
                    else "cross-entropy of each row against its diagonal entry, both ways, averaged")
            raise NotYet(f"B={B}: got {got:.4f}, want {want:.4f}: {hint}")


@exercise("exercise 2 (recall@1)")
def check_recall_at_1(fn: Callable | None) -> bool:
    """Exercise 2: recall@1 of a (Q, C) similarity matrix where query i's right answer is candidate i."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(3)
    for n in (4, 50):
        sim = torch.randn(n, n, generator=g) + 2 * torch.eye(n)
        got = need_number(call(fn, sim), f"recall@1 for {n} queries")
        keys = torch.arange(n)
        want = recall_at_k(sim, keys, keys, 1)
        if abs(got - want) > 1e-6:
            transposed = recall_at_k(sim.T, keys, keys, 1)
            hint = " (rows are queries: take the arg-max along dim=1)" if abs(got - transposed) < 1e-6 else ""
            raise NotYet(f"got {got:g}, want {want:.3f}{hint}")


@exercise("exercise 3 (modality gap)")
def check_modality_gap(fn: Callable | None) -> bool:
    """Exercise 3: the distance between the mean image embedding and the mean text embedding."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(4)
    img = torch.nn.functional.normalize(torch.randn(100, 8, generator=g) + 1, dim=1)
    txt = torch.nn.functional.normalize(torch.randn(100, 8, generator=g) - 1, dim=1)
    got = need_number(call(fn, img, txt), "the gap")
    want = modality_gap(img, txt)
    if abs(got - want) > 1e-5:
        raise NotYet(f"got {got:.4f}, want {want:.4f}: || mean(images) - mean(texts) ||")
