"""Noise schedules and the forward process q(x_t | x_0), written to be read next to the papers.

Notation (Ho et al., 2020, "Denoising Diffusion Probabilistic Models"):

    T          number of training timesteps; t runs over 0 .. T-1 (diffusers' convention)
    beta_t     variance of the noise added at step t
    alpha_t    1 - beta_t
    alpha_bar  cumulative product of alpha_t: the share of the signal's variance left at t
    snr        alpha_bar / (1 - alpha_bar), the signal-to-noise ratio (Kingma et al., 2021)

Every beta schedule is a plain function ``(T, ...) -> betas`` of shape (T,), float64 for accuracy.
Where diffusers implements the same schedule, ours returns the same numbers (tests/test_schedules.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# ---------------------------------------------------------------------------------------------
# Beta schedules
# ---------------------------------------------------------------------------------------------


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Linear betas from Ho et al. (2020), Section 4."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def scaled_linear_betas(T: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> Tensor:
    """Linear in sqrt(beta), as Stable Diffusion's latent model (Rombach et al., 2022) is trained."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Cosine schedule, Eq. 17 of Nichol & Dhariwal (2021): alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)."""

    def f(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    # beta_t = 1 - alpha_bar(t+1) / alpha_bar(t), clipped at max_beta to avoid a singularity at t = T.
    betas = [min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


def sigmoid_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Sigmoid-shaped betas from GeoDiff (Xu et al., 2022), as diffusers' beta_schedule="sigmoid"."""
    return torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64)) * (beta_end - beta_start) + beta_start


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Shift and scale sqrt(alpha_bar) so that the last step is pure noise: Algorithm 1 of Lin et al. (2024)."""
    sqrt_ab = torch.cumprod(1 - betas, dim=0).sqrt()  # (T,)
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)  # now sqrt_ab[0] unchanged, sqrt_ab[-1] = 0
    alpha_bar = sqrt_ab**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1 - alphas


#: Named schedules: the name is what diffusers calls it in ``beta_schedule``, where it has one.
SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "linear": linear_betas,
    "scaled_linear": scaled_linear_betas,
    "cosine": cosine_betas,  # diffusers: "squaredcos_cap_v2"
    "sigmoid": sigmoid_betas,
}


def get_betas(name: str, T: int = 1000, zero_terminal_snr: bool = False, **kwargs: float) -> Tensor:
    """Betas of the named schedule, shape (T,); optionally rescaled to zero terminal SNR.

    Extra keyword arguments (``beta_start``, ``beta_end``, ``s`` ...) go to the schedule's function.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    if T < 2:
        raise ValueError(f"a schedule needs at least 2 timesteps, got T={T}")
    betas = SCHEDULES[name](T, **kwargs)
    return rescale_zero_terminal_snr(betas) if zero_terminal_snr else betas


# ---------------------------------------------------------------------------------------------
# Derived quantities: alpha_bar, SNR
# ---------------------------------------------------------------------------------------------


