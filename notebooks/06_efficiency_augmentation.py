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
# # Lab 06 — Efficiency and augmentation
#
# Lab 03's model draws an image in 20 denoiser steps, each run twice for classifier-free guidance. This lab asks
# what those steps buy, and what a fast generator is good for. First we read the objective of a **few-step
# generator**: the same model, taught with an adversarial loss and the teacher's own predictions to draw in 1 to 4
# steps (adversarial diffusion distillation, ADD). Then we put one prompt through every way of sampling the suite
# has and race them: what each image shows, how varied the images are, and what each costs in CPU time, with the
# Pareto front marked. Last, we train a model on a scarce set of real pairs, add generated pairs, and measure how
# much of the gap to a model trained on several times more real data they close, with and without filtering them.
#
# **Learning goals.** After this lab you can
# 1. write the ADD objective (a distillation term and a hinge game between generator and discriminator) and
#    check one evaluation of it against the library's pieces;
# 2. read a GAN's training curves: both players' losses, and what a discriminator stuck at chance means;
# 3. race samplers and few-step generators on faithfulness, diversity and time, and read the Pareto front;
# 4. say why fewer steps can be more faithful to the prompt yet further from the true images;
# 5. measure the share of the gap to more real data that generated pairs recover, with its spread over seeds.

# %% tags=["parameters"]
# Sizes: a Run All takes under a minute on 2 cores at these values.
GENERATOR = "fewstep-shapes"  # t2i-shapes distilled adversarially (ADD) to draw in 1, 2 or 4 steps
ANCHOR = "fewstep-shapes-distill"  # the same recipe without the discriminator: the adversarial loss's anchor
TEACHER = "t2i-shapes"  # lab 03's model: the teacher, and the model every sampler runs on
SAMPLERS = ("dpm++",)  # raced here; the widget offers all six, and `mmdiff-lab eval --only efficiency` races them
STEP_COUNTS = (1, 2, 4, 8, 20)  # 20: lab 03's default
N_RACE = 8  # held-out prompts per group (one and two objects) per method (`mmdiff-lab eval`: 100)
AUG_MODEL = "clip"  # the model trained on each arm: "clip" (lab 02's dual encoder) or "judge"
AUG_REAL = 60  # scarce real pairs (12 of them set aside for validation)
AUG_RATIOS = (1.0, 2.0)  # generated pairs per real pair
AUG_SEEDS = (0, 1)
AUG_STEPS = 60  # training steps of every arm (`mmdiff-lab augment`: the model's recipe, 200 for clip)
AUG_BATCH = 32  # pairs per step (the recipe: 64)
AUG_FILTER = "judge"  # the filtered arm: "judge" (keep the pairs it reads as their caption says) or "clip"
AUG_RESULTS = None  # a JSON file written by `mmdiff-lab augment ... --json PATH`: plotted in place of the small run
SEED = 0

# %%
import copy
import inspect
import json
import statistics
import textwrap
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from mmdiff_lab.augmentation import (
    AugmentConfig,
    captions_from_images,
    images_from_captions,
    load_results,
    run_protocol,
)
from mmdiff_lab.augmentation.generated import judge_agrees
from mmdiff_lab.augmentation.plot import plot_curves
from mmdiff_lab.augmentation.protocol import Models
from mmdiff_lab.data import ShapesWorld, image_to_tensor, tensor_to_image
from mmdiff_lab.exercises.lab06 import check_distill, check_front, check_gap
from mmdiff_lab.loading import load_clip, load_judge, resolve
from mmdiff_lab.metrics import efficiency as E
from mmdiff_lab.metrics.faithfulness import heldout_scenes
from mmdiff_lab.models.discriminator import DiscriminatorHeads, TeacherFeatures, hinge_d, hinge_g
from mmdiff_lab.pipelines.image_to_text import load_captioner
from mmdiff_lab.pipelines.text_to_image import load_pipeline
from mmdiff_lab.schedules import q_sample
from mmdiff_lab.training.fewstep import FewStepTrainConfig, student_timesteps, train_fewstep, x0_from
from mmdiff_lab.widgets import AugmentationView, SamplerRace, SamplerRacing

