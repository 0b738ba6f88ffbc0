"""Training a few-step generator from the shipped text-to-image model: `mmdiff-lab train fewstep`.

Adversarial diffusion distillation (ADD, Sauer et al., 2023): the student G is the teacher plus a LoRA adapter
(Hu et al., 2021), trained at the student timesteps tau in {999, 749, 499, 249} (1, 2 or 4 sampling steps):

    x_tau = q_sample(x_0, tau)            real image x_0 and its caption c, noised to a student timestep
    x_hat = G(x_tau, tau, c)              the student's x_0 in one network evaluation
    L_distill = alpha_bar_t' || x_hat - sg(teacher_x0(q_sample(x_hat, t'), t', c, CFG w)) ||^2,  t' ~ U[0, T)
    L_adv(G) = -D(x_hat, s, c);  L(D) = hinge(D(x_0, s, c), D(sg(x_hat), s, c)),  s ~ U[0, disc_max_t)
    L = distill_weight L_distill + adversarial_weight L_adv(G) + L(D)

D is the frozen teacher's block features of q_sample(x, s) read by small text-conditioned heads
(``models/discriminator.py``). The anchor is the same recipe with ``objective="distill"``: no discriminator at
all, so the two runs differ by the adversarial loss alone. Why distillation rather than a from-scratch GAN
(DDGAN, Xiao et al., 2022): the teacher already knows which scene a caption means; a GAN from scratch on two cores
would spend its whole budget learning that.

The generator and its discriminator heads train as one module through ``fit`` (one AdamW): the generator's loss
reads the heads with their weights detached and the heads' loss reads the generator's images detached, so each
player's gradient reaches only its own parameters (simultaneous gradient descent). The result is a
``TextToImagePipeline`` folder (the adapter fused into the teacher's weights, ``supported_steps`` [1, 2, 4],
sampled by DDPM's posterior step), with the adapter itself beside it for shipping compactly.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from accelerate import PartialState
from diffusers.training_utils import EMAModel
from torch import Tensor, nn

from ..data.base import save_grid
from ..data.pairs import make_pool, training_examples
from ..loading import resolve, sha256, weights_file
from ..metrics.faithfulness import generate, shapes_faithfulness
from ..models.denoiser import text_context
from ..models.discriminator import DiscriminatorHeads, TeacherFeatures, hinge_d, hinge_g
from ..pipelines.samplers import make_scheduler
from ..pipelines.text_to_image import TextToImagePipeline, load_pipeline
from ..schedules import q_sample
from .loop import BOUNDS, Bound, ConfigError, OneOf, TrainConfig, fit, write_run_record
from .t2i import watch_prompts

ADVERSARIAL_WEIGHT = 0.05
VALIDATION_SEED = 777  # the held-out prompts watched while training; the eval's (123) give the final figure only
SUPPORTED_STEPS = (1, 2, 4)  # sampling steps; their "trailing" timesteps are subsets of the 4-step ones
SAMPLER = "ddpm"  # the posterior step q(x_t-1 | x_t, x_hat): what a model that predicts x_0 needs (DDGAN's too)
ADAPTER = "adapter"  # the LoRA adapter's folder inside the pipeline's denoiser/ (with base.json naming its base)
#: What the LoRA adapts: every linear and convolution layer of the denoiser.
LORA_TARGETS = (r"blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|mlp\.[02]|ada\.1)|ada_out\.1|out|patchify|"
                r"time_mlp\.[02]|stem\.[02]|refine\.[02]|(stem|refine)_film\.1")


@dataclass
class FewStepTrainConfig(TrainConfig):
    bounds: ClassVar[dict] = {
        **BOUNDS, "objective": OneOf(("adversarial", "distill")), "lora_rank": Bound(1, 128, whole=True),
        "distill_weight": Bound(0), "adversarial_weight": Bound(0), "teacher_guidance": Bound(0, 50),
        "disc_max_t": Bound(1, 1000, whole=True), "disc_lr_scale": Bound(0, open_low=True), "ema_decay": Bound(0, 1, open_high=True, why="0: no average"),
    }

    teacher: str = "t2i-shapes"  # a TextToImagePipeline folder or shipped name; its text tower is the student's
    objective: str = "adversarial"  # "distill": the anchor, the same recipe without the discriminator
    lora_rank: int = 32  # ~0.64M adapted parameters, 1.3 MB in float16: the whole generator fits in the package
    distill_weight: float = 1.0
    # the adversarial gradient on the adapter about half the distillation's at the start (both norms measured)
    adversarial_weight: float = ADVERSARIAL_WEIGHT
    teacher_guidance: float = 1.5  # w of the teacher's targets: its recommended one (model_index.json)
    disc_max_t: int = 250  # the discriminator sees images noised to s < this, where a blurred edge still shows
    # The heads learn this many times faster than the adapter: at the generator's rate their hinge loss stayed at
    # 2.00 (no better than chance) for 400 steps, so the generator's adversarial gradient was noise (docs/results.md).
    disc_lr_scale: float = 10.0
    steps: int = 1500
    batch_size: int = 32
    lr: float = 5e-4  # LoRA factors tolerate a higher rate than full weights
    weight_decay: float = 0.0
    warmup: int = 50
    pool_size: int = 10_000
    ema_decay: float = 0.99
    eval_every: int = 250
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.objective == "distill" and self.adversarial_weight not in (0.0, ADVERSARIAL_WEIGHT):
            raise ConfigError(type(self).__name__, "adversarial_weight",
                              f"is for objective 'adversarial' (the anchor has no discriminator), got "
                              f"{self.adversarial_weight!r} with objective 'distill'")
        if self.objective == "distill":
            self.adversarial_weight = 0.0  # what the anchor's record says: no adversarial loss
        if self.objective == "adversarial" and not self.adversarial_weight:
            raise ConfigError(type(self).__name__, "adversarial_weight",
                              "must be > 0 for objective 'adversarial' (use objective 'distill' for none), got 0")


def student_timesteps(scheduler_config) -> list[int]:
    """The timesteps the sampler visits at 4 steps ("trailing": 999, 749, 499, 249); 1 and 2 steps visit subsets."""
    sched = make_scheduler(SAMPLER, scheduler_config)
    sched.set_timesteps(max(SUPPORTED_STEPS))
    ts = [int(t) for t in sched.timesteps]
    for n in SUPPORTED_STEPS:
        sched.set_timesteps(n)
        assert set(int(t) for t in sched.timesteps) <= set(ts), "a supported step count leaves the student timesteps"
    return ts


def x0_from(out: Tensor, x_t: Tensor, ab: Tensor, prediction_type: str) -> Tensor:
    """x_0 implied by a v or eps output at x_t with alpha_bar ab (B, 1, 1, 1) (Salimans & Ho, 2022)."""
    if prediction_type == "v_prediction":
        return ab.sqrt() * x_t - (1 - ab).sqrt() * out
    return (x_t - (1 - ab).sqrt() * out) / ab.sqrt()


class FewStepModel(nn.Module):
    """What ``fit`` trains: the student (the teacher's copy with a LoRA adapter) and, adversarially, D's heads."""

    def __init__(self, generator: nn.Module, heads: DiscriminatorHeads | None, disc_lr_scale: float = 1.0):
        super().__init__()
        self.generator, self.heads, self.disc_lr_scale = generator, heads, disc_lr_scale

    def optimizer_groups(self) -> list[dict]:
        """AdamW's groups: the adapter's factors, then the heads at ``disc_lr_scale`` times the rate."""
        groups = [{"params": [p for p in self.generator.parameters() if p.requires_grad]}]
        if self.heads is not None:
            groups.append({"params": list(self.heads.parameters()), "lr_scale": self.disc_lr_scale})
        return groups


def add_lora(denoiser: nn.Module, rank: int) -> nn.Module:
    """A LoRA adapter (diffusers' PEFT integration) on every linear and convolution layer, initialised to zero."""
    from peft import LoraConfig

    denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=LORA_TARGETS))
    return denoiser


