"""The dual encoder: shapes, the contrastive loss on known answers, saving and loading, bad input."""

import math

import pytest
import torch

from mmdiff_lab.data import ShapesWorld
from mmdiff_lab.loading import load_clip
from mmdiff_lab.models.encoders import DualEncoder, clip_loss
from mmdiff_lab.text import Tokenizer
from mmdiff_lab.training.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_corpus(ShapesWorld().captions())


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return DualEncoder.from_preset("tiny", len(tok), tok.max_length).eval()


def test_shapes(model, tok):
    B = 3
    pixels = torch.rand(B, 3, 32, 32) * 2 - 1
    batch = tok.encode(["a small red circle on the left", "a large blue square at the top", "a red circle"])
    img = model.encode_image(pixels)
    txt = model.encode_text(batch["input_ids"], batch["attention_mask"])
    N, D, E = (32 // 8) ** 2, model.config.width, model.config.embed_dim
    assert img.patch_states.shape == (B, N, D) and img.pooled.shape == (B, D) and img.embeds.shape == (B, E)
    assert txt.token_states.shape == (B, tok.max_length, D) and txt.embeds.shape == (B, E)
    assert torch.allclose(img.embeds.norm(dim=1), torch.ones(B)) and torch.allclose(txt.embeds.norm(dim=1), torch.ones(B))
    logits_i, logits_t = model(pixels, batch["input_ids"], batch["attention_mask"])
    assert logits_i.shape == (B, B) and torch.equal(logits_i, logits_t.T)


def test_padding_does_not_change_the_text_embedding(model, tok):
    short = tok.encode("a red circle", padding="longest")
    long = tok.encode("a red circle")
    a = model.encode_text(short["input_ids"], short["attention_mask"]).embeds
    b = model.encode_text(long["input_ids"], long["attention_mask"]).embeds
    assert torch.allclose(a, b, atol=1e-5)


def test_wrong_image_size_is_named(model):
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 32, 32\), got \(2, 3, 28, 28\)"):
        model.encode_image(torch.zeros(2, 3, 28, 28))


def test_temperature_is_clamped_at_100(model):
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    x = torch.nn.functional.normalize(torch.ones(1, model.config.embed_dim), dim=1)
    assert math.isclose(model.get_logits(x, x)[0].item(), 100.0, rel_tol=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))


def test_clip_loss_known_answers():
    """Perfectly separated logits give ~0 loss; uniform logits give log(B) (Oord et al., 2018)."""
    B = 4
    perfect = torch.eye(B) * 100
    assert clip_loss(perfect, perfect.T).item() < 1e-6
    uniform = torch.zeros(B, B)
    assert math.isclose(clip_loss(uniform, uniform).item(), math.log(B), rel_tol=1e-6)


def test_clip_loss_treats_equal_keys_as_positives():
    """Pairs 0 and 1 show the same thing: equal similarity to both captions is then optimal (zero gradient);
    without keys the loss still pushes caption 1 away from image 0."""
    logits = torch.tensor([[10.0, 10.0, -10.0], [10.0, 10.0, -10.0], [-10.0, -10.0, 10.0]], requires_grad=True)
    keys = torch.tensor([7, 7, 3])
    clip_loss(logits, logits.T, keys).backward()
    assert logits.grad.abs().max() < 1e-6
    logits.grad = None
    clip_loss(logits, logits.T).backward()
    assert logits.grad.abs().max() > 0.1


def test_save_and_load(tmp_path, model, tok):
    model.save_pretrained(tmp_path)
    tok.save(tmp_path / "tokenizer.json")
    again, tok2 = load_clip(tmp_path)
    assert tok2 == tok
    pixels = torch.zeros(1, 3, 32, 32)
    assert torch.allclose(again.encode_image(pixels).embeds, model.encode_image(pixels).embeds)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()


def test_load_errors_name_the_file(tmp_path, model, tok):
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_clip(tmp_path)
    model.save_pretrained(tmp_path)
    Tokenizer(["red", "circle"], 5).save(tmp_path / "tokenizer.json")
    with pytest.raises(CheckpointError, match="do not match tokenizer.json"):
        load_clip(tmp_path)
    tok.save(tmp_path / "tokenizer.json")
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot load the dual encoder"):
        load_clip(tmp_path)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        DualEncoder.from_preset("huge", 10, 8)
