"""Course notebooks: stored clean and paired with their py:percent text, and each runs top to bottom on a
fresh kernel with small parameters, drawing every figure it should. How long a lab takes at its default
parameters is a figure of `mmdiff-lab bench --only notebooks`, not a test: a busy machine must not fail one."""

import re

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
    "03_text_to_image.ipynb": "N_PROMPTS = 4\nN_PAIRS = 2\nSCALES = (1.0, 3.0)\nSTEP_COUNTS = (2,)\nTRAIN_STEPS = 3",
    "solutions/03_text_to_image.ipynb": "",
    "04_attention_attribution.ipynb": "N_PROMPTS = 2\nIG_STEPS = 8",
    "solutions/04_attention_attribution.ipynb": "",
    "05_image_to_text.ipynb": "",  # its defaults are small: a Run All at them is what a class waits for
    "solutions/05_image_to_text.ipynb": "",
    "06_efficiency_augmentation.ipynb": "",  # its defaults are small: a Run All at them is what a class waits for
    "solutions/06_efficiency_augmentation.ipynb": "",
}
# The figures each lab draws with plt.show() in a top-to-bottom run (lab 02's loss curve waits for its
# background training, so a Run All does not draw it).
FIGURES = {"00_tour.ipynb": 5, "01_forward_noising.ipynb": 2, "02_shared_space.ipynb": 1, "03_text_to_image.ipynb": 6,
           "04_attention_attribution.ipynb": 6, "05_image_to_text.ipynb": 5,
           "06_efficiency_augmentation.ipynb": 6}
# Appended to a notebook to check what its cells left behind. Lab 02: the background run ends, and the live
# explorer then holds every snapshot it wrote (20 steps, one every 10) beside the untrained model.
AFTER = {
    "02_shared_space.ipynb": "training.wait(timeout=600)\nexplorer_live.join(timeout=120)\n"
                             "print('checkpoints on the slider:', live.labels)",
}
CELL_TIMEOUT_S = 600  # generous: a busy machine is slow, not broken


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


def inject(nb, code: str):
    """The notebook with ``code`` in a cell right after its `parameters` cell (papermill's convention)."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    if code:
        cell = nbformat.v4.new_code_cell(code, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(index + 1, cell)
    return nb


def _text(outputs) -> str:
    return "".join(o.get("text", "") for o in outputs)


@pytest.mark.notebook
@pytest.mark.parametrize("path", ALL, ids=_name)
def test_runs_top_to_bottom(path, tmp_path):
    name = _name(path)
    nb = inject(nbformat.read(path, as_version=4), PARAMETERS[name])
    if name in AFTER:
        nb.cells.append(nbformat.v4.new_code_cell(AFTER[name]))
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # runs/ goes to tmp
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = _text(outputs)
    if "solutions" in name:
        assert text.count("✓") == 3 and "✗" not in text
    else:
        assert text.count("not answered yet") == (3 if path.name[:2] in ("01", "02", "03", "04", "05", "06") else 0), (
            "the student version runs with the exercises open")
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets or "solutions" in name, "the lab shows its widget"
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == FIGURES.get(name, 0), "every plt.show() draws its figure (the backend is the user's)"
    if name == "02_shared_space.ipynb":
        assert "checkpoints on the slider: ['untrained', 'step 10', 'step 20']" in text
    if name == "03_text_to_image.ipynb":
        differences = [float(x) for x in re.findall(r"max \|ours - diffusers\| = (\S+)", text)]
        assert len(differences) == 2 and max(differences) < 1e-5, differences
    if name == "04_attention_attribution.ipynb":
        by_hand = [float(x) for x in re.findall(r"max \|A by hand - A recorded\| = (\S+);", text)]
        assert len(by_hand) == 1 and by_hand[0] < 1e-5, by_hand
        assert "layers hooked: ['blocks.0.attn2', 'blocks.1.attn2', 'blocks.2.attn2', 'blocks.3.attn2'], kept: " \
               "['blocks.0.attn2']" in text
    if name == "05_image_to_text.ipynb":
        by_hand = [float(x) for x in re.findall(r"max \|by hand - nelbo_terms\| = (\S+)", text)]
        assert len(by_hand) == 1 and by_hand[0] < 1e-5, by_hand
    if name == "solutions/05_image_to_text.ipynb":
        assert "same captions as the library's sampler: True" in text
    if name == "06_efficiency_augmentation.ipynb":
        identity = [float(x) for x in re.findall(r"max \|x0_from\(v\) - x_0\| = (\S+)", text)]
        assert len(identity) == 1 and identity[0] < 1e-5, identity
        assert "hinge L(D) = " in text and "true renders" in text and "gap recovered: real+generated" in text
    if name == "solutions/06_efficiency_augmentation.ipynb":
        assert "same front as the library's pareto_front on 200 random points: True" in text


def test_the_notebooks_bench_says_where_it_looked_when_the_labs_are_missing(tmp_path):
    from mmdiff_lab.bench import notebooks_folder

    assert notebooks_folder() == NOTEBOOKS
    with pytest.raises(SystemExit, match=r"lacks 00_tour.*installed with `pip install -e \.`"):
        notebooks_folder(tmp_path)


def test_the_notebooks_bench_times_run_all_and_a_background_run(tmp_path):
    from mmdiff_lab.bench import notebooks

    cells = ["from mmdiff_lab.training.background import BackgroundTraining",
             f"training = BackgroundTraining('clip', {str(tmp_path / 'run')!r}, preset='tiny', steps=3, pool_size=64, "
             "batch_size=16, eval_every=0, checkpoint_every=0)"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nbformat.write(nb, tmp_path / "lab.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), tmp_path / "broken.ipynb")
    figures = {f.key: f for f in notebooks(labs=("lab", "broken"), folder=tmp_path)}
    assert set(figures) == {"notebooks.lab_s", "notebooks.lab_background_training_s", "notebooks.broken_s"}
    assert 0 < figures["notebooks.lab_background_training_s"].value < float("inf")
    assert 0 < figures["notebooks.lab_s"].value < float("inf")
    assert figures["notebooks.broken_s"].value == float("inf") and figures["notebooks.broken_s"].ok is False
    assert "cell 0 FAILED: ZeroDivisionError" in figures["notebooks.broken_s"].note
