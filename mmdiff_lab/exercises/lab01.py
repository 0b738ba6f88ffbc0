"""Checks for lab 01, forward noising."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..schedules import Schedule, q_sample
from . import report, unanswered


def snr_crossing(schedule: str = "linear", T: int = 1000) -> int:
    """The first t at which SNR(t) = alpha_bar / (1 - alpha_bar) drops below 1."""
    return int((Schedule.from_name(schedule, T).snr < 1).nonzero()[0])


def check_snr_crossing(answer: int | None, schedule: str = "linear", T: int = 1000) -> bool:
    """Exercise 1: the first timestep at which noise outweighs signal (SNR < 1)."""
    name = "exercise 1 (SNR crossing)"
    if answer is None:
        return unanswered(name)
    truth = snr_crossing(schedule, T)
    if int(answer) == truth:
        return report(name, True)
    hint = "too early: SNR is still above 1 there" if answer < truth else "too late: SNR fell below 1 before that"
    return report(name, False, f"{answer} is {hint}. Compute snr = alpha_bar / (1 - alpha_bar) and find the first t with snr < 1.")


def check_q_sample(fn: Callable | None) -> bool:
    """Exercise 2: a student's q_sample(x0, t, alpha_bar, noise) must equal the closed form on random inputs."""
    name = "exercise 2 (q_sample)"
    if fn is None:
        return unanswered(name)
    g = torch.Generator().manual_seed(1)
    ab = Schedule.from_name("cosine", 1000).alpha_bar
    x0, noise = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1, torch.randn(4, 3, 8, 8, generator=g)
    for t in (0, 10, 500, 999):
        try:
            got = fn(x0, t, ab, noise)
        except NotImplementedError:
            return unanswered(name)
        want = q_sample(x0, t, ab, noise)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return report(name, False, f"return a tensor of shape {tuple(want.shape)}")
        if not torch.allclose(got.double(), want.double(), atol=1e-5):
            swapped = q_sample(noise, t, ab, x0)
            hint = ("the square roots are swapped: the signal is scaled by sqrt(alpha_bar_t)"
                    if torch.allclose(got.double(), swapped.double(), atol=1e-5)
                    else "x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise")
            return report(name, False, f"wrong at t={t}: {hint}")
    return report(name, True)


def check_iterated_forward(step: Callable | None, t: int = 300, n: int = 20_000) -> bool:
    """Exercise 3: t single steps x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps_s match q_sample in distribution."""
    name = "exercise 3 (t small steps = one big step)"
    if step is None:
        return unanswered(name)
    sched = Schedule.from_name("linear", 1000)
    g = torch.Generator().manual_seed(3)
    x0 = torch.full((n,), 0.8, dtype=torch.float64)
    x = x0.clone()
    try:
        for s in range(t + 1):  # steps 0 .. t, as alpha_bar_t multiplies (1 - beta_s) for s <= t
            x = step(x, sched.betas[s], torch.randn(n, generator=g, dtype=torch.float64))
    except NotImplementedError:
        return unanswered(name)
    ab = sched.alpha_bar[t]
    mean, std = float(ab.sqrt() * 0.8), float((1 - ab).sqrt())
    got_mean, got_std = float(x.mean()), float(x.std())
    # 20,000 samples: the mean is known to +-4 standard errors, the std to about 3%.
    ok = abs(got_mean - mean) < 4 * std / n**0.5 and abs(got_std - std) < 0.03 * std
    msg = f"after {t + 1} steps mean {got_mean:.3f} (want {mean:.3f}), std {got_std:.3f} (want {std:.3f})"
    return report(name, ok, msg if not ok else "")
