"""The caption denoiser, its objective, the unmasking sampler, the pipeline and its training (tiny sizes)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from conftest import exit_status, tiny_i2t_pipeline
from PIL import Image

from mmdiff_lab.data import ShapesWorld
from mmdiff_lab.data.base import DataError, image_to_tensor
from mmdiff_lab.loading import load_clip
from mmdiff_lab.pipelines.image_to_text import ImageToTextPipeline, as_pixels, caption_all, load_captioner
from mmdiff_lab.pipelines.unmasking import ORDERS, CaptionRecord, caption_text
from mmdiff_lab.text_diffusion import mask_tokens, nelbo_terms, stratified_t
from mmdiff_lab.training.i2t import caption_loss


@pytest.fixture(scope="module")
def pipe():
    return tiny_i2t_pipeline()


@pytest.fixture(scope="module")
def images():
    w = ShapesWorld(seed=5, split="heldout", size=3)
    return torch.stack([image_to_tensor(w[i].image) for i in range(3)])


# ---- the objective -----------------------------------------------------------------------------------------


def test_stratified_times_cover_the_unit_interval_once_each():
    t = stratified_t(8, torch.Generator().manual_seed(0))
    strata = ((t - 1e-3) / (1 - 1e-3) * 8).floor().long().sort().values
    assert strata.tolist() == list(range(8))


def test_masking_never_touches_bos_and_masks_about_t():
    x0 = torch.randint(4, 30, (4000, 14))
    z, masked = mask_tokens(x0, torch.full((4000,), 0.3), mask_id=3, generator=torch.Generator().manual_seed(0))
    assert not masked[:, 0].any()
    assert (z[masked] == 3).all() and (z[~masked] == x0[~masked]).all()
    assert abs(masked[:, 1:].float().mean().item() - 0.3) < 0.01


def test_nelbo_is_the_masked_cross_entropy_over_t():
    logits = torch.randn(2, 5, 7)
    x0 = torch.randint(0, 7, (2, 5))
    masked = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.bool)
    t = torch.tensor([0.5, 0.25])
    logp = torch.log_softmax(logits, -1).gather(-1, x0[..., None])[..., 0]
    want = torch.stack([-(logp[b][masked[b]]).sum() / t[b] / 4 for b in range(2)])
    assert torch.allclose(nelbo_terms(logits, x0, masked, t), want)


def test_a_perfect_model_has_zero_loss_and_the_loss_trains():
    p = tiny_i2t_pipeline()
    model = p.denoiser.train()
    ids = p.tokenizer.encode(["a small red circle on the left"] * 16)["input_ids"]
    states = torch.randn(16, 17, p.image_encoder.config.width)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = caption_loss(model, ids, states, torch.Generator().manual_seed(0)).item()
    for step in range(60):
        loss = caption_loss(model, ids, states, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_the_model_never_predicts_mask(pipe, images):
    states = pipe.encode_image(images)
    ids = torch.full((3, 14), pipe.tokenizer.mask_id)
    logits = pipe.denoiser(ids, states)
    assert torch.isneginf(logits[..., pipe.tokenizer.mask_id]).all()


def test_the_causal_anchor_does_not_see_the_future():
    p = tiny_i2t_pipeline(causal=True)
    states = torch.randn(1, 17, p.image_encoder.config.width)
    ids = torch.randint(4, 30, (1, 14))
    changed = ids.clone()
    changed[0, 9:] = 5
    a, b = p.denoiser(ids, states), p.denoiser(changed, states)
    assert torch.allclose(a[0, :9], b[0, :9], atol=1e-5)
    assert not torch.allclose(a[0, 9:], b[0, 9:])


# ---- the sampler ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("steps", [1, 4, 13])
def test_every_order_fills_every_position_in_k_steps(pipe, images, order, steps):
    out = pipe(images, num_inference_steps=steps, order=order, generator=torch.Generator().manual_seed(0))
    rec = out.record
    assert len(rec) == steps and rec.tokens.shape == (steps, 3, 14)
    assert not (rec.final == pipe.tokenizer.mask_id).any()
    revealed = rec.stack("revealed")  # (S, B, L)
    assert (revealed.sum(0) == torch.tensor([0] + [1] * 13)).all(), "each position but <bos> revealed exactly once"
    # a revealed token is never masked again, nor changed
    for k in range(1, steps):
        known = rec.tokens[k - 1] != pipe.tokenizer.mask_id
        assert (rec.tokens[k][known] == rec.tokens[k - 1][known]).all()
    if order != "random":  # the linear schedule: after step k, round((k+1)/K * 13) positions known
        known = (rec.tokens != pipe.tokenizer.mask_id).sum(-1)[:, 0] - 1
        assert known.tolist() == [round((k + 1) / steps * 13) for k in range(steps)]
    if order == "left-to-right":
        decided = rec.decided_at()[0, 1:]
        assert (decided[1:] >= decided[:-1]).all()
    probs = rec.stack("top_probs")
    assert probs.shape == (steps, 3, 14, 5) and (probs[..., :-1] >= probs[..., 1:]).all()


def test_confidence_reveals_the_most_probable_position_first(pipe, images):
    out = pipe(images[:1], num_inference_steps=13, order="confidence")
    step0 = out.record[0]
    chosen = step0.extras["revealed"][0].nonzero()[0, 0]
    best = step0.extras["top_probs"][0, 1:, 0].argmax() + 1
    assert chosen == best


def test_same_seed_same_caption_and_temperature_zero_is_deterministic(pipe, images):
    def run(seed, **kw):
        return pipe(images, generator=torch.Generator().manual_seed(seed), **kw).record.final

    assert torch.equal(run(0, temperature=1.0, order="random"), run(0, temperature=1.0, order="random"))
    assert not torch.equal(run(0, temperature=3.0, order="random"), run(1, temperature=3.0, order="random"))
    assert torch.equal(run(0), run(1))  # temperature 0: argmax, whatever the seed


def test_record_saves_and_loads(pipe, images, tmp_path):
    rec = pipe(images, num_inference_steps=4).record
    rec.save(tmp_path / "run")
    back = CaptionRecord.load(tmp_path / "run")
    assert isinstance(back, CaptionRecord) and back.meta == rec.meta
    assert torch.equal(back.tokens, rec.tokens) and torch.equal(back.decided_at(), rec.decided_at())
    assert back.captions(pipe.tokenizer) == rec.captions(pipe.tokenizer)


def test_caption_text_stops_at_eos_and_shows_masks(pipe):
    tok = pipe.tokenizer
    ids = torch.tensor([tok.bos_id, tok.stoi["a"], tok.mask_id, tok.stoi["red"], tok.eos_id, tok.stoi["circle"]])
    assert caption_text(ids, tok) == "a _ red"


def test_callback_sees_every_step_and_can_replace_tokens(pipe, images):
    seen = []

    def callback(p, step, t, tensors):
        seen.append((step, tensors["tokens"].clone(), tensors["revealed"].clone()))
        tokens = tensors["tokens"].clone()
        tokens[:, 1] = p.tokenizer.stoi["the"]
        return {"tokens": tokens}

    out = pipe(images, num_inference_steps=4, callback_on_step_end=callback,
               callback_on_step_end_tensor_inputs=["tokens", "revealed"])
    assert [s for s, _, _ in seen] == [0, 1, 2, 3]
    assert all(c.split()[0] == "the" for c in out.captions)


def test_the_anchor_writes_left_to_right_until_eos():
    p = tiny_i2t_pipeline(causal=True)
    w = ShapesWorld(seed=5, split="heldout", size=2)
    out = p([w[i].image for i in range(2)])
    decided = out.record.decided_at()[0]
    assert decided[1:len(out.record) + 1].tolist() == list(range(len(out.record)))
    with pytest.raises(ValueError, match="autoregressive anchor"):
        p(w[0].image, num_inference_steps=4)


# ---- the pipeline: inputs, files ---------------------------------------------------------------------------


def test_every_kind_of_image_is_converted(pipe, png_bytes, tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes)
    rgb16 = (np.random.default_rng(0).random((20, 30)) * 65535).astype(np.uint16)
    floats = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    for image in (png_bytes, path, str(path), Image.open(io.BytesIO(png_bytes)), rgb16,
                  (floats * 255).astype(np.uint8), np.zeros((64, 64), dtype=bool), Image.new("P", (50, 10))):
        x = as_pixels(image, 32)
        assert x.shape == (1, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert len(pipe([png_bytes, path]).captions) == 2


def test_bad_images_are_named(pipe, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="notes.txt.*not an image"):
        pipe(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="missing.png: file not found"):
        pipe(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="no images given"):
        pipe([])
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        pipe(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="nan"):
        pipe(torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(TypeError, match="expected a file path"):
        pipe(42)


@pytest.mark.parametrize("bad", [0, -1, 14, 2.5, True, "8"])
def test_steps_outside_one_to_the_caption_length_are_refused(pipe, bad):
    with pytest.raises(ValueError, match=r"steps must be a whole number in \[1, 13\]"):
        pipe(torch.zeros(1, 3, 32, 32), num_inference_steps=bad)


def test_bad_order_and_temperature(pipe):
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match="order must be one of confidence, random, left-to-right"):
        pipe(x, order="backwards")
    for bad in (-0.1, float("nan"), float("inf"), 11):
        with pytest.raises(ValueError, match=r"temperature must be a finite number in \[0, 10\]"):
            pipe(x, temperature=bad)


def test_a_dual_encoder_it_was_not_trained_with_is_refused_naming_both():
    p = tiny_i2t_pipeline()
    digits, _ = load_clip("clip-digits")
    with pytest.raises(ValueError, match="trained to read the image tower of clip-shapes"):
        ImageToTextPipeline(p.denoiser, digits, p.tokenizer)


def test_save_and_load_round_trip(pipe, images, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    assert not list((tmp_path / "p").rglob("*.bin"))
    back = load_captioner(tmp_path / "p")
    assert back.config.default_steps == 8 and back.config.default_order == "confidence"
    assert pipe(images).captions == back(images).captions


def test_caption_all_depends_only_on_the_seed_and_index(pipe, images):
    many = torch.cat([images] * 3)
    a = caption_all(pipe, many, batch_size=4, temperature=1.0)
    b = caption_all(pipe, many, batch_size=4, temperature=1.0)
    assert a == b and len(a) == 9


# ---- training ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["masked", "autoregressive"])
def test_train_i2t_cli_writes_a_pipeline_and_resumes(tmp_path, objective):
    out = tmp_path / "run"
    argv = ["train", "i2t", "--preset", "tiny", "--steps", "4", "--pool-size", "64", "--batch-size", "8",
            "--eval-every", "0", "--checkpoint-every", "2", "--objective", objective, "--out", str(out)]
    assert exit_status(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"single_all", "two_all", "steps"} <= set(metrics) and metrics["steps"] == 4
    p = load_captioner(out)
    assert p.denoiser.config.causal == (objective == "autoregressive")
    assert exit_status(argv) == 2  # the folder holds a state: --resume or another --out
    assert exit_status([*argv[:5], "8", *argv[6:], "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 8


def test_train_i2t_refuses_options_of_other_models(tmp_path):
    assert exit_status(["train", "i2t", "--backbone", "unet", "--out", str(tmp_path / "r")]) == 2
    assert exit_status(["train", "t2i", "--objective", "masked", "--out", str(tmp_path / "r")]) == 2
    assert exit_status(["train", "i2t", "--preset", "huge", "--out", str(tmp_path / "r")]) == 2


def test_caption_cli_prints_one_caption_per_file_and_names_bad_ones(tmp_path, png_bytes, capsys):
    tiny_i2t_pipeline().save_pretrained(tmp_path / "p")
    (tmp_path / "a.png").write_bytes(png_bytes)
    (tmp_path / "b.txt").write_text("hello")
    assert exit_status(["caption", str(tmp_path / "a.png"), "--model", str(tmp_path / "p"), "--steps", "3"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'a.png'}: ")
    assert exit_status(["caption", str(tmp_path / "b.txt"), "--model", str(tmp_path / "p")]) == 2
    assert "b.txt: not an image file" in capsys.readouterr().err
    assert exit_status(["caption", str(tmp_path / "a.png"), "--model", str(tmp_path / "p"), "--steps", "0"]) == 2
    assert "steps must be a whole number in [1, 13]" in capsys.readouterr().err


def test_twin_consistency_is_zero_for_identical_twins_and_refused_where_it_does_not_apply():
    from mmdiff_lab.training.i2t import I2TTrainConfig, twin_consistency_loss
    from mmdiff_lab.training.loop import ConfigError

    p = tiny_i2t_pipeline()
    ids = p.tokenizer.encode(["a small red circle on the left", "a large blue square at the top"])["input_ids"]
    other = p.tokenizer.encode(["a small green circle on the left", "a large blue circle at the top"])["input_ids"]
    states = torch.randn(2, 33, p.image_encoder.config.width)
    g = torch.Generator
    same = twin_consistency_loss(p.denoiser, ids, states, ids, states, 5.0, g().manual_seed(0))
    plain = twin_consistency_loss(p.denoiser, ids, states, ids, states, 0.0, g().manual_seed(0))
    assert torch.allclose(same, plain)  # identical twins: nothing to make consistent
    twin_states = torch.randn_like(states)
    weighed = twin_consistency_loss(p.denoiser, ids, states, other, twin_states, 5.0, g().manual_seed(0))
    alone = twin_consistency_loss(p.denoiser, ids, states, other, twin_states, 0.0, g().manual_seed(0))
    assert torch.isfinite(weighed) and weighed > alone  # two images read differently where their words agree
    with pytest.raises(ConfigError, match="twin_consistency is for the masked objective on world 'shapes'"):
        I2TTrainConfig(world="digits", twin_consistency=1.0)
    with pytest.raises(ConfigError, match="twin_consistency"):
        I2TTrainConfig(objective="autoregressive", twin_consistency=1.0)
    with pytest.raises(ConfigError, match="twin_consistency must be"):
        I2TTrainConfig(twin_consistency=-1.0)
