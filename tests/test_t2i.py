"""The text-to-image denoiser, pipeline, samplers, guidance, stages, weights and training (tiny sizes)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from conftest import exit_status, tiny_t2i_pipeline
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from mmdiff_lab import pretrained
from mmdiff_lab.loading import load_clip
from mmdiff_lab.models.denoiser import TextToImageDenoiser, make_denoiser, text_context, unpatchify
from mmdiff_lab.pipelines.samplers import SCHEDULERS
from mmdiff_lab.pipelines.text_to_image import (
    SamplingDefaults,
    Stage,
    TextToImagePipeline,
    load_pipeline,
    parse_weights,
)
from mmdiff_lab.pipelines.trajectory import TrajectoryRecorder

PROMPT = "a small red circle left of a large blue square"


def tiny_pipeline(prediction_type: str = "epsilon", backbone: str = "transformer") -> TextToImagePipeline:
    return tiny_t2i_pipeline(prediction_type, backbone)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def sample(pipe, prompt=PROMPT, seed=0, **kw):
    kw = {"num_inference_steps": 6, "sampler": "ddim", "output_type": "pt", **kw}
    return pipe(prompt, generator=torch.Generator().manual_seed(seed), **kw).images


# ---- the denoiser -----------------------------------------------------------------------------


@pytest.mark.parametrize("stem_channels, conv_film", [(0, False), (8, False), (8, True), (0, True)])
def test_denoiser_shapes_and_zero_start(stem_channels, conv_film):
    model = TextToImageDenoiser(context_dim=24, patch_size=8, width=32, depth=2, heads=2, stem_channels=stem_channels,
                                conv_film=conv_film)
    x, ctx = torch.randn(3, 3, 32, 32), torch.randn(3, 5, 24)
    mask = torch.tensor([[1, 1, 1, 0, 0]] * 3)
    out = model(x, torch.tensor([0, 500, 999]), encoder_hidden_states=ctx, encoder_attention_mask=mask).sample
    assert out.shape == (3, 3, 32, 32)
    assert torch.all(out == 0)  # adaLN-Zero: a fresh model predicts 0 (DiT, Sec. 3.2)
    assert out.is_contiguous()  # plain NCHW out, though the convolutions inside run channels-last


def test_unpatchify_puts_each_patch_back_in_raster_order():
    B, F, S, p = 2, 5, 12, 4
    image = torch.randn(B, F, S, S)
    h = S // p  # patch (i, j) is token i * h + j; its features are (row in patch, column in patch, feature)
    tokens = image.view(B, F, h, p, h, p).permute(0, 2, 4, 3, 5, 1).reshape(B, h * h, p * p * F)
    back = unpatchify(tokens, p)
    assert torch.equal(back, image)
    assert back.is_contiguous(memory_format=torch.channels_last)


def test_the_stem_hands_x_t_itself_to_the_output_convolutions():
    """The skip carries x_t's exact pixels beside the stem's features: a low-noise eps or v guess needs them."""
    torch.manual_seed(0)
    model = TextToImageDenoiser(context_dim=24, patch_size=8, width=32, depth=1, heads=2, stem_channels=8)
    assert model.refine[0].in_channels == model.config.refine_channels + 3 + 8
    with torch.no_grad():
        model.refine[2].weight.normal_()
        for block in model.blocks:  # silence the transformer: only the skip reaches the output
            block.ada[1].weight.zero_()
        model.out.weight.zero_()
        model.out.bias.zero_()
        model.stem[2].weight.zero_()
        model.stem[2].bias.zero_()
    x, ctx = torch.randn(1, 3, 32, 32), torch.randn(1, 5, 24)
    y = x.clone()
    y[0, :, 16, 16] += 1.0
    a, b = (model(v, 10, encoder_hidden_states=ctx).sample for v in (x, y))
    changed = (a - b).abs().sum(1)[0] > 0
    assert changed[15:18, 15:18].any() and not changed[:12].any()  # a local change stays local through the skip


def test_conv_film_lets_the_noise_level_scale_the_skip():
    """With FiLM, how much of x_t's pixels the output convolutions pass on depends on t; without it, only the
    transformer path could make it depend on t."""
    outputs = {}
    for film in (False, True):
        torch.manual_seed(0)
        model = TextToImageDenoiser(context_dim=24, patch_size=8, width=32, depth=1, heads=2, stem_channels=8,
                                    conv_film=film)
        with torch.no_grad():
            model.refine[2].weight.normal_()
            model.out.weight.zero_()  # silence the transformer path: only the skip reaches the output
            model.out.bias.zero_()
            if film:
                model.refine_film[1].weight.normal_()
        x, ctx = torch.randn(1, 3, 32, 32), torch.randn(1, 5, 24)
        outputs[film] = [model(x, t, encoder_hidden_states=ctx).sample for t in (10, 900)]
    assert torch.equal(*outputs[False])  # t never reaches the convolutions
    assert not torch.allclose(*outputs[True])


def test_old_denoiser_configs_build_the_old_architecture():
    """Checkpoints saved before the stem and FiLM existed load unchanged: no stem, no FiLM, DiT's tanh GELU."""
    model = TextToImageDenoiser(context_dim=24, patch_size=8, width=32, depth=1, heads=2)
    assert model.stem is None and model.patchify.in_channels == 3
    assert model.stem_film is None and model.refine_film is None
    assert model.blocks[0].mlp[1].approximate == "tanh"
    assert model.config.text_states == "final" and model.text_mlp is not None
    assert model.blocks[0].mlp[0].out_features == 4 * 32  # DiT's MLP ratio
    assert TextToImageDenoiser(context_dim=24, width=32, depth=1, heads=2, mlp_ratio=2).blocks[0].mlp[0].out_features == 64
    lab = make_denoiser("transformer", "lab", 24)
    assert lab.stem is not None and lab.refine_film is not None and lab.stem_film is not None
    assert lab.config.text_states == "words+final" and lab.text_mlp is None


