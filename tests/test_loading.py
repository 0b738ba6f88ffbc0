"""The one loader (mmdiff_lab.loading): safetensors only, pickles refused by name, float32 out, errors name the file."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmdiff_lab import loading, pretrained
from mmdiff_lab.loading import PICKLE_SUFFIXES, POINTER, load_clip, load_judge, load_model, load_prior
from mmdiff_lab.models.encoders import DualEncoder
from mmdiff_lab.pipelines.text_to_image import TextToImagePipeline, load_pipeline
from mmdiff_lab.training.checkpoint import CheckpointError

WEIGHTS = "diffusion_pytorch_model.safetensors"
PROMPT = "a small red circle left of a large blue square"


def load_t2i(folder):
    return TextToImagePipeline.from_pretrained(folder)


LOADERS = {"clip-shapes": load_clip, "prior-shapes": load_prior, "judge-shapes": load_judge}
PIPELINE_LOADERS = {"load_pipeline": load_pipeline, "from_pretrained": load_t2i}


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any call of torch.load (what reads a pickle) fails the test: a refused pickle must never be opened."""

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called: a pickle was opened")

    monkeypatch.setattr(torch, "load", refuse)


def copy_shipped(name, tmp_path):
    return shutil.copytree(pretrained.path(name), tmp_path / name)


def replace_by_pickle(folder, name="diffusion_pytorch_model.bin"):
    """What a diffusers user gets with safe_serialization=False: torch.save of the state dict, no safetensors."""
    state = load_file(folder / WEIGHTS)
    (folder / WEIGHTS).unlink()
    torch.save(state, folder / name)
    return folder / name


@pytest.fixture(scope="module")
def full_pipeline(tmp_path_factory):
    """The shipped t2i-shapes saved by save_pretrained: a complete folder, the text encoder's weights in it."""
    folder = tmp_path_factory.mktemp("full") / "t2i-shapes"
    load_pipeline("t2i-shapes").save_pretrained(folder)
    return folder


# -- pickles --


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_each_model_loader_refuses_a_diffusers_bin(name, tmp_path, no_unpickling):
    pickle = replace_by_pickle(copy_shipped(name, tmp_path))
    with pytest.raises(CheckpointError, match=re.escape(str(pickle)) + r": refused, a pickle"):
        LOADERS[name](tmp_path / name)


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
def test_a_pickle_beside_missing_weights_is_refused_whatever_its_name(suffix, tmp_path, no_unpickling):
    pickle = replace_by_pickle(copy_shipped("clip-shapes", tmp_path), name=f"model{suffix}")
    with pytest.raises(CheckpointError, match=re.escape(str(pickle)) + r": refused, a pickle.*reads safetensors only"):
        load_clip(tmp_path / "clip-shapes")


@pytest.mark.parametrize("loader", sorted(PIPELINE_LOADERS))
@pytest.mark.parametrize("component", ["denoiser", "text_encoder"])
def test_each_pipeline_loader_refuses_a_component_bin(loader, component, full_pipeline, tmp_path, no_unpickling):
    folder = shutil.copytree(full_pipeline, tmp_path / "t2i")
    pickle = replace_by_pickle(folder / component)
    with pytest.raises(CheckpointError, match=re.escape(str(pickle)) + r": refused, a pickle"):
        PIPELINE_LOADERS[loader](folder)


def test_unsafe_options_are_refused(full_pipeline, tmp_path):
    with pytest.raises(ValueError, match="reads safetensors only"):
        TextToImagePipeline.from_pretrained(full_pipeline, use_safetensors=False)
    pipe = load_pipeline(full_pipeline)
    with pytest.raises(ValueError, match="writes safetensors only"):
        pipe.save_pretrained(tmp_path / "p", safe_serialization=False)
    assert not (tmp_path / "p").exists()


def test_a_pickle_beside_safetensors_is_never_read(tmp_path, no_unpickling):
    folder = copy_shipped("clip-shapes", tmp_path)
    torch.save({"image_proj.weight": torch.zeros(1)}, folder / "diffusion_pytorch_model.bin")
    model, _ = load_clip(folder)
    expected = load_file(pretrained.path("clip-shapes") / WEIGHTS)
    assert torch.equal(model.state_dict()["image_proj.weight"], expected["image_proj.weight"].float())


