"""mmdiff-lab: a compact library for teaching and inspecting multimodal diffusion models.

Headless on purpose: nothing here imports ipywidgets or Jupyter; the views live in ``mmdiff_lab.widgets``.
"""

__version__ = "0.1.0"
