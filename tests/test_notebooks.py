"""Course notebooks: stored clean and paired with their py:percent text, and each runs top to bottom on a
fresh kernel with small parameters, within its time budget."""

import time

import jupytext
import nbformat
import pytest
from conftest import NOTEBOOKS
from nbclient import NotebookClient

ALL = sorted(NOTEBOOKS.glob("**/*.ipynb"))
# Small sizes for the tests, injected after each notebook's `parameters` cell (as papermill does).
PARAMETERS = {
    "00_tour.ipynb": "N_EXAMPLES = 4",
    "01_forward_noising.ipynb": "T = 200\nN_SHOW = 4",
    "solutions/01_forward_noising.ipynb": "",
    "02_shared_space.ipynb": 'PRESET = "tiny"\nSTEPS = 20\nPOOL = 300\nSNAPSHOT_EVERY = 10\nN_SHOW = 100\nMAP = "pca"',
    "solutions/02_shared_space.ipynb": "",
    "03_text_to_image.ipynb": "N_PROMPTS = 4\nSCALES = (1.0, 3.0)\nSTEP_COUNTS = (2,)\nTRAIN_STEPS = 3",
    "solutions/03_text_to_image.ipynb": "",
}
BUDGET_S = 60  # each lab runs in under a minute on 2 cores


def _name(path):
    return str(path.relative_to(NOTEBOOKS))


def test_every_notebook_is_tested():
    assert {_name(p) for p in ALL} == set(PARAMETERS)


@pytest.mark.parametrize("path", ALL, ids=_name)
def test_stored_clean_with_kernelspec_and_parameters(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3", "JupyterLab asks for a kernel without it"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "notebooks go into git without outputs"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)


@pytest.mark.parametrize("path", ALL, ids=_name)
def test_paired_with_py_percent(path):
    text = path.with_suffix(".py")
    assert text.exists(), f"{text.name} (jupytext py:percent) is missing"
    from_text = jupytext.read(text)
    stored = nbformat.read(path, as_version=4)
    assert [c.source for c in from_text.cells] == [c.source for c in stored.cells], (
        f"{path.name} and {text.name} differ: run `jupytext --sync {text}`")


def _inject(nb, code: str):
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    if code:
        cell = nbformat.v4.new_code_cell(code, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(index + 1, cell)
    return nb


@pytest.mark.notebook
@pytest.mark.parametrize("path", ALL, ids=_name)
def test_runs_top_to_bottom(path, tmp_path):
    nb = _inject(nbformat.read(path, as_version=4), PARAMETERS[_name(path)])
    start = time.perf_counter()
    NotebookClient(nb, timeout=BUDGET_S, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # runs/ goes to tmp
    seconds = time.perf_counter() - start
    assert seconds < BUDGET_S, f"{path.name} took {seconds:.0f} s"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    if "solutions" in str(path):
        assert text.count("✓") == 3 and "✗" not in text
    else:
        assert text.count("not answered yet") == (3 if path.name[:2] in ("01", "02", "03") else 0), (
            "the student version runs with the exercises open")
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets or "solutions" in str(path), "the lab shows its widget"
