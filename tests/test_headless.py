"""The library is headless: importing all of it never imports ipywidgets (the layers depend one way: notebooks -> widgets -> mmdiff_lab)."""

import pkgutil
import subprocess
import sys

import mmdiff_lab


def _library_modules():
    return [m.name for m in pkgutil.walk_packages(mmdiff_lab.__path__, "mmdiff_lab.")
            if not m.name.startswith("mmdiff_lab.widgets")]


def _imports_ipywidgets(modules):
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print('ipywidgets' in sys.modules)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_library_never_imports_ipywidgets():
    modules = _library_modules()
    assert "mmdiff_lab.schedules" in modules and "mmdiff_lab.cli" in modules
    assert _imports_ipywidgets(modules) == "False"


def test_widget_logic_needs_no_ipywidgets():
    assert _imports_ipywidgets(["mmdiff_lab.widgets.forward_logic", "mmdiff_lab.widgets.captions_logic",
                                "mmdiff_lab.widgets.bench"]) == "False"


def test_widgets_live_outside_the_library_folder():
    import mmdiff_lab.widgets

    assert "mmdiff_lab" not in mmdiff_lab.widgets.__file__.split("/")[-2]