teacher = load_pipeline(TEACHER)
generator, anchor = load_pipeline(GENERATOR), load_pipeline(ANCHOR)
LABELS = {Path(GENERATOR).name: generator, Path(ANCHOR).name: anchor}  # how tables and plots name them
for pipe in (teacher, generator, anchor):
    pipe.set_progress_bar_config(disable=True)
judge = load_judge("judge-shapes")
clip, clip_tokenizer = load_clip("clip-shapes")
captioner = load_captioner("i2t-shapes")
alpha_bar = teacher.scheduler.alphas_cumprod.float()
prediction = teacher.scheduler.config.prediction_type  # the teacher predicts v


def ab_of(t):
    """alpha_bar at timesteps t (B,), shaped (B, 1, 1, 1) to multiply images."""
    return alpha_bar[t][:, None, None, None]


def settings_of(name):
    """The training settings a generator was made with (its train_config.json), over the recipe's defaults."""
    file = resolve(name) / "train_config.json"
    saved = json.loads(file.read_text()) if file.is_file() else {}
    defaults = {k: getattr(FewStepTrainConfig(), k) for k in ("teacher_guidance", "disc_max_t", "adversarial_weight")}
    return {**defaults, **{k: v for k, v in saved.items() if k in defaults}}


trained = settings_of(GENERATOR)
print(f"{Path(GENERATOR).name}: {generator.defaults.sampler} at w = {generator.defaults.guidance_scale:g}, "
      f"{generator.supported_steps} steps; trained with {trained}")

# %% [markdown]
# ## 1. The objective, beside its code
#
# The student $G$ is the teacher with a small LoRA adapter (Hu et al., 2021) on every layer, trained at four
# **student timesteps** $\tau \in \{999, 749, 499, 249\}$, the ones DDPM's sampler visits at 4 steps (1 and 2
# steps visit some of them). From a real image $x_0$ and its caption $c$:
#
# $$x_\tau = \sqrt{\bar\alpha_\tau}\,x_0 + \sqrt{1 - \bar\alpha_\tau}\,\epsilon, \qquad
#   \hat x = G(x_\tau, \tau, c) \quad\text{(the student's image, one network evaluation)}.$$
#
# **Distillation** (Sauer et al., 2023): noise the student's image again to a random $t'$ and ask the frozen teacher,
# with classifier-free guidance, where it would take it; pull $\hat x$ there, weighted by $\bar\alpha_{t'}$ (a
# target read from nearly pure noise says little):
#
# $$\mathcal L_\text{distill} = \bar\alpha_{t'}\,\big\lVert \hat x - \mathrm{sg}\big(\hat x_0^{\,\text{teacher}}
#   (x_{t'}, t', c;\ w)\big)\big\rVert^2, \qquad x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x + \sqrt{1-\bar\alpha_{t'}}\,
#   \epsilon', \quad t' \sim U[0, T),$$
#
# where $\hat x_0^{\,\text{teacher}}$ comes from the guided prediction $v_u + w\,(v_c - v_u)$ (lab 03) and
# $\mathrm{sg}$ stops the gradient. **The adversarial game**: a discriminator $D$ (the frozen teacher's block
# features of an image noised to a small $s$, read by small heads that also see the caption) tells real images
# from the student's. With the hinge loss (Lim & Ye, 2017),
#
# $$\mathcal L(D) = \mathbb E\big[\max(0, 1 - D(x_0, s, c))\big] + \mathbb E\big[\max(0, 1 + D(\mathrm{sg}(\hat x), s,
#   c))\big], \qquad \mathcal L_\text{adv}(G) = -\,\mathbb E\big[D(\hat x, s, c)\big],$$
#
# and the student minimises $\lambda_d\,\mathcal L_\text{distill} + \lambda_a\,\mathcal L_\text{adv}(G)$ while $D$
# minimises $\mathcal L(D)$. The anchor (`ANCHOR`) is the same recipe with $\lambda_a = 0$ and no $D$, so the two
# shipped generators differ by the adversarial loss alone. Why distil at all, rather than train a GAN from scratch
# as DDGAN does (Xiao et al., 2022)? The teacher already knows which scene a caption means; a GAN from scratch on
# two cores would spend its whole budget learning that. Here is the loss as `mmdiff-lab train fewstep` computes it:

