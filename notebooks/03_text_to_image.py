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
# # Lab 03 — Text to image
#
# Lab 01 destroyed images with noise; lab 02 taught a text tower what the words look like. Here a denoiser
# learns to *undo* the noise while reading the text tower's token states through cross-attention, as Stable
# Diffusion reads CLIP's (beside each word's own embedding: in the tower's last layer a colour-shape pair never
# trained on blurs towards trained ones, see `mmdiff_lab.denoiser.text_context`). Then we take the sampling loop
# apart: the update rules, guidance, samplers, and switching any of them half-way through a run.
#
# **Learning goals.** After this lab you can
# 1. write the DDPM and DDIM updates and check them against diffusers;
# 2. say what classifier-free guidance does to faithfulness and to diversity, with numbers;
# 3. choose a sampler and a step count, and guide only where guidance helps (a guidance interval);
# 4. branch a run: change the prompt, the guidance or the sampler at any step and compare.

# %% tags=["parameters"]
# Sizes: the tests run this notebook with smaller values.
MODEL = "t2i-shapes"  # a shipped pipeline, or the folder of your own `mmdiff-lab train t2i` run
N_PROMPTS = 48  # held-out prompts per measurement
SCALES = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)  # guidance scales to measure
STEP_COUNTS = (5, 10, 20, 50)  # sampler comparison
TRAIN_STEPS = 300  # the live training demo at the end (the shipped model trained for thousands)
SEED = 0

# %%
import time

import matplotlib.pyplot as plt
import torch

from mmdiff_lab import pretrained
from mmdiff_lab.data import tensor_to_image
from mmdiff_lab.exercises.lab03 import check_cfg, check_ddim_step, check_x0_from_v
from mmdiff_lab.metrics.judge import faithfulness, load_judge
from mmdiff_lab.pipeline import SCHEDULERS, Stage, load_pipeline
from mmdiff_lab.schedules import ddim_step, ddpm_step
from mmdiff_lab.t2i import generate, heldout_scenes
from mmdiff_lab.widgets import DenoisingStepper

pipe = load_pipeline(MODEL)
judge = load_judge(pretrained.path("judge-shapes"))


def show(images, titles=None, size=1.6):
    """A row of (3, S, S) images in [-1, 1]."""
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size * 1.15), squeeze=False)
    for i, (ax, im) in enumerate(zip(axes[0], images)):
        ax.imshow(tensor_to_image(im))
        ax.axis("off")
        if titles:
            ax.set_title(titles[i], fontsize=7)
    plt.show()


# %% [markdown]
# ## 1. A prompt in, an image out
#
# The pipeline is a diffusers `DiffusionPipeline`: prompt $\to$ token states $\to$ a loop of denoiser calls
# and sampler steps $\to$ image. The prompts below come from the **held-out split**: each names a colour-shape
# pair the denoiser never saw in training.

# %%
prompts, scenes = heldout_scenes(2, 4)
prompts = ["a small red circle left of a large blue square"] + prompts[:3]
t0 = time.perf_counter()
images = pipe(prompts, generator=torch.Generator().manual_seed(SEED), output_type="pt").images
print(f"{len(prompts)} images in {time.perf_counter() - t0:.2f} s (DPM-Solver++, 20 steps, guidance 3)")
show(images, [p.replace(" left", "\nleft").replace(" right", "\nright").replace(" above", "\nabove")
              .replace(" below", "\nbelow") for p in prompts], size=2.2)

# %% [markdown]
# ## 2. The update rules, written out
#
# The denoiser $\epsilon_\theta(x_t, t, c)$ guesses the noise in $x_t$. From it, the clean image it implies is
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}$ (DDPM Eq. 15).
#
# **DDPM** (Ho et al., 2020, Alg. 2) steps to $t-1$ by sampling the posterior $q(x_{t-1}\mid x_t, \hat x_0)$:
#
# $$x_{t-1} = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\hat x_0
#   + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t + \tilde\beta_t^{1/2} z .$$
#
# **DDIM** (Song et al., 2021, Eq. 12, $\eta = 0$) jumps to any earlier $s$ deterministically:
#
# $$x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s}\,\epsilon_\theta .$$
#
# Our readable `ddpm_step` and `ddim_step` (from `mmdiff_lab.schedules`) against diffusers' schedulers, with
# the trained model's noise guess:

# %%
from diffusers import DDIMScheduler, DDPMScheduler

config = pipe.scheduler.config
ab = pipe.scheduler.alphas_cumprod
x_t = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(SEED))
states, mask = pipe.encode_prompt([prompts[0]])
with torch.no_grad():
    eps = pipe.denoiser(x_t, 600, encoder_hidden_states=states, encoder_attention_mask=mask).sample
