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
# # Lab 01 — solutions
#
# For instructors, and for students who have tried. Each cell answers one exercise of
# `01_forward_noising.ipynb` and runs its check.

# %% tags=["parameters"]
T = 1000

# %%
from mmdiff_lab.exercises.lab01 import check_iterated_forward, check_q_sample, check_snr_crossing
from mmdiff_lab.schedules import Schedule

# %% [markdown]
# **Exercise 1.** The first t with SNR < 1: compute the SNR curve and take the first index below 1.

# %%
snr = Schedule.from_name("linear", T).snr
answer_1 = int((snr < 1).nonzero()[0])
print("SNR first below 1 at t =", answer_1)
ok_1 = check_snr_crossing(answer_1, T=T)

# %% [markdown]
# **Exercise 2.** The closed form, with alpha_bar indexed at t.

# %%
def my_q_sample(x0, t, alpha_bar, noise):
    ab = alpha_bar[t].to(x0.dtype)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


ok_2 = check_q_sample(my_q_sample)

# %% [markdown]
# **Exercise 3.** One step scales the signal by sqrt(1 - beta) and adds noise of variance beta. Products of
# the scales give sqrt(alpha_bar); the variances add up to 1 - alpha_bar, since the sum of independent
# Gaussians is Gaussian.

# %%
def forward_step(x_prev, beta_t, eps):
    return (1 - beta_t).sqrt() * x_prev + beta_t.sqrt() * eps


ok_3 = check_iterated_forward(forward_step)

# %%
assert ok_1 and ok_2 and ok_3, "a solution failed its own check"
