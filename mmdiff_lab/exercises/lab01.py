"""Checks for lab 01, forward noising."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..schedules import Schedule, q_sample
from . import NotYet, call, exercise, need_function, need_int, need_tensor


def snr_crossing(schedule: str = "linear", T: int = 1000) -> int:
    """The first t at which SNR(t) = alpha_bar / (1 - alpha_bar) drops below 1."""
    return int((Schedule.from_name(schedule, T).snr < 1).nonzero()[0])


@exercise("exercise 1 (SNR crossing)")
def check_snr_crossing(answer: int | None, schedule: str = "linear", T: int = 1000) -> bool:
    """Exercise 1: the first timestep at which noise outweighs signal (SNR < 1)."""
    t = need_int(answer, 0, T - 1, "the timestep t")
    truth = snr_crossing(schedule, T)
    if t != truth:
        hint = "too early: SNR is still above 1 there" if t < truth else "too late: SNR fell below 1 before that"
        raise NotYet(f"{t} is {hint}. Compute snr = alpha_bar / (1 - alpha_bar) and find the first t with snr < 1.")


@exercise("exercise 2 (q_sample)")
def check_q_sample(fn: Callable | None) -> bool:
    """Exercise 2: a student's q_sample(x0, t, alpha_bar, noise) must equal the closed form on random inputs."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(1)
    ab = Schedule.from_name("cosine", 1000).alpha_bar
    x0, noise = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1, torch.randn(4, 3, 8, 8, generator=g)
    for t in (0, 10, 500, 999):
        want = q_sample(x0, t, ab, noise)
        got = need_tensor(call(fn, x0, t, ab, noise), want, f"q_sample at t={t}")
        if not torch.allclose(got.double(), want.double(), atol=1e-5):
            swapped = q_sample(noise, t, ab, x0)
            hint = ("the square roots are swapped: the signal is scaled by sqrt(alpha_bar_t)"
                    if torch.allclose(got.double(), swapped.double(), atol=1e-5)
                    else "x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise")
            raise NotYet(f"wrong at t={t}: {hint}")


@exercise("exercise 3 (t small steps = one big step)")
def check_iterated_forward(step: Callable | None, t: int = 300, n: int = 20_000) -> bool:
    """Exercise 3: t single steps x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps_s match q_sample in distribution."""
    step = need_function(step)
    sched = Schedule.from_name("linear", 1000)
    g = torch.Generator().manual_seed(3)
    x = torch.full((n,), 0.8, dtype=torch.float64)
    for s in range(t + 1):  # steps 0 .. t, as alpha_bar_t multiplies (1 - beta_s) for s <= t
        x = need_tensor(call(step, x, sched.betas[s], torch.randn(n, generator=g, dtype=torch.float64)), x,
                        f"the step's result at s={s}")
    ab = sched.alpha_bar[t]
    mean, std = float(ab.sqrt() * 0.8), float((1 - ab).sqrt())
    got_mean, got_std = float(x.mean()), float(x.std())
    # 20,000 samples: the mean is known to +-4 standard errors, the std to about 3%.
    if not (abs(got_mean - mean) < 4 * std / n**0.5 and abs(got_std - std) < 0.03 * std):
        raise NotYet(f"after {t + 1} steps mean {got_mean:.3f} (want {mean:.3f}), std {got_std:.3f} (want {std:.3f})")
