"""Measures of what the models learned: retrieval, zero-shot accuracy, and the geometry of the shared space."""

from .embedding import alignment, modality_gap, uniformity
from .retrieval import recall_at_k, zero_shot_accuracy

__all__ = ["alignment", "modality_gap", "recall_at_k", "uniformity", "zero_shot_accuracy"]
