"""The text-to-image denoiser: a compact diffusion transformer over image patches (DiT, Peebles & Xie, 2023)
that reads the frozen text tower's token states through cross-attention (as Stable Diffusion reads CLIP's,
and PixArt-alpha, Chen et al., 2023, puts cross-attention inside DiT blocks).

    x_t (B, 3, S, S) -> [x_t, stem(x_t)] (B, 3 + C_stem, S, S) = skip     (two 3x3 convolutions, full resolution)
    skip -> patches (B, N, D) + 2D sin-cos positions
        -> [adaLN(c) self-attention -> cross-attention(text token states) -> adaLN(c) MLP] x depth
        -> adaLN(c) -> linear -> unpatchify (B, F, S, S) -> [., skip] -> two 3x3 convolutions -> v or eps (B, 3, S, S)
    c (B, D) = MLP(sinusoid(t)) [+ MLP(text state at <eos>)]   (the pooled text joins the timestep, as in SDXL)
    with conv_film, c also shifts and scales the first layer of the stem and of the two output convolutions
    text token states: the tower's final states or its word embeddings (B, L, C), or both side by side (B, L, 2C)

Attention is diffusers' ``Attention`` (via ``blocks``), so attention processors, such as lab 04's recorder,
apply to it exactly as to a diffusers UNet. ``unet`` builds the Stable Diffusion-shaped alternative,
``UNet2DConditionModel``, with the same call signature: both return ``.sample``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.attention_processor import Attention, AttnProcessor
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import Tensor, nn

from .blocks import padding_bias, sincos_2d, timestep_embedding
from .encoders import TextOutput

#: Named sizes: `tiny` for tests, `lab` for the shipped models.
PRESETS: dict[str, dict] = {
    "tiny": dict(width=32, depth=1, heads=2, patch_size=8, text_states="words+final", pooled_text=False),
    # 4x4-pixel patches: 64 tokens, fine enough for a small shape's outline (radius 3.5 px).
    # A full-resolution stem skipping to the output: the only path that carries x_t's exact pixels.
    # Exact GELU: DiT's tanh form to 1e-3, cheaper on CPU.
    # FiLM of those convolutions by c: a v guess must pass x_t on by a noise-level-dependent amount.
    # The text through cross-attention alone (as PixArt-alpha), each word's embedding beside its final state: the
    # final states blur held-out colour-shape pairs towards trained ones. What each bought: docs/results.md.
    "lab": dict(width=128, depth=4, heads=4, patch_size=4, stem_channels=16, gelu_approximate="none", conv_film=True,
                text_states="words+final", pooled_text=False),
}

#: What the cross-attention reads: the text tower's final token states, its word embeddings, or both side by side.
TEXT_STATES = ("final", "words", "words+final")


@dataclass
class DenoiserOutput(BaseOutput):
    sample: Tensor  # (B, C, S, S) the predicted noise eps, or v, per the scheduler's prediction_type


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: a LayerNorm's output shifted and scaled per sample (DiT, Sec. 3.2): x (B, N, D), shift/scale (B, 1, D)."""
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """adaLN-Zero block (DiT, Fig. 3) with cross-attention to the text between self-attention and MLP (PixArt-alpha).

    The timestep sets each norm's shift and scale and gates each residual branch; the gates start at zero, so
    every block starts as the identity.
    """

    def __init__(self, dim: int, heads: int, context_dim: int, mlp_ratio: float = 4.0, gelu_approximate: str = "tanh"):
        super().__init__()
        # diffusers' plain AttnProcessor (baddbmm, softmax, bmm) rather than its default SDPA one: faster on the CPU
        # for sequences this short (64 patches, ~14 text tokens). The UNet's longer sequences keep SDPA.
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn1 = Attention(dim, heads=heads, dim_head=dim // heads, bias=True, processor=AttnProcessor())
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross_attention_dim=context_dim, heads=heads, dim_head=dim // heads, bias=True,
                               processor=AttnProcessor())
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate=gelu_approximate),
                                 nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor, context: Tensor, context_bias: Tensor | None,
                sample_index: Tensor | None = None) -> Tensor:
        """x (B, N, D) patches, c (B, D) timestep, context (R, L, C) text states with bias (R, 1, L); text row r
        reads image sample_index[r] (R,), repeated after self-attention, which reads no text; default: image r."""
        shift1, scale1, gate1, shift3, scale3, gate3 = self.ada(c)[:, None].chunk(6, dim=-1)  # each (B, 1, D)
        x = x + gate1 * self.attn1(modulate(self.norm1(x), shift1, scale1))
        if sample_index is not None:  # (B, N, D) -> (R, N, D)
            x, shift3, scale3, gate3 = x[sample_index], shift3[sample_index], scale3[sample_index], gate3[sample_index]
        x = x + self.attn2(self.norm2(x), encoder_hidden_states=context, attention_mask=context_bias)
        return x + gate3 * self.mlp(modulate(self.norm3(x), shift3, scale3))


