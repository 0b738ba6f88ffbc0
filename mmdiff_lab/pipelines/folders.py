"""What both pipelines share about files: a diffusers ``DiffusionPipeline`` whose tokenizer is ours (written and
read beside the diffusers components), safetensors only, each model read by ``loading.load_model``."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging as diffusers_logging

from ..text import Tokenizer


class WordTokenizerPipeline(DiffusionPipeline):
    """A ``DiffusionPipeline`` with a word-level ``Tokenizer`` component, saved as tokenizer/tokenizer.json."""

    @property
    def device(self) -> torch.device:
        """The device of the first component with weights. diffusers' own property asks every module for its
        offloading hooks on each read, about 3 ms here, several times per call: most of a one-step image's time."""
        for name in self.components:
            module = getattr(self, name, None)
            if isinstance(module, torch.nn.Module):
                for p in module.parameters():
                    return p.device
        return torch.device("cpu")

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """A complete folder (every component's weights in it, as safetensors), whatever the loaded one shared."""
        if not kwargs.pop("safe_serialization", True):
            raise ValueError("safe_serialization=False would write pickles; this library writes safetensors only")
        tokenizer = self.tokenizer
        level = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()  # diffusers would warn that it cannot save our tokenizer
        try:
            super().save_pretrained(save_directory, safe_serialization=True, **kwargs)
        finally:
            diffusers_logging.set_verbosity(level)
        (Path(save_directory) / "tokenizer").mkdir(parents=True, exist_ok=True)
        tokenizer.save(Path(save_directory) / "tokenizer" / "tokenizer.json")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs):
        """A pipeline folder or shipped name; each model read by loading.load_model (safetensors only, float32),
        a shared one from the shipped folder its pointer names. Other keywords go to diffusers."""
        from .. import loading

        if not kwargs.pop("use_safetensors", True):
            raise ValueError("use_safetensors=False would read pickles; this library reads safetensors only")
        folder = loading.resolve(pretrained_model_name_or_path)
        if "tokenizer" not in kwargs:
            kwargs["tokenizer"] = Tokenizer.load(folder / "tokenizer" / "tokenizer.json")
        kwargs.update(loading.load_components(folder, given=kwargs))
        return super().from_pretrained(folder, use_safetensors=True, **kwargs)


def load_folder(cls: type[WordTokenizerPipeline], path: str | Path, made_by: str):
    """A saved pipeline folder of class ``cls``, or the name of a shipped one; errors name the file and say which
    command (``made_by``) makes such a folder."""
    from ..loading import resolve
    from ..training.checkpoint import CheckpointError

    folder = resolve(path)
    if not (folder / "model_index.json").is_file():
        raise CheckpointError(f"{folder / 'model_index.json'}: missing; is {folder} a pipeline folder from "
                              f"`{made_by}`?")
    try:
        pipe = cls.from_pretrained(folder)
    except CheckpointError:
        raise  # already names the file
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{folder}: cannot load the pipeline ({type(e).__name__}: {e})") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe
