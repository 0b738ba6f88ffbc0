"""Checks for lab 06, efficiency and augmentation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import numpy as np
import torch

from ..metrics.efficiency import pareto_front
from ..training.fewstep import x0_from
from . import NotYet, call, exercise, need_function, need_number

# ---- exercise 1: the Pareto front ------------------------------------------------------------------------------

#: (CPU ms per image, faithfulness) of ten methods, in no particular order: ties in time (3 and 8) and in
#: faithfulness (0 and 6, 1 and 4) on purpose.
POINTS = torch.tensor([[33.0, 0.75], [83.0, 0.94], [425.0, 0.88], [26.0, 0.70], [95.0, 0.94], [510.0, 0.97],
                       [49.0, 0.75], [68.0, 0.81], [26.0, 0.62], [12.0, 0.40]])


def _indices(raw, n: int) -> list[int]:
    """A student's answer (a list, tuple, array or 1-D tensor of whole numbers) as a list of ints, else NotYet."""
    if raw is None:
        raise NotYet("the result is None: did you forget `return`?")
    if isinstance(raw, np.ndarray):
        raw = torch.from_numpy(raw)
    if isinstance(raw, torch.Tensor):
        if raw.dtype == torch.bool:
            raise NotYet(f"that is a mask of shape {tuple(raw.shape)}; return the indices of the points on the front "
                         "(mask.nonzero().flatten() gives them), sorted by time")
        if raw.is_floating_point() and not torch.isfinite(raw).all():
            raise NotYet("the result holds NaN or infinite values: return the indices of the points on the front")
        if raw.ndim != 1:
            raise NotYet(f"the result has shape {tuple(raw.shape)}; return the indices of the points on the front, "
                         "one number per point (not the points themselves), sorted by time")
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        raise NotYet(f"return the indices of the points on the front as a list (or a 1-D tensor), got {raw!r:.60} "
                     f"({type(raw).__name__})")
    out = []
    for v in raw:
        if isinstance(v, (list, tuple)):
            raise NotYet("that holds pairs; return the index of each point on the front (its row in points), not the "
                         "point itself")
        value = need_number(v, "each index")
        if not value.is_integer() or not 0 <= value < n:
            raise NotYet(f"each index should be a whole number in 0..{n - 1} (a row of points), got {v!r}")
        out.append(int(value))
    return out


@exercise("exercise 1 (the Pareto front)")
def check_front(fn: Callable | None) -> bool:
    """Exercise 1: given points (N, 2) of (CPU ms per image, faithfulness), return the indices of the points on the
    Pareto front, sorted by time: those that no other point beats, being as fast or faster and as faithful or more,
    and strictly better in one of the two."""
    fn = need_function(fn)
    points = POINTS.clone()
    want = pareto_front(points.tolist())  # [9, 3, 0, 7, 1, 5]
    got = _indices(call(fn, points.clone()), len(points))
    if got == want:
        return
    ms, faith = points[:, 0].tolist(), points[:, 1].tolist()
    if sorted(got) == sorted(want):
        raise NotYet(f"the right points, in the wrong order ({got}): sort them by time, the fastest first, as the "
                     "front is read from left to right")
    if got == [want[-1]]:
        raise NotYet(f"that is the most faithful point alone; the front also keeps every faster point that is more "
                     f"faithful than all points faster than it ({len(want)} points here)")
    if got == [want[0]]:
        raise NotYet(f"that is the fastest point alone; the front also keeps every slower point that is more "
                     f"faithful than all points faster than it ({len(want)} points here; faithfulness: higher is "
                     "better, time: lower)")
    if len(set(got)) != len(got):
        raise NotYet(f"an index appears twice in {got}: each point is on the front once")
    missing = [i for i in want if i not in got]
    extra = [i for i in got if i not in want]
    for i in extra:
        for j in want:  # the point that beats it
            if ms[j] <= ms[i] and faith[j] >= faith[i] and (ms[j] < ms[i] or faith[j] > faith[i]):
                if faith[j] == faith[i]:
                    why = f"as faithful ({faith[i]:.2f}) and faster ({ms[j]:g} against {ms[i]:g} ms)"
                elif ms[j] == ms[i]:
                    why = f"as fast ({ms[i]:g} ms) and more faithful ({faith[j]:.2f} against {faith[i]:.2f})"
                else:
                    why = f"faster ({ms[j]:g} against {ms[i]:g} ms) and more faithful ({faith[j]:.2f} against " \
                          f"{faith[i]:.2f})"
                raise NotYet(f"point {i} is not on the front: point {j} beats it, {why}. A tie in one coordinate "
                             "and a win in the other is enough to beat a point")
    i = missing[0]
    raise NotYet(f"point {i} ({ms[i]:g} ms, {faith[i]:.2f}) is on the front: every faster point is less faithful, so "
                 "none beats it. Sweep from the fastest point and keep each one more faithful than all before it")


