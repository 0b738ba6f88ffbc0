"""The one way the library reads a model from disk: a shipped name or a folder, safetensors only, float32 out.

    load_model(DualEncoder, "clip-shapes")                           a shipped model, by name
    load_model(EmbeddingPrior, "runs/prior-shapes")                  a folder written by `mmdiff-lab train`
    load_model(TextToImageDenoiser, "t2i-shapes", subfolder="denoiser")   one component of a pipeline

Pickles (``*.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``) are refused, never opened: unpickling runs any
code the file holds, whereas a safetensors file holds only tensors and a JSON header. Weights stored in half
precision (the shipped ones, to fit the package) are cast back to float32, so every computation runs in the
precision the model was trained in.

A pipeline component may be stored once, elsewhere: its folder then holds only ``shared.json``,
``{"shipped": "clip-shapes", "sha256": "..."}``, naming the shipped model whose weights it is (a t2i pipeline's
text encoder is the shipped dual encoder, kept frozen while its denoiser trained), with ``"subfolder"`` when that
is one component of a shipped pipeline. Beside the pointer an ``adapter/`` folder (a LoRA adapter, diffusers'
``save_lora_adapter`` format) is fused into the shared weights as they load: a few-step generator is the shipped
t2i denoiser plus its adapter.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path

import torch
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors import SafetensorError, safe_open

from . import pretrained
from .models.encoders import DualEncoder
from .models.judge import Judge
from .models.prior import EmbeddingPrior
from .pretrained import is_plain_name
from .text import Tokenizer
from .training.checkpoint import CheckpointError

#: Suffixes of pickled weights (PyTorch's, diffusers' and transformers' ``.bin``, Lightning's ``.ckpt``).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: The file in a pipeline component's folder that names the shipped model it shares.
POINTER = "shared.json"
#: The folder beside a pointer that holds a LoRA adapter to fuse into the shared weights.
ADAPTER = "adapter"
#: Libraries a pipeline's model_index.json may name classes from: importing a module runs its code.
COMPONENT_LIBRARIES = ("mmdiff_lab", "diffusers")
#: Modules whose classes moved into mmdiff_lab.models: pipeline folders saved before still name the old ones.
MOVED_MODULES = {"mmdiff_lab.denoiser": "mmdiff_lab.models.denoiser", "mmdiff_lab.encoders": "mmdiff_lab.models.encoders"}


def resolve(path_or_name: str | Path) -> Path:
    """The folder to load: as given when it is a folder here, else the shipped model of that plain name."""
    folder = Path(path_or_name)
    if folder.is_dir() or not is_plain_name(str(path_or_name)):
        return folder
    return pretrained.path(str(path_or_name))  # FileNotFoundError listing the shipped models


def read_json(file: Path) -> dict:
    """A JSON object from ``file``; a missing or unreadable one is a CheckpointError naming it."""
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: expected a JSON object, found {type(data).__name__}")
    return data


def weights_file(folder: Path) -> Path:
    """The folder's safetensors weights; a pickle in their place is refused, naming it, and never opened."""
    file = folder / SAFETENSORS_WEIGHTS_NAME
    if file.is_file():
        return file
    pickles = sorted(p for p in folder.glob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(f"{pickles[0]}: refused, a pickle: unpickling runs any code the file holds, so this "
                              f"library reads safetensors only (expected {file}; convert a trusted file with "
                              f"safetensors.torch.save_file(torch.load(...), ...))")
    raise CheckpointError(f"{file}: missing")


def stored_shapes(file: Path, kind: str = "model") -> dict[str, tuple[int, ...]]:
    """Each tensor's shape, read from the safetensors header alone; a corrupt file is a CheckpointError naming it."""
    try:
        with safe_open(file, framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: cannot load the {kind}: corrupt safetensors file ({e})") from None


def check_fits(model: torch.nn.Module, file: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Every tensor the model has is in ``file`` with its shape, and nothing else (diffusers only warns)."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & shapes.keys() if expected[k] != shapes[k])
    problems = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise CheckpointError(f"{file}: does not fit the {type(model).__name__} its config.json describes: "
                              + "; ".join(problems))


def load_model(cls: type[ModelMixin], path_or_name: str | Path, subfolder: str = "", kind: str = "",
               made_by: str = "") -> ModelMixin:
    """A diffusers ``ModelMixin`` from a folder or shipped name: safetensors only, float32, in eval mode.

    ``kind`` ("dual encoder") and ``made_by`` ("mmdiff-lab train clip") only word the errors.
    """
    folder = resolve(path_or_name) / subfolder
    kind = kind or cls.__name__
    if not (folder / "config.json").is_file():
        hint = f"; is {folder} a {kind} folder from `{made_by}`?" if made_by else ""
        raise CheckpointError(f"{folder / 'config.json'}: missing{hint}")
    read_json(folder / "config.json")  # a clear error before diffusers' own
    file = weights_file(folder)
    shapes = stored_shapes(file, kind)
    try:
        model = cls.from_pretrained(folder, use_safetensors=True, torch_dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{file}: cannot load the {kind} ({type(e).__name__}: {e})") from None
    check_fits(model, file, shapes)
    return model.eval()


def sha256(file: Path) -> str:
    """The file's SHA-256, hex: what a pointer records of the weights it shares."""
    return hashlib.sha256(file.read_bytes()).hexdigest()


def shared_source(component_folder: Path) -> Path | None:
    """The shipped folder a pipeline component points to (its ``shared.json``), or None when stored in place.

    The pointer records the shared weights' SHA-256, so re-shipping that model alone is an error here rather than
    a pipeline silently reading another text encoder than the one its denoiser was trained with.
    """
    if (component_folder / "config.json").is_file() or not (component_folder / POINTER).is_file():
        return None  # weights in place win over a stale pointer beside them
    pointer_file = component_folder / POINTER
    pointer = read_json(pointer_file)
    name = pointer.get("shipped")
    if not isinstance(name, str) or not is_plain_name(name) or name not in pretrained.available():
        raise CheckpointError(f"{pointer_file}: 'shipped' must name a shipped model ({', '.join(pretrained.available())}), "
                              f"got {name!r}")
    subfolder = pointer.get("subfolder", "")
    if not isinstance(subfolder, str) or subfolder not in ("",) + pretrained.SHIPPED_FOLDERS:
        raise CheckpointError(f"{pointer_file}: 'subfolder' must be one of {', '.join(pretrained.SHIPPED_FOLDERS)}, "
                              f"got {subfolder!r}")
    shared = pretrained.path(name) / subfolder
    if sha256(weights_file(shared)) != pointer.get("sha256"):
        raise CheckpointError(f"{pointer_file}: the shipped {name} is not the one this pipeline was stored with "
                              f"(its weights' sha256 differs); ship the pipeline again")
    return shared


def component_class(index_file: Path, name: str, library: str, class_name: str) -> type:
    """The class model_index.json names for a component, from this library or diffusers only."""
    if library.split(".")[0] not in COMPONENT_LIBRARIES:
        raise CheckpointError(f"{index_file}: component {name!r} comes from {library!r}; only classes from "
                              f"{' or '.join(COMPONENT_LIBRARIES)} are loaded")
    try:
        module = importlib.import_module(MOVED_MODULES.get(library, library))
        if library in MOVED_MODULES:  # diffusers' own loader then finds the class under the old name too
            sys.modules.setdefault(library, module)
        return getattr(module, class_name)
    except (ImportError, AttributeError):
        raise CheckpointError(f"{index_file}: component {name!r}: no class {class_name!r} in {library}") from None


def load_components(folder: Path, given: dict) -> dict[str, ModelMixin]:
    """A pipeline folder's models not already in ``given``, each through load_model (schedulers are configs only).

    A component stored as a pointer is loaded from the shipped model it names; a tokenizer in ``given`` must
    then equal that model's ``tokenizer.json``, since the text encoder's embedding rows are its word ids.
    """
    index_file = folder / "model_index.json"
    components = {}
    for name, entry in read_json(index_file).items():
        is_component = isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)
        if name.startswith("_") or name in given or not is_component:
            continue  # diffusers' bookkeeping, components passed in, plain settings (a [lo, hi] too), empty slots
        cls = component_class(index_file, name, *entry)
        if not (isinstance(cls, type) and issubclass(cls, ModelMixin)):
            continue
        shared = shared_source(folder / name)
        if shared is None:
            components[name] = load_model(cls, folder, subfolder=name)
            continue
        components[name] = load_model(cls, shared)
        if (folder / name / ADAPTER).is_dir():
            components[name] = fuse_adapter(components[name], folder / name / ADAPTER)
        shared_tokens = shared / "tokenizer.json"
        tokenizer = given.get("tokenizer")
        if shared_tokens.is_file() and isinstance(tokenizer, Tokenizer) and Tokenizer.load(shared_tokens) != tokenizer:
            raise CheckpointError(f"{folder / 'tokenizer' / 'tokenizer.json'}: differs from {shared_tokens}, the "
                                  f"tokenizer of the shared {name} ({folder / name / POINTER})")
    return components


def fuse_adapter(model: ModelMixin, adapter: Path) -> ModelMixin:
    """``model`` with the LoRA adapter in folder ``adapter`` merged into its weights (W + B A), as a plain model."""
    file = adapter / "pytorch_lora_weights.safetensors"
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (the adapter beside {adapter.parent / POINTER})")
    stored_shapes(file, "LoRA adapter")  # a corrupt file named before peft reads it
    try:
        model.load_lora_adapter(adapter, prefix=None, weight_name=file.name, adapter_name="fused")
        model.fuse_lora()
        model.unload_lora()
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{file}: cannot fuse the adapter into {type(model).__name__} "
                              f"({type(e).__name__}: {e})") from None
    return model.float().eval()


def load_clip(path: str | Path) -> tuple[DualEncoder, Tokenizer]:
    """A saved dual encoder (folder or shipped name) and its tokenizer, read by loading.load_model."""
    path = resolve(path)
    model = load_model(DualEncoder, path, kind="dual encoder", made_by="mmdiff-lab train clip")
    if not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"{path / 'tokenizer.json'}: missing; is {path} a dual-encoder folder from `mmdiff-lab train clip`?")
    tokenizer = Tokenizer.load(path / "tokenizer.json")
    if model.config.vocab_size != len(tokenizer) or model.config.max_length != tokenizer.max_length:
        raise CheckpointError(f"{path / 'config.json'}: vocab_size/max_length {model.config.vocab_size}/"
                              f"{model.config.max_length} do not match tokenizer.json ({len(tokenizer)}/{tokenizer.max_length})")
    return model, tokenizer


def load_prior(path: str | Path) -> EmbeddingPrior:
    """A saved embedding prior (folder or shipped name), read by loading.load_model."""
    return load_model(EmbeddingPrior, path, kind="prior", made_by="mmdiff-lab train prior")


def load_judge(path: str | Path) -> Judge:
    """A saved judge (folder or shipped name), read by loading.load_model."""
    return load_model(Judge, path, kind="judge", made_by="mmdiff-lab train judge")