def test_words_and_final_states_side_by_side():
    """words+final: each token's context is its word + position embedding, which the other words leave alone,
    beside the tower's final state, which they change; "final" is the final states alone, as for the UNet, and
    "words" the word embeddings alone."""
    clip, tok = load_clip(pretrained.path("clip-shapes"))
    red, blue = (clip.encode_text(**tok.encode([f"a large {c} square in the center"])) for c in ("red", "blue"))
    C = clip.config.width
    small = dict(context_dim=C, patch_size=8, width=32, depth=1, heads=2)
    both = TextToImageDenoiser(**small, text_states="words+final")
    assert torch.equal(text_context(TextToImageDenoiser(**small), red), red.token_states)
    assert torch.equal(text_context(make_denoiser("unet", "tiny", C), red), red.token_states)
    assert torch.equal(text_context(TextToImageDenoiser(**small, text_states="words", pooled_text=False), red),
                       red.word_states)
    ctx_red, ctx_blue = text_context(both, red), text_context(both, blue)
    assert ctx_red.shape == (1, red.token_states.shape[1], 2 * C)
    square = 4  # <bos> a large red square
    assert torch.equal(ctx_red[0, square, :C], ctx_blue[0, square, :C])  # the word is named the same
    assert not torch.allclose(ctx_red[0, square, C:], ctx_blue[0, square, C:])  # its final state heard the colour
    out = both(torch.randn(1, 3, 32, 32), 10, encoder_hidden_states=ctx_red, encoder_attention_mask=red.attention_mask)
    assert out.sample.shape == (1, 3, 32, 32)


def test_without_pooled_text_adaln_hears_only_the_timestep():
    """With cross-attention silenced, the text can reach the image only through adaLN's pooled text: then two
    prompts give the same output without it (PixArt-alpha's c) and different ones with it (SDXL's)."""
    outputs = {}
    for pooled in (False, True):
        torch.manual_seed(0)
        model = TextToImageDenoiser(context_dim=24, patch_size=8, width=32, depth=1, heads=2, pooled_text=pooled)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
            for block in model.blocks:
                block.attn2.to_out[0].weight.zero_()
                block.attn2.to_out[0].bias.zero_()
        x, a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 5, 24), torch.randn(1, 5, 24)
        outputs[pooled] = [model(x, 10, encoder_hidden_states=ctx).sample for ctx in (a, b)]
    assert torch.equal(*outputs[False])
    assert not torch.allclose(*outputs[True])


