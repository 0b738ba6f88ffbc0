"""The pieces every model here is built from: the transformer block, on diffusers' ``Attention`` module, so one
attention processor (a recorder, a patch) works on our towers and denoisers and on any diffusers UNet; and the
sinusoidal embeddings of timesteps and patch positions, which diffusers computes.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import get_1d_sincos_pos_embed_from_grid, get_timestep_embedding
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of timesteps (Vaswani et al., 2017; as DDPM): (B,) -> (B, dim), cosines first."""
    return get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)


def sincos_2d(side: int, dim: int) -> Tensor:
    """Fixed 2D sine-cosine position embeddings (as DiT / MAE): half the channels for the row, half for the column.

    Returns: (side * side, dim), rows in raster order of the patches.
    """
    coords = torch.arange(side, dtype=torch.float32)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # (side, side) each
    # float32 like the rest of the model (diffusers would compute the table in float64)
    row, col = (get_1d_sincos_pos_embed_from_grid(dim // 2, pos, output_type="pt", dtype=torch.float32)
                for pos in (rows, cols))  # (N, D/2) each
    return torch.cat([row, col], dim=1)


def padding_bias(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, L) with 1 on real tokens -> additive bias (B, 1, L): 0 where attended, -1e4 on padding."""
    return (1.0 - attention_mask[:, None, :].to(dtype)) * -1e4


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention to a context, MLP (Vaswani et al., 2017).

    Args:
        dim: token width D.
        heads: attention heads; D must divide by it.
        context_dim: width of the sequence to cross-attend to, or None for no cross-attention.
        mlp_ratio: MLP hidden width as a multiple of D.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads=heads, dim_head=dim // heads, bias=True)
        self.attn2 = None
        if context_dim is not None:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2 = Attention(dim, cross_attention_dim=context_dim, heads=heads, dim_head=dim // heads, bias=True)
        self.norm3 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, bias: Tensor | None = None, context: Tensor | None = None,
                context_bias: Tensor | None = None) -> Tensor:
        """x: (B, N, D); bias: (B, 1, N) additive self-attention mask; context: (B, L, C) with bias (B, 1, L)."""
        x = x + self.attn1(self.norm1(x), attention_mask=bias)
        if self.attn2 is not None:
            x = x + self.attn2(self.norm2(x), encoder_hidden_states=context, attention_mask=context_bias)
        return x + self.mlp(self.norm3(x))