# ---- exercise 2: the ADD distillation loss ------------------------------------------------------------------------

GUIDANCE = 1.5  # the shipped generators' teachers' guidance (teacher_guidance)


def _distill_case():
    """Inputs of exercise 2 shaped as one training batch of the few-step generator: four images at four noise levels
    t' (alpha_bar from near 1 to near 0), with teacher outputs whose x_0 leaves [-1, 1] in places (so the clamp
    matters)."""
    g = torch.Generator().manual_seed(11)
    B, S = 4, 4
    x_hat = torch.randn(B, 3, S, S, generator=g).clamp(-1, 1)  # the student's images
    ab = torch.tensor([0.95, 0.6, 0.2, 0.03])[:, None, None, None]  # (B, 1, 1, 1) alpha_bar at each t'
    x_t = ab.sqrt() * x_hat + (1 - ab).sqrt() * torch.randn(B, 3, S, S, generator=g)
    v_c = 1.3 * torch.randn(B, 3, S, S, generator=g)
    v_u = v_c + 0.6 * torch.randn(B, 3, S, S, generator=g)
    return x_hat, x_t, v_c, v_u, ab, GUIDANCE


def distill_loss(x_hat, x_t, v_c, v_u, ab, w, guided=None, to_x0=None, weight=None, clamp=True, reduce="mean"):
    """The ADD distillation loss of ``training.fewstep``, with one piece replaceable (to name a mistake)."""
    v = v_u + w * (v_c - v_u) if guided is None else guided(v_c, v_u, w)
    x0 = x0_from(v, x_t, ab, "v_prediction") if to_x0 is None else to_x0(v, x_t, ab)
    target = x0.clamp(-1, 1) if clamp else x0
    err = (ab if weight is None else weight(ab)) * (x_hat - target) ** 2
    return err.mean() if reduce == "mean" else err.sum()


