"""The ideal denoiser of ShapesWorld: exact at the ends of the noise scale, and no guess beats it."""

import torch

from mmdiff_lab.data import ShapesWorld
from mmdiff_lab.data.base import image_to_tensor
from mmdiff_lab.metrics.ideal import ideal_x0, renders


def scene_and_image(i: int, n_objects: int = 1):
    example = ShapesWorld(seed=3, split="train", n_objects=n_objects, size=10)[i]
    return example.scene, image_to_tensor(example.image)


def test_a_caption_allows_one_render_per_jitter_and_the_true_one_is_among_them():
    for n_objects, k in ((1, 9), (2, 81)):
        scene, image = scene_and_image(0, n_objects)
        c = renders(scene)
        assert c.shape == (k, 3, 32, 32)
        assert len({tuple(x.flatten().tolist()) for x in c}) == k  # every jitter draws a different image
        assert (c == image).flatten(1).all(1).sum() == 1


def test_the_ideal_denoiser_is_exact_at_both_ends_of_the_noise_scale():
    scene, image = scene_and_image(1)
    c = renders(scene)[None]  # (1, 9, 3, S, S)
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ab = 0.9999  # almost no noise: the posterior sits on the render x_t came from
    x_t = ab**0.5 * image[None] + (1 - ab) ** 0.5 * noise
    assert torch.allclose(ideal_x0(x_t, ab, c), image[None], atol=1e-4)
    ab = 1e-12  # pure noise: nothing is known beyond the caption, so the guess is the mean of its renders
    x_t = ab**0.5 * image[None] + (1 - ab) ** 0.5 * noise
    assert torch.allclose(ideal_x0(x_t, ab, c), c.mean(1), atol=1e-4)


def test_no_other_guess_has_a_lower_expected_error():
    """The posterior mean minimises the expected squared error: the prior mean and the most likely render do worse."""
    g = torch.Generator().manual_seed(1)
    c = torch.stack([renders(scene_and_image(i)[0]) for i in range(8)]).repeat(16, 1, 1, 1, 1)  # (128, 9, 3, S, S)
    x0 = c[torch.arange(len(c)), torch.randint(9, (len(c),), generator=g)]
    ab = 0.05  # a noise level where the jitter is uncertain
    x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * torch.randn(x0.shape, generator=g)
    ideal = ideal_x0(x_t, ab, c)
    nearest = c[torch.arange(len(c)), (x_t[:, None] - ab**0.5 * c).flatten(2).square().sum(-1).argmin(1)]
    error = {name: (guess - x0).square().mean() for name, guess in
             {"ideal": ideal, "prior mean": c.mean(1), "most likely": nearest}.items()}
    assert error["ideal"] < error["prior mean"] and error["ideal"] < error["most likely"], error


def test_the_model_is_measured_against_the_ideal_denoiser():
    from conftest import tiny_t2i_pipeline

    from mmdiff_lab.metrics.ideal import x0_error_vs_ideal

    errors = x0_error_vs_ideal(tiny_t2i_pipeline("v_prediction"), timesteps=(100, 900), n=4)
    assert set(errors) == {100, 900}
    for model_mse, ideal_mse in errors.values():
        assert 0 <= ideal_mse < model_mse  # an untrained model is far from the ideal
