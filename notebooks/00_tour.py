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
# # mmdiff-lab: a tour
#
# **mmdiff-lab** is a course lab and an interpretability suite for *multimodal diffusion models*: models
# that turn text into images and images into text by learning to undo noise. Every model here is small
# enough to train on a laptop CPU in minutes, and every step can be opened up and looked at.
#
# A multimodal diffusion model works in three steps:
# 1. **Embed** images and captions into one shared space (a contrastive dual encoder, as CLIP);
# 2. **Diffuse**: learn to remove noise from an image while reading the caption (text to image), or from a
#    caption while looking at the image (image to text);
# 3. **Generate**, retrieve across modalities, and augment scarce paired data.
#
# The labs below take these one at a time. This tour shows what each is about; labs that are not written
# yet say so.

# %% tags=["parameters"]
SEED = 0
N_EXAMPLES = 8

# %%
import matplotlib.pyplot as plt

from mmdiff_lab.data import Digits, ShapesWorld

# %% [markdown]
# ## The worlds
# **ShapesWorld** makes scenes of one or two coloured shapes with captions from a small grammar. Because
# the world knows every attribute and every object's mask, we can *measure* whether a generated image is
# faithful to its prompt, and whether an attention map points at the right object. **Digits** are real
# handwritten digits bundled with scikit-learn. You can also bring your own folder of captioned images.

# %%
world, digits = ShapesWorld(seed=SEED), Digits()
fig, axes = plt.subplots(2, N_EXAMPLES, figsize=(2 * N_EXAMPLES, 4.6))
for i in range(N_EXAMPLES):
    for row, ex in enumerate((world[i], digits[i])):
        axes[row, i].imshow(ex.image)
        axes[row, i].set_title(ex.caption.replace(" left of", "\nleft of").replace(" right of", "\nright of")
                               .replace(" above", "\nabove").replace(" below", "\nbelow"), fontsize=7)
        axes[row, i].axis("off")
plt.show()

# %% [markdown]
# ## Lab 01 — forward noising
# Scrub the timestep $t$ and watch an image dissolve into noise; compare schedules through their SNR.

# %%
from mmdiff_lab.widgets import ForwardNoisingExplorer

ForwardNoisingExplorer(t=300)

# %% [markdown]
# ## Lab 02 — the shared embedding space
# A dual encoder puts images and captions into one space. Ask the shipped one for the images nearest to a
# caption whose colour-shape combination it never saw in training:

# %%
from mmdiff_lab import pretrained
from mmdiff_lab.data.pairs import heldout_pool
from mmdiff_lab.loading import load_clip
from mmdiff_lab.metrics.shared_space import embed_images, embed_texts

clip, tokenizer = load_clip(pretrained.path("clip-shapes"))
pool = heldout_pool(tokenizer, 300)
query = tokenizer.encode("a large blue circle at the top")
scores = embed_images(clip, pool.pixels) @ embed_texts(clip, query["input_ids"], query["attention_mask"])[0]
fig, axes = plt.subplots(1, 5, figsize=(10, 2.2))
for ax, i in zip(axes, scores.topk(5).indices.tolist()):
    ax.imshow(((pool.pixels[i].permute(1, 2, 0) + 1) * 127.5).byte().numpy())
    ax.set_title(f"{scores[i]:.2f}")
    ax.axis("off")
fig.suptitle("nearest images to 'a large blue circle at the top'")
plt.show()

# %% [markdown]
# ## Lab 03 — text to image
# A denoiser reads the text tower's token states through cross-attention and turns noise into the scene a
# prompt describes, here for prompts whose colour-shape pairs it never saw in training:

# %%
import torch

from mmdiff_lab.pipelines import load_pipeline

t2i = load_pipeline("t2i-shapes")
prompts = ["a large blue circle at the top", "a small red triangle left of a large green diamond",
           "a small yellow square in the center", "a large orange diamond above a small purple circle"]
images = t2i(prompts, generator=torch.Generator().manual_seed(SEED), output_type="np").images
fig, axes = plt.subplots(1, 4, figsize=(10, 2.6))
for ax, image, prompt in zip(axes, images, prompts):
    ax.imshow(image)
    ax.set_title(prompt.replace(" left", "\nleft").replace(" above", "\nabove").replace(" in", "\nin")
                 .replace(" at", "\nat"), fontsize=7)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Lab 04 — attention and attribution
# Where does each word act? Top: how much each image patch reads the word through cross-attention, summed over
# the run (DAAM). Bottom: where the predicted image changes when the word is swapped for another of its kind.
# Cyan: the true outline of the word's object. Lab 04 finds out why the two disagree.

# %%
from mmdiff_lab.data.shapes import example_of
from mmdiff_lab.probes.attribution import counterfactual_maps
from mmdiff_lab.probes.scoring import record
from mmdiff_lab.probes.word_maps import attention_maps, prompt_tokens

prompt = "a small red circle left of a large blue square"
rec, run, image = record(t2i, prompt, seed=SEED)
tokens = prompt_tokens(t2i.tokenizer, prompt)
rows = {"attention": attention_maps(rec, tokens),
        "counterfactual": counterfactual_maps(t2i, prompt, run.steps[0].x_t[:1], run.steps[0].t)}
truth = example_of(prompt).word_masks()
words = [t for t in tokens if t.kind == "word" and t.index - 1 in truth]
fig, axes = plt.subplots(2, len(words), figsize=(1.3 * len(words), 3))
for r, (name, maps) in enumerate(rows.items()):
    for ax, token in zip(axes[r], words):
        ax.imshow(maps.maps[0, token.index], cmap="magma")
        ax.contour(truth[token.index - 1], levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"{name}\n{token.text}" if token is words[0] else token.text, fontsize=7)
        ax.axis("off")
plt.show()

# %% [markdown]
# ## Lab 06 — efficiency and augmentation
# One prompt three ways: lab 03's model at one step (from pure noise, one evaluation can only give the blurred
# average of every image the caption allows) and at its default 20 steps, and a generator distilled from it with
# an adversarial loss, at one step. Lab 06 races every sampler and step count on faithfulness, diversity and CPU
# time, and uses generated pairs to augment a scarce training set.

# %%
import time

fewstep = load_pipeline("fewstep-shapes")
prompt = "a small red triangle left of a large green diamond"
ways = {"t2i-shapes, 1 step": (t2i, 1), "t2i-shapes, 20 steps": (t2i, 20), "fewstep-shapes, 1 step": (fewstep, 1)}
fig, axes = plt.subplots(1, 3, figsize=(6.5, 2.5))
for ax, (name, (pipe, steps)) in zip(axes, ways.items()):
    pipe(prompt, num_inference_steps=steps, output_type="np")  # a warm-up call, untimed
    start = time.perf_counter()
    image = pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(SEED),
                 output_type="np").images[0]
    ax.imshow(image)
    ax.set_title(f"{name}\n{1000 * (time.perf_counter() - start):.0f} ms on the CPU", fontsize=7)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The labs to come
# | lab | what you will do |
# | --- | --- |
# | 05 image to text | watch a caption unmask step by step; retrieval by denoising error |
# | 07 bring your own model | the same widgets on a Stable Diffusion pipeline from a local folder |
#
# These notebooks arrive with the labs; this tour gains a cell for each.
