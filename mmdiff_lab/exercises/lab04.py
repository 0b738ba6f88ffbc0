"""Checks for lab 04, attention and attribution."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch

from ..metrics.localisation import pointing
from . import NotYet, Unanswered, call, exercise, need_function, need_number, need_tensor

#: Exercise 3's prompt, and the object whose region the student predicts for (the second one, the blue square).
REGION_PROMPT = "a small red circle left of a large blue square"


@exercise("exercise 1 (pointing game)")
def check_pointing(fn: Callable | None) -> bool:
    """Exercise 1: 1.0 when a map's peak lies inside the mask, else 0.0 (the pointing game, Zhang et al., 2018)."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(5)
    for case in range(12):
        heat = torch.rand(32, 32, generator=g)
        mask = torch.zeros(32, 32, dtype=torch.bool)
        y, x = (int(v) for v in torch.randint(4, 28, (2,), generator=g))
        mask[y - 3 : y + 4, x - 3 : x + 4] = True
        if case % 2 == 0:  # half the maps peak inside the mask
            heat[y, x] = 2.0
        got = call(fn, heat.clone(), mask.clone())
        if isinstance(got, bool) or (isinstance(got, torch.Tensor) and got.dtype == torch.bool and got.numel() == 1):
            got = float(got)  # "is the peak inside?" answered True or False counts as 1 or 0
        got = need_number(got, f"the score of map {case}")
        want = pointing(heat, mask)
        if got != want:
            inside = float(heat[mask].max() >= heat.max())
            if got == float(heat[mask].mean() > heat[~mask].mean()):
                raise NotYet("that compares the map's mean inside and outside the mask; the pointing game asks "
                             "only where its single highest pixel is")
            hint = "the peak is inside the mask here" if inside else "the peak is outside the mask here"
            raise NotYet(f"map {case}: want {want:g}, got {got:g} ({hint}): find the argmax of the flattened map, "
                         "then look that pixel up in the flattened mask")


@exercise("exercise 2 (a word's map per head)")
def check_word_grid(fn: Callable | None) -> bool:
    """Exercise 2: recorded probabilities (H, N, L) and a token index -> that token's (H, h, h) map per head, the
    N patches back on their h x h grid in raster order (row by row)."""
    fn = need_function(fn)
    g = torch.Generator().manual_seed(6)
    probs = torch.rand(4, 64, 14, generator=g).softmax(-1)
    for token in (3, 7):
        want = probs[:, :, token].reshape(4, 8, 8)
        got = need_tensor(call(fn, probs.clone(), token), want, f"the map of token {token}")
        if torch.allclose(got, want, atol=1e-6):
            continue
        if torch.allclose(got, want.transpose(1, 2), atol=1e-6):
            raise NotYet("the grid is transposed: patches are in raster order, so patch n sits at row n // h, "
                         "column n % h; reshape (H, N) to (H, h, h) directly")
        if torch.allclose(got, probs[:, :, token + 1].reshape(4, 8, 8), atol=1e-6) or \
                torch.allclose(got, probs[:, :, token - 1].reshape(4, 8, 8), atol=1e-6):
            raise NotYet("that is a neighbouring token's map: index the last axis with the token itself")
        raise NotYet(f"token {token}: take probs[:, :, token], a (H, N) array, and reshape it to (H, h, h) "
                     "with h = sqrt(N)")


@cache
def region_ranking() -> list[tuple[str, float]]:
    """Exercise 3's truth: each word of REGION_PROMPT by the mass of its ablation map on the second object."""
    from ..data.shapes import example_of
    from ..pipelines.text_to_image import load_pipeline
    from ..pipelines.trajectory import TrajectoryRecorder
    from ..probes.attribution import ablation_maps

    pipe = load_pipeline("t2i-shapes")
    steps = TrajectoryRecorder()
    pipe(REGION_PROMPT, generator=torch.Generator().manual_seed(0), output_type="pt", callback_on_step_end=steps)
    first = steps.trajectory.steps[0]
    maps = ablation_maps(pipe, REGION_PROMPT, first.x_t[:1], first.t)
    region = torch.from_numpy(example_of(REGION_PROMPT).masks[1])
    mass = {w.text: float(maps.maps[0, w.index][region].sum()) for w in maps.words}
    return sorted(mass.items(), key=lambda item: -item[1])


@exercise("exercise 3 (which word acts on the square)")
def check_region_word(answer) -> bool:
    """Exercise 3: the word of REGION_PROMPT whose removal changes the predicted image most on the blue square."""
    if answer is None:
        raise Unanswered
    if not isinstance(answer, str):
        raise NotYet(f"answer with one word of the prompt as a string, e.g. 'small', got {answer!r:.40} "
                     f"({type(answer).__name__})")
    words = REGION_PROMPT.split()
    word = answer.strip().lower()
    if word not in words:
        raise NotYet(f"{answer!r} is not a word of {REGION_PROMPT!r}")
    ranking = region_ranking()
    best = ranking[0][0]
    if word == best:
        return
    rank = [w for w, _ in ranking].index(word) + 1
    first_object = words[: words.index("left")]
    why = " (it names the circle on the left, not the square)" if word in first_object[1:] else ""
    raise NotYet(f"{word!r} ranks {rank} of {len(ranking)} on the square's region{why}; run ablation_maps and "
                 "sum each word's map inside the square's mask")