@exercise("exercise 2 (the ADD distillation loss)")
def check_distill(fn: Callable | None) -> bool:
    """Exercise 2: the distillation term of ADD. Given the student's images x_hat (B, 3, S, S), the same images
    noised to the teacher's timesteps t', x_t (B, 3, S, S), the teacher's v predictions there with and without the
    caption, v_c and v_u (B, 3, S, S), alpha_bar at t', ab (B, 1, 1, 1), and the guidance scale w, return the loss:
    the mean over images and pixels of ab * (x_hat - target)^2, where target is the teacher's x_0 from its guided v
    (lab 03's CFG and x0 from v), clamped to [-1, 1]."""
    fn = need_function(fn)
    case = _distill_case()
    want = distill_loss(*case).item()
    got = need_number(call(fn, *(c.clone() if isinstance(c, torch.Tensor) else c for c in case)), "the loss")

    def near(value) -> bool:
        return math.isclose(got, float(value), rel_tol=1e-4, abs_tol=1e-7)

    if near(want):
        return
    x_hat, x_t, v_c, v_u, ab, w = case
    eps_formula = lambda v, x, a: (x - (1 - a).sqrt() * v) / a.sqrt()  # noqa: E731
    mistakes = [
        (dict(guided=lambda c, u, w: c), "that uses the teacher's conditional prediction alone: the target is the "
         "guided one, v_u + w (v_c - v_u), as the teacher samples best (w = 1.5 here)"),
        (dict(guided=lambda c, u, w: u + w * (u - c)), "guidance points from unconditional to conditional: "
         "v_u + w (v_c - v_u)"),
        (dict(guided=lambda c, u, w: c + w * (c - u)), "that is the other convention, (1 + w) v_c - w v_u; ours is "
         "v_u + w (v_c - v_u), where w = 1 gives v_c"),
        (dict(to_x0=eps_formula), "that reads the teacher's output as a noise prediction eps; the shipped teacher "
         "predicts v, and x_0 = sqrt(ab) x_t - sqrt(1 - ab) v (lab 03, exercise 3)"),
        (dict(clamp=False), "clamp the teacher's x_0 to [-1, 1] (the pixel range) before comparing: at large t' "
         "the x_0 read from one prediction overshoots, and the student should not chase it"),
        (dict(weight=lambda a: torch.ones_like(a)), "weight each image's squared error by alpha_bar at its t': a "
         "target read from a nearly pure-noise x_t (small alpha_bar) says little about the student's image"),
        (dict(weight=lambda a: a.sqrt()), "the weight is alpha_bar itself, not its square root"),
        (dict(weight=lambda a: 1 - a), "the weight is alpha_bar, large where x_t is nearly clean, not 1 - alpha_bar"),
        (dict(reduce="sum"), "that sums the errors; take the mean over the images and pixels, as the training loss "
         "does, so that its size does not depend on the batch or the image size"),
    ]
    for change, hint in mistakes:
        if near(distill_loss(*case, **change)):
            raise NotYet(hint)
    if near((ab * (x_t - distill_loss_target(*case)) ** 2).mean()):
        raise NotYet("that compares the noised x_t with the target; the loss pulls the student's image x_hat "
                     "towards the teacher's x_0")
    raise NotYet(f"got {got:.6g}, want {want:.6g}: target = clamp(sqrt(ab) x_t - sqrt(1 - ab) v, -1, 1) with "
                 "v = v_u + w (v_c - v_u); loss = mean(ab * (x_hat - target)^2)")


def distill_loss_target(x_hat, x_t, v_c, v_u, ab, w):
    """The teacher's guided, clamped x_0: the target of exercise 2."""
    return x0_from(v_u + w * (v_c - v_u), x_t, ab, "v_prediction").clamp(-1, 1)


# ---- exercise 3: the gap recovered ------------------------------------------------------------------------------

#: Per-seed held-out scores of the three arms (3 seeds): chosen so that the mean of the per-seed fractions (0.683)
#: and the fraction of the mean scores (0.644) differ.
REAL, AUGMENTED, UPPER = [0.10, 0.30, 0.20], [0.30, 0.38, 0.50], [0.50, 0.40, 0.60]


def _pair(raw) -> tuple[float, float]:
    """(mean, spread) from a student's answer: two numbers as a tuple, list or a tensor of shape (2,)."""
    if raw is None:
        raise NotYet("the result is None: did you forget `return`?")
    if isinstance(raw, np.ndarray):
        raw = torch.from_numpy(raw)
    if isinstance(raw, torch.Tensor):
        if raw.is_floating_point() and not torch.isfinite(raw).all():
            raise NotYet("the result holds NaN or infinite values (a division by zero?)")
        if tuple(raw.shape) != (2,):
            raise NotYet(f"the result has shape {tuple(raw.shape)}; return two numbers, (mean, spread) over the "
                         "seeds of the per-seed fractions")
        raw = raw.tolist()
    if not isinstance(raw, (tuple, list)) or len(raw) != 2:
        raise NotYet(f"return two numbers, (mean, spread), got {raw!r:.60} ({type(raw).__name__})")
    return need_number(raw[0], "the mean"), need_number(raw[1], "the spread")