@pytest.mark.parametrize("pooled", [False, True])
def test_one_x_t_read_under_several_texts_equals_repeating_it(pooled):
    """Guidance reads each x_t with and without the prompt: sample_index shares the text-free first layers."""
    torch.manual_seed(0)
    model = TextToImageDenoiser(context_dim=24, patch_size=8, width=32, depth=2, heads=2, stem_channels=8,
                                conv_film=True, pooled_text=pooled)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, states = torch.randn(2, 3, 32, 32), torch.randn(5, 4, 24)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    index = torch.tensor([0, 1, 1, 0, 1])  # image 1 read under three texts, image 0 under two
    shared = model(x, 10, encoder_hidden_states=states, encoder_attention_mask=mask, sample_index=index).sample
    repeated = model(x[index], 10, encoder_hidden_states=states, encoder_attention_mask=mask).sample
    assert shared.shape == (5, 3, 32, 32) and repeated.abs().max() > 0.1
    assert torch.allclose(shared, repeated, atol=1e-5)


def test_denoiser_ignores_padding_tokens():
    torch.manual_seed(0)
    model = make_denoiser("transformer", "tiny", 24)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, ctx = torch.randn(1, 3, 32, 32), torch.randn(1, 5, 2 * 24)  # words + final states
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    changed = ctx.clone()
    changed[:, 3:] = 100.0
    a = model(x, 10, encoder_hidden_states=ctx, encoder_attention_mask=mask).sample
    b = model(x, 10, encoder_hidden_states=changed, encoder_attention_mask=mask).sample
    assert torch.allclose(a, b, atol=1e-5)


def test_attention_processors_apply_to_the_denoiser():
    model = make_denoiser("transformer", "tiny", 24)
    assert len(model.attn_processors) == 2  # self- and cross-attention of one block, as a diffusers UNet lists them
    assert all(type(p) is AttnProcessor for p in model.attn_processors.values())  # the faster one here
    for p in model.parameters():  # out of adaLN-Zero's start, so the attention shows in the output
        p.data.normal_(0, 0.2)
    x, states, mask = torch.randn(2, 3, 32, 32), torch.randn(2, 5, 48), torch.tensor([[1, 1, 1, 0, 0]] * 2)
    plain = model(x, 10, encoder_hidden_states=states, encoder_attention_mask=mask).sample
    model.set_attn_processor(AttnProcessor2_0())
    assert all(isinstance(p, AttnProcessor2_0) for p in model.attn_processors.values())
    sdpa = model(x, 10, encoder_hidden_states=states, encoder_attention_mask=mask).sample
    assert plain.abs().max() > 0.1 and torch.allclose(plain, sdpa, atol=1e-4)  # the same attention, computed two ways


def test_unet_is_about_the_size_of_our_denoiser():
    ours = sum(p.numel() for p in make_denoiser("transformer", "lab", 96).parameters())
    unet = sum(p.numel() for p in make_denoiser("unet", "lab", 96).parameters())
    assert 0.8 < unet / ours < 1.25


def test_unknown_backbone_or_preset():
    with pytest.raises(ValueError, match="backbone 'cnn'"):
        make_denoiser("cnn", "tiny", 24)
    with pytest.raises(ValueError, match="preset 'huge'"):
        make_denoiser("transformer", "huge", 24)
    with pytest.raises(ValueError, match="text_states 'pooled'.*words\\+final"):
        TextToImageDenoiser(context_dim=24, text_states="pooled")
    with pytest.raises(ValueError, match="pooled_text.*'words' has none"):
        TextToImageDenoiser(context_dim=24, text_states="words")  # pooled_text needs the final states


# ---- samplers, seeds, files ---------------------------------------------------------------------


