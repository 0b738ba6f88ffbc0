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
# # Lab 02 — The shared embedding space
#
# Before a model can draw "a small red circle left of a large blue square", it needs to know what the words
# look like. A **dual encoder** learns this from pairs alone: an image tower and a text tower map each
# modality into one space where an image and its caption land close together (CLIP, Radford et al., 2021).
#
# **Learning goals.** After this lab you can
# 1. write the symmetric InfoNCE loss and say why it pulls pairs together and pushes the rest apart;
# 2. measure a shared space: recall@k both ways, zero-shot accuracy, alignment, uniformity, modality gap;
# 3. sample from a diffusion model that lives *inside* the space (the unCLIP prior) and follow its path.

# %% tags=["parameters"]
# Sizes: the tests run this notebook with smaller values.
PRESET = "lab"  # model size: "tiny" or "lab"
STEPS = 600  # training steps in this lab, in the background (the shipped model trained longer)
POOL = 10_000  # training scenes
SNAPSHOT_EVERY = 100  # keep the weights every N steps, to watch alignment form
N_SHOW = 500  # held-out pairs on the map
MAP = "pca"  # the shipped model's map: "pca" (linear, instant) or "umap" (nonlinear, a fit of several seconds)
SEED = 0

# %%
import matplotlib.pyplot as plt
import torch

from mmdiff_lab import pretrained
from mmdiff_lab.data import ShapesWorld
from mmdiff_lab.data.pairs import HELDOUT_SEED, heldout_pool
from mmdiff_lab.exercises.lab02 import check_info_nce, check_modality_gap, check_recall_at_1
from mmdiff_lab.loading import load_clip, load_prior
from mmdiff_lab.metrics.shared_space import evaluate_clip
from mmdiff_lab.models.encoders import DualEncoder
from mmdiff_lab.widgets import EmbeddingAlignment, EmbeddingAlignmentExplorer

# %% [markdown]
# ## 1. Why contrastive learning aligns two modalities
#
# For a batch of $B$ pairs, both towers give unit vectors $u_i$ (image) and $v_j$ (caption). Their scaled
# cosine similarities are the logits $\ell_{ij} = \tau^{-1}\, u_i^\top v_j$, with a learned temperature $\tau$.
# Symmetric InfoNCE (van den Oord et al., 2018; Radford et al., 2021) asks each image to pick its own caption
# out of the batch, and each caption its own image:
#
# $$\mathcal L = \frac{1}{2B}\sum_{i=1}^{B}\Big[-\log\frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}}}
#   \;-\; \log\frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ji}}}\Big].$$
#
# The numerator pulls a pair together (**alignment**); the denominator pushes everything else apart
# (**uniformity**, Wang & Isola, 2020). In ShapesWorld the same scene can appear twice in a batch, so pairs
# with equal attributes all count as positives; and every scene meets its *twin*, the same scene with one
# attribute changed or swapped between objects, so the model cannot get away with a bag of words.

# %%
world = ShapesWorld(seed=SEED)
fig, axes = plt.subplots(2, 4, figsize=(12, 4.4))
for i, (ax_a, ax_b) in enumerate(zip(axes[0], axes[1])):
    for ax, ex in ((ax_a, world[i]), (ax_b, world.twin(i))):
        ax.imshow(ex.image)
        ax.set_title(ex.caption.replace(" is ", "\nis ").replace(" left", "\nleft").replace(" right", "\nright")
                     .replace(" above", "\nabove").replace(" below", "\nbelow"), fontsize=7)
        ax.axis("off")
fig.suptitle("top: training pairs; bottom: their twins, the hardest negatives")
plt.show()

# %% [markdown]
# ## 2. Train a dual encoder, live, in the background
#
# The run goes through Accelerate, as on a cluster, and keeps a snapshot every `SNAPSHOT_EVERY` steps. Its 600
# steps take about two minutes on 2 cores (`mmdiff-lab bench --only notebooks` times it), longer than a lab
# should stand still, so the run trains **in the background**: a child process runs the same
# `mmdiff-lab train clip` command you would type in a terminal (printed below), and this cell returns at once. Carry on with the lab; section 3's explorer gains
# each snapshot as it is written, under a line saying how far the run is. Each Run All trains into a new folder
# under `runs/lab02-clip/` (printed below; an earlier run is kept, never overwritten). Its log, `train.log` there,
# holds the progress bar and, every 100 steps, the held-out recall: those are pairs whose colour-shape
# combinations (a blue circle, a red triangle, ...) the model never saw in training.

# %%
import time

from mmdiff_lab.training.background import BackgroundTraining

run_folder = f"runs/lab02-clip/{time.strftime('%Y%m%d-%H%M%S')}"
training = BackgroundTraining("clip", run_folder, world="shapes", preset=PRESET, steps=STEPS, pool_size=POOL,
                              snapshot_every=SNAPSHOT_EVERY, eval_every=100, seed=SEED)
print(training.shell)