@exercise("exercise 3 (the gap recovered)")
def check_gap(fn: Callable | None) -> bool:
    """Exercise 3: given each seed's held-out score of the three arms, real, augmented and upper (three (S,)
    tensors), return (mean, spread) over the seeds of the gap recovered, (augmented - real) / (upper - real) per
    seed; the spread is the sample standard deviation (ddof=1). A seed whose upper bound is no better than its real
    arm leaves no gap to recover: raise a ValueError then."""
    fn = need_function(fn)
    real, aug, upper = (torch.tensor(v) for v in (REAL, AUGMENTED, UPPER))
    fractions = ((aug - real) / (upper - real)).tolist()
    want = statistics.fmean(fractions), statistics.stdev(fractions)
    got = _pair(call(fn, real.clone(), aug.clone(), upper.clone()))

    def near(a, b) -> bool:
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)

    m, s = got
    if not (near(m, want[0]) and near(s, want[1])):
        if near(m, want[1]) and near(s, want[0]):
            raise NotYet("mean and spread are swapped: return (mean, spread)")
        if near(m, (aug.mean() - real.mean()).item() / (upper.mean() - real.mean()).item()):
            raise NotYet("that is the fraction of the mean scores; compute each seed's fraction first (its own real "
                         "and upper bound), then their mean and spread: a seed's gap is only meaningful against its "
                         "own arms")
        if near(m, -want[0]):
            raise NotYet("the sign is reversed: (augmented - real) / (upper - real) is positive when the generated "
                         "pairs helped, 1 when they reach the upper bound")
        if near(m, statistics.fmean(((aug - real) / upper).tolist())):
            raise NotYet("divide by the gap, upper - real, not by the upper bound's score")
        if near(m, statistics.fmean(((aug - real) / (upper - aug)).tolist())):
            raise NotYet("divide by the whole gap, upper - real, not by what is left of it")
        if not near(m, want[0]):
            raise NotYet(f"the mean is {m:.4f}, want {want[0]:.4f}: the mean over seeds of "
                         "(augmented - real) / (upper - real)")
        if near(s, statistics.pstdev(fractions)):
            raise NotYet("that spread divides by S; the sample standard deviation divides by S - 1 (ddof=1, "
                         "torch.std's default), as the protocol reports it")
        if near(s, statistics.variance(fractions)) or near(s, statistics.pvariance(fractions)):
            raise NotYet("that is the variance; the spread is its square root, the standard deviation")
        raise NotYet(f"the spread is {s:.4f}, want {want[1]:.4f}: the sample standard deviation of the per-seed "
                     "fractions")
    for u, words in ((torch.tensor([0.50, 0.30, 0.60]), "no gap (upper = real)"),
                     (torch.tensor([0.50, 0.40, 0.15]), "a negative gap (upper below real)")):
        try:
            raw = fn(real.clone(), aug.clone(), u)
        except (ValueError, ArithmeticError):
            continue
        except NotImplementedError:
            raise NotYet("the right numbers, but a seed without a gap raised NotImplementedError; raise a "
                         "ValueError there") from None
        except Exception as e:  # noqa: BLE001 - a student's bug is reported, not thrown into the notebook
            raise NotYet(f"a seed with {words} should raise a ValueError, but your function raised "
                         f"{type(e).__name__}: {e}") from None
        shown = f"{raw!r:.60}"
        raise NotYet(f"the right numbers, but with {words} in one seed your function returned {shown}; that seed's "
                     "fraction means nothing: raise a ValueError naming it (the library's gap_fraction marks it nan "
                     "and leaves it out of the mean)")
