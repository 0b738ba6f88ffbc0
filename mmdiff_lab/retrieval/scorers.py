"""Three ways to score how well each candidate caption fits an image; higher is better, one row per image.

    DenoisingErrorScorer: -E_{t, eps} || eps - eps_theta(x_t, t, caption) ||^2   (Diffusion Classifier, Li et al., 2023)
    LikelihoodScorer:     -NELBO of the caption under the caption denoiser   (MDLM's bound, text_diffusion.py)
    DualEncoderScorer:    cos(image embedding, caption embedding)   (CLIP, Radford et al., 2021)

The first two are Monte-Carlo estimates; every candidate of every image is scored with the same timesteps, noise
and masks, so their differences come from the caption alone (Li et al.'s key to a low-variance ranking).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.denoiser import text_context
from ..text import Tokenizer
from ..text_diffusion import T_MIN, autoregressive_nll, masked_nll

MAX_CANDIDATES = 100  # per image; more would only be slow


def check_candidates(candidates, n_images: int, tokenizer: Tokenizer) -> list[list[str]]:
    """One list of candidate captions for all images, or one list per image, each non-empty and of one length K;
    every word checked against the vocabulary (an UnknownWordError names it). Returns one list per image."""
    if isinstance(candidates, str) or not isinstance(candidates, (list, tuple)) or not candidates:
        raise ValueError("candidates must be a non-empty list of captions (or one such list per image), "
                         f"got {candidates!r}")
    per_image = [list(c) for c in candidates] if isinstance(candidates[0], (list, tuple)) else [list(candidates)] * n_images
    if len(per_image) != n_images:
        raise ValueError(f"{len(per_image)} candidate lists for {n_images} images: give one list per image, or one "
                         "list for all")
    sizes = {len(c) for c in per_image}
    if 0 in sizes:
        raise ValueError(f"image {[len(c) for c in per_image].index(0)} has an empty candidate list; give at "
                         "least one caption to rank")
    if len(sizes) > 1:
        raise ValueError(f"every image needs the same number of candidates, got {sorted(sizes)}")
    if sizes.pop() > MAX_CANDIDATES:
        raise ValueError(f"more than {MAX_CANDIDATES} candidates per image; rank them in parts")
    for row in per_image:
        for c in row:
            if not isinstance(c, str):
                raise TypeError(f"a candidate caption must be a string, got {type(c).__name__}: {c!r}")
            tokenizer.tokens(c)
    return per_image


def _encode(tokenizer: Tokenizer, captions: list[str]) -> tuple[Tensor, Tensor]:
    tokens = tokenizer.encode(captions)
    return tokens["input_ids"], tokens["attention_mask"]


class DenoisingErrorScorer:
    """Diffusion Classifier with a text-to-image pipeline: each caption's mean noise-prediction error on the image.

    Args:
        pipe: a ``TextToImagePipeline`` (our denoiser; v- or eps-prediction).
        evaluations: n (t, eps) pairs per image, each one denoiser call per candidate.
        t_range: the timesteps used, evenly spaced midpoints of n strata of [lo, hi).
        seed: fixes the noise.
    """

    name = "denoising error"

    # 4: on validation queries (seed 777, 60 per kind) 4, 8 and 16 evaluations ranked alike (docs/results.md)
    def __init__(self, pipe, evaluations: int = 4, t_range: tuple[int, int] = (100, 900), seed: int = 0):
        T = pipe.scheduler.config.num_train_timesteps
        if isinstance(evaluations, bool) or not isinstance(evaluations, int) or not 1 <= evaluations <= 256:
            raise ValueError(f"evaluations must be a whole number in [1, 256], got {evaluations!r}")
        lo, hi = t_range
        if not 0 <= lo < hi <= T:
            raise ValueError(f"t_range must be (lo, hi) with 0 <= lo < hi <= {T}, got {t_range!r}")
        self.pipe, self.evaluations = pipe, evaluations
        self.timesteps = torch.tensor([int(lo + (hi - lo) * (j + 0.5) / evaluations) for j in range(evaluations)])
        g = torch.Generator().manual_seed(seed)
        self.noise = torch.randn((evaluations, *pipe.latent_shape), generator=g)  # (n, C, S, S), shared by all

    @torch.no_grad()
    def __call__(self, pixels: Tensor, candidates, rows_per_call: int = 1024) -> Tensor:
        """pixels (B, 3, S, S) in [-1, 1], candidates (see ``check_candidates``) -> scores (B, K)."""
        pipe = self.pipe
        per_image = check_candidates(candidates, len(pixels), pipe.tokenizer)
        B, K, n = len(pixels), len(per_image[0]), self.evaluations
        unique = list(dict.fromkeys(c for row in per_image for c in row))
        ids, mask = _encode(pipe.tokenizer, unique)
        states = text_context(pipe.denoiser, pipe.text_encoder.encode_text(ids, mask))  # (U, L, C')
        which = torch.tensor([[unique.index(c) for c in row] for row in per_image])  # (B, K)
        ab = pipe.scheduler.alphas_cumprod.to(pixels.dtype)[self.timesteps]  # (n,)
        a, s = ab.sqrt()[:, None, None, None], (1 - ab).sqrt()[:, None, None, None]
        errors = torch.empty(B, K, n)
        per_call = max(1, rows_per_call // (K * n))  # images per denoiser call
        for b0 in range(0, B, per_call):
            x0 = pixels[b0 : b0 + per_call]  # (b, 3, S, S)
            b = len(x0)
            x_t = (a[None] * x0[:, None] + s[None] * self.noise[None]).flatten(0, 1)  # (b * n, 3, S, S)
            t = self.timesteps.repeat(b)  # (b * n,)
            # rows ordered (image, candidate, evaluation): row r reads x_t of (image, evaluation)
            img = torch.arange(b)[:, None, None].expand(b, K, n)
            ev = torch.arange(n)[None, None, :].expand(b, K, n)
            sample_index = (img * n + ev).flatten()  # (b * K * n,)
            rows = which[b0 : b0 + b][:, :, None].expand(b, K, n).flatten()
            out = pipe.denoiser(x_t, t, encoder_hidden_states=states[rows], encoder_attention_mask=mask[rows],
                                sample_index=sample_index).sample  # (b * K * n, 3, S, S)
            xt_r, ab_r = x_t[sample_index], ab[ev.flatten()][:, None, None, None]
            if pipe.scheduler.config.prediction_type == "v_prediction":
                eps_pred = (1 - ab_r).sqrt() * xt_r + ab_r.sqrt() * out
            else:
                eps_pred = out
            err = (eps_pred - self.noise[ev.flatten()]).pow(2).mean(dim=(1, 2, 3))  # (b * K * n,)
            errors[b0 : b0 + b] = err.view(b, K, n)
        return -errors.mean(-1)


class LikelihoodScorer:
    """The caption denoiser's own score: minus its NELBO of each caption given the image, estimated with
    ``samples`` (t, mask) draws shared by every candidate; for the autoregressive anchor, its exact
    log-likelihood."""

    name = "caption likelihood"

    def __init__(self, captioner, samples: int = 8, seed: int = 0):
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 256:
            raise ValueError(f"samples must be a whole number in [1, 256], got {samples!r}")
        self.captioner, self.samples = captioner, samples
        L = captioner.denoiser.config.max_length
        g = torch.Generator().manual_seed(seed)
        self.t = T_MIN + (1 - T_MIN) * (torch.arange(samples) + 0.5) / samples  # (n,) strata midpoints
        masked = torch.rand((samples, L), generator=g) < self.t[:, None]  # (n, L)
        masked[:, 0] = False
        self.masked = masked

    @torch.no_grad()
    def __call__(self, pixels: Tensor, candidates) -> Tensor:
        pipe = self.captioner
        model, cfg = pipe.denoiser, pipe.denoiser.config
        per_image = check_candidates(candidates, len(pixels), pipe.tokenizer)
        B, K = len(pixels), len(per_image[0])
        ids, _ = _encode(pipe.tokenizer, [c for row in per_image for c in row])  # (B * K, L)
        states = pipe.encode_image(pixels)  # (B, M, C)
        states = states[:, None].expand(B, K, *states.shape[1:]).flatten(0, 1)  # (B * K, M, C)
        if cfg.causal:
            return -autoregressive_nll(model(ids, states), ids, cfg.pad_id, per_token=False).view(B, K)
        n = self.samples
        x0 = ids[:, None].expand(-1, n, -1).flatten(0, 1)  # (B * K * n, L)
        masked = self.masked[None].expand(B * K, -1, -1).flatten(0, 1)
        z_t = torch.where(masked, torch.full_like(x0, cfg.mask_id), x0)
        logits = model(z_t, states.repeat_interleave(n, 0))
        terms = masked_nll(logits, x0, masked) / self.t.repeat(B * K)  # (B * K * n,)
        return -terms.view(B, K, n).mean(-1)


class DualEncoderScorer:
    """Cosine similarity in the dual encoder's shared space: one image and one text embedding per candidate."""

    name = "dual encoder"
    evaluations = 1

    def __init__(self, clip_model, tokenizer: Tokenizer):
        self.clip, self.tokenizer = clip_model.eval(), tokenizer

    @torch.no_grad()
    def __call__(self, pixels: Tensor, candidates) -> Tensor:
        per_image = check_candidates(candidates, len(pixels), self.tokenizer)
        B, K = len(pixels), len(per_image[0])
        ids, mask = _encode(self.tokenizer, [c for row in per_image for c in row])
        text = self.clip.encode_text(ids, mask).embeds.view(B, K, -1)  # (B, K, E)
        image = self.clip.encode_image(pixels).embeds  # (B, E)
        return torch.einsum("be,bke->bk", image, text)
