"""The prompt syntax of the text-to-image pipeline: per-word weights, weighted sums of prompts, and stages.

- "a (red:1.5) circle": the words inside the brackets weigh 1.5 (their token states are scaled by it);
- {"a red square": 0.5, "a blue circle": 0.5}: several prompts' guidance directions summed with these weights
  (composable diffusion, Liu et al., 2022);
- ``Stage(at=10, prompt=..., guidance_scale=..., sampler=...)``: from step 10 of the run on, use these settings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_WEIGHTED = re.compile(r"\(([^():]+):\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*\)")


def parse_weights(prompt: str) -> tuple[str, list[float]]:
    """ "a (red:1.5) circle" -> ("a red circle", [1.0, 1.5, 1.0]): the plain text and one weight per word."""
    words, weights, pos = [], [], 0
    for m in _WEIGHTED.finditer(prompt):
        plain = prompt[pos : m.start()].split()
        words += plain
        weights += [1.0] * len(plain)
        inner = m.group(1).split()
        words += inner
        weights += [float(m.group(2))] * len(inner)
        pos = m.end()
    rest = prompt[pos:].split()
    if "(" in prompt[pos:] or ")" in prompt[pos:]:
        raise ValueError(f"cannot read the weights in {prompt!r}; write a weighted word as (word:1.5)")
    return " ".join(words + rest), weights + [1.0] * len(rest)


def _finite_real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Condition:
    """What one image is conditioned on: prompts with weights (one prompt of weight 1 in the plain case)."""

    terms: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, prompt: str | dict[str, float]) -> Condition:
        """One prompt or one {prompt: weight} dict; a wrong type or a weight that is not a finite number is an error."""
        if isinstance(prompt, dict):
            if not prompt:
                raise ValueError("a weighted prompt needs at least one {prompt: weight} entry")
            for p, w in prompt.items():
                if not isinstance(p, str):
                    raise TypeError(f"a weighted prompt's keys are prompts (strings), got {p!r}")
                if not _finite_real(w):
                    raise ValueError(f"the weight of {p!r} must be a finite number, got {w!r}")
            return cls(tuple((p, float(w)) for p, w in prompt.items()))
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt is a string or a dict {{prompt: weight}}, got {type(prompt).__name__}")
        return cls(((prompt, 1.0),))

    @property
    def unconditional(self) -> bool:
        return all(not p.strip() for p, _ in self.terms)


@dataclass
class Stage:
    """From step ``at`` of the run on, use these settings (None keeps the current one)."""

    at: int
    prompt: str | dict[str, float] | list | None = None
    guidance_scale: float | None = None
    guidance_interval: tuple[float, float] | None = None
    sampler: str | None = None