def unpatchify(x: Tensor, p: int) -> Tensor:
    """(B, N, p*p*F) features per patch, in (row, column, feature) order -> (B, F, S, S) pixels, stored channels-last."""
    B, N, D = x.shape
    h, F = math.isqrt(N), D // (p * p)
    return x.view(B, h, h, p, p, F).permute(0, 1, 3, 2, 4, 5).reshape(B, h * p, h * p, F).permute(0, 3, 1, 2)


class TextToImageDenoiser(ModelMixin, AttentionMixin, ConfigMixin, PeftAdapterMixin):
    """eps (or v) prediction for an image x_t at timestep t, given text token states.

    ``attn_processors`` / ``set_attn_processor`` come from diffusers' AttentionMixin, as on its UNet; LoRA
    adapters (``add_adapter``, ``save_lora_adapter``, ``fuse_lora``) from its PeftAdapterMixin, as on its UNet too.

    Args:
        context_dim: width C of the text token states (the dual encoder's width).
        image_size, in_channels: of the images, (in_channels, image_size, image_size).
        patch_size: side of one patch; N = (image_size / patch_size)^2 tokens.
        width, depth, heads: of the transformer.
        mlp_ratio: each block's MLP hidden width as a multiple of ``width`` (DiT's 4).
        refine_channels: features per pixel handed from the patches to the full-resolution refining convolutions.
        stem_channels: width of the full-resolution stem (0: none, the patches read x_t directly).
        gelu_approximate: the MLPs' GELU, "tanh" (DiT's form) or "none" (exact).
        conv_film: the full-resolution convolutions' hidden features are shifted and scaled by c (FiLM, Perez et
            al., 2018, as adaLN does for the patches), so they can pass x_t's pixels on by a noise-level-dependent
            amount; zero-initialised, so the model starts as without it.
        text_states: "final" (the text tower's output, as Stable Diffusion reads CLIP's), "words" (its input, the
            word + position embeddings) or "words+final" (both side by side, (B, L, 2C)); see ``text_context``.
        pooled_text: add the pooled text (the final state at <eos>) to adaLN's condition c, as SDXL; without it
            c is the timestep alone and the text comes only through cross-attention, as PixArt-alpha.
    """

    @register_to_config
    def __init__(self, context_dim: int, image_size: int = 32, in_channels: int = 3, patch_size: int = 4,
                 width: int = 128, depth: int = 4, heads: int = 4, refine_channels: int = 16, stem_channels: int = 0,
                 gelu_approximate: str = "tanh", conv_film: bool = False, text_states: str = "final",
                 pooled_text: bool = True, mlp_ratio: float = 4.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide image_size {image_size}")
        if text_states not in TEXT_STATES:
            raise ValueError(f"unknown text_states {text_states!r}; choose one of: {', '.join(TEXT_STATES)}")
        if pooled_text and "final" not in text_states.split("+"):
            raise ValueError(f"pooled_text reads the final state at <eos>; text_states {text_states!r} has none")
        # An optional full-resolution stem: x_t with its features feeds the patches and skips to the refining
        # convolutions (a UNet's long skip, as U-ViT, Bao et al., 2023), so an edge visible in x_t need not pass
        # through a token. x_t itself is kept: an eps or v guess at low noise needs its exact pixel values.
        self.stem = (nn.Sequential(nn.Conv2d(in_channels, stem_channels, 3, padding=1), nn.GELU(),
                                   nn.Conv2d(stem_channels, stem_channels, 3, padding=1), nn.GELU())
                     if stem_channels else None)
        skip_channels = in_channels + stem_channels if stem_channels else 0
        self.patchify = nn.Conv2d(skip_channels or in_channels, width, patch_size, stride=patch_size)  # (B, D, S/p, S/p)
        side = image_size // patch_size
        self.register_buffer("pos", sincos_2d(side, width)[None], persistent=False)  # (1, N, D), fixed as in DiT
        self.time_mlp = nn.Sequential(nn.Linear(256, width), nn.SiLU(), nn.Linear(width, width))
        self.text_mlp = (nn.Sequential(nn.Linear(context_dim, width), nn.SiLU(), nn.Linear(width, width))
                         if pooled_text else None)
        read_dim = context_dim * len(text_states.split("+"))  # width of what the cross-attention reads
        self.blocks = nn.ModuleList(DiTBlock(width, heads, read_dim, mlp_ratio, gelu_approximate)
                                    for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, patch_size * patch_size * refine_channels)
        # A patch's pixels come from one token; two 3x3 convolutions at full resolution let neighbouring patches
        # agree on an edge that crosses them (without them, shapes came out as loose 4x4 blocks).
        self.refine = nn.Sequential(nn.Conv2d(refine_channels + skip_channels, refine_channels, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(refine_channels, in_channels, 3, padding=1))
        # FiLM of the stem's and the refining convolutions' first layers by c: (B, 2 * channels) -> shift, scale
        self.stem_film = (nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * stem_channels))
                          if conv_film and stem_channels else None)
        self.refine_film = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * refine_channels)) if conv_film else None
        films = [film[1] for film in (self.stem_film, self.refine_film) if film is not None]
        for layer in (self.ada_out[1], self.refine[2], *films):  # adaLN-Zero: the model starts by predicting 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, sample: Tensor, timestep: Tensor | int, encoder_hidden_states: Tensor,
                encoder_attention_mask: Tensor | None = None, return_dict: bool = True,
                sample_index: Tensor | None = None) -> DenoiserOutput | tuple:
        """sample x_t (B, C, S, S); timestep (B,) or scalar; text states (R, L, C_text), from ``text_context``, with
        mask (R, L), 1 on tokens; output (R, C, S, S).

        sample_index (R,): the image each text row reads (default: row r reads image r, R = B). Classifier-free
        guidance reads each x_t twice, with and without the prompt; everything up to the first cross-attention
        reads no text, so it runs once per image.
        """
        if sample_index is not None and self.text_mlp is not None:  # adaLN hears the text: nothing to share
            if torch.is_tensor(timestep) and timestep.ndim:
                timestep = timestep[sample_index]
            sample, sample_index = sample[sample_index], None
        B = sample.shape[0]
        p = self.config.patch_size
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(B)
        if encoder_attention_mask is None:
            encoder_attention_mask = torch.ones(encoder_hidden_states.shape[:2], device=sample.device)
        c = self.time_mlp(timestep_embedding(t, 256))  # (B, D): adaLN's condition
        if self.text_mlp is not None:
            eos = encoder_attention_mask.sum(1).long() - 1  # (B,) the last real token, where the text tower pools
            final = encoder_hidden_states[..., -self.config.context_dim :]  # (B, L, C_text), the final states
            c = c + self.text_mlp(final[torch.arange(B, device=sample.device), eos])
        # Pixels stored channels-last (NHWC), where oneDNN's convolutions run faster on the CPU.
        sample = sample.contiguous(memory_format=torch.channels_last)
        skip = sample  # (B, C, S, S), or with the stem's features (B, C + C_stem, S, S)
        if self.stem is not None:
            skip = torch.cat([sample, self._conv(self.stem, self.stem_film, sample, c)], dim=1)
        x = self.patchify(skip).flatten(2).transpose(1, 2) + self.pos  # (B, N, D)
        bias = padding_bias(encoder_attention_mask, x.dtype)
        x = self.blocks[0](x, c, encoder_hidden_states, bias, sample_index)  # (B, N, D) -> (R, N, D)
        if sample_index is not None:
            c, skip = c[sample_index], skip[sample_index]  # (R, D), (R, C + C_stem, S, S)
        for block in self.blocks[1:]:
            x = block(x, c, encoder_hidden_states, bias)
        shift, scale = self.ada_out(c)[:, None].chunk(2, dim=-1)
        x = self.out(modulate(self.norm_out(x), shift, scale))  # (R, N, p*p*F)
        x = unpatchify(x, p)  # (R, F, S, S)
        if self.stem is not None:
            x = torch.cat([x, skip], dim=1)  # (R, F + C + C_stem, S, S)
        x = self._conv(self.refine, self.refine_film, x, c).contiguous()  # (R, C, S, S)
        return DenoiserOutput(sample=x) if return_dict else (x,)

    @staticmethod
    def _conv(layers: nn.Sequential, film: nn.Module | None, x: Tensor, c: Tensor) -> Tensor:
        """conv -> [FiLM by c] -> GELU -> conv (-> GELU): x (B, C_in, S, S) -> (B, C_out, S, S)."""
        h = layers[0](x)  # (B, C_h, S, S)
        if film is not None:
            shift, scale = film(c)[:, :, None, None].chunk(2, dim=1)  # each (B, C_h, 1, 1)
            h = modulate(h, shift, scale)
        return layers[1:](h)