# %%
source = inspect.getsource(train_fewstep)
print(source[source.index("    def loss(") : source.index("        return total, parts")] + "        return total, parts")

# %% [markdown]
# Now one evaluation by hand on a batch of eight real training pairs, every image at the first student timestep
# $\tau = 999$ (where sampling in one step starts). Three students share the batch and its noise: the teacher itself
# used as a one-step generator, the anchor and the adversarial generator. First, the identity every line above
# leans on: the teacher predicts $v = \sqrt{\bar\alpha}\,\epsilon - \sqrt{1 - \bar\alpha}\,x_0$, and `x0_from` turns
# it back into $x_0$:

# %%
B = 8
world = ShapesWorld(seed=SEED, size=B)
x0 = torch.stack([image_to_tensor(world[i].image) for i in range(B)])  # (B, 3, 32, 32) in [-1, 1]
captions = [world[i].caption for i in range(B)]
taus = student_timesteps(teacher.scheduler.config)
g = torch.Generator().manual_seed(SEED)
tau = torch.full((B,), taus[0])
t_d = torch.randint(0, len(alpha_bar), (B,), generator=g)  # t' for the distillation target
s = torch.randint(0, trained["disc_max_t"], (B,), generator=g)  # the discriminator's noise level
noise = torch.randn((4, *x0.shape), generator=g)  # for x_tau, x_t', real x_s, fake x_s
x_tau = q_sample(x0, tau, alpha_bar, noise[0])
v_true = ab_of(tau).sqrt() * noise[0] - (1 - ab_of(tau)).sqrt() * x0
print(f"student timesteps {taus}; the batch at tau = {taus[0]} (alpha_bar = {alpha_bar[taus[0]]:.2e})")
print(f"max |x0_from(v) - x_0| = {(x0_from(v_true, x_tau, ab_of(tau), prediction) - x0).abs().max():.1e}")

# %% [markdown]
# The distillation term of each student, then the discriminator's side with a **fresh** $D$ (untrained heads, as at
# step 0 of training: the shipped generator's heads are not kept):

# %%
states, mask = teacher.encode_prompt(captions)  # (B, L, C) the caption's token states, (B, L)
u_states, u_mask = teacher.encode_prompt([""])
u_states, u_mask = u_states.expand_as(states), u_mask.expand_as(mask)
w = trained["teacher_guidance"]


@torch.no_grad()
def student_image(pipe):
    out = pipe.denoiser(x_tau, tau, encoder_hidden_states=states, encoder_attention_mask=mask).sample
    return x0_from(out, x_tau, ab_of(tau), prediction)


@torch.no_grad()
def distill_term(x_hat):
    x_t = q_sample(x_hat, t_d, alpha_bar, noise[1])
    v = teacher.denoiser(torch.cat([x_t, x_t]), torch.cat([t_d, t_d]), encoder_hidden_states=torch.cat([states, u_states]),
                         encoder_attention_mask=torch.cat([mask, u_mask])).sample
    v_c, v_u = v.chunk(2)
    target = x0_from(v_u + w * (v_c - v_u), x_t, ab_of(t_d), prediction).clamp(-1, 1)
    return (ab_of(t_d) * (x_hat - target) ** 2).mean().item()


