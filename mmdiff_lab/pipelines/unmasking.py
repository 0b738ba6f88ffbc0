"""Sampling a caption from the caption denoiser: K steps from all-masked to all-known, one of three orders.

    z_1 = <bos> <mask> ... <mask>  --K steps: predict every position, reveal some-->  z_0 = <bos> w_1 ... <eos> <pad>

- ``random``: MDLM's ancestral sampler (Sahoo et al., 2024): from t to s = t - 1/K each masked position is revealed
  with probability (t - s) / t, whichever it is;
- ``confidence``: MaskGIT's (Chang et al., 2022): reveal the masked positions whose sampled token is most
  probable, so that after step k, k/K of them are known; with temperature, Gumbel noise on the confidences
  (annealed to 0 at the last step) lets a less certain position go first now and then;
- ``left-to-right``: the leftmost masked positions, as many per step as ``confidence``.

A revealed token is never masked again (MDLM's carry-over). The autoregressive anchor (``autoregress``) writes one
token per step, left to right. Every step goes into a ``CaptionRecord``: the tokens after it, which positions it
revealed, and the model's top candidates with their probabilities at every position.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from ..text import Tokenizer
from .trajectory import Trajectory

ORDERS = ("confidence", "random", "left-to-right")
TOP_K = 5  # candidates recorded per position
MAX_TEMPERATURE = 10.0  # beyond it every word is about as likely as any other


class CaptionRecord(Trajectory):
    """The steps of one captioning run (B captions at once), saved and loaded as a ``Trajectory``.

    Step k holds ``x_t`` the tokens after it (B, L) and the extras ``revealed`` (B, L) bool, the positions it
    filled, and ``top_ids`` / ``top_probs`` (B, L, TOP_K), the model's candidates before it was taken.
    """

    @property
    def tokens(self) -> Tensor:
        """(S, B, L) the tokens after each step."""
        return self.stack("x_t")

    @property
    def final(self) -> Tensor:
        """(B, L) the finished captions' tokens."""
        return self.steps[-1].x_t

    def decided_at(self) -> Tensor:
        """(B, L) the step (0-based) that revealed each position; -1 for <bos>, known from the start."""
        revealed = self.stack("revealed")  # (S, B, L)
        step = revealed.float().argmax(0)  # (B, L) the first step each was revealed
        return torch.where(revealed.any(0), step, torch.full_like(step, -1))

    def captions(self, tokenizer: Tokenizer, step: int = -1) -> list[str]:
        """The B captions as read after ``step`` (still-masked positions shown "_")."""
        return [caption_text(row, tokenizer) for row in self.steps[step].x_t]


def caption_text(ids: Tensor, tokenizer: Tokenizer) -> str:
    """One row of token ids -> the caption: the words after <bos> up to the first <eos> (<mask> shown "_")."""
    words = []
    for i in ids.tolist()[1:]:
        if i in (tokenizer.eos_id, tokenizer.pad_id):
            break
        words.append(tokenizer.itos[i])
    return tokenizer.decode([tokenizer.stoi[w] for w in words])


# ---- checks, before any work ------------------------------------------------------------------------------


def check_steps(steps, positions: int) -> int:
    """Steps K must be a whole number in [1, positions]: each step reveals at least one of the caption's
    ``positions`` maskable tokens."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= steps <= positions:
        raise ValueError(f"steps must be a whole number in [1, {positions}] (the caption's {positions} maskable "
                         f"positions, at least one revealed per step), got {steps!r}")
    return int(steps)


def check_order(order) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    return order


def check_temperature(temperature) -> float:
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not math.isfinite(temperature) or not 0 <= temperature <= MAX_TEMPERATURE):
        raise ValueError(f"temperature must be a finite number in [0, {MAX_TEMPERATURE:g}] (0: always the most "
                         f"probable word), got {temperature!r}")
    return float(temperature)


# ---- sampling -------------------------------------------------------------------------------------------


def _draw(logits: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    """(B, L, V) -> (B, L) one token per position: the most probable at temperature 0, else sampled."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


