"""Checks for lab 05, image to text."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..text_diffusion import mask_tokens
from . import NotYet, call, exercise, need_function, need_tensor

#: The ids of the special tokens in every tokenizer of this library (``text.Tokenizer``).
PAD, BOS, EOS, MASK = 0, 1, 2, 3


def _captions(g: torch.Generator, batch: int = 6, length: int = 14) -> torch.Tensor:
    """(B, L) token ids shaped like tokenized captions: <bos>, 5 to 11 words, <eos>, then <pad>."""
    x0 = torch.full((batch, length), PAD)
    for b in range(batch):
        n = int(torch.randint(5, 12, (), generator=g))
        x0[b, 0], x0[b, 1 : n + 1], x0[b, n + 1] = BOS, torch.randint(4, 33, (n,), generator=g), EOS
    return x0


@exercise("exercise 1 (forward masking)")
def check_mask(fn: Callable | None) -> bool:
    """Exercise 1: q(z_t | x_0) of the log-linear schedule alpha_t = 1 - t: given captions x0 (B, L), times t (B,),
    the <mask> id and uniform draws u (B, L), return z_t (B, L): position i of caption b is <mask> where
    u[b, i] < t[b], but position 0 (<bos>) is never masked."""
    fn = need_function(fn)
    x0 = _captions(torch.Generator().manual_seed(7))
    t = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
    u = torch.rand(x0.shape, generator=torch.Generator().manual_seed(8))
    want, masked = mask_tokens(x0, t, MASK, generator=torch.Generator().manual_seed(8))  # the library, same draws
    raw = call(fn, x0.clone(), t.clone(), MASK, u.clone())
    if isinstance(raw, torch.Tensor) and raw.dtype == torch.bool:
        raise NotYet("that is which positions are masked; return the tokens z_t themselves: x0 with mask_id "
                     "where a position is masked")
    got = need_tensor(raw, want, "z_t")
    if torch.equal(got, want):
        return
    if (got[:, 0] != BOS).any():
        raise NotYet("<bos> (position 0) is never masked: the model always knows where the caption starts")
    kept_with_t = torch.where(u >= t[:, None], MASK, x0)
    kept_with_t[:, 0] = BOS
    if torch.equal(got, kept_with_t):
        raise NotYet("that masks with probability 1 - t: alpha_t = 1 - t is the chance a token is kept, so a "
                     "position is masked where u < t (at t = 1 every word is masked)")
    special = (x0 == EOS) | (x0 == PAD)
    if torch.equal(got, torch.where(special, x0, want)) and (masked & special).any():
        raise NotYet("<eos> and <pad> are masked like any word: the model also decides where the caption ends")
    b = int((got != want).any(1).nonzero()[0])
    raise NotYet(f"caption {b} (t = {t[b]:.2f}): put mask_id at every position i > 0 with u[b, i] < t[b] and "
                 "keep x0 elsewhere")


@exercise("exercise 2 (one step of confidence-ordered unmasking)")
def check_reveal(fn: Callable | None) -> bool:
    """Exercise 2: given each position's confidence (B, L) (the log-probability of its sampled token), which
    positions are still masked (B, L) and how many to reveal in each caption n (B,), return the positions this step
    reveals (B, L) bool: the n[b] masked positions of caption b with the highest confidence (MaskGIT's order)."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(9)
    B, L = 5, 14
    confidence = torch.log_softmax(torch.randn(B, L, 33, generator=g), -1).max(-1).values  # (B, L), no ties
    masked = torch.rand(B, L, generator=g) < 0.7
    masked[:, 0] = False
    masked[0, 1:] = True  # the first step: everything but <bos> is masked
    masked[1, 1:4] = False  # the most confident positions of caption 1 are already known
    confidence[1, 1:4] = 0.0
    counts = masked.sum(1)
    n = torch.stack([counts[0] // 4, counts[1] // 2, counts[2], torch.tensor(0), torch.tensor(1)])
    score = confidence.masked_fill(~masked, float("-inf"))
    rank = score.argsort(1, descending=True).argsort(1)  # 0 for the most confident masked position
    want = masked & (rank < n[:, None])
    got = need_tensor(call(fn, confidence.clone(), masked.clone(), n.clone()), want, "the positions revealed")
    if torch.equal(got, want):
        return
    if (got & ~masked).any():
        raise NotYet("that reveals positions that are already known; a revealed token stays as it is (MDLM's "
                     "carry-over), so choose among the masked positions only")
    least = masked & (confidence.masked_fill(~masked, float("inf")).argsort(1).argsort(1) < n[:, None])
    if torch.equal(got, least):
        raise NotYet("that reveals the least confident masked positions; the confidence order reveals the most "
                     "probable ones first (sort in descending order)")
    leftmost = masked & (masked.cumsum(1) <= n[:, None])
    if torch.equal(got, leftmost):
        raise NotYet("those are the leftmost masked positions (the left-to-right order); pick by confidence")
    wrong = (got.sum(1) != n).nonzero()
    if len(wrong):
        b = int(wrong[0])
        raise NotYet(f"caption {b} reveals {int(got[b].sum())} positions, want n[{b}] = {int(n[b])}: each caption "
                     "reveals its own count")
    b = int((got != want).any(1).nonzero()[0])
    raise NotYet(f"caption {b}: reveal the n[{b}] = {int(n[b])} masked positions with the highest confidence")


def _errors() -> torch.Tensor:
    """(B, K, n) noise-prediction errors as a denoiser with shared (t, eps) makes them: most of the spread comes
    from the evaluation (its timestep and noise), shared by every candidate; a little from the caption."""
    g = torch.Generator().manual_seed(10)
    B, K, n = 5, 3, 4
    shared = torch.rand(B, 1, n, generator=g) + 0.1  # (B, 1, n) the evaluation's own difficulty
    fit = torch.stack([torch.randperm(K, generator=g) for _ in range(B)])[:, :, None] * 0.02  # (B, K, 1) clear margins
    errors = shared + fit + 0.002 * torch.rand(B, K, n, generator=g)
    # image 0: caption 0 wins three evaluations by a hair and loses the fourth by far; on average caption 1 fits
    errors[0] = torch.tensor([[0.50, 0.20, 0.90, 0.50], [0.51, 0.21, 0.91, 0.00], [0.55, 0.25, 0.95, 0.15]])
    # image 1: caption 2 fits best, but the first evaluation alone would say caption 0
    errors[1] = shared[1] + torch.tensor([[0.03], [0.02], [0.0]])
    errors[1, 0, 0] -= 0.05
    # image 2: caption 1 fits best and wins three evaluations, but its worst one is the worst of all
    errors[2] = torch.tensor([[0.3, 0.5, 0.2, 0.8]]) + torch.tensor([[0.02], [0.0], [0.04]])
    errors[2, 1, 3] += 0.06
    return errors


@exercise("exercise 3 (the Diffusion Classifier's choice)")
def check_pick(fn: Callable | None) -> bool:
    """Exercise 3: given each candidate caption's squared noise-prediction errors errors (B, K, n), at n
    (t, eps) evaluations shared by every candidate of an image, return the index of the caption chosen for each
    image (B,): the one with the smallest mean error (Diffusion Classifier, Li et al., 2023)."""
    fn = need_function(fn)
    errors = _errors()
    B, K, n = errors.shape
    want = errors.mean(-1).argmin(-1)  # (B,)
    raw = call(fn, errors.clone())
    if isinstance(raw, torch.Tensor) and raw.is_floating_point() and not torch.isfinite(raw).all():
        raise NotYet("the result holds NaN or infinite values: the choice is an index, one per image")
    if isinstance(raw, torch.Tensor) and tuple(raw.shape) in ((B, K), (B, K, n)):
        raise NotYet(f"that has shape {tuple(raw.shape)}: return the index of the chosen caption for each image, "
                     f"a tensor of shape ({B},) (argmin over the candidates)")
    got = need_tensor(raw, want, "the choice")
    if torch.equal(got, want):
        return
    if torch.equal(got, errors.mean(-1).argmax(-1)):
        raise NotYet("that picks the caption with the largest error; the caption that fits helps the denoiser most, "
                     "so choose the smallest mean error (the highest score, minus the error)")
    if torch.equal(got, errors.max(-1).values.argmin(-1)) or torch.equal(got, errors.min(-1).values.argmin(-1)):
        raise NotYet("that compares the captions by one evaluation each (their best or worst); one evaluation is "
                     "one noisy draw: average each caption's errors over all n, then pick the lowest mean")
    if torch.equal(got, errors.argmin(1).mode(-1).values):
        raise NotYet("that counts, per evaluation, which caption is best, and takes the majority: image 0's "
                     "caption 0 wins three evaluations by a hair and loses the fourth by far. Average each "
                     "caption's errors over the evaluations, then pick the lowest mean")
    if torch.equal(got, errors[:, :, 0].argmin(-1)):
        raise NotYet("that reads the first evaluation only; average each caption's errors over all n of them")
    if torch.equal(got, errors.mean(1).argmin(-1)):
        raise NotYet("that averages over the candidates (axis 1) and picks an evaluation; average over the "
                     "evaluations (the last axis) and pick a candidate")
    b = int((got != want).nonzero()[0])
    raise NotYet(f"image {b}: want caption {int(want[b])}, the smallest of its mean errors "
                 f"{[round(v, 3) for v in errors[b].mean(-1).tolist()]}")
