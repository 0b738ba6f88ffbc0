"""Lab 06: augmentation with generated pairs, measured against a scarce real set and an upper bound of more real
data (``protocol``), the generated pairs and their filters (``generated``), the models trained (``students``) and
the curves (``plot``)."""

from .generated import Pairs, captions_from_images, filter_mask, images_from_captions, real_pairs
from .protocol import (
    ARMS,
    VALIDATION_SEED,
    AugmentConfig,
    AugmentResult,
    gap_fraction,
    load_results,
    run_protocol,
    save_results,
)
from .students import STUDENTS, ClipStudent, JudgeStudent, Recipe, train_student

__all__ = [
    "ARMS", "STUDENTS", "VALIDATION_SEED", "AugmentConfig", "AugmentResult", "ClipStudent", "JudgeStudent", "Pairs",
    "Recipe", "captions_from_images", "filter_mask", "gap_fraction", "images_from_captions", "load_results",
    "real_pairs", "run_protocol", "save_results", "train_student",
]
