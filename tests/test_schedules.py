"""Schedules against diffusers, reference DDPM/DDIM steps against diffusers' step(), and properties."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff_lab import schedules as S

DIFFUSERS_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2",
                   "sigmoid": "sigmoid"}


@pytest.mark.parametrize("name", list(S.SCHEDULES))
@pytest.mark.parametrize("zero_terminal_snr", [False, True])
@pytest.mark.parametrize("T", [1000, 50])
def test_alpha_bar_equals_diffusers(name, zero_terminal_snr, T):
    kw = {"beta_start": 0.00085, "beta_end": 0.012} if name == "scaled_linear" else {}
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=DIFFUSERS_NAMES[name],
                        rescale_betas_zero_snr=zero_terminal_snr, **kw)
    ours = S.alpha_bar(S.get_betas(name, T, zero_terminal_snr, **kw))
    assert ours.shape == (T,)
    assert torch.allclose(ours.float(), ref.alphas_cumprod, atol=1e-6)
    # diffusers rescales in float32, we in float64: equal to float32's relative precision
    assert torch.allclose(S.get_betas(name, T, zero_terminal_snr, **kw).float(), ref.betas, rtol=1e-4, atol=1e-6)


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'.*cosine"):
        S.get_betas("cosin")


@pytest.mark.parametrize("t", [999, 998, 500, 1, 0])
@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("clip", [False, True])
def test_ddpm_step_equals_diffusers(t, schedule, clip):
    sched = DDPMScheduler(beta_schedule=schedule, clip_sample=clip)
    g = torch.Generator().manual_seed(t)
    x_t, eps = torch.randn(2, 3, 8, 8, generator=g) * 1.5, torch.randn(2, 3, 8, 8, generator=g)
    ref = sched.step(eps, t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))
    ours = S.ddpm_step(eps, t, x_t, sched.alphas_cumprod, noise, clip_sample=1.0 if clip else None)
    assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("steps", [10, 50])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_step_equals_diffusers(steps, eta, clip):
    sched = DDIMScheduler(clip_sample=clip)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(steps)
    x_t, eps = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    stride = 1000 // steps
    for t in sched.timesteps.tolist():
        ref = sched.step(eps, t, x_t, eta=eta, generator=torch.Generator().manual_seed(t)).prev_sample
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(t))
        ours = S.ddim_step(eps, t, t - stride, x_t, sched.alphas_cumprod, eta=eta, noise=noise,
                           clip_sample=1.0 if clip else None)
        assert torch.allclose(ours, ref, atol=1e-5), t


def test_ddpm_step_needs_noise_before_the_last_step():
    ab = S.alpha_bar(S.linear_betas(10))
    with pytest.raises(ValueError, match="noise"):
        S.ddpm_step(torch.zeros(1, 3, 4, 4), 5, torch.zeros(1, 3, 4, 4), ab)


def test_q_sample_closed_form_and_batched_t():
    ab = S.alpha_bar(S.cosine_betas(100))
    x0, noise = torch.ones(3, 1, 2, 2), torch.full((3, 1, 2, 2), -1.0)
    t = torch.tensor([0, 50, 99])
    x_t = S.q_sample(x0, t, ab, noise)
    for b in range(3):
        a = ab[t[b]]
        assert torch.allclose(x_t[b], (a.sqrt() - (1 - a).sqrt()).float().expand(1, 2, 2))


def test_q_sample_matches_diffusers_add_noise():
    sched = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    ours = S.q_sample(x0, t, sched.alphas_cumprod, noise)
    assert torch.allclose(ours, sched.add_noise(x0, noise, t), atol=1e-6)


def test_q_sample_preserves_unit_variance():
    """With Var(x0) = 1 the forward process keeps Var(x_t) = 1 at every t (variance preserving)."""
    ab = S.alpha_bar(S.linear_betas(1000))
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(200_000, generator=g), torch.randn(200_000, generator=g)
    for t in (0, 250, 999):
        assert abs(S.q_sample(x0, t, ab, noise).var().item() - 1) < 0.02


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(list(S.SCHEDULES)), T=st.integers(2, 2000), zero=st.booleans())
def test_schedule_properties(name, T, zero):
    betas = S.get_betas(name, T, zero)
    ab = S.alpha_bar(betas)
    assert betas.shape == ab.shape == (T,)
    assert ((betas > 0) & (betas <= 1)).all()
    assert ((ab >= 0) & (ab < 1)).all()
    assert (ab[1:] <= ab[:-1]).all(), "signal only ever fades"
    log_snr = S.log_snr(ab)
    assert (log_snr[1:] <= log_snr[:-1]).all(), "log SNR falls monotonically"
    if zero:
        assert ab[-1] == 0 and torch.isneginf(log_snr[-1])
        assert torch.isclose(ab[0], S.alpha_bar(S.get_betas(name, T))[0]), "the first step is unchanged"
    else:
        assert ab[-1] > 0


@settings(max_examples=30, deadline=None)
@given(t=st.integers(0, 999), scale=st.floats(0.1, 3.0))
def test_predict_x0_inverts_q_sample(t, scale):
    ab = S.alpha_bar(S.linear_betas(1000))
    g = torch.Generator().manual_seed(t)
    x0, eps = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) * scale, torch.randn(
        2, 3, 4, 4, generator=g, dtype=torch.float64)
    x_t = S.q_sample(x0, t, ab, eps)
    assert torch.allclose(S.predict_x0(x_t, eps, ab[t]), x0, atol=1e-6 / ab[t].sqrt().item())


def test_schedule_dataclass_quantities():
    s = S.Schedule.from_name("linear", 100)
    assert s.T == 100 and s.name == "linear"
    assert torch.allclose(s.snr, s.alpha_bar / (1 - s.alpha_bar))
    with pytest.raises(ValueError, match="at least 2"):
        S.Schedule.from_name("linear", 1)
