"""The sinusoidal tables come from diffusers; they must equal the formulas the trained weights were made with,
bit for bit, or the shipped models would see shifted inputs."""

import math

import torch
from diffusers import DDPMScheduler

from mmdiff_lab.models.blocks import sincos_2d, timestep_embedding


def test_timestep_embedding_is_ddpm_sinusoid_cosines_first():
    t = torch.tensor([0, 1, 10, 500, 999])
    dim, half = 128, 64
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    assert torch.equal(timestep_embedding(t, dim), torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


def test_sincos_2d_rows_then_columns_in_raster_order():
    side, dim = 8, 64
    quarter = dim // 4
    freqs = 1.0 / 10_000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    pos = sincos_2d(side, dim)
    assert pos.shape == (side * side, dim) and pos.dtype == torch.float32
    for n in (0, 1, side, side * side - 1):
        r, c = divmod(n, side)
        row, col = r * freqs, c * freqs
        expected = torch.cat([row.sin(), row.cos(), col.sin(), col.cos()])
        assert torch.equal(pos[n], expected), f"patch {n} (row {r}, column {c})"


def test_v_target_is_salimans_ho_velocity():
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 250, 600, 999])
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(sched.get_velocity(x0, eps, t), a.sqrt() * eps - (1 - a).sqrt() * x0)
