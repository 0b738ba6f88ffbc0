"""Cross-modal retrieval and zero-shot classification from a similarity matrix."""

from __future__ import annotations

import torch
from torch import Tensor


def recall_at_k(sim: Tensor, query_keys: Tensor, candidate_keys: Tensor, k: int = 1) -> float:
    """Share of queries with a correct candidate among their k most similar.

    A candidate is correct when its key equals the query's: in ShapesWorld the key is the attribute set,
    since scenes repeat and any image with the caption's attributes is a right answer.

    Args:
        sim: (Q, C) similarities of each query to each candidate.
        query_keys: (Q,) ids; candidate_keys: (C,) ids.
    """
    top = sim.topk(min(k, sim.shape[1]), dim=1).indices  # (Q, k)
    hits = (candidate_keys[top] == query_keys[:, None]).any(dim=1)
    return hits.float().mean().item()


def zero_shot_accuracy(image_embeds: Tensor, class_embeds: Tensor, labels: Tensor) -> float:
    """Classify each image as the class whose text embedding is nearest (Radford et al., 2021, Sec. 3.1).

    Args:
        image_embeds: (N, E) unit norm; class_embeds: (K, E) unit norm, one per class; labels: (N,).
    """
    pred = (image_embeds @ class_embeds.T).argmax(dim=1)
    return (pred == labels).float().mean().item()


def class_embedding(text_embeds: Tensor) -> Tensor:
    """Average several prompts' embeddings of one class and renormalise (prompt ensembling); (P, E) -> (E,)."""
    return torch.nn.functional.normalize(text_embeds.mean(0), dim=-1)