def _gumbel(shape, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(shape, generator=generator).clamp(1e-9, 1 - 1e-9)
    return -torch.log(-torch.log(u))


def _top(logits: Tensor) -> tuple[Tensor, Tensor]:
    probs, ids = torch.softmax(logits.float(), dim=-1).topk(TOP_K, dim=-1)
    return ids, probs


@torch.no_grad()
def unmask(model, image_states: Tensor, steps: int, order: str = "confidence", temperature: float = 0.0,
           generator: torch.Generator | None = None, callback=None) -> CaptionRecord:
    """Sample B captions for image_states (B, M, C) in ``steps`` steps; returns their record.

    ``callback(step, tokens, revealed)`` is called after each step with the tokens (B, L) and the positions it
    revealed; it may return new tokens (the pipeline's ``callback_on_step_end``)."""
    cfg = model.config
    L = cfg.max_length
    steps, order, temperature = check_steps(steps, L - 1), check_order(order), check_temperature(temperature)
    B = image_states.shape[0]
    z = torch.full((B, L), cfg.mask_id, dtype=torch.long, device=image_states.device)
    z[:, 0] = cfg.bos_id
    record = CaptionRecord({"steps": steps, "order": order, "temperature": temperature})
    positions = torch.arange(L, device=z.device)[None].expand(B, L)
    for k in range(steps):
        logits = model(z, image_states)  # (B, L, V)
        masked = z == cfg.mask_id  # (B, L)
        draw = _draw(logits, temperature, generator)  # (B, L)
        if order == "random":
            # from t = 1 - k/K to s = 1 - (k+1)/K a masked position is revealed with probability (t - s)/t
            reveal = masked & (torch.rand((B, L), generator=generator).to(z.device) < 1 / (steps - k))
        else:
            # after step k, round((k+1)/K * (L - 1)) positions are known: the linear schedule
            n_now = masked.sum(1) - ((L - 1) - round((k + 1) / steps * (L - 1)))  # (B,) to reveal now
            if order == "confidence":
                logp = torch.log_softmax(logits, -1).gather(-1, draw[..., None])[..., 0]  # (B, L)
                score = logp + temperature * (1 - (k + 1) / steps) * _gumbel((B, L), generator).to(z.device)
            else:
                score = -positions.float()  # leftmost first
            score = score.masked_fill(~masked, float("-inf"))
            rank = score.argsort(1, descending=True).argsort(1)  # (B, L) 0 for the best
            reveal = masked & (rank < n_now[:, None])
        z = torch.where(reveal, draw, z)
        ids, probs = _top(logits)
        record.append(k, z, revealed=reveal, top_ids=ids, top_probs=probs)
        if callback is not None and (new := callback(k, z, reveal)) is not None:
            z = new
            record.steps[-1].x_t = z.detach().to("cpu", copy=True)
    return record


@torch.no_grad()
def autoregress(model, image_states: Tensor, temperature: float = 0.0, generator: torch.Generator | None = None,
                callback=None) -> CaptionRecord:
    """The autoregressive anchor's captions: one token per step, left to right, until every row has said <eos>
    (the rest is padding); the record has one step per token written."""
    cfg = model.config
    if not cfg.causal:
        raise ValueError("autoregress needs a causal caption model (causal=True); use unmask for a masked one")
    temperature = check_temperature(temperature)
    L, B = cfg.max_length, image_states.shape[0]
    eos = cfg.eos_id
    z = torch.full((B, L), cfg.mask_id, dtype=torch.long, device=image_states.device)
    z[:, 0] = cfg.bos_id
    done = torch.zeros(B, dtype=torch.bool, device=z.device)
    record = CaptionRecord({"steps": L - 1, "order": "autoregressive", "temperature": temperature})
    for i in range(1, L):
        logits = model(z[:, :i], image_states)[:, -1]  # (B, V) the next token
        logits[:, cfg.bos_id] = float("-inf")
        nxt = _draw(logits[:, None], temperature, generator)[:, 0]
        nxt = torch.where(done, torch.full_like(nxt, cfg.pad_id), nxt)
        done = done | (nxt == eos) | (nxt == cfg.pad_id)
        z[:, i] = nxt
        reveal = torch.zeros((B, L), dtype=torch.bool, device=z.device)
        reveal[:, i] = True
        ids = torch.zeros((B, L, TOP_K), dtype=torch.long, device=z.device)  # only position i was predicted
        probs = torch.zeros((B, L, TOP_K), device=z.device)
        ids[:, i], probs[:, i] = _top(logits)
        record.append(i - 1, z, revealed=reveal, top_ids=ids, top_probs=probs)
        if callback is not None and (new := callback(i - 1, z, reveal)) is not None:
            z = new
            record.steps[-1].x_t = z.detach().to("cpu", copy=True)
        if bool(done.all()):
            z[:, i + 1:] = cfg.pad_id
            record.steps[-1].x_t = z.detach().to("cpu", copy=True)
            break
    record.meta["steps"] = len(record)
    return record