@pytest.mark.parametrize("sampler", list(SCHEDULERS))
def test_every_sampler_runs_records_and_repeats(pipe, sampler):
    recorder = TrajectoryRecorder()
    a = sample(pipe, sampler=sampler, callback_on_step_end=recorder)
    b = sample(pipe, sampler=sampler)
    assert a.shape == (1, 3, 32, 32) and torch.isfinite(a).all()
    assert torch.equal(a, b)  # same seed, same settings: bit for bit
    traj = recorder.trajectory
    assert len(traj) == (11 if sampler == "heun" else 6)  # Heun calls the model twice per step but the first
    assert traj.timesteps[0] == (831 if sampler == "heun" else 999)  # Heun starts one spacing below T
    for name in ("x_t", "x0_pred", "eps_pred", "guidance_delta"):
        assert traj.stack(name).shape == (len(traj), 1, 3, 32, 32)


def test_other_seed_other_image(pipe):
    assert not torch.equal(sample(pipe, seed=0), sample(pipe, seed=1))


def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "model_index.json").is_file()
    again = load_pipeline(tmp_path / "p")
    saved, loaded = pipe.denoiser.state_dict(), again.denoiser.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    # Not bit for bit: a one-row matrix product (batch 1's timestep MLP) rounds by where its weights lie in memory
    # (4 different results at 16 offsets here); the same pipeline repeats itself exactly (test above).
    assert torch.allclose(sample(pipe), sample(again), atol=1e-5)


def test_a_fresh_process_loads_the_shipped_pipeline():
    """diffusers loads a component class only from a module already imported: load_pipeline must see to it."""
    import subprocess
    import sys

    code = "from mmdiff_lab.pipelines import load_pipeline; print(type(load_pipeline('t2i-shapes').denoiser).__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "TextToImageDenoiser"


def test_load_pipeline_names_a_missing_folder(tmp_path):
    from mmdiff_lab.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="model_index.json"):
        load_pipeline(tmp_path)


def test_recorded_predictions_are_consistent(pipe):
    """x_t = sqrt(ab) x0_pred + sqrt(1 - ab) eps_pred at every step (DDPM Eq. 4 with the model's guesses)."""
    recorder = TrajectoryRecorder()
    sample(pipe, callback_on_step_end=recorder)
    ab = pipe.scheduler.alphas_cumprod
    for s in recorder.trajectory.steps:
        a = ab[s.t]
        assert torch.allclose(a.sqrt() * s.x0_pred + (1 - a).sqrt() * s.eps_pred, s.x_t, atol=1e-3)


def test_v_prediction_pipeline_recovers_x0_and_eps():
    vpipe = tiny_pipeline("v_prediction")
    recorder = TrajectoryRecorder()
    sample(vpipe, callback_on_step_end=recorder)
    ab = vpipe.scheduler.alphas_cumprod
    s = recorder.trajectory[2]
    assert torch.allclose(ab[s.t].sqrt() * s.x0_pred + (1 - ab[s.t]).sqrt() * s.eps_pred, s.x_t, atol=1e-3)


def test_the_unet_backbone_samples_through_the_same_pipeline():
    upipe = tiny_pipeline(backbone="unet")
    assert sample(upipe, num_inference_steps=2).shape == (1, 3, 32, 32)


# ---- guidance --------------------------------------------------------------------------------


def test_guidance_one_is_the_conditional_model(pipe):
    recorder = TrajectoryRecorder()
    sample(pipe, guidance_scale=1.0, callback_on_step_end=recorder)
    assert recorder.trajectory.stack("guidance_delta").abs().max() == 0


def test_guidance_interval_turns_guidance_off_outside_it(pipe):
    recorder = TrajectoryRecorder()
    sample(pipe, guidance_scale=4.0, guidance_interval=(0.3, 0.7), callback_on_step_end=recorder)
    for s in recorder.trajectory.steps:
        inside = 0.3 <= s.t / 999 <= 0.7
        assert (s.extras["guidance_delta"].abs().max() > 0) == inside, s.t


def test_guidance_follows_the_cfg_formula(pipe):
    """eps_w = eps_u + w (eps_c - eps_u), so the recorded difference eps_w - eps_c scales with (w - 1)."""
    deltas = {}
    for w in (2.0, 3.0):
        recorder = TrajectoryRecorder()
        sample(pipe, guidance_scale=w, num_inference_steps=1, callback_on_step_end=recorder)
        deltas[w] = recorder.trajectory[0].extras["guidance_delta"]
    assert torch.allclose(deltas[3.0], 2 * deltas[2.0], atol=1e-5)


