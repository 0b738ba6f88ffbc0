# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 06 — solutions
#
# Each cell answers one exercise of `06_efficiency_augmentation.ipynb` and runs its check.

# %% tags=["parameters"]
SEED = 0

# %%
import torch

from mmdiff_lab.exercises.lab06 import check_distill, check_front, check_gap
from mmdiff_lab.metrics.efficiency import pareto_front

# %% [markdown]
# **Exercise 1.** Sort the points by time, the faster first and, among equal times, the more faithful first; then
# sweep: a point is on the front when it is more faithful than every point before it (strictly: an equal one
# before it is as faithful and at least as fast, so it beats this one). The library's `pareto_front` is this sweep.

# %%
def my_front(points):
    order = sorted(range(len(points)), key=lambda i: (float(points[i, 0]), -float(points[i, 1])))
    front, best = [], -float("inf")
    for i in order:
        if points[i, 1] > best:
            front.append(i)
            best = float(points[i, 1])
    return front


ok_1 = check_front(my_front)

# %%
points = torch.rand(200, 2, generator=torch.Generator().manual_seed(SEED)).round(decimals=1)  # many ties
print("same front as the library's pareto_front on 200 random points:",
      my_front(points) == pareto_front(points.tolist()))

# %% [markdown]
# **Exercise 2.** Guide the teacher's two predictions (lab 03: $v_u + w\,(v_c - v_u)$), read $x_0$ from the guided
# $v$ at $x_{t'}$ (lab 03: $\sqrt{\bar\alpha}\,x_t - \sqrt{1 - \bar\alpha}\,v$), clamp it to the pixel range, and
# weight each image's squared error by its $\bar\alpha_{t'}$. In training the target is computed under
# `torch.no_grad()`: the student follows the teacher, never the other way round.

# %%
def my_distill(x_hat, x_t, v_c, v_u, ab, w):
    v = v_u + w * (v_c - v_u)
    target = (ab.sqrt() * x_t - (1 - ab).sqrt() * v).clamp(-1, 1)
    return (ab * (x_hat - target) ** 2).mean()


ok_2 = check_distill(my_distill)

# %% [markdown]
# **Exercise 3.** Each seed's fraction against its own arms, then the mean and the sample standard deviation over
# seeds. The fraction of the mean scores is a different number: a seed with a wide gap would outweigh one with a
# narrow gap. A seed without a gap has no fraction at all, so the function refuses it (the library's `gap_fraction`
# returns nan there, and the mean and spread leave it out).

# %%
def my_gap(real, augmented, upper):
    gap = upper - real
    if (gap <= 0).any():
        seed = int((gap <= 0).nonzero()[0])
        raise ValueError(f"seed {seed}: the upper bound ({upper[seed]:.3f}) is no better than the real arm "
                         f"({real[seed]:.3f}), so there is no gap to recover")
    fractions = (augmented - real) / gap
    return fractions.mean().item(), fractions.std().item()  # torch.std: ddof = 1


ok_3 = check_gap(my_gap)
