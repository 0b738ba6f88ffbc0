"""Interactive views for the labs (installed as ``mmdiff_lab.widgets``).

Each view is a logic class (traitlets, no ipywidgets, tested on its own) and a constructor that lays
out ipywidgets controls linked to it and returns the widget without displaying it.
"""

import importlib

_VIEWS = {
    "ForwardNoising": "forward_logic",
    "ForwardNoisingExplorer": "forward",
    "EmbeddingAlignment": "alignment_logic",
    "EmbeddingAlignmentExplorer": "alignment",
    "DenoisingStepping": "denoising_logic",
    "DenoisingStepper": "denoising",
    "CrossAttentionExploring": "attention_logic",
    "CrossAttentionExplorer": "attention",
    "CaptionUnmasking": "captions_logic",
    "CaptionRanking": "captions_logic",
    "CaptionUnmasker": "captions",
    "SamplerRacing": "race_logic",
    "SamplerRace": "race",
    "AugmentationCurves": "race_logic",
    "AugmentationView": "race",
}
__all__ = list(_VIEWS)


def __getattr__(name):  # import a view only when asked for, so importing the logic needs no ipywidgets
    if name in _VIEWS:
        return getattr(importlib.import_module(f".{_VIEWS[name]}", __name__), name)
    raise AttributeError(name)
