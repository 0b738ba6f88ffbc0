"""Sampling: the text-to-image pipeline and what it is made of.

    text_to_image.py   TextToImagePipeline (a diffusers DiffusionPipeline) and load_pipeline
    samplers.py        the sampler registry (diffusers schedulers), argument ranges, the recommended settings
    prompts.py         prompt syntax: per-word weights, weighted sums of prompts, stages
    trajectory.py      the record of one run, and TrajectoryRecorder, the callback that fills it
"""

from .prompts import Stage
from .text_to_image import TextToImagePipeline, load_pipeline
from .trajectory import Trajectory, TrajectoryRecorder

__all__ = ["Stage", "TextToImagePipeline", "Trajectory", "TrajectoryRecorder", "load_pipeline"]
