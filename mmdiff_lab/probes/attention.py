"""Recording cross-attention: the probabilities with which each image patch reads each text token, per layer and
denoising step, as prompt-to-prompt (Hertz et al., 2022) and DAAM (Tang et al., 2023) read them.

    patches x (R, N, C) --to_q--> Q (R*H, N, d)          text states (R, L, ctx) --to_k, to_v--> K, V (R*H, L, d)
    A = softmax(Q K^T / sqrt(d) + padding bias)   (R*H, N, L): row n says how patch n splits its reading over tokens
    out = to_out(A V)

diffusers' default processor (SDPA) never forms A, so ``CrossAttentionProcessor`` computes it itself, exactly as
diffusers' ``AttnProcessor`` does, and hands it to the recorder, which keeps what it was asked for (detached, on
the CPU) and may hand back an edited A (``edit``: lab 04's interventions). ``AttentionRecorder`` installs it on
every cross-attention layer of a denoiser (ours or diffusers' ``UNet2DConditionModel``) for the length of a
``with`` block and puts the previous processors back after it:

    with AttentionRecorder(pipe.denoiser) as rec:
        pipe("a red circle left of a blue square")
    rec.probs(step=10, layer=0)          # (R, 1, N, L): the conditional rows, heads averaged

Rows: under classifier-free guidance the denoiser also reads the empty prompt, whose rows attend to <bos> and <eos>
alone; those are told apart by their padding mask (whatever the row order) and left out unless ``rows="all"``.
A step is one denoiser call (Heun makes two per sampler step); its timestep is kept in ``rec.timesteps``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

#: Tokens the empty prompt attends to (<bos>, <eos>): a row attending to no more is unconditional.
EMPTY_PROMPT_TOKENS = 2


def cross_attention_layers(model: nn.Module) -> dict[str, Attention]:
    """{module path: Attention} of every cross-attention layer, in the model's own order (e.g. "blocks.0.attn2")."""
    return {name: m for name, m in model.named_modules() if isinstance(m, Attention) and m.is_cross_attention}


@dataclass(frozen=True)
class Call:
    """What a processor hands the recorder for one layer in one denoiser call."""

    layer: int  # index into the recorder's layer list
    step: int  # the denoiser call, counted from 0
    probs: Tensor  # (R, H, N, L) the attention probabilities, every row
    conditional: Tensor  # (R,) bool: rows reading a prompt with words (not the empty one)


