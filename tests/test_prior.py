"""The embedding prior: an oracle that always predicts the true x0 makes the sampler land on it exactly."""

import pytest
import torch
import torch.nn.functional as F

from mmdiff_lab.loading import load_prior
from mmdiff_lab.models.blocks import timestep_embedding
from mmdiff_lab.models.prior import EmbeddingPrior
from mmdiff_lab.pipelines.trajectory import Trajectory
from mmdiff_lab.training.checkpoint import CheckpointError


class Oracle(EmbeddingPrior):
    """Predicts x0 = the condition itself (scaled), whatever x_t is: the sampler must end there."""

    def forward(self, x_t, t, text_embeds):
        return text_embeds * self.scale


def test_oracle_prior_samples_its_condition():
    prior = Oracle(embed_dim=8, width=16, depth=1)
    cond = F.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    traj = Trajectory()
    out = prior.sample(cond, steps=10, generator=torch.Generator().manual_seed(1), trajectory=traj)
    assert out.shape == (5, 8)
    assert torch.allclose(out, cond, atol=1e-5)
    assert len(traj) == 10 and traj.stack("x0_pred").shape == (10, 5, 8)
    assert traj.timesteps == sorted(traj.timesteps, reverse=True)


def test_sampling_is_seeded_and_checks_steps():
    torch.manual_seed(0)
    prior = EmbeddingPrior(embed_dim=8, width=16, depth=1).eval()
    cond = F.normalize(torch.ones(2, 8), dim=1)
    a = prior.sample(cond, steps=5, generator=torch.Generator().manual_seed(3))
    b = prior.sample(cond, steps=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.allclose(a.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="steps must be positive"):
        prior.sample(cond, steps=0)


def test_timestep_embedding():
    emb = timestep_embedding(torch.tensor([0, 10, 999]), 128)
    assert emb.shape == (3, 128) and torch.allclose(emb[0, :64], torch.ones(64))


def test_save_load_and_errors(tmp_path):
    prior = EmbeddingPrior(embed_dim=8, width=16, depth=1)
    prior.save_pretrained(tmp_path / "p")
    again = load_prior(tmp_path / "p")
    x = torch.randn(2, 8)
    t = torch.tensor([3, 500])
    assert torch.allclose(again(x, t, x), prior.eval()(x, t, x))
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_prior(tmp_path / "none")
