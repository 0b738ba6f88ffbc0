"""The exercise checks: right answers pass, unanswered ones say so, and every wrong kind of answer (a string,
None, a wrong shape, NaN, a function that raises) gets one clear line, never an exception."""

import math

import numpy as np
import pytest
import torch

from mmdiff_lab.exercises import lab01, lab02, lab03, lab04, lab05, lab06
from mmdiff_lab.schedules import Schedule


def q_sample(x0, t, alpha_bar, noise):
    return alpha_bar[t].sqrt() * x0 + (1 - alpha_bar[t]).sqrt() * noise


def forward_step(x_prev, beta_t, eps):
    return (1 - beta_t).sqrt() * x_prev + beta_t.sqrt() * eps


def info_nce(logits):
    labels = torch.arange(len(logits))
    return (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)) / 2


def recall_at_1(sim):
    return (sim.argmax(dim=1) == torch.arange(len(sim))).float().mean()


def gap(img, txt):
    return (img.mean(0) - txt.mean(0)).norm()


def ddim_step(x_t, eps, ab_t, ab_prev):
    x0 = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    return ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps


def cfg(eps_u, eps_c, w):
    return eps_u + w * (eps_c - eps_u)


def x0_from_v(x_t, v, ab):
    return ab.sqrt() * x_t - (1 - ab).sqrt() * v


def mask(x0, t, mask_id, u):
    masked = u < t[:, None]
    masked[:, 0] = False
    return torch.where(masked, mask_id, x0)


def reveal(confidence, masked, n):
    rank = confidence.masked_fill(~masked, float("-inf")).argsort(1, descending=True).argsort(1)
    return masked & (rank < n[:, None])


def front(points):
    order = sorted(range(len(points)), key=lambda i: (float(points[i, 0]), -float(points[i, 1])))
    kept, best = [], -math.inf
    for i in order:
        if points[i, 1] > best:
            kept.append(i)
            best = float(points[i, 1])
    return kept


def distill(x_hat, x_t, v_c, v_u, ab, w):
    target = (ab.sqrt() * x_t - (1 - ab).sqrt() * (v_u + w * (v_c - v_u))).clamp(-1, 1)
    return (ab * (x_hat - target) ** 2).mean()


def gap_recovered(real, augmented, upper):
    if (upper <= real).any():
        raise ValueError("a seed without a gap")
    fractions = (augmented - real) / (upper - real)
    return fractions.mean(), fractions.std()


CHECKS = {  # check -> a right answer
    lab01.check_snr_crossing: lab01.snr_crossing(),
    lab01.check_q_sample: q_sample,
    lab01.check_iterated_forward: forward_step,
    lab02.check_info_nce: info_nce,
    lab02.check_recall_at_1: recall_at_1,
    lab02.check_modality_gap: gap,
    lab03.check_ddim_step: ddim_step,
    lab03.check_cfg: cfg,
    lab03.check_x0_from_v: x0_from_v,
    lab04.check_pointing: lambda heat, mask: mask.flatten()[heat.flatten().argmax()],
    lab04.check_word_grid: lambda probs, token: probs[:, :, token].reshape(len(probs), 8, 8),
    lab04.check_region_word: "blue",
    lab05.check_mask: mask,
    lab05.check_reveal: reveal,
    lab05.check_pick: lambda errors: errors.mean(-1).argmin(-1),
    lab06.check_front: front,
    lab06.check_distill: distill,
    lab06.check_gap: gap_recovered,
}
VALUE_CHECKS = (lab01.check_snr_crossing, lab04.check_region_word)  # answers are values, not functions
FUNCTION_CHECKS = [c for c in CHECKS if c not in VALUE_CHECKS]


def check_id(check) -> str:
    """"lab05.check_mask": so that `-k lab05` selects one lab's checks."""
    return f"{check.__module__.rsplit('.', 1)[-1]}.{check.__name__}"


def verdict(check, answer, capsys) -> tuple[bool, str]:
    ok = check(answer)
    return ok, capsys.readouterr().out.strip()


@pytest.mark.parametrize("check", CHECKS, ids=check_id)
def test_a_right_answer_passes(check, capsys):
    ok, line = verdict(check, CHECKS[check], capsys)
    assert ok and line.startswith("✓") and "correct" in line


@pytest.mark.parametrize("check", CHECKS, ids=check_id)
def test_none_is_not_answered_yet(check, capsys):
    ok, line = verdict(check, None, capsys)
    assert not ok and line.startswith("…") and "not answered yet" in line