ddpm = DDPMScheduler.from_config(config)
noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(1))
ours = ddpm_step(eps, 600, x_t, ab, noise)
theirs = ddpm.step(eps, 600, x_t, generator=torch.Generator().manual_seed(1)).prev_sample
print(f"DDPM step t=600 -> 599: max |ours - diffusers| = {(ours - theirs).abs().max():.2e}")
ddim = DDIMScheduler.from_config(config)
ddim.set_timesteps(20)
ours = ddim_step(eps, 599, 549, x_t, ab)
theirs = ddim.step(eps, 599, x_t).prev_sample
print(f"DDIM step t=599 -> 549: max |ours - diffusers| = {(ours - theirs).abs().max():.2e}")

# %% [markdown]
# ## 3. Step through a run, and branch it
#
# **Run** records every step: $x_t$, the model's guess of the clean image $\hat x_0$, its guess of the noise
# $\hat\epsilon$, and $\Delta\epsilon$, how far guidance moved the noise guess. Step back and forth (nothing is
# recomputed), then pick a step, change the prompt, the guidance or the sampler under **branch**, and press
# **Branch here**: the run continues from that $x_t$ and both results show side by side. Try branching to
# another colour at step 2 and at step 15: which attributes are already decided early?

# %%
stepper = DenoisingStepper(pipeline=pipe, seed=SEED)
stepper.state.run()
stepper

# %% [markdown]
# ## 4. What guidance does, measured
#
# Classifier-free guidance (Ho & Salimans, 2022) trains one model both with and without the text (captions
# dropped 10% of the time) and extrapolates from the unconditional guess towards the conditional one:
#
# $$\tilde\epsilon = \epsilon_\theta(x_t, \varnothing) + w\,\big(\epsilon_\theta(x_t, c) - \epsilon_\theta(x_t, \varnothing)\big).$$
#
# $w = 0$ ignores the text, $w = 1$ is the plain conditional model, $w > 1$ pushes further. Below, for each $w$:
# **faithfulness** (the judge: is every attribute of a held-out one-object prompt right?) and **diversity**
# (mean pixel distance between two images of the same prompt from different seeds).
#
# Guidance does not always buy faithfulness. On 200 + 200 validation prompts of held-out pairs, the shipped
# model drew one object right 0.97 of the time at $w = 1$, 0.965 at 1.5, 0.895 at 3 and 0.87 at 6: pushing
# away from the unconditional guess pushes a never-seen pair such as "blue circle" towards the pairs it was
# trained on. `mmdiff-lab eval` therefore judges it at $w = 1.5$ (`mmdiff_lab.evaluate.SHAPES_GUIDANCE`).

# %%
single_prompts, single_scenes = heldout_scenes(1, N_PROMPTS)


def diversity(a, b):
    return (a - b).abs().mean().item()


rows = []
for w in SCALES:
    a = generate(pipe, single_prompts, guidance_scale=w, seed=SEED)
    b = generate(pipe, single_prompts, guidance_scale=w, seed=SEED + 1)
    f = faithfulness(judge, single_scenes, a)
    rows.append((w, f["single.all"], diversity(a, b)))
    print(f"w = {w:>4}: all attributes right {f['single.all']:.2f}   diversity {rows[-1][2]:.3f}")
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label="faithfulness (judge)")
ax.plot([r[0] for r in rows], [r[2] for r in rows], "s-", label="diversity (pixel distance)")
ax.set(xlabel="guidance scale w", title="what guidance does to faithfulness and diversity")
ax.legend()
plt.show()

# %% [markdown]
# ## 5. Guide only where it helps: a guidance interval
#
# Kynkäänniemi et al. (2024) found guidance harmful at the highest noise levels (it collapses diversity) and
# useless at the lowest (the image is decided), so they guide only inside an interval. Here the interval is
# in fractions of the schedule, $t/T \in [lo, hi]$; outside it the pipeline skips the unconditional pass,
# so a narrower interval is also cheaper.

# %%
for interval in [(0.0, 1.0), (0.2, 0.9), (0.0, 0.5), (0.5, 1.0)]:
    t0 = time.perf_counter()
    a = pipe(single_prompts, guidance_scale=5.0, guidance_interval=interval, output_type="pt",
             generator=torch.Generator().manual_seed(SEED)).images
    seconds = time.perf_counter() - t0
    b = pipe(single_prompts, guidance_scale=5.0, guidance_interval=interval, output_type="pt",
             generator=torch.Generator().manual_seed(SEED + 1)).images
    f = faithfulness(judge, single_scenes, a)
    print(f"interval {interval}: faithfulness {f['single.all']:.2f}  diversity {diversity(a, b):.3f}  "
          f"({seconds:.2f} s)")

