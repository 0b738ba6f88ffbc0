"""Interactive views for the labs (installed as ``mmdiff_lab.widgets``).

Each view is a logic class (traitlets, no ipywidgets, tested on its own) and a constructor that lays
out ipywidgets controls linked to it and returns the widget without displaying it.
"""

__all__ = ["ForwardNoising", "ForwardNoisingExplorer"]


def __getattr__(name):  # import a view only when asked for, so importing the logic needs no ipywidgets
    if name == "ForwardNoising":
        from .forward_logic import ForwardNoising

        return ForwardNoising
    if name == "ForwardNoisingExplorer":
        from .forward import ForwardNoisingExplorer

        return ForwardNoisingExplorer
    raise AttributeError(name)