def alpha_bar(betas: Tensor) -> Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), Ho et al. (2020) Eq. 4."""
    return torch.cumprod(1 - betas, dim=0)


def snr(alpha_bar: Tensor) -> Tensor:
    """Signal-to-noise ratio alpha_bar / (1 - alpha_bar), Kingma et al. (2021) Eq. 2; inf where alpha_bar = 1."""
    return alpha_bar / (1 - alpha_bar)


def log_snr(alpha_bar: Tensor) -> Tensor:
    """log SNR = log(alpha_bar) - log(1 - alpha_bar); -inf at zero terminal SNR."""
    return torch.log(alpha_bar) - torch.log1p(-alpha_bar)


@dataclass(frozen=True)
class Schedule:
    """A named schedule with the quantities a lab plots; all tensors have shape (T,)."""

    name: str
    betas: Tensor
    alpha_bar: Tensor

    @classmethod
    def from_name(cls, name: str, T: int = 1000, zero_terminal_snr: bool = False) -> Schedule:
        betas = get_betas(name, T, zero_terminal_snr)
        return cls(name, betas, alpha_bar(betas))

    @property
    def T(self) -> int:
        return len(self.betas)

    @property
    def snr(self) -> Tensor:
        return snr(self.alpha_bar)

    @property
    def log_snr(self) -> Tensor:
        return log_snr(self.alpha_bar)


# ---------------------------------------------------------------------------------------------
# The forward process in closed form
# ---------------------------------------------------------------------------------------------


def _per_sample(values: Tensor, t: Tensor | int, like: Tensor) -> Tensor:
    """values[t] shaped to broadcast against a batch ``like`` of shape (B, ...)."""
    t = torch.as_tensor(t, device=values.device)
    v = values[t].to(like.dtype)
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim()))


def q_sample(x0: Tensor, t: Tensor | int, alpha_bar: Tensor, noise: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, Ho et al. (2020) Eq. 4.

    Args:
        x0: clean images, shape (B, C, H, W) (or any (B, ...)); or one image with ``t`` an int.
        t: timesteps, an int or a LongTensor of shape (B,).
        alpha_bar: the schedule's alpha_bar, shape (T,).
        noise: eps ~ N(0, I), the same shape as ``x0``.
    Returns:
        x_t, the same shape as ``x0``.
    """
    ab = _per_sample(alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


# ---------------------------------------------------------------------------------------------
# Reference reverse steps (readable versions of diffusers' DDPMScheduler.step and DDIMScheduler.step)
# ---------------------------------------------------------------------------------------------


def predict_x0(x_t: Tensor, eps_pred: Tensor, ab_t: Tensor | float) -> Tensor:
    """Invert q_sample for x_0 given a noise prediction: Ho et al. (2020) Eq. 15."""
    ab_t = torch.as_tensor(ab_t, dtype=x_t.dtype)
    return (x_t - (1 - ab_t).sqrt() * eps_pred) / ab_t.sqrt()


def ddpm_step(
    eps_pred: Tensor,
    t: int,
    x_t: Tensor,
    alpha_bar: Tensor,
    noise: Tensor | None = None,
    clip_sample: float | None = None,
) -> Tensor:
    """One ancestral step x_t -> x_{t-1}: Algorithm 2 of Ho et al. (2020), written through x0_pred (Eq. 6-7).

    Notation: ab_t = alpha_bar_t, ab_prev = alpha_bar_{t-1} (1 at t = 0), beta_t = 1 - ab_t / ab_prev.
    The variance is the "fixed small" posterior variance beta_tilde_t (Eq. 7).

    Args:
        eps_pred: the model's noise prediction, shape (B, C, H, W).
        t: the current timestep, 0 <= t < T.
        x_t: the current sample, shape (B, C, H, W).
        alpha_bar: the schedule's alpha_bar, shape (T,).
        noise: z ~ N(0, I) of x_t's shape; needed when t > 0.
        clip_sample: if set, clamp x0_pred to [-clip_sample, clip_sample].
    Returns:
        x_{t-1}, shape (B, C, H, W).
    """
    dtype = x_t.dtype
    ab_t = alpha_bar[t].to(dtype)
    ab_prev = alpha_bar[t - 1].to(dtype) if t > 0 else torch.ones((), dtype=dtype)
    beta_t = 1 - ab_t / ab_prev

    x0_pred = predict_x0(x_t, eps_pred, ab_t)
    if clip_sample is not None:
        x0_pred = x0_pred.clamp(-clip_sample, clip_sample)

    # Posterior mean mu_tilde(x_t, x_0), Eq. 7.
    mean = (ab_prev.sqrt() * beta_t / (1 - ab_t)) * x0_pred + ((1 - beta_t).sqrt() * (1 - ab_prev) / (1 - ab_t)) * x_t
    if t == 0:
        return mean
    if noise is None:
        raise ValueError("ddpm_step needs `noise` for t > 0")
    beta_tilde = ((1 - ab_prev) / (1 - ab_t) * beta_t).clamp(min=1e-20)
    return mean + beta_tilde.sqrt() * noise


def ddim_step(
    eps_pred: Tensor,
    t: int,
    t_prev: int,
    x_t: Tensor,
    alpha_bar: Tensor,
    eta: float = 0.0,
    noise: Tensor | None = None,
    clip_sample: float | None = None,
) -> Tensor:
    """One DDIM step x_t -> x_{t_prev}: Eq. 12 of Song et al. (2021); eta = 0 is deterministic.

    Notation: ab_t = alpha_bar_t, ab_prev = alpha_bar_{t_prev} (1 when t_prev < 0), sigma_t from Eq. 16.
    As in diffusers' default, a clipped x0_pred does not change the eps used for the direction term.

    Args:
        eps_pred: the model's noise prediction, shape (B, C, H, W).
        t, t_prev: the current and the next (smaller) timestep; t_prev < 0 means "to x_0".
        x_t: the current sample, shape (B, C, H, W).
        alpha_bar: the schedule's alpha_bar, shape (T,).
        eta: 0 for DDIM, 1 for a DDPM-like stochastic step.
        noise: z ~ N(0, I), needed when eta > 0.
        clip_sample: if set, clamp x0_pred to [-clip_sample, clip_sample].
    Returns:
        x_{t_prev}, shape (B, C, H, W).
    """
    dtype = x_t.dtype
    ab_t = alpha_bar[t].to(dtype)
    ab_prev = alpha_bar[t_prev].to(dtype) if t_prev >= 0 else torch.ones((), dtype=dtype)

    x0_pred = predict_x0(x_t, eps_pred, ab_t)
    if clip_sample is not None:
        x0_pred = x0_pred.clamp(-clip_sample, clip_sample)

    sigma_t = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()  # Eq. 16
    direction = (1 - ab_prev - sigma_t**2).sqrt() * eps_pred  # "direction pointing to x_t"
    x_prev = ab_prev.sqrt() * x0_pred + direction
    if eta > 0:
        if noise is None:
            raise ValueError("ddim_step needs `noise` when eta > 0")
        x_prev = x_prev + sigma_t * noise
    return x_prev
