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
# # Lab 05 — solutions
#
# Each cell answers one exercise of `05_image_to_text.ipynb` and runs its check.

# %% tags=["parameters"]
CAPTIONER = "i2t-shapes"
SEED = 0

# %%
import torch

from mmdiff_lab.exercises.lab05 import check_mask, check_pick, check_reveal

# %% [markdown]
# **Exercise 1.** A position is masked where its draw falls below $t$ (so with probability $t = 1 - \alpha_t$);
# `t[:, None]` compares each caption's time with each of its positions. `<bos>` stays.

# %%
def my_mask(x0, t, mask_id, u):
    masked = u < t[:, None]
    masked[:, 0] = False
    return torch.where(masked, mask_id, x0)


ok_1 = check_mask(my_mask)

# %% [markdown]
# **Exercise 2.** Known positions must never win: give them $-\infty$, rank each row in descending order, and keep
# the first `n[b]` (the library's `unmask` does exactly this). The challenge: the sampler around it reproduces the
# shipped captioner's captions at temperature 0.

# %%
def my_reveal(confidence, masked, n):
    score = confidence.masked_fill(~masked, float("-inf"))
    rank = score.argsort(1, descending=True).argsort(1)  # 0 for the most confident masked position
    return masked & (rank < n[:, None])


ok_2 = check_reveal(my_reveal)

# %%
from mmdiff_lab.data import ShapesWorld, image_to_tensor
from mmdiff_lab.data.pairs import HELDOUT_SEED
from mmdiff_lab.pipelines.image_to_text import load_captioner
from mmdiff_lab.pipelines.unmasking import caption_text

captioner = load_captioner(CAPTIONER)
model, tok = captioner.denoiser, captioner.tokenizer
world = ShapesWorld(seed=HELDOUT_SEED, split="heldout", n_objects=2, size=4)
pixels = torch.stack([image_to_tensor(world[i].image) for i in range(4)])
states, K, L = captioner.encode_image(pixels), captioner.config.default_steps, tok.max_length
z = torch.full((4, L), tok.mask_id)
z[:, 0] = tok.bos_id
with torch.no_grad():
    for k in range(K):
        logits = model(z, states)
        draw = logits.argmax(-1)
        confidence = torch.log_softmax(logits, -1).gather(-1, draw[..., None])[..., 0]
        masked = z == tok.mask_id
        n = masked.sum(1) - ((L - 1) - round((k + 1) / K * (L - 1)))  # after step k, (k + 1)/K of them known
        z = torch.where(my_reveal(confidence, masked, n), draw, z)
mine = [caption_text(row, tok) for row in z]
print("same captions as the library's sampler:", mine == captioner(pixels).captions)

# %% [markdown]
# **Exercise 3.** Average each candidate's errors over the evaluations (the last axis) and take the smallest. The
# evaluations must be shared: one evaluation's error depends mostly on its timestep and noise, which move every
# candidate's error together when shared and cancel in the comparison; drawn independently, they swamp the small
# difference the caption makes (section 4's figure).

# %%
def my_pick(errors):
    return errors.mean(-1).argmin(-1)


ok_3 = check_pick(my_pick)
