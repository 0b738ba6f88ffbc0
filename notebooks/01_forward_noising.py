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
# # Lab 01 — Forward noising
#
# A diffusion model learns to undo a fixed process that slowly turns an image into noise.
# This lab is about that forward process alone: no neural network yet.
#
# **Learning goals.** After this lab you can
# 1. write $q(x_t \mid x_0)$ in closed form and sample from it in one line;
# 2. read a noise schedule through $\bar\alpha_t$ and the signal-to-noise ratio, and compare schedules;
# 3. explain why $t$ small steps equal one big step, and why a schedule should end at zero SNR.
#
# Everything runs on a laptop CPU in seconds.

# %% tags=["parameters"]
# Sizes: the tests run this notebook with smaller values.
T = 1000  # number of diffusion timesteps
N_SHOW = 6  # how many timesteps to show in the first figure
SEED = 0

# %%
import matplotlib.pyplot as plt
import torch

from mmdiff_lab.data import ShapesWorld, image_to_tensor, tensor_to_image
from mmdiff_lab.exercises.lab01 import check_iterated_forward, check_q_sample, check_snr_crossing
from mmdiff_lab.schedules import SCHEDULES, Schedule, q_sample
from mmdiff_lab.widgets import ForwardNoisingExplorer

world = ShapesWorld(seed=SEED)
example = world[3]
print(example.caption)
x0 = image_to_tensor(example.image)  # (3, 32, 32) in [-1, 1]

# %% [markdown]
# ## 1. One step at a time, and all at once
#
# Each forward step adds a little Gaussian noise and shrinks the signal so the variance stays bounded
# (Ho et al., 2020, Eq. 2):
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big).$$
#
# Composing Gaussians gives a closed form for any $t$, with $\bar\alpha_t = \prod_{s \le t} (1-\beta_s)$ (Eq. 4):
#
# $$q(x_t \mid x_0) = \mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)
# \quad\Longleftrightarrow\quad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ \ \varepsilon\sim\mathcal N(0, I).$$

# %%
schedule = Schedule.from_name("linear", T)
noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(SEED))
ts = torch.linspace(0, T - 1, N_SHOW).round().long()

fig, axes = plt.subplots(1, N_SHOW, figsize=(2 * N_SHOW, 2.3))
for ax, t in zip(axes, ts):
    x_t = q_sample(x0, int(t), schedule.alpha_bar, noise)
    ax.imshow(tensor_to_image(x_t))
    ax.set_title(f"t={int(t)}\nᾱ={float(schedule.alpha_bar[t]):.3f}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. Schedules, through $\bar\alpha_t$ and the SNR
#
# The schedule decides how fast the signal fades. The signal-to-noise ratio
# $\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)$ (Kingma et al., 2021) is the clearest single view:
# the cosine schedule (Nichol & Dhariwal, 2021) spends more steps at useful noise levels than the linear one.

# %%
fig, (ax_ab, ax_snr) = plt.subplots(1, 2, figsize=(11, 3.2))
for name in SCHEDULES:
    s = Schedule.from_name(name, T)
    ax_ab.plot(s.alpha_bar, label=name)
    ax_snr.plot(s.log_snr, label=name)
ax_ab.set(title="ᾱ_t", xlabel="t")
ax_snr.set(title="log SNR(t)", xlabel="t")
ax_ab.legend()
plt.show()

# %% [markdown]
# Common schedules do not reach pure noise: $\bar\alpha_{T-1} > 0$, so the model trains on a little leftover
# signal at the last step that it never sees when sampling starts from pure noise. Lin et al. (2024) rescale
# $\sqrt{\bar\alpha_t}$ so the last step has exactly zero SNR:

# %%
for name in SCHEDULES:
    plain = Schedule.from_name(name, T).alpha_bar[-1]
    rescaled = Schedule.from_name(name, T, zero_terminal_snr=True).alpha_bar[-1]
    print(f"{name:>14}: ᾱ at the last step {float(plain):.2e}, rescaled {float(rescaled):.2e}")

# %% [markdown]
# ## 3. Explore
#
# Pick an image (a ShapesWorld scene, a handwritten digit, or upload your own), choose a schedule and move
# $t$. The noise is drawn once per seed, so scrubbing is smooth and repeatable. Watch the histogram: the
# pixel values of $x_t$ go from the image's few colours to the standard normal.

# %%
explorer = ForwardNoisingExplorer(schedule="linear")
explorer

# %% [markdown]
# ## 4. Exercises
#
# Each exercise has a check that tells you whether your answer is right. Solutions are in
# `solutions/01_forward_noising.ipynb`: try first.
#
# **Exercise 1.** For the linear schedule with $T = 1000$, at which timestep $t$ does the noise first
# outweigh the signal, that is, SNR$(t) < 1$ for the first time? (Use the explorer, or compute it.)

# %%
answer_1 = None  # an integer t

check_snr_crossing(answer_1)

# %% [markdown]
# **Exercise 2.** Write `q_sample` yourself from the closed form above.

# %%
def my_q_sample(x0, t, alpha_bar, noise):
    """x_t from x_0 in one step; alpha_bar has shape (T,)."""
    raise NotImplementedError  # your code here


check_q_sample(my_q_sample)

# %% [markdown]
# **Exercise 3.** Write one forward step $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon_t$.
# The check runs it 301 times on 20,000 pixels and compares the result's mean and spread with the closed
# form at $t = 300$. Why do they agree?

# %%
def forward_step(x_prev, beta_t, eps):
    """One step of q(x_t | x_{t-1})."""
    raise NotImplementedError  # your code here


check_iterated_forward(forward_step)

# %% [markdown]
# **Going further.** Switch the explorer to a handwritten digit and the cosine schedule: at which $t$ can you
# no longer tell a 3 from an 8? Is it the same $t$ for the ShapesWorld scene? What does that say about
# which noise levels a model of digits must learn best?
