"""Where does the denoiser read a word from? Swap one part of the text it reads between two prompts that differ
in that word alone, and see what the judge reads in the image.

    prompt A  "a small red circle on the left"      text states (L, C per part): word embeddings | final states
    prompt B  "a small green circle on the left"    the same, with "green" in the colour's place

Each source takes some parts of some tokens from B and the rest from A, and the run draws from the same seed. If
the image turns green when only B's *final states of the other tokens* are read, the colour is read from tokens
that do not say it: the final states carry the whole caption, and attention on the colour word is not needed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor

from ..data.shapes import COLOURS, example_of
from ..pipelines.text_to_image import TextToImagePipeline

Take = Callable[[int, int, str], bool]  # (token index, the colour word's token index, part) -> from B?

#: Each source: the parts of the text states it needs the denoiser to read, and which (token, part) it takes
#: from prompt B.
SOURCES: dict[str, tuple[tuple[str, ...], Take]] = {
    "nothing": ((), lambda i, w, part: False),
    "colour_token": ((), lambda i, w, part: i == w),
    "colour_token_words": (("words",), lambda i, w, part: i == w and part == "words"),
    "colour_token_final": (("final",), lambda i, w, part: i == w and part == "final"),
    "other_tokens_final": (("final",), lambda i, w, part: i != w and part == "final"),
    "all_final": (("final",), lambda i, w, part: part == "final"),
    "all_words": (("words",), lambda i, w, part: part == "words"),
}
#: What each source takes from B, in words.
SAYS = {"nothing": "nothing (A's states throughout)", "colour_token": "the colour token's states, every part",
        "colour_token_words": "the colour token's word embedding", "colour_token_final": "the colour token's final state",
        "other_tokens_final": "every other token's final state", "all_final": "every token's final state",
        "all_words": "every token's word embedding"}


def parts_of(pipe: TextToImagePipeline) -> list[str]:
    """The parts of the text states the pipeline's denoiser reads, in their order ("words", "final")."""
    return getattr(pipe.denoiser.config, "text_states", "final").split("+")


def mixed(states_a: Tensor, states_b: Tensor, parts: list[str], w: int, take: Take) -> Tensor:
    """(1, L, P*C) states: each token's each part from B where ``take`` says so, else from A."""
    out = states_a.clone()
    width = states_a.shape[-1] // len(parts)
    for i in range(states_a.shape[1]):
        for k, part in enumerate(parts):
            if take(i, w, part):
                out[:, i, k * width : (k + 1) * width] = states_b[:, i, k * width : (k + 1) * width]
    return out


@contextmanager
def reading(pipe: TextToImagePipeline, states: dict[str, Tensor]):
    """Inside the block, the pipeline reads ``states[prompt]`` (1, L, P*C) for each prompt named there."""
    original = pipe.encode_prompt

    def encode(prompts):
        found, mask = original(prompts)
        for b, prompt in enumerate(prompts):
            if prompt in states:
                found[b] = states[prompt][0]
        return found, mask

    pipe.encode_prompt = encode
    try:
        yield
    finally:
        del pipe.encode_prompt  # the bound method again


def colour_sources(pipe: TextToImagePipeline, judge, captions: list[str], seed: int = 0) -> dict[str, dict[str, float]]:
    """{source: {"b": share drawn in B's colour, "a": share in A's}} over one-object ``captions`` (A), each with
    its colour swapped for the next colour (B), judged; sources whose parts the denoiser does not read are left
    out."""
    parts = parts_of(pipe)
    names = [name for name, (needs, _) in SOURCES.items() if all(p in parts for p in needs)]
    found: dict[str, dict[str, list[bool]]] = {n: {"a": [], "b": []} for n in names}
    colours = list(COLOURS)
    for caption in captions:
        scene = example_of(caption).scene
        if len(scene.objects) != 1:
            raise ValueError(f"colour sources read one-object captions, got {caption!r}")
        a = scene.objects[0].colour
        b = colours[(colours.index(a) + 1) % len(colours)]
        other = " ".join(b if word == a else word for word in caption.split())
        w = caption.split().index(a) + 1  # its token: <bos> first
        with torch.no_grad():
            states_a, _ = pipe.encode_prompt([caption])
            states_b, _ = pipe.encode_prompt([other])
        for name in names:
            with reading(pipe, {caption: mixed(states_a, states_b, parts, w, SOURCES[name][1])}):
                image = pipe(caption, generator=torch.Generator().manual_seed(seed), output_type="pt").images
            seen = judge.read(image)[0]
            drawn = seen.get(scene.objects[0].position, (None,))[0]
            found[name]["a"].append(drawn == a)
            found[name]["b"].append(drawn == b)
    return {n: {k: float(sum(v) / len(v)) for k, v in d.items()} for n, d in found.items()}


__all__ = ["SAYS", "SOURCES", "colour_sources", "mixed", "parts_of", "reading"]
