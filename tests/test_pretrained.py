"""The shipped models: all there, within the package's size budget, stored once and in half precision, and
reproduced by `ship` + `compact` from a full-precision run."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmdiff_lab import pretrained
from mmdiff_lab.loading import PICKLE_SUFFIXES, POINTER
from mmdiff_lab.pipelines.text_to_image import load_pipeline
from mmdiff_lab.pretrained.compact import FULL_PRECISION, compact, main

WEIGHTS = "diffusion_pytorch_model.safetensors"
ADAPTER_WEIGHTS = "pytorch_lora_weights.safetensors"  # a few-step generator's LoRA adapter
#: What the package may hold in all, so that labs 04-06's models fit beside these.
BUDGET_BYTES = 40 * 1024 * 1024


def tree_bytes(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def config_of(data: bytes) -> dict:
    return {k: v for k, v in json.loads(data).items() if k != "_name_or_path"}


def test_every_expected_model_is_shipped():
    assert pretrained.available() == sorted(pretrained.EXPECTED)


def test_the_shipped_models_fit_the_budget():
    total = sum(p.stat().st_size for name in pretrained.EXPECTED for p in pretrained.path(name).rglob("*") if p.is_file())
    assert total <= BUDGET_BYTES


def test_nothing_shipped_is_a_pickle():
    assert not [p for p in pretrained.ROOT.rglob("*") if p.suffix in PICKLE_SUFFIXES]


@pytest.mark.parametrize("name", pretrained.EXPECTED)
def test_weights_are_stored_in_half_precision_unless_kept_full(name):
    files = sorted([*pretrained.path(name).rglob(WEIGHTS), *pretrained.path(name).rglob(ADAPTER_WEIGHTS)])
    assert files
    want = torch.float32 if name in FULL_PRECISION else torch.float16
    for file in files:
        assert {v.dtype for v in load_file(file).values() if v.is_floating_point()} == {want}, file


@pytest.mark.parametrize("world", ["shapes", "digits"])
def test_a_t2i_pipeline_points_to_its_dual_encoder_instead_of_a_copy(world):
    folder = pretrained.path(f"t2i-{world}")
    clip = pretrained.path(f"clip-{world}")
    assert sorted(p.name for p in (folder / "text_encoder").iterdir()) == [POINTER]
    pointer = json.loads((folder / "text_encoder" / POINTER).read_text())
    assert pointer == {"shipped": f"clip-{world}", "sha256": hashlib.sha256((clip / WEIGHTS).read_bytes()).hexdigest()}
    # the tokenizer is written with the pipeline and with the dual encoder: the two must be the same
    assert json.loads((folder / "tokenizer" / "tokenizer.json").read_text()) == json.loads((clip / "tokenizer.json").read_text())


@pytest.mark.parametrize("name", [n for n in pretrained.EXPECTED if n.startswith("fewstep-")])
def test_a_few_step_generator_is_the_shipped_t2i_denoiser_plus_its_adapter(name):
    folder = pretrained.path(name) / "denoiser"
    assert sorted(p.name for p in folder.iterdir()) == ["adapter", POINTER]
    teacher = pretrained.path("t2i-shapes") / "denoiser" / WEIGHTS
    assert json.loads((folder / POINTER).read_text()) == {
        "shipped": "t2i-shapes", "subfolder": "denoiser", "sha256": hashlib.sha256(teacher.read_bytes()).hexdigest()}
    pipe = load_pipeline(name)
    assert pipe.supported_steps == [1, 2, 4]
    base = load_pipeline("t2i-shapes").denoiser.state_dict()
    assert any(not torch.equal(v, base[k]) for k, v in pipe.denoiser.state_dict().items())  # the adapter is fused


def test_compact_is_idempotent_on_what_is_shipped(tmp_path, monkeypatch):
    root = shutil.copytree(pretrained.ROOT, tmp_path / "pkg", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(pretrained, "ROOT", root)
    before = tree_bytes(root)
    assert all(compact(name) == [] for name in pretrained.EXPECTED)
    assert tree_bytes(root) == before


def test_compact_of_a_full_precision_pipeline_reproduces_the_shipped_files(tmp_path, monkeypatch, capsys):
    """What `make pretrained` does: ship a run's full folder (here: save_pretrained of the loaded pipeline, whose
    weights are the shipped ones in float32), then compact it; the result is the shipped folder, byte for byte."""
    root = tmp_path / "pkg"
    shipped = tree_bytes(pretrained.path("t2i-shapes"))
    shutil.copytree(pretrained.path("clip-shapes"), root / "clip-shapes")
    run = tmp_path / "run"
    load_pipeline("t2i-shapes").save_pretrained(run)
    assert (run / "text_encoder" / WEIGHTS).is_file()
    shutil.copytree(run, root / "t2i-shapes")
    for file in ("metrics.json", "train_config.json", "history.json", "model_index.json"):  # what ship copies
        shutil.copy2(pretrained.path("t2i-shapes") / file, root / "t2i-shapes" / file)
    monkeypatch.setattr(pretrained, "ROOT", root)
    assert main(["t2i-shapes"]) == 0
    assert "text_encoder -> shared with clip-shapes" in capsys.readouterr().out
    ours = tree_bytes(root / "t2i-shapes")
    assert ours.keys() == shipped.keys()
    for file in ours:  # all byte for byte, but where diffusers notes the folder a config was loaded from
        if file.endswith("config.json"):
            assert config_of(ours[file]) == config_of(shipped[file]), file
        else:
            assert ours[file] == shipped[file], file


@pytest.mark.parametrize("full", [False, True])
def test_compact_shares_a_text_encoder_rounded_to_the_shipped_one_only_in_half_precision(full, tmp_path, monkeypatch):
    """A float32 text encoder a hair off the shipped float16 one (closer than float16's half ulp, 2**-12 relative):
    stored in half precision it would become the shipped one, so it is shared; kept full, it is kept."""
    root = tmp_path / "pkg"
    shutil.copytree(pretrained.path("clip-digits"), root / "clip-digits")
    load_pipeline("t2i-digits").save_pretrained(root / "t2i-digits")
    encoder = root / "t2i-digits" / "text_encoder" / WEIGHTS
    save_file({k: v * (1 + 2**-20) if v.is_floating_point() else v for k, v in load_file(encoder).items()}, encoder)
    monkeypatch.setattr(pretrained, "ROOT", root)
    if full:
        monkeypatch.setitem(FULL_PRECISION, "t2i-digits", "a test")
    assert compact("t2i-digits") == ([] if full else ["text_encoder -> shared with clip-digits",
                                                      "denoiser/diffusion_pytorch_model.safetensors -> float16"])
    assert encoder.is_file() == full
    want = torch.float32 if full else torch.float16
    assert {v.dtype for v in load_file(root / "t2i-digits" / "denoiser" / WEIGHTS).values()} == {want}


def test_compact_checks_every_name_before_changing_anything(tmp_path, monkeypatch):
    folder = shutil.copytree(pretrained.path("prior-digits"), tmp_path / "pkg" / "prior-digits")
    full = {k: v.float() for k, v in load_file(folder / WEIGHTS).items()}
    save_file(full, folder / WEIGHTS)  # a float32 model, which compact would convert
    before = tree_bytes(folder)
    monkeypatch.setattr(pretrained, "ROOT", folder.parent)
    with pytest.raises(ValueError, match="is not a model name"):
        main(["prior-digits", ".."])
    assert tree_bytes(folder) == before
    assert main(["prior-digits"]) == 0
    assert tree_bytes(folder) != before


def test_a_folder_being_shipped_is_compacted_where_it_is_and_not_listed(tmp_path, monkeypatch):
    """ship() copies into a temporary folder beside the others, then swaps it in: that copy is no shipped model."""
    root = tmp_path / "pkg"
    shutil.copytree(pretrained.path("clip-digits"), root / "clip-digits")
    copy = root / ".t2i-digits.tmp"
    load_pipeline("t2i-digits").save_pretrained(copy)
    monkeypatch.setattr(pretrained, "ROOT", root)
    assert pretrained.available() == ["clip-digits"]
    assert compact("t2i-digits", folder=copy) == ["text_encoder -> shared with clip-digits",
                                                  "denoiser/diffusion_pytorch_model.safetensors -> float16"]
    assert sorted(p.name for p in (copy / "text_encoder").iterdir()) == [POINTER]


def test_every_shipped_file_is_readable_by_every_user():
    unreadable = [str(p) for p in pretrained.ROOT.rglob("*") if p.is_file() and p.stat().st_mode & 0o044 != 0o044]
    assert not unreadable, unreadable
