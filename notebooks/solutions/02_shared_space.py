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
# # Lab 02 — solutions
#
# Each cell answers one exercise of `02_shared_space.ipynb` and runs its check.

# %% tags=["parameters"]
SEED = 0

# %%
import torch
import torch.nn.functional as F

from mmdiff_lab.exercises.lab02 import check_info_nce, check_modality_gap, check_recall_at_1

# %% [markdown]
# **Exercise 1.** Row i of the logits scores image i against every caption; the right caption is i. The
# text-to-image half is the same with the matrix transposed.

# %%
def info_nce(logits):
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


ok_1 = check_info_nce(info_nce)

# %% [markdown]
# **Exercise 2.** The arg-max of each row is the retrieved candidate.

# %%
def recall_at_1(sim):
    return (sim.argmax(dim=1) == torch.arange(len(sim))).float().mean().item()


ok_2 = check_recall_at_1(recall_at_1)

# %% [markdown]
# **Exercise 3.** Means over the batch, then the Euclidean norm of their difference.

# %%
def gap(image_embeds, text_embeds):
    return (image_embeds.mean(0) - text_embeds.mean(0)).norm().item()


ok_3 = check_modality_gap(gap)

# %%
assert ok_1 and ok_2 and ok_3, "a solution failed its own check"