def fused(generator: nn.Module) -> nn.Module:
    """A plain denoiser with the adapter merged into its weights: as fast as the teacher per step."""
    plain = copy.deepcopy(generator)
    plain.fuse_lora()
    plain.unload_lora()
    return plain.eval()


def train_fewstep(cfg: FewStepTrainConfig, out: str | Path, resume: bool = False, judge=None
                  ) -> tuple[TextToImagePipeline, list[dict]]:
    """Distil cfg.teacher into a 1-, 2- and 4-step generator and save its pipeline to ``out``."""
    out = Path(out)
    started = time.perf_counter()
    teacher_pipe = load_pipeline(cfg.teacher)
    teacher, clip_model, tokenizer = teacher_pipe.denoiser, teacher_pipe.text_encoder, teacher_pipe.tokenizer
    for m in (teacher, clip_model):
        m.requires_grad_(False).eval()
    scheduler = teacher_pipe.scheduler
    prediction = scheduler.config.prediction_type
    alpha_bar = scheduler.alphas_cumprod.float()
    taus = torch.tensor(student_timesteps(scheduler.config))
    _, examples, _ = training_examples("shapes", cfg.pool_size, cfg.seed, twins=False)
    try:
        pool = make_pool(examples, tokenizer)
    except KeyError as e:  # UnknownWordError: a teacher trained on another world
        raise ValueError(f"teacher {cfg.teacher}: its tokenizer cannot read ShapesWorld captions, which the few-step "
                         f"generator trains on ({e}); distil a ShapesWorld t2i pipeline, e.g. t2i-shapes") from None
    empty = tokenizer.encode([""])
    torch.manual_seed(cfg.seed)
    generator = add_lora(copy.deepcopy(teacher), cfg.lora_rank)
    generator.train()
    adversarial = cfg.objective == "adversarial"
    heads = DiscriminatorHeads(len(teacher.blocks), teacher.config.width, clip_model.config.embed_dim) \
        if adversarial else None
    model = FewStepModel(generator, heads, cfg.disc_lr_scale)
    features = TeacherFeatures(teacher) if adversarial else None
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay) if cfg.ema_decay else None

    last_step = [0]  # the step the latest batch was drawn for: names the sample grids

    def batch(step: int, rank: int) -> tuple:
        last_step[0] = step + 1
        rng = np.random.default_rng((cfg.seed, step, rank))
        idx = torch.from_numpy(rng.integers(len(pool), size=cfg.batch_size))
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        B = cfg.batch_size
        tau = taus[torch.randint(len(taus), (B,), generator=g)]
        t_distill = torch.randint(0, len(alpha_bar), (B,), generator=g)
        s = torch.randint(0, cfg.disc_max_t, (B,), generator=g)
        noise = torch.randn((4, *pool.pixels[idx].shape), generator=g)  # for x_tau, x_t', real x_s, fake x_s
        return pool.pixels[idx], pool.input_ids[idx], pool.attention_mask[idx], tau, t_distill, s, noise

    def ab_of(t: Tensor) -> Tensor:
        return alpha_bar.to(t.device)[t][:, None, None, None]  # (B, 1, 1, 1)

    def loss(model, data) -> tuple[Tensor, dict]:
        x0, ids, mask, tau, t_d, s, noise = data
        with torch.no_grad():
            text = clip_model.encode_text(ids, mask)
            states = text_context(teacher, text)  # (B, L, C_text) or (B, L, 2 C_text)
            u = clip_model.encode_text(empty["input_ids"].to(ids.device), empty["attention_mask"].to(ids.device))
            u_states = text_context(teacher, u).expand_as(states)
            u_mask = empty["attention_mask"].to(ids.device).expand_as(mask)
        x_tau = q_sample(x0, tau, alpha_bar, noise[0])
        out = model.generator(x_tau, tau, encoder_hidden_states=states, encoder_attention_mask=mask).sample
        x_hat = x0_from(out, x_tau, ab_of(tau), prediction)  # (B, 3, S, S): the student's image
        # distillation: where the teacher would take the student's image, noised to t', with guidance
        with torch.no_grad():
            x_t = q_sample(x_hat, t_d, alpha_bar, noise[1])
            v = teacher(torch.cat([x_t, x_t]), torch.cat([t_d, t_d]), encoder_hidden_states=torch.cat([states, u_states]),
                        encoder_attention_mask=torch.cat([mask, u_mask])).sample
            v_c, v_u = v.chunk(2)
            target = x0_from(v_u + cfg.teacher_guidance * (v_c - v_u), x_t, ab_of(t_d), prediction).clamp(-1, 1)
        distill = (ab_of(t_d) * (x_hat - target) ** 2).mean()
        parts = {"distill": distill.item()}
        total = cfg.distill_weight * distill
        if adversarial:
            fake_f = features(q_sample(x_hat, s, alpha_bar, noise[3]), s, states, mask)
            with torch.no_grad():
                real_f = features(q_sample(x0, s, alpha_bar, noise[2]), s, states, mask)
            frozen = {k: p.detach() for k, p in model.heads.named_parameters()}
            g_adv = hinge_g(torch.func.functional_call(model.heads, frozen, (fake_f, text.embeds)))
            d_loss = hinge_d(model.heads(real_f, text.embeds), model.heads([f.detach() for f in fake_f], text.embeds))
            total = total + cfg.adversarial_weight * g_adv + d_loss
            parts.update({"generator_adv": g_adv.item(), "discriminator": d_loss.item()})
        return total, parts

    def pipeline_of(m: FewStepModel) -> tuple[TextToImagePipeline, nn.Module]:
        """The pipeline of the EMA weights (adapter fused), and the EMA student with its adapter (to save)."""
        student = copy.deepcopy(m)
        if ema is not None:
            ema.copy_to(student.parameters())
        pipe = TextToImagePipeline(fused(student.generator), clip_model, tokenizer, scheduler,
                                   default_guidance_scale=1.0, default_sampler=SAMPLER, default_steps=1,
                                   supported_steps=list(SUPPORTED_STEPS))
        pipe.set_progress_bar_config(disable=True)
        return pipe, student.generator

    prompts = watch_prompts("shapes", seed=VALIDATION_SEED)  # the test prompts (123) are for the final figure only

    def evaluate(m) -> dict:
        pipe, _ = pipeline_of(m)
        step = last_step[0]
        rows = [generate(pipe, prompts, steps=n) for n in SUPPORTED_STEPS]
        save_grid(torch.cat(rows), out / "samples" / f"step-{step:06d}.png", columns=len(prompts))
        record = {}
        if judge is not None:
            for n in (1, 4):
                f = shapes_faithfulness(pipe, judge, n=48, steps=n, prompt_seed=VALIDATION_SEED)
                record[f"val_{n}step"] = 0.5 * (f["single.all"] + f["two.all"])
        return record

    out.mkdir(parents=True, exist_ok=True)
    prep_seconds = time.perf_counter() - started
    history = fit(model, batch, loss, cfg, out, resume=resume, evaluate=evaluate, ema=ema,
                  desc=f"fewstep {cfg.objective}")
    pipe, student = pipeline_of(model)
    if not PartialState().is_main_process:
        return pipe, history
    pipe.save_pretrained(out)
    adapter = out / "denoiser" / ADAPTER
    student.save_lora_adapter(adapter)
    teacher_folder = resolve(cfg.teacher) / "denoiser"
    base = {"teacher": cfg.teacher, "sha256": sha256(weights_file(teacher_folder))} if (
        teacher_folder / "config.json").is_file() else {"teacher": cfg.teacher}
    (adapter / "base.json").write_text(json.dumps(base, indent=1))
    metrics = {"train_seconds": history[-1]["seconds"] if history else 0.0, "prep_seconds": prep_seconds,
               "steps": history[-1]["step"] if history else 0,
               "adapted_parameters": sum(p.numel() for n, p in student.named_parameters() if "lora" in n)}
    if judge is not None:
        for n in SUPPORTED_STEPS:
            f = shapes_faithfulness(pipe, judge, n=100, steps=n, prompt_seed=VALIDATION_SEED)
            metrics.update({f"validation.{n}step.{k}": v for k, v in f.items() if k.endswith(".all")})
    write_run_record(out, cfg, metrics, history)
    return pipe, history