def unet(context_dim: int, image_size: int = 32, in_channels: int = 3, preset: str = "lab") -> UNet2DConditionModel:
    """diffusers' UNet2DConditionModel (Stable Diffusion's denoiser, Rombach et al., 2022), sized like our preset."""
    sizes = {"tiny": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8),
             # about as many parameters as the lab DiT (checked in the tests)
             "lab": dict(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16)}[preset]
    n = len(sizes["block_out_channels"])
    return UNet2DConditionModel(
        sample_size=image_size, in_channels=in_channels, out_channels=in_channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=context_dim, attention_head_dim=8, **sizes,
    )


def text_context(denoiser: nn.Module, text: TextOutput) -> Tensor:
    """What ``denoiser`` reads through cross-attention: the text tower's final token states (B, L, C), its word
    embeddings (B, L, C) for text_states="words", or both side by side (B, L, 2C) for "words+final".

    The final states of held-out colour-shape pairs blur towards trained ones (a linear probe shows it, see
    docs/results.md); the word embeddings name every word exactly.
    """
    states = {"final": text.token_states, "words": text.word_states}
    return torch.cat([states[name] for name in getattr(denoiser.config, "text_states", "final").split("+")], dim=-1)


BACKBONES = ("transformer", "unet")


def make_denoiser(backbone: str, preset: str, context_dim: int, image_size: int = 32, text_states: str = "") -> nn.Module:
    """A fresh denoiser of the named backbone and size; ``text_states`` replaces the preset's ("" keeps it)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of: {', '.join(BACKBONES)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if backbone == "unet":
        if text_states:
            raise ValueError("the UNet reads the text tower's final states only; text_states is for the transformer")
        return unet(context_dim, image_size, preset=preset)
    config = {**PRESETS[preset], **({"text_states": text_states} if text_states else {})}
    return TextToImageDenoiser(context_dim=context_dim, image_size=image_size, **config)