def _unanswered(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check", FUNCTION_CHECKS, ids=check_id)
def test_not_implemented_is_not_answered_yet(check, capsys):
    ok, line = verdict(check, _unanswered, capsys)
    assert not ok and "not answered yet" in line


def _returns_none(*args):
    return None


def _returns_string(*args):
    return "0.5"


def _returns_nan(*args):
    return args[0] * math.nan


def _returns_wrong_shape(*args):
    return torch.zeros(7, 7)


def _raises(*args):
    raise ValueError("my own bug")


WRONG_FUNCTIONS = {  # a wrong kind of answer -> words the line must contain
    "a string": ("my answer", "give your function itself"),
    "a number": (3, "give your function itself (the name after def, without brackets), got 3 (int)"),
    "a function returning None": (_returns_none, "is None: did you forget `return`?"),
    "a function returning a string": (_returns_string, "got '0.5' (str)"),
    "a function returning NaN": (_returns_nan, "NaN"),
    "a function returning a wrong shape": (_returns_wrong_shape, "shape"),
    "a function that raises": (_raises, "your function raised ValueError: my own bug at line"),
}


NUMBER_CHECKS = (lab02.check_info_nce, lab02.check_recall_at_1, lab02.check_modality_gap, lab04.check_pointing,
                 lab06.check_distill)  # answers are numbers
NUMBER_WORDS = {"a function returning NaN": (lambda *args: torch.tensor(math.nan), "is nan, not a finite number"),
                "a function returning a wrong shape": (_returns_wrong_shape, "one number, got a tensor of shape (7, 7)")}


@pytest.mark.parametrize("check", FUNCTION_CHECKS, ids=check_id)
@pytest.mark.parametrize("kind", WRONG_FUNCTIONS)
def test_a_wrong_kind_of_answer_gets_a_clear_line_not_an_exception(check, kind, capsys):
    answer, words = NUMBER_WORDS.get(kind, WRONG_FUNCTIONS[kind]) if check in NUMBER_CHECKS else WRONG_FUNCTIONS[kind]
    if check is lab04.check_word_grid and kind == "a function returning NaN":  # its input is not its output's shape
        answer = lambda probs, token: probs[:, :, token].reshape(len(probs), 8, 8) * math.nan  # noqa: E731
    ok, line = verdict(check, answer, capsys)
    assert not ok and line.startswith("✗")
    assert words in line, line


@pytest.mark.parametrize(("answer", "words"), [
    ("500", "should be a number, got '500' (str)"), (True, "got True (bool)"), (3.5, "whole number"),
    (float("nan"), "not a finite number"), (-1, "in 0..999"), (10**9, "in 0..999"), ([260], "got [260] (list)"),
    (10**400, "too large to be a float"),
])
def test_the_snr_crossing_says_what_kind_of_number_it_wants(answer, words, capsys):
    ok, line = verdict(lab01.check_snr_crossing, answer, capsys)
    assert not ok and words in line, line


@pytest.mark.parametrize("answer", [np.int64(lab01.snr_crossing()), float(lab01.snr_crossing()),
                                    torch.tensor(lab01.snr_crossing())])
def test_the_snr_crossing_takes_any_kind_of_integer(answer, capsys):
    assert verdict(lab01.check_snr_crossing, answer, capsys)[0]


def test_the_snr_crossing_hints_which_way(capsys):
    truth = lab01.snr_crossing()
    assert "too early" in verdict(lab01.check_snr_crossing, truth - 5, capsys)[1]
    assert "too late" in verdict(lab01.check_snr_crossing, truth + 5, capsys)[1]


def test_guidance_in_the_other_convention_is_named_not_called_a_sign_error(capsys):
    ok, line = verdict(lab03.check_cfg, lambda u, c, w: (1 + w) * c - w * u, capsys)
    assert not ok and "other common convention" in line and "w_ours = 1 + w_theirs" in line
    assert "direction" not in line
    ok, line = verdict(lab03.check_cfg, lambda u, c, w: c + w * (u - c), capsys)
    assert not ok and "direction points from unconditional to conditional" in line
    ok, line = verdict(lab03.check_cfg, lambda u, c, w: c, capsys)
    assert not ok and "w = 0 must give eps_u" in line


def test_float64_answers_count(capsys):
    ok, _ = verdict(lab03.check_x0_from_v, lambda x_t, v, ab: x0_from_v(x_t.double(), v.double(), ab.double()), capsys)
    assert ok


def test_half_answers_get_their_hint(capsys):
    one_way = lambda logits: torch.nn.functional.cross_entropy(logits, torch.arange(len(logits)))  # noqa: E731
    assert "only the image -> text half" in verdict(lab02.check_info_nce, one_way, capsys)[1]
    swapped = lambda x0, t, ab, noise: q_sample(noise, t, ab, x0)  # noqa: E731
    assert "square roots are swapped" in verdict(lab01.check_q_sample, swapped, capsys)[1]
    x0_itself = lambda x_t, eps, ab_t, ab_prev: (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()  # noqa: E731
    assert "predicted x0 itself" in verdict(lab03.check_ddim_step, x0_itself, capsys)[1]
    assert Schedule.from_name("linear").T == 1000  # the crossing above is for T = 1000


def test_lab04s_wrong_answers_say_why(capsys):
    ok, line = verdict(lab04.check_pointing, lambda h, m: float(h[m].mean() > h[~m].mean()), capsys)
    assert not ok and "the pointing game asks only where its single highest pixel is" in line
    ok, line = verdict(lab04.check_pointing, lambda h, m: torch.tensor(False), capsys)
    assert not ok and "want 1, got 0 (the peak is inside the mask here)" in line  # False counts as 0
    ok, line = verdict(lab04.check_word_grid, lambda p, t: p[:, :, t].reshape(len(p), 8, 8).transpose(1, 2), capsys)
    assert not ok and "the grid is transposed" in line
    ok, line = verdict(lab04.check_word_grid, lambda p, t: p[:, :, t + 1].reshape(len(p), 8, 8), capsys)
    assert not ok and "a neighbouring token's map" in line
    ok, line = verdict(lab04.check_region_word, "red", capsys)
    assert not ok and "(it names the circle on the left, not the square)" in line
    for answer, words in [("pink", "is not a word of"), (3, "got 3 (int)"), (["blue"], "(list)")]:
        ok, line = verdict(lab04.check_region_word, answer, capsys)
        assert not ok and words in line
    ok, line = verdict(lab04.check_region_word, " Blue ", capsys)
    assert ok


def test_lab05s_wrong_answers_say_why(capsys):
    positions = torch.arange(14)  # the check's captions have 14 positions
    for answer, words in [
        (lambda x0, t, m, u: torch.where(u < t[:, None], m, x0), "<bos> (position 0) is never masked"),
        (lambda x0, t, m, u: torch.where((u >= t[:, None]) & (positions > 0), m, x0), "masks with probability 1 - t"),
        (lambda x0, t, m, u: torch.where(x0 <= 2, x0, mask(x0, t, m, u)), "<eos> and <pad> are masked like any word"),
        (lambda x0, t, m, u: (u < t[:, None]) & (positions > 0), "return the tokens z_t themselves"),
        (lambda x0, t, m, u: x0, "put mask_id at every position i > 0 with u[b, i] < t[b]"),
    ]:
        ok, line = verdict(lab05.check_mask, answer, capsys)
        assert not ok and words in line, line
    for answer, words in [
        (lambda c, m, n: c.argsort(1, descending=True).argsort(1) < n[:, None], "already known"),
        (lambda c, m, n: m & (c.masked_fill(~m, float("inf")).argsort(1).argsort(1) < n[:, None]), "least confident"),
        (lambda c, m, n: m & (m.cumsum(1) <= n[:, None]), "leftmost masked positions"),
        (lambda c, m, n: reveal(c, m, n[:1].expand(len(n))), "each caption reveals its own count"),
    ]:
        ok, line = verdict(lab05.check_reveal, answer, capsys)
        assert not ok and words in line, line
    for answer, words in [
        (lambda e: e.mean(-1).argmax(-1), "the largest error"),
        (lambda e: e.argmin(1).mode(-1).values, "takes the majority"),
        (lambda e: e[:, :, 0].argmin(-1), "the first evaluation only"),
        (lambda e: e.max(-1).values.argmin(-1), "their best or worst"),
        (lambda e: e.mean(1).argmin(-1), "averages over the candidates"),
        (lambda e: -e.mean(-1), "return the index of the chosen caption for each image"),
    ]:
        ok, line = verdict(lab05.check_pick, answer, capsys)
        assert not ok and words in line, line
    assert verdict(lab05.check_pick, lambda e: e.sum(-1).argmin(-1).double(), capsys)[0]  # float indices count


def test_lab06s_wrong_answers_say_why(capsys):
    for answer, words in [
        (lambda p: sorted(front(p)), "in the wrong order"),
        (lambda p: [i for i in range(len(p)) if not any(p[j, 0] <= p[i, 0] and p[j, 1] > p[i, 1] for j in range(len(p)))],
         "point 4 is not on the front: point 1 beats it, as faithful (0.94) and faster"),
        (lambda p: sorted(front(p) + [8], key=lambda i: float(p[i, 0])), "point 8 is not on the front: point 3 beats it, "
         "as fast (26 ms) and more faithful"),
        (lambda p: [int(p[:, 1].argmax())], "the most faithful point alone"),
        (lambda p: [int(p[:, 0].argmin())], "the fastest point alone"),
        (lambda p: p[front(p)], "not the points themselves"),
        (lambda p: torch.isin(torch.arange(len(p)), torch.tensor(front(p))), "that is a mask"),
        (lambda p: [front(p)[0], front(p)[0]], "appears twice"),
        (lambda p: front(p)[1:], "point 9 (12 ms, 0.40) is on the front"),
    ]:
        ok, line = verdict(lab06.check_front, answer, capsys)
        assert not ok and words in line, line
    assert verdict(lab06.check_front, lambda p: torch.tensor(front(p)), capsys)[0]  # a tensor of indices counts
    assert verdict(lab06.check_front, lambda p: [float(i) for i in front(p)], capsys)[0]  # whole floats count
    guided = lambda ab, x_t, v: (ab.sqrt() * x_t - (1 - ab).sqrt() * v)  # noqa: E731
    for answer, words in [
        (lambda x, x_t, c, u, ab, w: (ab * (x - guided(ab, x_t, c).clamp(-1, 1)) ** 2).mean(), "conditional prediction alone"),
        (lambda x, x_t, c, u, ab, w: (ab * (x - guided(ab, x_t, (1 + w) * c - w * u).clamp(-1, 1)) ** 2).mean(),
         "the other convention"),
        (lambda x, x_t, c, u, ab, w: (ab * (x - ((x_t - (1 - ab).sqrt() * (u + w * (c - u))) / ab.sqrt()).clamp(-1, 1)) ** 2)
         .mean(), "predicts v"),
        (lambda x, x_t, c, u, ab, w: (ab * (x - guided(ab, x_t, u + w * (c - u))) ** 2).mean(), "clamp the teacher's x_0"),
        (lambda x, x_t, c, u, ab, w: ((x - guided(ab, x_t, u + w * (c - u)).clamp(-1, 1)) ** 2).mean(), "weight each image"),
        (lambda x, x_t, c, u, ab, w: ((1 - ab) * (x - guided(ab, x_t, u + w * (c - u)).clamp(-1, 1)) ** 2).mean(),
         "not 1 - alpha_bar"),
        (lambda x, x_t, c, u, ab, w: (ab * (x - guided(ab, x_t, u + w * (c - u)).clamp(-1, 1)) ** 2).sum(), "that sums"),
        (lambda x, x_t, c, u, ab, w: (ab * (x_t - guided(ab, x_t, u + w * (c - u)).clamp(-1, 1)) ** 2).mean(),
         "compares the noised x_t"),
    ]:
        ok, line = verdict(lab06.check_distill, answer, capsys)
        assert not ok and words in line, line
    assert verdict(lab06.check_distill, lambda *a: distill(*a).item(), capsys)[0]  # a float counts
    for answer, words in [
        (lambda r, a, u: ((a - r) / (u - r)).mean().item(), "return two numbers"),
        (lambda r, a, u: (a - r) / (u - r), "has shape (3,)"),
        (lambda r, a, u: gap_recovered(r, a, u)[::-1], "swapped"),
        (lambda r, a, u: ((a.mean() - r.mean()) / (u.mean() - r.mean()), 0.1), "the fraction of the mean scores"),
        (lambda r, a, u: (-gap_recovered(r, a, u)[0], gap_recovered(r, a, u)[1]), "the sign is reversed"),
        (lambda r, a, u: (((a - r) / u).mean(), 0.1), "not by the upper bound's score"),
        (lambda r, a, u: (((a - r) / (u - r)).mean(), ((a - r) / (u - r)).std(unbiased=False)), "divides by S"),
        (lambda r, a, u: (((a - r) / (u - r)).mean(), ((a - r) / (u - r)).var()), "that is the variance"),
        (lambda r, a, u: (((a - r) / (u - r)).mean(), ((a - r) / (u - r)).std()), "raise a ValueError naming it"),
        (lambda r, a, u: gap_recovered(r, a, u) if (u - r).min() > 0.05 else 1 / 0 if (u == r).any() else (0.5, 0.1),
         "a negative gap (upper below real) in one seed your function returned (0.5, 0.1)"),
    ]:
        ok, line = verdict(lab06.check_gap, answer, capsys)
        assert not ok and words in line, line
    assert verdict(lab06.check_gap, lambda r, a, u: torch.stack(gap_recovered(r, a, u)), capsys)[0]  # a (2,) tensor