students = {"teacher, 1 step": teacher, **LABELS}
images = {name: student_image(pipe) for name, pipe in students.items()}
for name, x_hat in images.items():
    print(f"L_distill {distill_term(x_hat):.5f}   {name}")

torch.manual_seed(SEED)
heads = DiscriminatorHeads(len(teacher.denoiser.blocks), teacher.denoiser.config.width,
                           teacher.text_encoder.config.embed_dim)
features = TeacherFeatures(copy.deepcopy(teacher.denoiser))  # hooks on a copy: the teacher itself stays plain
tokens = teacher.tokenizer.encode(captions)
text = teacher.text_encoder.encode_text(tokens["input_ids"], tokens["attention_mask"])  # .embeds: (B, E) unit norm
with torch.no_grad():
    real = heads(features(q_sample(x0, s, alpha_bar, noise[2]), s, states, mask), text.embeds)  # a logit per block
    fake = heads(features(q_sample(images[Path(GENERATOR).name], s, alpha_bar, noise[3]), s, states, mask), text.embeds)
print(f"fresh D on {len(real)} blocks: real logits {torch.stack(real).mean():+.3f}, the generator's "
      f"{torch.stack(fake).mean():+.3f}; hinge L(D) = {hinge_d(real, fake):.3f}, L_adv(G) = {hinge_g(fake):+.3f}")

fig, axes = plt.subplots(len(images) + 1, B, figsize=(1.3 * B, 1.45 * (len(images) + 1)))
for j in range(B):
    axes[0, j].imshow(tensor_to_image(x0[j]))
    for r, x_hat in enumerate(images.values(), start=1):
        axes[r, j].imshow(tensor_to_image(x_hat[j].clamp(-1, 1)))
for r, name in enumerate(["real x_0", *images]):
    axes[r, 0].set_title(name, fontsize=7, loc="left")
for ax in axes.flat:
    ax.axis("off")