# ---- stages, branching, weights --------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["ddim", "euler", "dpm++"])
def test_a_stage_that_changes_nothing_changes_nothing(pipe, sampler):
    a = sample(pipe, sampler=sampler)
    b = sample(pipe, sampler=sampler, stages=[Stage(at=3, guidance_scale=3.0, sampler=sampler)])
    assert torch.equal(a, b)


def test_a_stage_switches_prompt_and_sampler_midway(pipe):
    recorder = TrajectoryRecorder()
    a = sample(pipe, callback_on_step_end=recorder)
    staged = TrajectoryRecorder()
    b = sample(pipe, stages=[Stage(at=3, prompt="a large green square on the right", sampler="euler")],
               callback_on_step_end=staged)
    assert not torch.equal(a, b)
    for i in range(3):  # identical before the switch
        assert torch.equal(recorder.trajectory[i].x_t, staged.trajectory[i].x_t)
    assert staged.trajectory.timesteps == recorder.trajectory.timesteps


def test_branching_from_a_recorded_step_reproduces_the_run(pipe):
    """Starting from the recorded x_t at step k with the same settings continues the same path (DDIM is
    deterministic and memoryless)."""
    recorder = TrajectoryRecorder()
    a = sample(pipe, callback_on_step_end=recorder)
    k = 2
    start = recorder.trajectory[k]
    b = sample(pipe, latents=start.x_t, start_timestep=start.t)
    assert torch.allclose(a, b, atol=1e-5)
    c = sample(pipe, prompt="a large green square on the right", latents=start.x_t, start_timestep=start.t)
    assert not torch.allclose(a, c, atol=1e-3)


def test_parse_weights():
    assert parse_weights("a (red:1.5) circle") == ("a red circle", [1.0, 1.5, 1.0])
    assert parse_weights("(small red:0.5) circle") == ("small red circle", [0.5, 0.5, 1.0])
    assert parse_weights("plain words") == ("plain words", [1.0, 1.0])
    with pytest.raises(ValueError, match="weight"):
        parse_weights("a (red circle")


def test_token_weights_scale_token_states(pipe):
    plain, mask = pipe.encode_prompt(["a small red circle on the left"])
    weighted, _ = pipe.encode_prompt(["a small (red:2) circle on the left"])
    assert torch.allclose(weighted[0, 3], 2 * plain[0, 3])  # <bos> a small red: red is token 3
    assert torch.allclose(weighted[0, 2], plain[0, 2])


def test_weighted_prompts_are_summed_as_guidance_directions(pipe):
    one = sample(pipe, prompt={PROMPT: 1.0})
    assert torch.equal(one, sample(pipe))  # a single prompt of weight 1 is the plain prompt
    mixed = sample(pipe, prompt={PROMPT: 0.5, "a large green square on the right": 0.5})
    assert not torch.equal(mixed, one)


# ---- bad input: tests/test_bad_input_pipeline.py -----------------------------------------------------------


def test_empty_prompt_is_unconditional_and_says_so(pipe):
    with pytest.warns(UserWarning, match="unconditional"):
        images = sample(pipe, prompt="")
    assert images.shape == (1, 3, 32, 32)


# ---- training --------------------------------------------------------------------------------


