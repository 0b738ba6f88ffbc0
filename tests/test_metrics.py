"""Retrieval and geometry metrics on analytic cases with known answers."""

import math

import torch

from mmdiff_lab.metrics import alignment, modality_gap, recall_at_k, uniformity, zero_shot_accuracy


def test_recall_counts_any_candidate_with_the_same_key():
    sim = torch.tensor([[0.9, 0.1, 0.8], [0.2, 0.3, 0.1], [0.0, 0.5, 0.4]])
    keys = torch.tensor([0, 1, 0])
    # query 0 -> cand 0 (key 0) hit; query 1 -> cand 1 hit; query 2 (key 0) -> cand 1 (key 1) miss at k=1
    assert math.isclose(recall_at_k(sim, keys, keys, 1), 2 / 3, rel_tol=1e-6)
    assert recall_at_k(sim, keys, keys, 2) == 1.0


def test_zero_shot():
    classes = torch.eye(3)
    images = torch.tensor([[1.0, 0, 0], [0, 0.9, 0.1], [0.6, 0, 0.8]])
    assert zero_shot_accuracy(images, classes, torch.tensor([0, 1, 2])) == 1.0
    assert math.isclose(zero_shot_accuracy(images, classes, torch.tensor([0, 2, 2])), 2 / 3, rel_tol=1e-6)


def test_alignment_uniformity_gap():
    x = torch.nn.functional.normalize(torch.randn(200, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    assert alignment(x, x) == 0.0
    assert math.isclose(alignment(x, -x), 4.0, rel_tol=1e-5)  # ||x - (-x)||^2 = 4 for unit vectors
    same = torch.nn.functional.normalize(torch.ones(50, 8), dim=1)
    assert math.isclose(uniformity(same), 0.0, abs_tol=1e-6)  # all points equal: log E exp(0) = 0
    assert uniformity(x) < -1.0
    assert math.isclose(modality_gap(x, x), 0.0, abs_tol=1e-6)
    shifted = torch.zeros(10, 8)
    shifted[:, 0] = 1
    assert math.isclose(modality_gap(shifted, -shifted), 2.0, rel_tol=1e-6)