# -- missing, corrupt, not fitting --


def test_missing_weights_name_the_file(tmp_path):
    folder = copy_shipped("prior-shapes", tmp_path)
    (folder / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=re.escape(str(folder / WEIGHTS)) + r": missing"):
        load_prior(folder)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_weights_name_the_file(damage, tmp_path):
    folder = copy_shipped("judge-shapes", tmp_path)
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not tensors", "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=re.escape(str(folder / WEIGHTS)) + r": cannot load the judge: corrupt safetensors file"):
        load_judge(folder)


def test_corrupt_config_names_the_file(tmp_path):
    folder = copy_shipped("prior-shapes", tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=re.escape(str(folder / 'config.json')) + r": not a readable JSON file"):
        load_prior(folder)


@pytest.mark.parametrize(("key", "value", "problem"), [("depth", 3, "missing"), ("depth", 1, "unexpected"),
                                                       ("width", 64, "expected shape"), ("embed_dim", 32, "expected shape")])
def test_a_config_that_does_not_fit_the_weights_names_the_file(key, value, problem, tmp_path):
    """diffusers only warns about missing or unexpected weights (and leaves them random): here it is an error."""
    folder = copy_shipped("clip-shapes", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config[key] != value
    (folder / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(CheckpointError, match=re.escape(str(folder / WEIGHTS)) + rf": .*{problem}"):
        load_model(DualEncoder, folder)


def test_extra_tensors_in_the_file_are_an_error(tmp_path):
    folder = copy_shipped("prior-shapes", tmp_path)
    state = load_file(folder / WEIGHTS)
    save_file({**state, "stowaway": torch.zeros(3)}, folder / WEIGHTS)
    with pytest.raises(CheckpointError, match="unexpected stowaway"):
        load_prior(folder)


# -- precision and names --


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_loads_cast_back_to_float32(dtype, tmp_path):
    folder = copy_shipped("prior-shapes", tmp_path)
    state = load_file(folder / WEIGHTS)
    stored = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file(stored, folder / WEIGHTS)
    prior = load_prior(folder)
    loaded = prior.state_dict()
    assert all(v.dtype == torch.float32 for v in loaded.values() if v.is_floating_point())
    assert all(torch.equal(loaded[k], stored[k].float()) for k in stored)  # exactly the stored values
    assert not prior.training


def test_a_shipped_name_and_its_folder_load_the_same(tmp_path):
    by_name, tok = load_clip("clip-shapes")
    by_folder, tok2 = load_clip(pretrained.path("clip-shapes"))
    assert tok == tok2
    a, b = by_name.state_dict(), by_folder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a b", "clip-shapes/..", ""])
def test_names_that_are_not_plain_never_reach_outside_the_package(name):
    with pytest.raises(ValueError, match="is not a model name"):
        pretrained.path(name)


def test_an_unknown_name_lists_the_shipped_models():
    with pytest.raises(FileNotFoundError, match=r"no shipped checkpoint 'clip-nowhere'.*clip-shapes"):
        load_clip("clip-nowhere")


def test_a_missing_folder_names_its_config(tmp_path):
    with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / 'none' / 'config.json')) + r": missing; is .* prior folder"):
        load_prior(tmp_path / "none")


# -- a pipeline whose text encoder is shared --


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """clip-shapes and t2i-shapes copied into a package root of their own, which loading then reads."""
    root = tmp_path / "pkg"
    for name in ("clip-shapes", "t2i-shapes"):
        shutil.copytree(pretrained.path(name), root / name)
    monkeypatch.setattr(pretrained, "ROOT", root)
    return root


def sample(pipe, seed=0):
    return pipe(PROMPT, num_inference_steps=4, sampler="ddim", generator=torch.Generator().manual_seed(seed),
                output_type="pt").images


