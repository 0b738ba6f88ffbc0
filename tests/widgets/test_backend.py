"""Importing the widgets and drawing every view leaves the notebook's matplotlib backend as it was: a view
that switched it to Agg would make every later plt.show() in the student's notebook show nothing."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
sys.path[:0] = [{tests!r}, {widget_tests!r}]
import matplotlib
before = matplotlib.get_backend()
import mmdiff_lab.widgets as views
from conftest import tiny_t2i_pipeline
from widgets.conftest import parts

models, tok, pool, attrs, prior = parts.__wrapped__()
views.ForwardNoisingExplorer(t=300).t.value = 600
alignment = views.EmbeddingAlignmentExplorer(views.EmbeddingAlignment(models, ["a", "b", "c"], tok, pool, attrs,
                                                                      prior=prior, method="pca"))
alignment.query.value = "a small red circle on the left"
alignment.colour_by.value = "colour"
stepper = views.DenoisingStepper(pipeline=tiny_t2i_pipeline(), steps=2)
stepper.run_button.click()
assert stepper.state.error == "", stepper.state.error
print(before, "->", matplotlib.get_backend())
"""


def test_drawing_every_view_keeps_the_users_backend():
    backend = "module://matplotlib_inline.backend_inline"  # JupyterLab's, where plt.show() must keep working
    script = SCRIPT.format(tests=str(TESTS), widget_tests=str(TESTS / "widgets"))
    env = {**os.environ, "MPLBACKEND": backend}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-3:] == [backend, "->", backend]
