"""Lab 06's few-step generator: its config, the discriminator, one player's loss reaching only its own weights,
a short real run through the shared loop (saved, reloaded, resumed), the steps it refuses, and compact shipping."""

import json

import pytest
import torch

from mmdiff_lab.loading import ADAPTER, POINTER
from mmdiff_lab.models.discriminator import DiscriminatorHeads, TeacherFeatures, hinge_d, hinge_g
from mmdiff_lab.pipelines.samplers import training_scheduler
from mmdiff_lab.pipelines.text_to_image import load_pipeline
from mmdiff_lab.pretrained.compact import share_denoiser
from mmdiff_lab.training.fewstep import (
    SUPPORTED_STEPS,
    FewStepTrainConfig,
    student_timesteps,
    train_fewstep,
    x0_from,
)
from mmdiff_lab.training.loop import ConfigError


def test_the_student_timesteps_hold_every_supported_step_count():
    assert student_timesteps(training_scheduler("v_prediction").config) == [999, 749, 499, 249]
    assert SUPPORTED_STEPS == (1, 2, 4)


def test_the_config_names_what_is_wrong():
    with pytest.raises(ConfigError, match=r"objective must be one of adversarial, distill, got 'masked'"):
        FewStepTrainConfig(objective="masked")
    with pytest.raises(ConfigError, match=r"adversarial_weight must be > 0 for objective 'adversarial'"):
        FewStepTrainConfig(adversarial_weight=0.0)
    with pytest.raises(ConfigError, match=r"lora_rank must be a whole number in \[1, 128\], got 0"):
        FewStepTrainConfig(lora_rank=0)
    assert FewStepTrainConfig(objective="distill").adversarial_weight == 0.0  # the anchor has no discriminator


def test_x0_from_inverts_the_forward_process():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, 3, 8, 8, generator=g)
    ab = torch.tensor([0.9, 0.5, 0.01])[:, None, None, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    torch.testing.assert_close(x0_from(v, x_t, ab, "v_prediction"), x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x0_from(eps, x_t, ab, "epsilon"), x0, atol=1e-4, rtol=1e-4)


def test_hinge_losses():
    ones, minus = [torch.full((2, 4), 1.0)], [torch.full((2, 4), -1.0)]
    assert hinge_d(ones, minus).item() == 0.0  # both on the right side of the margin
    assert hinge_d(minus, ones).item() == pytest.approx(4.0)  # both wrong by 2
    assert hinge_g(ones).item() == -1.0


@pytest.fixture(scope="module")
def teacher():
    return load_pipeline("t2i-shapes")


def test_the_discriminator_reads_the_teachers_blocks_and_the_text(teacher):
    d = teacher.denoiser
    features = TeacherFeatures(d)
    states, mask = teacher.encode_prompt(["a red circle on the left", "a blue square on the right"])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f = features(x, torch.tensor([10, 400]), states, mask)
        d(x, torch.tensor([10, 400]), encoder_hidden_states=states, encoder_attention_mask=mask)  # not kept
    assert len(f) == len(d.blocks) and f[0].shape == (2, 64, d.config.width)
    heads = DiscriminatorHeads(len(d.blocks), d.config.width, 8)
    text = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    logits = heads(f, text)
    assert [tuple(x.shape) for x in logits] == [(2,)] * len(d.blocks)  # one verdict per image and block
    other = heads(f, -text)  # another caption, another verdict: the heads are conditioned on it
    assert not torch.allclose(logits[0], other[0])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fewstep") / "run"
    cfg = FewStepTrainConfig(steps=2, batch_size=4, pool_size=16, eval_every=0, checkpoint_every=1, lora_rank=2)
    pipe, history = train_fewstep(cfg, out)
    return out, pipe, history


def test_a_short_run_records_both_players_and_reloads(run, teacher):
    out, pipe, history = run
    assert [h["step"] for h in history] == [1, 2]
    assert {"loss_distill", "loss_generator_adv", "loss_discriminator"} <= set(history[-1])
    assert (out / "loss.png").is_file() and (out / "denoiser" / ADAPTER / "pytorch_lora_weights.safetensors").is_file()
    loaded = load_pipeline(out)
    assert loaded.supported_steps == [1, 2, 4] and loaded.defaults.steps == 1 and loaded.defaults.sampler == "ddpm"
    g = torch.Generator().manual_seed(0)
    a = loaded("a red circle on the left", generator=g, output_type="pt").images
    b = pipe("a red circle on the left", generator=torch.Generator().manual_seed(0), output_type="pt").images
    torch.testing.assert_close(a, b)
    # the student is the teacher plus an adapter: not the teacher any more, and the teacher untouched
    moved = [k for k, v in loaded.denoiser.state_dict().items() if not torch.equal(v, teacher.denoiser.state_dict()[k])]
    assert moved


@pytest.mark.parametrize("steps", [3, 8, 20])
def test_steps_it_was_not_trained_for_are_refused_by_name(run, steps):
    _, pipe, _ = run
    with pytest.raises(ValueError, match=rf"samples in 1, 2 or 4 steps only .*, got {steps}"):
        pipe("a red circle", num_inference_steps=steps)


def test_resume_continues_the_same_run(run, tmp_path):
    out, _, history = run
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    cfg = FewStepTrainConfig(steps=3, batch_size=4, pool_size=16, eval_every=0, checkpoint_every=1, lora_rank=2)
    _, resumed = train_fewstep(cfg, copy, resume=True)
    assert [h["step"] for h in resumed] == [1, 2, 3]
    assert resumed[1]["loss"] == history[1]["loss"]


def test_the_anchor_trains_without_a_discriminator(tmp_path):
    cfg = FewStepTrainConfig(objective="distill", steps=1, batch_size=4, pool_size=16, eval_every=0,
                             checkpoint_every=0, lora_rank=2)
    _, history = train_fewstep(cfg, tmp_path / "anchor")
    assert "loss_discriminator" not in history[-1] and history[-1]["loss_distill"] >= 0


def test_shipping_compactly_keeps_the_generator_exactly(run, tmp_path):
    out, pipe, _ = run
    import shutil

    folder = tmp_path / "compact"
    shutil.copytree(out, folder)
    assert share_denoiser(folder) == "t2i-shapes"
    assert json.loads((folder / "denoiser" / POINTER).read_text())["subfolder"] == "denoiser"
    assert not (folder / "denoiser" / "diffusion_pytorch_model.safetensors").exists()
    loaded = load_pipeline(folder)
    for k, v in pipe.denoiser.state_dict().items():
        torch.testing.assert_close(loaded.denoiser.state_dict()[k], v, atol=1e-6, rtol=0)


def test_an_adapter_on_another_teacher_is_not_shipped_as_a_pointer(run, tmp_path):
    out, _, _ = run
    import shutil

    folder = tmp_path / "other"
    shutil.copytree(out, folder)
    base = folder / "denoiser" / ADAPTER / "base.json"
    base.write_text(json.dumps({**json.loads(base.read_text()), "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="is not the teacher this adapter was trained on"):
        share_denoiser(folder)
    assert (folder / "denoiser" / "diffusion_pytorch_model.safetensors").is_file()  # nothing deleted