fig.suptitle(f"one network evaluation from pure noise (tau = {taus[0]}), the same noise for every student", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the rows: from nearly pure noise, one evaluation of the teacher can only give the **average** of every image
# the caption allows, a blur (that is what the minimum of its squared-error training is). The students were trained
# to land on one sharp image in one evaluation: compare their distillation terms with the teacher's. A fresh $D$
# outputs logits near 0 for every image, so $\mathcal L(D) \approx 2$: the value of a discriminator that cannot
# tell real from generated. Keep that number in mind for the curves.
#
# ## 2. Both players' training curves
#
# A GAN has two losses, and each only means something beside the other. If $\mathcal L(D)$ falls towards 0, $D$
# wins: it separates real from generated with a margin, and the generator's adversarial gradient carries
# information (or, if $D$ wins too easily, saturates). If $\mathcal L(D)$ stays at 2.00, $D$ is at chance and the
# generator's adversarial gradient is noise: whatever the generator learns then comes from the distillation term.
# The shipped runs' records (`history.json` in each folder; the validation figures are the judge's faithfulness
# on 48 + 48 held-out validation prompts):

# %%
def history_of(name):
    file = resolve(name) / "history.json"
    return json.loads(file.read_text()) if file.is_file() else []


def smooth(values, k=25):
    return np.convolve(values, np.ones(k) / k, mode="valid") if len(values) >= k else np.asarray(values)


histories = {label: history_of(name) for label, name in zip(LABELS, (GENERATOR, ANCHOR))}
fig, axes = plt.subplots(1, 3, figsize=(13, 3))
for (label, h), colour in zip(histories.items(), ("tab:red", "tab:blue")):
    if not h:
        continue
    steps = [r["step"] for r in h]
    axes[0].plot(steps[24:] if len(h) >= 25 else steps, smooth([r["loss_distill"] for r in h]), color=colour, label=label)
    for key, style, name in (("loss_discriminator", "-", "L(D)"), ("loss_generator_adv", "--", "L_adv(G)")):
        if key in h[0]:
            axes[1].plot(steps[24:], smooth([r[key] for r in h]), color=colour, linestyle=style, label=f"{label}: {name}")
    for key, marker in (("val_1step", "o"), ("val_4step", "s")):
        shown = [(r["step"], r[key]) for r in h if key in r]
        if shown:
            axes[2].plot(*zip(*shown), color=colour, marker=marker, label=f"{label}, {key[4:]}")
axes[1].axhline(2.0, color="grey", linestyle=":", label="D at chance (2.00)")
for ax, title in zip(axes, ("distillation term (mean of 25 steps)", "the hinge game (mean of 25 steps)",
                            "validation faithfulness (judge)")):
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("training step", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6.5)
plt.tight_layout()
plt.show()
for label, h in histories.items():
    if not h:
        print(f"{label}: no history.json shipped")
        continue
    line = f"{label}: {len(h)} steps; L_distill first/last 100 steps {statistics.fmean(r['loss_distill'] for r in h[:100]):.5f}" \
           f" / {statistics.fmean(r['loss_distill'] for r in h[-100:]):.5f}"
    if "loss_discriminator" in h[0]:
        d = [r["loss_discriminator"] for r in h]
        line += f"; L(D) first/last 100 steps {statistics.fmean(d[:100]):.3f} / {statistics.fmean(d[-100:]):.3f} " \
                f"(min of the 25-step means {smooth(d).min():.3f})"
    print(line)

# %% [markdown]
# Compare the two runs' validation figures: the anchor shows what distillation alone gives, the generator what the
# adversarial term adds on top (or costs). Look at where $\mathcal L(D)$ sits against the chance line: a
# discriminator that hovers at 2.00 has not learned to tell the images apart, and then the adversarial loss can
# neither help nor hurt much. The docstring of `models/discriminator.py` and the comment on
# `FewStepTrainConfig.disc_lr_scale` say what was tried to make $D$ learn (one verdict per image instead of ADD's
# one per patch, a higher learning rate for its heads).
#
# ## 3. The race
#
# The same prompt through each way of sampling: a sampler on the teacher at each step count, at the teacher's
# recommended guidance ($w = 1.5$, two denoiser rows per step), and each few-step generator at the step counts it
# was trained for (DDPM's step, no guidance: one row per step). Every image is timed on its own call, after one
# untimed warm-up call per model, and judged: ✓ when the judge reads the prompt's scene in it. A generator's cells
# at step counts it was not trained for are left empty.

# %%
prompt = heldout_scenes(2, 1)[0][0]  # a held-out two-object scene: its colour-shape pairs never trained on
racing = SamplerRacing(base=teacher, generators=LABELS, samplers=SAMPLERS, judge=judge, clip=(clip, clip_tokenizer),
                       prompt=prompt, seed=SEED, samples=2, steps=list(STEP_COUNTS))
assert racing.run(), racing.error
print("\n".join(racing.notes))
K = racing.run_samples
fig, axes = plt.subplots(len(racing.rows), K * len(racing.columns), figsize=(1.15 * K * len(racing.columns),
                                                                              1.5 * len(racing.rows)), squeeze=False)
for r, label in enumerate(racing.rows):
    for c, steps in enumerate(racing.columns):
        cell = racing.cell(label, steps)
        for j in range(K):
            ax = axes[r, c * K + j]
            ax.axis("off")
            if cell.skipped:
                continue
            ax.imshow(tensor_to_image(cell.images[j]))
            ax.set_title(racing.image_label(label, steps, j), fontsize=7)
        axes[r, c * K].text(-0.1, 1.32, f"{steps} step{'s' * (steps != 1)}" if r == 0 else "", fontsize=8,
                            transform=axes[r, c * K].transAxes)
    axes[r, 0].text(-0.15, 0.5, label, fontsize=7, rotation=90, va="center", ha="right", transform=axes[r, 0].transAxes)
fig.suptitle(f"'{prompt}': each image's CPU time and the judge's verdict ({torch.get_num_threads()} thread(s))",
             fontsize=8, y=1.0)
plt.tight_layout()
plt.show()

# %% [markdown]
# One prompt and two seeds say little about faithfulness. The race below measures each method on `N_RACE`
# held-out one-object and as many two-object prompts (the judge's "all" score, the mean of both groups), its
# diversity in the dual encoder's image space (the **spread** of several images of one prompt, and the
# **Fréchet distance** of its images to true renders of the same prompts, FID's formula on our own encoder), and
# its cost: denoiser rows per image (NFE) and CPU milliseconds per image on a fixed batch. A small race, for time;
# `mmdiff-lab eval --only efficiency` runs every sampler at 1, 2, 4, 8 and 20 steps on 100 + 100 prompts.

# %%
methods = E.sampler_methods(teacher, SAMPLERS, STEP_COUNTS) + \
    [m for label, pipe in LABELS.items() for m in E.generator_methods(label, pipe)]
race_settings = E.RaceSettings(n=N_RACE, spread_prompts=2, k=4, batch=4, repeats=1, seed=SEED)
start = time.perf_counter()
rows, ref = E.race(methods, judge, clip, race_settings)
print(E.format_table(rows, ref))
print(f"({len(rows)} methods in {time.perf_counter() - start:.0f} s; time per image: {race_settings.timing()}; "
      f"faithfulness on {2 * N_RACE} prompts moves by about ±{(0.25 / (2 * N_RACE)) ** 0.5:.2f} by chance)")
display(E.plot(rows, ref))

# %% [markdown]
# How to read it. A point is on the **Pareto front** (circled) when no other method is both as fast and as
# faithful, and better in one: any method off the front is beaten outright by one on it. Then compare the teacher
# with itself across its step counts: at one step it draws the blurred average of section 1; from a few steps on
# it draws the scene. Does faithfulness keep rising up to 20 steps, and does the Fréchet distance? On ShapesWorld
# the two need not agree: a few-step image is smoother and more "typical", which the judge reads well, while the
# Fréchet distance to the true renders, which also sees how the images vary (their jitter, their edges), keeps
# falling with more steps. The spread says whether a method draws a prompt one way only (the dotted line: true
# renders). Where do the few-step generators sit on each panel, against the teacher at the same time per image?

# %%
by_key = {r.method.key: r for r in rows}
for label in LABELS:
    for k in generator.supported_steps:
        mine, base = by_key.get(f"{label}.{k}"), by_key.get(f"{SAMPLERS[0]}.{k}")
        if mine and base:
            print(f"{k} step{'s' * (k != 1)}: {label} faithfulness {mine.faithfulness:.2f}, FD {mine.fd:.4f}, "
                  f"{mine.ms_per_image:.1f} ms/img; {SAMPLERS[0]} on the teacher {base.faithfulness:.2f}, FD "
                  f"{base.fd:.4f}, {base.ms_per_image:.1f} ms/img")

# %% [markdown]
# ### Explore: the sampler race
#
# Type a prompt, choose the methods (every sampler is offered) and the step counts, and **Run**: the grid shows each
# image with its CPU time and the judge's verdict, the plot its cell's faithful share and spread against time, with
# the Pareto front. Click any image to open its run in lab 03's stepper and scrub through its steps.

# %%
race = SamplerRace(base=teacher, generators=LABELS, judge=judge, clip=(clip, clip_tokenizer), samples=2,
                   methods=["ddim", "dpm++", "unipc", *LABELS], steps=list(STEP_COUNTS))
race

# %% [markdown]
# ## 4. Augmentation: what generated pairs are worth
#
# Real paired data is often scarce. Can a generator fill the gap? The protocol (`mmdiff_lab.augmentation`) trains
# the same model with the same recipe and budget on each **arm** and scores it on held-out pairs (colour-shape pairs
# no training set shows, real or generated):
#
# - **real**: a scarce set of $N$ real pairs (a fifth of them set aside to choose the checkpoint kept);
# - **real + generated**: the same, plus ratio $\times N$ generated pairs: half are images the text-to-image model
#   drew for real captions, half are captions lab 05's captioner wrote for real images that had none;
# - **real + generated (filtered)**: the generated pairs the judge reads as their caption says (or, with the dual
#   encoder, the share with the highest image-caption cosine);
# - **upper bound**: four times as many real pairs, the scarce set among them.
#
# Its figure is the **gap recovered**, per seed $s$,
#
# $$g_s = \frac{\mathrm{score}_s(\text{real + generated}) - \mathrm{score}_s(\text{real})}
#   {\mathrm{score}_s(\text{upper bound}) - \mathrm{score}_s(\text{real})},$$
#
# 0 when the generated pairs add nothing, 1 when they are worth the extra real pairs, reported as its mean and
# spread over seeds. Here the generated images come from the few-step generator (`GENERATOR`, one step each: the
# fast generator makes augmenting cheap); `mmdiff-lab augment` uses lab 03's model by default
# (`--generator` chooses). First, a few generated pairs of each kind, with the judge's reading:

# %%
examples = ShapesWorld(seed=SEED + 1, size=12)
drawn = images_from_captions(generator, [examples[i].caption for i in range(6)], seed=SEED)
written, unparsed = captions_from_images(captioner, torch.stack([image_to_tensor(examples[i].image)
                                                                 for i in range(6, 12)]), seed=SEED)
fig, axes = plt.subplots(2, 6, figsize=(10, 4.6))
for row, pairs, what in zip(axes, (drawn, written), (f"{Path(GENERATOR).name} drew it for", "i2t-shapes wrote")):
    right = judge_agrees(judge, pairs)
    for ax, pixels, caption, ok in zip(row, pairs.pixels, pairs.captions, right):
        ax.imshow(tensor_to_image(pixels))
        ax.set_title(f"{what}:\n{textwrap.fill(caption, 26)}\njudge {'✓' if ok else '✗'}", fontsize=6)
        ax.axis("off")
plt.tight_layout()
plt.show()
print(f"captions the grammar could not parse (dropped): {unparsed}")

# %% [markdown]
# Now the protocol itself, small: `AUG_REAL` real pairs, the generated ratios `AUG_RATIOS`, `AUG_STEPS` training
# steps per arm and seeds `AUG_SEEDS`, scored on 200 held-out pairs (the CLI: 1,000). The real and upper-bound arms
# do not depend on the ratio, so they are trained once per seed (the cache). With so few steps, every arm is far
# from what it could learn (the upper bound most of all: more pairs need more steps), and the gap recovered is
# noisy: the numbers show the protocol, not its answer. For that, run the full sweep:
#
#     mmdiff-lab augment --model clip --real 200 --ratio 0.5 1 2 --seeds 0 1 2 --filter judge --json augment.json
#
# (every arm then trains for its model's full recipe, so it takes a while) and set `AUG_RESULTS = "augment.json"`
# to plot it here.

# %%
if AUG_RESULTS:
    results = load_results(AUG_RESULTS)
else:
    models = Models(generator=generator, captioner=captioner, judge=judge, clip=(clip, clip_tokenizer))
    cache, results = {}, []
    start = time.perf_counter()
    for ratio in AUG_RATIOS:
        cfg = AugmentConfig(model=AUG_MODEL, real=AUG_REAL, ratio=ratio, seeds=tuple(AUG_SEEDS), filter=AUG_FILTER,
                            steps=AUG_STEPS, batch_size=AUG_BATCH, generator=GENERATOR, eval_size=200)
        results.append(run_protocol(cfg, models, progress=False, cache=cache))
    print(f"({time.perf_counter() - start:.0f} s)")
for r in results:
    print(f"ratio {r.config.ratio:g}:\n{r.table()}\n")
display(plot_curves(results, "ratio" if len({r.config.ratio for r in results}) > 1 else "real"))

# %% [markdown]
# Read the left panel first: is the real arm well below the upper bound (is there a gap worth closing)? Then where
# the augmented arms sit between them, and how far apart the seeds are (the error bars). The right panel is the
# share of the gap recovered. Above 1, the augmented arm scored above the upper bound: before reading that as
# "generated pairs beat real ones", ask whether the upper bound had the steps its larger set needs (here it
# trains for as many steps as the scarce set). The `generated:` rows say how good the generated pairs were by the
# judge's reading, and what share the filter kept: a filter can only help when it has wrong pairs to drop. The
# same curves in a widget, which can also load any results file `mmdiff-lab augment --json` wrote:

# %%
AugmentationView(results)

# %% [markdown]
# ## 5. Exercises
#
# **Exercise 1.** The Pareto front. Given `points` (N, 2), each method's (CPU ms per image, faithfulness), return
# the indices of the points on the front, sorted by time (the fastest first): those that no other point beats,
# where a point beats another if it is as fast or faster **and** as faithful or more, and strictly better in one.
# Then run it on the race's rows and compare with the circles of section 3.

# %%
def my_front(points):
    """points: (N, 2) tensor of (ms per image, faithfulness) -> the indices on the front, sorted by time."""
    raise NotImplementedError  # your code here


check_front(None)  # replace None with my_front

# %% [markdown]
# **Exercise 2.** The ADD distillation term. Given the student's images `x_hat` (B, 3, S, S), the same images noised
# to the teacher's timesteps $t'$, `x_t`, the teacher's $v$ predictions there with and without the caption, `v_c` and
# `v_u`, $\bar\alpha_{t'}$ as `ab` (B, 1, 1, 1), and the guidance scale `w`, return the loss: the mean over images
# and pixels of $\bar\alpha_{t'}\,(\hat x - \text{target})^2$, where the target is the teacher's $x_0$ from its guided
# prediction (lab 03's exercises 2 and 3), clamped to $[-1, 1]$. For a challenge, compare your function with
# section 1's `distill_term` on the same batch.

# %%
def my_distill(x_hat, x_t, v_c, v_u, ab, w):
    """Tensors (B, 3, S, S), ab (B, 1, 1, 1), w a float -> the loss, one number."""
    raise NotImplementedError  # your code here


check_distill(None)  # replace None with my_distill

# %% [markdown]
# **Exercise 3.** The gap recovered. Given each seed's held-out score of the three arms, `real`, `augmented` and
# `upper` (three (S,) tensors), return `(mean, spread)` over the seeds of $(a_s - r_s) / (u_s - r_s)$, the spread the
# sample standard deviation (ddof = 1). A seed whose upper bound is no better than its real arm has no gap to
# recover: raise a `ValueError` then. Then apply it to the scores of section 4 (`r.scores["real"]`, ...) and
# compare with the table.

# %%
def my_gap(real, augmented, upper):
    """Three (S,) tensors of per-seed scores -> (mean, spread) of the per-seed gap recovered."""
    raise NotImplementedError  # your code here


check_gap(None)  # replace None with my_gap

# %% [markdown]
# ## What to take away
# - A few-step generator is the teacher taught two things at once: to land where the teacher's guided prediction
#   would take its image (distillation), and to fool a discriminator reading the teacher's own features
#   (adversarial). One evaluation of the teacher from pure noise can only give the average image; the students give
#   one image.
# - A GAN's losses are read together: a discriminator loss stuck at its chance value (2.00 for the hinge) means the
#   adversarial gradient carries no information, whatever the generator's loss does.
# - A race measures what each step costs and buys; the Pareto front names the methods worth using at each budget.
#   Faithfulness and distance to the true images need not move together with the number of steps.
# - Generated pairs are worth what they recover of the gap to more real data, measured per seed against the same
#   model trained alike, with its spread; a filter helps only where there are wrong pairs to drop.
