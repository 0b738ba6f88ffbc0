"""Checks for lab 03, text to image."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler

from . import NotYet, call, exercise, need_function, need_tensor

GUIDANCE_SCALES = (0.0, 1.0, 3.0, 7.5)


@exercise("exercise 1 (DDIM step)")
def check_ddim_step(fn: Callable | None) -> bool:
    """Exercise 1: one deterministic DDIM step (eta = 0) from x_t and eps_pred, given alpha_bar at t and t_prev."""
    fn = need_function(fn)
    sched = DDIMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(3)
    for t in sched.timesteps.tolist()[1:]:
        x_t, eps = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
        t_prev = t - 100
        ab_t = sched.alphas_cumprod[t]
        ab_prev = sched.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
        got = need_tensor(call(fn, x_t, eps, ab_t, ab_prev), x_t, f"the step at t={t}")
        want = sched.step(eps, t, x_t).prev_sample
        if not torch.allclose(got, want, atol=1e-4):
            x0 = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
            hint = ("that is the predicted x0 itself; the step re-noises it to t_prev"
                    if torch.allclose(got, x0, atol=1e-4)
                    else "x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), then sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps")
            raise NotYet(f"t={t}: {hint}")


@exercise("exercise 2 (classifier-free guidance)")
def check_cfg(fn: Callable | None) -> bool:
    """Exercise 2: classifier-free guidance from the unconditional and conditional predictions and a scale w."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(4)
    cases = []
    for w in GUIDANCE_SCALES:  # all answers first: one w alone cannot tell a swapped sign from a convention
        u, c = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        cases.append((w, u, c, need_tensor(call(fn, u, c, w), u, f"the guided prediction at w={w}")))

    def matches(formula) -> bool:
        return all(torch.allclose(got, formula(w, u, c), atol=1e-5) for w, u, c, got in cases)

    if matches(lambda w, u, c: u + w * (c - u)):
        return
    if matches(lambda w, u, c: (1 + w) * c - w * u):
        raise NotYet("that is the other common convention, (1 + w) eps_c - w eps_u, where w counts the guidance "
                     "beyond the conditional prediction (w = 0 gives eps_c). Ours is eps_u + w (eps_c - eps_u): "
                     "w = 0 gives eps_u, w = 1 gives eps_c, and w_ours = 1 + w_theirs")
    if matches(lambda w, u, c: c + w * (u - c)):
        raise NotYet("the direction points from unconditional to conditional: eps_u + w (eps_c - eps_u)")
    w, *_ = next((w, u, c) for w, u, c, got in cases if not torch.allclose(got, u + w * (c - u), atol=1e-5))
    raise NotYet(f"w={w}: w = 0 must give eps_u and w = 1 must give eps_c")


@exercise("exercise 3 (x0 from v)")
def check_x0_from_v(fn: Callable | None) -> bool:
    """Exercise 3: the predicted x0 from a v-prediction (Salimans & Ho, 2022) at x_t with alpha_bar_t."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(5)
    for ab in (0.999, 0.5, 0.01):
        x0, eps = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
        a = torch.tensor(ab)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        v = a.sqrt() * eps - (1 - a).sqrt() * x0
        got = need_tensor(call(fn, x_t, v, a), x0, f"x0 at alpha_bar={ab}")
        if not torch.allclose(got, x0, atol=1e-4):
            raise NotYet(f"alpha_bar={ab}: v = sqrt(ab) eps - sqrt(1 - ab) x0 and "
                         "x_t = sqrt(ab) x0 + sqrt(1 - ab) eps; eliminate eps")