# %% [markdown]
# ## 3. Watch the space form
#
# Each snapshot embeds the same held-out pairs. Move the checkpoint slider: image points (o) and caption
# points (^) start scattered, then each caption finds its images. Colour the points by an attribute and see
# which one the space sorts by first. The numbers above the map are the alignment (lower: pairs closer),
# uniformity (lower: spread more evenly) and the modality gap (the distance between the two clouds' means).
# The slider starts with the untrained model alone and grows while the run trains; it follows the newest
# snapshot unless you have moved it back.

# %%
from mmdiff_lab.text import Tokenizer
from mmdiff_lab.widgets.live_training import LiveAlignmentExplorer

tokenizer = Tokenizer.from_corpus(world.captions())  # the run's own: every word of the grammar, whatever the pool
torch.manual_seed(SEED)  # the run's own starting point: the same seed, the same untrained weights
untrained = DualEncoder.from_preset(PRESET, len(tokenizer), tokenizer.max_length).eval()
pool = heldout_pool(tokenizer, N_SHOW)
scenes = [ShapesWorld(seed=HELDOUT_SEED, split="heldout", size=N_SHOW).scene(i)[0] for i in range(N_SHOW)]
attributes = {
    "objects": [f"{len(s.objects)} object{'s' * (len(s.objects) > 1)}" for s in scenes],
    "colour (first object)": [s.objects[0].colour for s in scenes],
    "shape (first object)": [s.objects[0].shape for s in scenes],
}
live = EmbeddingAlignment([untrained], ["untrained"], tokenizer, pool, attributes, method="pca")
explorer_live = LiveAlignmentExplorer(live, training)
explorer_live

# %% [markdown]
# Once the line above says the training finished, draw its loss curve (run this cell again then):

# %%
if training.running:
    print(f"still training: {training.progress()}\nrun this cell again when it has finished")
else:
    history = training.history()
    plt.figure(figsize=(4, 2.5))
    plt.plot([h["step"] for h in history], [h["loss"] for h in history])
    plt.yscale("log")
    plt.xlabel("step")
    plt.ylabel("InfoNCE loss")
    plt.show()

# %% [markdown]
# ## 4. Retrieval both ways, with the shipped model
#
# The shipped dual encoder trained longer, with the documented command
# `mmdiff-lab train clip --world shapes`. A query retrieves the nearest item of the other modality; a hit
# is any item with the query's attributes. The figures are on the held-out split.

# %%
shipped, shipped_tok = load_clip(pretrained.path("clip-shapes"))
figures = evaluate_clip(shipped, shipped_tok, "shapes")
for key in ("text_to_image_recall@1", "image_to_text_recall@1", "text_to_image_recall@5",
            "zero_shot_colour", "zero_shot_shape", "zero_shot_size", "zero_shot_position", "modality_gap"):
    print(f"{key:>24}: {figures[key]:.3f}")

# %% [markdown]
# ## 5. Diffusion inside the space: the prior
#
# unCLIP (Ramesh et al., 2022) generates an *image embedding* from a text embedding with a small diffusion
# model, then decodes it. Our prior is such a model: it starts from noise $x_T$ and denoises towards an
# image embedding, predicting $\hat x_0$ at each step. Type a caption in the query box: the black path is
# the prior's predicted $\hat x_0$ at each DDIM step, drawn on the same map, from the start (x) to the
# sample (*), which should land among that caption's images. The map opens as PCA, a linear projection that is
# instant; switch it to UMAP (McInnes et al., 2018), which keeps neighbours together and so separates the
# clusters better, at the cost of a fit of several seconds the first time.

# %%
prior = load_prior(pretrained.path("prior-shapes"))
shipped_pool = heldout_pool(shipped_tok, N_SHOW)
explorer = EmbeddingAlignmentExplorer(EmbeddingAlignment(
    [shipped], ["shipped model"], shipped_tok, shipped_pool, attributes, prior=prior, method=MAP,
    query="a small blue circle left of a large red square"))
explorer

# %% [markdown]
# ## 6. Exercises
#
# Solutions are in `solutions/02_shared_space.ipynb`.
#
# **Exercise 1.** Write the symmetric InfoNCE loss for a $(B, B)$ matrix of logits whose diagonal holds the
# positive pairs. (`torch.nn.functional.cross_entropy` helps.)

# %%
def info_nce(logits):
    """Symmetric InfoNCE; logits[i, j] = similarity of image i and caption j."""
    raise NotImplementedError  # your code here


check_info_nce(info_nce)

# %% [markdown]
# **Exercise 2.** Write recall@1 for a $(Q, C)$ similarity matrix whose right answer for query $i$ is
# candidate $i$: the share of queries whose most similar candidate is their own.

# %%
def recall_at_1(sim):
    raise NotImplementedError  # your code here


check_recall_at_1(recall_at_1)

# %% [markdown]
# **Exercise 3.** The modality gap (Liang et al., 2022) is the distance between the mean image embedding and
# the mean caption embedding. Write it; then look at the explorer: does training shrink it?

# %%
def gap(image_embeds, text_embeds):
    raise NotImplementedError  # your code here


check_modality_gap(gap)
