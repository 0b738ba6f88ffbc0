"""`mmdiff-lab doctor`: is this environment able to run the labs? Versions, threads, checkpoints, and advice.

The common failure it explains is JupyterLab's "Error displaying widget": the kernel's ipywidgets and
the JupyterLab widget extension (jupyterlab_widgets) are missing or from different major versions.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import pretrained

INSTALL = "run `make lab` (or: pip install -e '.[lab,interp]') in the project folder"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    advice: str = ""
    required: bool = True


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _major(v: str | None) -> int | None:
    return int(v.split(".")[0]) if v and v.split(".")[0].isdigit() else None


def _package(dist: str, need_major: int | None, why: str, required: bool = True) -> Check:
    v = _version(dist)
    if v is None:
        return Check(dist, False, "not installed", f"{dist} is needed {why}; {INSTALL}", required)
    if need_major is not None and _major(v) != need_major:
        return Check(dist, False, f"{v} (need {need_major}.x)",
                     f"{dist} {need_major}.x is needed {why}: pip install '{dist}>={need_major},<{need_major + 1}'",
                     required)
    return Check(dist, True, v, required=required)


def widget_extension() -> Check:
    """The JupyterLab widget manager extension, as installed for this Python (prebuilt, in share/jupyter)."""
    pkg = Path(sys.prefix) / "share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager/package.json"
    if not pkg.is_file():
        return Check("widget extension", False, f"missing ({pkg})",
                     "JupyterLab cannot show widgets ('Error displaying widget'): pip install 'jupyterlab_widgets>=3,<4', "
                     "then restart JupyterLab")
    js = json.loads(pkg.read_text()).get("version", "?")
    ext, ipyw = _version("jupyterlab_widgets"), _version("ipywidgets")
    # jupyterlab_widgets 3.x (JS jupyterlab-manager 5.x) renders ipywidgets 8.x; other pairs show 'Error displaying widget'.
    if _major(ipyw) == 8 and _major(ext) != 3:
        return Check("widget extension", False, f"jupyterlab_widgets {ext} with ipywidgets {ipyw}",
                     "the extension and ipywidgets do not match: pip install 'ipywidgets>=8,<9' 'jupyterlab_widgets>=3,<4'")
    return Check("widget extension", True, f"jupyterlab_widgets {ext} (jupyterlab-manager {js})")


def checks() -> list[Check]:
    import torch

    out = [
        Check("python", sys.version_info >= (3, 10), sys.version.split()[0], "Python 3.10 or newer is needed"),
        Check("torch", True, f"{torch.__version__} (CUDA {'yes' if torch.cuda.is_available() else 'no, CPU is fine'})"),
        Check("threads", True, f"torch uses {torch.get_num_threads()} threads"),
        _package("diffusers", None, "for schedulers, attention processors and pipelines"),
        _package("ipywidgets", 8, "to show the labs' widgets"),
        _package("jupyterlab", 4, "to open the labs"),
        _package("ipykernel", None, "to run notebooks"),
        widget_extension(),
        _package("captum", None, "by lab 04 (attributions)"),
        _package("umap-learn", None, "by lab 02's UMAP view (it falls back to PCA without it)", required=False),
    ]
    have = pretrained.available()
    missing = [n for n in pretrained.EXPECTED if n not in have]
    out.append(Check("checkpoints", not missing, ", ".join(have) if have else "none shipped yet",
                     f"missing shipped checkpoints {missing}: reinstall the project from a full clone" if missing else ""))
    return out


def main() -> int:
    """Print every check; return 1 when something a lab needs is missing or mismatched."""
    results = checks()
    width = max(len(c.name) for c in results)
    for c in results:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        print(f"{mark}  {c.name.ljust(width)}  {c.detail}")
    problems = [c for c in results if not c.ok]
    for c in problems:
        print(f"\n{'Problem' if c.required else 'Note'} ({c.name}): {c.advice}")
    failed = any(c.required for c in problems)
    print("\nAll set: `make lab` opens the labs." if not failed else "\nFix the problems above, then run `mmdiff-lab doctor` again.")
    return 1 if failed else 0
