"""`mmdiff-lab ship`: only plain model names, never a source inside the shipped folder, and a swap that leaves
the old model intact whatever fails. Every test ships into a temporary pretrained root."""

import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdiff_lab import cli, pretrained


def _run(folder: Path, marker: str) -> Path:
    (folder / "denoiser").mkdir(parents=True)
    for name in ("config.json", "metrics.json", "denoiser/config.json"):
        (folder / name).write_text(marker)
    return folder


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "pkg" / "pretrained"
    _run(root / "other-model", "other")  # a shipped neighbour that nothing may touch
    (root / "__init__.py").write_text("# the package source beside the models\n")
    monkeypatch.setattr(pretrained, "ROOT", root)
    return root


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", [".", "..", "../escape", "a/b", "a\\b", "", "Clip", "-x", ".hidden", "_x",
                                  "x" * 65, "/abs", "name\n", "sp ace", "é"])
def test_a_name_that_is_not_a_plain_model_name_is_refused(root, tmp_path, capsys, name):
    before = _tree(tmp_path)
    run = _run(tmp_path / "run", "new")
    assert cli.main(["ship", "--", str(run), name]) == 2
    assert "is not a model name" in capsys.readouterr().err
    assert _tree(tmp_path) == {**before, **{f"run/{k}": v for k, v in _tree(run).items()}}


def test_shipping_a_model_onto_itself_or_from_inside_the_root_is_refused(root, capsys):
    _run(root / "demo", "old")
    for source in (root / "demo", root / "other-model", root, root / "demo" / "denoiser"):
        assert cli.main(["ship", str(source), "demo"]) == 2
        assert "must lie outside the shipped checkpoints" in capsys.readouterr().err
    assert _tree(root / "demo") == {"config.json": "old", "metrics.json": "old", "denoiser/config.json": "old"}


def test_a_source_that_contains_the_root_is_refused(root, capsys):
    parent = root.parent
    (parent / "config.json").write_text("{}")  # looks like a run, but holds the shipped models
    assert cli.main(["ship", str(parent), "demo"]) == 2
    assert "not contain them" in capsys.readouterr().err


def test_a_source_that_is_not_a_run_is_named(root, tmp_path, capsys):
    assert cli.main(["ship", str(tmp_path / "nowhere"), "demo"]) == 2
    assert "nowhere: not a finished training run" in capsys.readouterr().err


def test_ship_replaces_an_existing_model_and_touches_nothing_else(root, tmp_path, capsys):
    _run(root / "demo", "old")
    assert cli.main(["ship", str(_run(tmp_path / "run", "new")), "demo"]) == 0
    assert "shipped" in capsys.readouterr().out
    assert set(_tree(root / "demo").values()) == {"new"}
    assert sorted(p.name for p in root.iterdir()) == ["__init__.py", "demo", "other-model"]  # no temporary left
    assert set(_tree(root / "other-model").values()) == {"other"}


def _failing_copy(monkeypatch, at: int) -> None:
    real, calls = shutil.copy2, []

    def copy2(*args, **kwargs):
        calls.append(args)
        if len(calls) == at:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy2)


def test_a_failed_copy_leaves_the_old_model_intact(root, tmp_path, monkeypatch):
    _run(root / "demo", "old")
    _failing_copy(monkeypatch, at=2)
    with pytest.raises(OSError, match="No space left"):
        pretrained.ship(_run(tmp_path / "run", "new"), "demo")
    assert set(_tree(root / "demo").values()) == {"old"}
    assert sorted(p.name for p in root.iterdir()) == ["__init__.py", "demo", "other-model"]


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_failed_rename_leaves_the_old_model_in_place(root, tmp_path, monkeypatch, fail_at):
    _run(root / "demo", "old")
    real, calls = Path.rename, []

    def rename(self, target):
        calls.append(self)
        if len(calls) == fail_at:
            raise OSError(5, "Input/output error")
        return real(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError):
        pretrained.ship(_run(tmp_path / "run", "new"), "demo")
    assert set(_tree(root / "demo").values()) == {"old"}
    assert sorted(p.name for p in root.iterdir()) == ["__init__.py", "demo", "other-model"]


def test_a_ship_killed_between_its_renames_is_undone_by_the_next(root, tmp_path, monkeypatch):
    """A kill after the old model was set aside and before the new one was renamed in: the next ship puts the
    old one back before anything else, so even if that ship fails too, the old model is where it was."""
    _run(root / ".demo.old", "old")
    _run(root / ".demo.new", "half")
    assert pretrained.available() == ["other-model"]  # ship's temporaries are never listed
    with monkeypatch.context() as m:
        _failing_copy(m, at=1)
        with pytest.raises(OSError, match="No space left"):
            pretrained.ship(_run(tmp_path / "run", "new"), "demo")
    assert set(_tree(root / "demo").values()) == {"old"}
    assert sorted(p.name for p in root.iterdir()) == ["__init__.py", "demo", "other-model"]
    _run(root / ".demo.old", "stale")  # a kill while deleting the old copy, after the swap
    assert pretrained.ship(tmp_path / "run", "demo") == root / "demo"
    assert set(_tree(root / "demo").values()) == {"new"}
    assert sorted(p.name for p in root.iterdir()) == ["__init__.py", "demo", "other-model"]


