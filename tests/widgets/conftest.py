"""Tiny untrained dual encoders, a held-out pool and a prior: enough to drive the alignment views."""

import pytest
import torch

from mmdiff_lab.data import ShapesWorld
from mmdiff_lab.data.pairs import heldout_pool, world_tokenizer
from mmdiff_lab.models.encoders import DualEncoder
from mmdiff_lab.models.prior import EmbeddingPrior


@pytest.fixture(scope="session")
def parts():
    tok = world_tokenizer(ShapesWorld())
    models = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        models.append(DualEncoder.from_preset("tiny", len(tok), tok.max_length).eval())
    pool = heldout_pool(tok, 60)
    scenes = [ShapesWorld(seed=123, split="heldout", size=60).scene(i)[0] for i in range(60)]
    torch.manual_seed(0)
    prior = EmbeddingPrior(embed_dim=models[0].config.embed_dim, width=32, depth=1).eval()
    return models, tok, pool, {"colour": [s.objects[0].colour for s in scenes]}, prior


