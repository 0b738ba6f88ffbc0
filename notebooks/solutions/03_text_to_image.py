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
# # Lab 03 — solutions
#
# Each cell answers one exercise of `03_text_to_image.ipynb` and runs its check.

# %% tags=["parameters"]
SEED = 0

# %%
from mmdiff_lab.exercises.lab03 import check_cfg, check_ddim_step, check_x0_from_v

# %% [markdown]
# **Exercise 1.** Recover the clean image the noise guess implies, then put it back at the earlier noise
# level with the *same* noise direction: no fresh noise, so the step is deterministic.

# %%
def my_ddim_step(x_t, eps, ab_t, ab_prev):
    x0 = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    return ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps


ok_1 = check_ddim_step(my_ddim_step)

# %% [markdown]
# **Exercise 2.** Start from the unconditional guess and move w times along the direction the text adds.

# %%
def my_cfg(eps_uncond, eps_cond, w):
    return eps_uncond + w * (eps_cond - eps_uncond)


ok_2 = check_cfg(my_cfg)

# %% [markdown]
# **Exercise 3.** Multiply x_t by sqrt(ab) and v by sqrt(1 - ab), subtract: the eps terms cancel and
# ab + (1 - ab) = 1 leaves x0.

# %%
def my_x0_from_v(x_t, v, ab_t):
    return ab_t.sqrt() * x_t - (1 - ab_t).sqrt() * v


ok_3 = check_x0_from_v(my_x0_from_v)
