"""The code is course material: ruff's checks (pyproject.toml) hold for the whole tree."""

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_ruff_passes():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a dev dependency: pip install -e '.[dev]'"
    out = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
