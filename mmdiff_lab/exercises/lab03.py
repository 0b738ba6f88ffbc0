"""Checks for lab 03, text to image."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler

from . import attempt, report, unanswered


def check_ddim_step(fn: Callable | None) -> bool:
    """Exercise 1: one deterministic DDIM step (eta = 0) from x_t and eps_pred, given alpha_bar at t and t_prev."""
    name = "exercise 1 (DDIM step)"
    if fn is None:
        return unanswered(name)
    sched = DDIMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(3)
    for t in sched.timesteps.tolist()[1:]:
        x_t, eps = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
        t_prev = t - 100
        ab_t = sched.alphas_cumprod[t]
        ab_prev = sched.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
        got, status = attempt(fn, x_t, eps, ab_t, ab_prev)
        if status:
            return unanswered(name)
        want = sched.step(eps, t, x_t).prev_sample
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return report(name, False, f"return a tensor shaped like x_t {tuple(x_t.shape)}")
        if not torch.allclose(got, want, atol=1e-4):
            x0 = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
            hint = ("that is the predicted x0 itself; the step re-noises it to t_prev"
                    if torch.allclose(got, x0, atol=1e-4)
                    else "x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), then sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps")
            return report(name, False, f"t={t}: {hint}")
    return report(name, True)


def check_cfg(fn: Callable | None) -> bool:
    """Exercise 2: classifier-free guidance from the unconditional and conditional predictions and a scale w."""
    name = "exercise 2 (classifier-free guidance)"
    if fn is None:
        return unanswered(name)
    g = torch.Generator().manual_seed(4)
    for w in (0.0, 1.0, 3.0, 7.5):
        u, c = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        got, status = attempt(fn, u, c, w)
        if status:
            return unanswered(name)
        want = u + w * (c - u)
        if not isinstance(got, torch.Tensor) or not torch.allclose(got, want, atol=1e-5):
            swapped = c + w * (u - c)
            hint = ("the direction points from unconditional to conditional: eps_u + w (eps_c - eps_u)"
                    if isinstance(got, torch.Tensor) and torch.allclose(got, swapped, atol=1e-5)
                    else "w = 0 must give eps_u and w = 1 must give eps_c")
            return report(name, False, f"w={w}: {hint}")
    return report(name, True)


def check_x0_from_v(fn: Callable | None) -> bool:
    """Exercise 3: the predicted x0 from a v-prediction (Salimans & Ho, 2022) at x_t with alpha_bar_t."""
    name = "exercise 3 (x0 from v)"
    if fn is None:
        return unanswered(name)
    g = torch.Generator().manual_seed(5)
    for ab in (0.999, 0.5, 0.01):
        x0, eps = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        a = torch.tensor(ab)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        v = a.sqrt() * eps - (1 - a).sqrt() * x0
        got, status = attempt(fn, x_t, v, a)
        if status:
            return unanswered(name)
        if not isinstance(got, torch.Tensor) or not torch.allclose(got, x0, atol=1e-4):
            return report(name, False, f"alpha_bar={ab}: v = sqrt(ab) eps - sqrt(1 - ab) x0 and "
                                       "x_t = sqrt(ab) x0 + sqrt(1 - ab) eps; eliminate eps")
    return report(name, True)
