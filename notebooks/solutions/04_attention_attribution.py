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
# # Lab 04 — solutions
#
# Each cell answers one exercise of `04_attention_attribution.ipynb` and runs its check.

# %% tags=["parameters"]
SEED = 0

# %%
import torch

from mmdiff_lab.exercises.lab04 import REGION_PROMPT, check_pointing, check_region_word, check_word_grid

# %% [markdown]
# **Exercise 1.** Flatten both, take the map's argmax, and look that one pixel up in the mask.

# %%
def my_pointing(heat, mask):
    return float(mask.flatten()[heat.flatten().argmax()])


ok_1 = check_pointing(my_pointing)

# %% [markdown]
# **Exercise 2.** Column `token` of the last axis is (H, N); raster order means a plain reshape to (H, h, h).
# The challenge: record with `heads="all"`, then score every (layer, head) map of "red" by its IoU.

# %%
def my_word_grid(probs, token):
    H, N, _ = probs.shape
    h = int(N**0.5)
    return probs[:, :, token].reshape(H, h, h)


ok_2 = check_word_grid(my_word_grid)

# %% [markdown]
# **Exercise 3.** Sum each word's ablation map inside the square's true mask and take the largest. "blue" wins:
# the square's colour is the biggest change. "left" comes second: without it the caption no longer says where
# the objects go, so the whole layout moves.

# %%
from mmdiff_lab.data.shapes import example_of
from mmdiff_lab.pipelines import TrajectoryRecorder, load_pipeline
from mmdiff_lab.probes.attribution import ablation_maps

pipe = load_pipeline("t2i-shapes")
steps = TrajectoryRecorder()
pipe(REGION_PROMPT, generator=torch.Generator().manual_seed(SEED), output_type="pt", callback_on_step_end=steps)
first = steps.trajectory.steps[0]
maps = ablation_maps(pipe, REGION_PROMPT, first.x_t[:1], first.t)
square = torch.from_numpy(example_of(REGION_PROMPT).masks[1])
mass = {w.text: float(maps.maps[0, w.index][square].sum()) for w in maps.words}
my_word = max(mass, key=mass.get)
print(sorted(mass.items(), key=lambda item: -item[1])[:3])
ok_3 = check_region_word(my_word)
