"""The cross-attention recorder: it changes nothing in the run, hooks every cross-attention layer of our
transformer and of diffusers' UNet, keeps only what it was asked for, tells conditional rows apart in any order,
puts the previous processors back, and never records a silent nothing."""

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from mmdiff_lab.models.denoiser import make_denoiser
from mmdiff_lab.models.encoders import DualEncoder
from mmdiff_lab.pipelines import load_pipeline
from mmdiff_lab.probes.attention import AttentionRecorder, CrossAttentionProcessor, cross_attention_layers

L, C = 6, 16  # tokens, text width


def _model(backbone: str):
    torch.manual_seed(0)
    model = make_denoiser(backbone, "tiny", C).eval()
    for p in model.parameters():  # away from the zero-initialised gates, so attention shapes the output
        p.data += 0.05 * torch.randn_like(p)
    return model


def _inputs(model, conditional_first: bool = True):
    """Two images; rows: each image with a 3-word prompt, then each with the empty prompt (<bos>, <eos>)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 32, 32, generator=g)
    width = next(iter(cross_attention_layers(model).values())).to_k.in_features  # 2C for words+final
    states = torch.randn(4, L, width, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]] * 2 + [[1, 1, 0, 0, 0, 0]] * 2)
    order = [0, 1, 2, 3] if conditional_first else [2, 3, 0, 1]
    return x, states[order], mask[order], torch.tensor([0, 1, 0, 1])


def _run(model, x, states, mask, index):
    with torch.no_grad():
        if hasattr(model.config, "patch_size"):  # our transformer reads each image once
            return model(x, 500, encoder_hidden_states=states, encoder_attention_mask=mask, sample_index=index).sample
        return model(x[index], 500, encoder_hidden_states=states, encoder_attention_mask=mask).sample


@pytest.mark.parametrize("backbone", ["transformer", "unet"])
def test_recording_changes_nothing_and_hooks_every_cross_attention_layer(backbone):
    model = _model(backbone)
    inputs = _inputs(model)
    plain = _run(model, *inputs)
    before = dict(model.attn_processors)
    n_cross = sum(1 for k in before if k.endswith("attn2.processor"))
    assert n_cross == len(cross_attention_layers(model)) > 0
    with AttentionRecorder(model, heads="all") as rec:
        recorded = _run(model, *inputs)
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=1e-5)
    assert len(rec.fired) == n_cross and rec.timesteps == [500] and rec.steps == [0]
    after = model.attn_processors
    assert all(after[k] is before[k] for k in before)  # the very objects that were there
    for layer in range(n_cross):
        probs = rec.probs(0, layer)
        heads = cross_attention_layers(model)[rec.layer_names[layer]].heads
        assert probs.shape[:2] == (2, heads) and probs.shape[-1] == L  # the two conditional rows, every head
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
        assert probs[..., 5].abs().max() < 1e-6  # padding is never read


def test_the_processor_equals_diffusers_own_with_sdpa_too():
    """On the UNet, whose layers use diffusers' SDPA processor: the same output within float error."""
    model = _model("unet")
    assert any(isinstance(p, AttnProcessor2_0) for p in model.attn_processors.values())
    inputs = _inputs(model)
    plain = _run(model, *inputs)
    model.set_attn_processor(AttnProcessor())
    torch.testing.assert_close(_run(model, *inputs), plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backbone", ["transformer", "unet"])
def test_conditional_rows_are_told_apart_in_any_order(backbone):
    model = _model(backbone)
    with AttentionRecorder(model, rows="all") as everything:
        _run(model, *_inputs(model))
    with AttentionRecorder(model) as conditional_first:
        _run(model, *_inputs(model, conditional_first=True))
    with AttentionRecorder(model) as unconditional_first:
        _run(model, *_inputs(model, conditional_first=False))
    every = everything.probs(0, 0)
    assert every.shape[0] == 4
    torch.testing.assert_close(conditional_first.probs(0, 0), every[:2])
    torch.testing.assert_close(unconditional_first.probs(0, 0), every[:2], atol=1e-6, rtol=1e-5)
    assert every[2:, 0, :, 2:].abs().max() < 1e-6  # the empty prompt reads <bos> and <eos> alone


def test_only_what_is_asked_is_kept():
    model = _model("transformer")
    with AttentionRecorder(model, steps=[1], layers=["blocks.0.attn2"], dtype=torch.float16) as rec:
        for _ in range(3):
            _run(model, *_inputs(model))
    assert rec.steps == [1] and set(rec.maps) == {(1, 0)} and rec.maps[(1, 0)].dtype == torch.float16
    assert rec.maps[(1, 0)].shape == (2, 1, 16, L)  # heads averaged: 4x4 patches of the tiny transformer
    with AttentionRecorder(model, aggregate=True) as total:
        for _ in range(3):
            _run(model, *_inputs(model))
    assert total.maps == {} and total.counts == {0: 3}
    torch.testing.assert_close(total.mean(0), rec.probs(1, 0), atol=2e-3, rtol=0)  # same inputs every call


def test_entering_twice_is_idempotent_and_another_recorder_is_refused():
    model = _model("transformer")
    rec = AttentionRecorder(model)
    with rec, rec:
        assert isinstance(model.blocks[0].attn2.processor, CrossAttentionProcessor)
        _run(model, *_inputs(model))
        with pytest.raises(RuntimeError, match="another AttentionRecorder"), AttentionRecorder(model):
            pass
        assert model.blocks[0].attn2.processor.recorder is rec
    assert isinstance(model.blocks[0].attn2.processor, AttnProcessor) and len(rec.maps) == 1


def test_a_processor_replaced_mid_run_is_an_error_not_a_silent_nothing():
    model = _model("unet")
    with pytest.raises(RuntimeError, match="never called their processor: .*attn2"), AttentionRecorder(model):
        model.set_attn_processor(AttnProcessor2_0())  # as a later library call may: the hook is gone
        _run(model, *_inputs(model))


def test_a_model_without_cross_attention_hooks_nothing_and_says_so():
    encoder = DualEncoder.from_preset("tiny", 20, 8)
    before = {n: type(m.processor) for n, m in encoder.named_modules() if hasattr(m, "processor")}
    with pytest.raises(ValueError, match="DualEncoder has no cross-attention layers.*nothing was hooked"):
        AttentionRecorder(encoder)
    assert {n: type(m.processor) for n, m in encoder.named_modules() if hasattr(m, "processor")} == before


@pytest.mark.parametrize("kwargs, message", [
    (dict(layers=[7]), r"layer must be an index in \[0, 0\] or one of blocks.0.attn2; got 7"),
    (dict(layers=["blocks.9.attn2"]), "no cross-attention layer 'blocks.9.attn2'; the layers are: blocks.0.attn2"),
    (dict(layers=[True]), "layer must be an index"),
    (dict(steps=[-1]), r"steps must be whole numbers >= 0 \(denoiser calls, from 0\), got -1"),
    (dict(steps=[1.5]), "steps must be whole numbers"),
    (dict(heads="max"), "heads must be 'mean' or 'all', got 'max'"),
    (dict(rows="cond"), "rows must be 'conditional' or 'all'"),
    (dict(dtype=torch.int8), "dtype must be a floating type"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionRecorder(_model("transformer"), **kwargs)


def test_a_step_outside_the_run_is_named():
    model = _model("transformer")
    with AttentionRecorder(model) as rec:
        _run(model, *_inputs(model))
    with pytest.raises(ValueError, match=r"no map kept at step 4, layer 'blocks.0.attn2': the run made 1 denoiser "
                                         r"call\(s\) \(steps 0..0\)"):
        rec.probs(4, 0)


def test_a_guided_pipeline_run_records_each_step_and_draws_the_same_image():
    pipe = load_pipeline("t2i-shapes")

    def sample():
        return pipe("a red circle left of a blue square", num_inference_steps=5, guidance_scale=3.0,
                    generator=torch.Generator().manual_seed(0), output_type="pt").images

    plain = sample()
    with AttentionRecorder(pipe.denoiser) as rec:
        recorded = sample()
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=0)
    n_layers = len(rec.layer_names)
    assert rec.steps == list(range(5)) and len(rec.maps) == 5 * n_layers
    tokens = pipe.tokenizer.max_length
    assert rec.probs(0, 0).shape == (1, 1, 64, tokens)  # one image, its conditional row only; 8x8 patches
    assert len(rec.timesteps) == 5 and rec.timesteps == sorted(rec.timesteps, reverse=True)
    assert rec.nbytes() == 5 * n_layers * 64 * tokens * 4


def test_the_bench_group_times_a_recording_against_a_plain_run_and_weighs_it():
    from mmdiff_lab import bench

    figures = {f.key: f for f in bench.attention(pairs=1)}
    assert figures["attention.record_overhead"].value > 0 and figures["attention.record_overhead"].target == ("<=", 1.25)
    # 20 calls x 4 layers x 4 heads x 64 patches x 14 tokens x 4 bytes: what the recording holds, exactly
    assert figures["attention.recording_mb"].value * 2**20 == pytest.approx(20 * 4 * 4 * 64 * 14 * 4, rel=0.01)
    assert figures["attention.recording_with_outputs_mb"].value > figures["attention.recording_mb"].value
    assert "attention" in bench.groups()