class CrossAttentionProcessor:
    """diffusers' ``AttnProcessor`` (baddbmm, softmax, bmm) with the probabilities handed to a recorder between the
    softmax and the product with V; the recorder may return them edited. Output equals diffusers' for no edit."""

    def __init__(self, recorder: AttentionRecorder, layer: int):
        self.recorder, self.layer = recorder, layer

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, *args, **kwargs) -> Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        four_d = hidden_states.ndim == 4
        if four_d:  # (R, C, h, w) -> (R, h*w, C)
            R, C, h, w = hidden_states.shape
            hidden_states = hidden_states.view(R, C, h * w).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        R, L = context.shape[:2]
        # Rows whose padding bias lets more than <bos> and <eos> through read a prompt with words.
        attended = (attention_mask.reshape(R, -1, L)[:, 0] > -1.0).sum(-1) if attention_mask is not None \
            else torch.full((R,), L, device=context.device)
        conditional = attended > EMPTY_PROMPT_TOKENS
        attention_mask = attn.prepare_attention_mask(attention_mask, L, R)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        q, k, v = (attn.head_to_batch_dim(x) for x in (query, attn.to_k(context), attn.to_v(context)))
        probs = attn.get_attention_scores(q, k, attention_mask)  # (R*H, N, L), rows batch-major: r*H + h
        probs = self.recorder.on_probs(self.layer, probs.view(R, attn.heads, *probs.shape[1:]), conditional)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs.flatten(0, 1), v))  # o = A V, (R, N, H*d)
        if self.recorder.keep_outputs:  # V back to (R, L, H*d) only when it is kept
            self.recorder.on_outputs(self.layer, hidden_states, attn.batch_to_head_dim(v), conditional)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))  # linear, dropout
        if four_d:
            hidden_states = hidden_states.transpose(-1, -2).reshape(R, C, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


class AttentionRecorder:
    """Records the cross-attention probabilities of ``model`` while a ``with`` block runs it.

    Args:
        model: a denoiser with diffusers ``Attention`` cross-attention layers (``TextToImageDenoiser``, a UNet).
        steps: which denoiser calls to keep (0-based), or None for all.
        layers: which cross-attention layers, by index or module path, or None for all.
        heads: "mean" keeps the mean over heads (H = 1), "all" keeps every head.
        rows: "conditional" keeps the rows that read the prompt, "all" the unconditional ones too.
        aggregate: keep only the sum over the kept steps (DAAM's aggregation, memory of one step), not each step.
        dtype: what each kept map is stored in (torch.float16 halves the memory; sums stay float32).
        edit: ``edit(call) -> probs`` returns the (R, H, N, L) probabilities to use instead (interventions).
        outputs: also keep each layer's attention output o = A V (R, N, H*d), before its output projection, and
            the values V (R, L, H*d) of the text tokens: the output space ConceptAttention reads maps from.
    """

    def __init__(self, model: nn.Module, steps: Iterable[int] | None = None, layers: Iterable[int | str] | None = None,
                 heads: str = "mean", rows: str = "conditional", aggregate: bool = False,
                 dtype: torch.dtype = torch.float32, edit: Callable[[Call], Tensor] | None = None,
                 outputs: bool = False):
        found = cross_attention_layers(model)
        if not found:
            raise ValueError(f"{type(model).__name__} has no cross-attention layers (diffusers Attention with "
                             "cross_attention_dim): there is nothing to record, and nothing was hooked")
        if heads not in ("mean", "all"):
            raise ValueError(f"heads must be 'mean' or 'all', got {heads!r}")
        if rows not in ("conditional", "all"):
            raise ValueError(f"rows must be 'conditional' or 'all', got {rows!r}")
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be a floating type (float32, float16, bfloat16), got {dtype}")
        self.model, self.heads, self.rows, self.aggregate, self.dtype, self.edit = model, heads, rows, aggregate, dtype, edit
        self.keep_outputs = outputs
        self.layer_names = list(found)
        self._modules = list(found.values())
        self.kept_layers = self._layer_indices(layers)
        self.kept_steps = None if steps is None else self._step_set(steps)
        self.timesteps: list[int] = []  # the timestep of each denoiser call
        self.maps: dict[tuple[int, int], Tensor] = {}  # (step, layer) -> (R, H, N, L)
        self.sums: dict[int, Tensor] = {}  # layer -> (R, H, N, L), summed over the kept steps
        self.counts: dict[int, int] = {}  # layer -> how many steps the sum holds
        self.outputs: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}  # (step, layer) -> (o (R, N, D), V (R, L, D))
        self.fired: set[int] = set()  # layers that ran at least once
        self._depth, self._saved, self._hook = 0, [], None

    # -- what to keep --

    def _layer_indices(self, layers) -> list[int]:
        if layers is None:
            return list(range(len(self.layer_names)))
        if isinstance(layers, (int, str)):
            layers = [layers]
        out = []
        for layer in layers:
            if isinstance(layer, str):
                if layer not in self.layer_names:
                    raise ValueError(f"no cross-attention layer {layer!r}; the layers are: {', '.join(self.layer_names)}")
                out.append(self.layer_names.index(layer))
            elif isinstance(layer, int) and not isinstance(layer, bool) and 0 <= layer < len(self.layer_names):
                out.append(layer)
            else:
                raise ValueError(f"layer must be an index in [0, {len(self.layer_names) - 1}] or one of "
                                 f"{', '.join(self.layer_names)}; got {layer!r}")
        return sorted(set(out))

    @staticmethod
    def _step_set(steps) -> set[int]:
        steps = [steps] if isinstance(steps, int) else list(steps)
        bad = [s for s in steps if not isinstance(s, int) or isinstance(s, bool) or s < 0]
        if bad:
            raise ValueError(f"steps must be whole numbers >= 0 (denoiser calls, from 0), got {bad[0]!r}")
        return set(steps)

    # -- installing: idempotent, and the processors that were there come back --

    def __enter__(self) -> AttentionRecorder:
        self._depth += 1
        if self._depth > 1:  # already installed by an outer `with` of this recorder
            return self
        for module in self._modules:
            if isinstance(module.processor, CrossAttentionProcessor) and module.processor.recorder is not self:
                self._depth = 0
                raise RuntimeError("another AttentionRecorder is recording this model; end its `with` block first")
        self._saved = [m.processor for m in self._modules]
        for i, module in enumerate(self._modules):
            module.set_processor(CrossAttentionProcessor(self, i))
        self._hook = self.model.register_forward_pre_hook(self._on_call, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        for module, processor in zip(self._modules, self._saved, strict=True):
            module.set_processor(processor)
        self._hook.remove()
        if exc[0] is None and self.timesteps and len(self.fired) < len(self._modules):
            silent = [self.layer_names[i] for i in range(len(self._modules)) if i not in self.fired]
            raise RuntimeError(f"the model ran {len(self.timesteps)} time(s) but these hooked layers never called "
                               f"their processor: {', '.join(silent)}; something replaced or bypassed it")

    def _on_call(self, module, args, kwargs) -> None:
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        self.timesteps.append(int(t.flatten()[0]) if isinstance(t, Tensor) else int(t) if t is not None else -1)

    # -- recording --

    def on_probs(self, layer: int, probs: Tensor, conditional: Tensor) -> Tensor:
        """Called by each hooked layer with its (R, H, N, L) probabilities; returns those the layer goes on with."""
        self.fired.add(layer)
        step = len(self.timesteps) - 1
        if self.edit is not None:
            probs = self.edit(Call(layer, step, probs, conditional))
        if self._keeps(layer, step):
            kept = probs.detach()
            if self.rows == "conditional":
                kept = kept[conditional]
            if self.heads == "mean":
                kept = kept.mean(1, keepdim=True)
            if self.aggregate:
                total = self.sums.get(layer)
                kept = kept.float().cpu()
                self.sums[layer] = kept if total is None else total + kept
                self.counts[layer] = self.counts.get(layer, 0) + 1
            else:
                self.maps[(step, layer)] = kept.to("cpu", self.dtype)
        return probs

    def _keeps(self, layer: int, step: int) -> bool:
        return layer in self.kept_layers and (self.kept_steps is None or step in self.kept_steps)

    def on_outputs(self, layer: int, out: Tensor, values: Tensor, conditional: Tensor) -> None:
        """Called by each hooked layer with o = A V (R, N, D) and the tokens' values V (R, L, D)."""
        step = len(self.timesteps) - 1
        if self.keep_outputs and self._keeps(layer, step):
            if self.rows == "conditional":
                out, values = out[conditional], values[conditional]
            self.outputs[(step, layer)] = (out.detach().to("cpu", self.dtype), values.detach().to("cpu", self.dtype))

    # -- reading --

    @property
    def steps(self) -> list[int]:
        """The denoiser calls kept, in order."""
        return sorted({s for s, _ in self.maps})

    def probs(self, step: int, layer: int | str) -> Tensor:
        """(R, H, N, L) float32 probabilities kept at one step and layer; a clear error for one not kept."""
        layer = self._layer_indices(layer)[0]
        if self.aggregate:
            raise ValueError("this recorder aggregated over steps (aggregate=True): read .mean(layer)")
        if (step, layer) not in self.maps:
            ran = len(self.timesteps)
            raise ValueError(f"no map kept at step {step}, layer {self.layer_names[layer]!r}: the run made {ran} "
                             f"denoiser call(s) (steps 0..{ran - 1}); kept steps {self.steps}, layers "
                             f"{[self.layer_names[i] for i in self.kept_layers]}")
        return self.maps[(step, layer)].float()

    def mean(self, layer: int | str) -> Tensor:
        """(R, H, N, L) probabilities averaged over the kept steps at one layer."""
        layer = self._layer_indices(layer)[0]
        if self.aggregate:
            if layer not in self.sums:
                raise ValueError(f"nothing kept at layer {self.layer_names[layer]!r}")
            return self.sums[layer] / self.counts[layer]
        kept = [self.maps[(s, layer)].float() for s in self.steps if (s, layer) in self.maps]
        if not kept:
            raise ValueError(f"nothing kept at layer {self.layer_names[layer]!r}")
        return torch.stack(kept).mean(0)

    def nbytes(self) -> int:
        """Memory the kept maps take."""
        tensors = [*self.maps.values(), *self.sums.values(), *(t for pair in self.outputs.values() for t in pair)]
        return sum(t.numel() * t.element_size() for t in tensors)


__all__ = ["AttentionRecorder", "Call", "CrossAttentionProcessor", "cross_attention_layers"]