def test_path_refuses_names_that_leave_the_root(root):
    for name in ("..", "../pretrained/other-model", "/etc", ".demo.old"):
        with pytest.raises(ValueError, match="is not a model name"):
            pretrained.path(name)
    assert pretrained.path("other-model") == root / "other-model"


@settings(max_examples=150, deadline=None)
@given(name=st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
       | st.text(alphabet="./-_abc\\ ", max_size=8))
def test_random_names_never_touch_anything_outside_the_root(name):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "pkg" / "pretrained"
        _run(root / "other-model", "other")
        (root.parent / "source.py").write_text("package source")
        run = _run(tmp / "run", "new")
        outside = {k: v for k, v in _tree(tmp).items() if not k.startswith("pkg/pretrained/")}
        with mock.patch.object(pretrained, "ROOT", root):
            try:
                target = pretrained.ship(run, name)
            except ValueError:
                target = None
        assert {k: v for k, v in _tree(tmp).items() if not k.startswith("pkg/pretrained/")} == outside
        assert set(_tree(root / "other-model").values()) == {"other"} or name == "other-model"
        if target is not None:
            assert target.parent == root and target.name == name and set(_tree(target).values()) == {"new"}


def test_shipped_files_are_readable_by_every_user(root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "config.json").chmod(0o600)  # as safetensors' save_file leaves its files
    shipped = pretrained.ship(run, "readable")
    assert (shipped / "config.json").stat().st_mode & 0o777 == 0o644


def _pipeline_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "TextToImagePipeline",
                                                         "default_guidance_scale": 3.0}))
    return folder


def test_ship_writes_the_recommended_guidance_into_a_pipeline(root, tmp_path):
    shipped = pretrained.ship(_pipeline_run(tmp_path / "t2i"), "t2i-demo", guidance_scale=1.5)
    index = json.loads((shipped / "model_index.json").read_text())
    assert index["default_guidance_scale"] == 1.5 and index["_class_name"] == "TextToImagePipeline"
    assert json.loads((tmp_path / "t2i" / "model_index.json").read_text())["default_guidance_scale"] == 3.0


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -1.0, 51.0])
def test_ship_refuses_a_bad_guidance_before_touching_anything(root, tmp_path, bad):
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(ValueError, match=r"--guidance must be a number in \[0, 50\]"):
        pretrained.ship(_pipeline_run(tmp_path / "t2i"), "other-model", guidance_scale=bad)
    assert sorted(p.name for p in root.iterdir()) == before
    assert (root / "other-model" / "config.json").read_text() == "other"


def test_ship_refuses_a_guidance_for_a_model_that_is_no_pipeline(root, tmp_path):
    with pytest.raises(ValueError, match="no model_index.json"):
        pretrained.ship(_run(tmp_path / "clip", "clip"), "clip-demo", guidance_scale=1.5)
    assert not (root / "clip-demo").exists()


def test_cli_ship_guidance(root, tmp_path, capsys):
    from mmdiff_lab.cli import main

    assert main(["ship", str(_pipeline_run(tmp_path / "t2i")), "t2i-demo", "--guidance", "2"]) == 0
    assert json.loads((root / "t2i-demo" / "model_index.json").read_text())["default_guidance_scale"] == 2.0
    assert main(["ship", str(tmp_path / "t2i"), "t2i-demo", "--guidance", "inf"]) == 2
    assert "--guidance must be a number" in capsys.readouterr().err


@pytest.mark.parametrize("name, holds", [("t2i-oops", "DualEncoder"), ("clip-oops", "TextToImagePipeline"),
                                         ("judge-oops", "EmbeddingPrior"), ("prior-oops", None)])
def test_a_name_that_promises_another_kind_of_model_is_refused_before_any_copy(root, tmp_path, name, holds):
    run = tmp_path / "run"
    run.mkdir()
    file = "model_index.json" if holds == "TextToImagePipeline" else "config.json"
    (run / file).write_text(json.dumps({"_class_name": holds}) if holds else "not json")
    before = _tree(root)
    with pytest.raises(ValueError, match=f"{name.split('-')[0]}-' is for a"):
        pretrained.ship(run, name)
    assert _tree(root) == before


def test_a_name_without_a_known_prefix_ships_any_kind(root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"_class_name": "DualEncoder"}))
    assert pretrained.ship(run, "my-encoder") == root / "my-encoder"
