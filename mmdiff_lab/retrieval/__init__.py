"""Ranking captions for an image three ways: by how well each caption helps the text-to-image model denoise it
(Diffusion Classifier), by the caption denoiser's likelihood bound, and by the dual encoder's cosine similarity;
and the hard negatives (swapped colours, swapped relation, one attribute changed) they are compared on."""

from .negatives import NEGATIVE_KINDS, hard_negatives, queries
from .scorers import DenoisingErrorScorer, DualEncoderScorer, LikelihoodScorer, check_candidates

__all__ = ["NEGATIVE_KINDS", "DenoisingErrorScorer", "DualEncoderScorer", "LikelihoodScorer", "check_candidates",
           "hard_negatives", "queries"]