def test_training_saves_a_pipeline_and_resumes_with_ema(tmp_path):
    from mmdiff_lab.training.t2i import T2ITrainConfig, train_t2i

    cfg = T2ITrainConfig(preset="tiny", steps=4, batch_size=8, pool_size=32, eval_every=0, checkpoint_every=2,
                         warmup=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_t2i(cfg, tmp_path / "full")
        whole = load_pipeline(tmp_path / "full")
        half = T2ITrainConfig(**{**cfg.__dict__, "steps": 2})
        train_t2i(half, tmp_path / "resumed")
        state = json.loads((tmp_path / "resumed" / "state" / "step-000002" / "state.json").read_text())
        assert state["step"] == 2 and state["ema"]["optimization_step"] == 2
        train_t2i(cfg, tmp_path / "resumed", resume=True)
    resumed = load_pipeline(tmp_path / "resumed")
    for a, b in zip(whole.denoiser.state_dict().values(), resumed.denoiser.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)  # the EMA weights an uninterrupted run saves
    assert (tmp_path / "full" / "metrics.json").is_file()
    index = json.loads((tmp_path / "full" / "model_index.json").read_text())
    assert index["default_guidance_scale"] == 3.0 and index["default_sampler"] == "dpm++"  # its sampling settings
    assert whole.defaults == SamplingDefaults()


def test_object_pixels_are_the_lit_pixels_and_their_rim():
    from mmdiff_lab.training.t2i import object_pixels

    x0 = -torch.ones(2, 3, 8, 8)
    x0[0, 2, 3, 4] = 0.5  # one blue pixel in image 0; image 1 is all background
    w = object_pixels(x0)
    assert w.shape == (2, 1, 8, 8) and w[1].sum() == 0
    assert w[0, 0, 2:5, 3:6].eq(1).all() and w[0].sum() == 9  # the pixel and its 1-pixel rim


def test_object_weight_weighs_the_objects_pixels_more(tmp_path):
    from mmdiff_lab.training.t2i import T2ITrainConfig, train_t2i

    cfg = T2ITrainConfig(preset="tiny", steps=1, batch_size=8, pool_size=32, eval_every=0, checkpoint_every=0,
                         warmup=1)
    losses = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for weight in (0.0, 4.0):
            _, history = train_t2i(T2ITrainConfig(**{**cfg.__dict__, "object_weight": weight}), tmp_path / str(weight))
            losses[weight] = history[0]["loss"]
    # adaLN-Zero: the first prediction is 0, so the loss is the mean of v^2 = (sqrt(ab) eps - sqrt(1 - ab) x_0)^2,
    # whose mean is ab + (1 - ab) x_0^2: 1 on the black background (x_0 = -1), less on a coloured object, whose
    # channels lie between -1 and 1. Weighing the objects more must lower it.
    assert cfg.object_weight == 0 and 0 < losses[4.0] < losses[0.0]


def test_two_cpu_processes_train_together(tmp_path):
    """The distributed path: two CPU processes (gloo) under torchrun, as `accelerate launch` starts them."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mmdiff_lab.cli", "train", "t2i", "--preset", "tiny", "--steps", "3", "--batch-size", "4",
           "--pool-size", "32", "--eval-every", "0", "--checkpoint-every", "3", "--object-weight", "2",
           "--unsaid-colour", "0.5", "--out", str(tmp_path / "run")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on 2 process(es), MULTI_CPU" in result.stdout
    assert load_pipeline(tmp_path / "run").denoiser.config.width == 32
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["object_weight"] == 2 and config["unsaid_colour"] == 0.5


# ---- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipe") / "t2i"
    tiny_pipeline().save_pretrained(folder)
    return folder


def test_sample_command_writes_a_grid(saved, tmp_path, capsys):
    from PIL import Image

    from mmdiff_lab.cli import main

    out = tmp_path / "grid.png"
    assert main(["sample", PROMPT, "--model", str(saved), "--steps", "3", "-n", "3", "--sampler", "euler",
                 "--out", str(out)]) == 0
    assert Image.open(out).size == (3 * 64, 64)  # 3 images of 32 px, shown at 2x
    printed = capsys.readouterr().out
    assert "euler, 3 steps, w=3, interval [0, 1]" in printed  # the settings used, w and interval the folder's
    assert "--guidance, --interval from the pipeline's folder" in printed


@pytest.mark.parametrize("args, message", [
    (["a small red cirlce on the left"], "cirlce"),
    ([PROMPT, "--steps", "0"], "--steps: must be an integer in [1, 1000]"),
    ([PROMPT, "--guidance", "nan"], "--guidance: must be a number in [0, 50]"),
    ([PROMPT, "--interval", "0.5", "2"], "--interval: must be a number in [0, 1]"),
    ([PROMPT, "-n", "0"], "num-images"),
])
def test_sample_command_rejects_bad_input(saved, tmp_path, capsys, args, message):
    out = tmp_path / "grid.png"
    assert exit_status(["sample", *args, "--model", str(saved), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