def test_the_shipped_pipeline_reads_the_shared_dual_encoder():
    pipe = load_pipeline("t2i-shapes")
    clip, tok = load_clip("clip-shapes")
    assert pipe.tokenizer == tok
    a, b = pipe.text_encoder.state_dict(), clip.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(p.dtype == torch.float32 for p in pipe.denoiser.parameters())


def test_save_pretrained_of_a_shipped_pipeline_is_self_contained(full_pipeline, tmp_path, monkeypatch):
    assert (full_pipeline / "text_encoder" / WEIGHTS).is_file() and not (full_pipeline / "text_encoder" / POINTER).exists()
    assert all(v.dtype == torch.float32 for v in load_file(full_pipeline / "denoiser" / WEIGHTS).values())
    shipped = load_pipeline("t2i-shapes")
    monkeypatch.setattr(pretrained, "ROOT", tmp_path / "empty")  # no shipped models left to point to
    (tmp_path / "empty").mkdir()
    alone = load_pipeline(full_pipeline)
    assert torch.allclose(sample(alone), sample(shipped), atol=1e-5)


def test_a_reshipped_shared_model_is_an_error_not_another_encoder(shipped_copy):
    clip_weights = shipped_copy / "clip-shapes" / WEIGHTS
    state = load_file(clip_weights)
    state["image_proj.weight"] = state["image_proj.weight"] * 2
    save_file(state, clip_weights)
    with pytest.raises(CheckpointError, match=rf"text_encoder/{POINTER}: the shipped clip-shapes is not the one"):
        load_pipeline("t2i-shapes")


def test_a_tokenizer_that_differs_from_the_shared_one_is_an_error(shipped_copy):
    file = shipped_copy / "t2i-shapes" / "tokenizer" / "tokenizer.json"
    tokens = json.loads(file.read_text())
    assert tokens["max_length"] != 9
    file.write_text(json.dumps({**tokens, "max_length": 9}))
    with pytest.raises(CheckpointError, match=r"tokenizer/tokenizer.json: differs from .*clip-shapes/tokenizer.json"):
        load_pipeline("t2i-shapes")


@pytest.mark.parametrize("shipped", ["../clip-shapes", "clip-nowhere", None])
def test_a_pointer_must_name_a_shipped_model(shipped, shipped_copy):
    pointer = shipped_copy / "t2i-shapes" / "text_encoder" / POINTER
    pointer.write_text(json.dumps({**json.loads(pointer.read_text()), "shipped": shipped}))
    with pytest.raises(CheckpointError, match=re.escape(str(pointer)) + r": 'shipped' must name a shipped model"):
        load_pipeline("t2i-shapes")


def test_model_index_may_name_classes_from_this_library_and_diffusers_only(full_pipeline, tmp_path):
    folder = shutil.copytree(full_pipeline, tmp_path / "t2i")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "denoiser": ["os", "system"]}))
    with pytest.raises(CheckpointError, match="component 'denoiser' comes from 'os'"):
        load_pipeline(folder)


def test_plain_settings_in_model_index_pass_through(full_pipeline, tmp_path):
    """Settings such as a default guidance scale sit beside the components in model_index.json."""
    folder = shutil.copytree(full_pipeline, tmp_path / "t2i")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "default_guidance_scale": 3.0}))
    components = loading.load_components(folder, given={"tokenizer": None})
    assert sorted(components) == ["denoiser", "text_encoder"]
    assert isinstance(load_pipeline(folder), TextToImagePipeline)


def test_a_pipeline_saved_before_the_models_moved_still_loads(shipped_copy):
    """Pipeline folders saved before the models moved into mmdiff_lab.models name the old modules."""
    index_file = shipped_copy / "t2i-shapes" / "model_index.json"
    new = sample(load_pipeline("t2i-shapes"))
    index = json.loads(index_file.read_text())
    assert index["denoiser"][0] == "mmdiff_lab.models.denoiser" and index["text_encoder"][0] == "mmdiff_lab.models.encoders"
    index["denoiser"][0], index["text_encoder"][0] = "mmdiff_lab.denoiser", "mmdiff_lab.encoders"
    index_file.write_text(json.dumps(index))
    assert torch.equal(sample(load_pipeline("t2i-shapes")), new)