# %% [markdown]
# ## 6. Samplers and step counts
#
# Every sampler is a diffusers scheduler built from the same training config: DDPM (ancestral, needs many
# steps), DDIM (deterministic), DPM-Solver++ (Lu et al., 2022, second order, multistep), Euler and Heun
# (Karras et al., 2022; Heun calls the model twice per step) and UniPC (Zhao et al., 2023).

# %%
results = {}
for name in SCHEDULERS:
    for steps in STEP_COUNTS:
        images = generate(pipe, single_prompts, steps=steps, sampler=name, seed=SEED)
        results[name, steps] = faithfulness(judge, single_scenes, images)["single.all"]
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for name in SCHEDULERS:
    ax.plot(STEP_COUNTS, [results[name, s] for s in STEP_COUNTS], "o-", label=name)
ax.set(xscale="log", xticks=list(STEP_COUNTS), xticklabels=[str(s) for s in STEP_COUNTS], xlabel="steps",
       ylabel="all attributes right", title="held-out one-object prompts")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# ## 7. Staged and weighted sampling
#
# **Stages** switch settings at a chosen step: start with one prompt and switch to another, or change
# sampler mid-way. Early steps fix the layout, late steps the details, so a switch at step 4 keeps where
# things are and may change what they are.
#
# **Weights**: `(word:1.5)` scales that word's token state (a louder key and value in every cross-attention);
# a dict `{prompt: weight}` adds several prompts' guidance directions (composable diffusion, Liu et al., 2022).

# %%
first = "a large red square on the left"
second = "a large blue circle on the left"
g = lambda: torch.Generator().manual_seed(SEED)  # noqa: E731
runs = {
    "first": pipe(first, generator=g(), output_type="pt").images[0],
    "second": pipe(second, generator=g(), output_type="pt").images[0],
    "switch at step 4": pipe(first, stages=[Stage(at=4, prompt=second)], generator=g(), output_type="pt").images[0],
    "switch at step 12": pipe(first, stages=[Stage(at=12, prompt=second)], generator=g(), output_type="pt").images[0],
    "(blue:2) circle": pipe("a large (blue:2) circle on the left", generator=g(), output_type="pt").images[0],
    "0.5 first + 0.5 second": pipe({first: 0.5, second: 0.5}, generator=g(), output_type="pt").images[0],
}
show(list(runs.values()), list(runs), size=2.0)

# %% [markdown]
# ## 8. Exercises
#
# **Exercise 1.** Write one DDIM step with $\eta = 0$: from $x_t$, the noise guess $\hat\epsilon$, $\bar\alpha_t$
# and $\bar\alpha_{t_{prev}}$, return $x_{t_{prev}}$.

# %%
def my_ddim_step(x_t, eps, ab_t, ab_prev):
    raise NotImplementedError  # your code here


check_ddim_step(my_ddim_step)

# %% [markdown]
# **Exercise 2.** Write classifier-free guidance: from the unconditional and conditional noise guesses and a
# scale $w$, return the guided guess.

# %%
def my_cfg(eps_uncond, eps_cond, w):
    raise NotImplementedError  # your code here


check_cfg(my_cfg)

# %% [markdown]
# **Exercise 3.** A v-prediction model (Salimans & Ho, 2022) predicts $v = \sqrt{\bar\alpha_t}\,\epsilon -
# \sqrt{1-\bar\alpha_t}\,x_0$. Given $x_t$, $v$ and $\bar\alpha_t$, return the $x_0$ it implies.

# %%
def my_x0_from_v(x_t, v, ab_t):
    raise NotImplementedError  # your code here


check_x0_from_v(my_x0_from_v)

# %% [markdown]
# ## 9. Train your own (optional)
#
# The shipped model trained from scratch on this kind of CPU with `mmdiff-lab train t2i --world shapes`
# (see its `metrics.json`); a grid of samples for fixed held-out prompts lands in `runs/t2i-shapes/samples/`
# every few hundred steps. Here, a short run of the tiny preset to watch the loss fall:

# %%
from mmdiff_lab.t2i import T2ITrainConfig, train_t2i

cfg = T2ITrainConfig(preset="tiny", steps=TRAIN_STEPS, batch_size=64, pool_size=4000, eval_every=0,
                     checkpoint_every=0, warmup=min(50, TRAIN_STEPS))
mine, history = train_t2i(cfg, "runs/t2i-tiny-demo")
plt.figure(figsize=(4, 2.5))
plt.plot([h["step"] for h in history], [h["loss"] for h in history])
plt.yscale("log")
plt.xlabel("step")
plt.ylabel("loss")
plt.show()
show(generate(mine, prompts[:4], seed=SEED), prompts[:4])
