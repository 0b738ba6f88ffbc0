"""Masked (absorbing-state) diffusion of captions: the forward process and its bound (MDLM, Sahoo et al., 2024).

    x_0 = <bos> w_1 ... w_n <eos> <pad> ...          (B, L)
    z_t: each position but <bos> kept with probability alpha_t = 1 - t, else replaced by <mask>

With this log-linear schedule the negative ELBO is (MDLM, Eq. 11, with alpha_t' = -1)

    NELBO = E_{t ~ U(0, 1)} [ 1/t * sum_{i masked in z_t} -log p_theta(x_0^i | z_t) ]

a cross-entropy on the masked positions, weighed by 1/t. <bos> is never masked (it is always known); <eos> and
the padding after it are, so the model also decides how long the caption is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

T_MIN = 1e-3  # t is drawn from [T_MIN, 1]: 1/t stays bounded


def stratified_t(batch_size: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """(B,) times in [T_MIN, 1], one in each of B equal strata (MDLM's low-discrepancy sampler: a lower-variance
    estimate of the bound than B independent draws)."""
    u = (torch.rand((), generator=generator) + torch.arange(batch_size)) / batch_size  # (B,) in [0, 1 + 1/B)
    return (T_MIN + (1 - T_MIN) * (u % 1)).to(device)


def mask_tokens(x0: Tensor, t: Tensor, mask_id: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """q(z_t | x_0): x0 (B, L), t (B,) -> z_t (B, L) and ``masked`` (B, L) bool. Position 0 (<bos>) stays."""
    u = torch.rand(x0.shape, generator=generator).to(x0.device)
    masked = u < t[:, None]
    masked[:, 0] = False
    return torch.where(masked, torch.full_like(x0, mask_id), x0), masked


def masked_nll(logits: Tensor, x0: Tensor, masked: Tensor) -> Tensor:
    """-log p(x_0^i | z_t) summed over the masked positions: logits (B, L, V), x0, masked (B, L) -> (B,)."""
    nll = F.cross_entropy(logits.transpose(1, 2), x0, reduction="none")  # (B, L)
    return (nll * masked).sum(1)


def nelbo_terms(logits: Tensor, x0: Tensor, masked: Tensor, t: Tensor) -> Tensor:
    """One Monte-Carlo term of the NELBO per caption, in nats per maskable position: (B,)."""
    return masked_nll(logits, x0, masked) / t / (x0.shape[1] - 1)


def autoregressive_nll(logits: Tensor, x0: Tensor, pad_id: int, per_token: bool = True) -> Tensor:
    """The anchor's loss: position i predicts token i + 1, up to and including <eos> (padding is not a word):
    logits (B, L, V), x0 (B, L) -> (B,) nats per predicted token, or (per_token=False) per caption: the exact
    -log p(caption)."""
    target = x0[:, 1:]  # (B, L - 1)
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), target, reduction="none")  # (B, L - 1)
    keep = target != pad_id
    total = (nll * keep).sum(1)
    return total / keep.sum(1).clamp(min=1) if per_token else total
